//! Per-shard metrics and their Prometheus text rendering.
//!
//! Each shard counts into its own [`Metrics`] (plain cells, no atomics);
//! `/metrics` asks every shard for a snapshot over the mesh and renders all of
//! them, labelled by shard, grouped by family. Latency is a Prometheus
//! histogram with fixed buckets ([`LATENCY_BUCKETS`]) by protocol and route,
//! so `histogram_quantile` over `sum by (le)` aggregates shards and nodes —
//! which per-shard quantiles cannot.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// One sample: family name, label text (`a="b",c="d"`), value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric family.
    pub name: &'static str,
    /// Labels without braces.
    pub labels: String,
    /// The sample's number (Prometheus values are floats).
    pub value: f64,
}

/// Every family `/metrics` can export: name, type, help. Public so the
/// shipped Grafana dashboard and alert rules can be checked against it.
pub const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "dm_requests_total",
        "counter",
        "Requests answered, by protocol, route or message type, and status.",
    ),
    (
        "dm_request_latency_seconds",
        "histogram",
        "Request latency from parse to reply, by protocol and route.",
    ),
    (
        "dm_open_connections",
        "gauge",
        "Open connections by protocol.",
    ),
    (
        "dm_tcp_connections",
        "gauge",
        "Open TCP connections by role (none until a handshake succeeds).",
    ),
    ("dm_cache_hits_total", "counter", "Cache hits by level."),
    ("dm_cache_misses_total", "counter", "Cache misses by level."),
    ("dm_cache_evictions_total", "counter", "L1 evictions."),
    ("dm_cache_entries", "gauge", "L1 entries."),
    (
        "dm_cache_loads_total",
        "counter",
        "Database loads on cache misses.",
    ),
    (
        "dm_backend_errors_total",
        "counter",
        "Backend errors by backend.",
    ),
    (
        "dm_backend_up",
        "gauge",
        "1 when a backend answers, by backend.",
    ),
    (
        "dm_registrations_total",
        "counter",
        "Players registered, by game.",
    ),
    (
        "dm_logins_total",
        "counter",
        "Player logins by game and result (ok; failed: wrong password, unknown or banned player).",
    ),
    (
        "dm_orders_paid_total",
        "counter",
        "Orders moved to paid, by game.",
    ),
    (
        "dm_currency_credited_total",
        "counter",
        "Currency added to balances (signup, wallet, refunds, rewards), by game and currency.",
    ),
    (
        "dm_currency_debited_total",
        "counter",
        "Currency taken from balances (wallet, payments), by game and currency.",
    ),
    (
        "dm_rate_limited_total",
        "counter",
        "Requests refused with 429, by budget: requests (per address) or failures (failed attempts).",
    ),
    (
        "dm_replica_lag_seconds",
        "gauge",
        "Measured replica lag (huge until first measured).",
    ),
    (
        "dm_ws_sockets",
        "gauge",
        "Authenticated WebSocket connections now.",
    ),
    (
        "dm_ws_queued",
        "gauge",
        "Notifications queued on WebSocket connections, not yet written.",
    ),
    (
        "dm_ws_notifications_total",
        "counter",
        "Notifications queued on a WebSocket connection (one per socket that follows the player).",
    ),
    (
        "dm_ws_closed_total",
        "counter",
        "WebSocket connections closed with 1008 because their client read too slowly (realtime.max_queued) or the buffer budget was full, by reason.",
    ),
    (
        "dm_realtime_relay_dropped_total",
        "counter",
        "Notifications a shard could not pass on to its peers or other nodes (its relay was full).",
    ),
    (
        "dm_leaderboard_views",
        "gauge",
        "Leaderboard rank views held in this shard's memory (without Redis; each board period on one shard).",
    ),
    (
        "dm_leaderboard_view_records",
        "gauge",
        "Records in this shard's leaderboard rank views.",
    ),
    (
        "dm_leaderboard_sql_answers_total",
        "counter",
        "Leaderboard ranks answered from SQL because the board's view could not answer (Redis down, a failed load).",
    ),
    (
        "dm_leaderboard_name_lookups_total",
        "counter",
        "Leaderboard reads that looked usernames up in SQL (Redis views hold none; names not in the shard's cache). Local views hold their records' names: 0 without Redis.",
    ),
    (
        "dm_db_pool_size",
        "gauge",
        "Bound on a shard's MySQL connections to one database (games.<id>.pool_size), by game and database (primary or replica).",
    ),
    (
        "dm_db_pool_connections",
        "gauge",
        "A shard's MySQL connections to one database now, by state: open (idle, lent or being opened) or idle.",
    ),
    (
        "dm_db_pool_waiting",
        "gauge",
        "Requests waiting for a free MySQL connection now.",
    ),
    (
        "dm_db_pool_opened_total",
        "counter",
        "MySQL connections opened.",
    ),
    (
        "dm_db_pool_dropped_total",
        "counter",
        "MySQL connections closed instead of reused: broken, timed out, or left in a transaction.",
    ),
    (
        "dm_db_pool_busy_total",
        "counter",
        "Requests that found every MySQL connection busy for the whole wait (answered 503).",
    ),
    (
        "dm_db_pool_stale_retries_total",
        "counter",
        "Calls run again on a fresh connection after an idle one had gone stale (nothing was applied).",
    ),
    (
        "dm_db_pool_lock_retries_total",
        "counter",
        "Transactions run again after losing a deadlock or a lock wait.",
    ),
    (
        "dm_db_pool_kills_total",
        "counter",
        "KILL QUERY sent after a statement passed its timeout.",
    ),
];

