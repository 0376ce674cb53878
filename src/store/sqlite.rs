//! The embedded default backend: one SQLite file per game, in WAL mode.
//! With `durability = "full"` every commit syncs the log (`synchronous =
//! FULL`), so an acknowledged write survives a power loss; with `"normal"`
//! the log is synced at checkpoints only, which survives a crash of the
//! process but may lose the last commits to a power loss.
//!
//! Reads go through a memory mapping of the file ([`MMAP_BYTES`], `PRAGMA
//! mmap_size`): SQLite reads a page in place instead of copying it with
//! `pread` into each connection's own page cache — a leaderboard read at a
//! million records took 22 % less server CPU with it (bench/RESULTS.md,
//! issue 27). The mapped pages are the kernel's page cache of the file,
//! shared by every connection and given back under memory pressure like
//! any cached file; they add no heap (RssAnon), only address space, and
//! count in VmRSS as file pages (RssFile) once touched.
//!
//! A shard's `SqliteBackend` keeps a small pool of connections for reads that
//! only that shard's blocking threads use. Writes go through the file's one
//! write connection in this process, one writer at a time, with group
//! commit: writers that queue meanwhile share one transaction (a savepoint
//! each) and one commit (see `FileWriter`). A group's transaction starts
//! with `BEGIN IMMEDIATE`, and `busy_timeout` makes it wait for another
//! process that writes the file (a tool run beside the server).

