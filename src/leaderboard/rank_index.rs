//! An order-statistics index of one leaderboard period: exact ranks in
//! memory (SPEC §12: reads at 1,000,000 records, p99 ≤ 2 ms). Records are
//! kept sorted in blocks of at most [`MAX_BLOCK`] keys; a rank is the sizes
//! of the blocks before a record's plus its place in its block (a few
//! thousand additions at a million records), an insert or removal moves at
//! most a block's keys. Each player has one key; a write replaces it,
//! unless the index already holds a newer version of the player's record
//! (writes from several shards may arrive out of order).

use std::cmp::Ordering;
use std::collections::HashMap;

/// Keys per block before it splits in two.
pub const MAX_BLOCK: usize = 1024;

/// A record's place in the order: smaller is better (the board's sort is
/// applied by the caller when it builds the key: `desc` negates scores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RankKey {
    /// The score, as ordered (negated for `desc`).
    pub score: i64,
    /// The subscore, likewise.
    pub subscore: i64,
    /// When it was written (earlier is better).
    pub written_at: i64,
    /// The player (the last tie-break).
    pub player_id: i64,
}

/// Where a username lies in a view's [`Names`]; an empty one is a name
/// the view does not know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NameRef {
    at: u32,
    len: u32,
}

/// The usernames of a view's records, back to back in one buffer (SPEC
/// §12: a read is answered from memory, usernames included): a name costs
/// its bytes and a [`NameRef`], not a `String` and an allocation each. The
/// bytes of names taken out are garbage until the buffer is compacted.
#[derive(Debug, Default)]
pub struct Names {
    bytes: Vec<u8>,
    garbage: usize,
}

impl Names {
    /// Keeps `name`; an empty [`NameRef`] when it is empty or the buffer
    /// cannot address it (4 GiB of names).
    pub fn push(&mut self, name: &str) -> NameRef {
        let (Ok(at), Ok(len)) = (u32::try_from(self.bytes.len()), u32::try_from(name.len())) else {
            return NameRef::default();
        };
        if at.checked_add(len).is_none() {
            return NameRef::default();
        }
        self.bytes.extend_from_slice(name.as_bytes());
        NameRef { at, len }
    }

    /// The name at `r` ("" when unknown).
    pub fn get(&self, r: NameRef) -> &str {
        let (at, len) = (r.at as usize, r.len as usize);
        self.bytes
            .get(at..at + len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// Marks a name's bytes as no longer used.
    fn discard(&mut self, r: NameRef) {
        self.garbage += r.len as usize;
    }

    /// Bytes held (names and garbage).
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }
}

/// A player's record in the index: its key, its version
/// (`leaderboard_records.version`) and its username.
#[derive(Debug, Clone, Copy)]
struct Slot {
    key: RankKey,
    version: i64,
    name: NameRef,
}

/// Records read for a build, one player at most once (see
/// [`RankIndex::build`]), with their names already in the [`Names`] the
/// index keeps.
#[derive(Debug, Default)]
pub struct Loaded {
    records: Vec<(RankKey, i64, NameRef)>,
    names: Names,
}

impl Loaded {
    /// Adds a record of version `version` and its player's username.
    pub fn push(&mut self, key: RankKey, version: i64, username: &str) {
        let name = self.names.push(username);
        self.records.push((key, version, name));
    }

