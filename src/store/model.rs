//! Rows of the per-game database as plain Rust values, shared by every backend.

use serde::Serialize;

/// A player's profile and balances (the `players` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Player {
    /// 64-bit primary key.
    pub id: i64,
    /// Unique within the game.
    pub username: String,
    /// Contact address, possibly empty.
    pub email: String,
    /// Display name; starts as the username.
    pub nickname: String,
    /// Avatar URL or key, possibly empty.
    pub avatar: String,
    /// Level, computed by the game logic and never lowered.
    pub level: i64,
    /// Experience points.
    pub exp: i64,
    /// Gold balance, never below zero.
    pub gold: i64,
    /// Diamond balance, never below zero.
    pub diamonds: i64,
    /// `active`, `banned` or `deleted`.
    pub status: PlayerStatus,
    /// Optimistic-lock version, bumped by every update.
    pub version: i64,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Last update time, Unix milliseconds.
    pub updated_at: i64,
    /// Last login, Unix milliseconds; 0 when never.
    pub last_login_at: i64,
}

/// Account state of a player.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlayerStatus {
    /// May log in and play.
    Active,
    /// Refused at login (error 1004).
    Banned,
    /// Soft-deleted.
    Deleted,
}

impl PlayerStatus {
    /// The value stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            PlayerStatus::Active => "active",
            PlayerStatus::Banned => "banned",
            PlayerStatus::Deleted => "deleted",
        }
    }

    /// Parses a stored or requested value.
    pub fn parse(s: &str) -> Option<PlayerStatus> {
        match s {
            "active" => Some(PlayerStatus::Active),
            "banned" => Some(PlayerStatus::Banned),
            "deleted" => Some(PlayerStatus::Deleted),
            _ => None,
        }
    }
}

/// What registration stores for a new player.
#[derive(Debug, Clone)]
pub struct NewPlayer {
    /// Unique username.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Optional e-mail.
    pub email: String,
    /// Starting gold, recorded in the ledger as a signup grant.
    pub signup_gold: i64,
    /// Starting diamonds, recorded in the ledger as a signup grant.
    pub signup_diamonds: i64,
    /// Creation time, Unix milliseconds.
    pub now_ms: i64,
}

/// The credentials row looked up at login.
#[derive(Debug, Clone)]
pub struct PlayerCredentials {
    /// Player id.
    pub id: i64,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Account state.
    pub status: PlayerStatus,
}