use super::migrations::{Migration, SQLITE};
use super::sql::{AuditHeads, Backend, Dialect, NoticeIds, Row, SqlConn, SqlValue, TxKind};
use super::{Durability, StoreError, StoreFuture};
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, ErrorCode};
use std::cell::Cell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How much of a database file a connection maps for its reads (1 GiB; a
/// larger file is read with `pread` beyond it). A fixed choice: the
/// mapping holds no memory of its own (see the module's documentation),
/// and SQLite's build caps it at 2 GiB.
pub const MMAP_BYTES: u64 = 1 << 30;

thread_local! {
    /// The value the last statement on this thread gave `LAST_INSERT_ID(x)`:
    /// a transaction runs whole on one thread, and a statement's function
    /// calls run inside its `sqlite3_step`.
    static NOTED_ID: Cell<Option<i64>> = const { Cell::new(None) };
}

/// Gives SQLite MySQL's `LAST_INSERT_ID(expr)`: it answers `expr` and makes
/// [`SqlConn::last_insert_id`] answer it after the statement, so an
/// `UPDATE` hands back a value it set with no `RETURNING` (which SQLite
/// runs through a temporary table, a cost on every write) and no second
/// statement, in the same SQL text on both backends.
fn add_last_insert_id(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function("LAST_INSERT_ID", 1, FunctionFlags::SQLITE_UTF8, |ctx| {
        let value: i64 = ctx.get(0)?;
        NOTED_ID.set(Some(value));
        Ok(value)
    })
}

/// A pool of connections to one SQLite database file.
pub struct SqliteBackend {
    path: String,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
    writer: Arc<FileWriter>,
    durability: Durability,
}

/// Ids a player's notifications take beyond the last one, reserved on its
/// row at once: the row is written once per this many, not once per
/// change (a page more in every commit's log otherwise).
const IDS_RESERVED: i64 = 64;

/// Where a player's notification ids stand in this process.
#[derive(Debug, Clone, Copy)]
struct IdSeq {
    /// The last id taken.
    last: i64,
    /// The highest id the player's row (`notify_seq`) reserves: ids up to
    /// it are never handed out again, also after a crash.
    reserved: i64,
}

/// What the writers of one database file in this process share: the
/// writer's turn with the file's one write connection, and the players'
/// notification id sequences. SQLite admits one writer at a time anyway;
/// without the turn, writers of different shards wait in SQLite's busy
/// handler, which sleeps in steps of milliseconds. As only this process
/// writes the file (a SQLite database is never shared by nodes), a sequence
/// is kept here, taken under the turn, and written to the player's row once
/// per [`IDS_RESERVED`] ids. Locked only on blocking threads, never on an
/// executor.
///
/// Group commit: writers that queue for the turn while one writes join the
/// same SQLite transaction, each inside its own savepoint (an error rolls
/// back that writer's statements only), and the last of them commits for
/// all — one commit, one write of each page the group changed, instead of
/// one per writer. No writer returns before the commit that holds its
/// changes (or, should that commit fail, returns that failure).
#[derive(Default)]
struct FileWriter {
    turn: Mutex<WriteTurn>,
    /// Writers waiting for the turn: while there are any, the holder leaves
    /// its group open for them.
    waiting: AtomicUsize,
    ids: Mutex<HashMap<i64, IdSeq>>,
    /// The audit chains' heads (seq, hash) this process knows, moved under
    /// the turn (see [`AuditHeads`]).
    heads: Mutex<HashMap<i64, (i64, String)>>,
}

/// Writers in one group at most: a bound on how long the first of them
/// waits for the commit.
const GROUP_MAX: usize = 32;

/// How long a writer waits for its group's commit before it gives up with
/// "unavailable" (only if the group's last writer never ends: a bug).
const GROUP_WAIT: Duration = Duration::from_secs(60);

/// The turn: held by one writer at a time.
#[derive(Default)]
struct WriteTurn {
    /// The file's write connection (made at the first write).
    conn: Option<Connection>,
    /// The open group, while its transaction is open.
    group: Option<Arc<GroupEnd>>,
    /// Writers in the open group so far.
    members: usize,
    /// What the open group's writers moved in `ids` and `heads`, as it was
    /// before: put back if the group's commit fails.
    undo_ids: HashMap<i64, Option<IdSeq>>,
    undo_heads: HashMap<i64, Option<(i64, String)>>,
}

/// How one group ended, for its writers to wait on: set once, by whoever
/// ends the group.
#[derive(Default)]
struct GroupEnd {
    outcome: Mutex<Option<Result<(), StoreError>>>,
    ended: Condvar,
}

/// The [`FileWriter`] of `path` in this process.
fn writer_turn(path: &str) -> Arc<FileWriter> {
    static TURNS: OnceLock<Mutex<HashMap<String, Arc<FileWriter>>>> = OnceLock::new();
    let key = std::fs::canonicalize(path)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.to_string());
    let turns = TURNS.get_or_init(|| Mutex::new(HashMap::new()));
    match turns.lock() {
        Ok(mut map) => map.entry(key).or_default().clone(),
        Err(_) => Arc::new(FileWriter::default()),
    }
}

impl SqliteBackend {
    /// Opens (creating the file and its directory when missing) `path`.
    pub fn open(
        path: &str,
        pool_size: usize,
        durability: Durability,
    ) -> Result<SqliteBackend, StoreError> {
        if let Some(dir) = Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Unavailable(format!(
                        "cannot create directory {}: {e}",
                        dir.display()
                    ))
                })?;
            }
        }
        let mut backend = SqliteBackend {
            path: path.to_string(),
            idle: Mutex::new(Vec::new()),
            max_idle: pool_size.max(1),
            writer: Arc::new(FileWriter::default()),
            durability,
        };
        let conn = backend.connect()?;
        backend.give_back(conn);
        backend.writer = writer_turn(path);
        Ok(backend)
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open(&self.path)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.path)))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(map_err)?;
        let synchronous = match self.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON; \
             PRAGMA mmap_size = {MMAP_BYTES};"
        ))
        .map_err(map_err)?;
        conn.set_prepared_statement_cache_capacity(64);
        add_last_insert_id(&conn).map_err(map_err)?;
        Ok(conn)
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match pooled {
            Some(c) => Ok(c),
            None => self.connect(),
        }
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
    }
}

