//! The leaderboards' records (SPEC §12): board definitions, their sorts,
//! operators and periods, score writes and the records the rank views and
//! reads carry. Apart from `model.rs` so that each file holds one domain.

use serde::Serialize;

/// How a leaderboard orders its records (SPEC §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BoardSort {
    /// Highest score first.
    Desc,
    /// Lowest score first.
    Asc,
}

/// How a score write changes a player's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BoardOperator {
    /// Keeps the better of the record and the write.
    Best,
    /// Replaces the record.
    Set,
    /// Adds the write to the record.
    Incr,
}

/// When a leaderboard starts a new period (at the UTC boundary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BoardReset {
    /// One period for ever.
    Never,
    /// Every UTC day.
    Daily,
    /// Every ISO week (Monday, UTC).
    Weekly,
    /// Every calendar month (UTC).
    Monthly,
}

macro_rules! named_enum {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            /// The stored (and JSON) name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
            /// The value a stored name stands for.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$v),)* _ => None }
            }
        }
    };
}
named_enum!(BoardSort { Desc => "desc", Asc => "asc" });
named_enum!(BoardOperator { Best => "best", Set => "set", Incr => "incr" });
named_enum!(BoardReset { Never => "never", Daily => "daily", Weekly => "weekly", Monthly => "monthly" });

const DAY_MS: i64 = 86_400_000;

impl BoardReset {
    /// The start (Unix ms) of the period that holds `now_ms`: the UTC
    /// midnight of its first day (ISO weeks start on Monday); 0 for a board
    /// that never resets.
    pub fn period_start(self, now_ms: i64) -> i64 {
        let day = now_ms.div_euclid(DAY_MS);
        let first_day = match self {
            BoardReset::Never => return 0,
            BoardReset::Daily => day,
            // 1970-01-01 was a Thursday: Monday is 3 days before.
            BoardReset::Weekly => day - (day + 3).rem_euclid(7),
            BoardReset::Monthly => {
                let (y, m, _) = crate::clock::civil_from_days(day);
                crate::clock::days_from_civil(y, m, 1)
            }
        };
        first_day * DAY_MS
    }

    /// The start of the period before the one starting at `start`.
    pub fn previous_period(self, start: i64) -> i64 {
        self.period_start(start - 1)
    }

    /// The first period kept when the current one starts at `current`: the
    /// current one and `keep_periods` before it.
    pub fn first_kept(self, current: i64, keep_periods: i64) -> i64 {
        let mut first = current;
        for _ in 0..keep_periods {
            first = self.previous_period(first);
        }
        first
    }

    /// A period's name: its first day (`2026-12-07`), or `all`.
    pub fn period_name(self, start: i64) -> String {
        if self == BoardReset::Never {
            return "all".into();
        }
        let (y, m, d) = crate::clock::civil_from_days(start.div_euclid(DAY_MS));
        format!("{y:04}-{m:02}-{d:02}")
    }
}

/// A leaderboard's definition (SPEC §12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Board {
    /// Its id within the game.
    pub id: String,
    /// Its order.
    pub sort: BoardSort,
    /// How a write changes a record.
    pub operator: BoardOperator,
    /// When a new period starts.
    pub reset: BoardReset,
    /// Whether a player may write its own score.
    pub player_writable: bool,
    /// When it was defined (Unix ms).
    pub created_at: i64,
}

/// One player's record on a board, with its exact rank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardRecord {
    /// 1 for the best.
    pub rank: i64,
    /// Whose record.
    pub player_id: i64,
    /// The player's username.
    pub username: String,
    /// Its score.
    pub score: i64,
    /// Its subscore (the second sort key).
    pub subscore: i64,
}

/// A record as the rank views hold it (`leaderboard/`): its sort keys and
/// its version, which grows by one with every write of the record, so a
/// view applies writes that reach it out of order only when newer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoardEntry {
    /// Whose record.
    pub player_id: i64,
    /// Its score.
    pub score: i64,
    /// Its subscore.
    pub subscore: i64,
    /// When its keys last changed (Unix ms; the earlier write ranks first).
    pub written_at: i64,
    /// Its version (1 once inserted).
    pub version: i64,
}

/// What a score write left: the record, and whether its player shows in
/// ranks (not banned, not deleted).
#[derive(Debug, Clone)]
pub struct ScoreWritten {
    /// The record after the write.
    pub entry: BoardEntry,
    /// The player's username.
    pub username: String,
    /// Whether the player is active (only active players are ranked).
    pub active: bool,
}

/// A closed period of a board, archived by the reset job (exactly once in
/// a cluster: `(board_id, period)` is the row's key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardArchive {
    /// The closed period's start (Unix ms).
    pub period: i64,
    /// When the job closed it (Unix ms).
    pub closed_at: i64,
    /// Its records then.
    pub records: i64,
    /// The job holder that closed it (`node/instance`).
    pub holder: String,
}

/// A score write (SPEC §12).
#[derive(Debug, Clone)]
pub struct ScoreWrite<'a> {
    /// The board.
    pub board: &'a Board,
    /// The period's start (Unix ms; 0 for a board that never resets).
    pub period: i64,
    /// Whose score.
    pub player_id: i64,
    /// The score (for `incr`, what to add).
    pub score: i64,
    /// The subscore (likewise).
    pub subscore: i64,
    /// A client's id for this write: an `incr` repeated with the same id
    /// (a retry) adds nothing more.
    pub write_id: &'a str,
    /// When it is written (Unix ms).
    pub now_ms: i64,
}
