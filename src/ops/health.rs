//! What operators and load balancers ask of a node: readiness, detailed
//! health, cache statistics and the service layer's metric samples.
//!
//! Each answer is a typed value; the HTTP front end only renders it. The
//! figures come from this shard's services, the node's shared gauges
//! ([`NodeState`]) and, for node-wide answers, the other shards (asked over
//! the mesh, each answering from its own state).

use super::Operations;
use crate::figures::{BackendState, Totals};
use crate::metrics::Sample;
use crate::node::NodeState;
use crate::service::{ApiError, Caller};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;

/// A game database that did not answer its health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendFailure {
    /// The game whose primary database failed.
    pub game: String,
    /// The driver's error, for operators.
    pub error: String,
}

impl BackendFailure {
    /// The component name operators see: `database:<game>`.
    pub fn component(&self) -> String {
        component(&self.game)
    }
}

fn component(game: &str) -> String {
    format!("database:{game}")
}

/// Whether the node should receive traffic (`GET /ready`).
#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    /// Draining after SIGTERM: a load balancer must stop sending.
    ShuttingDown,
    /// Not every shard listens yet: connections would all land on the
    /// shards that do.
    Starting,
    /// At least one game database does not answer.
    NotReady(Vec<BackendFailure>),
    /// Serving. `degraded` when Redis or the invalidation channel is down
    /// (the node then answers from L1 and the databases); `checks` names
    /// each component and its state.
    Ready {
        /// Redis or its invalidation channel is down.
        degraded: bool,
        /// Component → `ok` or what is wrong with it.
        checks: BTreeMap<String, String>,
    },
}

/// One shard's connection and request figures, as `/health/detailed` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct ShardReport {
    /// Shard index.
    pub shard: usize,
    /// Open HTTP connections.
    pub http_connections: u64,
    /// Open TCP connections.
    pub tcp_connections: u64,
    /// HTTP requests answered since start.
    pub http_requests: u64,
    /// TCP frames answered since start.
    pub tcp_frames: u64,
}

/// One game database's health-check result.
#[derive(Debug, Clone, Serialize)]
pub struct BackendReport {
    /// `database:<game>`.
    pub component: String,
    /// `up` or `down`.
    pub status: &'static str,
    /// Why it is down.
    pub error: Option<String>,
}

/// One replica as this shard sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaView {
    /// `host:port/db`.
    pub name: String,
    /// Whether reads go to it now.
    pub usable: bool,
    /// Last measured lag.
    pub lag_ms: i64,
    /// Reads this shard sent to it.
    pub reads: u64,
    /// Last probe error.
    pub error: Option<String>,
}

/// Where one game's reads went on this shard.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseReport {
    /// Game id.
    pub game: String,
    /// Reads sent to the primary.
    pub primary_reads: u64,
    /// Its replicas.
    pub replicas: Vec<ReplicaView>,
}

/// `GET /health/detailed`: the node's shards and backends (admin).
#[derive(Debug, Clone, Serialize)]
pub struct DetailedHealth {
    /// This node's id.
    pub node_id: String,
    /// Seconds since the node started.
    pub uptime_s: u64,
    /// Replica use as the answering shard sees it.
    pub databases_seen_by_this_shard: Vec<DatabaseReport>,
    /// The shard that answered.
    pub answered_by_shard: usize,
    /// Open TCP connections of the whole node.
    pub tcp_connections_node: usize,
    /// Every shard's figures.
    pub shards: Vec<ShardReport>,
    /// Every game database's state.
    pub backends: Vec<BackendReport>,
}

impl Operations {
    /// Pings every game's primary database; one entry per failure.
    pub async fn check_backends(&self) -> Vec<BackendFailure> {
        let mut failed = Vec::new();
        for game in self.services.games() {
            if let Err(e) = game.store.run(async |s| s.ping().await).await {
                failed.push(BackendFailure {
                    game: game.id.clone(),
                    error: e.to_string(),
                });
            }
        }
        failed
    }

