//! Per-IP request budget, kept by each shard for its own connections with no
//! cross-shard state: each shard grants `limit / shards` requests per minute
//! per IP (token bucket), so a client spread over all shards gets about
//! `limit` per minute, and one connection (which stays on one shard) gets its
//! shard's share.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// Most IPs tracked per shard; beyond it idle buckets are dropped.
const MAX_TRACKED: usize = 100_000;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// One shard's buckets.
pub struct RateLimiter {
    buckets: RefCell<HashMap<IpAddr, Bucket>>,
    shards: u32,
}

impl RateLimiter {
    /// A limiter for a node of `shards` shards.
    pub fn new(shards: usize) -> RateLimiter {
        RateLimiter {
            buckets: RefCell::new(HashMap::new()),
            shards: shards.max(1) as u32,
        }
    }

    /// Takes one request from `ip`'s budget of `per_min` per node; `Err`
    /// carries the seconds until the next request is allowed.
    pub fn check(&self, ip: IpAddr, per_min: u32, now: Instant) -> Result<(), u64> {
        let capacity = (per_min.div_ceil(self.shards)).max(1) as f64;
        let refill_per_s = capacity / 60.0;
        let mut buckets = self.buckets.borrow_mut();
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            buckets.retain(|_, b| now.duration_since(b.last).as_secs() < 60);
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            tokens: capacity,
            last: now,
        });
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * refill_per_s).min(capacity);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / refill_per_s).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn budget_is_split_over_shards_and_refills() {
        let r = RateLimiter::new(2);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let t0 = Instant::now();
        for _ in 0..60 {
            assert!(r.check(ip, 120, t0).is_ok());
        }
        let retry = r.check(ip, 120, t0).unwrap_err();
        assert_eq!(retry, 1);
        // Another IP has its own budget.
        assert!(r.check([10, 0, 0, 2].into(), 120, t0).is_ok());
        // One second refills one request (60 per minute per shard).
        assert!(r.check(ip, 120, t0 + Duration::from_secs(1)).is_ok());
        assert!(r.check(ip, 120, t0 + Duration::from_secs(1)).is_err());
    }
}