impl SqliteBackend {
    /// A write transaction, run in the file's open group or as the first of
    /// a new one (see [`FileWriter`]); returns once the group's commit ended.
    // The turn is held across `f`'s awaits on purpose: they never suspend
    // (every statement's future is ready), and the whole transaction runs on
    // one blocking thread, never on an executor.
    #[allow(clippy::await_holding_lock)]
    async fn write_in_group<R>(
        &self,
        mut f: impl AsyncFnMut(&mut dyn SqlConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let file = &*self.writer;
        file.waiting.fetch_add(1, Ordering::SeqCst);
        let mut turn = lock_turn(file);
        file.waiting.fetch_sub(1, Ordering::SeqCst);
        let group = match self.join_group(&mut turn) {
            Ok(group) => group,
            Err(e) => {
                if self.is_last(&turn) {
                    // The others' work commits without this writer's.
                    let _ = self.end_group(turn, None);
                }
                return Err(e);
            }
        };
        let result = match turn.conn.as_ref() {
            Some(conn) => {
                let mut sc = SqliteConn::new(conn, file, true);
                let done = f(&mut sc).await;
                done.and_then(|v| {
                    conn.execute_batch("RELEASE member").map_err(map_err)?;
                    Ok((v, sc.into_moved()))
                })
            }
            None => Err(StoreError::Internal("no write connection".into())),
        };
        let result = result.map(|(v, moved)| {
            moved.apply(file, &mut turn);
            v
        });
        if result.is_err() {
            if let Some(conn) = turn.conn.as_ref() {
                // This writer's statements only; the group goes on.
                let _ = conn.execute_batch("ROLLBACK TO member; RELEASE member");
            }
        }
        if turn.conn.as_ref().is_none_or(|c| c.is_autocommit()) {
            // SQLite rolled the whole transaction back (an I/O error, a full
            // disk): the group failed, and the next writer begins anew.
            let why = StoreError::Unavailable("the write transaction was rolled back".into());
            let _ = self.end_group(turn, Some(why.clone()));
            return Err(result.err().unwrap_or(why));
        }
        if self.is_last(&turn) {
            self.end_group(turn, None)?;
            return result;
        }
        drop(turn);
        wait_for_group(&group)?;
        result
    }

    /// Whether the turn's holder must end the open group now: no writer
    /// waits to join it, or it is full.
    fn is_last(&self, turn: &WriteTurn) -> bool {
        self.writer.waiting.load(Ordering::SeqCst) == 0 || turn.members >= GROUP_MAX
    }

    /// Opens a group (its transaction) unless one is open, joins it and
    /// opens this writer's savepoint; the group, to wait on.
    fn join_group(&self, turn: &mut WriteTurn) -> Result<Arc<GroupEnd>, StoreError> {
        if turn.conn.is_none() {
            turn.conn = Some(self.connect()?);
        }
        if turn.group.is_some() && turn.conn.as_ref().is_some_and(|c| c.is_autocommit()) {
            // Its transaction is gone: tell its writers, then begin anew.
            fail_open_group(&self.writer, turn);
        }
        let conn = turn
            .conn
            .as_ref()
            .ok_or_else(|| StoreError::Internal("no write connection".into()))?;
        let group = match &turn.group {
            Some(group) => group.clone(),
            None => {
                conn.execute_batch("BEGIN IMMEDIATE").map_err(map_err)?;
                let group = Arc::new(GroupEnd::default());
                turn.group = Some(group.clone());
                group
            }
        };
        turn.members += 1;
        conn.execute_batch("SAVEPOINT member").map_err(map_err)?;
        Ok(group)
    }

    /// Commits the open group (or rolls it back when `failed` says why it
    /// cannot commit), tells its writers how it ended, and gives the turn
    /// back; the commit's failure, if any.
    fn end_group(
        &self,
        mut turn: MutexGuard<'_, WriteTurn>,
        failed: Option<StoreError>,
    ) -> Result<(), StoreError> {
        if turn.group.is_none() {
            return failed.map_or(Ok(()), Err);
        }
        let outcome = match (failed, turn.conn.as_ref()) {
            (Some(e), _) => Err(e),
            (None, Some(conn)) => conn.execute_batch("COMMIT").map_err(map_err),
            (None, None) => Err(StoreError::Internal("the write connection is gone".into())),
        };
        close_group(&self.writer, &mut turn, outcome.clone());
        outcome
    }
}

/// The file's turn; a turn whose holder panicked is taken over: its open
/// group, if any, is rolled back and failed first.
fn lock_turn(file: &FileWriter) -> MutexGuard<'_, WriteTurn> {
    match file.turn.lock() {
        Ok(turn) => turn,
        Err(poisoned) => {
            let mut turn = poisoned.into_inner();
            fail_open_group(file, &mut turn);
            file.turn.clear_poison();
            turn
        }
    }
}

