//! The WebSocket connections of one shard, by the session each one
//! authenticated with, so that a revoked session (a logout, a ban, a
//! revocation another node pushed) closes its sockets at once (SPEC §11:
//! close code 4001) instead of at their next message.
//!
//! Shard-local like everything on a core: `Rc`, `Cell`, `RefCell`. A socket
//! holds a [`Membership`] while it is authenticated; dropping it leaves the
//! hub. Closing a session only marks its mailboxes and wakes their sockets:
//! each socket writes its own close frame from its own task.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

/// Why the hub asks a socket to close: the close code and its reason.
pub type Closing = (u16, &'static str);

/// What a socket is told while it waits.
#[derive(Default)]
pub struct Mailbox {
    closing: Cell<Option<Closing>>,
    waker: RefCell<Option<Waker>>,
}

impl Mailbox {
    /// Resolves once the hub asked this socket to close.
    pub fn closed(&self) -> ClosedFuture<'_> {
        ClosedFuture(self)
    }

    fn close(&self, why: Closing) {
        if self.closing.get().is_none() {
            self.closing.set(Some(why));
        }
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
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

/// One shard's sockets by session id.
#[derive(Default)]
pub struct Hub {
    by_session: RefCell<HashMap<Rc<str>, Vec<Weak<Mailbox>>>>,
}

/// A socket's place in the hub; leaving it when dropped.
pub struct Membership {
    hub: Rc<Hub>,
    session: Rc<str>,
    mailbox: Rc<Mailbox>,
}

impl Membership {
    /// The socket's mailbox.
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut map = self.hub.by_session.borrow_mut();
        if let Some(list) = map.get_mut(&self.session) {
            list.retain(|m| m.strong_count() > 0 && !std::ptr::eq(m.as_ptr(), &*self.mailbox));
            if list.is_empty() {
                map.remove(&self.session);
            }
        }
    }
}

impl Hub {
    /// Registers a socket authenticated with `session`.
    pub fn join(self: &Rc<Self>, session: &str) -> Membership {
        let session: Rc<str> = Rc::from(session);
        let mailbox = Rc::new(Mailbox::default());
        self.by_session
            .borrow_mut()
            .entry(session.clone())
            .or_default()
            .push(Rc::downgrade(&mailbox));
        Membership {
            hub: self.clone(),
            session,
            mailbox,
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

    /// Sockets in the hub.
    pub fn sockets(&self) -> usize {
        self.by_session.borrow().values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_a_session_reaches_its_sockets_only_and_leaving_cleans_up() {
        let hub = Rc::new(Hub::default());
        let a1 = hub.join("a");
        let a2 = hub.join("a");
        let b = hub.join("b");
        assert_eq!(hub.sockets(), 3);
        let why = (4001, "session revoked");
        assert_eq!(hub.close_sessions(&["a".into(), "zz".into()], why), 2);
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(
            Pin::new(&mut a1.mailbox().closed()).poll(&mut cx),
            Poll::Ready(why)
        );
        assert_eq!(
            Pin::new(&mut a2.mailbox().closed()).poll(&mut cx),
            Poll::Ready(why)
        );
        assert_eq!(
            Pin::new(&mut b.mailbox().closed()).poll(&mut cx),
            Poll::Pending
        );
        drop(a1);
        assert_eq!(hub.sockets(), 2);
        drop(a2);
        drop(b);
        assert_eq!(hub.sockets(), 0);
        assert!(hub.by_session.borrow().is_empty());
    }
}
