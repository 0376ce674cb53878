//! Operations: what operators, load balancers and the cluster ask of a
//! node, apart from the business rules (`crate::service`) — readiness and
//! detailed health, metrics and cache figures, the cluster's node list, the
//! config centre's document — and the background tasks that keep a node in
//! step with its cluster ([`tasks`]: one table says which task runs on
//! which shard, and when).
//!
//! A shard owns one [`Operations`] beside its [`Services`]: it reads the
//! services (their games, cache and registry) and never the other way
//! round, so the business room knows nothing of probes, figures or tasks.

pub mod announce;
pub mod audit;
pub mod cache_bus;
pub mod config_centre;
pub mod health;
pub mod jobs;
pub mod memory;
pub mod realtime;
pub mod revocations;
pub mod tasks;

use crate::config::Config;
use crate::node::NodeState;
use crate::service::Services;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

/// A shard's operations side.
pub struct Operations {
    services: Rc<Services>,
    config: Rc<Config>,
    node: Arc<NodeState>,
    shard: usize,
    draining: Cell<bool>,
}

impl Operations {
    /// The operations of shard `shard`, over its `services`.
    pub fn new(
        services: Rc<Services>,
        config: Rc<Config>,
        node: Arc<NodeState>,
        shard: usize,
    ) -> Operations {
        Operations {
            services,
            config,
            node,
            shard,
            draining: Cell::new(false),
        }
    }

    /// The business side these operations report on.
    pub fn services(&self) -> &Rc<Services> {
        &self.services
    }

    /// This shard's index.
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// What the node's shards share.
    pub fn node(&self) -> &Arc<NodeState> {
        &self.node
    }

    /// The configuration the shard started with.
    pub fn config(&self) -> &Rc<Config> {
        &self.config
    }

    /// Whether the shard drains (listeners closed): `/ready` says 503 and
    /// the background tasks stop.
    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// Marks the shard as draining; true the first time.
    pub fn set_draining(&self) -> bool {
        !self.draining.replace(true)
    }

    /// Whether background tasks should stop: the shard drains or the node
    /// shuts down.
    pub fn stopping(&self) -> bool {
        self.is_draining() || self.node.is_shutting_down()
    }
}
