//! Per-node budgets — requests per client IP, failed logins and handshakes
//! per IP and per username — with no lock shared between cores.
//!
//! Every budget has one owner shard, chosen by hashing its key, which keeps
//! its token bucket; no other shard ever touches that bucket. A request on
//! the owner takes its token directly. A request on another shard spends a
//! *lease*: a handful of tokens it took from the owner over the shard mesh
//! (one round trip per lease, not per request), which expires unused after
//! [`LEASE_TTL`]. Tokens are only ever created by the owner's bucket, so a
//! client spread over every shard gets at most the node's budget, never a
//! budget per shard; an expired lease only ever errs on the side of less.
//!
//! Failure budgets are consulted once per login or handshake — already an
//! expensive operation — so they ask the owner directly each time.
//!
//! Every map here is bounded: a bucket that has refilled to full is the same
//! as no bucket, so it can be dropped without changing any answer; when a
//! map reaches its cap it first drops those, then (if every client is active
//! at once) arbitrary entries, down to half the cap, so the work is
//! amortised and the cap is never exceeded.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most budgets one shard keeps, for keys it owns and for leases alike.
pub const MAX_TRACKED: usize = 100_000;
/// How long leased tokens stay usable.
pub const LEASE_TTL: Duration = Duration::from_secs(2);

/// What a budget counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// Requests of one client address (`auth.rate_limit_per_ip_per_min`).
    Requests(IpAddr),
    /// Failed logins and handshakes of one client address.
    FailuresOfIp(IpAddr),
    /// Failed logins of one account, `<game>:<username>`, from addresses
    /// that have not logged into it recently.
    FailuresOfUser(String),
    /// Failed logins of one account from any address, the known ones
    /// included (`auth.failed_logins_per_user_cap_per_min`): the cap that
    /// still holds where [`LimitKey::FailuresOfUser`] does not.
    FailuresOfUserOverall(String),
}

impl LimitKey {
    /// The shard (of `shards`) that owns this budget.
    pub fn owner(&self, shards: usize) -> usize {
        // SipHash with fixed keys: the same owner on every shard of the node.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut h);
        (h.finish() % shards.max(1) as u64) as usize
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// The budget it was last used with (budgets are hot-reloaded).
    per_min: u32,
}

impl Bucket {
    fn refill(&mut self, per_min: u32, now: Instant) {
        let capacity = per_min.max(1) as f64;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * capacity / 60.0).min(capacity);
        self.last = now;
    }

    fn is_full(&self, now: Instant) -> bool {
        let mut b = *self;
        b.refill(self.per_min, now);
        b.tokens >= self.per_min.max(1) as f64
    }

    /// Seconds until one token is back.
    fn retry_after(&self, per_min: u32) -> u64 {
        let per_s = per_min.max(1) as f64 / 60.0;
        ((1.0 - self.tokens) / per_s).ceil().max(1.0) as u64
    }
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    tokens: u32,
    expires: Instant,
}

/// What a failure-budget message asks of the budget's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetOp {
    /// Take one unit before a credential is checked (429 when there is none).
    Take,
    /// Give a taken unit back: the attempt was not a wrong guess.
    GiveBack,
}

/// The answer of an owner to a lease request: tokens granted, or the
/// seconds until the budget has one again.
pub type Grant = Result<u32, u64>;

/// One shard's part of the node's budgets.
pub struct RateLimiter {
    shard: usize,
    shards: usize,
    owned: RefCell<HashMap<LimitKey, Bucket>>,
    leases: RefCell<HashMap<LimitKey, Lease>>,
    /// Addresses that logged into an account, until when they count as
    /// known (kept by the owner of the account's [`LimitKey::FailuresOfUser`]).
    known: RefCell<HashMap<(String, IpAddr), Instant>>,
}

/// What a shard must do to let a request through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Refused; retry after this many seconds.
    Refuse(u64),
    /// Ask `owner` for a lease of `want` tokens, then [`RateLimiter::leased`].
    AskOwner {
        /// The owning shard.
        owner: usize,
        /// Tokens to ask for.
        want: u32,
    },
}

impl RateLimiter {
    /// Shard `shard`'s part of a node of `shards` shards.
    pub fn new(shard: usize, shards: usize) -> RateLimiter {
        RateLimiter {
            shard,
            shards: shards.max(1),
            owned: RefCell::new(HashMap::new()),
            leases: RefCell::new(HashMap::new()),
            known: RefCell::new(HashMap::new()),
        }
    }

    /// Whether this shard owns `key`.
    pub fn owns(&self, key: &LimitKey) -> bool {
        key.owner(self.shards) == self.shard
    }

    /// Tokens a non-owner asks for at once: a small slice of the budget, so
    /// that leases left to expire waste little.
    fn lease_size(&self, per_min: u32) -> u32 {
        (per_min / (self.shards as u32 * 20)).clamp(1, 1000)
    }

