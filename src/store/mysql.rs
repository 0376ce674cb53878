//! The production backend: MySQL/MariaDB (InnoDB) on the shard's own
//! io_uring, through the client of `src/mysql/` (SPEC §1).
//!
//! Each shard opens its own bounded [`Pool`] per database (primary or
//! replica) and uses it only from its own executor: a statement goes out on
//! the shard's socket and the shard serves other requests until the answer
//! comes — no thread hop, no lock. The pool keeps the rules (see
//! `mysql/pool.rs`): no ping before lending, since round trips are what a
//! request costs; a stale idle connection that fails before anything was
//! applied is replaced and the work run again; a connection never goes back
//! broken or with a transaction open; a transaction that lost a deadlock or
//! a lock wait runs again, a few times. Single-statement reads run outside a
//! transaction ([`Backend::with_conn`]); a transaction is `START
//! TRANSACTION`, its statements (prepared once per connection, then cached)
//! and `COMMIT`. Connections use CLIENT_FOUND_ROWS, so "rows changed" counts
//! matched rows exactly as SQLite does.

use super::migrations::{Migration, MYSQL};
use super::sql::{AuditHeads, Backend, Dialect, Row, SqlConn, SqlValue, TxKind};
use super::{Durability, StoreError, StoreFuture};
use crate::mysql::{codes, MysqlError, Opts, Pool, PoolError, PoolFigures, PooledConn, Value};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Audit chain heads (seq, hash) by chain, as this shard last saw them
/// committed in one database: guesses that spare an append the read of its
/// chain's newest record (see `SqlConn::audit_heads`). Each shard keeps
/// its own (no lock shared across cores): a head another shard or node
/// moved since is a wrong guess, which costs the append a refused `INSERT`
/// and a read. A guess must never be ahead of the database (an append
/// after it would link to a record that is not there): the guesses are
/// forgotten whenever the pool has opened a connection since they were
/// made, since a server that lost its last commits (a crash with
/// `durability = "normal"`, a replica promoted in its place) broke every
/// connection to it first.
type Guesses = RefCell<HashMap<i64, (i64, String)>>;

/// How long a caller waits for a busy pool's connection before a 503: a
/// bound on purpose, so an overloaded database answers "busy" instead of
/// queueing requests without end.
const POOL_WAIT: Duration = crate::mysql::pool::WAIT;

/// A shard's bounded pool to one MySQL server and database.
pub struct MysqlBackend {
    pool: Pool,
    durability: Durability,
    guesses: Guesses,
    /// The pool's `opened_total` when the guesses were last checked.
    guesses_opened: Cell<u64>,
}

impl MysqlBackend {
    /// Prepares a pool of at most `pool_size` connections for `url`
    /// (`mysql://user:pass@host:port/db`); no connection is made until first
    /// use. Call it on the shard that will use the pool.
    pub fn open(
        url: &str,
        pool_size: usize,
        durability: Durability,
    ) -> Result<MysqlBackend, StoreError> {
        let opts = Opts::from_url(url).map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(MysqlBackend {
            pool: Pool::new(opts, pool_size, POOL_WAIT),
            durability,
            guesses: Guesses::default(),
            guesses_opened: Cell::new(0),
        })
    }

