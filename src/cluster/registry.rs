//! The node registry (SPEC §7): every node announces itself in Redis with a
//! key that expires after three heartbeats, so the live nodes of a cluster
//! are exactly the keys that exist.
//!
//! Shard 0 of each node owns the announcing ([`Registry::announce`], every
//! `cluster.heartbeat_ms`); any shard may list the live nodes for the admin
//! route with its own connection. A node that drains deletes its key at
//! once (only if the key is still its own), and a node that is killed
//! vanishes when its key expires. At start-up a node claims its id: when a
//! key for the same id exists and keeps being refreshed by another process,
//! the id belongs to a live node and this one stops with a message naming
//! it; a key left by a node that died expires within three heartbeats, and
//! the new process takes the id over.

use super::settings::{self, HotSettings, Versioned, WriteError};
use crate::redis::client::RedisError;
use crate::redis::link::{Redis, RedisTarget};
use crate::redis::resp::Reply;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The channel on which nodes push revoked sessions to each other.
pub const REVOCATIONS: &str = "dm:revoke";

/// A revocation as pushed on [`REVOCATIONS`]: who sent it, which sessions,
/// and until when their tokens could still be valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedRevocation {
    /// The sending node's id (it has applied the revocation already).
    pub node: String,
    /// Session ids whose tokens are refused from now on.
    pub sessions: Vec<String>,
    /// Unix seconds after which every token of them has expired anyway.
    pub until_s: i64,
}

/// Redis key prefix of node announcements.
pub const KEY_PREFIX: &str = "dm:node:";

/// How far past the database's newest fencing token a refused holder
/// raises the token counter (see [`Registry::yield_stale_lease`]).
pub const TOKEN_MARGIN: i64 = 1 << 20;

/// The lease of singleton job `job`. Its fencing counter shares the hash tag,
/// so the scripts that touch both run on one master of a Redis Cluster.
pub fn lock_key(job: &str) -> String {
    format!("dm:lock:{{{job}}}")
}

/// The fencing-token counter of singleton job `job` (see [`lock_key`]).
pub fn fence_key(job: &str) -> String {
    format!("dm:fence:{{{job}}}")
}

/// How many heartbeats an announcement outlives its last refresh.
pub const TTL_HEARTBEATS: u64 = 3;

/// What a node says about itself, as stored in Redis and listed by
/// `GET /api/v1/cluster/nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeAnnouncement {
    /// `node.id`.
    pub node_id: String,
    /// Random per process: tells a restarted node from another live one.
    pub instance: String,
    /// `http.listen`.
    pub http: String,
    /// `tcp.listen`.
    pub tcp: String,
    /// The server's version.
    pub version: String,
    /// When the process started (RFC 3339).
    pub started_at: String,
    /// Shards (pinned executors).
    pub shards: usize,
    /// Requests (HTTP) and frames (TCP) answered per second, over the last
    /// heartbeat.
    pub requests_per_s: f64,
    /// Open HTTP connections.
    pub http_connections: u64,
    /// Open TCP connections.
    pub tcp_connections: u64,
    /// Heartbeats sent by this process; a live node's keeps growing.
    pub beat: u64,
    /// Latency percentiles, cache hit ratio and backends over the last
    /// heartbeat (absent from a node of an older version: defaults).
    #[serde(flatten, default)]
    pub figures: crate::figures::NodeFigures,
}

/// Why a node could not claim its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimError {
    /// A live node holds the id: this one must not start.
    Taken(String),
    /// Redis did not answer: the node starts without the check (and
    /// announces itself once Redis is back).
    Unreachable(String),
}

/// This node's link to the registry (one per shard).
pub struct Registry {
    client: Redis,
    key: String,
    heartbeat: Duration,
}

fn redis_error(e: RedisError) -> String {
    e.to_string()
}

impl Registry {
    /// A registry client for `url` announcing `node_id` every `heartbeat`.
    pub fn new(url: &str, node_id: &str, heartbeat: Duration) -> Result<Registry, String> {
        let target = RedisTarget::parse(url).map_err(|e| format!("cluster.redis: {e}"))?;
        Ok(Registry {
            client: Redis::new(target),
            key: format!("{KEY_PREFIX}{node_id}"),
            heartbeat,
        })
    }

    /// This shard's connection to the cluster's Redis, for the other shared
    /// state that lives there (the login budgets of [`super::guesses`]).
    pub fn redis(&self) -> &Redis {
        &self.client
    }

    fn ttl_ms(&self) -> u64 {
        (self.heartbeat.as_millis() as u64)
            .saturating_mul(TTL_HEARTBEATS)
            .max(1)
    }

    async fn read(&self, key: &str) -> Result<Option<NodeAnnouncement>, String> {
        let reply = self
            .client
            .command(vec![b"GET".to_vec(), key.as_bytes().to_vec()])
            .await
            .map_err(redis_error)?;
        Ok(match reply {
            Reply::Bulk(Some(v)) => serde_json::from_slice(&v).ok(),
            _ => None,
        })
    }