    /// Records added.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether none was added.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// The index: sorted blocks, and each player's record in a dense table
/// found through a map of player → place (a record is 48 bytes in the
/// table, 16 in the map, 32 in a block, and its name's bytes).
#[derive(Debug, Default)]
pub struct RankIndex {
    blocks: Vec<Vec<RankKey>>,
    slots: Vec<Slot>,
    slot_of: HashMap<i64, u32>,
    names: Names,
}

impl RankIndex {
    /// Records held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// An index of the `loaded` records built at once: sorted, then cut
    /// into half-full blocks — a rebuild of a million records in one sort
    /// instead of a million inserts. A player twice keeps its newer record.
    pub fn build(loaded: Loaded) -> RankIndex {
        let Loaded { records, mut names } = loaded;
        let mut slot_of: HashMap<i64, u32> = HashMap::with_capacity(records.len());
        let mut slots: Vec<Slot> = Vec::with_capacity(records.len());
        for (key, version, name) in records {
            let slot = Slot { key, version, name };
            match slot_of.get(&key.player_id) {
                Some(&i) => {
                    let held = &mut slots[i as usize];
                    if held.version < version {
                        names.discard(held.name);
                        *held = slot;
                    } else {
                        names.discard(name);
                    }
                }
                None => {
                    let Ok(i) = u32::try_from(slots.len()) else {
                        break;
                    };
                    slot_of.insert(key.player_id, i);
                    slots.push(slot);
                }
            }
        }
        let mut sorted: Vec<RankKey> = slots.iter().map(|s| s.key).collect();
        sorted.sort_unstable();
        let blocks = sorted
            .chunks(MAX_BLOCK / 2)
            .map(<[RankKey]>::to_vec)
            .collect();
        let mut index = RankIndex {
            blocks,
            slots,
            slot_of,
            names,
        };
        index.compact_names_if_worth_it();
        index
    }

    /// Every record held (key, version and username), in no order.
    pub fn entries(&self) -> impl Iterator<Item = (RankKey, i64, &str)> + '_ {
        self.slots
            .iter()
            .map(|s| (s.key, s.version, self.names.get(s.name)))
    }

    /// The block that holds (or would hold) `key`.
    fn block_of(&self, key: &RankKey) -> usize {
        // The first block whose last key is not below `key`.
        let i = self
            .blocks
            .partition_point(|b| b.last().is_some_and(|last| last < key));
        i.min(self.blocks.len().saturating_sub(1))
    }

    fn slot(&self, player_id: i64) -> Option<&Slot> {
        self.slot_of
            .get(&player_id)
            .and_then(|&i| self.slots.get(i as usize))
    }

    /// Sets `key` (of record version `version`, its player named
    /// `username`) as its player's record unless the one held is as new or
    /// newer; whether it was set.
    pub fn apply(&mut self, key: RankKey, version: i64, username: &str) -> bool {
        if self
            .slot(key.player_id)
            .is_some_and(|held| held.version >= version)
        {
            return false;
        }
        self.set(key, version, username)
    }

    /// Sets `key` as its player's record (replacing the one before); an
    /// empty `username` keeps the name held. False when the index cannot
    /// hold one more record (4 billion).
    pub fn set(&mut self, key: RankKey, version: i64, username: &str) -> bool {
        let name = match self.take_out(key.player_id) {
            // A username never changes: the bytes held stay.
            Some(held) if username.is_empty() || self.names.get(held) == username => held,
            Some(held) => {
                self.names.discard(held);
                self.names.push(username)
            }
            None => self.names.push(username),
        };
        let Ok(i) = u32::try_from(self.slots.len()) else {
            self.names.discard(name);
            return false;
        };
        self.slots.push(Slot { key, version, name });
        self.slot_of.insert(key.player_id, i);
        if self.blocks.is_empty() {
            self.blocks.push(vec![key]);
            return true;
        }
        let b = self.block_of(&key);
        let block = &mut self.blocks[b];
        let at = block.partition_point(|k| k < &key);
        block.insert(at, key);
        if block.len() > MAX_BLOCK {
            let upper = block.split_off(block.len() / 2);
            self.blocks.insert(b + 1, upper);
        }
        true
    }

    /// Takes a player's record out of the blocks and the table; its name's
    /// place, still in the buffer.
    fn take_out(&mut self, player_id: i64) -> Option<NameRef> {
        let i = self.slot_of.remove(&player_id)? as usize;
        let slot = self.slots.swap_remove(i);
        if let Some(moved) = self.slots.get(i) {
            self.slot_of.insert(moved.key.player_id, i as u32);
        }
        let b = self.block_of(&slot.key);
        if let Some(block) = self.blocks.get_mut(b) {
            if let Ok(at) = block.binary_search(&slot.key) {
                block.remove(at);
            }
            if block.is_empty() {
                self.blocks.remove(b);
            }
        }
        Some(slot.name)
    }

    /// Removes a player's record; false when it had none.
    pub fn remove(&mut self, player_id: i64) -> bool {
        let Some(name) = self.take_out(player_id) else {
            return false;
        };
        self.names.discard(name);
        self.compact_names_if_worth_it();
        true
    }