/// Rolls back the open group, if any, and tells its writers it failed.
fn fail_open_group(file: &FileWriter, turn: &mut WriteTurn) {
    let why = StoreError::Unavailable("the write transaction was rolled back".into());
    close_group(file, turn, Err(why));
}

/// Ends the open group, if any, with `outcome` (its commit's, already
/// tried): whatever is left of its transaction is rolled back, a failed
/// group's ids and heads are put back in memory (nothing of it is in the
/// file), and its writers are told.
fn close_group(file: &FileWriter, turn: &mut WriteTurn, outcome: Result<(), StoreError>) {
    let Some(group) = turn.group.take() else {
        return;
    };
    turn.members = 0;
    if let Some(conn) = turn.conn.as_ref() {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    let undo_ids = std::mem::take(&mut turn.undo_ids);
    let undo_heads = std::mem::take(&mut turn.undo_heads);
    if outcome.is_err() {
        put_back(&file.ids, undo_ids);
        put_back(&file.heads, undo_heads);
    }
    if let Ok(mut ended) = group.outcome.lock() {
        *ended = Some(outcome);
    }
    group.ended.notify_all();
}

/// Waits until `group` has ended; its commit's failure, if any.
fn wait_for_group(group: &GroupEnd) -> Result<(), StoreError> {
    let poisoned = || StoreError::Internal("a write group's outcome is poisoned".into());
    let deadline = Instant::now() + GROUP_WAIT;
    let mut ended = group.outcome.lock().map_err(|_| poisoned())?;
    loop {
        if let Some(outcome) = ended.as_ref() {
            return outcome.clone();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(StoreError::Unavailable(
                "the write group's commit did not end in time".into(),
            ));
        }
        ended = group
            .ended
            .wait_timeout(ended, left)
            .map_err(|_| poisoned())?
            .0;
    }
}

/// Puts each key of `map` back as `undo` remembers it (absent for `None`).
fn put_back<V>(map: &Mutex<HashMap<i64, V>>, undo: HashMap<i64, Option<V>>) {
    if undo.is_empty() {
        return;
    }
    if let Ok(mut map) = map.lock() {
        for (key, before) in undo {
            match before {
                Some(v) => {
                    map.insert(key, v);
                }
                None => {
                    map.remove(&key);
                }
            }
        }
    }
}

fn map_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::CannotOpen => {
                return StoreError::Unavailable(e.to_string())
            }
            ErrorCode::ConstraintViolation
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                return StoreError::Conflict("unique")
            }
            _ => {}
        }
    }
    StoreError::Internal(e.to_string())
}

impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            SqlValue::Null => ToSqlOutput::Owned(Value::Null),
            SqlValue::Int(v) => ToSqlOutput::Owned(Value::Integer(*v)),
            SqlValue::Real(v) => ToSqlOutput::Owned(Value::Real(*v)),
            SqlValue::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            SqlValue::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// A pooled connection seen through [`SqlConn`].
