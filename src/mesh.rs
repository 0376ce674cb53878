//! Messages between the shards of one node, over glommio's channel mesh.
//!
//! This is the only way shards talk. A shard that changes state the others
//! hold (revoked sessions, cached values) sends a message to every other
//! shard and waits for each to acknowledge, so when the originating request
//! is answered no shard of the node can still use the old state.

use crate::cache::Change;
use crate::rate_limit::{BudgetOp, Grant, LimitKey};
use futures_channel::oneshot;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};

/// Capacity of each shard-to-shard channel.
const CHANNEL_SIZE: usize = 1024;
/// Longest wait for another shard (it may be stopping).
const PEER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

fn gone() -> glommio::GlommioError<()> {
    glommio::GlommioError::IoError(std::io::Error::other("shard gone"))
}

/// The mesh of a node's shards.
pub type ShardMesh = MeshBuilder<ShardMessage, Full>;

/// A message from one shard to another.
pub enum ShardMessage {
    /// Stop accepting these sessions' access tokens until `until_s`.
    Revoke {
        /// Session ids of the revoked sessions.
        sessions: Vec<String>,
        /// Unix seconds after which every token of them has expired anyway.
        until_s: i64,
        /// Completed once applied.
        ack: Option<oneshot::Sender<()>>,
    },
    /// Apply a change another shard made: drop its cache keys and keep its
    /// writers' reads on the primary.
    Invalidate {
        /// What changed.
        change: Change,
        /// Completed once applied.
        ack: Option<oneshot::Sender<()>>,
    },
    /// The node's invalidation channel went up or down.
    BusState(bool),
    /// The games in maintenance now, with their messages (config centre).
    Maintenance(std::collections::BTreeMap<String, String>),
    /// Take up to `want` tokens of a budget this shard owns, for a lease.
    Lease {
        /// The budget.
        key: LimitKey,
        /// Tokens asked for.
        want: u32,
        /// Its size per minute.
        per_min: u32,
        /// The owner's answer.
        reply: oneshot::Sender<Grant>,
    },
    /// Take one unit of, or give one back to, a failure budget this shard owns.
    Failure {
        /// The budget.
        key: LimitKey,
        /// Its size per minute.
        per_min: u32,
        /// What to do with it.
        op: BudgetOp,
        /// `Err` with the seconds until there is room again.
        reply: oneshot::Sender<Result<(), u64>>,
    },
    /// Whether an address logged into an account recently (this shard owns
    /// the account's budget), and with `remember`, note that it just did.
    KnownAddress {
        /// `<game>:<username>` or `admin:<name>`.
        account: String,
        /// The client's address.
        client: std::net::IpAddr,
        /// Remember it for this long (a successful login) instead of asking.
        remember: Option<std::time::Duration>,
        /// Whether it is known (after remembering: true).
        reply: oneshot::Sender<bool>,
    },
    /// Notifications another shard published: deliver them to this
    /// shard's sockets.
    Deliver(Vec<std::sync::Arc<crate::realtime::delivery::Delivery>>),
    /// Whether a player has a socket of its own on this shard, and when it
    /// last left it (Unix ms).
    Presence {
        /// The game.
        game: String,
        /// The player.
        player_id: i64,
        /// Online here, last seen here.
        reply: oneshot::Sender<(bool, Option<i64>)>,
    },
    /// The players of a game with a socket of their own on this shard.
    OnlinePlayers {
        /// The game.
        game: String,
        /// Their ids.
        reply: oneshot::Sender<Vec<i64>>,
    },
    /// Ask a leaderboard view this shard owns (`service/board_views.rs`).
    BoardView {
        /// Which view.
        key: crate::leaderboard::ViewKey,
        /// The board's sort (to rebuild the view).
        sort: crate::store::BoardSort,
        /// What is asked.
        op: crate::leaderboard::ViewOp,
        /// The answer.
        reply: oneshot::Sender<crate::leaderboard::ViewAnswer>,
    },
    /// Forget a board's views of periods before `first_kept`.
    ForgetBoardViews {
        /// The game.
        game: String,
        /// The board.
        board: String,
        /// The first period kept (`i64::MAX`: none).
        first_kept: i64,
        /// Completed once done.
        ack: Option<oneshot::Sender<()>>,
    },
    /// Report this shard's cache figures.
    CacheStats(oneshot::Sender<serde_json::Value>),
    /// Report this shard's metric samples.
    Metrics(oneshot::Sender<Vec<crate::metrics::Sample>>),
}

/// Creates the mesh for `shards` shards; each shard calls [`Peers::join`].
pub fn builder(shards: usize) -> Option<ShardMesh> {
    (shards > 1).then(|| MeshBuilder::full(shards, CHANNEL_SIZE))
}