    /// Copies the names in use to a new buffer once garbage is most of it.
    fn compact_names_if_worth_it(&mut self) {
        if self.names.garbage < 1 << 16 || self.names.garbage * 2 < self.names.bytes.len() {
            return;
        }
        let mut names = Names {
            bytes: Vec::with_capacity(self.names.bytes.len() - self.names.garbage),
            garbage: 0,
        };
        for slot in &mut self.slots {
            let name = self.names.get(slot.name);
            slot.name = names.push(name);
        }
        self.names = names;
    }

    /// A player's rank (1 for the best), if it has a record.
    pub fn rank(&self, player_id: i64) -> Option<usize> {
        self.ranked(player_id).map(|(rank, _)| rank)
    }

    /// A player's rank and key, if it has a record.
    pub fn ranked(&self, player_id: i64) -> Option<(usize, RankKey)> {
        let key = self.slot(player_id)?.key;
        let b = self.block_of(&key);
        let before: usize = self.blocks[..b].iter().map(Vec::len).sum();
        let at = self.blocks[b].binary_search(&key).ok()?;
        Some((before + at + 1, key))
    }

    /// A player's username as the index holds it ("" when unknown or
    /// when it has no record).
    pub fn username(&self, player_id: i64) -> &str {
        self.slot(player_id).map_or("", |s| self.names.get(s.name))
    }

    /// Bytes its names take (with garbage not yet compacted).
    pub fn name_bytes(&self) -> usize {
        self.names.bytes()
    }

