//! What the console's overview and `GET /api/v1/cluster/nodes` show of a
//! node beyond its counts: latency percentiles and the cache hit ratio over
//! the last heartbeat, and the state of its backends.
//!
//! Each shard publishes its running totals into its gauges once a heartbeat
//! (`ShardGauges::publish`); shard 0 turns the node's totals
//! (`NodeState::totals`) into figures ([`FiguresTracker`]). Nothing here
//! runs on a request's path.

use crate::metrics::LATENCY_BUCKETS;
use serde::{Deserialize, Serialize};

/// A node's figures over its last heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeFigures {
    /// Median request latency, milliseconds (none answered: `None`).
    pub p50_ms: Option<f64>,
    /// 99th percentile request latency, milliseconds.
    pub p99_ms: Option<f64>,
    /// Cache lookups answered from L1 or L2, as a share of all lookups
    /// (none made: `None`).
    pub cache_hit_ratio: Option<f64>,
    /// Each backend as shard 0 saw it at the heartbeat.
    pub backends: Vec<BackendState>,
}

/// One backend of a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackendState {
    /// `redis`, `database:<game>` or `replica:<game>:<name>`.
    pub name: String,
    /// Answering (for Redis: and carrying invalidations; for a replica:
    /// within `max_replica_lag_ms`).
    pub up: bool,
    /// A replica's measured lag, seconds.
    pub lag_s: Option<f64>,
    /// Why it is down.
    pub error: Option<String>,
}

/// Running totals since start: requests per latency bucket and cache
/// lookups, of a shard or summed over the node.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Requests per bucket of [`LATENCY_BUCKETS`], then `+Inf`.
    pub latency: [u64; LATENCY_BUCKETS.len() + 1],
    /// Lookups answered from L1 or L2.
    pub cache_hits: u64,
    /// Lookups.
    pub cache_lookups: u64,
}

/// The node's totals at the previous heartbeat (shard 0's).
#[derive(Debug, Default)]
pub struct FiguresTracker {
    latency: [u64; LATENCY_BUCKETS.len() + 1],
    hits: u64,
    lookups: u64,
}

impl FiguresTracker {
    /// The figures since the previous call from the node's running totals
    /// now; `backends` as shard 0 sees them now.
    pub fn next(&mut self, totals: Totals, backends: Vec<BackendState>) -> NodeFigures {
        let Totals {
            latency,
            cache_hits: hits,
            cache_lookups: lookups,
        } = totals;
        let mut delta = [0u64; LATENCY_BUCKETS.len() + 1];
        for (i, d) in delta.iter_mut().enumerate() {
            *d = latency[i].saturating_sub(self.latency[i]);
        }
        let (new_hits, new_lookups) = (
            hits.saturating_sub(self.hits),
            lookups.saturating_sub(self.lookups),
        );
        (self.latency, self.hits, self.lookups) = (latency, hits, lookups);
        NodeFigures {
            p50_ms: quantile(&delta, 0.5).map(|s| round3(s * 1000.0)),
            p99_ms: quantile(&delta, 0.99).map(|s| round3(s * 1000.0)),
            cache_hit_ratio: (new_lookups > 0)
                .then(|| round3(new_hits.min(new_lookups) as f64 / new_lookups as f64)),
            backends,
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The `q` quantile, seconds, of requests counted per bucket, interpolated
/// linearly within its bucket as Prometheus's `histogram_quantile` does
/// (the `+Inf` bucket reports the last finite bound).
pub fn quantile(per_bucket: &[u64], q: f64) -> Option<f64> {
    let total: u64 = per_bucket.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, n) in per_bucket.iter().enumerate() {
        if *n > 0 && (below + n) as f64 >= rank {
            let Some(upper) = LATENCY_BUCKETS.get(i) else {
                return LATENCY_BUCKETS.last().copied();
            };
            let lower = if i == 0 { 0.0 } else { LATENCY_BUCKETS[i - 1] };
            let within = ((rank - below as f64) / *n as f64).clamp(0.0, 1.0);
            return Some(lower + (upper - lower) * within);
        }
        below += n;
    }
    LATENCY_BUCKETS.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_their_bucket_like_prometheus() {
        let mut b = [0u64; LATENCY_BUCKETS.len() + 1];
        assert_eq!(quantile(&b, 0.5), None);
        b[0] = 100; // 100 requests in (0, 100 µs]
        assert_eq!(quantile(&b, 0.5), Some(0.00005));
        b[3] = 100; // and 100 in (500 µs, 1 ms]
        let p99 = quantile(&b, 0.99).unwrap_or_default();
        assert!((p99 - 0.00099).abs() < 1e-9, "{p99}");
        b[LATENCY_BUCKETS.len()] = 1_000_000; // beyond 10 s
        assert_eq!(quantile(&b, 0.99), Some(10.0));
    }
}