    /// Takes one token of `key`'s budget of `per_min` a minute, from the
    /// bucket (owner) or a lease (others).
    pub fn take(&self, key: &LimitKey, per_min: u32, now: Instant) -> Decision {
        if self.owns(key) {
            return match self.grant(key, 1, per_min, now) {
                Ok(_) => Decision::Allow,
                Err(retry) => Decision::Refuse(retry),
            };
        }
        let mut leases = self.leases.borrow_mut();
        if let Some(l) = leases.get_mut(key) {
            if l.expires > now && l.tokens > 0 {
                l.tokens -= 1;
                return Decision::Allow;
            }
        }
        drop(leases);
        Decision::AskOwner {
            owner: key.owner(self.shards),
            want: self.lease_size(per_min),
        }
    }

    /// Records the owner's answer to [`Decision::AskOwner`]: one granted
    /// token is this request's, the rest a lease.
    pub fn leased(&self, key: &LimitKey, grant: Grant, now: Instant) -> Decision {
        match grant {
            Err(retry) => Decision::Refuse(retry),
            Ok(0) => Decision::Refuse(1),
            Ok(n) => {
                let mut leases = self.leases.borrow_mut();
                if leases.len() >= MAX_TRACKED && !leases.contains_key(key) {
                    shrink(&mut leases, |l| l.expires <= now || l.tokens == 0);
                }
                let l = leases.entry(key.clone()).or_insert(Lease {
                    tokens: 0,
                    expires: now,
                });
                l.tokens = if l.expires > now {
                    l.tokens + n - 1
                } else {
                    n - 1
                };
                l.expires = now + LEASE_TTL;
                Decision::Allow
            }
        }
    }

    /// Owner side: takes up to `want` tokens (at least one) of `key`'s
    /// bucket.
    pub fn grant(&self, key: &LimitKey, want: u32, per_min: u32, now: Instant) -> Grant {
        let mut owned = self.owned.borrow_mut();
        if owned.len() >= MAX_TRACKED && !owned.contains_key(key) {
            shrink(&mut owned, |b| b.is_full(now));
        }
        let b = owned.entry(key.clone()).or_insert(Bucket {
            tokens: per_min.max(1) as f64,
            last: now,
            per_min,
        });
        b.per_min = per_min;
        b.refill(per_min, now);
        if b.tokens < 1.0 {
            return Err(b.retry_after(per_min));
        }
        let n = (b.tokens.floor() as u32).min(want.max(1));
        b.tokens -= n as f64;
        Ok(n)
    }

    /// Owner side: whether `key`'s failure budget has room (`Err` carries
    /// the seconds until it has), without taking anything.
    pub fn check_room(&self, key: &LimitKey, per_min: u32, now: Instant) -> Result<(), u64> {
        let mut owned = self.owned.borrow_mut();
        match owned.get_mut(key) {
            None => Ok(()),
            Some(b) => {
                b.per_min = per_min;
                b.refill(per_min, now);
                if b.tokens >= 1.0 {
                    Ok(())
                } else {
                    Err(b.retry_after(per_min))
                }
            }
        }
    }

    /// Owner side: gives back one token taken by [`RateLimiter::grant`] for
    /// an attempt that turned out not to be a failure (a right password).
    pub fn give_back(&self, key: &LimitKey, per_min: u32, now: Instant) {
        if let Some(b) = self.owned.borrow_mut().get_mut(key) {
            b.refill(per_min, now);
            b.tokens = (b.tokens + 1.0).min(per_min.max(1) as f64);
        }
    }

    /// Owner side: remembers until `until` that `client` logged into `account`.
    pub fn remember_known(&self, account: &str, client: IpAddr, until: Instant, now: Instant) {
        let mut known = self.known.borrow_mut();
        let key = (account.to_string(), client);
        if known.len() >= MAX_TRACKED && !known.contains_key(&key) {
            // Expired entries first; if every one is live, arbitrary ones
            // down to half the cap (amortised, as for the buckets).
            known.retain(|_, until| *until > now);
            if known.len() >= MAX_TRACKED {
                let doomed: Vec<_> = known
                    .keys()
                    .take(known.len() - MAX_TRACKED / 2)
                    .cloned()
                    .collect();
                for k in doomed {
                    known.remove(&k);
                }
            }
        }
        known.insert(key, until);
    }

    /// Owner side: whether `client` logged into `account` and is still remembered.
    pub fn is_known(&self, account: &str, client: IpAddr, now: Instant) -> bool {
        self.known
            .borrow()
            .get(&(account.to_string(), client))
            .is_some_and(|until| *until > now)
    }

    /// Budgets this shard keeps (owned, leased): for tests and stats.
    pub fn tracked(&self) -> (usize, usize) {
        (self.owned.borrow().len(), self.leases.borrow().len())
    }
}

