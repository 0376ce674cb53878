//! Persistent storage of one game: the store traits and their backends.
//!
//! A store's methods are futures. Where they run depends on the backend
//! ([`Database`]): MySQL's on the shard itself, its statements on the
//! shard's own io_uring; SQLite's, which block, whole on the shard's
//! blocking thread pool — [`StoreHandle`] takes care of it. Each shard opens
//! its own store per game, so its connections are never shared with another
//! core.
//!
//! The operations are one trait per domain, mirroring `src/service/`:
//! [`PlayerStore`], [`SessionStore`], [`ItemStore`], [`OrderStore`],
//! [`NoticeStore`], [`JobStore`], and [`DatabaseStore`] for the database as a whole. [`Store`]
//! is all of them, the type a game's stores are held as (`dyn Store`, whose
//! methods, supertraits' included, need no import).
//!
//! Every business transaction is written once in [`sql_store`] (one file per
//! domain) over the small SQL surface of [`sql`]; a backend ([`sqlite`])
//! only supplies connections, transactions and its dialect. Rows are locked
//! in one global order — `orders`, then `players` by ascending id, then
//! `item_defs` (shared), then `player_items` — so two transactions never
//! wait on each other in a cycle.
//!
//! A deleted player (status `deleted`) is not found for every change: the
//! rule is checked on the player's row inside the changing transaction, so a
//! deletion and a change of the same player serialise on that row. Reads
//! say whether they may see deleted players (admins may).

mod board_model;
pub mod handle;
pub mod migrations;
pub mod model;
pub mod mysql;
pub mod sql;
pub mod sql_store;
pub mod sqlite;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

pub use crate::config::Durability;

pub use crate::audit::{Actor, AuditDraft, AuditRecord, Checkpoint};
pub use board_model::*;
pub use model::*;

