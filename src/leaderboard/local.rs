//! The rank views a shard owns when there is no Redis (SPEC §12: "owned by
//! one shard per board and rebuilt from SQL at start"). Each board belongs
//! to one shard of the node ([`owner`]); the other shards ask it over the
//! mesh. A view is loaded from SQL on first use (at start for the current
//! periods), a page at a time; writes that arrive meanwhile are applied at
//! once, and the record versions decide between a write and a loaded row.

use super::rank_index::{Loaded, RankIndex, RankKey};
use super::{around_start, Ranked, ViewKey, ViewRecord};
use futures_channel::oneshot;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

/// The shard of `shards` that owns a game's board (the same on every shard:
/// a fixed hash, not the process's random one).
pub fn owner(game: &str, board: &str, shards: usize) -> usize {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    game.hash(&mut h);
    board.hash(&mut h);
    (h.finish() % shards.max(1) as u64) as usize
}

/// FNV-1a: stable across processes and runs.
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// One view: the index (with each record's username, so that a read needs
/// no SQL), what its load from SQL has read so far, and whether the load
/// has finished.
#[derive(Default)]
pub struct LocalView {
    index: RefCell<RankIndex>,
    loading: RefCell<Loaded>,
    ready: Cell<bool>,
    waiting: RefCell<Vec<oneshot::Sender<bool>>>,
}

impl LocalView {
    /// Waits until the view is loaded; false when its load failed (the
    /// caller answers from SQL instead).
    pub async fn ready(&self) -> bool {
        if self.ready.get() {
            return true;
        }
        let (tx, rx) = oneshot::channel();
        self.waiting.borrow_mut().push(tx);
        rx.await.unwrap_or(false)
    }

    /// Whether its load has finished.
    pub fn is_ready(&self) -> bool {
        self.ready.get()
    }

