//! A shard's pool of [`Connection`]s to one server (a game's primary or one
//! replica), so that a request borrows a connection that is already open and
//! authenticated instead of paying a connect per transaction.
//!
//! Shard-local, like everything on a core: `Rc`, `Cell` and `RefCell` and
//! glommio's semaphore, no lock. At most `size` connections exist (idle or
//! lent), opened on demand; a borrower waits for one at most the pool's
//! wait, then gets [`PoolError::Busy`].
//!
//! It keeps the rules of the blocking pool it replaced (the `mysql` crate's
//! on the shard's blocking threads, before issue 25):
//!
//! - No ping before lending: round trips are what a request costs. A
//!   connection left idle may have gone stale (`wait_timeout`, a `KILL`, a
//!   server restart); when the work fails on it with a lost connection
//!   before any statement succeeded, nothing was applied, so the connection
//!   is dropped and the work runs once more on a fresh one
//!   ([`Pool::run`], [`Pool::transaction`]).
//! - A connection never goes back to the pool broken ([`Connection::is_broken`]:
//!   dropped, never reused) or with a transaction open (`ROLLBACK` first;
//!   dropped when that fails).
//! - A whole transaction that lost a deadlock (1213) or a lock wait (1205)
//!   runs again, [`ATTEMPTS`] times in all, with a short growing pause:
//!   it wrote nothing.
//! - After a statement timed out, the server may still be running it: its
//!   connection is dropped and `KILL QUERY <id>` goes out on another
//!   connection (best effort, in the background, holding the dropped
//!   connection's place in the pool so the bound still holds).

use super::conn::Connection;
use super::error::{codes, MysqlError};
use super::opts::Opts;
use super::result::QueryResult;
use glommio::sync::{Semaphore, StaticPermit};
use mysql_common::Value;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

/// Attempts of a whole transaction that lost a deadlock or a lock wait (the
/// store's policy since the blocking pool).
pub const ATTEMPTS: usize = 4;

/// Default bound on waiting for a busy pool's connection.
pub const WAIT: Duration = Duration::from_secs(3);

/// `ER_NO_SUCH_THREAD`: `KILL` named a connection that no longer exists.
const NO_SUCH_THREAD: u16 = 1094;

/// A bounded pool of connections to one server; cheap to clone (the clones
/// share the pool). Use it only on the shard (executor) that made it.
#[derive(Clone)]
pub struct Pool {
    inner: Rc<Inner>,
}

struct Inner {
    opts: Opts,
    /// `host:port/db`, for messages.
    name: String,
    size: usize,
    wait: Duration,
    /// One unit per connection that may exist; a loan holds one.
    permits: Rc<Semaphore>,
    idle: RefCell<Vec<Connection>>,
    open: Cell<usize>,
    waiting: Cell<usize>,
    opened_total: Cell<u64>,
    dropped_broken_total: Cell<u64>,
    busy_total: Cell<u64>,
    stale_retries_total: Cell<u64>,
    lock_retries_total: Cell<u64>,
    kills_total: Cell<u64>,
}

/// What a shard reports about one pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolFigures {
    /// The bound on connections.
    pub size: usize,
    /// Connections that exist now: idle, lent, or being opened.
    pub open: usize,
    /// Connections idle in the pool now.
    pub idle: usize,
    /// Borrowers waiting for a connection now.
    pub waiting: usize,
    /// Connections opened since the pool was made.
    pub opened_total: u64,
    /// Connections closed instead of going back to the pool: broken, left
    /// in a transaction that could not be rolled back, or abandoned
    /// half-way.
    pub dropped_broken_total: u64,
    /// Borrowers that gave up waiting ([`PoolError::Busy`]).
    pub busy_total: u64,
    /// Works run again on a fresh connection after a stale idle one failed.
    pub stale_retries_total: u64,
    /// Transactions run again after a deadlock or a lock wait timeout.
    pub lock_retries_total: u64,
    /// `KILL QUERY`s sent after a statement timed out.
    pub kills_total: u64,
}

/// Why the pool could not give a connection, or the work on one failed.
#[derive(Debug)]
pub enum PoolError {
    /// Every connection stayed busy for the whole wait.
    Busy {
        /// The server, `host:port/db`.
        server: String,
        /// The pool's bound.
        size: usize,
        /// How long the borrower waited.
        waited: Duration,
    },
    /// Opening a new connection failed.
    Connect {
        /// The server, `host:port/db`.
        server: String,
        /// Why.
        error: MysqlError,
    },
    /// A statement failed.
    Mysql(MysqlError),
}

