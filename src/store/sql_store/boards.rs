//! The transactions of leaderboards ([`BoardStore`], SPEC §12): board
//! definitions, score writes — one statement each, an upsert whose update
//! applies the board's operator — and exact ranks read from the records'
//! index. Banned and deleted players never show.

use super::{row_of, SqlStore};
use crate::store::sql::{Backend, Dialect, Row, SqlValue};
use crate::store::{
    Board, BoardArchive, BoardEntry, BoardOperator, BoardRecord, BoardReset, BoardSort, BoardStore,
    Rule, ScoreWrite, ScoreWritten, StoreError, StoreFuture,
};

const BOARD_COLUMNS: &str = "id, sort, operator, reset, player_writable, created_at";

fn board_from(r: &Row) -> Result<Board, StoreError> {
    row_of("leaderboards", r, |r| {
        Ok(Board {
            id: r.text(0)?,
            sort: r.parsed(1, "a board sort", BoardSort::parse)?,
            operator: r.parsed(2, "a board operator", BoardOperator::parse)?,
            reset: r.parsed(3, "a board reset", BoardReset::parse)?,
            player_writable: r.int(4)? != 0,
            created_at: r.int(5)?,
        })
    })
}

/// The upsert of a score write under `board`'s operator. On MySQL the
/// assignments run left to right, each seeing the ones before: `best`
/// sets the score last (when only the subscore was better, the score is
/// the same either way), `incr` the write id last.
fn upsert(dialect: Dialect, board: &Board) -> String {
    let insert = "INSERT INTO leaderboard_records (board_id, period, player_id, score, subscore, \
                  written_at, last_write) VALUES (?, ?, ?, ?, ?, ?, ?)";
    let better = match board.sort {
        BoardSort::Desc => ">",
        BoardSort::Asc => "<",
    };
    let (new, key) = match dialect {
        Dialect::Sqlite => (
            "excluded.",
            " ON CONFLICT (board_id, period, player_id) DO UPDATE SET ",
        ),
        Dialect::Mysql => ("", " ON DUPLICATE KEY UPDATE "),
    };
    let v = |col: &str| match dialect {
        Dialect::Sqlite => format!("{new}{col}"),
        Dialect::Mysql => format!("VALUES({col})"),
    };
    let (score, subscore, at, write) =
        (v("score"), v("subscore"), v("written_at"), v("last_write"));
    let repeat = format!("(last_write <> '' AND last_write = {write})");
    // Every write makes a new version, which the rank views order by.
    let sets = match board.operator {
        BoardOperator::Set => {
            format!(
                "score = {score}, subscore = {subscore}, written_at = {at}, last_write = {write}"
            )
        }
        BoardOperator::Incr => format!(
            "score = CASE WHEN {repeat} THEN score ELSE score + {score} END, \
             subscore = CASE WHEN {repeat} THEN subscore ELSE subscore + {subscore} END, \
             written_at = CASE WHEN {repeat} THEN written_at ELSE {at} END, \
             last_write = {write}"
        ),
        BoardOperator::Best => {
            let wins = format!(
                "({score} {better} score OR ({score} = score AND {subscore} {better} subscore))"
            );
            format!(
                "written_at = CASE WHEN {wins} THEN {at} ELSE written_at END, \
                 last_write = CASE WHEN {wins} THEN {write} ELSE last_write END, \
                 subscore = CASE WHEN {wins} THEN {subscore} ELSE subscore END, \
                 score = CASE WHEN {score} {better} score OR ({score} = score AND {subscore} {better}= subscore) THEN {score} ELSE score END"
            )
        }
    };
    format!("{insert}{key}version = version + 1, {sets}")
}

/// `ORDER BY` of a board's ranks.
fn rank_order(sort: BoardSort) -> &'static str {
    match sort {
        BoardSort::Desc => "r.score DESC, r.subscore DESC, r.written_at, r.player_id",
        BoardSort::Asc => "r.score, r.subscore, r.written_at, r.player_id",
    }
}

