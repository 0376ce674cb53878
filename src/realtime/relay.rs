//! A shard's way out for notifications that other shards or other nodes
//! must see: the service layer queues them here without waiting, and the
//! shard's relay task (`ops/realtime.rs`) sends them on in batches — one
//! mesh message per peer shard, one Redis `PUBLISH` per batch — so a burst
//! of changes costs a few messages, and no request waits on Redis.
//!
//! Bounded: past [`MAX_WAITING`] the oldest are dropped and counted (their
//! stored copies stay in the inbox; a resuming client gets them there).

use super::delivery::Delivery;
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// Notifications a shard's relay holds before it drops the oldest.
pub const MAX_WAITING: usize = 10_000;

/// The Redis channel every node publishes its notifications on.
pub const CHANNEL: &str = "dm:realtime";

/// What one node publishes on [`CHANNEL`].
#[derive(Debug, Serialize, Deserialize)]
pub struct Published {
    /// The publishing node's id (it skips its own).
    pub node: String,
    /// The notifications, in the order they were made.
    pub deliveries: Vec<Delivery>,
}

/// One notification waiting, and where it goes.
struct Waiting {
    delivery: Arc<Delivery>,
    to_peers: bool,
    to_nodes: bool,
}

/// The batches a relay hands its task.
#[derive(Default)]
pub struct Batch {
    /// For the node's other shards.
    pub to_peers: Vec<Arc<Delivery>>,
    /// For other nodes.
    pub to_nodes: Vec<Arc<Delivery>>,
}

/// A shard's queue of notifications for its peers and other nodes.
#[derive(Default)]
pub struct Relay {
    queue: RefCell<VecDeque<Waiting>>,
    waker: RefCell<Option<Waker>>,
    dropped: Cell<u64>,
}

impl Relay {
    /// Queues `d` for the node's other shards and/or other nodes.
    pub fn push(&self, delivery: Arc<Delivery>, to_peers: bool, to_nodes: bool) {
        let mut q = self.queue.borrow_mut();
        if q.len() >= MAX_WAITING {
            q.pop_front();
            self.dropped.set(self.dropped.get() + 1);
        }
        q.push_back(Waiting {
            delivery,
            to_peers,
            to_nodes,
        });
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Notifications dropped because the relay was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// Waits until something is queued, then takes all of it.
    pub fn next_batch(&self) -> NextBatch<'_> {
        NextBatch(self)
    }
}

/// The future of [`Relay::next_batch`].
pub struct NextBatch<'a>(&'a Relay);

impl Future for NextBatch<'_> {
    type Output = Batch;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Batch> {
        let mut q = self.0.queue.borrow_mut();
        if q.is_empty() {
            *self.0.waker.borrow_mut() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let mut batch = Batch::default();
        for w in q.drain(..) {
            if w.to_peers {
                batch.to_peers.push(w.delivery.clone());
            }
            if w.to_nodes {
                batch.to_nodes.push(w.delivery);
            }
        }
        Poll::Ready(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(id: i64) -> Arc<Delivery> {
        Arc::new(Delivery {
            game: "g".into(),
            player_id: 1,
            id,
            text: String::new(),
        })
    }

    #[test]
    fn a_batch_takes_everything_queued_in_order_and_the_oldest_go_first_when_full() {
        let relay = Relay::default();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(Pin::new(&mut relay.next_batch()).poll(&mut cx).is_pending());
        relay.push(d(1), true, false);
        relay.push(d(2), true, true);
        let Poll::Ready(b) = Pin::new(&mut relay.next_batch()).poll(&mut cx) else {
            panic!("a batch was queued");
        };
        let ids = |v: &[Arc<Delivery>]| v.iter().map(|d| d.id).collect::<Vec<_>>();
        assert_eq!(ids(&b.to_peers), [1, 2]);
        assert_eq!(ids(&b.to_nodes), [2]);
        for id in 0..(MAX_WAITING as i64 + 3) {
            relay.push(d(id), false, true);
        }
        assert_eq!(relay.dropped(), 3);
        let Poll::Ready(b) = Pin::new(&mut relay.next_batch()).poll(&mut cx) else {
            panic!("a batch was queued");
        };
        assert_eq!(b.to_nodes.first().map(|d| d.id), Some(3));
        assert_eq!(b.to_nodes.len(), MAX_WAITING);
    }
}