impl PoolError {
    /// The MySQL error underneath, if any.
    pub fn mysql(&self) -> Option<&MysqlError> {
        match self {
            PoolError::Busy { .. } => None,
            PoolError::Connect { error, .. } | PoolError::Mysql(error) => Some(error),
        }
    }
}

impl From<MysqlError> for PoolError {
    fn from(e: MysqlError) -> PoolError {
        PoolError::Mysql(e)
    }
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Busy {
                server,
                size,
                waited,
            } => write!(
                f,
                "mysql {server}: no connection free: the pool's {size} stayed busy for {waited:?}"
            ),
            PoolError::Connect { server, error } => write!(f, "mysql {server}: connect: {error}"),
            PoolError::Mysql(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.mysql().map(|e| e as _)
    }
}

/// Whether `e` means the connection was gone before the statement ran (the
/// socket failed, the bytes came back out of step, or the server said it
/// had closed the connection) — as opposed to a timeout, after which the
/// statement may be running.
fn lost_connection(e: &MysqlError) -> bool {
    match e {
        MysqlError::Io(_) | MysqlError::Protocol(_) | MysqlError::Broken => true,
        MysqlError::Server { code, .. } => matches!(
            *code,
            codes::SERVER_SHUTDOWN | codes::CONNECTION_KILLED | codes::CLIENT_INTERACTION_TIMEOUT
        ),
        _ => false,
    }
}

impl Pool {
    /// A pool of at most `size` (≥ 1) connections made with `opts`, whose
    /// borrowers wait at most `wait`. No connection is made until first use.
    pub fn new(opts: Opts, size: usize, wait: Duration) -> Pool {
        let size = size.max(1);
        Pool {
            inner: Rc::new(Inner {
                name: opts.name(),
                opts,
                size,
                wait,
                permits: Rc::new(Semaphore::new(size as u64)),
                idle: RefCell::new(Vec::new()),
                open: Cell::new(0),
                waiting: Cell::new(0),
                opened_total: Cell::new(0),
                dropped_broken_total: Cell::new(0),
                busy_total: Cell::new(0),
                stale_retries_total: Cell::new(0),
                lock_retries_total: Cell::new(0),
                kills_total: Cell::new(0),
            }),
        }
    }

    /// The server, `host:port/db` (no credentials).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Connections opened since the pool was made: what a borrower that
    /// remembers what the server said compares to learn that it may be
    /// talking to a server that restarted or to another one since.
    pub fn opened_total(&self) -> u64 {
        self.inner.opened_total.get()
    }

    /// The pool's figures now.
    pub fn figures(&self) -> PoolFigures {
        let i = &self.inner;
        PoolFigures {
            size: i.size,
            open: i.open.get(),
            idle: i.idle.borrow().len(),
            waiting: i.waiting.get(),
            opened_total: i.opened_total.get(),
            dropped_broken_total: i.dropped_broken_total.get(),
            busy_total: i.busy_total.get(),
            stale_retries_total: i.stale_retries_total.get(),
            lock_retries_total: i.lock_retries_total.get(),
            kills_total: i.kills_total.get(),
        }
    }

    /// A connection on loan: an idle one as it is (no ping), else a new
    /// one while fewer than `size` exist, else the first one given back
    /// within the pool's wait. Give it back with [`PooledConn::release`]
    /// (dropping it gives it back too, but cannot roll back: a transaction
    /// left open then costs the connection).
    pub async fn get(&self) -> Result<PooledConn, PoolError> {
        let permit = self.inner.acquire().await?;
        Inner::lend(&self.inner, permit, false).await
    }

    /// Runs `work` on a borrowed connection and gives the connection back.
    /// When `work` failed on a connection that had been idle, with a lost
    /// connection before any statement succeeded, nothing was applied:
    /// that connection is dropped and `work` runs once more on a fresh one,
    /// so a stale idle connection costs the caller no error. No other
    /// retry: a single statement outside a transaction, or work that
    /// manages its own, runs once.
    pub async fn run<T, E, F>(&self, mut work: F) -> Result<T, E>
    where
        F: AsyncFnMut(&mut PooledConn) -> Result<T, E>,
        E: From<PoolError>,
    {
        let mut conn = self.get().await?;
        let mut result = work(&mut conn).await;
        if result.is_err() && conn.stale() {
            conn = conn.renew().await?;
            result = work(&mut conn).await;
        }
        conn.release().await;
        result
    }

