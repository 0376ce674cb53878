//! Leaderboards (SPEC §12): boards defined by admins, scores written by
//! game servers and admins (by a player itself only where the board
//! allows), ranked reads by anyone authenticated in the game. A board's
//! periods start at the UTC boundary of its `reset`: a period is named by
//! its first day (`2026-12-07`), or `all` for a board that never resets.

use super::{require_player, Services};
use crate::clock;
use crate::error::ApiError;
use crate::leaderboard::{
    around_start, rank_key, scores_of, ViewAnswer, ViewKey, ViewOp, ViewRecord,
};
use crate::service::auth::{Caller, Role};
use crate::store::{
    Board, BoardEntry, BoardOperator, BoardRecord, BoardReset, BoardSort, NoticeKind, Rule,
    ScoreWrite, StoreError,
};
use crate::validate;
use serde::Deserialize;
use serde_json::{json, Value};

/// Most records one read answers.
pub const MAX_LIMIT: i64 = 100;
/// How long a shard answers from a board definition it read.
const BOARD_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// Ranks whose change is told to the player (`leaderboard` notifications).
pub const NOTIFIED_TOP: usize = 10;
/// Records a read answers unless asked otherwise.
const DEFAULT_LIMIT: i64 = 20;
/// Largest score (or subscore) magnitude accepted: sums of `incr` writes
/// stay far from overflowing a 64-bit integer.
pub const MAX_SCORE: i64 = 1 << 53;
const DAY_MS: i64 = 86_400_000;

/// `POST /api/v1/leaderboards`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardRequest {
    /// The board's id (1 to 64 of `[A-Za-z0-9_.-]`).
    pub id: String,
    /// `desc` (default) or `asc`.
    pub sort: Option<String>,
    /// `best` (default), `set` or `incr`.
    pub operator: Option<String>,
    /// `never` (default), `daily`, `weekly` or `monthly`.
    pub reset: Option<String>,
    /// Whether players may write their own scores (default false).
    pub player_writable: Option<bool>,
}

/// `POST /api/v1/leaderboards/{id}/scores`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    /// Whose score.
    pub player_id: i64,
    /// The score (for `incr`, what to add).
    pub score: i64,
    /// The second sort key (default 0).
    pub subscore: Option<i64>,
    /// A client's id for this write (1 to 64 of `[A-Za-z0-9_.-]`): an
    /// `incr` sent again with the same id right after (a retry) adds
    /// nothing more.
    pub write_id: Option<String>,
}

/// The binary protocol's Leaderboard (0x1007) body after its envelope
/// (`action`, `player_id`): the board and the action's own fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderboardMessage {
    /// The board's id.
    pub board: String,
    /// `submit`: the score.
    pub score: Option<i64>,
    /// `submit`: the subscore.
    pub subscore: Option<i64>,
    /// `submit`: the write's id (see [`ScoreRequest::write_id`]).
    pub write_id: Option<String>,
    /// `top`, `around`: how many records.
    pub limit: Option<i64>,
    /// `top`: where the page starts (an earlier page's `next_cursor`).
    pub cursor: Option<String>,
    /// `top`, `around`, `rank`: which period (default the current one).
    pub period: Option<String>,
}

/// The start (Unix ms) of the period of `reset` that holds `now_ms`; 0 for
/// a board that never resets.
pub fn period_start(reset: BoardReset, now_ms: i64) -> i64 {
    reset.period_start(now_ms)
}

/// A period's name: its first day, or `all`.
pub fn period_name(reset: BoardReset, start: i64) -> String {
    reset.period_name(start)
}

/// The period a `?period=` names (its first day, or `all`), checked to be a
/// period start of the board's `reset`.
fn parse_period(reset: BoardReset, name: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "period must be the first day of a {} period (YYYY-MM-DD){}",
            reset.as_str(),
            if reset == BoardReset::Never {
                ": this board has one, `all`"
            } else {
                ""
            }
        ))
    };
    if reset == BoardReset::Never {
        return if name == "all" { Ok(0) } else { Err(bad()) };
    }
    let parts: Vec<&str> = name.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i64>(), m.parse::<u32>(), d.parse::<u32>()) else {
        return Err(bad());
    };
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let start = clock::days_from_civil(y, m, d) * DAY_MS;
    if period_start(reset, start) != start || period_name(reset, start) != name {
        return Err(bad());
    }
    Ok(start)
}

fn record_json(r: &BoardRecord) -> Value {
    json!({
        "rank": r.rank,
        "player_id": r.player_id,
        "username": r.username,
        "score": r.score,
        "subscore": r.subscore,
    })
}

