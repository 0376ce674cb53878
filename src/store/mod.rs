//! Persistent storage of one game: the [`Store`] trait and its backends.
//!
//! A store's methods block (they talk to a database driver), so they are only
//! ever called on a shard's blocking thread pool through [`StoreHandle`], never
//! on an executor thread. Each shard opens its own store per game, so its
//! connections are never shared with another core.

pub mod migrations;
pub mod model;
pub mod sqlite;

use std::fmt;
use std::sync::Arc;

pub use model::{NewPlayer, Player, PlayerCredentials, PlayerStatus};

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The database cannot be reached or is busy past its timeout (→ 503).
    Unavailable(String),
    /// A uniqueness rule refused the write; names the rule.
    Conflict(&'static str),
    /// Anything else (→ 500; the detail is logged, not sent).
    Internal(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(m) => write!(f, "database unavailable: {m}"),
            StoreError::Conflict(what) => write!(f, "conflict on {what}"),
            StoreError::Internal(m) => write!(f, "database error: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// The operations the service layer needs from a game's database. Every
/// multi-row change is one transaction inside the backend.
pub trait Store: Send + Sync + 'static {
    /// Applies pending migrations; returns the schema version reached.
    fn migrate(&self) -> Result<u32, StoreError>;
    /// Answers when the database is reachable.
    fn ping(&self) -> Result<(), StoreError>;
    /// Inserts a player and its signup ledger rows; `Conflict("username")` when taken.
    fn create_player(&self, new: &NewPlayer) -> Result<Player, StoreError>;
    /// Reads a player by id.
    fn player(&self, id: i64) -> Result<Option<Player>, StoreError>;
    /// Reads the login credentials of a username.
    fn credentials(&self, username: &str) -> Result<Option<PlayerCredentials>, StoreError>;
    /// Records a successful login time.
    fn record_login(&self, id: i64, now_ms: i64) -> Result<(), StoreError>;
    /// Stores a new session with the hash of its refresh secret.
    fn create_session(
        &self,
        session_id: &str,
        player_id: i64,
        refresh_hash: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError>;
    /// Number of players (for game stats).
    fn player_count(&self) -> Result<i64, StoreError>;
}

/// Opens the store named by a game's `url`.
pub fn open(url: &str, pool_size: usize) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return Ok(Arc::new(sqlite::SqliteStore::open(path, pool_size)?));
    }
    Err(StoreError::Internal(format!(
        "unsupported database url scheme in `{}`",
        url.split("://").next().unwrap_or("")
    )))
}

/// A shard's async view of a store: runs each call on the shard's blocking
/// thread pool so the executor keeps serving while the database works.
#[derive(Clone)]
pub struct StoreHandle {
    store: Arc<dyn Store>,
}

impl StoreHandle {
    /// Wraps a store opened for this shard.
    pub fn new(store: Arc<dyn Store>) -> StoreHandle {
        StoreHandle { store }
    }

    /// Runs `op` against the store on the blocking pool.
    pub async fn run<R, F>(&self, op: F) -> Result<R, StoreError>
    where
        F: FnOnce(&dyn Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let store = self.store.clone();
        glommio::executor()
            .spawn_blocking(move || op(store.as_ref()))
            .await
    }
}