    /// Runs `work` inside a transaction: `START TRANSACTION`, `work`, and
    /// `COMMIT` when it succeeded (`ROLLBACK` when it failed). A stale idle
    /// connection failing `START TRANSACTION` is replaced by a fresh one
    /// (nothing was applied). When the first error of `work` (duplicate
    /// keys aside: they undo only their statement), or the `COMMIT`, lost
    /// the transaction ([`MysqlError::loses_transaction`]), it wrote
    /// nothing and runs again — [`ATTEMPTS`] times in all, pausing 2 ms,
    /// 4 ms, 6 ms between.
    pub async fn transaction<T, E, F>(&self, mut work: F) -> Result<T, E>
    where
        F: AsyncFnMut(&mut PooledConn) -> Result<T, E>,
        E: From<PoolError>,
    {
        let mut attempt = 1;
        loop {
            let mut conn = self.begin().await?;
            let result = work(&mut conn).await;
            let lost_lock = conn.first_error_retryable == Some(true);
            match result {
                Ok(v) => match conn.commit().await {
                    Ok(()) => {
                        conn.release().await;
                        return Ok(v);
                    }
                    Err(e) => {
                        // Whatever the server left of the transaction goes
                        // with the connection, never to the next borrower.
                        conn.discard();
                        conn.release().await;
                        if !(e.loses_transaction() && attempt < ATTEMPTS) {
                            return Err(PoolError::from(e).into());
                        }
                    }
                },
                Err(e) => {
                    conn.release().await;
                    if !(lost_lock && attempt < ATTEMPTS) {
                        return Err(e);
                    }
                }
            }
            self.inner.count(&self.inner.lock_retries_total);
            glommio::timer::sleep(Duration::from_millis(2 * attempt as u64)).await;
            attempt += 1;
        }
    }

    /// A connection inside a transaction just started, on a fresh
    /// connection if an idle one turned out stale.
    async fn begin(&self) -> Result<PooledConn, PoolError> {
        let mut conn = self.get().await?;
        let mut started = conn.begin().await;
        if started.is_err() && conn.stale() {
            conn = conn.renew().await?;
            started = conn.begin().await;
        }
        match started {
            Ok(()) => Ok(conn),
            Err(e) => {
                conn.release().await;
                Err(e.into())
            }
        }
    }
}

impl Inner {
    fn count(&self, c: &Cell<u64>) {
        c.set(c.get() + 1);
    }

    /// A place in the pool, within the wait.
    async fn acquire(&self) -> Result<StaticPermit, PoolError> {
        if let Ok(permit) = self.permits.try_acquire_static_permit(1) {
            return Ok(permit);
        }
        let _waiting = Waiting::new(&self.waiting);
        let got = futures_lite::future::or(
            async { Some(self.permits.acquire_static_permit(1).await) },
            async {
                glommio::timer::sleep(self.wait).await;
                None
            },
        )
        .await;
        match got {
            Some(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a closed one is as busy as can be.
            Some(Err(_)) | None => {
                self.count(&self.busy_total);
                Err(PoolError::Busy {
                    server: self.name.clone(),
                    size: self.size,
                    waited: self.wait,
                })
            }
        }
    }

    /// Lends a connection under `permit`: an idle one unless `fresh`, else
    /// a new one.
    async fn lend(
        inner: &Rc<Inner>,
        permit: StaticPermit,
        fresh: bool,
    ) -> Result<PooledConn, PoolError> {
        let idle = if fresh {
            None
        } else {
            inner.idle.borrow_mut().pop()
        };
        let reused = idle.is_some();
        let conn = match idle {
            Some(conn) => conn,
            None => inner.connect().await?,
        };
        Ok(PooledConn {
            pool: inner.clone(),
            conn: Some(conn),
            permit: Some(permit),
            reused,
            succeeded: 0,
            first_error_retryable: None,
            lost: false,
            timed_out: false,
            in_flight: false,
            discard: false,
        })
    }

    /// Opens a connection, counted as open while it is being made.
    async fn connect(&self) -> Result<Connection, PoolError> {
        self.open.set(self.open.get() + 1);
        let counted = OpenGuard(&self.open);
        let conn = Connection::connect(&self.opts)
            .await
            .map_err(|error| PoolError::Connect {
                server: self.name.clone(),
                error,
            })?;
        std::mem::forget(counted);
        self.count(&self.opened_total);
        Ok(conn)
    }

    /// Closes `conn` (not to be reused).
    fn drop_conn(&self, conn: Connection) {
        self.open.set(self.open.get().saturating_sub(1));
        self.count(&self.dropped_broken_total);
        drop(conn);
    }

    /// Sends `KILL QUERY id` on an idle or new connection, holding `permit`
    /// (the killed connection's place) meanwhile. A stale idle connection
    /// is dropped and a fresh one tried once. Best effort: failures are
    /// logged.
    async fn kill_query(inner: Rc<Inner>, id: u32, permit: StaticPermit) {
        let sql = format!("KILL QUERY {id}");
        let failed = |e: &dyn fmt::Display| {
            tracing::warn!(server = %inner.name, connection = id, error = %e,
                "could not kill a timed-out statement");
        };
        let mut conn = match Inner::lend(&inner, permit, false).await {
            Ok(conn) => conn,
            Err(e) => return failed(&e),
        };
        let mut r = conn.query(&sql).await;
        if r.is_err() && conn.stale() {
            conn = match conn.renew().await {
                Ok(conn) => conn,
                Err(e) => return failed(&e),
            };
            r = conn.query(&sql).await;
        }
        match r {
            Ok(_) => inner.count(&inner.kills_total),
            Err(e) if e.code() == Some(NO_SUCH_THREAD) => {}
            Err(e) => failed(&e),
        }
        // A KILL that timed out is not killed in turn: the connection just
        // closes.
        conn.timed_out = false;
        conn.release().await;
    }
}

/// Counts a borrower as waiting while it lives.
struct Waiting<'a>(&'a Cell<usize>);

