//! What the shards of one node share: the only state that crosses cores.
//!
//! A shutdown flag, the node-wide TCP connection count (touched once per
//! connect and disconnect, never per request), the hot-reloaded rate limit,
//! and per-shard gauges, each written only by its own shard and read by the
//! admin endpoints of any shard. Everything else a shard owns alone
//! (the shard module).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// Figures one shard publishes; written only by that shard.
#[repr(align(128))]
#[derive(Debug, Default)]
pub struct ShardGauges {
    /// Open HTTP connections.
    pub http_connections: AtomicU64,
    /// Open TCP connections.
    pub tcp_connections: AtomicU64,
    /// HTTP requests answered.
    pub http_requests: AtomicU64,
    /// TCP frames answered.
    pub tcp_frames: AtomicU64,
    /// Timer ticks of the shard's executor while the systemd watchdog is
    /// on: proof, read by the main thread before each `WATCHDOG=1`, that
    /// the shard still runs (see the notify module).
    pub beats: AtomicU64,
}

impl ShardGauges {
    /// Adds one to a gauge (single writer, so relaxed is exact).
    pub fn incr(g: &AtomicU64) {
        g.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one from a gauge.
    pub fn decr(g: &AtomicU64) {
        g.fetch_sub(1, Ordering::Relaxed);
    }
}

/// State shared by every shard of the node.
#[derive(Debug)]
pub struct NodeState {
    /// When the node started.
    pub started: Instant,
    /// Set once by the signal thread; shards poll it.
    pub shutting_down: AtomicBool,
    /// Open TCP connections of the whole node (for `tcp.max_connections`).
    pub tcp_connections: AtomicUsize,
    /// One entry per shard.
    pub gauges: Vec<ShardGauges>,
    /// `auth.rate_limit_per_ip_per_min`, hot-reloaded by SIGHUP.
    pub rate_limit_per_min: AtomicU32,
    /// Shards that still have connections while shutting down; a drained
    /// shard keeps answering its peers until this reaches 0.
    pub shards_draining: AtomicUsize,
    /// Random per process: tells this process from an earlier one with the
    /// same node id in the cluster registry.
    pub instance: String,
    /// When the node started, Unix milliseconds (for the registry).
    pub started_ms: i64,
    /// Requests and frames answered per second over the last heartbeat
    /// (`f64` bits; written by shard 0 once a heartbeat).
    pub requests_per_s: AtomicU64,
}

impl NodeState {
    /// State for a node of `shards` shards.
    pub fn new(shards: usize, rate_limit_per_min: u32) -> NodeState {
        NodeState {
            started: Instant::now(),
            shutting_down: AtomicBool::new(false),
            tcp_connections: AtomicUsize::new(0),
            gauges: (0..shards).map(|_| ShardGauges::default()).collect(),
            rate_limit_per_min: AtomicU32::new(rate_limit_per_min),
            shards_draining: AtomicUsize::new(shards),
            instance: format!("{:016x}", rand::random::<u64>()),
            started_ms: crate::clock::now_ms(),
            requests_per_s: AtomicU64::new(0),
        }
    }

    /// Whether SIGTERM/SIGINT has been received.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}
