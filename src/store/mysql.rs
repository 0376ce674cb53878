//! The production backend: MySQL/MariaDB (InnoDB) through the `mysql` crate.
//!
//! Each shard opens its own bounded pool per database (primary or replica);
//! the pool is only used from that shard's blocking threads. Round trips are
//! what a request costs here, so there are no extra ones: the pool does not
//! ping ([`super::mysql_pool`]), single-statement reads run outside a
//! transaction ([`Backend::with_conn`]), and a transaction is `START
//! TRANSACTION`, its statements (prepared once per connection, then cached)
//! and `COMMIT`. A connection left idle may have gone stale (the server
//! restarted, or closed it): when the first thing sent on it fails to
//! connect, nothing was applied, so it is dropped and the work started again
//! on another. Transactions that lose a deadlock or a lock wait are retried a
//! few times: they wrote nothing. Connections use CLIENT_FOUND_ROWS, so "rows
//! changed" counts matched rows exactly as SQLite does.

use super::migrations::{Migration, MYSQL};
use super::mysql_pool::{ConnPool, PoolError, PooledConn};
use super::sql::{Backend, Dialect, Row, SqlConn, SqlValue, TxKind};
use super::{Durability, StoreError};
use mysql::consts::CapabilityFlags;
use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder, Params, Value};
use std::sync::Arc;
use std::time::Duration;

/// Attempts of a transaction that lost a deadlock.
const ATTEMPTS: usize = 4;

/// Prepared statements kept per connection: more than the store has, so
/// each is prepared once per connection.
const STATEMENT_CACHE: usize = 256;

/// How long a caller waits for a busy pool's connection.
const POOL_WAIT: Duration = Duration::from_secs(3);

/// A bounded pool to one MySQL server and database.
pub struct MysqlBackend {
    pool: ConnPool,
    pool_size: usize,
    /// `host:port/db` without credentials, for messages.
    name: String,
    durability: Durability,
}

impl MysqlBackend {
    /// Prepares a pool for `url` (`mysql://user:pass@host:port/db`); no
    /// connection is made until first use.
    pub fn open(
        url: &str,
        pool_size: usize,
        durability: Durability,
    ) -> Result<MysqlBackend, StoreError> {
        let opts =
            Opts::from_url(url).map_err(|e| StoreError::Internal(format!("bad MySQL url: {e}")))?;
        let name = format!(
            "{}:{}/{}",
            opts.get_ip_or_hostname(),
            opts.get_tcp_port(),
            opts.get_db_name().unwrap_or("")
        );
        let opts: Opts = OptsBuilder::from_opts(opts)
            .additional_capabilities(CapabilityFlags::CLIENT_FOUND_ROWS)
            .tcp_connect_timeout(Some(Duration::from_secs(2)))
            .read_timeout(Some(Duration::from_secs(10)))
            .write_timeout(Some(Duration::from_secs(10)))
            .prefer_socket(false)
            .stmt_cache_size(Some(STATEMENT_CACHE))
            .into();
        Ok(MysqlBackend {
            pool: ConnPool::new(opts, pool_size),
            pool_size: pool_size.max(1),
            name,
            durability,
        })
    }

