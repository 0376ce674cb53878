//! Leaderboards' in-memory side (SPEC §12): the rank views reads are
//! served from. The SQL records stay the source of truth
//! (`store/sql_store/boards.rs`); a view is rebuilt from them.
//!
//! - [`rank_index`]: the order-statistics index a shard keeps for a board
//!   it owns when there is no Redis ([`local`] holds a shard's views).
//! - [`member`]: a record as a Redis sorted-set member whose byte order is
//!   the rank order, for the views kept in Redis (`service/board_views.rs`).
//! - [`name_cache`]: the usernames a shard looked up for the Redis views,
//!   which hold none (the local views keep their records' names).

pub mod local;
pub mod member;
pub mod name_cache;
pub mod rank_index;

use crate::store::{BoardEntry, BoardSort};
use rank_index::RankKey;

/// Which view: a game's board in one period.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ViewKey {
    /// The game.
    pub game: String,
    /// The board's id.
    pub board: String,
    /// When the board was defined (Unix ms): a board deleted and defined
    /// again, or one of another database behind the same Redis, never
    /// meets the old one's view.
    pub generation: i64,
    /// The period's start (Unix ms; 0 for a board that never resets).
    pub period: i64,
}

/// `entry`'s place in a board of `sort`: smaller is better. A `desc`
/// board's scores are complemented (`!x`), which reverses their order
/// without overflowing.
pub fn rank_key(sort: BoardSort, entry: &BoardEntry) -> RankKey {
    let order = |x: i64| match sort {
        BoardSort::Desc => !x,
        BoardSort::Asc => x,
    };
    RankKey {
        score: order(entry.score),
        subscore: order(entry.subscore),
        written_at: entry.written_at,
        player_id: entry.player_id,
    }
}

/// The score and subscore a [`rank_key`] was made from.
pub fn scores_of(sort: BoardSort, key: &RankKey) -> (i64, i64) {
    match sort {
        BoardSort::Desc => (!key.score, !key.subscore),
        BoardSort::Asc => (key.score, key.subscore),
    }
}

/// What is asked of a view.
#[derive(Debug, Clone)]
pub enum ViewOp {
    /// Apply a record of this version (unless the view holds a newer one),
    /// its player's username with it ("" when not known here).
    Apply(RankKey, i64, String),
    /// Take a player's record out.
    Remove(i64),
    /// One player's rank.
    Ranked(i64),
    /// Keys from a rank (1-based), at most a number.
    Range(usize, usize),
    /// At most a number of records around a player's, the player's in the
    /// middle (`GET .../around/{player_id}` in one call).
    Around(i64, usize),
}

/// A record as a view answers it: its key, and its player's username —
/// "" when the view does not hold names (Redis): the caller looks it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewRecord {
    /// The record's place in the order.
    pub key: RankKey,
    /// The player's username, or "".
    pub username: String,
}

/// A view's answer.
#[derive(Debug, Clone)]
pub enum ViewAnswer {
    /// Applied: the player's rank before and after.
    Applied(Option<usize>, Option<usize>),
    /// Removed.
    Removed,
    /// The player's rank and record, if it has one.
    Ranked(Option<Ranked>),
    /// Records in rank order.
    Range(Vec<ViewRecord>),
    /// The rank of the first of the records around a player, and the
    /// records in rank order; `None` when the player has no record.
    Around(Option<(usize, Vec<ViewRecord>)>),
    /// The view cannot answer: read SQL instead.
    Unavailable,
}

/// A rank as a view answers it: the player's place (1 for the best) and
/// its record.
pub type Ranked = (usize, ViewRecord);

/// Where the records around a player of rank `rank` start (1-based), at
/// most `limit` of them with the player's in the middle.
pub fn around_start(rank: usize, limit: usize) -> usize {
    rank.saturating_sub(limit.saturating_sub(1) / 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_as_the_board_sorts_and_give_back_their_scores() {
        let e = |player_id, score, subscore, written_at| BoardEntry {
            player_id,
            score,
            subscore,
            written_at,
            version: 1,
        };
        let (hi, lo, tie_sub, tie_late) = (
            e(1, i64::MAX, 0, 5),
            e(2, i64::MIN, 0, 5),
            e(3, i64::MAX, -1, 5),
            e(4, i64::MAX, 0, 6),
        );
        let desc = |x| rank_key(BoardSort::Desc, x);
        assert!(desc(&hi) < desc(&lo));
        assert!(desc(&hi) < desc(&tie_sub));
        assert!(desc(&hi) < desc(&tie_late));
        let asc = |x| rank_key(BoardSort::Asc, x);
        assert!(asc(&lo) < asc(&hi));
        assert!(asc(&tie_sub) < asc(&hi));
        assert!(asc(&hi) < asc(&tie_late), "the earlier write first");
        for sort in [BoardSort::Desc, BoardSort::Asc] {
            for x in [&hi, &lo, &tie_sub] {
                assert_eq!(scores_of(sort, &rank_key(sort, x)), (x.score, x.subscore));
            }
        }
    }
}
