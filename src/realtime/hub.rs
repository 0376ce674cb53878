//! The WebSocket connections of one shard: by the session each one
//! authenticated with, so that a revoked session (a logout, a ban, a
//! revocation another node pushed) closes its sockets at once (SPEC §11:
//! close code 4001), and by the players each one follows (its own player,
//! or those a game server or admin subscribed to), so that a notification
//! reaches every socket that should have it.
//!
//! Shard-local like everything on a core: `Rc`, `Cell`, `RefCell`. A socket
//! holds a [`Membership`] while it is authenticated; dropping it leaves the
//! hub. The hub only fills mailboxes and wakes their sockets: each socket
//! writes its own frames from its own task. A mailbox is bounded twice: by
//! `realtime.max_queued` notifications and by the shard's buffer budget
//! (`node.max_buffered_bytes`); past either, its socket is asked to close
//! (1008) instead of growing.

use super::delivery::Delivery;
use super::frame::close;
use crate::buffer::Reservation;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// Why the hub asks a socket to close: the close code and its reason.
pub type Closing = (u16, &'static str);

/// The close of a socket whose client reads slower than notifications come.
pub const TOO_SLOW: Closing = (
    close::POLICY,
    "reading too slowly: realtime.max_queued notifications waiting",
);
/// The close of a socket whose queue the shard's buffer budget cannot hold.
pub const NO_MEMORY: Closing = (close::POLICY, "server busy: no memory for notifications");

/// Most players one socket may follow (its own and subscriptions).
pub const MAX_WATCHED: usize = 64;

/// Players whose last-seen time a shard remembers without Redis; past it
/// the oldest half is forgotten.
const MAX_LAST_SEEN: usize = 100_000;

/// A game's player, as the hub keys them.
type PlayerKey = (Rc<str>, i64);

/// What a socket is told while it waits.
pub struct Mailbox {
    closing: Cell<Option<Closing>>,
    waker: RefCell<Option<Waker>>,
    queue: RefCell<VecDeque<Arc<Delivery>>>,
    limit: usize,
    memory: RefCell<Reservation>,
    bytes: Cell<usize>,
}

/// What woke a socket's wait on its mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mail {
    /// The hub asks it to close.
    Closing(Closing),
    /// Notifications wait ([`Mailbox::take`]).
    Ready,
}

impl Mailbox {
    /// Resolves once the hub asked this socket to close or notifications
    /// wait; closing first.
    pub fn next(&self) -> MailFuture<'_> {
        MailFuture(self)
    }

    /// Resolves once the hub asked this socket to close (whatever waits).
    pub fn closed(&self) -> ClosedFuture<'_> {
        ClosedFuture(self)
    }

    /// The oldest waiting notification.
    pub fn take(&self) -> Option<Arc<Delivery>> {
        let d = self.queue.borrow_mut().pop_front()?;
        self.bytes.set(self.bytes.get() - d.footprint());
        self.memory.borrow_mut().resize(self.bytes.get());
        Some(d)
    }

    /// Notifications waiting.
    pub fn queued(&self) -> usize {
        self.queue.borrow().len()
    }

    fn close(&self, why: Closing) {
        if self.closing.get().is_none() {
            self.closing.set(Some(why));
            // A revoked session's socket still writes what was queued
            // before (a ban's `player` notification); a slow one writes
            // nothing more: its memory goes back now.
            if why.0 != close::REVOKED {
                self.queue.borrow_mut().clear();
                self.bytes.set(0);
                self.memory.borrow_mut().resize(0);
            }
        }
        self.wake();
    }

    /// Queues `d`; the close it caused, if the queue or the budget is full.
    fn push(&self, d: &Arc<Delivery>) -> Option<Closing> {
        if self.closing.get().is_some() {
            return None;
        }
        if self.queue.borrow().len() >= self.limit {
            self.close(TOO_SLOW);
            return Some(TOO_SLOW);
        }
        let bytes = self.bytes.get() + d.footprint();
        if !self.memory.borrow_mut().resize(bytes) {
            self.close(NO_MEMORY);
            return Some(NO_MEMORY);
        }
        self.bytes.set(bytes);
        self.queue.borrow_mut().push_back(d.clone());
        self.wake();
        None
    }

    fn wake(&self) {
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

/// The future of [`Mailbox::next`].
pub struct MailFuture<'a>(&'a Mailbox);

