//! The transaction of a singleton job ([`JobStore`]): its work runs only
//! under the newest fencing token, so a lease holder that lost its lease
//! cannot write after its successor has.

use super::{notify, row_of, SqlStore};
use crate::store::sql::{Backend, SqlConn, SqlValue};
use crate::store::{
    FencedJob, FencedRun, JobStore, NoticeData, NoticeKind, Notified, OrderStatus, StoreError,
    StoreFuture, EXPIRE_BATCH,
};

/// How long after a cluster's lease holder last ran a singleton job on a
/// database a stand-alone node (no `cluster.redis`) leaves that job alone.
const STANDALONE_DEFERS_MS: i64 = 60_000;

impl<B: Backend> JobStore for SqlStore<B> {
    fn run_fenced<'a>(
        &'a self,
        job: FencedJob,
        token: Option<i64>,
        holder: &'a str,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<FencedRun>> {
        let name = job.name();
        let persist = self.persist_all;
        Box::pin(self.write(async move |c| {
            let mut notices = Vec::new();
            let lock = c.dialect().for_update();
            let fence = c.query_one(
                &format!("SELECT token, holder, updated_at FROM job_fences WHERE job = ?{lock}"),
                args![name],
            ).await?;
            let fence = match fence {
                Some(row) => Some(row_of("job_fences", &row, |r| {
                    Ok((r.int(0)?, r.text(1)?, r.int(2)?))
                })?),
                None => None,
            };
            let mut new_holder = false;
            match (token, fence) {
                // A stand-alone node: no lease, no token. It leaves the job to
                // a cluster that ran it on this database lately (a node
                // started without cluster.redis by mistake must not run it
                // beside the lease holder) and runs it otherwise.
                (None, Some((seen, _, at)))
                    if seen > 0 && now_ms.saturating_sub(at) < STANDALONE_DEFERS_MS =>
                {
                    return Ok(Notified {
                        value: FencedRun::ClusterActive,
                        notices,
                    });
                }
                (None, _) => {}
                (Some(token), Some((seen, seen_holder, _))) => {
                    // An older token, or the same token in other hands (a
                    // counter Redis lost handed it out twice): refused.
                    if seen > token || (seen == token && seen_holder != holder) {
                        // Nothing written: the commit only ends the read.
                        return Ok(Notified {
                            value: FencedRun::Stale { newer: seen },
                            notices,
                        });
                    }
                    new_holder = seen != token;
                    // Every run says when it ran: that is how a stand-alone
                    // node on the same database sees a cluster at work.
                    c.exec(
                        "UPDATE job_fences SET token = ?, holder = ?, updated_at = ? WHERE job = ?",
                        args![token, holder, now_ms, name],
                    ).await?;
                }
                (Some(token), None) => {
                    new_holder = true;
                    c.exec(
                        "INSERT INTO job_fences (job, token, holder, updated_at) VALUES (?, ?, ?, ?)",
                        args![name, token, holder, now_ms],
                    ).await?;
                }
            }
            let affected = match job {
                FencedJob::ExpireOrders { created_before_ms } => {
                    expire_orders(c, persist, holder, created_before_ms, now_ms, &mut notices).await?
                }
                FencedJob::ResetLeaderboards { now_ms: board_now, keep_periods } => {
                    super::boards::reset_boards(c, holder, board_now, keep_periods).await?
                }
                FencedJob::PurgeNotifications { created_before_ms } => c.exec(
                    "DELETE FROM notifications WHERE created_at < ?",
                    args![created_before_ms],
                ).await?,
                FencedJob::PurgeSessions {
                    expired_before_ms,
                    revoked_before_ms,
                } => {
                    let history = c.exec(
                        "DELETE FROM refresh_history WHERE session_id IN \
                         (SELECT session_id FROM sessions WHERE expires_at < ?)",
                        args![expired_before_ms],
                    ).await?;
                    let sessions =
                        c.exec("DELETE FROM sessions WHERE expires_at < ?", args![expired_before_ms]).await?;
                    let tokens = c.exec(
                        "DELETE FROM revoked_tokens WHERE revoked_at < ?",
                        args![revoked_before_ms],
                    ).await?;
                    history + sessions + tokens
                }
            };
            // A run is recorded when it changed something or when the job
            // changed hands, so the table grows with events, not with time.
            if new_holder || affected > 0 {
                c.exec(
                    "INSERT INTO job_runs (job, token, holder, started_at, affected) VALUES (?, ?, ?, ?, ?)",
                    args![name, token.unwrap_or(0), holder, now_ms, affected as i64],
                ).await?;
            }
            Ok(Notified {
                value: FencedRun::Ran(affected),
                notices,
            })
        }))
    }
}

/// Cancels up to [`EXPIRE_BATCH`] pending orders created before
/// `created_before_ms` (oldest first), reason `expired`, and notifies each
/// order's player; how many. Orders are locked first, then their players
/// by ascending id: the global lock order.
async fn expire_orders(
    c: &mut dyn SqlConn,
    persist: bool,
    holder: &str,
    created_before_ms: i64,
    now_ms: i64,
    notices: &mut Vec<crate::store::Notice>,
) -> Result<u64, StoreError> {
    let lock = c.dialect().for_update();
    let rows = c
        .query(
            &format!(
                "SELECT order_id, player_id FROM orders WHERE status = 'pending' AND created_at < ? \
                 ORDER BY created_at LIMIT ?{lock}"
            ),
            args![created_before_ms, EXPIRE_BATCH],
        )
        .await?;
    let mut expired: Vec<(i64, String)> = rows
        .iter()
        .map(|r| row_of("orders", r, |r| Ok((r.int(1)?, r.text(0)?))))
        .collect::<Result<_, _>>()?;
    if expired.is_empty() {
        return Ok(0);
    }
    let marks = vec!["?"; expired.len()].join(", ");
    let mut params: Vec<SqlValue> = vec![now_ms.into()];
    params.extend(expired.iter().map(|(_, id)| SqlValue::from(id.as_str())));
    let changed = c
        .exec(
            &format!(
                "UPDATE orders SET status = 'cancelled', cancel_reason = 'expired', updated_at = ? \
                 WHERE status = 'pending' AND order_id IN ({marks})"
            ),
            &params,
        )
        .await?;
    expired.sort();
    let mut records = Vec::with_capacity(expired.len());
    for (player_id, order_id) in expired {
        records.push(super::audit::draft(
            "order.cancel",
            super::audit::player(player_id),
            serde_json::json!({"order_id": order_id, "status": "cancelled", "reason": "expired"}),
        ));
        let data = NoticeData::Order {
            order_id,
            status: OrderStatus::Cancelled.as_str(),
        };
        let draft = vec![(NoticeKind::Order, data)];
        notify(c, persist, player_id, draft, now_ms, notices).await?;
    }
    // The job's holder (`node/instance`) is the actor.
    let node = holder.split('/').next().unwrap_or(holder);
    let actor = crate::audit::Actor::system("expire-orders", node);
    super::audit::append(c, &actor, records, now_ms).await?;
    Ok(changed)
}
