//! The transactions of notifications ([`NoticeStore`]): reading a player's
//! stored notifications, sending messages (and other notifications that no
//! single change makes, such as maintenance) to players, and pruning old
//! rows. Notifications that a change makes are made in that change's own
//! transaction by the shared `take_ids` and `issue` helpers of `sql_store/mod.rs`.

use super::{issue, row_of, take_ids, visible_player, SqlStore};
use crate::store::sql::{Backend, Row, SqlValue};
use crate::store::{Notice, NoticeData, NoticeKind, NoticeStore, Rule, StoreError, StoreFuture};

fn notice_from(r: &Row) -> Result<Notice, StoreError> {
    row_of("notifications", r, |r| {
        let data = r.text(3)?;
        Ok(Notice {
            player_id: r.int(0)?,
            id: r.int(1)?,
            kind: r.parsed(2, "a notification kind", NoticeKind::parse)?,
            data: NoticeData::Json(serde_json::from_str(&data).map_err(|e| {
                StoreError::Internal(format!("notification data is not JSON: {e}"))
            })?),
            at: r.int(4)?,
        })
    })
}

impl<B: Backend> NoticeStore for SqlStore<B> {
    fn notices(
        &self,
        player_id: i64,
        after: i64,
        limit: i64,
        include_deleted: bool,
    ) -> StoreFuture<'_, Vec<Notice>> {
        Box::pin(self.read(async move |c| {
            visible_player(c, player_id, include_deleted).await?;
            c.query(
                "SELECT player_id, id, kind, data, created_at FROM notifications \
                 WHERE player_id = ? AND id > ? ORDER BY id LIMIT ?",
                args![player_id, after, limit],
            )
            .await?
            .iter()
            .map(notice_from)
            .collect()
        }))
    }

    fn last_notice_id(&self, player_id: i64) -> StoreFuture<'_, i64> {
        Box::pin(self.read_one(async move |c| {
            // A sequence the backend keeps is ahead of the row, which only
            // reserves ids.
            if let Some(last) = c.notice_ids().and_then(|seqs| seqs.last(player_id)) {
                return Ok(last);
            }
            match c
                .query_one(
                    "SELECT notify_seq FROM players WHERE id = ?",
                    args![player_id],
                )
                .await?
            {
                Some(r) => row_of("players", &r, |r| r.int(0)),
                None => Err(StoreError::Rule(Rule::PlayerNotFound)),
            }
        }))
    }

    fn send_notices<'a>(
        &'a self,
        players: &'a [i64],
        kind: NoticeKind,
        data: &'a serde_json::Value,
        stored: bool,
        must_exist: bool,
        now_ms: i64,
    ) -> StoreFuture<'a, Vec<Notice>> {
        Box::pin(self.write(async move |c| {
            let mut out = Vec::new();
            // Ascending ids: the global lock order of player rows.
            let mut ids = players.to_vec();
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                // A missing or deleted player takes no id: skipped, or refused.
                match take_ids(c, id, 1, false).await? {
                    Some(taken) => {
                        let draft = vec![(kind, NoticeData::Json(data.clone()))];
                        issue(c, stored, taken, draft, now_ms, &mut out).await?;
                    }
                    None if must_exist => return Err(StoreError::Rule(Rule::PlayerNotFound)),
                    None => continue,
                }
            }
            Ok(out)
        }))
    }

    fn prune_notices(&self, before_ms: i64) -> StoreFuture<'_, u64> {
        Box::pin(self.write(async move |c| {
            c.exec(
                "DELETE FROM notifications WHERE created_at < ?",
                args![before_ms],
            )
            .await
        }))
    }
}
