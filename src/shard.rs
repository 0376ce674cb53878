//! The per-core state a shard owns, and the little a node shares.
//!
//! A [`Shard`] lives on one pinned executor behind an `Rc`: its services (and
//! through them its database pools), its configuration copy and its connection
//! registry. The only state shared across cores is [`NodeState`]: a shutdown
//! flag, the node-wide TCP connection count (touched once per connect and
//! disconnect, never per request) and per-shard gauges, each written only by
//! its own shard and read by admin endpoints.

use crate::config::Config;
use crate::service::rate_limit::RateLimiter;
use crate::service::Services;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
        }
    }

    /// Whether SIGTERM/SIGINT has been received.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

/// One core's share of the server.
pub struct Shard {
    /// Shard index, 0-based.
    pub id: usize,
    /// This shard's copy of the configuration.
    pub config: Rc<Config>,
    /// The service layer with this shard's stores.
    pub services: Services,
    /// State shared with the other shards.
    pub node: Arc<NodeState>,
    /// This shard's per-IP request budgets.
    pub rate_limiter: RateLimiter,
    /// This shard's request counters and latency histograms.
    pub metrics: crate::metrics::Metrics,
    /// This shard's `/health` body, re-rendered when the millisecond changes.
    pub health: crate::http::health::HealthBody,
    draining: Cell<bool>,
    stop: glommio::sync::Semaphore,
    connections: RefCell<HashMap<u64, Tracked>>,
    next_connection: Cell<u64>,
}

/// How often a shard looks for connections past their read deadline.
pub const REAP_EVERY: Duration = Duration::from_millis(50);

/// An open connection as the shard's registry sees it.
struct Tracked {
    fd: RawFd,
    deadline: Rc<Cell<Option<Instant>>>,
    expired: Rc<Cell<bool>>,
}

impl Shard {
    /// A shard with its services; not yet serving.
    pub fn new(id: usize, config: Rc<Config>, services: Services, node: Arc<NodeState>) -> Shard {
        let rate_limiter = RateLimiter::new(node.gauges.len());
        Shard {
            id,
            config,
            services,
            node,
            rate_limiter,
            metrics: crate::metrics::Metrics::new(),
            health: Default::default(),
            draining: Cell::new(false),
            stop: glommio::sync::Semaphore::new(0),
            connections: RefCell::new(HashMap::new()),
            next_connection: Cell::new(0),
        }
    }

    /// This shard's gauges.
    pub fn gauges(&self) -> &ShardGauges {
        &self.node.gauges[self.id]
    }

    /// Whether the shard is shutting down (listeners closed, draining).
    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// Resolves once draining has begun; accept loops race it.
    pub async fn stopped(&self) {
        let _ = self.stop.acquire(1).await;
    }

    /// Starts the drain: closes accept loops and shuts the read side of every
    /// open connection, so each finishes what it has read and then ends.
    pub fn begin_drain(&self) {
        if self.draining.replace(true) {
            return;
        }
        self.stop.close();
        for t in self.connections.borrow().values() {
            // SAFETY: the fd belongs to a live connection registered below and
            // is removed from the map before that connection closes it.
            unsafe {
                libc::shutdown(t.fd, libc::SHUT_RD);
            }
        }
    }

    /// Ends connections that waited past their read deadline with nothing
    /// to read, forever, every [`REAP_EVERY`]: their pending read returns
    /// end-of-stream and [`ConnectionGuard::expired`] tells them why. One
    /// sweep per shard replaces a timer per read on the request path.
    pub async fn reap_expired_forever(self: Rc<Self>) {
        let mut probe = [0u8; 1];
        loop {
            glommio::timer::sleep(REAP_EVERY).await;
            let now = Instant::now();
            for t in self.connections.borrow().values() {
                if t.expired.get() || t.deadline.get().is_none_or(|d| d > now) {
                    continue;
                }
                // SAFETY: as in `begin_drain`; the probe is a non-blocking peek
                // into a local byte, which consumes nothing.
                let pending = unsafe {
                    libc::recv(
                        t.fd,
                        probe.as_mut_ptr().cast(),
                        1,
                        libc::MSG_PEEK | libc::MSG_DONTWAIT,
                    )
                };
                if pending > 0 {
                    // Data arrived: the connection's own deadline check decides.
                    continue;
                }
                t.expired.set(true);
                // SAFETY: as in `begin_drain`.
                unsafe {
                    libc::shutdown(t.fd, libc::SHUT_RD);
                }
            }
        }
    }