    fn conn(&self) -> Result<PooledConn<'_>, StoreError> {
        self.pool.get(POOL_WAIT).map_err(|e| match e {
            PoolError::Timeout => StoreError::Unavailable(format!(
                "{}: every connection stayed busy for {POOL_WAIT:?}",
                self.name
            )),
            PoolError::Connect(e) => StoreError::Unavailable(format!("{}: {e}", self.name)),
        })
    }

    /// A pooled connection on which `once` succeeded. When `once` failed to
    /// reach the server before anything was applied, on a connection that
    /// had been idle, that connection is dropped and `once` runs again on
    /// another: at most once per connection the pool can hold, so the last
    /// try is on a new connection.
    fn live_conn<R>(
        &self,
        mut once: impl FnMut(&mut Conn) -> Result<R, Failed>,
    ) -> Result<(PooledConn<'_>, R), StoreError> {
        for _ in 0..=self.pool_size {
            let mut pooled = self.conn()?;
            match once(pooled.conn()) {
                Ok(v) => return Ok((pooled, v)),
                Err(failed) => {
                    if failed.lost_connection {
                        pooled.discard();
                    }
                    let stale = failed.lost_connection && failed.nothing_applied && pooled.reused;
                    if !stale {
                        return Err(failed.error);
                    }
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "{}: every pooled connection was stale",
            self.name
        )))
    }

    /// A connection inside a transaction just started.
    fn begin(&self) -> Result<PooledConn<'_>, StoreError> {
        self.live_conn(|conn| {
            conn.query_drop("START TRANSACTION")
                .map_err(|e| Failed::new(&e, true))
        })
        .map(|(pooled, ())| pooled)
    }
}

/// How one try on a connection failed.
struct Failed {
    error: StoreError,
    /// The connection is unusable (I/O or protocol error).
    lost_connection: bool,
    /// No statement had completed on it: nothing of this try was applied.
    nothing_applied: bool,
}

impl Failed {
    fn new(e: &mysql::Error, nothing_applied: bool) -> Failed {
        Failed {
            error: map_err(e),
            lost_connection: lost_connection(e),
            nothing_applied,
        }
    }
}

/// Whether an error leaves the connection unusable.
fn lost_connection(e: &mysql::Error) -> bool {
    matches!(
        e,
        mysql::Error::IoError(_) | mysql::Error::DriverError(_) | mysql::Error::CodecError(_)
    )
}

/// Whether an error means "try the transaction again".
fn retryable(e: &mysql::Error) -> bool {
    matches!(e, mysql::Error::MySqlError(m) if m.code == 1213 || m.code == 1205)
}

fn map_err(e: &mysql::Error) -> StoreError {
    match e {
        mysql::Error::MySqlError(m) if m.code == 1062 => StoreError::Conflict("unique"),
        mysql::Error::MySqlError(m) if m.code == 1213 || m.code == 1205 => {
            StoreError::Unavailable(format!("lock contention: {}", m.message))
        }
        mysql::Error::MySqlError(m) => {
            StoreError::Internal(format!("MySQL {}: {}", m.code, m.message))
        }
        mysql::Error::IoError(_) | mysql::Error::DriverError(_) => {
            StoreError::Unavailable(e.to_string())
        }
        other => StoreError::Internal(other.to_string()),
    }
}