    /// Forgets the audit head guesses when the pool opened a connection
    /// since they were last checked (see [`Guesses`]); called with this
    /// transaction's connection in hand, so a connection opened for it
    /// counts.
    fn forget_guesses_after_reconnect(&self) {
        let opened = self.pool.opened_total();
        if self.guesses_opened.replace(opened) != opened {
            self.guesses.borrow_mut().clear();
        }
    }
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> StoreError {
        match e {
            PoolError::Mysql(e) => map_err(&e),
            // Busy past the wait, or the server cannot be reached: 503.
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

fn map_err(e: &MysqlError) -> StoreError {
    match e {
        MysqlError::Server { code, .. } if *code == codes::DUPLICATE_KEY => {
            StoreError::Conflict("unique")
        }
        MysqlError::Server { message, .. } if e.loses_transaction() => {
            StoreError::Unavailable(format!("lock contention: {message}"))
        }
        // The server closes the connection after these (a shutdown, a
        // kill, an idle timeout): another connection may well work. A packet
        // over the server's limit is this request's own fault: not retried.
        MysqlError::Server { code, .. } if *code == codes::PACKET_TOO_LARGE => {
            StoreError::Internal(e.to_string())
        }
        MysqlError::Server { .. } if e.breaks_connection() => {
            StoreError::Unavailable(e.to_string())
        }
        MysqlError::Server { code, message, .. } => {
            StoreError::Internal(format!("MySQL {code}: {message}"))
        }
        // The connection failed, or its bytes came back out of step (the
        // connection is dropped): 503, and a replica read moves on to the
        // primary, as the blocking client's I/O and driver errors did.
        MysqlError::Io(_)
        | MysqlError::Timeout(_)
        | MysqlError::Broken
        | MysqlError::Protocol(_) => StoreError::Unavailable(e.to_string()),
        MysqlError::Auth(_) | MysqlError::Config(_) | MysqlError::Usage(_) => {
            StoreError::Internal(e.to_string())
        }
    }
}

fn to_values(params: &[SqlValue]) -> Vec<Value> {
    params
        .iter()
        .map(|p| match p {
            SqlValue::Null => Value::NULL,
            SqlValue::Int(v) => Value::Int(*v),
            SqlValue::Real(v) => Value::Double(*v),
            SqlValue::Text(t) => Value::Bytes(t.as_bytes().to_vec()),
            SqlValue::Blob(b) => Value::Bytes(b.clone()),
        })
        .collect()
}

/// Turns a driver value into a [`SqlValue`] of the same kind; a kind the
/// schema never produces (dates, times, an unsigned integer beyond `i64`) is
/// an error naming `column` rather than a guess.
///
/// Integers arriving as text: every statement here is prepared (`exec`), so
/// results come through the binary protocol, where MySQL and MariaDB send
/// BIGINT and INT columns, integer arithmetic and `COUNT(*)` as integers
/// (`Value::Int`, or `Value::UInt` for unsigned ones). Only DECIMAL results —
/// DECIMAL columns, `SUM` and `AVG` — arrive as text. The schema has no
/// DECIMAL column and no query sums or averages, so an integer never arrives
/// as text, and [`Row::int`] refuses text instead of parsing it: text there
/// means the column is not what the schema says. A future query that sums
/// must `CAST(SUM(..) AS SIGNED)`.
fn from_value(v: Value, column: &str) -> Result<SqlValue, StoreError> {
    Ok(match v {
        Value::NULL => SqlValue::Null,
        Value::Int(i) => SqlValue::Int(i),
        Value::UInt(u) => SqlValue::Int(i64::try_from(u).map_err(|_| {
            StoreError::Internal(format!(
                "column {column}: unsigned integer {u} does not fit a signed 64-bit integer"
            ))
        })?),
        Value::Bytes(b) => match String::from_utf8(b) {
            Ok(s) => SqlValue::Text(s),
            Err(e) => SqlValue::Blob(e.into_bytes()),
        },
        Value::Float(f) => SqlValue::Real(f64::from(f)),
        Value::Double(f) => SqlValue::Real(f),
        other => {
            return Err(StoreError::Internal(format!(
                "column {column}: unexpected MySQL value {other:?}"
            )))
        }
    })
}

/// Converts a result set, naming the columns once for all its rows.
fn to_rows(result: crate::mysql::QueryResult) -> Result<Vec<Row>, StoreError> {
    if result.rows.is_empty() {
        return Ok(Vec::new());
    }
    let names: Arc<[String]> = result
        .columns
        .iter()
        .map(|c| c.name_str().into_owned())
        .collect();
    result
        .rows
        .into_iter()
        .map(|r| {
            let values = r
                .into_values()
                .into_iter()
                .enumerate()
                .map(|(i, v)| from_value(v, names.get(i).map(String::as_str).unwrap_or("?")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Row::new(names.clone(), values))
        })
        .collect()
}

/// A pooled connection seen through [`SqlConn`]; the pool learns from it
/// (every statement goes through [`PooledConn`]) whether the work may run
/// again and whether the connection may be reused.
struct MysqlConn<'a> {
    conn: &'a mut PooledConn,
    /// The id the last statement generated (0: none).
    last_insert_id: u64,
    /// The shard's audit head guesses (a transaction's only).
    guesses: Option<&'a Guesses>,
    /// The heads this transaction moved or read, which become guesses once
    /// it commits.
    moved: HashMap<i64, (i64, String)>,
}

impl<'a> MysqlConn<'a> {
    fn new(conn: &'a mut PooledConn, guesses: Option<&'a Guesses>) -> MysqlConn<'a> {
        MysqlConn {
            conn,
            last_insert_id: 0,
            guesses,
            moved: HashMap::new(),
        }
    }

    /// Runs a prepared statement, remembering the id it generated.
    async fn run(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<crate::mysql::QueryResult, StoreError> {
        let done = self
            .conn
            .exec(sql, &to_values(params))
            .await
            .map_err(|e| map_err(&e))?;
        self.last_insert_id = done.last_insert_id;
        Ok(done)
    }
}

impl SqlConn for MysqlConn<'_> {
    fn exec<'a>(&'a mut self, sql: &'a str, params: &'a [SqlValue]) -> StoreFuture<'a, u64> {
        Box::pin(async move { Ok(self.run(sql, params).await?.affected_rows) })
    }