/// Records ahead of a record with these keys: its rank is one more.
fn ahead_of(sort: BoardSort) -> &'static str {
    match sort {
        BoardSort::Desc => {
            "(r.score > ? OR (r.score = ? AND (r.subscore > ? OR (r.subscore = ? AND \
             (r.written_at < ? OR (r.written_at = ? AND r.player_id < ?))))))"
        }
        BoardSort::Asc => {
            "(r.score < ? OR (r.score = ? AND (r.subscore < ? OR (r.subscore = ? AND \
             (r.written_at < ? OR (r.written_at = ? AND r.player_id < ?))))))"
        }
    }
}

const SHOWN: &str = "JOIN players p ON p.id = r.player_id AND p.status = 'active'";

/// The columns of a [`BoardEntry`], in [`entry_from`]'s order.
const ENTRY_COLUMNS: &str = "r.player_id, r.score, r.subscore, r.written_at, r.version";

fn entry_from(r: &Row) -> Result<BoardEntry, StoreError> {
    row_of("leaderboard_records", r, |r| {
        Ok(BoardEntry {
            player_id: r.int(0)?,
            score: r.int(1)?,
            subscore: r.int(2)?,
            written_at: r.int(3)?,
            version: r.int(4)?,
        })
    })
}

async fn record_of(
    c: &mut dyn crate::store::sql::SqlConn,
    board: &Board,
    period: i64,
    player_id: i64,
) -> Result<Option<BoardRecord>, StoreError> {
    let Some(row) = c
        .query_one(
            &format!(
                "SELECT r.score, r.subscore, r.written_at, p.username FROM leaderboard_records r \
                 {SHOWN} WHERE r.board_id = ? AND r.period = ? AND r.player_id = ?"
            ),
            args![&board.id, period, player_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let (score, subscore, at, username) = row_of("leaderboard_records", &row, |r| {
        Ok((r.int(0)?, r.int(1)?, r.int(2)?, r.text(3)?))
    })?;
    let ahead = super::count(
        c,
        &format!(
            "SELECT COUNT(*) FROM leaderboard_records r {SHOWN} \
             WHERE r.board_id = ? AND r.period = ? AND {}",
            ahead_of(board.sort)
        ),
        args![&board.id, period, score, score, subscore, subscore, at, at, player_id],
    )
    .await?;
    Ok(Some(BoardRecord {
        rank: ahead + 1,
        player_id,
        username,
        score,
        subscore,
    }))
}

/// The leaderboard reset job's work (in the fenced job's transaction):
/// archives each resetting board's period that ended by `now_ms` — once,
/// the archive's key being the board and period — and deletes records of
/// periods no longer kept. Rows changed.
pub(super) async fn reset_boards(
    c: &mut dyn crate::store::sql::SqlConn,
    holder: &str,
    now_ms: i64,
    keep_periods: i64,
) -> Result<u64, StoreError> {
    let boards: Vec<Board> = c
        .query(
            &format!("SELECT {BOARD_COLUMNS} FROM leaderboards WHERE reset <> 'never' ORDER BY id"),
            &[],
        )
        .await?
        .iter()
        .map(board_from)
        .collect::<Result<_, _>>()?;
    let mut changed = 0;
    for board in boards {
        let current = board.reset.period_start(now_ms);
        let ended = board.reset.previous_period(current);
        // A board defined during the current period has no ended one.
        if board.created_at < current {
            let done = c
                .query_one(
                    "SELECT 1 FROM leaderboard_archives WHERE board_id = ? AND period = ?",
                    args![&board.id, ended],
                )
                .await?
                .is_some();
            if !done {
                let records = super::count(
                    c,
                    "SELECT COUNT(*) FROM leaderboard_records WHERE board_id = ? AND period = ?",
                    args![&board.id, ended],
                )
                .await?;
                changed += c
                    .exec(
                        "INSERT INTO leaderboard_archives (board_id, period, closed_at, records, holder) \
                         VALUES (?, ?, ?, ?, ?)",
                        args![&board.id, ended, now_ms, records, holder],
                    )
                    .await?;
                tracing::info!(board = %board.id, period = %board.reset.period_name(ended), records, "leaderboard period closed");
            }
        }
        let first_kept = board.reset.first_kept(current, keep_periods);
        changed += c
            .exec(
                "DELETE FROM leaderboard_records WHERE board_id = ? AND period < ?",
                args![&board.id, first_kept],
            )
            .await?;
    }
    Ok(changed)
}

impl<B: Backend> BoardStore for SqlStore<B> {
    fn create_board<'a>(&'a self, board: &'a Board) -> StoreFuture<'a, ()> {
        Box::pin(self.write(async move |c| {
            let inserted = c
                .exec(
                    &format!(
                        "INSERT INTO leaderboards ({BOARD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                    ),
                    args![
                        &board.id,
                        board.sort.as_str(),
                        board.operator.as_str(),
                        board.reset.as_str(),
                        i64::from(board.player_writable),
                        board.created_at
                    ],
                )
                .await;
            match inserted {
                Err(StoreError::Conflict(_)) => Err(StoreError::Rule(Rule::BoardExists)),
                other => other.map(|_| ()),
            }
        }))
    }

    fn boards(&self) -> StoreFuture<'_, Vec<Board>> {
        Box::pin(self.read_one(async move |c| {
            c.query(
                &format!("SELECT {BOARD_COLUMNS} FROM leaderboards ORDER BY id"),
                &[],
            )
            .await?
            .iter()
            .map(board_from)
            .collect()
        }))
    }

    fn board<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Board>> {
        Box::pin(self.read_one(async move |c| {
            c.query_one(
                &format!("SELECT {BOARD_COLUMNS} FROM leaderboards WHERE id = ?"),
                args![id],
            )
            .await?
            .map(|r| board_from(&r))
            .transpose()
        }))
    }

    fn delete_board<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(self.write(async move |c| {
            let gone = c
                .exec("DELETE FROM leaderboards WHERE id = ?", args![id])
                .await?;
            c.exec(
                "DELETE FROM leaderboard_records WHERE board_id = ?",
                args![id],
            )
            .await?;
            c.exec(
                "DELETE FROM leaderboard_archives WHERE board_id = ?",
                args![id],
            )
            .await?;
            Ok(gone > 0)
        }))
    }

    fn write_score<'a>(&'a self, w: &'a ScoreWrite<'a>) -> StoreFuture<'a, Option<ScoreWritten>> {
        Box::pin(self.write(async |c| {
            let Some(player) = c
                .query_one(
                    "SELECT username, status FROM players WHERE id = ?",
                    args![w.player_id],
                )
                .await?
            else {
                return Ok(None);
            };
            let (username, status) = row_of("players", &player, |r| Ok((r.text(0)?, r.text(1)?)))?;
            // The write itself: one statement.
            let sql = upsert(c.dialect(), w.board);
            c.exec(
                &sql,
                args![
                    &w.board.id,
                    w.period,
                    w.player_id,
                    w.score,
                    w.subscore,
                    w.now_ms,
                    w.write_id
                ],
            )
            .await?;
            let row = c
                .query_one(
                    &format!(
                        "SELECT {ENTRY_COLUMNS} FROM leaderboard_records r \
                         WHERE r.board_id = ? AND r.period = ? AND r.player_id = ?"
                    ),
                    args![&w.board.id, w.period, w.player_id],
                )
                .await?
                .ok_or_else(|| StoreError::Internal("a written record is missing".into()))?;
            Ok(Some(ScoreWritten {
                entry: entry_from(&row)?,
                username,
                active: status == "active",
            }))
        }))
    }

    fn board_entries<'a>(
        &'a self,
        board_id: &'a str,
        period: i64,
        after_player: i64,
        limit: i64,
    ) -> StoreFuture<'a, Vec<(BoardEntry, String)>> {
        Box::pin(self.read_one(async move |c| {
            c.query(
                &format!(
                    "SELECT {ENTRY_COLUMNS}, p.username FROM leaderboard_records r {SHOWN} \
                     WHERE r.board_id = ? AND r.period = ? AND r.player_id > ? \
                     ORDER BY r.player_id LIMIT ?"
                ),
                args![board_id, period, after_player, limit],
            )
            .await?
            .iter()
            .map(|r| {
                let entry = entry_from(r)?;
                row_of("players", r, |r| Ok((entry, r.text(5)?)))
            })
            .collect()
        }))
    }

    fn player_entries(&self, player_id: i64) -> StoreFuture<'_, Vec<(String, i64, BoardEntry)>> {
        Box::pin(self.read_one(async move |c| {
            c.query(
                &format!(
                    "SELECT {ENTRY_COLUMNS}, r.board_id, r.period FROM leaderboard_records r \
                     WHERE r.player_id = ?"
                ),
                args![player_id],
            )
            .await?
            .iter()
            .map(|r| {
                let entry = entry_from(r)?;
                row_of("leaderboard_records", r, |r| {
                    Ok((r.text(5)?, r.int(6)?, entry))
                })
            })
            .collect()
        }))
    }

    fn shown_usernames<'a>(&'a self, ids: &'a [i64]) -> StoreFuture<'a, Vec<(i64, String)>> {
        Box::pin(self.read_one(async move |c| {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let marks = vec!["?"; ids.len()].join(", ");
            let args: Vec<SqlValue> = ids.iter().map(|id| SqlValue::Int(*id)).collect();
            c.query(
                &format!(
                    "SELECT id, username FROM players WHERE status = 'active' AND id IN ({marks})"
                ),
                &args,
            )
            .await?
            .iter()
            .map(|r| row_of("players", r, |r| Ok((r.int(0)?, r.text(1)?))))
            .collect()
        }))
    }

    fn board_archives<'a>(&'a self, board_id: &'a str) -> StoreFuture<'a, Vec<BoardArchive>> {
        Box::pin(self.read_one(async move |c| {
            c.query(
                "SELECT period, closed_at, records, holder FROM leaderboard_archives \
                 WHERE board_id = ? ORDER BY period DESC",
                args![board_id],
            )
            .await?
            .iter()
            .map(|r| {
                row_of("leaderboard_archives", r, |r| {
                    Ok(BoardArchive {
                        period: r.int(0)?,
                        closed_at: r.int(1)?,
                        records: r.int(2)?,
                        holder: r.text(3)?,
                    })
                })
            })
            .collect()
        }))
    }

    fn board_records<'a>(
        &'a self,
        board: &'a Board,
        period: i64,
        offset: i64,
        limit: i64,
    ) -> StoreFuture<'a, Vec<BoardRecord>> {
        Box::pin(self.read_one(async move |c| {
            let rows = c
                .query(
                    &format!(
                        "SELECT r.player_id, p.username, r.score, r.subscore FROM leaderboard_records r \
                         {SHOWN} WHERE r.board_id = ? AND r.period = ? ORDER BY {} LIMIT ? OFFSET ?",
                        rank_order(board.sort)
                    ),
                    args![&board.id, period, limit, offset],
                )
                .await?;
            rows.iter()
                .enumerate()
                .map(|(i, r)| {
                    row_of("leaderboard_records", r, |r| {
                        Ok(BoardRecord {
                            rank: offset + i as i64 + 1,
                            player_id: r.int(0)?,
                            username: r.text(1)?,
                            score: r.int(2)?,
                            subscore: r.int(3)?,
                        })
                    })
                })
                .collect()
        }))
    }

    fn board_record<'a>(
        &'a self,
        board: &'a Board,
        period: i64,
        player_id: i64,
    ) -> StoreFuture<'a, Option<BoardRecord>> {
        Box::pin(self.read(async move |c| record_of(c, board, period, player_id).await))
    }
}
