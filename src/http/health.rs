//! The `GET /health` body, rendered at most once per millisecond per shard.
//!
//! `/health` is what load balancers poll and what benchmarks hammer; its only
//! changing fields are the millisecond timestamp and the uptime, so a shard
//! keeps the last rendering and reuses it until the clock moves on.

use crate::clock;
use std::cell::RefCell;
use std::time::Instant;

/// One shard's last `/health` body and the millisecond it was rendered for.
#[derive(Debug, Default)]
pub struct HealthBody {
    last: RefCell<(i64, Vec<u8>)>,
}

impl HealthBody {
    /// The body for now: `{"node_id":..,"shard":..,"status":"ok","timestamp":..,
    /// "uptime_s":..,"version":..}` (keys in the order serde_json sorts them).
    pub fn current(&self, node_id: &str, shard: usize, started: Instant) -> Vec<u8> {
        let now = clock::now_ms();
        let mut last = self.last.borrow_mut();
        if last.0 != now || last.1.is_empty() {
            let body = serde_json::json!({
                "status": "ok",
                "timestamp": clock::rfc3339_ms(now),
                "uptime_s": started.elapsed().as_secs(),
                "version": env!("CARGO_PKG_VERSION"),
                "node_id": node_id,
                "shard": shard,
            });
            *last = (now, body.to_string().into_bytes());
        }
        last.1.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_field_and_follows_the_clock() {
        let health = HealthBody::default();
        let started = Instant::now();
        let first: serde_json::Value =
            serde_json::from_slice(&health.current("node-\"1\"", 3, started)).expect("json");
        assert_eq!(first["status"], "ok");
        assert_eq!(first["node_id"], "node-\"1\"");
        assert_eq!(first["shard"], 3);
        assert_eq!(first["version"], env!("CARGO_PKG_VERSION"));
        assert!(first["uptime_s"].is_u64());
        std::thread::sleep(std::time::Duration::from_millis(3));
        let later: serde_json::Value =
            serde_json::from_slice(&health.current("node-\"1\"", 3, started)).expect("json");
        assert_ne!(first["timestamp"], later["timestamp"]);
    }
}
