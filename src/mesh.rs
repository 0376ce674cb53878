//! Messages between the shards of one node, over glommio's channel mesh.
//!
//! This is the only way shards talk: a shard that changes state the others
//! cache (today: revoked sessions) sends a message to every other shard and
//! waits for each to acknowledge, so when the originating request is answered
//! no shard of the node can still accept the old state.

use crate::service::revocations::RevocationList;
use futures_channel::oneshot;
use futures_lite::StreamExt;
use glommio::channels::channel_mesh::{MeshBuilder, Senders};
use std::rc::Rc;

/// Capacity of each shard-to-shard channel.
const CHANNEL_SIZE: usize = 1024;

/// A message from one shard to another.
pub enum ShardMessage {
    /// Stop accepting these sessions' access tokens until `until_s`.
    Revoke {
        /// Session ids.
        sessions: Vec<String>,
        /// Unix seconds after which every token of them has expired anyway.
        until_s: i64,
        /// Completed once applied.
        ack: oneshot::Sender<()>,
    },
}

/// Creates the mesh for `shards` shards; each shard calls [`Peers::join`].
pub fn builder(
    shards: usize,
) -> Option<MeshBuilder<ShardMessage, glommio::channels::channel_mesh::Full>> {
    (shards > 1).then(|| MeshBuilder::full(shards, CHANNEL_SIZE))
}

/// This shard's links to every other shard of the node.
pub struct Peers {
    senders: Option<Senders<ShardMessage>>,
}

impl Peers {
    /// Joins the mesh (all shards must join) and starts applying incoming
    /// messages to `revocations`. `None` for a single-shard node.
    pub async fn join(
        mesh: Option<MeshBuilder<ShardMessage, glommio::channels::channel_mesh::Full>>,
        revocations: Rc<RevocationList>,
    ) -> Result<Peers, String> {
        let Some(mesh) = mesh else {
            return Ok(Peers { senders: None });
        };
        let (senders, mut receivers) = mesh
            .join()
            .await
            .map_err(|_| "cannot join the shard mesh".to_string())?;
        for (_, mut stream) in receivers.streams() {
            let revocations = revocations.clone();
            glommio::spawn_local(async move {
                while let Some(msg) = stream.next().await {
                    match msg {
                        ShardMessage::Revoke {
                            sessions,
                            until_s,
                            ack,
                        } => {
                            revocations.revoke(sessions, until_s);
                            let _ = ack.send(());
                        }
                    }
                }
            })
            .detach();
        }
        Ok(Peers {
            senders: Some(senders),
        })
    }

    /// Tells every other shard to refuse `sessions`, and waits until each has.
    pub async fn broadcast_revocation(&self, sessions: &[String], until_s: i64) {
        let Some(senders) = &self.senders else { return };
        let mut acks = Vec::new();
        for peer in 0..senders.nr_consumers() {
            if peer == senders.peer_id() {
                continue;
            }
            let (ack, done) = oneshot::channel();
            let msg = ShardMessage::Revoke {
                sessions: sessions.to_vec(),
                until_s,
                ack,
            };
            if senders.send_to(peer, msg).await.is_ok() {
                acks.push(done);
            }
        }
        for done in acks {
            let _ = done.await;
        }
    }
}