/// Brings `map` down to half of [`MAX_TRACKED`]: first the entries `idle`
/// says can go without changing any answer, then arbitrary ones.
fn shrink<V>(map: &mut HashMap<LimitKey, V>, idle: impl Fn(&V) -> bool) {
    map.retain(|_, v| !idle(v));
    let target = MAX_TRACKED / 2;
    if map.len() > target {
        let excess = map.len() - target;
        let doomed: Vec<LimitKey> = map.keys().take(excess).cloned().collect();
        for k in doomed {
            map.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(n.into())
    }

    /// Two shards, the owner answering the other's lease requests in
    /// place of the mesh.
    fn take_anywhere(shards: &[RateLimiter], on: usize, key: &LimitKey, per_min: u32) -> bool {
        let now = Instant::now();
        match shards[on].take(key, per_min, now) {
            Decision::Allow => true,
            Decision::Refuse(_) => false,
            Decision::AskOwner { owner, want } => {
                let grant = shards[owner].grant(key, want, per_min, now);
                shards[on].leased(key, grant, now) == Decision::Allow
            }
        }
    }

    #[test]
    fn a_client_on_every_shard_gets_the_node_budget_once() {
        let shards = [RateLimiter::new(0, 2), RateLimiter::new(1, 2)];
        let key = LimitKey::Requests(ip(1));
        let mut served = 0;
        for i in 0..400 {
            if take_anywhere(&shards, i % 2, &key, 120) {
                served += 1;
            }
        }
        assert_eq!(served, 120);
        // Another address has its own budget.
        assert!(take_anywhere(&shards, 1, &LimitKey::Requests(ip(2)), 120));
    }

    #[test]
    fn budgets_refill_and_say_when() {
        let r = RateLimiter::new(0, 1);
        let key = LimitKey::Requests(ip(7));
        let t0 = Instant::now();
        for _ in 0..60 {
            assert_eq!(r.take(&key, 60, t0), Decision::Allow);
        }
        assert_eq!(r.take(&key, 60, t0), Decision::Refuse(1));
        assert_eq!(
            r.take(&key, 60, t0 + Duration::from_secs(1)),
            Decision::Allow
        );
        let f = LimitKey::FailuresOfUser("game1:bob".into());
        assert_eq!(r.check_room(&f, 2, t0), Ok(()));
        assert_eq!(r.grant(&f, 1, 2, t0), Ok(1));
        assert_eq!(r.grant(&f, 1, 2, t0), Ok(1));
        assert_eq!(r.check_room(&f, 2, t0), Err(30));
        // A token given back (a right password) is there again, never
        // beyond the budget.
        r.give_back(&f, 2, t0);
        assert_eq!(r.check_room(&f, 2, t0), Ok(()));
        r.give_back(&f, 2, t0);
        r.give_back(&f, 2, t0);
        assert_eq!(r.grant(&f, 1, 2, t0), Ok(1));
        assert_eq!(r.grant(&f, 1, 2, t0), Ok(1));
        assert!(r.grant(&f, 1, 2, t0).is_err());
    }

    #[test]
    fn known_addresses_expire_and_stay_bounded() {
        let r = RateLimiter::new(0, 1);
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(10);
        r.remember_known("game1:bob", ip(1), later, t0);
        assert!(r.is_known("game1:bob", ip(1), t0));
        assert!(!r.is_known("game1:bob", ip(2), t0));
        assert!(!r.is_known("game1:alice", ip(1), t0));
        assert!(!r.is_known("game1:bob", ip(1), later));
        for n in 0..(MAX_TRACKED as u32 + 10) {
            r.remember_known("game1:bob", ip(n), later, t0);
        }
        assert!(r.known.borrow().len() <= MAX_TRACKED);
    }

    #[test]
    fn maps_stay_bounded_under_many_addresses() {
        let r = RateLimiter::new(0, 1);
        let t0 = Instant::now();
        for n in 0..(MAX_TRACKED as u32 * 3) {
            let _ = r.take(&LimitKey::Requests(ip(n)), 1000, t0);
            assert!(r.tracked().0 <= MAX_TRACKED);
        }
    }

    #[test]
    fn a_shrink_drops_refilled_budgets_and_keeps_limited_ones() {
        let r = RateLimiter::new(0, 1);
        let t0 = Instant::now();
        for n in 0..(MAX_TRACKED as u32 - 1) {
            let _ = r.take(&LimitKey::Requests(ip(n)), 1000, t0);
        }
        let busy = LimitKey::Requests(ip(u32::MAX));
        for _ in 0..3 {
            assert_eq!(r.take(&busy, 3, t0), Decision::Allow);
        }
        assert_eq!(r.tracked().0, MAX_TRACKED);
        // 30 s later every other bucket has refilled; busy has 1.5 tokens.
        let later = t0 + Duration::from_secs(30);
        assert_eq!(
            r.take(&LimitKey::Requests(ip(u32::MAX - 1)), 1000, later),
            Decision::Allow
        );
        assert_eq!(r.tracked().0, 2);
        assert_eq!(r.take(&busy, 3, later), Decision::Allow);
        assert_eq!(r.take(&busy, 3, later), Decision::Refuse(10));
    }
}
