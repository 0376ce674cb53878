//! A shard's async view of one game's databases: the primary and its read
//! replicas. A MySQL call runs on the shard itself, its statements on the
//! shard's own io_uring; a SQLite call runs whole on the shard's blocking
//! thread pool ([`Database::call`]). Either way the executor keeps serving
//! while a database works.
//!
//! Writes and transactions go to the primary. Reads that may be served
//! slightly stale ([`StoreHandle::read`]) go to a replica whose measured lag
//! is under `max_replica_lag_ms`, unless the player they concern wrote within
//! `read_your_writes_ms` (then the primary, so a client sees its own write).
//! Lag is measured from a heartbeat row the primary updates every
//! [`HEARTBEAT`], read back from each replica every [`PROBE`].
//!
//! The recent writers are at most [`RECENT_WRITERS_CAPACITY`] per shard and
//! game. Forgetting a writer early would send its reads to a replica that may
//! not have its write yet, so when the map is full of writers still inside
//! their window, the one leaving soonest is evicted and every read goes to
//! the primary until its window would have ended: slower, never stale.

use super::{Store, StoreError};
use crate::expiring::ExpiringMap;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the primary's heartbeat row is written.
pub const HEARTBEAT: Duration = Duration::from_millis(100);
/// How often each replica's lag is measured.
pub const PROBE: Duration = Duration::from_millis(200);
/// Most players whose reads a shard keeps on the primary (per game).
pub const RECENT_WRITERS_CAPACITY: usize = 100_000;

/// One replica and what this shard last measured of it.
pub struct Replica {
    /// `host:port/db` for reports.
    pub name: String,
    store: Database,
    usable: Cell<bool>,
    lag_ms: Cell<i64>,
    reads: Cell<u64>,
    last_error: RefCell<Option<String>>,
}

/// A replica's state for health reports.
#[derive(Debug, Clone)]
pub struct ReplicaReport {
    /// `host:port/db`.
    pub name: String,
    /// Whether reads go to it now.
    pub usable: bool,
    /// Last measured lag.
    pub lag_ms: i64,
    /// Reads this shard sent to it.
    pub reads: u64,
    /// Last error, if the probe failed.
    pub error: Option<String>,
}

impl ReplicaReport {
    /// The last measured lag in seconds (huge until first measured).
    pub fn lag_seconds(&self) -> f64 {
        self.lag_ms.min(i64::MAX / 2) as f64 / 1000.0
    }
}

struct Inner {
    primary: Database,
    replicas: Vec<Replica>,
    max_lag_ms: i64,
    ryw: Duration,
    /// Players who wrote, until their read-your-writes window ends.
    recent_writers: RefCell<ExpiringMap<i64, (), Instant>>,
    /// Every read goes to the primary until then: a writer still inside its
    /// window was evicted from a full `recent_writers`.
    primary_only_until: Cell<Option<Instant>>,
    primary_reads: Cell<u64>,
}

/// Cheap to clone; all clones share the shard's replica state.
#[derive(Clone)]
pub struct StoreHandle {
    inner: Rc<Inner>,
}

impl StoreHandle {
    /// A handle on `primary` and `replicas` (name, store).
    pub fn new(
        primary: Database,
        replicas: Vec<(String, Database)>,
        max_lag_ms: u64,
        read_your_writes_ms: u64,
    ) -> StoreHandle {
        StoreHandle::with_writer_capacity(
            primary,
            replicas,
            max_lag_ms,
            read_your_writes_ms,
            RECENT_WRITERS_CAPACITY,
        )
    }

    /// [`StoreHandle::new`] remembering at most `writers` recent writers.
    pub fn with_writer_capacity(
        primary: Database,
        replicas: Vec<(String, Database)>,
        max_lag_ms: u64,
        read_your_writes_ms: u64,
        writers: usize,
    ) -> StoreHandle {
        StoreHandle {
            inner: Rc::new(Inner {
                primary,
                replicas: replicas
                    .into_iter()
                    .map(|(name, store)| Replica {
                        name,
                        store,
                        usable: Cell::new(false),
                        lag_ms: Cell::new(i64::MAX),
                        reads: Cell::new(0),
                        last_error: RefCell::new(None),
                    })
                    .collect(),
                max_lag_ms: max_lag_ms.min(i64::MAX as u64) as i64,
                ryw: Duration::from_millis(read_your_writes_ms),
                recent_writers: RefCell::new(ExpiringMap::new(writers)),
                primary_only_until: Cell::new(None),
                primary_reads: Cell::new(0),
            }),
        }
    }