/// Upper bounds in seconds of the latency buckets (`+Inf` follows): from a
/// cache hit (~100 µs) to a request that waited on a busy database.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// One series of the latency histogram.
#[derive(Default)]
struct Latency {
    /// Requests per bucket (not cumulative); the last one is `+Inf`.
    buckets: [u64; LATENCY_BUCKETS.len() + 1],
    /// Whole microseconds: an integer sum renders exactly.
    sum_micros: u64,
    count: u64,
}

impl Latency {
    fn record(&mut self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS.partition_point(|bound| *bound < seconds);
        self.buckets[bucket] += 1;
        self.sum_micros = self
            .sum_micros
            .saturating_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        self.count += 1;
    }
}

struct Inner {
    requests: BTreeMap<(&'static str, &'static str, u16), u64>,
    latency: BTreeMap<(&'static str, &'static str), Latency>,
    db_errors: u64,
}

/// One shard's counters.
pub struct Metrics {
    inner: RefCell<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Empty counters.
    pub fn new() -> Metrics {
        Metrics {
            inner: RefCell::new(Inner {
                requests: BTreeMap::new(),
                latency: BTreeMap::new(),
                db_errors: 0,
            }),
        }
    }

    /// Counts one answered request.
    pub fn request(
        &self,
        protocol: &'static str,
        route: &'static str,
        status: u16,
        took: Duration,
    ) {
        let mut inner = self.inner.borrow_mut();
        *inner.requests.entry((protocol, route, status)).or_insert(0) += 1;
        inner
            .latency
            .entry((protocol, route))
            .or_default()
            .record(took);
    }

    /// Counts a database error.
    pub fn db_error(&self) {
        self.inner.borrow_mut().db_errors += 1;
    }

    /// Requests per latency bucket since start, over every protocol and
    /// route (not cumulative across buckets; the last is `+Inf`): what the
    /// shard publishes for the node's percentiles.
    pub fn latency_totals(&self) -> [u64; LATENCY_BUCKETS.len() + 1] {
        let mut totals = [0; LATENCY_BUCKETS.len() + 1];
        for h in self.inner.borrow().latency.values() {
            for (t, n) in totals.iter_mut().zip(h.buckets) {
                *t += n;
            }
        }
        totals
    }