    /// `GET /ready`: not while draining or while a database is down; Redis
    /// being down only degrades the node.
    /// `/ready?scope=node`: whether this node itself can serve — started
    /// and not draining — whatever the shared backends' state. A Kubernetes
    /// readiness probe uses it, so an outage of the shared MySQL primary or
    /// Redis does not take every pod out of the Service at once (cached
    /// reads still answer; writes answer a clear 503); the backends stay
    /// visible in plain `/ready`, `/metrics` and the alerts (SPEC §7).
    pub fn node_readiness(node: &NodeState, shard_draining: bool) -> Readiness {
        Self::node_not_serving(node, shard_draining).unwrap_or_else(|| Readiness::Ready {
            degraded: false,
            checks: BTreeMap::from([("node".to_string(), "ok".to_string())]),
        })
    }

    fn node_not_serving(node: &NodeState, shard_draining: bool) -> Option<Readiness> {
        if shard_draining || node.is_shutting_down() {
            return Some(Readiness::ShuttingDown);
        }
        if !node.serving.load(Relaxed) {
            return Some(Readiness::Starting);
        }
        None
    }

    /// `/ready`: the node serves and every configured backend answers.
    pub async fn readiness(&self, node: &NodeState, shard_draining: bool) -> Readiness {
        if let Some(not_serving) = Self::node_not_serving(node, shard_draining) {
            return not_serving;
        }
        let failed = self.check_backends().await;
        if !failed.is_empty() {
            return Readiness::NotReady(failed);
        }
        let mut checks: BTreeMap<String, String> = self
            .services
            .games()
            .map(|g| (component(&g.id), "ok".to_string()))
            .collect();
        let mut degraded = false;
        let cache = self.services.cache();
        if cache.has_l2() {
            let state = match cache.l2_ping().await {
                Ok(()) => "ok".to_string(),
                Err(e) => {
                    degraded = true;
                    format!("down: {e}")
                }
            };
            checks.insert("redis".into(), state);
            if !cache.bus_ok() {
                degraded = true;
                checks.insert("invalidation_channel".into(), "down".into());
            }
        }
        for g in self.services.games() {
            for r in g.store.replica_reports() {
                let state = if r.usable {
                    "ok".to_string()
                } else {
                    format!(
                        "skipped (lag {} ms{})",
                        r.lag_ms,
                        r.error.map(|e| format!(", {e}")).unwrap_or_default()
                    )
                };
                checks.insert(format!("replica:{}:{}", g.id, r.name), state);
            }
        }
        Readiness::Ready { degraded, checks }
    }

    /// `GET /health/detailed` (admin), answered by shard `shard_id`.
    pub async fn detailed_health(
        &self,
        caller: &Caller,
        node: &NodeState,
        shard_id: usize,
    ) -> Result<DetailedHealth, ApiError> {
        self.services.require_admin(caller)?;
        let shards = node
            .gauges
            .iter()
            .enumerate()
            .map(|(shard, g)| ShardReport {
                shard,
                http_connections: g.http_connections.load(Relaxed),
                tcp_connections: g.tcp_connections.load(Relaxed),
                http_requests: g.http_requests.load(Relaxed),
                tcp_frames: g.tcp_frames.load(Relaxed),
            })
            .collect();
        let failed = self.check_backends().await;
        let backends = self
            .services
            .games()
            .map(|g| {
                let error = failed
                    .iter()
                    .find(|f| f.game == g.id)
                    .map(|f| f.error.clone());
                BackendReport {
                    component: component(&g.id),
                    status: if error.is_some() { "down" } else { "up" },
                    error,
                }
            })
            .collect();
        let databases = self
            .services
            .games()
            .map(|g| DatabaseReport {
                game: g.id.clone(),
                primary_reads: g.store.primary_reads(),
                replicas: g
                    .store
                    .replica_reports()
                    .into_iter()
                    .map(|r| ReplicaView {
                        name: r.name,
                        usable: r.usable,
                        lag_ms: r.lag_ms,
                        reads: r.reads,
                        error: r.error,
                    })
                    .collect(),
            })
            .collect();
        Ok(DetailedHealth {
            node_id: self.config.node.id.clone(),
            uptime_s: node.started.elapsed().as_secs(),
            databases_seen_by_this_shard: databases,
            answered_by_shard: shard_id,
            tcp_connections_node: node.tcp_connections.load(Relaxed),
            shards,
            backends,
        })
    }