/// A business rule that refused a change (mapped to SPEC §4 codes above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The player does not exist in this game (code 1001).
    PlayerNotFound,
    /// Another player of the game has this username (code 1002).
    UsernameTaken,
    /// 409: the expected version was not the stored one.
    VersionConflict,
    /// The player holds fewer of the item than the change takes (code 2001).
    NotEnoughItems,
    /// No such catalogue entry, or it is withdrawn (code 2002).
    ItemNotFound,
    /// The change would hold more than the item's `max_stack` (code 2003).
    StackLimit,
    /// The balance would go below zero (code 3001).
    NotEnoughCurrency,
    /// No such order for this player (code 3002).
    OrderNotFound,
    /// The order's state does not allow the change, e.g. paying a cancelled
    /// order (code 3003).
    OrderState,
    /// 409: today's daily reward was already claimed.
    AlreadyClaimed,
    /// 409: an idempotency key was reused for a different order.
    IdempotencyMismatch,
    /// 409: a catalogue entry with that id exists.
    ItemExists,
    /// 400: the item has no price in that currency.
    NotForSale,
    /// 409: the change would take a player's experience past this maximum.
    ExpLimit(i64),
    /// 409: the player is at this highest level already.
    LevelLimit(i64),
    /// 409: a leaderboard with that id exists.
    BoardExists,
}

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The database cannot be reached or is busy past its timeout (→ 503).
    Unavailable(String),
    /// A uniqueness constraint refused the write.
    Conflict(&'static str),
    /// A business rule refused the change; nothing was written.
    Rule(Rule),
    /// Anything else (→ 500; the detail is logged, not sent).
    Internal(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(m) => write!(f, "database unavailable: {m}"),
            StoreError::Conflict(what) => write!(f, "conflict on {what}"),
            StoreError::Rule(r) => write!(f, "refused: {r:?}"),
            StoreError::Internal(m) => write!(f, "database error: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Players' accounts and wallets: profiles, credentials, balances with
/// their ledger, and game progress (the service's `players.rs`).
pub trait PlayerStore {
    /// Inserts a player and its signup ledger rows.
    fn create_player<'a>(&'a self, new: &'a NewPlayer, actor: &'a Actor)
        -> StoreFuture<'a, Player>;
    /// Reads a player by id.
    fn player(&self, id: i64) -> StoreFuture<'_, Option<Player>>;
    /// Reads the login credentials of a username.
    fn credentials<'a>(&'a self, username: &'a str) -> StoreFuture<'a, Option<PlayerCredentials>>;
    /// Records a successful login time.
    fn record_login(&self, id: i64, now_ms: i64) -> StoreFuture<'_, ()>;
    /// Applies a profile patch, if `expected_version` (when given) matches.
    fn update_player<'a>(
        &'a self,
        id: i64,
        patch: &'a PlayerPatch,
        expected_version: Option<i64>,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<Player>>;
    /// Adds `delta` (may be negative) to a balance and records it in the ledger.
    fn adjust_balance<'a>(
        &'a self,
        id: i64,
        change: &'a WalletAdjustment<'a>,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<Player>>;
    /// A page of a player's ledger, newest first; a deleted player's only
    /// with `include_deleted` (else 1001).
    fn ledger(
        &self,
        id: i64,
        page: PageRequest,
        include_deleted: bool,
    ) -> StoreFuture<'_, Page<LedgerEntry>>;
    /// Applies a game logic progress change.
    fn apply_progress<'a>(
        &'a self,
        id: i64,
        progress: Progress,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<Player>>;
}

/// Login sessions, their refresh secrets, and the revocations every node
/// must learn of (the service's `sessions.rs`).
pub trait SessionStore {
    /// Stores a new session with the hash of its refresh secret.
    fn create_session<'a>(
        &'a self,
        session_id: &'a str,
        player_id: i64,
        refresh_hash: &'a str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> StoreFuture<'a, ()>;
    /// Replaces a session's refresh secret if `presented_hash` is current.
    fn rotate_refresh<'a>(
        &'a self,
        session_id: &'a str,
        presented_hash: &'a str,
        new_hash: &'a str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> StoreFuture<'a, RefreshOutcome>;
    /// Revokes one session; false when it did not exist.
    fn revoke_session<'a>(&'a self, session_id: &'a str, now_ms: i64) -> StoreFuture<'a, bool>;
    /// Revokes every open session of a player; returns their ids.
    fn revoke_player_sessions(&self, player_id: i64, now_ms: i64) -> StoreFuture<'_, Vec<String>>;
    /// Records the revocation of a session that has no row in `sessions` (a
    /// game-server or admin token); recording it twice is not an error.
    fn revoke_token<'a>(&'a self, session_id: &'a str, now_ms: i64) -> StoreFuture<'a, ()>;
    /// Sessions (and tokens) revoked at or after `since_ms`.
    fn revoked_sessions_since(&self, since_ms: i64) -> StoreFuture<'_, Vec<String>>;
}

/// The item catalogue and players' inventories (the service's `items.rs`).
pub trait ItemStore {
    /// The catalogue (without deleted entries unless asked).
    fn item_defs(&self, include_deleted: bool) -> StoreFuture<'_, Vec<ItemDef>>;
    /// One catalogue entry.
    fn item_def<'a>(&'a self, item_id: &'a str) -> StoreFuture<'a, Option<ItemDef>>;
    /// Adds a catalogue entry.
    fn create_item_def<'a>(
        &'a self,
        def: &'a ItemDef,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, ItemDef>;
    /// Changes a catalogue entry.
    fn update_item_def<'a>(
        &'a self,
        item_id: &'a str,
        patch: &'a ItemDefPatch,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, ItemDef>;
    /// Inserts the entries that do not exist yet; returns how many.
    fn seed_item_defs<'a>(&'a self, defs: &'a [ItemDef]) -> StoreFuture<'a, usize>;

    /// A player's inventory; a deleted player's only with `include_deleted`
    /// (else 1001).
    fn inventory(
        &self,
        player_id: i64,
        include_deleted: bool,
    ) -> StoreFuture<'_, Vec<InventoryEntry>>;
    /// Consumes `quantity` of an item.
    fn use_item<'a>(
        &'a self,
        player_id: i64,
        item_id: &'a str,
        quantity: i64,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<InventoryEntry>>;
    /// Adds `quantity` of an item within its stack limit.
    fn grant_item<'a>(
        &'a self,
        player_id: i64,
        item_id: &'a str,
        quantity: i64,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<InventoryEntry>>;
    /// Moves `quantity` of an item between two players atomically.
    fn transfer_item<'a>(
        &'a self,
        from: i64,
        to: i64,
        item_id: &'a str,
        quantity: i64,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<(InventoryEntry, InventoryEntry)>>;
}

/// Orders: creation, idempotent per key, and the pay, cancel and refund
/// transitions (the service's `orders.rs`).
pub trait OrderStore {
    /// Creates an order, or returns the one with the same idempotency key
    /// (`false` then).
    fn create_order<'a>(
        &'a self,
        new: &'a NewOrder,
        actor: &'a Actor,
    ) -> StoreFuture<'a, Notified<(Order, bool)>>;
    /// One order.
    fn order<'a>(&'a self, order_id: &'a str) -> StoreFuture<'a, Option<Order>>;
    /// A page of orders, newest first, of one player (1001 when it does not
    /// exist, or is deleted and not `include_deleted`) or of everyone.
    fn orders(
        &self,
        player_id: Option<i64>,
        page: PageRequest,
        include_deleted: bool,
    ) -> StoreFuture<'_, Page<Order>>;
    /// Pays a pending order once: charges, delivers, marks paid. Paying a
    /// paid order returns it unchanged. An order for a withdrawn item (2002)
    /// or of a deleted player (1001) is not paid and stays pending. The flag
    /// says whether this call paid it (false: it was paid already).
    fn pay_order<'a>(
        &'a self,
        order_id: &'a str,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<(Order, bool)>>;
    /// Cancels a pending order (a cancelled one is returned unchanged, flag
    /// false); also one for a withdrawn item or of a deleted player, since
    /// cancelling moves nothing.
    fn cancel_order<'a>(
        &'a self,
        order_id: &'a str,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<(Order, bool)>>;
    /// Refunds a paid order: credits the price back, takes back the items
    /// the player still holds (at most the quantity bought). The flag says
    /// whether this call refunded it.
    fn refund_order<'a>(
        &'a self,
        order_id: &'a str,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<(Order, bool)>>;
}

/// Notifications (SPEC §11): the stored ones a player's inbox and a
/// resuming socket read, messages sent to players, and the sequence each
/// player's ids come from (the service's `notifications.rs`).
pub trait NoticeStore {
    /// The stored notifications of a player with ids above `after`, oldest
    /// first, at most `limit`; 1001 for a player that does not exist (or is
    /// deleted, unless `include_deleted`).
    fn notices(
        &self,
        player_id: i64,
        after: i64,
        limit: i64,
        include_deleted: bool,
    ) -> StoreFuture<'_, Vec<Notice>>;
    /// The id of the newest notification made for a player (0: none yet).
    fn last_notice_id(&self, player_id: i64) -> StoreFuture<'_, i64>;
    /// Makes one notification of `kind` with `data` for each of `players`
    /// (in ascending ids, in one transaction), in `notifications` when
    /// `stored`. Players without a live row are skipped; with `must_exist`,
    /// one is 1001 instead.
    fn send_notices<'a>(
        &'a self,
        players: &'a [i64],
        kind: NoticeKind,
        data: &'a serde_json::Value,
        stored: bool,
        must_exist: bool,
        now_ms: i64,
    ) -> StoreFuture<'a, Vec<Notice>>;
    /// Deletes stored notifications made before `before_ms`; how many.
    fn prune_notices(&self, before_ms: i64) -> StoreFuture<'_, u64>;
}

