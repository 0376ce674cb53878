//! A map with a hard cap whose entries carry an expiry: the bounded memory of
//! things a shard remembers per client, token or player (verified tokens,
//! revoked sessions, recent writers).
//!
//! The cap is never exceeded. When an insert finds the map full, entries
//! that have expired are dropped first, soonest first; if none has, the
//! entry expiring soonest is evicted and handed back to the caller, whose
//! fallback decides what forgetting it means (nothing for a cache; "send
//! everything to the primary" or "refuse maybe-revoked tokens" where
//! forgetting would be unsafe). An index ordered by expiry finds those
//! entries without scanning: each insert costs O(log n), and every entry is
//! dropped at most once, so the cost is amortised whatever the load. Only
//! its owner (one shard) touches a map: no lock.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// One entry: its value, its expiry, and the insertion number that names
/// its slot in the expiry index.
struct Slot<V, T> {
    value: V,
    expires: T,
    seq: u64,
}

/// An entry evicted before its expiry to stay within the cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evicted<K, V, T> {
    /// Its key.
    pub key: K,
    /// Its value.
    pub value: V,
    /// When it would have expired.
    pub expires: T,
}

/// A map of at most `cap` entries, each with an expiry of type `T`
/// (seconds, milliseconds or an `Instant`).
pub struct ExpiringMap<K, V, T> {
    entries: HashMap<K, Slot<V, T>>,
    /// (expiry, insertion number) → key: the entry to drop next comes first.
    by_expiry: BTreeMap<(T, u64), K>,
    seq: u64,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V, T: Ord + Copy> ExpiringMap<K, V, T> {
    /// An empty map that holds at most `cap` (at least 1) entries.
    pub fn new(cap: usize) -> ExpiringMap<K, V, T> {
        ExpiringMap {
            entries: HashMap::new(),
            by_expiry: BTreeMap::new(),
            seq: 0,
            cap: cap.max(1),
        }
    }

    /// The most entries the map holds.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Entries held now, expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `key` and its expiry, whether or not it has passed (the
    /// caller knows what "now" means for it).
    pub fn get<Q>(&self, key: &Q) -> Option<(&V, T)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key).map(|s| (&s.value, s.expires))
    }

    /// Stores `value` for `key` until `expires`, replacing what `key` held.
    /// At the cap, entries expired at `now` go first; if none has, the one
    /// expiring soonest is evicted and returned.
    pub fn insert(&mut self, key: K, value: V, expires: T, now: T) -> Option<Evicted<K, V, T>> {
        self.seq += 1;
        let seq = self.seq;
        if let Some(slot) = self.entries.get_mut(&key) {
            self.by_expiry.remove(&(slot.expires, slot.seq));
            *slot = Slot {
                value,
                expires,
                seq,
            };
            self.by_expiry.insert((expires, seq), key);
            return None;
        }
        let mut evicted = None;
        if self.entries.len() >= self.cap {
            self.drop_expired(now);
            if self.entries.len() >= self.cap {
                evicted = self.pop_soonest();
            }
        }
        self.by_expiry.insert((expires, seq), key.clone());
        self.entries.insert(
            key,
            Slot {
                value,
                expires,
                seq,
            },
        );
        evicted
    }

    /// Forgets `key`.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = self.entries.remove(key)?;
        self.by_expiry.remove(&(slot.expires, slot.seq));
        Some(slot.value)
    }

    /// Drops every entry whose expiry is at or before `now`.
    pub fn drop_expired(&mut self, now: T) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.entries.remove(&key);
        }
    }

    fn pop_soonest(&mut self) -> Option<Evicted<K, V, T>> {
        let (_, key) = self.by_expiry.pop_first()?;
        let slot = self.entries.remove(&key)?;
        Some(Evicted {
            key,
            value: slot.value,
            expires: slot.expires,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_holds_more_than_the_cap() {
        let mut m = ExpiringMap::new(100);
        for i in 0..10_000u64 {
            m.insert(i, (), 1_000_000 + i as i64, 0);
            assert!(m.len() <= 100);
            assert_eq!(m.by_expiry.len(), m.len());
        }
        assert_eq!(m.len(), 100);
        // The latest-expiring entries stayed.
        assert!(m.get(&9_999).is_some());
        assert!(m.get(&9_899).is_none());
    }

    #[test]
    fn expired_entries_make_room_before_live_ones_are_evicted() {
        let mut m = ExpiringMap::new(3);
        m.insert("a", 1, 10, 0);
        m.insert("b", 2, 50, 0);
        m.insert("c", 3, 20, 0);
        // At time 30 "a" and "c" have expired: both go, nothing live is evicted.
        assert_eq!(m.insert("d", 4, 100, 30), None);
        assert_eq!(m.len(), 2);
        assert!(m.get("a").is_none() && m.get("c").is_none());
        m.insert("e", 5, 60, 30);
        // Full of live entries: the soonest-expiring one ("b") is handed back.
        assert_eq!(
            m.insert("f", 6, 70, 30),
            Some(Evicted {
                key: "b",
                value: 2,
                expires: 50
            })
        );
        assert_eq!(m.len(), 3);
        assert_eq!(m.get("f"), Some((&6, 70)));
    }

    #[test]
    fn replacing_moves_the_expiry_and_keeps_one_index_slot() {
        let mut m = ExpiringMap::new(2);
        m.insert("a", 1, 10, 0);
        m.insert("a", 2, 99, 0);
        assert_eq!(m.len(), 1);
        assert_eq!(m.by_expiry.len(), 1);
        assert_eq!(m.get("a"), Some((&2, 99)));
        m.insert("b", 3, 20, 0);
        // "a" now expires last, so "b" is the one evicted.
        assert_eq!(m.insert("c", 4, 30, 0).map(|e| e.key), Some("b"));
        assert_eq!(m.remove("a"), Some(2));
        assert_eq!((m.len(), m.by_expiry.len()), (1, 1));
        m.drop_expired(30);
        assert!(m.is_empty() && m.by_expiry.is_empty());
    }
}
