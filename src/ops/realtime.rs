//! The realtime tasks of a shard (SPEC §11): its relay, which passes the
//! notifications made on it to the node's other shards and to other nodes;
//! shard 0's subscription to what other nodes publish; and the refresh of
//! its players' presence in Redis.

use super::Operations;
use crate::mesh::ShardMessage;
use crate::realtime::delivery::Delivery;
use crate::realtime::relay::{Published, CHANNEL};
use crate::service::presence;
use std::rc::Rc;
use std::sync::Arc;

/// Most notifications one `PUBLISH` carries.
const PUBLISH_BATCH: usize = 500;

/// Every shard: sends what its relay queued — one mesh message per peer
/// shard, one `PUBLISH` per batch — for as long as the shard runs.
pub async fn relay_forever(ops: Rc<Operations>) {
    let services = ops.services().clone();
    let node = ops.config().node.id.clone();
    loop {
        let batch = services.relay().next_batch().await;
        if !batch.to_peers.is_empty() {
            let to_peers = batch.to_peers;
            services
                .peers()
                .broadcast(false, |_| ShardMessage::Deliver(to_peers.clone()))
                .await;
        }
        let Some(registry) = services.registry() else {
            continue;
        };
        for chunk in batch.to_nodes.chunks(PUBLISH_BATCH) {
            let published = Published {
                node: node.clone(),
                deliveries: chunk.iter().map(|d| Delivery::clone(d)).collect(),
            };
            let Ok(payload) = serde_json::to_vec(&published) else {
                continue;
            };
            let cmd = vec![b"PUBLISH".to_vec(), CHANNEL.as_bytes().to_vec(), payload];
            if let Err(e) = registry.redis().command(cmd).await {
                tracing::debug!(error = %e.0, "notifications not published to other nodes");
            }
        }
    }
}

/// Shard 0 of every node in a cluster: delivers what other nodes publish
/// to this node's sockets, on every shard (only while it has some).
pub async fn subscriber(ops: Rc<Operations>) {
    let Ok(target) = crate::redis::link::RedisTarget::parse(&ops.config().cluster.redis) else {
        return;
    };
    let node_id = ops.config().node.id.clone();
    let (tx, rx) = futures_channel::mpsc::unbounded::<Vec<Arc<Delivery>>>();
    let on_message = move |payload: Vec<u8>| {
        if let Ok(p) = serde_json::from_slice::<Published>(&payload) {
            if p.node != node_id {
                let _ = tx.unbounded_send(p.deliveries.into_iter().map(Arc::new).collect());
            }
        }
    };
    let services = ops.services().clone();
    glommio::spawn_local(async move {
        use futures_lite::StreamExt;
        let mut rx = rx;
        while let Some(deliveries) = rx.next().await {
            if !services.sockets().node_has_sockets() {
                continue;
            }
            services.deliver_here(&deliveries);
            services
                .peers()
                .broadcast(false, |_| ShardMessage::Deliver(deliveries.clone()))
                .await;
        }
    })
    .detach();
    crate::redis::link::subscribe_forever(target, CHANNEL.to_string(), on_message, |_| {}).await;
}

/// Every shard in a cluster: rewrites its players' presence entries every
/// [`presence::REFRESH`] until the shard drains.
pub async fn refresh_presence_forever(ops: Rc<Operations>) {
    while !ops.is_draining() {
        glommio::timer::sleep(presence::REFRESH).await;
        ops.services().refresh_presence().await;
    }
}
