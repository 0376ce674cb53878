//! Caching of hot reads: a per-shard L1 in front of an optional Redis L2.
//!
//! A shard owns one [`Cache`]. A lookup tries L1, then L2, then loads from the
//! database; concurrent misses of one key on a shard wait for a single load
//! (single flight). Not-found answers are cached for `negative_ttl_ms`. L2
//! entries live `l2_ttl_s` ± 10 %.
//!
//! Invalidation (after a write, before its reply): the key leaves this
//! shard's L1, every other shard's L1 (mesh message, acknowledged), and L2 —
//! where it is replaced by a short tombstone so that a load that started
//! before the write cannot put the old value back (L2 fills use `SET NX`) —
//! and a message on the Redis channel tells every other node to drop it. A
//! load that was in flight when its key was invalidated is not cached. While
//! the node's subscription to that channel is down, L1 entries older than
//! `invalidation_max_ms` are ignored, so no node serves a replaced value for
//! longer than that bound.
//!
//! In Redis, L2 entries live in a namespace of their own: the entry of
//! cache key `game1:p:42` is the Redis key `cache:game1:p:42` ([`l2_key`];
//! fills, tombstones and the `SCAN` of a prefix invalidation all use it),
//! apart from the cluster's keys (`dm:node:*`, `dm:lock:{..}`,
//! `dm:fence:{..}`, `dm:config`; channels `dm:invalidate`, `dm:revoke`), so
//! that no invalidation can reach those.
//! The channel message carries the cache keys themselves, without the
//! namespace. (Before this namespace, L2 entries were stored under the bare
//! cache key. During a rolling upgrade old nodes still read and fill those;
//! an invalidation from a new node still reaches every node's L1 through
//! the channel but tombstones only the namespaced entry, so an old node may
//! read a replaced value from its bare L2 copy until that copy expires,
//! within `cache.l2_ttl_s`.)

pub mod keys;
pub mod l1;

use crate::config::CacheConfig;
use crate::redis::{Redis, RedisTarget, Reply};
use futures_channel::oneshot;
use l1::{Cached, L1Stats, L1};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The Redis channel carrying invalidations between nodes.
pub const CHANNEL: &str = "dm:invalidate";
/// How long an L2 tombstone blocks refills after a write.
pub const TOMBSTONE: Duration = Duration::from_secs(2);
/// What every L2 entry's Redis key starts with: L2 is kept apart from the
/// cluster's own keys in the same Redis (registry, leases, config centre).
pub const L2_NAMESPACE: &str = "cache:";