    /// Runs `op` on the primary.
    pub async fn run<R, F>(&self, op: F) -> Result<R, StoreError>
    where
        F: AsyncFnOnce(&dyn Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.inner.primary.call(op).await
    }

    /// Runs a read concerning `player` (or shared data when `None`) on a
    /// usable replica when allowed, else on the primary. A replica that
    /// fails is marked unusable and the read retried on the primary.
    pub async fn read<R, F>(&self, player: Option<i64>, op: F) -> Result<R, StoreError>
    where
        F: AsyncFn(&dyn Store) -> Result<R, StoreError> + Send + Sync + 'static,
        R: Send + 'static,
    {
        let op = Arc::new(op);
        if let Some(replica) = self.pick_replica(player.unwrap_or(0)) {
            let o = op.clone();
            match replica.store.call(async move |s| o(s).await).await {
                Ok(v) => {
                    replica.reads.set(replica.reads.get() + 1);
                    return Ok(v);
                }
                Err(StoreError::Unavailable(e)) => {
                    replica.usable.set(false);
                    *replica.last_error.borrow_mut() = Some(e);
                }
                Err(other) => return Err(other),
            }
        }
        self.inner
            .primary_reads
            .set(self.inner.primary_reads.get() + 1);
        self.inner.primary.call(async move |s| op(s).await).await
    }

    fn pick_replica(&self, player: i64) -> Option<&Replica> {
        if self.inner.replicas.is_empty() || self.wrote_recently(player) {
            return None;
        }
        // Spread reads: start at a rotating index.
        let n = self.inner.replicas.len();
        let start = (self.inner.primary_reads.get() as usize) % n;
        (0..n)
            .map(|i| &self.inner.replicas[(start + i) % n])
            .find(|r| r.usable.get())
    }

    /// Whether reads concerning `player` must stay on the primary.
    fn wrote_recently(&self, player: i64) -> bool {
        let now = Instant::now();
        if self.inner.primary_only_until.get().is_some_and(|t| now < t) {
            return true;
        }
        match self.inner.recent_writers.borrow().get(&player) {
            Some((_, until)) => now < until,
            None => false,
        }
    }

    /// Records that `player` (0: shared data such as the catalogue) was just
    /// written, so its reads stay on the primary for the read-your-writes window.
    pub fn wrote(&self, player: i64) {
        if self.inner.replicas.is_empty() {
            return;
        }
        let now = Instant::now();
        let until = now + self.inner.ryw;
        let evicted = self
            .inner
            .recent_writers
            .borrow_mut()
            .insert(player, (), until, now);
        if let Some(e) = evicted {
            // Its reads must not reach a replica before its window ends:
            // nobody's will.
            let all_until = self
                .inner
                .primary_only_until
                .get()
                .map_or(e.expires, |t| t.max(e.expires));
            self.inner.primary_only_until.set(Some(all_until));
        }
    }

    /// What this shard knows of each replica.
    pub fn replica_reports(&self) -> Vec<ReplicaReport> {
        self.inner
            .replicas
            .iter()
            .map(|r| ReplicaReport {
                name: r.name.clone(),
                usable: r.usable.get(),
                lag_ms: r.lag_ms.get(),
                reads: r.reads.get(),
                error: r.last_error.borrow().clone(),
            })
            .collect()
    }

    /// This shard's connection pools to the primary (`"primary"`) and each
    /// replica (by name), for the backends that keep pools of their own.
    pub fn pool_reports(&self) -> Vec<(String, crate::mysql::PoolFigures)> {
        let primary = std::iter::once(("primary".to_string(), &self.inner.primary));
        let replicas = self
            .inner
            .replicas
            .iter()
            .map(|r| (r.name.clone(), &r.store));
        primary
            .chain(replicas)
            .filter_map(|(name, db)| Some((name, db.store().pool_figures()?)))
            .collect()
    }

    /// Reads this shard sent to the primary through [`StoreHandle::read`].
    pub fn primary_reads(&self) -> u64 {
        self.inner.primary_reads.get()
    }

    /// Whether there are replicas to watch.
    pub fn has_replicas(&self) -> bool {
        !self.inner.replicas.is_empty()
    }

    /// Writes the primary's heartbeat forever (one shard per node does this).
    pub async fn beat_forever(self) {
        loop {
            let now = crate::clock::now_ms();
            if let Err(e) = self.run(async move |s| s.write_heartbeat(now).await).await {
                tracing::debug!(error = %e, "heartbeat write failed");
            }
            glommio::timer::sleep(HEARTBEAT).await;
        }
    }