    fn query<'a>(&'a mut self, sql: &'a str, params: &'a [SqlValue]) -> StoreFuture<'a, Vec<Row>> {
        Box::pin(async move { to_rows(self.run(sql, params).await?) })
    }

    fn last_insert_id(&mut self) -> Result<i64, StoreError> {
        match self.last_insert_id {
            0 => Err(StoreError::Internal(
                "the last insert generated no id".into(),
            )),
            id => i64::try_from(id).map_err(|_| {
                StoreError::Internal(format!(
                    "generated id {id} does not fit a signed 64-bit integer"
                ))
            }),
        }
    }

    fn dialect(&self) -> Dialect {
        Dialect::Mysql
    }

    fn audit_heads(&mut self) -> Option<&mut dyn AuditHeads> {
        match self.guesses {
            Some(_) => Some(self),
            None => None,
        }
    }

    fn exec_batch<'a>(
        &'a mut self,
        statements: &'a [(&'a str, Vec<SqlValue>)],
    ) -> StoreFuture<'a, Vec<Result<u64, StoreError>>> {
        Box::pin(async move {
            let batch: Vec<(&str, Vec<Value>)> = statements
                .iter()
                .map(|(sql, params)| (*sql, to_values(params)))
                .collect();
            let answers = self
                .conn
                .exec_batch(&batch)
                .await
                .map_err(|e| map_err(&e))?;
            Ok(answers
                .into_iter()
                .map(|r| match r {
                    Ok(done) => {
                        self.last_insert_id = done.last_insert_id;
                        Ok(done.affected_rows)
                    }
                    Err(e) => Err(map_err(&e)),
                })
                .collect())
        })
    }
}

impl AuditHeads for MysqlConn<'_> {
    fn head(&self, chain: i64) -> Option<(i64, String)> {
        if let Some(h) = self.moved.get(&chain) {
            return Some(h.clone());
        }
        self.guesses?.borrow().get(&chain).cloned()
    }

    fn set_head(&mut self, chain: i64, seq: i64, hash: String) {
        self.moved.insert(chain, (seq, hash));
    }
}

impl Backend for MysqlBackend {
    async fn transaction<R>(
        &self,
        _kind: TxKind,
        mut f: impl AsyncFnMut(&mut dyn SqlConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        // The heads the committed attempt moved become the guesses.
        let moved = RefCell::new(HashMap::new());
        let result = self
            .pool
            .transaction(async |conn| {
                self.forget_guesses_after_reconnect();
                let mut c = MysqlConn::new(conn, Some(&self.guesses));
                let r = f(&mut c).await;
                *moved.borrow_mut() = std::mem::take(&mut c.moved);
                r
            })
            .await;
        let moved = moved.into_inner();
        if result.is_ok() && !moved.is_empty() {
            self.guesses.borrow_mut().extend(moved);
        }
        result
    }

    fn durability(&self) -> Durability {
        self.durability
    }

    async fn with_conn<R>(
        &self,
        mut f: impl AsyncFnMut(&mut dyn SqlConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.pool
            .run(async |conn| f(&mut MysqlConn::new(conn, None)).await)
            .await
    }

    fn migrations(&self) -> &'static [Migration] {
        MYSQL
    }

    fn pool_figures(&self) -> Option<PoolFigures> {
        Some(self.pool.figures())
    }
}