    /// Every backend as this shard sees it now (the primary databases are
    /// pinged): the backends part of the node's figures.
    pub async fn backend_states(&self) -> Vec<BackendState> {
        let failed = self.check_backends().await;
        let mut out = Vec::new();
        if let Some(up) = self.services.cache().l2_usable() {
            out.push(BackendState {
                name: "redis".into(),
                up,
                lag_s: None,
                error: None,
            });
        }
        for game in self.services.games() {
            let error = failed
                .iter()
                .find(|f| f.game == game.id)
                .map(|f| f.error.clone());
            out.push(BackendState {
                name: format!("database:{}", game.id),
                up: error.is_none(),
                lag_s: None,
                error,
            });
            for r in game.store.replica_reports() {
                out.push(BackendState {
                    name: format!("replica:{}:{}", game.id, r.name),
                    up: r.usable,
                    lag_s: Some(r.lag_seconds()),
                    error: r.error,
                });
            }
        }
        out
    }

    /// This shard's running totals: its latency histogram summed over
    /// routes (from `metrics`) and its cache hits (L1 or L2) and lookups.
    pub fn totals(&self, metrics: &crate::metrics::Metrics) -> Totals {
        let c = self.services.cache().snapshot();
        Totals {
            latency: metrics.latency_totals(),
            cache_hits: c.l1.hits + c.counters.l2_hits,
            cache_lookups: c.l1.hits + c.l1.misses,
        }
    }

    /// This shard's cache figures (`shard` added).
    pub fn cache_stats(&self, shard_id: usize) -> Value {
        let mut v = self.services.cache().stats();
        v["shard"] = json!(shard_id);
        v
    }

    /// `GET /api/v1/cache/stats` (admin): every shard's cache figures, in
    /// shard order.
    pub async fn node_cache_stats(
        &self,
        caller: &Caller,
        shard_id: usize,
    ) -> Result<Value, ApiError> {
        self.services.require_admin(caller)?;
        let mut shards = vec![self.cache_stats(shard_id)];
        shards.extend(self.services.peers().cache_stats().await);
        shards.sort_by_key(|s| s["shard"].as_u64());
        Ok(json!({ "node_id": self.config.node.id, "shards": shards }))
    }

    /// `GET /api/v1/cluster/nodes` (admin): every live node of the cluster
    /// from the registry, or this node alone when it has none.
    pub async fn cluster_nodes(&self, caller: &Caller) -> Result<Value, ApiError> {
        self.services.require_admin(caller)?;
        let (nodes, registry) = match self.services.registry() {
            None => (
                vec![crate::cluster::announcement(&self.config, &self.node, 0)],
                "none: a stand-alone node (cluster.redis is empty)",
            ),
            Some(r) => (
                r.live_nodes().await.map_err(|e| {
                    tracing::warn!(error = %e, "cluster registry unavailable");
                    ApiError::unavailable("cluster registry (Redis) unavailable")
                })?,
                "redis",
            ),
        };
        Ok(json!({ "registry": registry, "nodes": nodes }))
    }

    /// Whether the request's caller (or why it has none) may read
    /// `/metrics`: anyone when `http.metrics_public`, else admins only.
    pub fn may_read_metrics(&self, caller: Result<Caller, ApiError>) -> Result<(), ApiError> {
        if self.config.http.metrics_public {
            return Ok(());
        }
        self.services.require_admin(&caller?)
    }