struct SqliteConn<'a> {
    conn: &'a Connection,
    file: &'a FileWriter,
    /// Inside a write transaction (which holds the file's writer turn):
    /// notification ids may be taken.
    writing: bool,
    /// The sequences this transaction moved, applied to `file` once it
    /// commits.
    taken: HashMap<i64, IdSeq>,
    /// The audit chain heads this transaction moved, likewise.
    heads: HashMap<i64, (i64, String)>,
}

impl<'a> SqliteConn<'a> {
    fn new(conn: &'a Connection, file: &'a FileWriter, writing: bool) -> SqliteConn<'a> {
        SqliteConn {
            conn,
            file,
            writing,
            taken: HashMap::new(),
            heads: HashMap::new(),
        }
    }

    /// What this writer moved: the id sequences and the audit heads.
    fn into_moved(self) -> Moved {
        Moved {
            ids: self.taken,
            heads: self.heads,
        }
    }
}

/// The id sequences and audit heads a writer moved (see [`SqliteConn`]).
struct Moved {
    ids: HashMap<i64, IdSeq>,
    heads: HashMap<i64, (i64, String)>,
}

impl Moved {
    /// Makes what a writer moved count for the writers after it; called
    /// once its savepoint is released, still in the turn, which keeps what
    /// was there before, to put back should the group's commit fail.
    fn apply(self, file: &FileWriter, turn: &mut WriteTurn) {
        if !self.heads.is_empty() {
            if let Ok(mut heads) = file.heads.lock() {
                for (chain, head) in self.heads {
                    let before = heads.insert(chain, head);
                    turn.undo_heads.entry(chain).or_insert(before);
                }
            }
        }
        if self.ids.is_empty() {
            return;
        }
        if let Ok(mut ids) = file.ids.lock() {
            for (player, seq) in self.ids {
                let before = ids.insert(player, seq);
                turn.undo_ids.entry(player).or_insert(before);
            }
        }
    }
}

impl AuditHeads for SqliteConn<'_> {
    fn head(&self, chain: i64) -> Option<(i64, String)> {
        if let Some(h) = self.heads.get(&chain) {
            return Some(h.clone());
        }
        self.file.heads.lock().ok()?.get(&chain).cloned()
    }

    fn set_head(&mut self, chain: i64, seq: i64, hash: String) {
        self.heads.insert(chain, (seq, hash));
    }
}

impl NoticeIds for SqliteConn<'_> {
    fn take(&mut self, player_id: i64, count: i64) -> Result<Option<i64>, StoreError> {
        if !self.writing {
            return Err(StoreError::Internal(
                "notification ids taken outside a write transaction".into(),
            ));
        }
        let known = self.taken.get(&player_id).copied().or_else(|| {
            let ids = self.file.ids.lock().ok()?;
            ids.get(&player_id).copied()
        });
        let now = match known {
            Some(seq) => seq,
            // First taken in this process: after what the row reserves (ids
            // a crashed process reserved and never used are skipped).
            None => match self
                .query_now(
                    "SELECT notify_seq FROM players WHERE id = ?",
                    &[player_id.into()],
                )?
                .first()
            {
                Some(r) => {
                    let mark = r.int(0)?;
                    IdSeq {
                        last: mark,
                        reserved: mark,
                    }
                }
                None => return Ok(None),
            },
        };
        let last = now.last + count;
        let mut reserved = now.reserved;
        if last > reserved {
            reserved = last + IDS_RESERVED;
            self.exec_now(
                "UPDATE players SET notify_seq = ? WHERE id = ?",
                &[reserved.into(), player_id.into()],
            )?;
        }
        self.taken.insert(player_id, IdSeq { last, reserved });
        Ok(Some(last))
    }

    fn give_back(&mut self, player_id: i64, count: i64) {
        if let Some(seq) = self.taken.get_mut(&player_id) {
            seq.last -= count;
        }
    }

    fn last(&self, player_id: i64) -> Option<i64> {
        let ids = self.file.ids.lock().ok()?;
        ids.get(&player_id).map(|seq| seq.last)
    }
}