impl<'a> Waiting<'a> {
    fn new(c: &'a Cell<usize>) -> Waiting<'a> {
        c.set(c.get() + 1);
        Waiting(c)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// Uncounts a connection being opened unless forgotten (it opened).
struct OpenGuard<'a>(&'a Cell<usize>);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// A connection on loan from a [`Pool`]. Its statements go through here so
/// that the pool learns what it needs to decide on a retry and on taking
/// the connection back; [`PooledConn::connection`] shows the connection
/// itself.
pub struct PooledConn {
    pool: Rc<Inner>,
    /// Present until the loan ends.
    conn: Option<Connection>,
    /// The loan's place in the pool.
    permit: Option<StaticPermit>,
    reused: bool,
    /// Statements that succeeded on this loan.
    succeeded: usize,
    /// Whether the first statement error on this loan (duplicate keys
    /// aside) was a lost deadlock, lock wait or snapshot conflict.
    first_error_retryable: Option<bool>,
    /// Whether a statement lost the connection.
    lost: bool,
    /// Whether a statement timed out (the server may still run it).
    timed_out: bool,
    /// Whether a statement is under way (set while awaiting it).
    in_flight: bool,
    /// Whether the connection must be closed instead of going back.
    discard: bool,
}

impl fmt::Debug for PooledConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledConn")
            .field("server", &self.pool.name)
            .field("conn", &self.conn)
            .field("reused", &self.reused)
            .finish()
    }
}

impl PooledConn {
    /// The connection itself (`None` only once the loan has ended).
    pub fn connection(&self) -> Option<&Connection> {
        self.conn.as_ref()
    }

    /// The server's id for the connection (0 once the loan has ended).
    pub fn connection_id(&self) -> u32 {
        self.conn.as_ref().map_or(0, Connection::connection_id)
    }

    /// Whether a transaction is open, as of the server's last answer.
    pub fn in_transaction(&self) -> bool {
        self.conn.as_ref().is_some_and(Connection::in_transaction)
    }

    /// Whether the connection broke and will be closed, never reused.
    pub fn is_broken(&self) -> bool {
        self.conn.as_ref().is_none_or(Connection::is_broken)
    }

    /// Whether the connection had been idle in the pool (and so may have
    /// gone stale) rather than opened for this loan.
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// Closes the connection at the end of the loan instead of giving it
    /// back (its session state is not to be trusted).
    pub fn discard(&mut self) {
        self.discard = true;
    }