fn to_params(params: &[SqlValue]) -> Params {
    if params.is_empty() {
        return Params::Empty;
    }
    Params::Positional(
        params
            .iter()
            .map(|p| match p {
                SqlValue::Null => Value::NULL,
                SqlValue::Int(v) => Value::Int(*v),
                SqlValue::Real(v) => Value::Double(*v),
                SqlValue::Text(t) => Value::Bytes(t.as_bytes().to_vec()),
                SqlValue::Blob(b) => Value::Bytes(b.clone()),
            })
            .collect(),
    )
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
fn to_rows(rows: Vec<mysql::Row>) -> Result<Vec<Row>, StoreError> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let names: Arc<[String]> = first
        .columns_ref()
        .iter()
        .map(|c| c.name_str().into_owned())
        .collect();
    rows.into_iter()
        .map(|mut r| {
            let values = (0..r.len())
                .map(|i| {
                    let name = names.get(i).map(String::as_str).unwrap_or("?");
                    match r.take::<Value, _>(i) {
                        Some(v) => from_value(v, name),
                        None => Err(StoreError::Internal(format!(
                            "column {name}: no value in the driver's row"
                        ))),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Row::new(names.clone(), values))
        })
        .collect()
}

/// A MySQL connection seen through [`SqlConn`], remembering what the caller
/// needs to decide on a retry and on reusing the connection.
struct MysqlConn<'a> {
    conn: &'a mut Conn,
    /// Whether the first driver error was a lost deadlock or lock wait:
    /// the transaction wrote nothing and may run again.
    first_error_retryable: Option<bool>,
    /// Whether any statement lost the connection, even after an earlier
    /// error `f` handled: its replies may then be out of step.
    lost: bool,
    /// Statements that completed.
    completed: usize,
}

impl<'a> MysqlConn<'a> {
    fn new(conn: &'a mut Conn) -> MysqlConn<'a> {
        MysqlConn {
            conn,
            first_error_retryable: None,
            lost: false,
            completed: 0,
        }
    }

    fn done<T>(&mut self, result: Result<T, mysql::Error>) -> Result<T, mysql::Error> {
        match &result {
            Ok(_) => self.completed += 1,
            Err(e) => {
                self.lost |= lost_connection(e);
                self.first_error_retryable.get_or_insert(retryable(e));
            }
        }
        result
    }

    /// What a failed `f` on this connection means for a retry.
    fn failed(&self, error: StoreError) -> Failed {
        Failed {
            error,
            lost_connection: self.lost,
            nothing_applied: self.completed == 0,
        }
    }
}

impl SqlConn for MysqlConn<'_> {
    fn exec(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        let result = self.conn.exec_drop(sql, to_params(params));
        match self.done(result) {
            Ok(()) => Ok(self.conn.affected_rows()),
            Err(e) => Err(map_err(&e)),
        }
    }

    fn query(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        let result = self.conn.exec::<mysql::Row, _, _>(sql, to_params(params));
        match self.done(result) {
            Ok(rows) => to_rows(rows),
            Err(e) => Err(map_err(&e)),
        }
    }

    fn last_insert_id(&mut self) -> Result<i64, StoreError> {
        match self.conn.last_insert_id() {
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
}

impl Backend for MysqlBackend {
    fn transaction<R>(
        &self,
        _kind: TxKind,
        f: &mut dyn FnMut(&mut dyn SqlConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        for attempt in 1..=ATTEMPTS {
            let mut pooled = self.begin()?;
            let mut c = MysqlConn::new(pooled.conn());
            let result = f(&mut c);
            let retry = c.first_error_retryable == Some(true);
            if c.lost {
                pooled.discard();
            }
            match result {
                Ok(v) => match pooled.conn().query_drop("COMMIT") {
                    Ok(()) => return Ok(v),
                    Err(e) => {
                        // Whatever the server left of the transaction goes
                        // with the connection, never to the next borrower.
                        pooled.discard();
                        if retryable(&e) && attempt < ATTEMPTS {
                            continue;
                        }
                        return Err(map_err(&e));
                    }
                },
                Err(e) => {
                    if pooled.conn().query_drop("ROLLBACK").is_err() {
                        pooled.discard();
                    }
                    if retry && attempt < ATTEMPTS {
                        drop(pooled);
                        std::thread::sleep(Duration::from_millis(2 * attempt as u64));
                        continue;
                    }
                    return Err(e);
                }
            }
        }
        Err(StoreError::Unavailable(
            "transaction retries exhausted".into(),
        ))
    }

    fn durability(&self) -> Durability {
        self.durability
    }

    fn with_conn<R>(
        &self,
        f: &mut dyn FnMut(&mut dyn SqlConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let (mut pooled, (v, lost)) = self.live_conn(|conn| {
            let mut c = MysqlConn::new(conn);
            match f(&mut c) {
                Ok(v) => Ok((v, c.lost)),
                Err(e) => Err(c.failed(e)),
            }
        })?;
        // `f` got past a lost connection: the connection must not be reused.
        if lost {
            pooled.discard();
        }
        Ok(v)
    }

    fn migrations(&self) -> &'static [Migration] {
        MYSQL
    }
}
