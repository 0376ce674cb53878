//! Leaderboards (SPEC §12): boards defined by admins, scores written by
//! game servers and admins (by a player itself only where the board
//! allows), ranked reads by anyone authenticated in the game. A board's
//! periods start at the UTC boundary of its `reset`: a period is named by
//! its first day (`2026-12-07`), or `all` for a board that never resets.

use super::{require_player, Services};
use crate::clock;
use crate::error::ApiError;
use crate::service::auth::{Caller, Role};
use crate::store::{Board, BoardOperator, BoardRecord, BoardReset, BoardSort, ScoreWrite};
use crate::validate;
use serde::Deserialize;
use serde_json::{json, Value};

/// Most records one read answers.
pub const MAX_LIMIT: i64 = 100;
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
    let day = now_ms.div_euclid(DAY_MS);
    let first_day = match reset {
        BoardReset::Never => return 0,
        BoardReset::Daily => day,
        // 1970-01-01 was a Thursday: Monday is 3 days before.
        BoardReset::Weekly => day - (day + 3).rem_euclid(7),
        BoardReset::Monthly => {
            let (y, m, _) = clock::civil_from_days(day);
            clock::days_from_civil(y, m, 1)
        }
    };
    first_day * DAY_MS
}

/// A period's name: its first day, or `all`.
pub fn period_name(reset: BoardReset, start: i64) -> String {
    if reset == BoardReset::Never {
        return "all".into();
    }
    let (y, m, d) = clock::civil_from_days(start.div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
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
        let id_owned = id.to_string();
        if !game
            .store
            .run(async move |s| s.delete_board(&id_owned).await)
            .await?
        {
            return Err(ApiError::not_found(format!("no leaderboard `{id}`")));
        }
        Ok(json!({ "deleted": id }))
    }

    async fn board_of(&self, game_id: &str, id: &str) -> Result<Board, ApiError> {
        let game = self.game(game_id)?;
        let id_owned = id.to_string();
        game.store
            .run(async move |s| s.board(&id_owned).await)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no leaderboard `{id}`")))
    }

    /// `POST /api/v1/leaderboards/{id}/scores`: game servers and admins;
    /// a player its own score where the board is `player_writable`.
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
        let now = clock::now_ms();
        let period = period_start(board.reset, now);
        let game = self.game(game_id)?;
        let (player_id, score) = (req.player_id, req.score);
        let b = board.clone();
        let record = game
            .store
            .run(async move |s| {
                if s.player(player_id).await?.is_none() {
                    return Err(crate::store::StoreError::Rule(
                        crate::store::Rule::PlayerNotFound,
                    ));
                }
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
            .await?;
        Ok(json!({
            "board": board.id,
            "period": period_name(board.reset, period),
            "record": record.as_ref().map(record_json),
        }))
    }

    fn period_of(board: &Board, period: Option<&str>) -> Result<i64, ApiError> {
        match period {
            None => Ok(period_start(board.reset, clock::now_ms())),
            Some(name) => parse_period(board.reset, name),
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
        let period = Self::period_of(&board, period)?;
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
        let game = self.game(game_id)?;
        let b = board.clone();
        let records = game
            .store
            .run(async move |s| s.board_records(&b, period, offset, limit + 1).await)
            .await?;
        let more = records.len() as i64 > limit;
        let shown: Vec<Value> = records
            .iter()
            .take(limit as usize)
            .map(record_json)
            .collect();
        Ok(json!({
            "board": board.id,
            "period": period_name(board.reset, period),
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
        let period = Self::period_of(&board, period)?;
        let limit = limit.unwrap_or(DEFAULT_LIMIT.min(11));
        validate::in_range("limit", limit, 1..=MAX_LIMIT)?;
        let game = self.game(game_id)?;
        let b = board.clone();
        let records = game
            .store
            .run(async move |s| {
                let Some(mine) = s.board_record(&b, period, player_id).await? else {
                    return Ok(None);
                };
                let offset = (mine.rank - 1 - (limit - 1) / 2).max(0);
                s.board_records(&b, period, offset, limit).await.map(Some)
            })
            .await?
            .ok_or_else(|| ApiError::not_found("the player has no record on this leaderboard"))?;
        Ok(json!({
            "board": board.id,
            "period": period_name(board.reset, period),
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
        let period = Self::period_of(&board, period)?;
        let game = self.game(game_id)?;
        let b = board.clone();
        let record = game
            .store
            .run(async move |s| s.board_record(&b, period, player_id).await)
            .await?
            .ok_or_else(|| ApiError::not_found("the player has no record on this leaderboard"))?;
        Ok(record_json(&record))
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