/// The Redis key of cache key `key`'s L2 entry.
pub fn l2_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(L2_NAMESPACE.len() + key.len());
    k.extend_from_slice(L2_NAMESPACE.as_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

/// The `SCAN MATCH` pattern of the L2 entries of the cache keys that begin
/// with `prefix`: the glob characters of `prefix` (`*`, `?`, `[`, `]` and
/// the escape `\` itself) are escaped, so the prefix matches itself only.
pub fn l2_scan_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(L2_NAMESPACE.len() + prefix.len() + 1);
    pattern.push_str(L2_NAMESPACE);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

struct Flight<E> {
    stale: bool,
    waiters: Vec<oneshot::Sender<Result<Cached, E>>>,
}

/// What a lookup that waited for another request's load gets when that
/// load was dropped before it finished (its request was cancelled); the
/// cache's user turns it into its own error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadAbandoned;

/// Counters of L2 and loads on one shard.
#[derive(Debug, Default, Clone, Copy)]
pub struct CacheCounters {
    /// L2 answers.
    pub l2_hits: u64,
    /// L2 lookups without an answer.
    pub l2_misses: u64,
    /// L2 calls that failed.
    pub l2_errors: u64,
    /// Loads from the database.
    pub loads: u64,
    /// Lookups that waited for another request's load.
    pub coalesced: u64,
}

/// A shard's cache figures at one moment.
#[derive(Debug, Clone, Copy)]
pub struct CacheSnapshot {
    /// L1 counters.
    pub l1: L1Stats,
    /// L1 entries.
    pub entries: usize,
    /// L1 bytes.
    pub bytes: usize,
    /// L2 and load counters.
    pub counters: CacheCounters,
    /// Whether the L2 connection works; `None` without L2.
    pub l2_up: Option<bool>,
}

/// One shard's cache. `E` is the error its loads return, handed unchanged
/// to every lookup that waited for the same load.
pub struct Cache<E> {
    cfg: CacheConfig,
    node_id: String,
    l1: RefCell<L1>,
    l2: Option<Redis>,
    inflight: RefCell<HashMap<String, Flight<E>>>,
    bus_expected: bool,
    bus_healthy: Cell<bool>,
    counters: Cell<CacheCounters>,
    /// Changes whose tombstones or message Redis did not take, with when
    /// they were first tried: sent again until it does (see
    /// [`Cache::resend_unsent`]).
    unsent: RefCell<std::collections::VecDeque<(Change, Instant)>>,
}

/// Most changes kept for sending again while Redis is unreachable; beyond
/// it the oldest are dropped (their L2 copies expire within `l2_ttl_s`).
const MAX_UNSENT: usize = 10_000;

impl<E: Clone + From<LoadAbandoned>> Cache<E> {
    /// A cache with `cfg`'s bounds; L2 when `cfg.redis` is set.
    pub fn new(cfg: &CacheConfig, node_id: &str) -> Result<Cache<E>, String> {
        let l2 = if cfg.redis.is_empty() {
            None
        } else {
            Some(Redis::new(
                RedisTarget::parse(&cfg.redis).map_err(|e| format!("key `cache.redis`: {e}"))?,
            ))
        };
        Ok(Cache {
            cfg: cfg.clone(),
            node_id: node_id.to_string(),
            l1: RefCell::new(L1::new(cfg.l1_max_entries, cfg.l1_max_bytes)),
            bus_expected: l2.is_some(),
            l2,
            inflight: RefCell::new(HashMap::new()),
            bus_healthy: Cell::new(false),
            counters: Cell::new(CacheCounters::default()),
            unsent: RefCell::new(std::collections::VecDeque::new()),
        })
    }

    fn count(&self, f: impl FnOnce(&mut CacheCounters)) {
        let mut c = self.counters.get();
        f(&mut c);
        self.counters.set(c);
    }

    fn max_age(&self) -> Option<Duration> {
        (self.bus_expected && !self.bus_healthy.get())
            .then(|| Duration::from_millis(self.cfg.invalidation_max_ms))
    }

    /// The value of `key`: from L1, L2, or `load` (the database), which
    /// returns the value's JSON or `None` when it does not exist.
    pub async fn get_or_load<F, Fut>(&self, key: &str, load: F) -> Result<Cached, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<String>, E>>,
    {
        if let Some(hit) = self
            .l1
            .borrow_mut()
            .get(key, Instant::now(), self.max_age())
        {
            return Ok(hit);
        }
        let waiting = {
            let mut inflight = self.inflight.borrow_mut();
            match inflight.get_mut(key) {
                Some(flight) => {
                    let (tx, rx) = oneshot::channel();
                    flight.waiters.push(tx);
                    Some(rx)
                }
                None => {
                    inflight.insert(
                        key.to_string(),
                        Flight {
                            stale: false,
                            waiters: Vec::new(),
                        },
                    );
                    None
                }
            }
        };
        if let Some(rx) = waiting {
            self.count(|c| c.coalesced += 1);
            return rx.await.unwrap_or_else(|_| Err(E::from(LoadAbandoned)));
        }
        let (result, fill_l2) = self.fetch(key, load).await;
        let flight = self.inflight.borrow_mut().remove(key);
        let stale = flight.as_ref().is_some_and(|f| f.stale);
        if let Ok(value) = &result {
            if !stale {
                let ttl = match value {
                    Cached::Value(_) => Duration::from_millis(self.cfg.l1_ttl_ms),
                    Cached::Missing => Duration::from_millis(self.cfg.negative_ttl_ms),
                };
                self.l1
                    .borrow_mut()
                    .insert(key.to_string(), value.clone(), ttl, Instant::now());
                if fill_l2 {
                    self.fill_l2(key, value).await;
                }
            }
        }
        for w in flight.map(|f| f.waiters).unwrap_or_default() {
            let _ = w.send(result.clone());
        }
        result
    }

    /// L2, then the database. The flag says whether L2 should be filled.
    async fn fetch<F, Fut>(&self, key: &str, load: F) -> (Result<Cached, E>, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<String>, E>>,
    {
        let mut fill = false;
        if let Some(l2) = &self.l2 {
            match l2.command(vec![b"GET".to_vec(), l2_key(key)]).await {
                Ok(Reply::Bulk(Some(v))) if v.first() == Some(&b'V') => {
                    self.count(|c| c.l2_hits += 1);
                    let text = String::from_utf8_lossy(&v[1..]);
                    return (Ok(Cached::Value(Rc::from(text.as_ref()))), false);
                }
                Ok(Reply::Bulk(Some(v))) if v.first() == Some(&b'N') => {
                    self.count(|c| c.l2_hits += 1);
                    return (Ok(Cached::Missing), false);
                }
                // A tombstone: a write just happened; load, do not refill.
                Ok(Reply::Bulk(Some(_))) => self.count(|c| c.l2_misses += 1),
                Ok(_) => {
                    self.count(|c| c.l2_misses += 1);
                    fill = true;
                }
                Err(_) => self.count(|c| c.l2_errors += 1),
            }
        }
        self.count(|c| c.loads += 1);
        let loaded = load().await.map(|v| match v {
            Some(json) => Cached::Value(Rc::from(json.as_str())),
            None => Cached::Missing,
        });
        (loaded, fill)
    }

    async fn fill_l2(&self, key: &str, value: &Cached) {
        let Some(l2) = &self.l2 else { return };
        let (payload, ttl_ms) = match value {
            Cached::Value(v) => {
                let mut p = Vec::with_capacity(v.len() + 1);
                p.push(b'V');
                p.extend_from_slice(v.as_bytes());
                (p, jittered(self.cfg.l2_ttl_s * 1000))
            }
            Cached::Missing => (b"N".to_vec(), self.cfg.negative_ttl_ms.max(1)),
        };
        let cmd = vec![
            b"SET".to_vec(),
            l2_key(key),
            payload,
            b"PX".to_vec(),
            ttl_ms.to_string().into_bytes(),
            b"NX".to_vec(),
        ];
        if l2.command(cmd).await.is_err() {
            self.count(|c| c.l2_errors += 1);
        }
    }

    /// Drops `keys` (a key ending in `*` drops a prefix) from this shard's
    /// L1, and makes loads in flight for them uncacheable.
    pub fn invalidate_local(&self, keys: &[String]) {
        let mut l1 = self.l1.borrow_mut();
        let mut inflight = self.inflight.borrow_mut();
        for k in keys {
            match k.strip_suffix('*') {
                Some(prefix) => {
                    l1.invalidate_prefix(prefix);
                    for (key, f) in inflight.iter_mut() {
                        if key.starts_with(prefix) {
                            f.stale = true;
                        }
                    }
                }
                None => {
                    l1.invalidate(k);
                    if let Some(f) = inflight.get_mut(k) {
                        f.stale = true;
                    }
                }
            }
        }
    }

    /// Replaces the change's keys in L2 by tombstones and tells the other
    /// nodes. Returns false when Redis could not be told; the change is then
    /// kept and sent again ([`Cache::resend_unsent`]).
    pub async fn invalidate_remote(&self, change: &Change) -> bool {
        let told = self.try_invalidate_remote(change).await;
        if !told {
            self.keep_unsent(change.clone(), Instant::now());
        }
        told
    }

    async fn try_invalidate_remote(&self, change: &Change) -> bool {
        let Some(l2) = &self.l2 else { return true };
        let keys = &change.keys;
        let tombstone = |key: Vec<u8>| {
            vec![
                b"SET".to_vec(),
                key,
                b"T".to_vec(),
                b"PX".to_vec(),
                TOMBSTONE.as_millis().to_string().into_bytes(),
            ]
        };
        let mut cmds: Vec<Vec<Vec<u8>>> = keys
            .iter()
            .filter(|k| !k.ends_with('*'))
            .map(|k| tombstone(l2_key(k)))
            .collect();
        for prefix in keys.iter().filter_map(|k| k.strip_suffix('*')) {
            // Prefix invalidation is an admin operation: every L2 entry that
            // matches gets a tombstone (the scan finds Redis keys, already in
            // the namespace). A scan that failed leaves the change to be sent
            // again whole.
            match self.scan(l2, prefix).await {
                Ok(found) => cmds.extend(found.into_iter().map(tombstone)),
                Err(e) => {
                    self.count(|c| c.l2_errors += 1);
                    tracing::debug!(error = %e, "prefix invalidation could not scan L2");
                    return false;
                }
            }
        }
        let payload = encode_message(&self.node_id, change);
        cmds.push(vec![
            b"PUBLISH".to_vec(),
            CHANNEL.as_bytes().to_vec(),
            payload,
        ]);
        match l2.pipeline(&cmds).await {
            Ok(_) => true,
            Err(e) => {
                self.count(|c| c.l2_errors += 1);
                tracing::debug!(error = %e, "invalidation not published; kept to send again");
                false
            }
        }
    }

    fn keep_unsent(&self, change: Change, since: Instant) {
        let mut unsent = self.unsent.borrow_mut();
        if unsent.len() >= MAX_UNSENT {
            unsent.pop_front();
        }
        unsent.push_back((change, since));
    }

    /// Sends again the changes Redis did not take. Without this, a write
    /// made while the key's Redis master was unreachable (down, failing
    /// over, a connection lost) would leave the old value in L2 — on the
    /// promoted replica, say — for `l2_ttl_s`, and the other nodes, which
    /// never got the message, could cache it again. Sent as soon as Redis
    /// answers, the tombstone and message end that window; a change older
    /// than `l2_ttl_s` is dropped (every copy it could hide has expired).
    /// Returns how many were sent.
    pub async fn resend_unsent(&self) -> usize {
        let pending: Vec<(Change, Instant)> = self.unsent.borrow_mut().drain(..).collect();
        let ttl = Duration::from_secs(self.cfg.l2_ttl_s.saturating_add(self.cfg.l2_ttl_s / 10 + 1));
        let mut sent = 0;
        for (i, (change, since)) in pending.iter().enumerate() {
            if since.elapsed() > ttl {
                continue;
            }
            if self.try_invalidate_remote(change).await {
                sent += 1;
            } else {
                // Still down: keep this one and the rest, in order, for later.
                for (c, t) in pending[i..].iter().cloned() {
                    self.keep_unsent(c, t);
                }
                break;
            }
        }
        sent
    }

    /// Whether changes wait to be sent again.
    pub fn has_unsent(&self) -> bool {
        !self.unsent.borrow().is_empty()
    }

    /// The Redis keys of the L2 entries under cache key `prefix` (on every
    /// master of a cluster).
    async fn scan(
        &self,
        l2: &Redis,
        prefix: &str,
    ) -> Result<Vec<Vec<u8>>, crate::redis::RedisError> {
        l2.scan(&l2_scan_pattern(prefix), 1_000_000).await
    }

    /// Records whether cross-node invalidation currently works; when it
    /// comes back, everything cached meanwhile is dropped.
    pub fn set_bus_healthy(&self, healthy: bool) {
        let was = self.bus_healthy.replace(healthy);
        if healthy && !was {
            self.l1.borrow_mut().invalidate_prefix("");
        }
    }

    /// Whether this node is connected to the invalidation channel (or needs none).
    pub fn bus_ok(&self) -> bool {
        !self.bus_expected || self.bus_healthy.get()
    }

    /// Whether L2 is usable — connected and carrying invalidations, not just
    /// connected; `None` without L2.
    pub fn l2_usable(&self) -> Option<bool> {
        self.l2.as_ref().map(|r| r.is_up() && self.bus_ok())
    }

    /// Whether an L2 is configured.
    pub fn has_l2(&self) -> bool {
        self.l2.is_some()
    }

    /// Whether the L2 connection works (checks with PING when idle).
    pub async fn l2_ping(&self) -> Result<(), String> {
        match &self.l2 {
            None => Ok(()),
            Some(l2) => match l2.command(vec![b"PING".to_vec()]).await {
                Ok(Reply::Status(_)) => Ok(()),
                Ok(other) => Err(format!("unexpected reply {other:?}")),
                Err(e) => Err(e.to_string()),
            },
        }
    }

    /// This shard's figures for `/api/v1/cache/stats`.
    pub fn stats(&self) -> serde_json::Value {
        let s = self.snapshot();
        let L1Stats {
            hits,
            misses,
            evictions,
            invalidations,
        } = s.l1;
        let c = s.counters;
        serde_json::json!({
            "l1": { "entries": s.entries, "bytes": s.bytes, "hits": hits, "misses": misses, "evictions": evictions, "invalidations": invalidations },
            "l2": {
                "configured": self.l2.is_some(),
                "up": s.l2_up,
                "hits": c.l2_hits, "misses": c.l2_misses, "errors": c.l2_errors,
            },
            "loads": c.loads,
            "coalesced": c.coalesced,
            "invalidation_bus": if !self.bus_expected { "not needed" } else if self.bus_healthy.get() { "up" } else { "down" },
        })
    }

    /// This shard's figures as numbers, for the stats route and `/metrics`.
    pub fn snapshot(&self) -> CacheSnapshot {
        let l1 = self.l1.borrow();
        CacheSnapshot {
            l1: l1.stats,
            entries: l1.len(),
            bytes: l1.bytes(),
            counters: self.counters.get(),
            l2_up: self.l2.as_ref().map(|r| r.is_up()),
        }
    }
}

/// What a write changed, as every shard and node must learn it before the
/// write is answered: the cache keys to drop, and the writers whose reads
/// stay on the primary for the read-your-writes window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// Cache keys to drop (a trailing `*` drops a prefix).
    pub keys: Vec<String>,
    /// Who wrote, so that their next reads do not go to a lagging replica.
    pub wrote: Vec<Wrote>,
}

/// A write by (or for) one player of one game; player 0 stands for data the
/// whole game shares, such as the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrote {
    /// The game whose database was written.
    pub game: String,
    /// The player whose data changed; 0 for game-wide data.
    pub player: i64,
}

