//! Per-shard metrics and their Prometheus text rendering.
//!
//! Each shard counts into its own [`Metrics`] (plain cells and an
//! hdrhistogram, no atomics); `/metrics` asks every shard for a snapshot over
//! the mesh and renders all of them, labelled by shard, grouped by family.

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

/// Families: name, type, help.
const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "dm_requests_total",
        "counter",
        "Requests answered, by protocol, route or message type, and status.",
    ),
    (
        "dm_request_latency_seconds",
        "summary",
        "Request latency from parse to reply, by protocol.",
    ),
    (
        "dm_open_connections",
        "gauge",
        "Open connections by protocol.",
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
    ("dm_replica_lag_ms", "gauge", "Measured replica lag."),
];

struct Inner {
    requests: BTreeMap<(&'static str, &'static str, u16), u64>,
    latency: BTreeMap<&'static str, hdrhistogram::Histogram<u64>>,
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
        if !inner.latency.contains_key(protocol) {
            // 1 µs to 60 s at 3 significant digits: valid bounds, cannot fail.
            if let Ok(h) = hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3) {
                inner.latency.insert(protocol, h);
            }
        }
        if let Some(h) = inner.latency.get_mut(protocol) {
            let _ = h.record((took.as_micros() as u64).clamp(1, 60_000_000));
        }
    }

    /// Counts a database error.
    pub fn db_error(&self) {
        self.inner.borrow_mut().db_errors += 1;
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
        for (proto, h) in &inner.latency {
            for q in [0.5, 0.9, 0.99, 0.999] {
                out.push(Sample {
                    name: "dm_request_latency_seconds",
                    labels: format!("shard=\"{shard}\",protocol=\"{proto}\",quantile=\"{q}\""),
                    value: h.value_at_quantile(q) as f64 / 1e6,
                });
            }
        }
        out.push(Sample {
            name: "dm_backend_errors_total",
            labels: format!("shard=\"{shard}\",backend=\"database\""),
            value: inner.db_errors as f64,
        });
        out
    }
}

/// Renders samples in the Prometheus text format, one group per family.
pub fn render(samples: &[Sample]) -> String {
    let mut out = String::new();
    for (name, kind, help) in FAMILIES {
        let group: Vec<&Sample> = samples.iter().filter(|s| s.name == *name).collect();
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
        assert!(text
            .contains("dm_request_latency_seconds{shard=\"1\",protocol=\"tcp\",quantile=\"0.5\"}"));
        let first_latency = text.find("dm_request_latency_seconds{").unwrap_or(0);
        let last_request = text.rfind("dm_requests_total{").unwrap_or(usize::MAX);
        assert!(last_request < first_latency, "families are contiguous");
    }
}
