//! Every background task a shard runs, in one table ([`TASKS`]): what it
//! is, on which shard it runs, and under which configuration. A shard
//! starts them with [`start`] once it serves; each task ends by itself when
//! the shard drains (or, for the forever ones, with the shard's executor).

use super::{
    announce, audit, cache_bus, config_centre, jobs, memory, realtime, revocations, Operations,
};
use crate::config::Config;
use crate::logging::LogReload;
use std::rc::Rc;

/// Which shards of a node run a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shards {
    /// Shard 0 only: one per node (node-wide subscriptions and duties).
    First,
    /// Every shard: each keeps its own state in step.
    Every,
}

/// What a task starts from.
pub struct TaskContext {
    /// The shard's operations (and through them its services).
    pub ops: Rc<Operations>,
    /// The log level handle the config centre sets.
    pub log: LogReload,
}

/// One background task.
pub struct Task {
    /// What it does, for logs and docs.
    pub name: &'static str,
    /// Which shards run it.
    pub shards: Shards,
    /// Whether the configuration asks for it.
    pub when: fn(&Config) -> bool,
    /// Spawns it on the current shard's executor.
    pub start: fn(&TaskContext),
}

fn always(_: &Config) -> bool {
    true
}

fn with_l2(c: &Config) -> bool {
    !c.cache.redis.is_empty()
}

fn in_a_cluster(c: &Config) -> bool {
    !c.cluster.redis.is_empty()
}

fn with_replicas(c: &Config) -> bool {
    c.games.values().any(|g| !g.replicas.is_empty())
}

fn spawn(task: impl std::future::Future<Output = ()> + 'static) {
    glommio::spawn_local(task).detach();
}

/// The table: every background task of a shard.
pub const TASKS: &[Task] = &[
    Task {
        name: "give back to the system the memory a burst left free",
        shards: Shards::First,
        when: always,
        start: |c| spawn(memory::give_back_forever(c.ops.clone())),
    },
    Task {
        name: "adopt revocations written to the databases by any node",
        shards: Shards::First,
        when: always,
        start: |c| spawn(revocations::follow_revocations(c.ops.clone())),
    },
    Task {
        name: "measure the node's figures and announce it in the registry",
        shards: Shards::First,
        when: always,
        start: |c| spawn(announce::announce_forever(c.ops.clone())),
    },
    Task {
        name: "run the singleton jobs (under a lease in a cluster)",
        shards: Shards::First,
        when: always,
        start: |c| spawn(jobs::run_singleton_jobs(c.ops.clone())),
    },
    Task {
        name: "apply the config centre's settings",
        shards: Shards::First,
        when: in_a_cluster,
        start: |c| {
            spawn(config_centre::follow_config_centre(
                c.ops.clone(),
                c.log.clone(),
            ))
        },
    },
    Task {
        name: "follow the revocations other nodes push",
        shards: Shards::First,
        when: in_a_cluster,
        start: |c| spawn(revocations::revocation_subscriber(c.ops.clone())),
    },
    Task {
        name: "sign the audit chains' heads (checkpoints)",
        shards: Shards::First,
        when: always,
        start: |c| spawn(audit::checkpoint_forever(c.ops.clone())),
    },
    Task {
        name: "rebuild the leaderboard views of the current periods",
        shards: Shards::Every,
        when: always,
        start: |c| {
            let ops = c.ops.clone();
            spawn(async move { ops.services().rebuild_board_views().await })
        },
    },
    Task {
        name: "relay realtime deliveries to the other shards and nodes",
        shards: Shards::Every,
        when: always,
        start: |c| spawn(realtime::relay_forever(c.ops.clone())),
    },
    Task {
        name: "deliver the realtime deliveries other nodes publish",
        shards: Shards::First,
        when: in_a_cluster,
        start: |c| spawn(realtime::subscriber(c.ops.clone())),
    },
    Task {
        name: "refresh the presence of this shard's players in Redis",
        shards: Shards::Every,
        when: in_a_cluster,
        start: |c| spawn(realtime::refresh_presence_forever(c.ops.clone())),
    },
    Task {
        name: "follow the invalidation channel",
        shards: Shards::First,
        when: with_l2,
        start: |c| spawn(cache_bus::invalidation_subscriber(c.ops.clone())),
    },
    Task {
        name: "check the Redis link and resend unsent invalidations",
        shards: Shards::Every,
        when: with_l2,
        start: |c| spawn(cache_bus::watch_l2_forever(c.ops.clone())),
    },
    Task {
        name: "probe the replicas' lag",
        shards: Shards::Every,
        when: with_replicas,
        start: |c| {
            for game in c.ops.services().games() {
                if game.store.has_replicas() {
                    spawn(game.store.clone().probe_forever());
                }
            }
        },
    },
    Task {
        name: "write the primaries' heartbeat rows the replica probes read",
        shards: Shards::First,
        when: with_replicas,
        start: |c| {
            for game in c.ops.services().games() {
                if game.store.has_replicas() {
                    spawn(game.store.clone().beat_forever());
                }
            }
        },
    },
];

/// Starts every task of [`TASKS`] this shard runs under this configuration.
pub fn start(context: &TaskContext) {
    let first = context.ops.shard() == 0;
    for task in TASKS {
        let here = first || task.shards == Shards::Every;
        if here && (task.when)(context.ops.config()) {
            tracing::debug!(
                task = task.name,
                shard = context.ops.shard(),
                "background task started"
            );
            (task.start)(context);
        }
    }
}
