//! The transactions of login sessions ([`SessionStore`]): creating one,
//! rotating its refresh secret (a reused secret revokes the session),
//! revoking sessions and tokens, and listing recent revocations for the
//! nodes that cache them.

use super::{row_of, SqlStore};
use crate::store::sql::{Backend, SqlValue};
use crate::store::{RefreshOutcome, SessionStore, StoreError, StoreFuture};

impl<B: Backend> SessionStore for SqlStore<B> {
    fn create_session<'a>(
        &'a self,
        session_id: &'a str,
        player_id: i64,
        refresh_hash: &'a str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.write(async move |c| {
            c.exec(
                "INSERT INTO sessions (session_id, player_id, refresh_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                args![session_id, player_id, refresh_hash, now_ms, expires_at_ms],
            ).await
            .map(|_| ())
        }))
    }

    fn rotate_refresh<'a>(
        &'a self,
        session_id: &'a str,
        presented_hash: &'a str,
        new_hash: &'a str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> StoreFuture<'a, RefreshOutcome> {
        Box::pin(self.write(async move |c| {
            let lock = c.dialect().for_update();
            let Some(row) = c.query_one(
                &format!("SELECT player_id, refresh_hash, revoked, expires_at FROM sessions WHERE session_id = ?{lock}"),
                args![session_id],
            ).await?
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
                ).await?;
                c.exec(
                    "UPDATE sessions SET refresh_hash = ?, expires_at = ? WHERE session_id = ?",
                    args![new_hash, expires_at_ms, session_id],
                ).await?;
                return Ok(RefreshOutcome::Rotated { player_id });
            }
            let reused = c
                .query_one("SELECT session_id FROM refresh_history WHERE refresh_hash = ? AND session_id = ?", args![presented_hash, session_id]).await?
                .is_some();
            if reused {
                c.exec("UPDATE sessions SET revoked = 1, revoked_at = ? WHERE session_id = ?", args![now_ms, session_id]).await?;
                return Ok(RefreshOutcome::Reused);
            }
            Ok(RefreshOutcome::Invalid)
        }))
    }

    fn revoke_session<'a>(&'a self, session_id: &'a str, now_ms: i64) -> StoreFuture<'a, bool> {
        Box::pin(self.write(async move |c| {
            Ok(c.exec(
                "UPDATE sessions SET revoked = 1, revoked_at = ? WHERE session_id = ? AND revoked = 0",
                args![now_ms, session_id],
            ).await? > 0)
        }))
    }

    fn revoke_player_sessions(&self, player_id: i64, now_ms: i64) -> StoreFuture<'_, Vec<String>> {
        Box::pin(self.write(async move |c| {
            let ids: Vec<String> = c
                .query(
                    "SELECT session_id FROM sessions WHERE player_id = ? AND revoked = 0 AND expires_at > ?",
                    args![player_id, now_ms],
                ).await?
                .iter()
                .map(|r| row_of("sessions", r, |r| r.text(0)))
                .collect::<Result<_, _>>()?;
            c.exec(
                "UPDATE sessions SET revoked = 1, revoked_at = ? WHERE player_id = ? AND revoked = 0",
                args![now_ms, player_id],
            ).await?;
            Ok(ids)
        }))
    }

    fn revoke_token<'a>(&'a self, session_id: &'a str, now_ms: i64) -> StoreFuture<'a, ()> {
        Box::pin(self.write(async move |c| {
            match c
                .exec(
                    "INSERT INTO revoked_tokens (session_id, revoked_at) VALUES (?, ?)",
                    args![session_id, now_ms],
                )
                .await
            {
                Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
                Err(e) => Err(e),
            }
        }))
    }

    fn revoked_sessions_since(&self, since_ms: i64) -> StoreFuture<'_, Vec<String>> {
        Box::pin(self.read(async move |c| {
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
                for r in c.query(sql, args![since_ms]).await? {
                    ids.push(row_of(table, &r, |r| r.text(0))?);
                }
            }
            Ok(ids)
        }))
    }
}
