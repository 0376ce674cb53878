//! What a run measured and how it is shown: latency percentiles from an
//! hdrhistogram, errors by kind, a Markdown-style table beside the
//! original's single-node target, and JSON.

use crate::server_cost::ServerWindow;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// The original implementation's single-node target (SPEC §10).
pub const ORIGINAL_TARGET_QPS: f64 = 3000.0;

/// Counts of one load thread (merged into one for the report).
pub struct Tally {
    /// Latency in microseconds, 1 µs to 60 s.
    pub latency: Histogram<u64>,
    /// Successful responses.
    pub ok: u64,
    /// Failures by kind (`http_503`, `tcp_0xe006`, `connect`, `timeout`, ...).
    pub errors: BTreeMap<String, u64>,
    /// With `--reconnect`: what ended a connection that was opened again
    /// (`tcp_0xe006`: the server drained it, as documented; `closed`: it
    /// went away without a word) — the unanswered requests were sent again.
    pub reconnects: BTreeMap<String, u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Tally {
        Tally {
            latency: Histogram::new_with_bounds(1, 60_000_000, 3)
                .unwrap_or_else(|_| Histogram::new(2).unwrap_or_else(|_| std::process::abort())),
            ok: 0,
            errors: BTreeMap::new(),
            reconnects: BTreeMap::new(),
        }
    }

    /// Records one answered request.
    pub fn record(&mut self, took: Duration, error: Option<String>) {
        let _ = self
            .latency
            .record((took.as_micros() as u64).clamp(1, 60_000_000));
        match error {
            None => self.ok += 1,
            Some(kind) => *self.errors.entry(kind).or_insert(0) += 1,
        }
    }

    /// Records a failure without a latency (connection lost, refused).
    pub fn fail(&mut self, kind: &str) {
        *self.errors.entry(kind.to_string()).or_insert(0) += 1;
    }

    /// Records a connection opened again after `kind` ended it.
    pub fn reconnected(&mut self, kind: &str) {
        *self.reconnects.entry(kind.to_string()).or_insert(0) += 1;
    }

    /// Adds another tally.
    pub fn merge(&mut self, other: &Tally) {
        let _ = self.latency.add(&other.latency);
        self.ok += other.ok;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &other.reconnects {
            *self.reconnects.entry(k.clone()).or_insert(0) += v;
        }
    }

    /// Requests answered, successful or not.
    pub fn total(&self) -> u64 {
        self.ok + self.errors.values().sum::<u64>()
    }
}

/// The result of one scenario run.
pub struct Summary {
    /// Scenario label.
    pub label: String,
    /// Measured (after warm-up) duration.
    pub elapsed: Duration,
    /// Counts.
    pub tally: Tally,
    /// Connections.
    pub connections: usize,
    /// Pipeline depth.
    pub pipeline: usize,
    /// Open-loop target rate, if any.
    pub rate: Option<f64>,
    /// The server's cache during the measured window (from `/metrics`).
    pub cache: Option<CacheWindow>,
    /// With `--server-pid`: the server process's CPU time and context
    /// switches during the measured window (from `/proc`).
    pub server: Option<ServerWindow>,
    /// `ws`, `idle-ws`: sockets, credits, deliveries, the server's memory.
    /// (The latency and `ok` of a `ws` run are the notifications'
    /// delivery; of `idle-ws`, a socket's time from connecting to `ready`.)
    pub realtime: Option<crate::realtime::Report>,
}

/// Cache lookups of the measured window: the difference of the server's
/// `dm_cache_{hits,misses}_total` counters between its start and its end.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CacheWindow {
    /// L1 hits.
    pub l1_hits: f64,
    /// L1 misses.
    pub l1_misses: f64,
    /// L2 hits.
    pub l2_hits: f64,
    /// L2 misses.
    pub l2_misses: f64,
}

