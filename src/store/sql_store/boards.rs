//! The transactions of leaderboards ([`BoardStore`], SPEC §12): board
//! definitions, score writes — one statement each, an upsert whose update
//! applies the board's operator — and exact ranks read from the records'
//! index. Banned and deleted players never show.

use super::{row_of, SqlStore};
use crate::store::sql::{Backend, Dialect, Row, SqlValue};
use crate::store::{
    Board, BoardOperator, BoardRecord, BoardReset, BoardSort, BoardStore, Rule, ScoreWrite,
    StoreError, StoreFuture,
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
    format!("{insert}{key}{sets}")
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
            Ok(gone > 0)
        }))
    }

    fn write_score<'a>(&'a self, w: &'a ScoreWrite<'a>) -> StoreFuture<'a, Option<BoardRecord>> {
        Box::pin(async move {
            // The write alone, in its own transaction; the rank is read after.
            self.write(async |c| {
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
                .await
            })
            .await?;
            self.read(async |c| record_of(c, w.board, w.period, w.player_id).await)
                .await
        })
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