    /// This shard's samples.
    pub fn samples(&self, shard: usize) -> Vec<Sample> {
        let inner = self.inner.borrow();
        let mut out = Vec::new();
        for ((proto, route, status), n) in &inner.requests {
            out.push(Sample {
                name: "dm_requests_total",
                labels: format!(
                    "shard=\"{shard}\",protocol=\"{proto}\",route=\"{route}\",status=\"{status}\""
                ),
                value: *n as f64,
            });
        }
        for ((proto, route), h) in &inner.latency {
            let series = format!("shard=\"{shard}\",protocol=\"{proto}\",route=\"{route}\"");
            let mut cumulative = 0;
            for (i, n) in h.buckets.iter().enumerate() {
                cumulative += n;
                let le = LATENCY_BUCKETS
                    .get(i)
                    .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
                out.push(Sample {
                    name: "dm_request_latency_seconds_bucket",
                    labels: format!("{series},le=\"{le}\""),
                    value: cumulative as f64,
                });
            }
            out.push(Sample {
                name: "dm_request_latency_seconds_sum",
                labels: series.clone(),
                value: h.sum_micros as f64 / 1e6,
            });
            out.push(Sample {
                name: "dm_request_latency_seconds_count",
                labels: series,
                value: h.count as f64,
            });
        }
        out.push(Sample {
            name: "dm_backend_errors_total",
            labels: format!("shard=\"{shard}\",backend=\"database\""),
            value: inner.db_errors as f64,
        });
        out
    }
}

/// Whether `sample` belongs to the family `name` of type `kind`: its own
/// name, or for a histogram its `_bucket`, `_sum` and `_count` series.
fn in_family(sample: &str, name: &str, kind: &str) -> bool {
    if kind != "histogram" {
        return sample == name;
    }
    sample
        .strip_prefix(name)
        .is_some_and(|rest| matches!(rest, "_bucket" | "_sum" | "_count"))
}

/// Renders samples in the Prometheus text format, one group per family.
pub fn render(samples: &[Sample]) -> String {
    let mut out = String::new();
    for (name, kind, help) in FAMILIES {
        let group: Vec<&Sample> = samples
            .iter()
            .filter(|s| in_family(s.name, name, kind))
            .collect();
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for s in group {
            let _ = writeln!(out, "{}{{{}}} {}", s.name, s.labels, s.value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_grouped_families() {
        let m = Metrics::new();
        m.request("http", "health", 200, Duration::from_micros(150));
        m.request("http", "health", 200, Duration::from_micros(250));
        m.request("tcp", "ping", 200, Duration::from_micros(20));
        let mut samples = m.samples(0);
        samples.extend(m.samples(1));
        let text = render(&samples);
        assert_eq!(text.matches("# TYPE dm_requests_total counter").count(), 1);
        assert!(text.contains(
            "dm_requests_total{shard=\"0\",protocol=\"http\",route=\"health\",status=\"200\"} 2"
        ));
        assert_eq!(
            text.matches("# TYPE dm_request_latency_seconds histogram")
                .count(),
            1
        );
        // 150 µs and 250 µs: both above 100 µs, both within 250 µs.
        let health = "shard=\"0\",protocol=\"http\",route=\"health\"";
        assert!(text.contains(&format!(
            "dm_request_latency_seconds_bucket{{{health},le=\"0.0001\"}} 0"
        )));
        assert!(text.contains(&format!(
            "dm_request_latency_seconds_bucket{{{health},le=\"0.00025\"}} 2"
        )));
        assert!(text.contains(&format!(
            "dm_request_latency_seconds_bucket{{{health},le=\"+Inf\"}} 2"
        )));
        assert!(text.contains(&format!("dm_request_latency_seconds_count{{{health}}} 2")));
        assert!(text.contains(&format!(
            "dm_request_latency_seconds_sum{{{health}}} 0.0004"
        )));
        assert!(text.contains(
            "dm_request_latency_seconds_bucket{shard=\"1\",protocol=\"tcp\",route=\"ping\",le=\"0.0001\"} 1"
        ));
        let first_latency = text.find("dm_request_latency_seconds_bucket{").unwrap_or(0);
        let last_request = text.rfind("dm_requests_total{").unwrap_or(usize::MAX);
        assert!(last_request < first_latency, "families are contiguous");
    }
}
