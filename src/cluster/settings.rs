//! The config centre (SPEC §7): hot settings every node of a cluster
//! applies — rate limits, the log level, and maintenance mode per game —
//! held in Redis as one versioned document.
//!
//! An admin replaces the document with `PUT /api/v1/cluster/config` and
//! `If-Match: <version>`; the write is a compare-and-set in Redis, so two
//! operators cannot overwrite each other's change unknowingly. Shard 0 of
//! every node reads the document every [`POLL`] and applies it, so a change
//! reaches every node within a second, survives restarts (it lives in
//! Redis), and a node started later gets it at start-up. The TOML values
//! are the defaults for every setting the document leaves out.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Redis key of the settings document.
pub const KEY: &str = "dm:config";

/// How often shard 0 reads the document.
pub const POLL: Duration = Duration::from_millis(500);

/// Longest maintenance message.
const MAX_MESSAGE: usize = 256;

/// The hot settings; `None` (or absent) leaves the TOML value in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HotSettings {
    /// `auth.rate_limit_per_ip_per_min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_ip_per_min: Option<u32>,
    /// `auth.failed_logins_per_ip_per_min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_logins_per_ip_per_min: Option<u32>,
    /// `auth.failed_logins_per_user_per_min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_logins_per_user_per_min: Option<u32>,
    /// `log.level`: error, warn, info, debug or trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Games in maintenance, with the message their players get.
    #[serde(default)]
    pub maintenance: BTreeMap<String, String>,
}

impl HotSettings {
    /// Checks every value; the error names the key (`maintenance.game9`).
    pub fn validate(&self, is_game: impl Fn(&str) -> bool) -> Result<(), String> {
        for (key, value) in [
            ("rate_limit_per_ip_per_min", self.rate_limit_per_ip_per_min),
            (
                "failed_logins_per_ip_per_min",
                self.failed_logins_per_ip_per_min,
            ),
            (
                "failed_logins_per_user_per_min",
                self.failed_logins_per_user_per_min,
            ),
        ] {
            if value == Some(0) {
                return Err(format!("key `{key}`: must be at least 1"));
            }
        }
        if let Some(level) = &self.log_level {
            if !["error", "warn", "info", "debug", "trace"].contains(&level.as_str()) {
                return Err(format!(
                    "key `log_level`: `{level}` is not one of error, warn, info, debug, trace"
                ));
            }
        }
        for (game, message) in &self.maintenance {
            if !is_game(game) {
                return Err(format!("key `maintenance.{game}`: no such game"));
            }
            if message.is_empty()
                || message.len() > MAX_MESSAGE
                || message.chars().any(char::is_control)
            {
                return Err(format!(
                    "key `maintenance.{game}`: the message must be 1 to {MAX_MESSAGE} bytes \
                     without control characters"
                ));
            }
        }
        Ok(())
    }
}

/// The document as stored: the settings and their version (0: never set).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// Bumped by every successful write.
    pub version: u64,
    /// The settings.
    pub settings: HotSettings,
}

/// Why a write was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// Someone else changed the document first: its version now.
    Stale(u64),
    /// Redis did not answer.
    Unreachable(String),
}

/// The compare-and-set of a write: stores `ARGV[2]` only if the stored
/// version is `ARGV[1]`; answers `{1, new}` or `{0, current}`.
pub const CAS_SCRIPT: &str = "local cur = redis.call('GET', KEYS[1]) \
    local v = 0 \
    if cur then v = cjson.decode(cur).version end \
    if v ~= tonumber(ARGV[1]) then return {0, v} end \
    redis.call('SET', KEYS[1], ARGV[2]) \
    return {1, v + 1}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key() {
        let games = |g: &str| g == "game1";
        assert!(HotSettings::default().validate(games).is_ok());
        let zero = HotSettings {
            rate_limit_per_ip_per_min: Some(0),
            ..Default::default()
        };
        assert!(zero
            .validate(games)
            .unwrap_err()
            .contains("rate_limit_per_ip_per_min"));
        let loud = HotSettings {
            log_level: Some("loud".into()),
            ..Default::default()
        };
        assert!(loud.validate(games).unwrap_err().contains("log_level"));
        let mut unknown = HotSettings::default();
        unknown
            .maintenance
            .insert("game9".into(), "back soon".into());
        assert!(unknown
            .validate(games)
            .unwrap_err()
            .contains("maintenance.game9"));
        let mut empty = HotSettings::default();
        empty.maintenance.insert("game1".into(), String::new());
        assert!(empty
            .validate(games)
            .unwrap_err()
            .contains("maintenance.game1"));
        let bad: Result<HotSettings, _> = serde_json::from_str(r#"{"rate_limit":5}"#);
        assert!(bad.unwrap_err().to_string().contains("rate_limit"));
    }
}