impl Future for MailFuture<'_> {
    type Output = Mail;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Mail> {
        if let Some(why) = self.0.closing.get() {
            return Poll::Ready(Mail::Closing(why));
        }
        if !self.0.queue.borrow().is_empty() {
            return Poll::Ready(Mail::Ready);
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The future of [`Mailbox::closed`].
pub struct ClosedFuture<'a>(&'a Mailbox);

impl Future for ClosedFuture<'_> {
    type Output = Closing;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Closing> {
        match self.0.closing.get() {
            Some(why) => Poll::Ready(why),
            None => {
                *self.0.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// One shard's sockets by session and by the players they follow.
pub struct Hub {
    by_session: RefCell<HashMap<Rc<str>, Vec<Weak<Mailbox>>>>,
    by_player: RefCell<HashMap<PlayerKey, Vec<Weak<Mailbox>>>>,
    /// Each player's own sockets on this shard (presence).
    online: RefCell<HashMap<PlayerKey, usize>>,
    /// When players last left (Unix ms), for presence without Redis.
    last_seen: RefCell<HashMap<PlayerKey, i64>>,
    max_queued: usize,
    figures: HubFigures,
    /// Sockets on every shard of the node (a notification goes to the
    /// other shards only while there are some).
    node_sockets: Arc<AtomicUsize>,
}

/// What a shard's hub counted since it started, for `/metrics`.
#[derive(Debug, Default)]
pub struct HubFigures {
    /// Notifications queued on a socket.
    pub queued_total: Cell<u64>,
    /// Sockets closed because their client read too slowly.
    pub closed_slow_total: Cell<u64>,
    /// Sockets closed because the buffer budget had no room.
    pub closed_memory_total: Cell<u64>,
}

/// A socket's place in the hub; leaving it when dropped.
pub struct Membership {
    hub: Rc<Hub>,
    session: Rc<str>,
    mailbox: Rc<Mailbox>,
    watching: RefCell<Vec<PlayerKey>>,
    own: RefCell<Option<PlayerKey>>,
}

impl Membership {
    /// The socket's mailbox.
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    /// Follows `player_id` of `game` (`own`: the socket's own player, who
    /// is then online); false when the socket follows [`MAX_WATCHED`]
    /// players already. Following one twice is following it once.
    pub fn watch(&self, game: &str, player_id: i64, own: bool) -> bool {
        let key: PlayerKey = (Rc::from(game), player_id);
        let mut watching = self.watching.borrow_mut();
        if !watching.contains(&key) {
            if watching.len() >= MAX_WATCHED {
                return false;
            }
            watching.push(key.clone());
            let mut map = self.hub.by_player.borrow_mut();
            map.entry(key.clone())
                .or_default()
                .push(Rc::downgrade(&self.mailbox));
        }
        if own && self.own.borrow().is_none() {
            *self.hub.online.borrow_mut().entry(key.clone()).or_default() += 1;
            *self.own.borrow_mut() = Some(key);
        }
        true
    }

    /// Whether the socket follows `player_id` of `game`.
    pub fn watches(&self, game: &str, player_id: i64) -> bool {
        self.watching
            .borrow()
            .iter()
            .any(|(g, p)| **g == *game && *p == player_id)
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let me = Rc::as_ptr(&self.mailbox);
        let gone = |list: &mut Vec<Weak<Mailbox>>| {
            list.retain(|m| m.strong_count() > 0 && !std::ptr::eq(m.as_ptr(), me));
            list.is_empty()
        };
        let mut sessions = self.hub.by_session.borrow_mut();
        if sessions.get_mut(&self.session).is_some_and(gone) {
            sessions.remove(&self.session);
        }
        let mut players = self.hub.by_player.borrow_mut();
        for key in self.watching.borrow().iter() {
            if players.get_mut(key).is_some_and(gone) {
                players.remove(key);
            }
        }
        if let Some(key) = self.own.borrow_mut().take() {
            let mut online = self.hub.online.borrow_mut();
            if let Some(n) = online.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    online.remove(&key);
                }
            }
            let mut seen = self.hub.last_seen.borrow_mut();
            if seen.len() >= MAX_LAST_SEEN {
                let mut times: Vec<i64> = seen.values().copied().collect();
                let (_, median, _) = times.select_nth_unstable(MAX_LAST_SEEN / 2);
                let median = *median;
                seen.retain(|_, t| *t > median);
            }
            seen.insert(key, crate::clock::now_ms());
        }
        self.hub.node_sockets.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Hub {
    /// A shard's hub: each socket queues at most `max_queued`
    /// notifications; `node_sockets` counts the node's sockets.
    pub fn new(max_queued: usize, node_sockets: Arc<AtomicUsize>) -> Rc<Hub> {
        Rc::new(Hub {
            by_session: RefCell::default(),
            by_player: RefCell::default(),
            online: RefCell::default(),
            last_seen: RefCell::default(),
            max_queued,
            figures: HubFigures::default(),
            node_sockets,
        })
    }

    /// Registers a socket authenticated with `session`, its queue held in
    /// `memory`.
    pub fn join(self: &Rc<Self>, session: &str, memory: Reservation) -> Membership {
        let session: Rc<str> = Rc::from(session);
        let mailbox = Rc::new(Mailbox {
            closing: Cell::new(None),
            waker: RefCell::new(None),
            queue: RefCell::new(VecDeque::new()),
            limit: self.max_queued,
            memory: RefCell::new(memory),
            bytes: Cell::new(0),
        });
        self.by_session
            .borrow_mut()
            .entry(session.clone())
            .or_default()
            .push(Rc::downgrade(&mailbox));
        self.node_sockets.fetch_add(1, Ordering::Relaxed);
        Membership {
            hub: self.clone(),
            session,
            mailbox,
            watching: RefCell::new(Vec::new()),
            own: RefCell::new(None),
        }
    }

    /// Asks every socket of `sessions` to close for `why`; how many.
    pub fn close_sessions(&self, sessions: &[String], why: Closing) -> usize {
        let map = self.by_session.borrow();
        let mut closed = 0;
        for s in sessions {
            for m in map.get(s.as_str()).into_iter().flatten() {
                if let Some(m) = m.upgrade() {
                    m.close(why);
                    closed += 1;
                }
            }
        }
        closed
    }

    /// Queues `d` on every socket of this shard that follows its player;
    /// how many.
    pub fn deliver(&self, d: &Arc<Delivery>) -> usize {
        let key: PlayerKey = (Rc::from(d.game.as_str()), d.player_id);
        let map = self.by_player.borrow();
        let mut reached = 0;
        let f = &self.figures;
        for m in map.get(&key).into_iter().flatten() {
            if let Some(m) = m.upgrade() {
                match m.push(d) {
                    None => f.queued_total.set(f.queued_total.get() + 1),
                    Some(TOO_SLOW) => f.closed_slow_total.set(f.closed_slow_total.get() + 1),
                    Some(_) => f.closed_memory_total.set(f.closed_memory_total.get() + 1),
                }
                reached += 1;
            }
        }
        reached
    }

    /// Whether the node has sockets on any shard.
    pub fn node_has_sockets(&self) -> bool {
        self.node_sockets.load(Ordering::Relaxed) > 0
    }

    /// Whether a player has a socket of its own on this shard.
    pub fn is_online(&self, game: &str, player_id: i64) -> bool {
        self.online
            .borrow()
            .contains_key(&(Rc::from(game), player_id))
    }

    /// The players of `game` with a socket of their own on this shard.
    pub fn online_players(&self, game: &str) -> Vec<i64> {
        self.online
            .borrow()
            .keys()
            .filter(|(g, _)| **g == *game)
            .map(|(_, p)| *p)
            .collect()
    }

    /// Every player online on this shard, by game.
    pub fn online_everywhere(&self) -> Vec<(String, i64)> {
        self.online
            .borrow()
            .keys()
            .map(|(g, p)| (g.to_string(), *p))
            .collect()
    }

    /// When a player last left this shard (Unix ms), if it remembers.
    pub fn last_seen(&self, game: &str, player_id: i64) -> Option<i64> {
        self.last_seen
            .borrow()
            .get(&(Rc::from(game), player_id))
            .copied()
    }

    /// What the hub counted.
    pub fn figures(&self) -> &HubFigures {
        &self.figures
    }

    /// Sockets in the hub.
    pub fn sockets(&self) -> usize {
        self.by_session.borrow().values().map(Vec::len).sum()
    }

    /// Notifications queued on this shard's sockets (each socket is in
    /// the hub under its one session, so each counts once).
    pub fn queued(&self) -> usize {
        self.by_session
            .borrow()
            .values()
            .flatten()
            .filter_map(Weak::upgrade)
            .map(|m| m.queued())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::BufferBudget;

    fn poll(m: &Mailbox) -> Poll<Mail> {
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        Pin::new(&mut m.next()).poll(&mut cx)
    }

    fn delivery(game: &str, player_id: i64, id: i64) -> Arc<Delivery> {
        Arc::new(Delivery {
            game: game.into(),
            player_id,
            id,
            text: format!("{{\"id\":{id}}}"),
        })
    }

    #[test]
    fn closing_a_session_reaches_its_sockets_only_and_leaving_cleans_up() {
        let budget = BufferBudget::new(1 << 20);
        let hub = Hub::new(8, Arc::default());
        let a1 = hub.join("a", budget.reservation());
        let a2 = hub.join("a", budget.reservation());
        let b = hub.join("b", budget.reservation());
        assert_eq!(hub.sockets(), 3);
        assert!(hub.node_has_sockets());
        let why = (4001, "session revoked");
        assert_eq!(hub.close_sessions(&["a".into(), "zz".into()], why), 2);
        assert_eq!(poll(a1.mailbox()), Poll::Ready(Mail::Closing(why)));
        assert_eq!(poll(a2.mailbox()), Poll::Ready(Mail::Closing(why)));
        assert_eq!(poll(b.mailbox()), Poll::Pending);
        drop(a1);
        assert_eq!(hub.sockets(), 2);
        drop(a2);
        drop(b);
        assert_eq!(hub.sockets(), 0);
        assert!(!hub.node_has_sockets());
        assert!(hub.by_session.borrow().is_empty());
    }

    #[test]
    fn a_delivery_reaches_the_followers_of_its_player_in_order() {
        let budget = BufferBudget::new(1 << 20);
        let hub = Hub::new(8, Arc::default());
        let own = hub.join("s1", budget.reservation());
        let server = hub.join("s2", budget.reservation());
        let other = hub.join("s3", budget.reservation());
        assert!(own.watch("g", 7, true));
        assert!(server.watch("g", 7, false));
        assert!(other.watch("g", 8, true));
        assert!(hub.is_online("g", 7));
        assert_eq!(hub.deliver(&delivery("g", 7, 1)), 2);
        assert_eq!(hub.deliver(&delivery("g", 7, 2)), 2);
        assert_eq!(
            hub.deliver(&delivery("h", 7, 1)),
            0,
            "another game's player 7"
        );
        assert_eq!(poll(own.mailbox()), Poll::Ready(Mail::Ready));
        assert_eq!(own.mailbox().take().map(|d| d.id), Some(1));
        assert_eq!(own.mailbox().take().map(|d| d.id), Some(2));
        assert!(own.mailbox().take().is_none());
        assert_eq!(server.mailbox().queued(), 2);
        assert_eq!(poll(other.mailbox()), Poll::Pending);
        assert!(budget.used() > 0, "queued bytes are held in the budget");
        drop(server);
        assert_eq!(budget.used(), 0, "a leaving socket gives its bytes back");
        drop(own);
        assert!(!hub.is_online("g", 7));
        assert!(hub.last_seen("g", 7).is_some());
    }

    #[test]
    fn a_full_mailbox_or_budget_closes_its_socket_with_1008() {
        let budget = BufferBudget::new(1 << 20);
        let hub = Hub::new(2, Arc::default());
        let slow = hub.join("s", budget.reservation());
        slow.watch("g", 1, true);
        for id in 1..=3 {
            hub.deliver(&delivery("g", 1, id));
        }
        assert_eq!(poll(slow.mailbox()), Poll::Ready(Mail::Closing(TOO_SLOW)));
        assert_eq!(budget.used(), 0, "a closing socket holds nothing");

        let tiny = BufferBudget::new(10);
        let hub = Hub::new(100, Arc::default());
        let s = hub.join("s", tiny.reservation());
        s.watch("g", 1, true);
        hub.deliver(&delivery("g", 1, 1));
        assert_eq!(poll(s.mailbox()), Poll::Ready(Mail::Closing(NO_MEMORY)));
    }

    #[test]
    fn a_socket_follows_a_bounded_number_of_players() {
        let budget = BufferBudget::new(1 << 20);
        let hub = Hub::new(8, Arc::default());
        let s = hub.join("s", budget.reservation());
        for p in 0..MAX_WATCHED as i64 {
            assert!(s.watch("g", p, false));
        }
        assert!(s.watch("g", 0, false), "one it follows already");
        assert!(!s.watch("g", 999, false));
        assert!(s.watches("g", 5) && !s.watches("g", 999));
    }
}