    /// Keeps a page of records its load read, with their players'
    /// usernames (applied at the end, in one sort).
    pub fn load_page<'a>(&self, records: impl IntoIterator<Item = (RankKey, i64, &'a str)>) {
        let mut loading = self.loading.borrow_mut();
        for (key, version, username) in records {
            loading.push(key, version, username);
        }
    }

    /// Ends the load (`ok` false: it failed) and wakes the waiting readers:
    /// the index is built from the loaded records at once, then the writes
    /// that came during the load are applied where they are newer.
    pub fn loaded(&self, ok: bool) {
        let records = std::mem::take(&mut *self.loading.borrow_mut());
        if ok {
            let mut built = RankIndex::build(records);
            let mut index = self.index.borrow_mut();
            for (k, v, name) in index.entries() {
                built.apply(k, v, name);
            }
            *index = built;
        }
        self.ready.set(ok);
        for w in self.waiting.borrow_mut().drain(..) {
            let _ = w.send(ok);
        }
    }

    /// Applies a record of version `version` of a player named
    /// `username` ("": keep the name held), unless the view holds a newer
    /// one: the player's rank before and after.
    pub fn apply(
        &self,
        key: RankKey,
        version: i64,
        username: &str,
    ) -> (Option<usize>, Option<usize>) {
        let mut index = self.index.borrow_mut();
        let before = index.rank(key.player_id);
        index.apply(key, version, username);
        (before, index.rank(key.player_id))
    }

    /// Takes a player's record out (a ban, a deletion).
    pub fn remove(&self, player_id: i64) {
        self.index.borrow_mut().remove(player_id);
    }

    /// A player's rank and record.
    pub fn ranked(&self, player_id: i64) -> Option<Ranked> {
        let index = self.index.borrow();
        let (rank, key) = index.ranked(player_id)?;
        Some((rank, record(&index, key)))
    }

    /// Up to `limit` records from rank `from` (1-based).
    pub fn range(&self, from: usize, limit: usize) -> Vec<ViewRecord> {
        let index = self.index.borrow();
        index
            .range(from, limit)
            .into_iter()
            .map(|k| record(&index, k))
            .collect()
    }

    /// Up to `limit` records around a player's (see [`around_start`]) and
    /// the rank of the first; `None` when the player has no record.
    pub fn around(&self, player_id: i64, limit: usize) -> Option<(usize, Vec<ViewRecord>)> {
        let from = around_start(self.index.borrow().rank(player_id)?, limit);
        Some((from, self.range(from, limit)))
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.index.borrow().len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn record(index: &RankIndex, key: RankKey) -> ViewRecord {
    ViewRecord {
        key,
        username: index.username(key.player_id).to_string(),
    }
}

/// The views a shard owns.
#[derive(Default)]
pub struct LocalViews {
    views: RefCell<HashMap<ViewKey, Rc<LocalView>>>,
}

impl LocalViews {
    /// The view of `key`, and true when this call created it: the caller
    /// then loads it and calls [`LocalView::loaded`].
    pub fn view(&self, key: &ViewKey) -> (Rc<LocalView>, bool) {
        if let Some(v) = self.views.borrow().get(key) {
            return (v.clone(), false);
        }
        let v = Rc::new(LocalView::default());
        self.views.borrow_mut().insert(key.clone(), v.clone());
        (v, true)
    }

    /// The view of `key` if it exists (loaded or loading).
    pub fn existing(&self, key: &ViewKey) -> Option<Rc<LocalView>> {
        self.views.borrow().get(key).cloned()
    }

    /// Forgets a view (its load failed, or its board went): the next use
    /// loads it again.
    pub fn forget(&self, key: &ViewKey) {
        self.views.borrow_mut().remove(key);
    }

    /// Forgets a board's views of periods before `first_kept` (all of them
    /// with `i64::MAX`).
    pub fn forget_before(&self, game: &str, board: &str, first_kept: i64) {
        self.views
            .borrow_mut()
            .retain(|k, _| !(k.game == game && k.board == board && k.period < first_kept));
    }

    /// The views held and their records, for `/metrics`.
    pub fn sizes(&self) -> (usize, usize) {
        let views = self.views.borrow();
        (views.len(), views.values().map(|v| v.len()).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_spread_and_stable() {
        let mut seen = [0usize; 4];
        for b in 0..400 {
            let board = format!("board-{b}");
            let o = owner("game1", &board, 4);
            assert_eq!(o, owner("game1", &board, 4));
            seen[o] += 1;
        }
        assert!(seen.iter().all(|n| *n > 50), "{seen:?}");
        assert_eq!(owner("g", "b", 1), 0);
    }

    #[test]
    fn readers_wait_for_the_load_and_a_failed_load_is_forgotten() {
        let views = LocalViews::default();
        let key = ViewKey {
            game: "g".into(),
            board: "b".into(),
            generation: 1,
            period: 0,
        };
        let (v, fresh) = views.view(&key);
        assert!(fresh);
        let (same, again) = views.view(&key);
        assert!(!again && Rc::ptr_eq(&v, &same));
        let k = RankKey {
            score: 1,
            subscore: 0,
            written_at: 0,
            player_id: 7,
        };
        assert_eq!(v.apply(k, 1, "seven"), (None, Some(1)));
        v.load_page([(
            RankKey {
                player_id: 8,
                score: 2,
                ..k
            },
            1,
            "eight",
        )]);
        let waiter = futures_lite::future::block_on(async {
            let wait = v.ready();
            futures_lite::pin!(wait);
            assert!(futures_lite::future::poll_once(&mut wait).await.is_none());
            v.loaded(true);
            wait.await
        });
        assert!(waiter);
        assert!(futures_lite::future::block_on(v.ready()));
        let names = |records: Vec<ViewRecord>| -> Vec<String> {
            records.into_iter().map(|r| r.username).collect()
        };
        assert_eq!(names(v.range(1, 5)), ["seven", "eight"]);
        assert_eq!(
            v.ranked(8).map(|(rank, r)| (rank, r.username)),
            Some((2, "eight".into()))
        );
        let (from, around) = v.around(8, 3).unwrap_or_default();
        assert_eq!(
            (from, names(around)),
            (1, vec!["seven".into(), "eight".into()])
        );
        assert!(v.around(9, 3).is_none());
        views.forget_before("g", "b", 1);
        assert!(views.existing(&key).is_none());
    }
}
