//! The transactions of login sessions ([`SessionStore`]): creating one,
//! rotating its refresh secret (a reused secret revokes the session),
//! revoking sessions and tokens, and listing recent revocations for the
//! nodes that cache them.

use super::{row_of, SqlStore};
use crate::store::sql::{Backend, SqlValue};
use crate::store::{RefreshOutcome, SessionStore, StoreError};

impl<B: Backend> SessionStore for SqlStore<B> {
    fn create_session(
        &self,
        session_id: &str,
        player_id: i64,
        refresh_hash: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec(
                "INSERT INTO sessions (session_id, player_id, refresh_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                args![session_id, player_id, refresh_hash, now_ms, expires_at_ms],
            )
            .map(|_| ())
        })
    }

    fn rotate_refresh(
        &self,
        session_id: &str,
        presented_hash: &str,
        new_hash: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<RefreshOutcome, StoreError> {
        self.write(|c| {
            let lock = c.dialect().for_update();
            let Some(row) = c.query_one(
                &format!("SELECT player_id, refresh_hash, revoked, expires_at FROM sessions WHERE session_id = ?{lock}"),
                args![session_id],
            )?
            else {
                return Ok(RefreshOutcome::Invalid);
            };
            let (player_id, current, revoked, expires) = row_of("sessions", &row, |r| {
                Ok((r.int(0)?, r.text(1)?, r.int(2)?, r.int(3)?))
            })?;
            if revoked != 0 || expires <= now_ms {
                return Ok(RefreshOutcome::Invalid);
            }
            if current == presented_hash {
                c.exec(
                    "INSERT INTO refresh_history (refresh_hash, session_id, used_at) VALUES (?, ?, ?)",
                    args![&current, session_id, now_ms],
                )?;
                c.exec(
                    "UPDATE sessions SET refresh_hash = ?, expires_at = ? WHERE session_id = ?",
                    args![new_hash, expires_at_ms, session_id],
                )?;
                return Ok(RefreshOutcome::Rotated { player_id });
            }
            let reused = c
                .query_one("SELECT session_id FROM refresh_history WHERE refresh_hash = ? AND session_id = ?", args![presented_hash, session_id])?
                .is_some();
            if reused {
                c.exec("UPDATE sessions SET revoked = 1, revoked_at = ? WHERE session_id = ?", args![now_ms, session_id])?;
                return Ok(RefreshOutcome::Reused);
            }
            Ok(RefreshOutcome::Invalid)
        })
    }

    fn revoke_session(&self, session_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        self.write(|c| {
            Ok(c.exec(
                "UPDATE sessions SET revoked = 1, revoked_at = ? WHERE session_id = ? AND revoked = 0",
                args![now_ms, session_id],
            )? > 0)
        })
    }

    fn revoke_player_sessions(
        &self,
        player_id: i64,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.write(|c| {
            let ids: Vec<String> = c
                .query(
                    "SELECT session_id FROM sessions WHERE player_id = ? AND revoked = 0 AND expires_at > ?",
                    args![player_id, now_ms],
                )?
                .iter()
                .map(|r| row_of("sessions", r, |r| r.text(0)))
                .collect::<Result<_, _>>()?;
            c.exec(
                "UPDATE sessions SET revoked = 1, revoked_at = ? WHERE player_id = ? AND revoked = 0",
                args![now_ms, player_id],
            )?;
            Ok(ids)
        })
    }

    fn revoke_token(&self, session_id: &str, now_ms: i64) -> Result<(), StoreError> {
        self.write(|c| {
            match c.exec(
                "INSERT INTO revoked_tokens (session_id, revoked_at) VALUES (?, ?)",
                args![session_id, now_ms],
            ) {
                Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    fn revoked_sessions_since(&self, since_ms: i64) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let mut ids = Vec::new();
            for (table, sql) in [
                (
                    "sessions",
                    "SELECT session_id FROM sessions WHERE revoked = 1 AND revoked_at >= ?",
                ),
                (
                    "revoked_tokens",
                    "SELECT session_id FROM revoked_tokens WHERE revoked_at >= ?",
                ),
            ] {
                for r in c.query(sql, args![since_ms])? {
                    ids.push(row_of(table, &r, |r| r.text(0))?);
                }
            }
            Ok(ids)
        })
    }
}