impl CacheWindow {
    /// Sums the cache counters of a Prometheus text page (all shards).
    pub fn from_metrics(text: &str) -> CacheWindow {
        let mut c = CacheWindow::default();
        for line in text.lines() {
            let Some((name_labels, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(v) = value.parse::<f64>() else {
                continue;
            };
            let l1 = name_labels.contains("level=\"l1\"");
            let l2 = name_labels.contains("level=\"l2\"");
            match name_labels.split('{').next() {
                Some("dm_cache_hits_total") if l1 => c.l1_hits += v,
                Some("dm_cache_hits_total") if l2 => c.l2_hits += v,
                Some("dm_cache_misses_total") if l1 => c.l1_misses += v,
                Some("dm_cache_misses_total") if l2 => c.l2_misses += v,
                _ => {}
            }
        }
        c
    }

    /// What happened between `self` (start) and `end`; `None` when a
    /// counter went down: the server restarted, or (behind a balancer)
    /// another node answered the second scrape.
    pub fn until(&self, end: &CacheWindow) -> Option<CacheWindow> {
        let w = CacheWindow {
            l1_hits: end.l1_hits - self.l1_hits,
            l1_misses: end.l1_misses - self.l1_misses,
            l2_hits: end.l2_hits - self.l2_hits,
            l2_misses: end.l2_misses - self.l2_misses,
        };
        (w.l1_hits >= 0.0 && w.l1_misses >= 0.0 && w.l2_hits >= 0.0 && w.l2_misses >= 0.0)
            .then_some(w)
    }

    fn ratio(hits: f64, misses: f64) -> Option<f64> {
        (hits + misses > 0.0).then(|| hits / (hits + misses))
    }

    /// As JSON: lookups and hit ratio per level.
    pub fn to_json(self) -> Value {
        json!({
            "l1_lookups": self.l1_hits + self.l1_misses,
            "l1_hit_ratio": CacheWindow::ratio(self.l1_hits, self.l1_misses),
            "l2_lookups": self.l2_hits + self.l2_misses,
            "l2_hit_ratio": CacheWindow::ratio(self.l2_hits, self.l2_misses),
        })
    }

    /// One line beside the table.
    pub fn line(&self) -> String {
        let pct = |r: Option<f64>| r.map_or("—".to_string(), |r| format!("{:.1} %", r * 100.0));
        format!(
            "server cache during the run: L1 hit ratio {} of {:.0} lookups, L2 {} of {:.0}",
            pct(CacheWindow::ratio(self.l1_hits, self.l1_misses)),
            self.l1_hits + self.l1_misses,
            pct(CacheWindow::ratio(self.l2_hits, self.l2_misses)),
            self.l2_hits + self.l2_misses
        )
    }
}

impl Summary {
    /// Successful answers per second: a refusal (429, 503, an Error
    /// frame) is not throughput.
    pub fn qps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs <= 0.0 {
            0.0
        } else {
            self.tally.ok as f64 / secs
        }
    }

    /// Failed requests (error answers and lost connections) over all.
    pub fn error_ratio(&self) -> f64 {
        let total = self.tally.total();
        if total == 0 {
            0.0
        } else {
            (total - self.tally.ok) as f64 / total as f64
        }
    }

    /// What to tell the user when more than `max_ratio` of the requests
    /// failed: how many, the commonest kinds, and the likely cause of 429s.
    pub fn failure_warning(&self, max_ratio: f64) -> Option<String> {
        if self.tally.total() > 0 && self.error_ratio() <= max_ratio {
            return None;
        }
        let mut kinds: Vec<(&String, &u64)> = self.tally.errors.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1));
        let kinds: Vec<String> = kinds
            .iter()
            .take(3)
            .map(|(k, v)| format!("{k} × {v}"))
            .collect();
        let mut text = format!(
            "{} of {} requests failed ({:.1} %, more than {:.1} %): {}",
            self.tally.total() - self.tally.ok,
            self.tally.total(),
            self.error_ratio() * 100.0,
            max_ratio * 100.0,
            if kinds.is_empty() {
                "no request was answered".to_string()
            } else {
                kinds.join(", ")
            }
        );
        if self.tally.errors.contains_key("http_429") || self.tally.errors.contains_key("tcp_0x1ad")
        {
            text.push_str(
                "; 429 is the server's per-address rate limit (auth.rate_limit_per_ip_per_min, \
                 1000 a minute by default): for a load test from one address, start the server \
                 with e.g. DM_AUTH_RATE_LIMIT_PER_IP_PER_MIN=1000000000",
            );
        }
        Some(text)
    }

    /// Requests answered in the measured window, successfully or not (the
    /// ones with a latency): what the server's spending is divided by.
    pub fn answered(&self) -> u64 {
        self.tally.latency.len()
    }

    /// The server's CPU time per answered request, in microseconds.
    pub fn server_cpu_us_per_req(&self) -> Option<f64> {
        let (server, n) = (self.server.as_ref()?, self.answered());
        (n > 0).then(|| server.cpu_seconds * 1e6 / n as f64)
    }

    /// The server threads' context switches per answered request.
    pub fn ctx_switches_per_req(&self) -> Option<f64> {
        let (server, n) = (self.server.as_ref()?, self.answered());
        (n > 0).then(|| server.context_switches as f64 / n as f64)
    }

    /// The line about the server's spending beside the table, if measured.
    pub fn server_line(&self) -> Option<String> {
        let server = self.server.as_ref()?;
        Some(server.line(self.answered(), self.elapsed.as_secs_f64()))
    }

    fn ms(&self, q: f64) -> f64 {
        self.tally.latency.value_at_quantile(q) as f64 / 1000.0
    }

    /// The summary as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "scenario": self.label,
            "connections": self.connections,
            "pipeline": self.pipeline,
            "rate": self.rate,
            "duration_s": self.elapsed.as_secs_f64(),
            "requests": self.tally.total(),
            "ok": self.tally.ok,
            "errors": self.tally.errors,
            "reconnects": self.tally.reconnects,
            "qps": self.qps(),
            "error_ratio": self.error_ratio(),
            "latency_ms": {
                "p50": self.ms(0.5),
                "p90": self.ms(0.9),
                "p99": self.ms(0.99),
                "p99.9": self.ms(0.999),
                "max": self.tally.latency.max() as f64 / 1000.0,
            },
            "vs_original_target": self.qps() / ORIGINAL_TARGET_QPS,
            "cache": self.cache.map(|c| c.to_json()),
            "server_cpu_us_per_req": self.server_cpu_us_per_req(),
            "ctx_switches_per_req": self.ctx_switches_per_req(),
            "server": self.server.map(|s| json!({
                "pid": s.pid,
                "cpu_s": s.cpu_seconds,
                "context_switches": s.context_switches,
                "threads": s.threads,
            })),
            "ws": self.realtime.as_ref().map(crate::realtime::Report::to_json),
        })
    }

    /// One Markdown table row.
    pub fn row(&self) -> String {
        let errors: u64 = self.tally.errors.values().sum();
        format!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {:.1}x |",
            self.label,
            self.connections,
            self.rate
                .map(|r| format!("open {r:.0}/s"))
                .unwrap_or_else(|| format!("closed, pipeline {}", self.pipeline)),
            self.qps(),
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.ms(0.999),
            self.tally.latency.max() as f64 / 1000.0,
            errors,
            self.qps() / ORIGINAL_TARGET_QPS
        )
    }
}