    /// Measures every replica's lag forever, admitting and skipping them.
    pub async fn probe_forever(self) {
        loop {
            for r in &self.inner.replicas {
                let result = r.store.call(async |s| s.read_heartbeat().await).await;
                match result {
                    Ok(ts) => {
                        let lag = (crate::clock::now_ms() - ts).max(0);
                        r.lag_ms.set(lag);
                        let usable = ts > 0 && lag <= self.inner.max_lag_ms;
                        if usable != r.usable.get() {
                            tracing::info!(replica = %r.name, lag_ms = lag, usable, "replica state changed");
                        }
                        r.usable.set(usable);
                        *r.last_error.borrow_mut() = None;
                    }
                    Err(e) => {
                        if r.usable.get() {
                            tracing::warn!(replica = %r.name, error = %e, "replica unreachable; reads move to the primary");
                        }
                        r.usable.set(false);
                        *r.last_error.borrow_mut() = Some(e.to_string());
                    }
                }
            }
            glommio::timer::sleep(PROBE).await;
        }
    }
}

/// One game database as a shard holds it, and so where its calls run.
#[derive(Clone)]
pub enum Database {
    /// SQLite: its statements block, so each call runs whole on the shard's
    /// blocking threads (the store is shared with them, hence `Send + Sync`).
    Blocking(Arc<dyn Store + Send + Sync>),
    /// MySQL: its statements go out on the shard's own io_uring, and the
    /// store (its connection pool) never leaves the shard.
    OnShard(Rc<dyn Store>),
}

impl Database {
    /// The store itself, for its synchronous figures (never for a call:
    /// use [`Database::call`]).
    fn store(&self) -> &dyn Store {
        match self {
            Database::OnShard(store) => store.as_ref(),
            Database::Blocking(store) => store.as_ref(),
        }
    }

    /// Runs `op` on this store where its calls belong: on the shard for
    /// MySQL; for SQLite, whole on one of the shard's blocking threads, so
    /// the executor is never blocked by a database. A SQLite call's
    /// statements are answered when they are made, so its future is polled
    /// once, to the end; one that suspends anyway (an await on something
    /// else added to a transaction) fails loudly as an internal error rather
    /// than hanging the thread.
    pub async fn call<R, F>(&self, op: F) -> Result<R, StoreError>
    where
        F: AsyncFnOnce(&dyn Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        match self {
            Database::OnShard(store) => op(store.as_ref()).await,
            Database::Blocking(store) => {
                let store = store.clone();
                glommio::executor()
                    .spawn_blocking(move || {
                        let call = std::pin::pin!(op(store.as_ref()));
                        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                        match call.poll(&mut cx) {
                            std::task::Poll::Ready(result) => result,
                            std::task::Poll::Pending => Err(StoreError::Internal(
                                "a SQLite call suspended: its statements must not wait".into(),
                            )),
                        }
                    })
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(ryw_ms: u64, writers: usize) -> StoreHandle {
        // Neither store is used: the routing state is what is tested.
        let primary = crate::store::open(
            "sqlite://:memory:",
            1,
            crate::store::Durability::Normal,
            false,
        )
        .expect("open");
        let replica = crate::store::open(
            "sqlite://:memory:",
            1,
            crate::store::Durability::Normal,
            false,
        )
        .expect("open");
        StoreHandle::with_writer_capacity(
            primary,
            vec![("replica".into(), replica)],
            1000,
            ryw_ms,
            writers,
        )
    }

    #[test]
    fn a_full_writer_map_sends_every_read_to_the_primary_instead_of_forgetting() {
        let h = handle(60_000, 3);
        for p in 1..=3 {
            h.wrote(p);
        }
        assert!((1..=3).all(|p| h.wrote_recently(p)));
        assert!(!h.wrote_recently(99));
        // A fourth writer: player 1 (leaving soonest) is evicted while
        // inside its window, so every read stays on the primary.
        h.wrote(4);
        assert_eq!(h.inner.recent_writers.borrow().len(), 3);
        assert!(h.wrote_recently(1));
        assert!(h.wrote_recently(99));
        for p in 5..1000 {
            h.wrote(p);
            assert!(h.inner.recent_writers.borrow().len() <= 3);
        }
    }

    #[test]
    fn writers_whose_window_ended_make_room_without_a_fallback() {
        let h = handle(0, 3);
        for p in 1..1000 {
            h.wrote(p);
            assert!(h.inner.recent_writers.borrow().len() <= 3);
        }
        assert_eq!(h.inner.primary_only_until.get(), None);
        assert!(!h.wrote_recently(999));
    }
}
