//! The cache's traffic with the other nodes: shard 0 follows the
//! invalidation channel and applies what other nodes changed on every shard
//! of this node (and tells them whether the channel is up); every shard
//! keeps its own Redis link checked and sends again what Redis did not take.

use super::Operations;
use crate::mesh;
use std::rc::Rc;
use std::time::Duration;

/// Keeps this shard's Redis link honest: checks it with a PING at start and
/// once a heartbeat (so `dm_backend_up` and `/ready` speak for a shard that
/// has had no request touching Redis yet, or none for a while), and every
/// 100 ms sends again the invalidations Redis did not take (see
/// `Cache::resend_unsent`), until the shard drains.
pub async fn watch_l2_forever(ops: Rc<Operations>) {
    let check_every = Duration::from_millis(ops.config().cluster.heartbeat_ms.max(100));
    let mut last_check: Option<std::time::Instant> = None;
    while !ops.is_draining() {
        if last_check.is_none_or(|t| t.elapsed() >= check_every) {
            last_check = Some(std::time::Instant::now());
            // The outcome is kept by the link itself (`is_up`); a failure is
            // logged there once, when the link goes down.
            let _ = ops.services().cache().l2_ping().await;
        }
        if ops.services().cache().has_unsent() {
            let sent = ops.services().cache().resend_unsent().await;
            if sent > 0 {
                tracing::info!(sent, "invalidations sent to Redis after it came back");
            }
        }
        glommio::timer::sleep(Duration::from_millis(100)).await;
    }
}

/// Shard 0's subscription to the invalidation channel: applies other nodes'
/// invalidations on every shard, and tells every shard whether the channel
/// is up (while it is down, L1 entries are trusted only briefly).
pub async fn invalidation_subscriber(ops: Rc<Operations>) {
    let Ok(target) = crate::redis::link::RedisTarget::parse(&ops.config().cache.redis) else {
        return;
    };
    let node_id = ops.config().node.id.clone();
    let (events_tx, events_rx) = futures_channel::mpsc::unbounded::<crate::cache::Change>();
    let on_message = move |payload: Vec<u8>| {
        if let Some((from, change)) = crate::cache::decode_message(&payload) {
            if from != node_id {
                let _ = events_tx.unbounded_send(change);
            }
        }
    };
    let state_ops = ops.clone();
    let on_state = move |up: bool| {
        state_ops.services().cache().set_bus_healthy(up);
        let s = state_ops.clone();
        glommio::spawn_local(async move {
            s.services()
                .peers()
                .broadcast(false, |_| mesh::ShardMessage::BusState(up))
                .await;
        })
        .detach();
    };
    let apply_ops = ops.clone();
    glommio::spawn_local(async move {
        use futures_lite::StreamExt;
        let mut rx = events_rx;
        while let Some(change) = rx.next().await {
            apply_ops.services().apply_change(&change);
            apply_ops
                .services()
                .peers()
                .broadcast(false, |ack| mesh::ShardMessage::Invalidate {
                    change: change.clone(),
                    ack,
                })
                .await;
        }
    })
    .detach();
    crate::redis::link::subscribe_forever(
        target,
        crate::cache::CHANNEL.to_string(),
        on_message,
        on_state,
    )
    .await;
}