    /// Takes the node id at start-up: `Err` names the live node that holds
    /// it. Waits at most a little over [`TTL_HEARTBEATS`] heartbeats for a
    /// key left by a dead process to expire.
    pub async fn claim(&self, me: &NodeAnnouncement) -> Result<(), ClaimError> {
        let json = serde_json::to_vec(me).map_err(|e| ClaimError::Unreachable(e.to_string()))?;
        let mut seen: Option<NodeAnnouncement> = None;
        let deadline = std::time::Instant::now() + self.heartbeat * (TTL_HEARTBEATS as u32 + 1);
        loop {
            let set = self
                .client
                .command(vec![
                    b"SET".to_vec(),
                    self.key.as_bytes().to_vec(),
                    json.clone(),
                    b"PX".to_vec(),
                    self.ttl_ms().to_string().into_bytes(),
                    b"NX".to_vec(),
                ])
                .await
                .map_err(|e| ClaimError::Unreachable(redis_error(e)))?;
            if matches!(set, Reply::Status(_)) {
                return Ok(());
            }
            let now = self
                .read(&self.key)
                .await
                .map_err(ClaimError::Unreachable)?;
            match (&seen, &now) {
                (Some(before), Some(after))
                    if after.instance != me.instance
                        && (after.instance != before.instance || after.beat != before.beat) =>
                {
                    return Err(ClaimError::Taken(format!(
                        "node id `{}` is already in use by a live node (http {}, tcp {}, \
                         started {}): give this node another node.id",
                        after.node_id, after.http, after.tcp, after.started_at
                    )));
                }
                _ => {}
            }
            if now.is_some() {
                seen = now;
            }
            if std::time::Instant::now() > deadline {
                return Err(ClaimError::Taken(format!(
                    "node id `{}` is held in the registry and did not expire; is another node \
                     using it?",
                    me.node_id
                )));
            }
            glommio::timer::sleep(self.heartbeat / 2).await;
        }
    }

    /// Refreshes this node's announcement (shard 0, every heartbeat).
    pub async fn announce(&self, me: &NodeAnnouncement) -> Result<(), String> {
        let json = serde_json::to_vec(me).map_err(|e| e.to_string())?;
        self.client
            .command(vec![
                b"SET".to_vec(),
                self.key.as_bytes().to_vec(),
                json,
                b"PX".to_vec(),
                self.ttl_ms().to_string().into_bytes(),
            ])
            .await
            .map(|_| ())
            .map_err(redis_error)
    }

    /// Removes this node's announcement when it starts draining — only if
    /// the key is still this process's (compare and delete in one script).
    pub async fn withdraw(&self, instance: &str) -> Result<(), String> {
        const SCRIPT: &str = "local v = redis.call('GET', KEYS[1]) \
            if v and string.find(v, ARGV[1], 1, true) then return redis.call('DEL', KEYS[1]) end \
            return 0";
        let needle = format!("\"instance\":\"{instance}\"");
        self.client
            .command(vec![
                b"EVAL".to_vec(),
                SCRIPT.as_bytes().to_vec(),
                b"1".to_vec(),
                self.key.as_bytes().to_vec(),
                needle.into_bytes(),
            ])
            .await
            .map(|_| ())
            .map_err(redis_error)
    }

    /// Pushes a revocation to every other node (they apply it on receipt;
    /// the databases' look-back remains the fallback if this is lost).
    pub async fn push_revocation(&self, r: &PushedRevocation) -> Result<(), String> {
        let payload = serde_json::to_vec(r).map_err(|e| e.to_string())?;
        self.client
            .command(vec![
                b"PUBLISH".to_vec(),
                REVOCATIONS.as_bytes().to_vec(),
                payload,
            ])
            .await
            .map(|_| ())
            .map_err(redis_error)
    }

    /// The config centre's document (version 0 and no settings when none
    /// was ever written).
    pub async fn read_settings(&self) -> Result<Versioned, String> {
        let reply = self
            .client
            .command(vec![b"GET".to_vec(), settings::KEY.as_bytes().to_vec()])
            .await
            .map_err(redis_error)?;
        match reply {
            Reply::Bulk(Some(v)) => serde_json::from_slice(&v)
                .map_err(|e| format!("{} holds no settings document: {e}", settings::KEY)),
            _ => Ok(Versioned::default()),
        }
    }