    /// Registers an open connection until the guard drops.
    pub fn track(self: &Rc<Self>, fd: RawFd) -> ConnectionGuard {
        let key = self.next_connection.get();
        self.next_connection.set(key + 1);
        let deadline = Rc::new(Cell::new(None));
        let expired = Rc::new(Cell::new(false));
        self.connections.borrow_mut().insert(
            key,
            Tracked {
                fd,
                deadline: deadline.clone(),
                expired: expired.clone(),
            },
        );
        if self.draining.get() {
            // SAFETY: as in `begin_drain`.
            unsafe {
                libc::shutdown(fd, libc::SHUT_RD);
            }
        }
        ConnectionGuard {
            shard: self.clone(),
            key,
            deadline,
            expired,
        }
    }

    /// This shard's metric samples, including cache, connection and
    /// backend figures.
    pub fn metric_samples(&self) -> Vec<crate::metrics::Sample> {
        use crate::metrics::Sample;
        use std::sync::atomic::Ordering::Relaxed;
        let mut out = self.metrics.samples(self.id);
        let l = |extra: &str| format!("shard=\"{}\"{extra}", self.id);
        let g = self.gauges();
        out.push(Sample {
            name: "dm_open_connections",
            labels: l(",protocol=\"http\""),
            value: g.http_connections.load(Relaxed) as f64,
        });
        out.push(Sample {
            name: "dm_open_connections",
            labels: l(",protocol=\"tcp\""),
            value: g.tcp_connections.load(Relaxed) as f64,
        });
        let c = self.services.cache().snapshot();
        let counters: [(&'static str, &str, u64); 7] = [
            ("dm_cache_hits_total", ",level=\"l1\"", c.l1.hits),
            ("dm_cache_misses_total", ",level=\"l1\"", c.l1.misses),
            ("dm_cache_hits_total", ",level=\"l2\"", c.counters.l2_hits),
            (
                "dm_cache_misses_total",
                ",level=\"l2\"",
                c.counters.l2_misses,
            ),
            ("dm_cache_evictions_total", "", c.l1.evictions),
            ("dm_cache_entries", "", c.entries as u64),
            ("dm_cache_loads_total", "", c.counters.loads),
        ];
        for (name, extra, value) in counters {
            out.push(Sample {
                name,
                labels: l(extra),
                value: value as f64,
            });
        }
        if let Some(up) = c.l2_up {
            out.push(Sample {
                name: "dm_backend_errors_total",
                labels: l(",backend=\"redis\""),
                value: c.counters.l2_errors as f64,
            });
            // Up means usable for invalidation too, not just connected.
            let usable = up && self.services.cache().bus_ok();
            out.push(Sample {
                name: "dm_backend_up",
                labels: l(",backend=\"redis\""),
                value: if usable { 1.0 } else { 0.0 },
            });
        }
        for game in self.services.games() {
            for r in game.store.replica_reports() {
                let labels = l(&format!(",game=\"{}\",replica=\"{}\"", game.id, r.name));
                out.push(Sample {
                    name: "dm_replica_lag_ms",
                    labels: labels.clone(),
                    value: r.lag_ms.min(i64::MAX / 2) as f64,
                });
                out.push(Sample {
                    name: "dm_backend_up",
                    labels: l(&format!(
                        ",backend=\"replica\",game=\"{}\",replica=\"{}\"",
                        game.id, r.name
                    )),
                    value: if r.usable { 1.0 } else { 0.0 },
                });
            }
        }
        out
    }

    /// This shard's cache figures.
    pub fn cache_stats(&self) -> serde_json::Value {
        let mut v = self.services.cache().stats();
        v["shard"] = serde_json::json!(self.id);
        v
    }

    /// Connections still open on this shard.
    pub fn live_connections(&self) -> usize {
        self.connections.borrow().len()
    }
}

/// Accepts connections on `listener` until the shard drains, running
/// `serve` for each on this shard. `name` labels accept errors in the log.
pub async fn accept_until_drained<F, Fut>(
    shard: Rc<Shard>,
    listener: glommio::net::TcpListener,
    name: &'static str,
    serve: F,
) where
    F: Fn(Rc<Shard>, glommio::net::TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            shard.stopped().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok(stream)) => {
                glommio::spawn_local(serve(shard.clone(), stream)).detach();
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, listener = name, "accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// Keeps a connection in its shard's registry while alive.
pub struct ConnectionGuard {
    shard: Rc<Shard>,
    key: u64,
    deadline: Rc<Cell<Option<Instant>>>,
    expired: Rc<Cell<bool>>,
}

impl ConnectionGuard {
    /// The connection must have read something by `at`.
    pub fn set_deadline(&self, at: Instant) {
        self.deadline.set(Some(at));
    }

    /// Whether the shard ended the connection's wait because the deadline passed.
    pub fn expired(&self) -> bool {
        self.expired.get()
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.shard.connections.borrow_mut().remove(&self.key);
    }
}