/// This shard's links to every other shard of the node.
#[derive(Default)]
pub struct Peers {
    senders: Option<Senders<ShardMessage>>,
}

/// Incoming messages; the shard serves them once it exists
/// (`Shard::serve_inbox`), so this module never needs to know what a shard is.
pub struct Inbox(Option<Receivers<ShardMessage>>);

impl Inbox {
    /// One stream of messages per other shard (none on a single-shard node).
    pub fn into_streams(
        self,
    ) -> Vec<glommio::channels::shared_channel::ConnectedReceiver<ShardMessage>> {
        match self.0 {
            Some(mut receivers) => receivers.streams().into_iter().map(|(_, s)| s).collect(),
            None => Vec::new(),
        }
    }
}

impl Peers {
    /// Joins the mesh (every shard must join). Single-shard nodes have none.
    pub async fn join(mesh: Option<ShardMesh>) -> Result<(Peers, Inbox), String> {
        let Some(mesh) = mesh else {
            return Ok((Peers { senders: None }, Inbox(None)));
        };
        let (senders, receivers) = mesh
            .join()
            .await
            .map_err(|_| "cannot join the shard mesh".to_string())?;
        Ok((
            Peers {
                senders: Some(senders),
            },
            Inbox(Some(receivers)),
        ))
    }

    /// Sends a message built by `make` to every other shard; with `wait`,
    /// returns once each has applied it.
    pub async fn broadcast(
        &self,
        wait: bool,
        make: impl Fn(Option<oneshot::Sender<()>>) -> ShardMessage,
    ) {
        let Some(senders) = &self.senders else { return };
        let mut acks = Vec::new();
        for peer in 0..senders.nr_consumers() {
            if peer == senders.peer_id() {
                continue;
            }
            let ack = if wait {
                let (tx, rx) = oneshot::channel();
                acks.push(rx);
                Some(tx)
            } else {
                None
            };
            let sent = glommio::timer::timeout(PEER_TIMEOUT, async {
                senders.send_to(peer, make(ack)).await.map_err(|_| gone())
            })
            .await;
            if sent.is_err() {
                tracing::warn!(peer, "shard did not take a message in time");
            }
        }
        for done in acks {
            let waited =
                glommio::timer::timeout(PEER_TIMEOUT, async { done.await.map_err(|_| gone()) })
                    .await;
            if waited.is_err() {
                tracing::debug!("a shard did not acknowledge in time");
            }
        }
    }

    /// Asks every other shard for its cache figures.
    pub async fn cache_stats(&self) -> Vec<serde_json::Value> {
        self.ask_all(ShardMessage::CacheStats).await
    }

    /// Asks every other shard for its metric samples.
    pub async fn metric_samples(&self) -> Vec<crate::metrics::Sample> {
        self.ask_all(ShardMessage::Metrics)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Sends one request to shard `peer` and waits for its answer; `None`
    /// when the shard is gone or does not answer within a second.
    pub async fn ask<T: Send + 'static>(
        &self,
        peer: usize,
        make: impl FnOnce(oneshot::Sender<T>) -> ShardMessage,
    ) -> Option<T> {
        let senders = self.senders.as_ref()?;
        let (tx, rx) = oneshot::channel();
        let sent = glommio::timer::timeout(PEER_TIMEOUT, async {
            senders.send_to(peer, make(tx)).await.map_err(|_| gone())
        })
        .await;
        if sent.is_err() {
            return None;
        }
        glommio::timer::timeout(PEER_TIMEOUT, async { rx.await.map_err(|_| gone()) })
            .await
            .ok()
    }

    /// Sends one request built by `make` to every other shard and collects
    /// the answers that come within a second each.
    pub async fn ask_all<T: Send + 'static>(
        &self,
        make: impl Fn(oneshot::Sender<T>) -> ShardMessage,
    ) -> Vec<T> {
        let Some(senders) = &self.senders else {
            return Vec::new();
        };
        let mut answers = Vec::new();
        for peer in 0..senders.nr_consumers() {
            if peer == senders.peer_id() {
                continue;
            }
            let (tx, rx) = oneshot::channel();
            if senders.send_to(peer, make(tx)).await.is_ok() {
                answers.push(rx);
            }
        }
        let mut out = Vec::new();
        for rx in answers {
            let answer =
                glommio::timer::timeout(PEER_TIMEOUT, async { rx.await.map_err(|_| gone()) }).await;
            if let Ok(v) = answer {
                out.push(v);
            }
        }
        out
    }
}