/// Leaderboards (SPEC §12): boards, score writes, and ranked reads. A
/// score write is one statement in its own transaction.
pub trait BoardStore {
    /// Defines a board; [`Rule::BoardExists`] when its id is taken.
    fn create_board<'a>(&'a self, board: &'a Board) -> StoreFuture<'a, ()>;
    /// Every board of the game, by id.
    fn boards(&self) -> StoreFuture<'_, Vec<Board>>;
    /// One board.
    fn board<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Board>>;
    /// Removes a board and its records; false when there was none.
    fn delete_board<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool>;
    /// Writes a score: one statement in its own transaction, then the
    /// record read back in it; `None` when the player has no row.
    fn write_score<'a>(
        &'a self,
        write: &'a ScoreWrite<'a>,
    ) -> StoreFuture<'a, Option<ScoreWritten>>;
    /// Records of a period of players who show, with their usernames, by
    /// player id after `after_player`, at most `limit`: how a rank view is
    /// rebuilt, a page at a time.
    fn board_entries<'a>(
        &'a self,
        board_id: &'a str,
        period: i64,
        after_player: i64,
        limit: i64,
    ) -> StoreFuture<'a, Vec<(BoardEntry, String)>>;
    /// Every record of one player (board, period, record): what a status
    /// change adds to or takes from the views.
    fn player_entries(&self, player_id: i64) -> StoreFuture<'_, Vec<(String, i64, BoardEntry)>>;
    /// The usernames of those of `ids` who show (active players).
    fn shown_usernames<'a>(&'a self, ids: &'a [i64]) -> StoreFuture<'a, Vec<(i64, String)>>;
    /// The closed periods of a board the reset job archived, newest first.
    fn board_archives<'a>(&'a self, board_id: &'a str) -> StoreFuture<'a, Vec<BoardArchive>>;
    /// Records of a period in rank order from `offset` (0: the best), at
    /// most `limit`, of players who show (not banned, not deleted).
    fn board_records<'a>(
        &'a self,
        board: &'a Board,
        period: i64,
        offset: i64,
        limit: i64,
    ) -> StoreFuture<'a, Vec<BoardRecord>>;
    /// One player's record of a period with its rank, if it shows.
    fn board_record<'a>(
        &'a self,
        board: &'a Board,
        period: i64,
        player_id: i64,
    ) -> StoreFuture<'a, Option<BoardRecord>>;
}