fn board_json(b: &Board) -> Value {
    json!({
        "id": b.id,
        "sort": b.sort,
        "operator": b.operator,
        "reset": b.reset,
        "player_writable": b.player_writable,
        "created_at": clock::rfc3339_ms(b.created_at),
    })
}

fn named<T>(
    field: &str,
    value: Option<&str>,
    default: T,
    parse: fn(&str) -> Option<T>,
    names: &str,
) -> Result<T, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => {
            parse(v).ok_or_else(|| ApiError::bad_request(format!("{field} must be one of {names}")))
        }
    }
}

impl Services {
    /// `POST /api/v1/leaderboards` (admin).
    pub async fn create_board(
        &self,
        caller: &Caller,
        game_id: &str,
        req: BoardRequest,
    ) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        self.require_admin(caller)?;
        validate::item_id(&req.id)
            .map_err(|_| ApiError::bad_request("id must be 1 to 64 of letters, digits, _ - ."))?;
        let board = Board {
            id: req.id,
            sort: named(
                "sort",
                req.sort.as_deref(),
                BoardSort::Desc,
                BoardSort::parse,
                "desc, asc",
            )?,
            operator: named(
                "operator",
                req.operator.as_deref(),
                BoardOperator::Best,
                BoardOperator::parse,
                "best, set, incr",
            )?,
            reset: named(
                "reset",
                req.reset.as_deref(),
                BoardReset::Never,
                BoardReset::parse,
                "never, daily, weekly, monthly",
            )?,
            player_writable: req.player_writable.unwrap_or(false),
            created_at: clock::now_ms(),
        };
        let stored = board.clone();
        game.store
            .run(async move |s| s.create_board(&stored).await)
            .await?;
        self.audit_alone(
            Some(game_id),
            self.actor(caller),
            "leaderboard.create",
            format!("leaderboard:{}", board.id),
            board_json(&board),
        )
        .await;
        Ok(json!({ "board": board_json(&board) }))
    }

    /// `GET /api/v1/leaderboards`.
    pub async fn boards(&self, _caller: &Caller, game_id: &str) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        let boards = game.store.run(async move |s| s.boards().await).await?;
        Ok(json!({ "boards": boards.iter().map(board_json).collect::<Vec<_>>() }))
    }

    /// `DELETE /api/v1/leaderboards/{id}` (admin): the board and its records.
    pub async fn delete_board(
        &self,
        caller: &Caller,
        game_id: &str,
        id: &str,
    ) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        self.require_admin(caller)?;
        let board = self.board_of(game_id, id).await?;
        let id_owned = id.to_string();
        if !game
            .store
            .run(async move |s| s.delete_board(&id_owned).await)
            .await?
        {
            return Err(ApiError::not_found(format!("no leaderboard `{id}`")));
        }
        self.known_boards
            .borrow_mut()
            .remove(&(game_id.to_string(), id.to_string()));
        self.forget_board_views(game_id, id, board.created_at, i64::MAX)
            .await;
        self.audit_alone(
            Some(game_id),
            self.actor(caller),
            "leaderboard.delete",
            format!("leaderboard:{id}"),
            json!({}),
        )
        .await;
        Ok(json!({ "deleted": id }))
    }

    /// A board's definition: from this shard's memory when read within
    /// [`BOARD_TTL`] (a board defined or withdrawn elsewhere shows here
    /// that much later), else from SQL.
    async fn board_of(&self, game_id: &str, id: &str) -> Result<Board, ApiError> {
        let key = (game_id.to_string(), id.to_string());
        if let Some((board, at)) = self.known_boards.borrow().get(&key) {
            if at.elapsed() < BOARD_TTL {
                return Ok(board.clone());
            }
        }
        let game = self.game(game_id)?;
        let id_owned = id.to_string();
        let board = game
            .store
            .run(async move |s| s.board(&id_owned).await)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no leaderboard `{id}`")))?;
        let mut known = self.known_boards.borrow_mut();
        if known.len() >= 10_000 {
            known.clear();
        }
        known.insert(key, (board.clone(), std::time::Instant::now()));
        Ok(board)
    }

    /// `POST /api/v1/leaderboards/{id}/scores`: game servers and admins;
    /// a player its own score where the board is `player_writable`. The
    /// record goes to SQL, then to the board's view, which answers its rank.
    pub async fn write_score(
        &self,
        caller: &Caller,
        game_id: &str,
        id: &str,
        req: ScoreRequest,
    ) -> Result<Value, ApiError> {
        let board = self.board_of(game_id, id).await?;
        match caller.role {
            Role::Player if !board.player_writable => {
                return Err(ApiError::forbidden(
                    "players may not write scores on this leaderboard",
                ))
            }
            _ => require_player(caller, game_id, req.player_id)?,
        }
        let subscore = req.subscore.unwrap_or(0);
        validate::in_range("score", req.score, -MAX_SCORE..=MAX_SCORE)?;
        validate::in_range("subscore", subscore, -MAX_SCORE..=MAX_SCORE)?;
        let write_id = req.write_id.unwrap_or_default();
        if !write_id.is_empty() {
            validate::item_id(&write_id).map_err(|_| {
                ApiError::bad_request("write_id must be 1 to 64 of letters, digits, _ - .")
            })?;
        }
        let now = self.board_clock();
        let period = board.reset.period_start(now);
        let game = self.game(game_id)?;
        let (player_id, score) = (req.player_id, req.score);
        let b = board.clone();
        let written = game
            .store
            .run(async move |s| {
                let write = ScoreWrite {
                    board: &b,
                    period,
                    player_id,
                    score,
                    subscore,
                    write_id: &write_id,
                    now_ms: now,
                };
                s.write_score(&write).await
            })
            .await?
            .ok_or_else(|| ApiError::from(StoreError::Rule(Rule::PlayerNotFound)))?;
        let answer = |record: Option<Value>| {
            json!({
                "board": board.id,
                "period": board.reset.period_name(period),
                "record": record,
            })
        };
        if !written.active {
            // Banned and deleted players are not ranked.
            return Ok(answer(None));
        }
        let entry = written.entry;
        self.learn_board_name(game_id, player_id, &written.username);
        let key = view_key(game_id, &board, period);
        let applied = self
            .ask_view(
                &key,
                board.sort,
                ViewOp::Apply(
                    rank_key(board.sort, &entry),
                    entry.version,
                    written.username.clone(),
                ),
            )
            .await;
        let rank = match applied {
            ViewAnswer::Applied(before, Some(after)) => {
                self.tell_top_ranks(game_id, &board, period, &entry, before, after)
                    .await;
                after as i64
            }
            _ => {
                self.answered_from_sql();
                let b = board.clone();
                match game
                    .store
                    .run(async move |s| s.board_record(&b, period, player_id).await)
                    .await?
                {
                    Some(r) => r.rank,
                    None => return Ok(answer(None)),
                }
            }
        };
        Ok(answer(Some(record_json(&BoardRecord {
            rank,
            player_id,
            username: written.username,
            score: entry.score,
            subscore: entry.subscore,
        }))))
    }

    /// A `leaderboard` notification for a player whose rank moved into (or
    /// within) the top [`NOTIFIED_TOP`]; a failure is logged, the write
    /// stands.
    async fn tell_top_ranks(
        &self,
        game_id: &str,
        board: &Board,
        period: i64,
        entry: &BoardEntry,
        before: Option<usize>,
        after: usize,
    ) {
        if after > NOTIFIED_TOP || before == Some(after) {
            return;
        }
        let Ok(game) = self.game(game_id) else { return };
        let data = json!({
            "board": board.id,
            "period": board.reset.period_name(period),
            "rank": after,
            "score": entry.score,
            "subscore": entry.subscore,
        });
        let (stored, now, player) = (
            self.config.realtime.persist,
            clock::now_ms(),
            [entry.player_id],
        );
        let made = game
            .store
            .run(async move |s| {
                s.send_notices(&player, NoticeKind::Leaderboard, &data, stored, false, now)
                    .await
            })
            .await;
        match made {
            Ok(notices) => self.publish(game_id, &notices),
            Err(e) => {
                tracing::warn!(game = game_id, board = %board.id, error = %e, "leaderboard notification not made")
            }
        }
    }

    fn period_of(&self, board: &Board, period: Option<&str>) -> Result<i64, ApiError> {
        match period {
            None => Ok(board.reset.period_start(self.board_clock())),
            Some(name) => parse_period(board.reset, name),
        }
    }

    /// Records from rank `offset + 1`, at most `limit`: from the board's
    /// view, or from SQL when the view cannot answer.
    async fn ranked_records(
        &self,
        game_id: &str,
        board: &Board,
        period: i64,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<BoardRecord>, ApiError> {
        let key = view_key(game_id, board, period);
        match self
            .ask_view(
                &key,
                board.sort,
                ViewOp::Range(offset as usize + 1, limit as usize),
            )
            .await
        {
            ViewAnswer::Range(records) => {
                self.board_records_named(game_id, board, offset + 1, records)
                    .await
            }
            _ => {
                self.answered_from_sql();
                let b = board.clone();
                Ok(self
                    .game(game_id)?
                    .store
                    .run(async move |s| s.board_records(&b, period, offset, limit).await)
                    .await?)
            }
        }
    }

    /// A view's records from rank `from` as answered: with their usernames
    /// (looked up for the views that hold none), those of players who do
    /// not show left out.
    async fn board_records_named(
        &self,
        game_id: &str,
        board: &Board,
        from: i64,
        mut records: Vec<ViewRecord>,
    ) -> Result<Vec<BoardRecord>, ApiError> {
        self.fill_board_names(game_id, &mut records).await?;
        Ok(records
            .into_iter()
            .enumerate()
            .filter(|(_, r)| !r.username.is_empty())
            .map(|(i, r)| {
                let (score, subscore) = scores_of(board.sort, &r.key);
                BoardRecord {
                    rank: from + i as i64,
                    player_id: r.key.player_id,
                    username: r.username,
                    score,
                    subscore,
                }
            })
            .collect())
    }

    /// One player's record with its rank: from the view, or from SQL.
    async fn ranked_record(
        &self,
        game_id: &str,
        board: &Board,
        period: i64,
        player_id: i64,
    ) -> Result<Option<BoardRecord>, ApiError> {
        let key = view_key(game_id, board, period);
        match self
            .ask_view(&key, board.sort, ViewOp::Ranked(player_id))
            .await
        {
            ViewAnswer::Ranked(None) => Ok(None),
            ViewAnswer::Ranked(Some((rank, record))) => Ok(self
                .board_records_named(game_id, board, rank as i64, vec![record])
                .await?
                .pop()),
            _ => {
                self.answered_from_sql();
                let b = board.clone();
                Ok(self
                    .game(game_id)?
                    .store
                    .run(async move |s| s.board_record(&b, period, player_id).await)
                    .await?)
            }
        }
    }

    /// At most `limit` records around a player's, the player's in the
    /// middle: one call to the view (or two reads of SQL when it cannot
    /// answer); `None` when the player has no record.
    async fn records_around(
        &self,
        game_id: &str,
        board: &Board,
        period: i64,
        player_id: i64,
        limit: i64,
    ) -> Result<Option<Vec<BoardRecord>>, ApiError> {
        let key = view_key(game_id, board, period);
        match self
            .ask_view(&key, board.sort, ViewOp::Around(player_id, limit as usize))
            .await
        {
            ViewAnswer::Around(None) => Ok(None),
            ViewAnswer::Around(Some((from, records))) => Ok(Some(
                self.board_records_named(game_id, board, from as i64, records)
                    .await?,
            )),
            _ => {
                self.answered_from_sql();
                let b = board.clone();
                let Some(mine) = self
                    .game(game_id)?
                    .store
                    .run(async move |s| s.board_record(&b, period, player_id).await)
                    .await?
                else {
                    return Ok(None);
                };
                let offset = around_start(mine.rank as usize, limit as usize) as i64 - 1;
                let b = board.clone();
                Ok(Some(
                    self.game(game_id)?
                        .store
                        .run(async move |s| s.board_records(&b, period, offset, limit).await)
                        .await?,
                ))
            }
        }
    }

    /// `GET /api/v1/leaderboards/{id}?limit=&cursor=&period=`: the top
    /// records; `cursor` is the rank the next page starts after.
    pub async fn board_top(
        &self,
        _caller: &Caller,
        game_id: &str,
        id: &str,
        limit: Option<i64>,
        cursor: Option<&str>,
        period: Option<&str>,
    ) -> Result<Value, ApiError> {
        let board = self.board_of(game_id, id).await?;
        let period = self.period_of(&board, period)?;
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        validate::in_range("limit", limit, 1..=MAX_LIMIT)?;
        let offset = match cursor {
            None | Some("") => 0,
            Some(c) => c
                .parse::<i64>()
                .ok()
                .filter(|o| (0..=i64::from(u32::MAX)).contains(o))
                .ok_or_else(|| {
                    ApiError::bad_request("cursor is the next_cursor of an earlier page")
                })?,
        };
        let records = self
            .ranked_records(game_id, &board, period, offset, limit + 1)
            .await?;
        let more = records.len() as i64 > limit;
        let shown: Vec<Value> = records
            .iter()
            .take(limit as usize)
            .map(record_json)
            .collect();
        Ok(json!({
            "board": board.id,
            "period": board.reset.period_name(period),
            "records": shown,
            "next_cursor": more.then(|| (offset + limit).to_string()),
        }))
    }

    /// `GET /api/v1/leaderboards/{id}/around/{player_id}?limit=`: the
    /// records around a player's (the player's in the middle).
    pub async fn board_around(
        &self,
        _caller: &Caller,
        game_id: &str,
        id: &str,
        player_id: i64,
        limit: Option<i64>,
        period: Option<&str>,
    ) -> Result<Value, ApiError> {
        let board = self.board_of(game_id, id).await?;
        let period = self.period_of(&board, period)?;
        let limit = limit.unwrap_or(DEFAULT_LIMIT.min(11));
        validate::in_range("limit", limit, 1..=MAX_LIMIT)?;
        let records = self
            .records_around(game_id, &board, period, player_id, limit)
            .await?
            .ok_or_else(|| ApiError::not_found("the player has no record on this leaderboard"))?;
        Ok(json!({
            "board": board.id,
            "period": board.reset.period_name(period),
            "records": records.iter().map(record_json).collect::<Vec<_>>(),
            "next_cursor": null,
        }))
    }

    /// `GET /api/v1/leaderboards/{id}/players/{player_id}`: one record.
    pub async fn board_player(
        &self,
        _caller: &Caller,
        game_id: &str,
        id: &str,
        player_id: i64,
        period: Option<&str>,
    ) -> Result<Value, ApiError> {
        let board = self.board_of(game_id, id).await?;
        let period = self.period_of(&board, period)?;
        let record = self
            .ranked_record(game_id, &board, period, player_id)
            .await?
            .ok_or_else(|| ApiError::not_found("the player has no record on this leaderboard"))?;
        Ok(record_json(&record))
    }

    /// A player's status changed: an active player's records go (back)
    /// into the views of its boards, a banned or deleted one's come out.
    pub(super) async fn board_player_shown(&self, game_id: &str, player_id: i64, shown: bool) {
        let Ok(game) = self.game(game_id) else { return };
        self.forget_board_name(game_id, player_id);
        let found = game
            .store
            .run(async move |s| {
                let entries = s.player_entries(player_id).await?;
                if entries.is_empty() {
                    return Ok::<_, StoreError>((entries, Vec::new(), String::new()));
                }
                let boards = s.boards().await?;
                // The views keep the name with the record (read once here).
                let name = match shown {
                    true => s.shown_usernames(&[player_id]).await?.pop(),
                    false => None,
                };
                Ok((entries, boards, name.map(|(_, n)| n).unwrap_or_default()))
            })
            .await;
        let (entries, boards, username) = match found {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(game = game_id, player_id, error = %e, "leaderboard views not updated for a status change");
                return;
            }
        };
        for (board_id, period, entry) in entries {
            let Some(board) = boards.iter().find(|b| b.id == board_id) else {
                continue;
            };
            let op = match shown {
                true => ViewOp::Apply(
                    rank_key(board.sort, &entry),
                    entry.version,
                    username.clone(),
                ),
                false => ViewOp::Remove(player_id),
            };
            self.ask_view(&view_key(game_id, board, period), board.sort, op)
                .await;
        }
    }
}