    /// Up to `limit` keys from rank `from` (1-based), best first.
    pub fn range(&self, from: usize, limit: usize) -> Vec<RankKey> {
        let mut out = Vec::with_capacity(limit.min(self.len()));
        let mut skip = from.saturating_sub(1);
        for block in &self.blocks {
            if out.len() == limit {
                break;
            }
            if skip >= block.len() {
                skip -= block.len();
                continue;
            }
            let take = (limit - out.len()).min(block.len() - skip);
            out.extend_from_slice(&block[skip..skip + take]);
            skip = 0;
        }
        out
    }
}

/// Orders keys as the index does (for callers that sort their own).
pub fn compare(a: &RankKey, b: &RankKey) -> Ordering {
    a.cmp(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(player_id: i64, score: i64) -> RankKey {
        RankKey {
            score: -score,
            subscore: 0,
            written_at: 0,
            player_id,
        }
    }

    fn name(player_id: i64) -> String {
        format!("player{player_id}")
    }

    /// The same records ranked by sorting them all.
    fn naive(index: &RankIndex) -> Vec<RankKey> {
        let mut all: Vec<RankKey> = index.entries().map(|(k, _, _)| k).collect();
        all.sort_by(compare);
        all
    }

    /// Every record's name is its player's, and the table and its map
    /// agree.
    fn names_hold(index: &RankIndex) {
        assert_eq!(index.slot_of.len(), index.slots.len());
        for (k, _, n) in index.entries() {
            assert_eq!(n, name(k.player_id));
            assert_eq!(index.username(k.player_id), name(k.player_id));
        }
    }

    #[test]
    fn ranks_match_a_full_sort_through_inserts_updates_and_removals() {
        let mut index = RankIndex::default();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for step in 0..20_000 {
            let player = (next() % 3_000) as i64;
            if next() % 10 == 0 {
                index.remove(player);
            } else {
                index.set(key(player, (next() % 500) as i64), step, &name(player));
            }
            if step % 997 == 0 {
                names_hold(&index);
                let sorted = naive(&index);
                assert_eq!(index.range(1, sorted.len()), sorted);
                for (i, k) in sorted.iter().enumerate().step_by(37) {
                    assert_eq!(index.rank(k.player_id), Some(i + 1));
                }
            }
        }
        assert!(index
            .blocks
            .iter()
            .all(|b| !b.is_empty() && b.len() <= MAX_BLOCK));
    }

    #[test]
    fn ties_break_on_subscore_then_the_earlier_write_then_the_player() {
        let mut index = RankIndex::default();
        let k = |player_id: i64, subscore: i64, written_at: i64| RankKey {
            score: -10,
            subscore: -subscore,
            written_at,
            player_id,
        };
        index.set(k(1, 0, 5), 1, "x");
        index.set(k(2, 1, 9), 1, "x");
        index.set(k(3, 0, 2), 1, "x");
        index.set(k(4, 0, 2), 1, "x");
        let order: Vec<i64> = index.range(1, 10).iter().map(|k| k.player_id).collect();
        assert_eq!(order, vec![2, 3, 4, 1]);
        assert_eq!(index.rank(1), Some(4));
        assert_eq!(index.rank(9), None);
        assert_eq!(index.range(3, 10).len(), 2);
        assert!(index.range(5, 10).is_empty());
        assert!(index.remove(2) && !index.remove(2));
        assert_eq!(index.rank(3), Some(1));
    }

    #[test]
    fn an_index_built_at_once_ranks_as_one_built_by_inserts() {
        let records: Vec<(RankKey, i64)> = (0..5_000_i64)
            .map(|p| (key(p, (p * 7919) % 1_009), 1))
            .collect();
        let mut loaded = Loaded::default();
        for (k, v) in &records {
            loaded.push(*k, *v, &name(k.player_id));
        }
        let built = RankIndex::build(loaded);
        names_hold(&built);
        let mut inserted = RankIndex::default();
        for (k, v) in &records {
            inserted.set(*k, *v, &name(k.player_id));
        }
        assert_eq!(built.range(1, 6_000), inserted.range(1, 6_000));
        for p in (0..5_000).step_by(97) {
            assert_eq!(built.rank(p), inserted.rank(p));
        }
        assert!(built.blocks.iter().all(|b| b.len() <= MAX_BLOCK));
        // A player twice keeps one record.
        let mut loaded = Loaded::default();
        for (k, v) in [(key(1, 5), 1), (key(2, 4), 1), (key(1, 9), 2)] {
            loaded.push(k, v, &name(k.player_id));
        }
        let twice = RankIndex::build(loaded);
        assert_eq!(twice.len(), 2);
        assert_eq!(twice.ranked(1), Some((1, key(1, 9))));
        names_hold(&twice);
    }

    #[test]
    fn an_older_version_arriving_late_changes_nothing() {
        let mut index = RankIndex::default();
        assert!(index.apply(key(1, 50), 2, "one"));
        assert!(!index.apply(key(1, 10), 1, "one"), "older");
        assert!(!index.apply(key(1, 10), 2, "one"), "same version");
        assert_eq!(index.ranked(1), Some((1, key(1, 50))));
        assert!(
            index.apply(key(1, 70), 3, ""),
            "a name not known keeps the one held"
        );
        assert_eq!(index.username(1), "one");
        assert_eq!(index.range(1, 5), vec![key(1, 70)]);
    }

    #[test]
    fn a_million_records_split_into_bounded_blocks() {
        let mut index = RankIndex::default();
        for p in 0..1_000_000_i64 {
            index.set(key(p, (p * 7919) % 100_003), 1, &name(p));
        }
        assert_eq!(index.len(), 1_000_000);
        assert!(index.blocks.len() >= 1_000_000 / MAX_BLOCK);
        let top = index.range(1, 3);
        assert_eq!(top[0].score, -100_002);
        assert_eq!(index.rank(top[2].player_id), Some(3));
        assert_eq!(index.username(top[2].player_id), name(top[2].player_id));
    }

    #[test]
    fn names_of_records_taken_out_are_compacted_away() {
        let mut index = RankIndex::default();
        for p in 0..20_000_i64 {
            index.set(key(p, p % 977), 1, &name(p));
        }
        let full = index.name_bytes();
        for p in (0..20_000_i64).filter(|p| p % 4 != 0) {
            assert!(index.remove(p));
        }
        assert!(
            index.name_bytes() < full / 2,
            "{} of {full}",
            index.name_bytes()
        );
        assert_eq!(index.len(), 5_000);
        names_hold(&index);
        assert_eq!(naive(&index), index.range(1, 10_000));
        // Back again, under their names.
        for p in (0..20_000_i64).filter(|p| p % 4 == 1) {
            index.set(key(p, 3), 2, &name(p));
        }
        names_hold(&index);
        assert_eq!(index.len(), 10_000);
    }
}