    /// The service layer's metric samples on shard `shard_id`: cache,
    /// Redis and replica figures.
    pub fn backend_samples(&self, shard_id: usize) -> Vec<Sample> {
        let mut out = self.services.counters().samples(shard_id);
        let l = |extra: &str| format!("shard=\"{shard_id}\"{extra}");
        let cache = self.services.cache();
        let c = cache.snapshot();
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
        if c.l2_up.is_some() {
            out.push(Sample {
                name: "dm_backend_errors_total",
                labels: l(",backend=\"redis\""),
                value: c.counters.l2_errors as f64,
            });
        }
        if let Some(usable) = cache.l2_usable() {
            out.push(Sample {
                name: "dm_backend_up",
                labels: l(",backend=\"redis\""),
                value: if usable { 1.0 } else { 0.0 },
            });
        }
        let hub = self.services.sockets();
        let f = hub.figures();
        let (views, view_records) = self.services.board_view_sizes();
        let realtime: [(&'static str, &str, u64); 10] = [
            ("dm_leaderboard_views", "", views as u64),
            ("dm_leaderboard_view_records", "", view_records as u64),
            (
                "dm_leaderboard_sql_answers_total",
                "",
                self.services.board_sql_answers(),
            ),
            (
                "dm_leaderboard_name_lookups_total",
                "",
                self.services.board_name_lookups(),
            ),
            ("dm_ws_sockets", "", hub.sockets() as u64),
            ("dm_ws_queued", "", hub.queued() as u64),
            ("dm_ws_notifications_total", "", f.queued_total.get()),
            (
                "dm_ws_closed_total",
                ",reason=\"slow\"",
                f.closed_slow_total.get(),
            ),
            (
                "dm_ws_closed_total",
                ",reason=\"memory\"",
                f.closed_memory_total.get(),
            ),
            (
                "dm_realtime_relay_dropped_total",
                "",
                self.services.relay().dropped(),
            ),
        ];
        for (name, extra, value) in realtime {
            out.push(Sample {
                name,
                labels: l(extra),
                value: value as f64,
            });
        }
        for game in self.services.games() {
            for (database, p) in game.store.pool_reports() {
                let pool = format!(",game=\"{}\",database=\"{database}\"", game.id);
                let figures: [(&'static str, &str, u64); 10] = [
                    ("dm_db_pool_size", "", p.size as u64),
                    ("dm_db_pool_connections", ",state=\"open\"", p.open as u64),
                    ("dm_db_pool_connections", ",state=\"idle\"", p.idle as u64),
                    ("dm_db_pool_waiting", "", p.waiting as u64),
                    ("dm_db_pool_opened_total", "", p.opened_total),
                    ("dm_db_pool_dropped_total", "", p.dropped_broken_total),
                    ("dm_db_pool_busy_total", "", p.busy_total),
                    ("dm_db_pool_stale_retries_total", "", p.stale_retries_total),
                    ("dm_db_pool_lock_retries_total", "", p.lock_retries_total),
                    ("dm_db_pool_kills_total", "", p.kills_total),
                ];
                for (name, extra, value) in figures {
                    out.push(Sample {
                        name,
                        labels: l(&format!("{pool}{extra}")),
                        value: value as f64,
                    });
                }
            }
            for r in game.store.replica_reports() {
                let replica = format!(",game=\"{}\",replica=\"{}\"", game.id, r.name);
                out.push(Sample {
                    name: "dm_replica_lag_seconds",
                    labels: l(&replica),
                    value: r.lag_seconds(),
                });
                out.push(Sample {
                    name: "dm_backend_up",
                    labels: l(&format!(",backend=\"replica\"{replica}")),
                    value: if r.usable { 1.0 } else { 0.0 },
                });
            }
        }
        out
    }
}
