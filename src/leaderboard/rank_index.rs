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

/// The index: sorted blocks, and each player's key with its record's
/// version (`leaderboard_records.version`).
#[derive(Debug, Default)]
pub struct RankIndex {
    blocks: Vec<Vec<RankKey>>,
    keys: HashMap<i64, (RankKey, i64)>,
}

impl RankIndex {
    /// Records held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// An index of `records` (one per player; keys and versions) built at
    /// once: sorted, then cut into half-full blocks — a rebuild of a million
    /// records in one sort instead of a million inserts.
    pub fn build(records: Vec<(RankKey, i64)>) -> RankIndex {
        let mut keys: HashMap<i64, (RankKey, i64)> = HashMap::with_capacity(records.len());
        for (k, v) in records {
            // A player twice keeps its newer record.
            let held = keys.entry(k.player_id).or_insert((k, v));
            if held.1 < v {
                *held = (k, v);
            }
        }
        let mut sorted: Vec<RankKey> = keys.values().map(|(k, _)| *k).collect();
        sorted.sort_unstable();
        let blocks = sorted
            .chunks(MAX_BLOCK / 2)
            .map(<[RankKey]>::to_vec)
            .collect();
        RankIndex { blocks, keys }
    }

    /// Every record held (key and version), in no order.
    pub fn entries(&self) -> impl Iterator<Item = (RankKey, i64)> + '_ {
        self.keys.values().copied()
    }

    /// The block that holds (or would hold) `key`.
    fn block_of(&self, key: &RankKey) -> usize {
        // The first block whose last key is not below `key`.
        let i = self
            .blocks
            .partition_point(|b| b.last().is_some_and(|last| last < key));
        i.min(self.blocks.len().saturating_sub(1))
    }

    /// Sets `key` (of record version `version`) as its player's record
    /// unless the one held is as new or newer; whether it was set.
    pub fn apply(&mut self, key: RankKey, version: i64) -> bool {
        if self
            .keys
            .get(&key.player_id)
            .is_some_and(|(_, held)| *held >= version)
        {
            return false;
        }
        self.set(key, version);
        true
    }

    /// Sets `key` as its player's record (replacing the one before).
    pub fn set(&mut self, key: RankKey, version: i64) {
        self.remove(key.player_id);
        self.keys.insert(key.player_id, (key, version));
        if self.blocks.is_empty() {
            self.blocks.push(vec![key]);
            return;
        }
        let b = self.block_of(&key);
        let block = &mut self.blocks[b];
        let at = block.partition_point(|k| k < &key);
        block.insert(at, key);
        if block.len() > MAX_BLOCK {
            let upper = block.split_off(block.len() / 2);
            self.blocks.insert(b + 1, upper);
        }
    }

    /// Removes a player's record; false when it had none.
    pub fn remove(&mut self, player_id: i64) -> bool {
        let Some((key, _)) = self.keys.remove(&player_id) else {
            return false;
        };
        let b = self.block_of(&key);
        let block = &mut self.blocks[b];
        if let Ok(at) = block.binary_search(&key) {
            block.remove(at);
        }
        if block.is_empty() {
            self.blocks.remove(b);
        }
        true
    }

    /// A player's rank (1 for the best), if it has a record.
    pub fn rank(&self, player_id: i64) -> Option<usize> {
        self.ranked(player_id).map(|(rank, _)| rank)
    }

    /// A player's rank and key, if it has a record.
    pub fn ranked(&self, player_id: i64) -> Option<(usize, RankKey)> {
        let (key, _) = self.keys.get(&player_id)?;
        let b = self.block_of(key);
        let before: usize = self.blocks[..b].iter().map(Vec::len).sum();
        let at = self.blocks[b].binary_search(key).ok()?;
        Some((before + at + 1, *key))
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

    /// The same records ranked by sorting them all.
    fn naive(keys: &HashMap<i64, (RankKey, i64)>) -> Vec<RankKey> {
        let mut all: Vec<RankKey> = keys.values().map(|(k, _)| *k).collect();
        all.sort_by(compare);
        all
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
                index.set(key(player, (next() % 500) as i64), step);
            }
            if step % 997 == 0 {
                let sorted = naive(&index.keys);
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
        index.set(k(1, 0, 5), 1);
        index.set(k(2, 1, 9), 1);
        index.set(k(3, 0, 2), 1);
        index.set(k(4, 0, 2), 1);
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
        let built = RankIndex::build(records.clone());
        let mut inserted = RankIndex::default();
        for (k, v) in &records {
            inserted.set(*k, *v);
        }
        assert_eq!(built.range(1, 6_000), inserted.range(1, 6_000));
        for p in (0..5_000).step_by(97) {
            assert_eq!(built.rank(p), inserted.rank(p));
        }
        assert!(built.blocks.iter().all(|b| b.len() <= MAX_BLOCK));
        // A player twice keeps one record.
        let twice = RankIndex::build(vec![(key(1, 5), 1), (key(2, 4), 1), (key(1, 9), 2)]);
        assert_eq!(twice.len(), 2);
        assert_eq!(twice.ranked(1), Some((1, key(1, 9))));
    }

    #[test]
    fn an_older_version_arriving_late_changes_nothing() {
        let mut index = RankIndex::default();
        assert!(index.apply(key(1, 50), 2));
        assert!(!index.apply(key(1, 10), 1), "older");
        assert!(!index.apply(key(1, 10), 2), "same version");
        assert_eq!(index.ranked(1), Some((1, key(1, 50))));
        assert!(index.apply(key(1, 70), 3));
        assert_eq!(index.range(1, 5), vec![key(1, 70)]);
    }

    #[test]
    fn a_million_records_split_into_bounded_blocks() {
        let mut index = RankIndex::default();
        for p in 0..1_000_000_i64 {
            index.set(key(p, (p * 7919) % 100_003), 1);
        }
        assert_eq!(index.len(), 1_000_000);
        assert!(index.blocks.len() >= 1_000_000 / MAX_BLOCK);
        let top = index.range(1, 3);
        assert_eq!(top[0].score, -100_002);
        assert_eq!(index.rank(top[2].player_id), Some(3));
    }
}