impl Change {
    /// `game`'s `player` (0: game-wide data) wrote the data behind `keys`.
    pub fn written(game: &str, player: i64, keys: Vec<String>) -> Change {
        Change {
            keys,
            wrote: vec![Wrote {
                game: game.to_string(),
                player,
            }],
        }
    }

    /// Keys to drop with no writer behind them (an operator's request).
    pub fn keys_only(keys: Vec<String>) -> Change {
        Change {
            keys,
            wrote: Vec::new(),
        }
    }

    /// This change and `other` together.
    pub fn and(mut self, other: Change) -> Change {
        self.keys.extend(other.keys);
        self.wrote.extend(other.wrote);
        self
    }
}

/// A change as published on [`CHANNEL`]: the sending node, its keys one per
/// line, then an empty line and one `game<TAB>player` line per writer.
/// (Keys are never empty, so the empty line cannot be mistaken for one; a
/// node that predates the writer lines drops them as unknown keys.)
pub fn encode_message(node_id: &str, change: &Change) -> Vec<u8> {
    let mut p = node_id.as_bytes().to_vec();
    for k in &change.keys {
        p.push(b'\n');
        p.extend_from_slice(k.as_bytes());
    }
    if !change.wrote.is_empty() {
        p.push(b'\n');
        for w in &change.wrote {
            p.push(b'\n');
            p.extend_from_slice(w.game.as_bytes());
            p.push(b'\t');
            p.extend_from_slice(w.player.to_string().as_bytes());
        }
    }
    p
}

