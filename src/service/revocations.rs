//! A shard's set of revoked sessions. Access tokens are stateless JWTs, so a
//! logout takes effect by refusing every token of the session until the
//! tokens would have expired anyway. Each shard holds its own copy, filled at
//! start-up from the databases and kept current by [`crate::mesh`] messages.
//!
//! Memory is bounded, and a revoked token is never let back in:
//! - The exact set holds at most [`CAPACITY`] sessions, each with the time
//!   its last token expires (`until`). Entries past `until` make room first
//!   when the set is full (a token of theirs is refused by its own expiry);
//!   until then they stay, which also keeps refusing a TCP connection bound to
//!   such a session.
//! - When the set is full of sessions whose tokens still live, the one that
//!   expires soonest moves to the overflow: two fixed-size Bloom filters
//!   ([`OVERFLOW_BITS`] bits each, allocated only when first needed). A
//!   Bloom filter never forgets what it was given, so a revoked token stays
//!   refused; what it costs is false positives — a token whose session was
//!   never revoked may be refused (401; logging in again gives a new
//!   session, which is refused only as rarely). With 2^23 bits and 7 hashes
//!   that is under 1 % of innocent sessions while a filter holds fewer than
//!   about 870,000 sessions, rising as more overflow — refusing more, never
//!   fewer. Each filter takes sessions for about one token lifetime and is
//!   cleared once every session in it has expired, so the overflow empties
//!   itself when revocations calm down.
//!
//! Every operation costs O(log n) in the exact set plus a few bit probes;
//! nothing scans.

use crate::expiring::ExpiringMap;
use std::cell::RefCell;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

/// Most sessions the exact set holds per shard (about 150 bytes each).
pub const CAPACITY: usize = 100_000;

/// Bits of each of the two overflow filters (1 MiB each).
pub const OVERFLOW_BITS: usize = 1 << 23;

/// Bit positions set per session in a filter.
const HASHES: u64 = 7;

/// Revoked session ids with the time (Unix s) their tokens expire.
pub struct RevocationList {
    inner: RefCell<Inner>,
}

struct Inner {
    exact: ExpiringMap<Rc<str>, (), i64>,
    overflow: Overflow,
}

impl RevocationList {
    /// A list holding `sessions` until `until_s`.
    pub fn new(sessions: Vec<String>, until_s: i64) -> RevocationList {
        let list = RevocationList::with_capacity(CAPACITY, OVERFLOW_BITS);
        list.revoke(sessions, until_s);
        list
    }

    /// An empty list with an exact set of `capacity` sessions and overflow
    /// filters of `overflow_bits` bits (rounded up to a multiple of 64).
    pub fn with_capacity(capacity: usize, overflow_bits: usize) -> RevocationList {
        RevocationList {
            inner: RefCell::new(Inner {
                exact: ExpiringMap::new(capacity),
                overflow: Overflow::new(overflow_bits),
            }),
        }
    }

    /// Refuses `sessions` until `until_s` (Unix seconds).
    pub fn revoke(&self, sessions: Vec<String>, until_s: i64) {
        let now = crate::clock::now_s();
        let mut inner = self.inner.borrow_mut();
        let Inner { exact, overflow } = &mut *inner;
        for s in sessions {
            let until = match exact.get(s.as_str()) {
                Some((_, held)) => held.max(until_s),
                None => until_s,
            };
            if let Some(e) = exact.insert(Rc::from(s), (), until, now) {
                overflow.add(&e.key, e.expires, now);
            }
        }
    }

    /// Whether tokens of `session_id` are refused: it is held in the exact
    /// set, or one of the overflow filters may hold it.
    pub fn is_revoked(&self, session_id: &str) -> bool {
        let inner = self.inner.borrow();
        if inner.exact.get(session_id).is_some() {
            return true;
        }
        inner.overflow.is_used() && inner.overflow.may_hold(session_id, crate::clock::now_s())
    }

    /// Whether the exact set holds `session_id` (no false positives): a
    /// revocation read again from the database is sent to the other shards
    /// unless this says it is known, so a filter's false positive cannot
    /// keep a new revocation from them.
    pub fn holds(&self, session_id: &str) -> bool {
        self.inner.borrow().exact.get(session_id).is_some()
    }

    /// Sessions in the exact set.
    pub fn len(&self) -> usize {
        self.inner.borrow().exact.len()
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        let inner = self.inner.borrow();
        inner.exact.is_empty() && !inner.overflow.is_used()
    }
}

/// Two Bloom filters taking turns: sessions go into the current one; the
/// other is cleared once everything in it has expired, and then takes over.
struct Overflow {
    filters: [Filter; 2],
    current: usize,
    bits: usize,
}

/// One Bloom filter and the latest expiry of the sessions it holds.
#[derive(Default)]
struct Filter {
    /// Empty until the first session arrives.
    words: Vec<u64>,
    until: i64,
    sessions: usize,
}

impl Filter {
    fn clear(&mut self) {
        // Released, not zeroed: an idle overflow costs no memory.
        *self = Filter::default();
    }
}