/// The audit log (SPEC §13): records written beside the changes (in their
/// transactions) or alone (admin actions that change no row), read by the
/// API, the checkpoint task and the verifier.
pub trait AuditStore {
    /// Records `drafts` by `actor` in a transaction of their own (admin
    /// actions that change nothing in this database: a sign-in, a cache
    /// flush, a config-centre change).
    fn record_audit<'a>(
        &'a self,
        actor: &'a Actor,
        drafts: &'a [AuditDraft],
        now_ms: i64,
    ) -> StoreFuture<'a, ()>;
    /// Records matching `filter`, oldest first.
    fn audit_records<'a>(&'a self, filter: &'a AuditFilter) -> StoreFuture<'a, Vec<AuditRecord>>;
    /// A chain's records after `after_seq`, in order, at most `limit`.
    fn audit_chain(
        &self,
        chain: i64,
        after_seq: i64,
        limit: i64,
    ) -> StoreFuture<'_, Vec<AuditRecord>>;
    /// How many chains to verify: the backend's own count (see
    /// `Dialect::audit_chains`), or more when older records or checkpoints
    /// use higher chains (a SQLite log begun over 1,024 chains).
    fn audit_chain_count(&self) -> StoreFuture<'_, i64>;
    /// Every chain's head: (chain, seq, hash) of its newest record.
    fn audit_heads(&self) -> StoreFuture<'_, Vec<(i64, i64, String)>>;
    /// Every checkpoint, by chain and seq.
    fn audit_checkpoints(&self) -> StoreFuture<'_, Vec<Checkpoint>>;
    /// Each chain's newest checkpointed seq.
    fn last_audit_checkpoints(&self) -> StoreFuture<'_, Vec<(i64, i64)>>;
    /// Stores checkpoints (one already stored for a chain and seq is left
    /// as it is); how many were new.
    fn add_audit_checkpoints<'a>(&'a self, checkpoints: &'a [Checkpoint]) -> StoreFuture<'a, u64>;
}