/// Splits a channel message into (sender node, change); `None` when it is
/// not one.
pub fn decode_message(payload: &[u8]) -> Option<(String, Change)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (head, writers) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.split('\n');
    let node = lines.next()?.to_string();
    let keys = lines
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let mut wrote = Vec::new();
    for line in writers.split('\n').filter(|l| !l.is_empty()) {
        let (game, player) = line.split_once('\t')?;
        wrote.push(Wrote {
            game: game.to_string(),
            player: player.parse().ok()?,
        });
    }
    Some((node, Change { keys, wrote }))
}

/// `ms` ± 10 %, so that entries filled together do not expire together.
fn jittered(ms: u64) -> u64 {
    let spread = ms / 10;
    if spread == 0 {
        return ms.max(1);
    }
    ms - spread + rand::random::<u64>() % (2 * spread + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let change = Change::written("game1", 7, vec!["game1:p:7".to_string()])
            .and(Change::written("game1", 0, vec!["game1:items".to_string()]));
        let (node, got) = decode_message(&encode_message("node-1", &change)).expect("decodes");
        assert_eq!((node.as_str(), got), ("node-1", change));
        let keys_only = Change::keys_only(vec!["game1:p:*".to_string()]);
        let (_, got) = decode_message(&encode_message("n", &keys_only)).expect("decodes");
        assert_eq!(got, keys_only);
        assert_eq!(decode_message(b"n\nk\n\ngame1\tnot-a-number"), None);
    }

    #[test]
    fn l2_entries_live_in_their_namespace() {
        assert_eq!(l2_key("game1:p:42"), b"cache:game1:p:42".to_vec());
        assert_eq!(l2_scan_pattern("game1:"), "cache:game1:*");
        assert_eq!(l2_scan_pattern(""), "cache:*");
        // Glob characters match themselves only.
        assert_eq!(l2_scan_pattern(r"a*b?c[d]e\f"), r"cache:a\*b\?c\[d\]e\\f*");
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let j = jittered(600_000);
            assert!((540_000..=660_000).contains(&j));
        }
        assert_eq!(jittered(5), 5);
    }
}