/// The table header matching [`Summary::row`].
pub fn header() -> String {
    "| scenario | conns | mode | QPS | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | vs 3,000 QPS target |\n|---|---|---|---|---|---|---|---|---|---|---|".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_counters_are_summed_over_shards_and_differenced() {
        let start = CacheWindow::from_metrics(
            "# TYPE dm_cache_hits_total counter\n\
             dm_cache_hits_total{shard=\"0\",level=\"l1\"} 10\n\
             dm_cache_hits_total{shard=\"1\",level=\"l1\"} 5\n\
             dm_cache_misses_total{shard=\"0\",level=\"l1\"} 1\n\
             dm_cache_hits_total{shard=\"0\",level=\"l2\"} 2\n",
        );
        assert_eq!(start.l1_hits, 15.0);
        let end = CacheWindow::from_metrics(
            "dm_cache_hits_total{shard=\"0\",level=\"l1\"} 100\n\
             dm_cache_hits_total{shard=\"1\",level=\"l1\"} 95\n\
             dm_cache_misses_total{shard=\"0\",level=\"l1\"} 21\n\
             dm_cache_hits_total{shard=\"0\",level=\"l2\"} 2\n",
        );
        let w = start.until(&end).expect("counters only grew");
        assert_eq!(
            end.until(&start),
            None,
            "a counter that went down is no window"
        );
        assert_eq!((w.l1_hits, w.l1_misses), (180.0, 20.0));
        assert_eq!(w.to_json()["l1_hit_ratio"], 0.9);
        assert!(w.to_json()["l2_hit_ratio"].is_null());
        assert!(
            w.line().contains("L1 hit ratio 90.0 % of 200 lookups"),
            "{}",
            w.line()
        );
    }

    #[test]
    fn percentiles_qps_and_errors() {
        let mut a = Tally::new();
        for us in 1..=1000u64 {
            a.record(Duration::from_micros(us), None);
        }
        let mut b = Tally::new();
        b.record(Duration::from_millis(50), Some("http_503".into()));
        b.fail("connect");
        b.reconnected("tcp_0xe006");
        a.merge(&b);
        assert_eq!(a.ok, 1000);
        assert_eq!(a.total(), 1002);
        let s = Summary {
            label: "health".into(),
            elapsed: Duration::from_secs(2),
            tally: a,
            connections: 4,
            pipeline: 1,
            rate: None,
            cache: None,
            server: None,
            realtime: None,
        };
        // Only the 1000 successes count as throughput.
        assert!((s.qps() - 500.0).abs() < 1e-9);
        assert!((s.error_ratio() - 2.0 / 1002.0).abs() < 1e-12);
        assert!(s.failure_warning(0.01).is_none());
        let warning = s.failure_warning(0.001).expect("0.2 % > 0.1 %");
        assert!(
            warning.starts_with("2 of 1002 requests failed"),
            "{warning}"
        );
        let j = s.to_json();
        assert_eq!(j["requests"], 1002);
        assert_eq!(j["errors"]["http_503"], 1);
        assert_eq!(j["errors"]["connect"], 1);
        assert_eq!(j["reconnects"]["tcp_0xe006"], 1);
        // No --server-pid: the figures are null, not zero.
        assert!(j["server_cpu_us_per_req"].is_null());
        assert!(j["ctx_switches_per_req"].is_null());
        assert!(j["server"].is_null());
        assert!(s.server_line().is_none());
        let p50 = j["latency_ms"]["p50"].as_f64().unwrap_or(0.0);
        assert!((0.49..=0.51).contains(&p50), "{p50}");
        assert!((j["latency_ms"]["max"].as_f64().unwrap_or(0.0) - 50.0).abs() < 0.1);
        let row = s.row();
        assert!(
            row.starts_with("| health | 4 | closed, pipeline 1 | 500 |"),
            "{row}"
        );
        assert!(row.ends_with("| 2 | 0.2x |"), "{row}");
        assert_eq!(header().lines().count(), 2);
    }

    #[test]
    fn the_servers_spending_is_divided_by_the_answered_requests() {
        let mut tally = Tally::new();
        for _ in 0..990 {
            tally.record(Duration::from_micros(100), None);
        }
        for _ in 0..10 {
            tally.record(Duration::from_micros(100), Some("http_503".into()));
        }
        // A lost connection has no answer: it is not divided by.
        tally.fail("connect");
        let mut s = Summary {
            label: "mixed".into(),
            elapsed: Duration::from_secs(1),
            tally,
            connections: 4,
            pipeline: 1,
            rate: None,
            cache: None,
            server: Some(ServerWindow {
                pid: 42,
                cpu_seconds: 0.05,
                context_switches: 2500,
                threads: 12,
            }),
            realtime: None,
        };
        assert_eq!(s.answered(), 1000);
        let j = s.to_json();
        let cpu = j["server_cpu_us_per_req"].as_f64().unwrap_or(0.0);
        assert!((cpu - 50.0).abs() < 1e-9, "{cpu}");
        assert_eq!(j["ctx_switches_per_req"], 2.5);
        assert_eq!(j["server"]["pid"], 42);
        assert_eq!(j["server"]["context_switches"], 2500);
        assert!(s.server_line().is_some_and(|l| l.contains("50.0 µs CPU")));
        // Nothing answered: no figure per request (not a division by zero).
        s.tally = Tally::new();
        assert_eq!(s.server_cpu_us_per_req(), None);
        assert!(s.to_json()["ctx_switches_per_req"].is_null());
    }
}
