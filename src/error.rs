//! The one failure answer of the service layer, with its HTTP status and its
//! binary-protocol code, so both front ends answer a failure the same way.
//!
//! It sits on the lowest floor with the store's errors it translates: the
//! service, the front ends and the runtime name it; it names none of them.

use crate::protocol::codes;
use crate::store::{Rule, StoreError};
use crate::validate::Invalid;
use std::fmt;

/// A failure answer: a SPEC §4 code and a message safe to show a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP-like (400…503) or business (1001…3003) code.
    pub code: u32,
    /// Human-readable reason; never contains secrets.
    pub message: String,
    /// For 429: seconds until the budget has room again (HTTP
    /// `Retry-After`, `retry_after_s` in a TCP Error frame).
    pub retry_after_s: Option<u64>,
}

/// Business codes of SPEC §4.
pub mod business {
    /// Player not found.
    pub const PLAYER_NOT_FOUND: u32 = 1001;
    /// Username taken.
    pub const USERNAME_TAKEN: u32 = 1002;
    /// Wrong username or password.
    pub const BAD_CREDENTIALS: u32 = 1003;
    /// Player banned.
    pub const PLAYER_BANNED: u32 = 1004;
    /// Not enough items.
    pub const NOT_ENOUGH_ITEMS: u32 = 2001;
    /// Item not found.
    pub const ITEM_NOT_FOUND: u32 = 2002;
    /// Stack limit exceeded.
    pub const STACK_LIMIT: u32 = 2003;
    /// Not enough currency.
    pub const NOT_ENOUGH_CURRENCY: u32 = 3001;
    /// Order not found.
    pub const ORDER_NOT_FOUND: u32 = 3002;
    /// Order state does not allow this.
    pub const ORDER_STATE: u32 = 3003;
}

impl ApiError {
    /// An error with any code and message.
    pub fn new(code: u32, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// 429: a budget is spent; try again after `retry_after_s`.
    pub fn too_many(message: impl Into<String>, retry_after_s: u64) -> ApiError {
        ApiError {
            retry_after_s: Some(retry_after_s),
            ..ApiError::new(429, message)
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }

    /// 401: missing or invalid credentials.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(401, message)
    }

    /// 403: authenticated but not allowed.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, message)
    }

    /// 404: no such resource.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, message)
    }

    /// 409: a concurrent change won.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(409, message)
    }

    /// 500: a bug or an unexpected backend answer; details go to the log only.
    pub fn internal() -> ApiError {
        ApiError::new(500, "internal error")
    }

    /// 503: a backend is down or the server is shutting down.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, message)
    }

    /// The HTTP status that carries this error (SPEC §4 table).
    pub fn http_status(&self) -> u16 {
        match self.code {
            business::PLAYER_NOT_FOUND | business::ITEM_NOT_FOUND | business::ORDER_NOT_FOUND => {
                404
            }
            business::USERNAME_TAKEN
            | business::NOT_ENOUGH_ITEMS
            | business::STACK_LIMIT
            | business::NOT_ENOUGH_CURRENCY
            | business::ORDER_STATE => 409,
            business::BAD_CREDENTIALS => 401,
            business::PLAYER_BANNED => 403,
            c @ 400..=599 => c as u16,
            _ => 500,
        }
    }

    /// The code sent in a binary-protocol Error frame: generic HTTP failures
    /// map to the protocol codes of SPEC §2, business codes pass unchanged.
    pub fn tcp_code(&self) -> u32 {
        match self.code {
            400 | 405 | 411 => codes::MALFORMED,
            401 => codes::AUTH,
            403 => codes::FORBIDDEN,
            404 => codes::NOT_FOUND,
            408 | 504 => codes::TIMEOUT,
            413 => codes::TOO_LARGE,
            500..=599 => codes::INTERNAL,
            other => other,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                ApiError::unavailable("database unavailable")
            }
            StoreError::Conflict(what) => ApiError::conflict(format!("conflict on {what}")),
            StoreError::Rule(rule) => rule.into(),
            StoreError::Internal(detail) => {
                tracing::error!(error = %detail, "database error");
                ApiError::internal()
            }
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> ApiError {
        ApiError::bad_request(e.0)
    }
}

impl From<Rule> for ApiError {
    fn from(rule: Rule) -> ApiError {
        use business::*;
        match rule {
            Rule::PlayerNotFound => ApiError::new(PLAYER_NOT_FOUND, "player not found"),
            Rule::UsernameTaken => ApiError::new(USERNAME_TAKEN, "username already taken"),
            Rule::VersionConflict => {
                ApiError::conflict("version mismatch: the player was changed concurrently")
            }
            Rule::NotEnoughItems => ApiError::new(NOT_ENOUGH_ITEMS, "not enough items"),
            Rule::ItemNotFound => ApiError::new(ITEM_NOT_FOUND, "item not found"),
            Rule::StackLimit => ApiError::new(STACK_LIMIT, "stack limit exceeded"),
            Rule::NotEnoughCurrency => ApiError::new(NOT_ENOUGH_CURRENCY, "not enough currency"),
            Rule::OrderNotFound => ApiError::new(ORDER_NOT_FOUND, "order not found"),
            Rule::OrderState => ApiError::new(ORDER_STATE, "order state does not allow this"),
            Rule::AlreadyClaimed => ApiError::conflict("daily reward already claimed today"),
            Rule::IdempotencyMismatch => {
                ApiError::conflict("idempotency key already used for a different order")
            }
            Rule::ItemExists => ApiError::conflict("an item with this item_id exists"),
            Rule::NotForSale => ApiError::bad_request("item is not sold for this currency"),
            Rule::ExpLimit(max) => {
                ApiError::conflict(format!("exp would pass its maximum of {max}"))
            }
            Rule::LevelLimit(max) => {
                ApiError::conflict(format!("the player is at the highest level ({max})"))
            }
            Rule::BoardExists => ApiError::conflict("a leaderboard with this id exists"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_spec_table() {
        assert_eq!(ApiError::new(1001, "").http_status(), 404);
        assert_eq!(ApiError::new(1003, "").http_status(), 401);
        assert_eq!(ApiError::new(1004, "").http_status(), 403);
        assert_eq!(ApiError::new(2001, "").http_status(), 409);
        assert_eq!(ApiError::new(429, "").http_status(), 429);
        assert_eq!(ApiError::new(7, "").http_status(), 500);
    }

    #[test]
    fn tcp_codes_map_generic_failures() {
        assert_eq!(ApiError::unauthorized("").tcp_code(), 0xE003);
        assert_eq!(ApiError::forbidden("").tcp_code(), 0xE004);
        assert_eq!(ApiError::bad_request("").tcp_code(), 0xE002);
        assert_eq!(ApiError::unavailable("").tcp_code(), 0xE006);
        assert_eq!(ApiError::new(2001, "").tcp_code(), 2001);
    }
}