/// Singleton jobs, whose work the database runs only for the newest
/// holder of the job's lease (SPEC §7).
pub trait JobStore {
    /// Runs a singleton job's work in one transaction, only if `token` is
    /// at least the newest fencing token any holder of the job has written
    /// with, and not the same token in another holder's hands (else
    /// [`FencedRun::Stale`], nothing written); records the run. `None`: a
    /// stand-alone node, which holds no lease: it runs the job unless a
    /// cluster's holder ran it lately ([`FencedRun::ClusterActive`]).
    fn run_fenced<'a>(
        &'a self,
        job: FencedJob,
        token: Option<i64>,
        holder: &'a str,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<FencedRun>>;
}

/// The database as a whole rather than one domain's rows: its schema,
/// reachability, durability, the stats counts and the replication heartbeat.
pub trait DatabaseStore {
    /// Applies pending migrations; returns the schema version reached.
    fn migrate(&self) -> StoreFuture<'_, u32>;
    /// Answers when the database is reachable.
    fn ping(&self) -> StoreFuture<'_, ()>;
    /// Checks that the database keeps the configured durability promise: an
    /// error says what is missing (run at start-up, before serving).
    fn check_durability(&self) -> StoreFuture<'_, ()>;

    /// Counts for the game's stats.
    fn game_stats(&self) -> StoreFuture<'_, GameStats>;

    /// Writes the replication heartbeat (on the primary).
    fn write_heartbeat(&self, now_ms: i64) -> StoreFuture<'_, ()>;
    /// Reads the replication heartbeat (on a replica: how far it has come).
    fn read_heartbeat(&self) -> StoreFuture<'_, i64>;
    /// This shard's connection pool to the database, when the backend keeps
    /// one of its own (MySQL), for `/metrics`.
    fn pool_figures(&self) -> Option<crate::mysql::PoolFigures>;
}

/// The answer of a store call or of a statement, still to come. Boxed so
/// that the store traits can be used as `dyn` objects; not `Send`, because
/// a MySQL store's futures never leave the shard that made them.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + 'a>>;

/// The operations the service layer needs from a game's database: every
/// domain trait at once, so one [`Database`] (and [`StoreHandle`]) serves
/// every service. Every multi-row change is one transaction inside the store.
pub trait Store:
    PlayerStore
    + SessionStore
    + ItemStore
    + OrderStore
    + NoticeStore
    + BoardStore
    + AuditStore
    + JobStore
    + DatabaseStore
    + 'static
{
}

/// Whatever implements every domain trait is a [`Store`]: there is nothing
/// more to write.
impl<T> Store for T where
    T: PlayerStore
        + SessionStore
        + ItemStore
        + OrderStore
        + NoticeStore
        + BoardStore
        + AuditStore
        + JobStore
        + DatabaseStore
        + 'static
{
}

/// Opens the store named by a game's `url` (`sqlite://PATH` or
/// `mysql://user:pass@host:port/db`) with what its acknowledged writes must
/// survive (replicas, which take no writes, are opened with `Normal`), and
/// whether it stores every notification (`realtime.persist`). A
/// MySQL store's pool belongs to the executor that opens it.
pub fn open(
    url: &str,
    pool_size: usize,
    durability: Durability,
    persist_notices: bool,
) -> Result<Database, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let backend = sqlite::SqliteBackend::open(path, pool_size, durability)?;
        let store = sql_store::SqlStore::new(backend).persisting_all_notices(persist_notices);
        return Ok(Database::Blocking(Arc::new(store)));
    }
    if url.starts_with("mysql://") {
        let backend = mysql::MysqlBackend::open(url, pool_size, durability)?;
        let store = sql_store::SqlStore::new(backend).persisting_all_notices(persist_notices);
        return Ok(Database::OnShard(Rc::new(store)));
    }
    Err(StoreError::Internal(format!(
        "unsupported database url scheme in `{}`",
        url.split("://").next().unwrap_or("")
    )))
}

pub use handle::{Database, StoreHandle};
