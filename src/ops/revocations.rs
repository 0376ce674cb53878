//! Revocations made on other nodes, applied on this one: shard 0 reads the
//! databases for them (with or without Redis, across outages) and, with
//! `cluster.redis`, follows the ones other nodes push.

use super::Operations;
use std::rc::Rc;
use std::time::Duration;

/// How often shard 0 looks for sessions revoked on other nodes.
const REVOCATION_POLL: Duration = Duration::from_millis(500);

/// How far before the last successful look each look reaches back: covers
/// clock differences between nodes and replication delay. Sessions already
/// refused here are skipped, so the overlap costs nothing but the query.
const REVOCATION_LOOKBACK_MS: i64 = 5_000;

/// Shard 0 of every node: picks up revocations written to the databases by
/// any node, so a logout on one node is refused on every node within about
/// `REVOCATION_POLL` — with or without Redis, and across Redis outages.
pub async fn follow_revocations(ops: Rc<Operations>) {
    // Older revocations concern tokens that have expired anyway.
    let token_life_ms = ops.config().auth.access_ttl_s as i64 * 1000;
    let mut last_ok = crate::clock::now_ms();
    while !ops.is_draining() {
        glommio::timer::sleep(REVOCATION_POLL).await;
        let started = crate::clock::now_ms();
        let since = (last_ok - REVOCATION_LOOKBACK_MS).max(started - token_life_ms);
        match ops.services().adopt_revocations(since).await {
            Ok(n) => {
                last_ok = started;
                if n > 0 {
                    tracing::debug!(sessions = n, "revocations adopted from the databases");
                }
            }
            Err(e) => tracing::debug!(error = %e.message, "revocations not read; will retry"),
        }
    }
}

/// Shard 0's subscription to the revocations other nodes push: each is
/// applied on every shard of this node as it arrives.
pub async fn revocation_subscriber(ops: Rc<Operations>) {
    use crate::cluster::registry::{PushedRevocation, REVOCATIONS};
    let Ok(target) = crate::redis::link::RedisTarget::parse(&ops.config().cluster.redis) else {
        return;
    };
    let node_id = ops.config().node.id.clone();
    let (tx, rx) = futures_channel::mpsc::unbounded::<PushedRevocation>();
    let on_message = move |payload: Vec<u8>| {
        if let Ok(r) = serde_json::from_slice::<PushedRevocation>(&payload) {
            if r.node != node_id {
                let _ = tx.unbounded_send(r);
            }
        }
    };
    let apply = ops.clone();
    glommio::spawn_local(async move {
        use futures_lite::StreamExt;
        let mut rx = rx;
        while let Some(r) = rx.next().await {
            apply
                .services()
                .refuse_on_this_node(&r.sessions, r.until_s, false)
                .await;
        }
    })
    .detach();
    crate::redis::link::subscribe_forever(target, REVOCATIONS.to_string(), on_message, |_| {})
        .await;
}