fn view_key(game_id: &str, board: &Board, period: i64) -> ViewKey {
    ViewKey {
        game: game_id.to_string(),
        board: board.id.clone(),
        generation: board.created_at,
        period,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_at_the_utc_boundary() {
        // 2026-12-09T15:00Z, a Wednesday.
        let t = clock::days_from_civil(2026, 12, 9) * DAY_MS + 15 * 3_600_000;
        assert_eq!(period_start(BoardReset::Never, t), 0);
        assert_eq!(
            period_name(BoardReset::Daily, period_start(BoardReset::Daily, t)),
            "2026-12-09"
        );
        assert_eq!(
            period_name(BoardReset::Weekly, period_start(BoardReset::Weekly, t)),
            "2026-12-07"
        );
        assert_eq!(
            period_name(BoardReset::Monthly, period_start(BoardReset::Monthly, t)),
            "2026-12-01"
        );
        assert_eq!(
            parse_period(BoardReset::Weekly, "2026-12-07").ok(),
            Some(period_start(BoardReset::Weekly, t))
        );
        assert!(
            parse_period(BoardReset::Weekly, "2026-12-08").is_err(),
            "not a Monday"
        );
        assert!(
            parse_period(BoardReset::Monthly, "2026-12-1").is_err(),
            "not as named"
        );
        assert!(parse_period(BoardReset::Daily, "2026-02-30").is_err());
        assert_eq!(parse_period(BoardReset::Never, "all").ok(), Some(0));
        assert!(parse_period(BoardReset::Never, "2026-12-07").is_err());
    }
}
