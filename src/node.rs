//! What the shards of one node share: the only state that crosses cores.
//!
//! A shutdown flag, the node-wide TCP connection count (touched once per
//! connect and disconnect, never per request), the hot-reloaded rate limit,
//! and per-shard gauges, each written only by its own shard and read by the
//! admin endpoints of any shard. Everything else a shard owns alone
//! (the shard module).

use crate::figures::{NodeFigures, Totals};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    /// Requests answered per latency bucket since start
    /// ([`crate::metrics::LATENCY_BUCKETS`], then `+Inf`), published once a
    /// heartbeat for the node's percentiles.
    pub latency: [AtomicU64; crate::metrics::LATENCY_BUCKETS.len() + 1],
    /// Cache lookups answered from L1 or L2 since start (published likewise).
    pub cache_hits: AtomicU64,
    /// Cache lookups since start (published likewise).
    pub cache_lookups: AtomicU64,
}

impl ShardGauges {
    /// Publishes the shard's running totals (by the shard itself).
    pub fn publish(&self, totals: &Totals) {
        for (g, n) in self.latency.iter().zip(totals.latency) {
            g.store(n, Ordering::Relaxed);
        }
        self.cache_hits.store(totals.cache_hits, Ordering::Relaxed);
        self.cache_lookups
            .store(totals.cache_lookups, Ordering::Relaxed);
    }

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
    /// Set once every shard has bound its listeners and is serving.
    pub serving: AtomicBool,
    /// Open TCP connections of the whole node (for `tcp.max_connections`).
    pub tcp_connections: AtomicUsize,
    /// Authenticated WebSocket connections of the whole node: a
    /// notification is passed to the other shards only while there are any.
    pub ws_sockets: Arc<AtomicUsize>,
    /// One entry per shard.
    pub gauges: Vec<ShardGauges>,
    /// The budgets in force: the config centre's value where it sets one,
    /// else the file's ([`NodeState::file`]).
    pub limits: HotLimits,
    /// The budgets and log level of the configuration file, as last
    /// (re)loaded; SIGHUP replaces them.
    pub file: Mutex<FileSettings>,
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
    /// Latency percentiles, cache hit ratio and backends over the last
    /// heartbeat, for the registry and the console (written by shard 0 once
    /// a heartbeat; never touched on a request's path).
    pub figures: Mutex<NodeFigures>,
}

/// Budgets every shard reads per request or per login.
#[derive(Debug, Default)]
pub struct HotLimits {
    /// Requests per client address per minute.
    pub requests_per_ip: AtomicU32,
    /// Failed logins and handshakes per client address per minute.
    pub failures_per_ip: AtomicU32,
    /// Failed logins per account per minute.
    pub failures_per_user: AtomicU32,
}

impl HotLimits {
    /// Puts `s` in force.
    pub fn set(&self, s: &FileSettings) {
        self.requests_per_ip
            .store(s.requests_per_ip, Ordering::Relaxed);
        self.failures_per_ip
            .store(s.failures_per_ip, Ordering::Relaxed);
        self.failures_per_user
            .store(s.failures_per_user, Ordering::Relaxed);
    }
}

/// The hot settings as the configuration file gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSettings {
    /// `auth.rate_limit_per_ip_per_min`.
    pub requests_per_ip: u32,
    /// `auth.failed_logins_per_ip_per_min`.
    pub failures_per_ip: u32,
    /// `auth.failed_logins_per_user_per_min`.
    pub failures_per_user: u32,
    /// `log.level`.
    pub log_level: String,
}

impl FileSettings {
    /// The hot settings of `config`.
    pub fn of(config: &crate::config::Config) -> FileSettings {
        FileSettings {
            requests_per_ip: config.auth.rate_limit_per_ip_per_min,
            failures_per_ip: config.auth.failed_logins_per_ip_per_min,
            failures_per_user: config.auth.failed_logins_per_user_per_min,
            log_level: config.log.level.clone(),
        }
    }
}

impl NodeState {
    /// State for a node of `shards` shards starting with the file's settings.
    pub fn new(shards: usize, file: FileSettings) -> NodeState {
        let limits = HotLimits::default();
        limits.set(&file);
        NodeState {
            limits,
            file: Mutex::new(file),
            started: Instant::now(),
            shutting_down: AtomicBool::new(false),
            serving: AtomicBool::new(false),
            tcp_connections: AtomicUsize::new(0),
            ws_sockets: Arc::default(),
            gauges: (0..shards).map(|_| ShardGauges::default()).collect(),
            shards_draining: AtomicUsize::new(shards),
            instance: format!("{:016x}", rand::random::<u64>()),
            started_ms: crate::clock::now_ms(),
            requests_per_s: AtomicU64::new(0),
            figures: Mutex::new(Default::default()),
        }
    }

    /// The running totals every shard last published, summed.
    pub fn totals(&self) -> Totals {
        let mut sum = Totals::default();
        for g in &self.gauges {
            for (t, n) in sum.latency.iter_mut().zip(&g.latency) {
                *t += n.load(Ordering::Relaxed);
            }
            sum.cache_hits += g.cache_hits.load(Ordering::Relaxed);
            sum.cache_lookups += g.cache_lookups.load(Ordering::Relaxed);
        }
        sum
    }

    /// Whether SIGTERM/SIGINT has been received.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}