    /// [`Connection::query`]: `sql` in the text protocol.
    pub async fn query(&mut self, sql: &str) -> Result<QueryResult, MysqlError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(MysqlError::Broken);
        };
        self.in_flight = true;
        let r = conn.query(sql).await;
        self.note(r)
    }

    /// [`Connection::exec`]: `sql` prepared (once per connection) with
    /// `params` bound.
    pub async fn exec(&mut self, sql: &str, params: &[Value]) -> Result<QueryResult, MysqlError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(MysqlError::Broken);
        };
        self.in_flight = true;
        let r = conn.exec(sql, params).await;
        self.note(r)
    }

    /// [`Connection::exec_batch`]: statements pipelined, one round trip.
    /// A duplicate key answered to one of them is the caller's to handle
    /// and is not noted as the work's first error.
    pub async fn exec_batch(
        &mut self,
        batch: &[(&str, Vec<Value>)],
    ) -> Result<Vec<Result<QueryResult, MysqlError>>, MysqlError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(MysqlError::Broken);
        };
        self.in_flight = true;
        let answers = conn.exec_batch(batch).await;
        let answers = self.note(answers)?;
        for e in answers.iter().filter_map(|r| r.as_ref().err()) {
            self.note_first_error(e);
        }
        Ok(answers)
    }

    /// Starts a transaction.
    pub async fn begin(&mut self) -> Result<(), MysqlError> {
        self.query("START TRANSACTION").await.map(drop)
    }

    /// Commits the open transaction.
    pub async fn commit(&mut self) -> Result<(), MysqlError> {
        self.query("COMMIT").await.map(drop)
    }

    /// Rolls the open transaction back.
    pub async fn rollback(&mut self) -> Result<(), MysqlError> {
        self.query("ROLLBACK").await.map(drop)
    }

    fn note<T>(&mut self, r: Result<T, MysqlError>) -> Result<T, MysqlError> {
        self.in_flight = false;
        match &r {
            Ok(_) => self.succeeded += 1,
            Err(e) => {
                self.lost |= lost_connection(e);
                self.timed_out |= matches!(e, MysqlError::Timeout(_));
                self.note_first_error(e);
            }
        }
        r
    }

    /// Remembers whether the loan's first statement error lost the
    /// transaction. A duplicate key is not counted: it undoes only its
    /// statement, the work may go on (an audit append steps to the next
    /// place), and a lost lock after it still runs the transaction again.
    fn note_first_error(&mut self, e: &MysqlError) {
        if !e.is_duplicate_key() {
            self.first_error_retryable
                .get_or_insert(e.loses_transaction());
        }
    }

    /// Whether the work failed on a stale idle connection before anything
    /// was applied: reused, lost, no statement succeeded, none timed out.
    fn stale(&self) -> bool {
        self.reused && self.lost && self.succeeded == 0 && !self.timed_out
    }

    /// Drops this (stale) connection and lends a fresh one in its place,
    /// without waiting again.
    async fn renew(mut self) -> Result<PooledConn, PoolError> {
        self.pool.count(&self.pool.stale_retries_total);
        if let Some(conn) = self.conn.take() {
            self.pool.drop_conn(conn);
        }
        let Some(permit) = self.permit.take() else {
            return Err(PoolError::Mysql(MysqlError::Broken));
        };
        Inner::lend(&self.pool, permit, true).await
    }

    /// Ends the loan: an open transaction is rolled back, then the
    /// connection goes back to the pool — or is closed when it broke, the
    /// rollback failed, or [`PooledConn::discard`] was called. After a
    /// statement timeout, `KILL QUERY` goes out on another connection in
    /// the background.
    pub async fn release(mut self) {
        let open = self.in_transaction() && !self.is_broken() && !self.discard;
        if open && (self.rollback().await.is_err() || self.in_transaction()) {
            self.discard = true;
        }
        if self.timed_out {
            if let (Some(conn), Some(permit)) = (self.conn.take(), self.permit.take()) {
                let id = conn.connection_id();
                self.pool.drop_conn(conn);
                glommio::spawn_local(Inner::kill_query(self.pool.clone(), id, permit)).detach();
            }
        }
        // Drop gives back or closes what is left.
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        // A transaction still open here could not be rolled back (the loan
        // was dropped without `release`): closing the connection ends it.
        // A panic in the caller's work may have left anything behind.
        if self.discard
            || self.in_flight
            || conn.is_broken()
            || conn.in_transaction()
            || std::thread::panicking()
        {
            self.pool.drop_conn(conn);
        } else {
            self.pool.idle.borrow_mut().push(conn);
        }
        // The permit goes after the connection is back: a waiter woken by
        // it finds the connection idle.
        drop(self.permit.take());
    }
}