/// The statements themselves, answered at once (SQLite is in-process).
impl SqliteConn<'_> {
    fn exec_now(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        NOTED_ID.set(None);
        let mut st = self.conn.prepare_cached(sql).map_err(map_err)?;
        st.execute(rusqlite::params_from_iter(params.iter()))
            .map(|n| n as u64)
            .map_err(map_err)
    }

    fn query_now(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        NOTED_ID.set(None);
        let mut st = self.conn.prepare_cached(sql).map_err(map_err)?;
        let columns = st.column_count();
        let names: Arc<[String]> = st.column_names().into_iter().map(String::from).collect();
        let mut rows = st
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(map_err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(map_err)? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match r.get_ref(i).map_err(map_err)? {
                    ValueRef::Null => SqlValue::Null,
                    ValueRef::Integer(v) => SqlValue::Int(v),
                    // Kept as it is: a REAL in an integer column must not
                    // read as a truncated integer.
                    ValueRef::Real(v) => SqlValue::Real(v),
                    ValueRef::Text(t) => match std::str::from_utf8(t) {
                        Ok(text) => SqlValue::Text(text.to_string()),
                        Err(_) => SqlValue::Blob(t.to_vec()),
                    },
                    ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
                });
            }
            out.push(Row::new(names.clone(), values));
        }
        Ok(out)
    }
}

/// A statement's future is ready before it is first polled: a SQLite
/// transaction runs whole on the blocking thread that polls it.
impl SqlConn for SqliteConn<'_> {
    fn exec<'a>(&'a mut self, sql: &'a str, params: &'a [SqlValue]) -> StoreFuture<'a, u64> {
        Box::pin(std::future::ready(self.exec_now(sql, params)))
    }

    fn query<'a>(&'a mut self, sql: &'a str, params: &'a [SqlValue]) -> StoreFuture<'a, Vec<Row>> {
        Box::pin(std::future::ready(self.query_now(sql, params)))
    }

    fn last_insert_id(&mut self) -> Result<i64, StoreError> {
        // As on MySQL, a value the last statement gave LAST_INSERT_ID(x)
        // comes first.
        if let Some(noted) = NOTED_ID.get() {
            return Ok(noted);
        }
        // SQLite answers 0 when the connection inserted nothing; AUTOINCREMENT
        // ids start at 1.
        match self.conn.last_insert_rowid() {
            0 => Err(StoreError::Internal(
                "the last insert generated no id".into(),
            )),
            id => Ok(id),
        }
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn notice_ids(&mut self) -> Option<&mut dyn NoticeIds> {
        Some(self)
    }

    fn audit_heads(&mut self) -> Option<&mut dyn AuditHeads> {
        // Only a writer (holding the file's turn) moves heads.
        if self.writing {
            Some(self)
        } else {
            None
        }
    }
}

impl Backend for SqliteBackend {
    async fn transaction<R>(
        &self,
        kind: TxKind,
        mut f: impl AsyncFnMut(&mut dyn SqlConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        if kind == TxKind::Write {
            return self.write_in_group(f).await;
        }
        let conn = self.take()?;
        let result = match conn.execute_batch("BEGIN DEFERRED").map_err(map_err) {
            Ok(()) => {
                let mut sc = SqliteConn::new(&conn, &self.writer, false);
                match f(&mut sc).await {
                    Ok(v) => conn.execute_batch("COMMIT").map_err(map_err).map(|_| v),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        self.give_back(conn);
        result
    }

    fn durability(&self) -> Durability {
        self.durability
    }

    async fn with_conn<R>(
        &self,
        mut f: impl AsyncFnMut(&mut dyn SqlConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let conn = self.take()?;
        let result = f(&mut SqliteConn::new(&conn, &self.writer, false)).await;
        self.give_back(conn);
        result
    }

    fn migrations(&self) -> &'static [Migration] {
        SQLITE
    }
}
