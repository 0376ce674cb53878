//! The per-shard L1 cache: a map bounded by entries and bytes, with a TTL per
//! entry and FIFO eviction (the oldest insertion goes first). Only its shard
//! touches it, so it needs no lock.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A cached answer: a value's JSON, or "does not exist".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    /// The value's JSON text.
    Value(Rc<str>),
    /// Known not to exist (negative caching).
    Missing,
}

struct Entry {
    value: Cached,
    inserted: Instant,
    expires: Instant,
    bytes: usize,
    /// Insertion number, to skip stale FIFO slots after a replace.
    seq: u64,
}

/// Counters of one L1.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct L1Stats {
    /// Lookups answered.
    pub hits: u64,
    /// Lookups not answered.
    pub misses: u64,
    /// Entries dropped to stay within bounds.
    pub evictions: u64,
    /// Entries dropped by invalidation.
    pub invalidations: u64,
}

/// One shard's L1.
pub struct L1 {
    map: HashMap<String, Entry>,
    order: VecDeque<(String, u64)>,
    max_entries: usize,
    max_bytes: usize,
    bytes: usize,
    seq: u64,
    /// Hits, misses, evictions and invalidations since start, for the
    /// stats route and `/metrics`.
    pub stats: L1Stats,
}

impl L1 {
    /// An empty cache with these bounds.
    pub fn new(max_entries: usize, max_bytes: usize) -> L1 {
        L1 {
            map: HashMap::new(),
            order: VecDeque::new(),
            max_entries: max_entries.max(1),
            max_bytes: max_bytes.max(1),
            bytes: 0,
            seq: 0,
            stats: L1Stats::default(),
        }
    }

    /// The live entry for `key`, if inserted no longer than `max_age` ago.
    pub fn get(&mut self, key: &str, now: Instant, max_age: Option<Duration>) -> Option<Cached> {
        let fresh = match self.map.get(key) {
            Some(e) => {
                e.expires > now && max_age.is_none_or(|age| now.duration_since(e.inserted) <= age)
            }
            None => false,
        };
        if !fresh {
            self.stats.misses += 1;
            return None;
        }
        self.stats.hits += 1;
        self.map.get(key).map(|e| e.value.clone())
    }

    /// Stores `value` for `ttl`, evicting the oldest entries past the bounds.
    pub fn insert(&mut self, key: String, value: Cached, ttl: Duration, now: Instant) {
        let bytes = key.len()
            + match &value {
                Cached::Value(v) => v.len(),
                Cached::Missing => 0,
            }
            + 64;
        if bytes > self.max_bytes {
            return;
        }
        self.remove_entry(&key);
        self.seq += 1;
        self.order.push_back((key.clone(), self.seq));
        self.bytes += bytes;
        self.map.insert(
            key,
            Entry {
                value,
                inserted: now,
                expires: now + ttl,
                bytes,
                seq: self.seq,
            },
        );
        while self.map.len() > self.max_entries || self.bytes > self.max_bytes {
            let Some((old, seq)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|e| e.seq == seq) {
                self.remove_entry(&old);
                self.stats.evictions += 1;
            }
        }
        if self.order.len() > 2 * self.max_entries + 16 {
            let map = &self.map;
            self.order
                .retain(|(k, s)| map.get(k).is_some_and(|e| e.seq == *s));
        }
    }

    fn remove_entry(&mut self, key: &str) -> bool {
        match self.map.remove(key) {
            Some(e) => {
                self.bytes -= e.bytes;
                true
            }
            None => false,
        }
    }

    /// Drops `key`.
    pub fn invalidate(&mut self, key: &str) {
        if self.remove_entry(key) {
            self.stats.invalidations += 1;
        }
    }

    /// Drops every key starting with `prefix` (all with an empty prefix).
    pub fn invalidate_prefix(&mut self, prefix: &str) {
        let keys: Vec<String> = self
            .map
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        for k in keys {
            self.invalidate(&k);
        }
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes accounted.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Cached {
        Cached::Value(Rc::from(s))
    }

    #[test]
    fn ttl_bounds_and_invalidation() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut c = L1::new(2, 1 << 20);
        c.insert("a".into(), v("1"), ttl, t0);
        c.insert("b".into(), Cached::Missing, ttl, t0);
        assert_eq!(c.get("a", t0, None), Some(v("1")));
        assert_eq!(c.get("b", t0, None), Some(Cached::Missing));
        c.insert("c".into(), v("3"), ttl, t0);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("a", t0, None), None, "oldest evicted");
        assert_eq!(c.stats.evictions, 1);
        assert_eq!(
            c.get("c", t0 + Duration::from_secs(11), None),
            None,
            "expired"
        );
        assert_eq!(
            c.get(
                "c",
                t0 + Duration::from_millis(200),
                Some(Duration::from_millis(100))
            ),
            None,
            "too old for the caller"
        );
        c.invalidate("c");
        assert_eq!(c.get("c", t0, None), None);
        c.insert("user:1".into(), v("x"), ttl, t0);
        c.insert("user:2".into(), v("y"), ttl, t0);
        c.invalidate_prefix("user:");
        assert!(c.is_empty());
    }

    #[test]
    fn byte_bound_and_replacement() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut c = L1::new(100, 300);
        c.insert("a".into(), v(&"x".repeat(100)), ttl, t0);
        c.insert("a".into(), v(&"y".repeat(100)), ttl, t0);
        assert_eq!(c.len(), 1);
        assert_eq!(c.bytes(), 1 + 100 + 64);
        c.insert("b".into(), v(&"z".repeat(100)), ttl, t0);
        assert_eq!(c.len(), 1, "two entries exceed 300 bytes");
        assert!(c.get("b", t0, None).is_some());
        c.insert("huge".into(), v(&"h".repeat(1000)), ttl, t0);
        assert!(
            c.get("huge", t0, None).is_none(),
            "larger than the whole cache: not stored"
        );
    }
}
