//! A bounded pool of MySQL connections that never pings.
//!
//! The `mysql` crate's own pool sends a `COM_PING` before handing out every
//! connection: one more round trip per transaction, on the path where round
//! trips are what a request costs. This pool hands out an idle connection
//! as it is; a connection that met a connectivity error is dropped instead
//! of going back (the crate's pool would keep it), and the caller retries
//! once on a fresh connection when the error came before anything could have
//! been applied (see [`super::mysql`]).

use mysql::{Conn, Opts};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// At most `size` connections to one server, opened on demand.
pub struct ConnPool {
    opts: Opts,
    size: usize,
    state: Mutex<State>,
    returned: Condvar,
}

struct State {
    idle: Vec<Conn>,
    /// Connections that exist: idle or handed out.
    open: usize,
}

/// Why no connection could be had.
pub enum PoolError {
    /// Every connection stayed busy for the whole wait.
    Timeout,
    /// Opening a new connection failed.
    Connect(mysql::Error),
}

/// A connection on loan; back to the pool when dropped unless it broke.
pub struct PooledConn<'a> {
    pool: &'a ConnPool,
    conn: Option<Conn>,
    /// Whether it was idle in the pool (and so may have gone stale) rather
    /// than opened for this loan.
    pub reused: bool,
    broken: bool,
}

impl ConnPool {
    /// A pool of at most `size` (≥ 1) connections made with `opts`.
    pub fn new(opts: Opts, size: usize) -> ConnPool {
        ConnPool {
            opts,
            size: size.max(1),
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent Vec and count.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection, else a new one while fewer than `size` exist,
    /// else the first one returned within `wait`.
    pub fn get(&self, wait: Duration) -> Result<PooledConn<'_>, PoolError> {
        let deadline = Instant::now() + wait;
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(self.loan(conn, true));
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match Conn::new(self.opts.clone()) {
                    Ok(conn) => Ok(self.loan(conn, false)),
                    Err(e) => {
                        self.forget_one();
                        Err(PoolError::Connect(e))
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(PoolError::Timeout);
            }
            state = self
                .returned
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn loan(&self, conn: Conn, reused: bool) -> PooledConn<'_> {
        PooledConn {
            pool: self,
            conn: Some(conn),
            reused,
            broken: false,
        }
    }

    /// One connection stopped existing: room for a new one.
    fn forget_one(&self) {
        self.lock().open -= 1;
        self.returned.notify_one();
    }
}

impl PooledConn<'_> {
    /// The connection (present until drop).
    pub fn conn(&mut self) -> &mut Conn {
        match &mut self.conn {
            Some(conn) => conn,
            None => unreachable!("the connection leaves only in drop"),
        }
    }

    /// Closes this connection instead of returning it: it met a
    /// connectivity error, or its session state is unknown.
    pub fn discard(&mut self) {
        self.broken = true;
    }
}

impl Drop for PooledConn<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        // A panic in the caller's work may have left a transaction open on
        // it: closing the connection rolls that back.
        if self.broken || std::thread::panicking() {
            drop(conn);
            self.pool.forget_one();
        } else {
            self.pool.lock().idle.push(conn);
            self.pool.returned.notify_one();
        }
    }
}