    /// Replaces the document if its version is still `expected`; returns
    /// the new version.
    pub async fn write_settings(
        &self,
        expected: u64,
        new: &HotSettings,
    ) -> Result<u64, WriteError> {
        let doc = Versioned {
            version: expected + 1,
            settings: new.clone(),
        };
        let json = serde_json::to_vec(&doc).map_err(|e| WriteError::Unreachable(e.to_string()))?;
        let reply = self
            .client
            .command(vec![
                b"EVAL".to_vec(),
                settings::CAS_SCRIPT.as_bytes().to_vec(),
                b"1".to_vec(),
                settings::KEY.as_bytes().to_vec(),
                expected.to_string().into_bytes(),
                json,
            ])
            .await
            .map_err(|e| WriteError::Unreachable(redis_error(e)))?;
        match reply {
            Reply::Array(Some(parts)) => match parts.as_slice() {
                [Reply::Int(1), Reply::Int(v)] => Ok(*v as u64),
                [Reply::Int(0), Reply::Int(v)] => Err(WriteError::Stale(*v as u64)),
                _ => Err(WriteError::Unreachable("unexpected script reply".into())),
            },
            Reply::Error(e) => Err(WriteError::Unreachable(e)),
            _ => Err(WriteError::Unreachable("unexpected script reply".into())),
        }
    }

    /// Takes or renews the lease of singleton job `job` for `holder`:
    /// `Some(token)` while this holder has it (a new fencing token, from a
    /// counter that only grows, each time the lease changes hands), `None`
    /// while another holder does. The lease lasts `lease` unless renewed.
    pub async fn lease(
        &self,
        job: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<Option<i64>, String> {
        const SCRIPT: &str = "local cur = redis.call('GET', KEYS[1]) \
            if not cur then \
              local t = redis.call('INCR', KEYS[2]) \
              redis.call('SET', KEYS[1], ARGV[1] .. '|' .. t, 'PX', ARGV[2]) \
              return t \
            end \
            local sep = string.find(cur, '|', 1, true) \
            if sep and string.sub(cur, 1, sep - 1) == ARGV[1] then \
              redis.call('PEXPIRE', KEYS[1], ARGV[2]) \
              return tonumber(string.sub(cur, sep + 1)) \
            end \
            return 0";
        let lease_ms = (lease.as_millis() as u64).max(1).to_string();
        match self.job_script(SCRIPT, job, holder, &lease_ms).await? {
            Reply::Int(0) => Ok(None),
            Reply::Int(t) => Ok(Some(t)),
            Reply::Error(e) => Err(e),
            _ => Err("unexpected lease reply".into()),
        }
    }

    /// After the database refused `holder`'s token for `job` because it has
    /// seen `newer`: raises the token counter past `newer` by a wide margin
    /// ([`TOKEN_MARGIN`]: tokens a lost counter may have handed out that no
    /// holder has written with yet must never be handed out again) and gives
    /// up the lease if `holder` still has it, so the next lease hands out a
    /// token the database accepts. This is how jobs recover when Redis lost
    /// its counter (restarted without persistence, flushed, failed over
    /// before replicating it); a holder whose lease passed to another node
    /// changes nothing (the counter is already past `newer`, the lease is
    /// the other's).
    pub async fn yield_stale_lease(
        &self,
        job: &str,
        holder: &str,
        newer: i64,
    ) -> Result<(), String> {
        const SCRIPT: &str = "local c = tonumber(redis.call('GET', KEYS[2]) or '0') or 0 \
            if c < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end \
            local cur = redis.call('GET', KEYS[1]) \
            if cur and string.sub(cur, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then \
              redis.call('DEL', KEYS[1]) \
            end \
            return 1";
        let raise_to = newer.saturating_add(TOKEN_MARGIN).to_string();
        match self.job_script(SCRIPT, job, holder, &raise_to).await? {
            Reply::Int(1) => Ok(()),
            Reply::Error(e) => Err(e),
            _ => Err("unexpected reply to the lease release".into()),
        }
    }

    /// Runs a job's lease script: KEYS = the job's lock and fencing
    /// counter, ARGV = the holder and `arg`.
    async fn job_script(
        &self,
        script: &str,
        job: &str,
        holder: &str,
        arg: &str,
    ) -> Result<Reply, String> {
        self.client
            .command(vec![
                b"EVAL".to_vec(),
                script.as_bytes().to_vec(),
                b"2".to_vec(),
                lock_key(job).into_bytes(),
                fence_key(job).into_bytes(),
                holder.as_bytes().to_vec(),
                arg.as_bytes().to_vec(),
            ])
            .await
            .map_err(redis_error)
    }

    /// Every live node's announcement, ordered by node id.
    pub async fn live_nodes(&self) -> Result<Vec<NodeAnnouncement>, String> {
        // Bounded: a registry holds one key per node.
        let keys = self
            .client
            .scan(&format!("{KEY_PREFIX}*"), 10_000)
            .await
            .map_err(redis_error)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // One GET per node (the keys may live on different masters of a
        // Redis Cluster, where one MGET could not span them).
        let gets: Vec<Vec<Vec<u8>>> = keys.into_iter().map(|k| vec![b"GET".to_vec(), k]).collect();
        let values = self.client.pipeline(&gets).await.map_err(redis_error)?;
        let mut nodes: Vec<NodeAnnouncement> = values
            .into_iter()
            .filter_map(|v| match v {
                Reply::Bulk(Some(json)) => serde_json::from_slice(&json).ok(),
                _ => None,
            })
            .collect();
        nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(nodes)
    }
}