impl Overflow {
    fn new(bits: usize) -> Overflow {
        Overflow {
            filters: [Filter::default(), Filter::default()],
            current: 0,
            bits: bits.div_ceil(64).max(1) * 64,
        }
    }

    fn is_used(&self) -> bool {
        self.filters.iter().any(|f| f.sessions > 0)
    }

    /// The bit positions of `session`.
    fn positions(&self, session: &str) -> impl Iterator<Item = usize> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        session.hash(&mut h);
        let hash = h.finish();
        let (a, b) = (hash & 0xffff_ffff, (hash >> 32) | 1);
        let bits = self.bits as u64;
        (0..HASHES).map(move |i| (a.wrapping_add(i.wrapping_mul(b)) % bits) as usize)
    }

    fn add(&mut self, session: &str, until: i64, now: i64) {
        for f in &mut self.filters {
            if f.sessions > 0 && f.until <= now {
                f.clear();
            }
        }
        let other = 1 - self.current;
        if self.filters[other].sessions == 0 && self.filters[self.current].sessions > 0 {
            self.current = other;
        }
        let positions: Vec<usize> = self.positions(session).collect();
        let words = self.bits / 64;
        let f = &mut self.filters[self.current];
        if f.words.is_empty() {
            f.words = vec![0; words];
        }
        for p in positions {
            f.words[p / 64] |= 1 << (p % 64);
        }
        f.until = f.until.max(until);
        f.sessions += 1;
    }

    fn may_hold(&self, session: &str, now: i64) -> bool {
        self.filters.iter().any(|f| {
            f.sessions > 0
                && f.until > now
                && self
                    .positions(session)
                    .all(|p| f.words[p / 64] & (1 << (p % 64)) != 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("session-{i:08}")).collect()
    }

    #[test]
    fn the_exact_set_never_passes_its_cap_and_forgets_no_live_revocation() {
        let list = RevocationList::with_capacity(100, 1 << 16);
        let now = crate::clock::now_s();
        // 1,000 sessions whose tokens all still live: 900 overflow.
        for (i, s) in ids(0..1000).into_iter().enumerate() {
            list.revoke(vec![s], now + 100 + i as i64);
            assert!(list.len() <= 100);
        }
        assert_eq!(list.len(), 100);
        for s in ids(0..1000) {
            assert!(list.is_revoked(&s), "{s} was let back in");
        }
        // The exact set kept the latest-expiring ones.
        assert!(list.holds("session-00000999") && !list.holds("session-00000000"));
    }

    #[test]
    fn expired_revocations_make_room_without_overflowing() {
        let list = RevocationList::with_capacity(100, 1 << 16);
        let now = crate::clock::now_s();
        list.revoke(ids(0..100), now - 1);
        list.revoke(ids(100..200), now + 900);
        assert_eq!(list.len(), 100);
        assert!(!list.inner.borrow().overflow.is_used());
        assert!(ids(100..200).iter().all(|s| list.is_revoked(s)));
        assert!(!list.is_revoked("session-00000000"));
    }

    #[test]
    fn the_overflow_refuses_few_innocent_sessions_and_clears_once_expired() {
        let list = RevocationList::with_capacity(10, 1 << 20);
        let now = crate::clock::now_s();
        list.revoke(ids(0..10_010), now + 900);
        assert!(ids(0..10_010).iter().all(|s| list.is_revoked(s)));
        let innocent = ids(20_000..30_000);
        let refused = innocent.iter().filter(|s| list.is_revoked(s)).count();
        // 10,000 sessions in 2^20 bits with 7 hashes: about 1 in 100,000.
        assert!(
            refused < 10,
            "{refused} of 10,000 innocent sessions refused"
        );

        // Once everything in the overflow has expired it is released when
        // the next session overflows, and refuses nothing old any more.
        let mut o = Overflow::new(1 << 20);
        for s in ids(0..100) {
            o.add(&s, now + 10, now);
        }
        assert!(o.may_hold("session-00000007", now));
        assert!(!o.may_hold("session-00000007", now + 10), "expired");
        o.add("late", now + 500, now + 11);
        assert_eq!(o.filters.iter().map(|f| f.sessions).sum::<usize>(), 1);
        assert!(!o.may_hold("session-00000007", now + 11));
        assert!(o.may_hold("late", now + 11));
    }

    #[test]
    fn filters_take_turns_so_a_busy_overflow_still_empties() {
        let mut o = Overflow::new(1 << 16);
        let t0 = 1_000_000;
        // Sessions overflow every second, each living 100 s.
        for t in 0..1000 {
            o.add(&format!("s{t}"), t0 + t + 100, t0 + t);
            for f in &o.filters {
                // No filter ever holds a session that expired long ago.
                assert!(f.sessions == 0 || f.until > t0 + t);
                assert!(f.sessions <= 100, "{}", f.sessions);
            }
        }
        assert!(o.may_hold("s999", t0 + 999));
        assert!(!o.may_hold("s500", t0 + 999), "its filter was cleared");
    }
}
