//! The production backend: MySQL/MariaDB (InnoDB) through the `mysql` crate.
//!
//! Each shard opens its own bounded pool per database (primary or replica);
//! the pool is only used from that shard's blocking threads. Transactions that
//! lose a deadlock or a lock wait are retried a few times: they wrote nothing.
//! Connections use CLIENT_FOUND_ROWS, so "rows changed" counts matched rows
//! exactly as SQLite does.

use super::migrations::{Migration, MYSQL};
use super::sql::{Backend, Dialect, Row, SqlConn, SqlValue, TxKind};
use super::{Durability, StoreError};
use mysql::consts::CapabilityFlags;
use mysql::prelude::Queryable;
use mysql::{Opts, OptsBuilder, Params, Pool, PoolConstraints, PoolOpts, TxOpts, Value};
use std::sync::Arc;
use std::time::Duration;

/// Attempts of a transaction that lost a deadlock.
const ATTEMPTS: usize = 4;

/// A bounded pool to one MySQL server and database.
pub struct MysqlBackend {
    pool: Pool,
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
        let constraints = PoolConstraints::new(0, pool_size.max(1))
            .ok_or_else(|| StoreError::Internal("bad pool size".into()))?;
        let builder = OptsBuilder::from_opts(opts)
            .additional_capabilities(CapabilityFlags::CLIENT_FOUND_ROWS)
            .tcp_connect_timeout(Some(Duration::from_secs(2)))
            .read_timeout(Some(Duration::from_secs(10)))
            .write_timeout(Some(Duration::from_secs(10)))
            .prefer_socket(false)
            .pool_opts(
                PoolOpts::default()
                    .with_constraints(constraints)
                    .with_reset_connection(false),
            );
        let pool = Pool::new(builder).map_err(|e| map_err(&e))?;
        Ok(MysqlBackend {
            pool,
            name,
            durability,
        })
    }

    fn conn(&self) -> Result<mysql::PooledConn, StoreError> {
        self.pool
            .try_get_conn(Duration::from_secs(3))
            .map_err(|e| match map_err(&e) {
                StoreError::Internal(m) => StoreError::Unavailable(format!("{}: {m}", self.name)),
                other => other,
            })
    }
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

/// Any MySQL connection or transaction, seen through [`SqlConn`]. The first
/// driver error is kept so the transaction loop can decide to retry.
struct MysqlConn<'a, Q: Queryable> {
    q: &'a mut Q,
    last_error: Option<mysql::Error>,
    affected: fn(&Q) -> u64,
    /// The id of the last insert, `None` when it generated none.
    insert_id: fn(&Q) -> Option<u64>,
}

impl<Q: Queryable> MysqlConn<'_, Q> {
    fn fail(&mut self, e: mysql::Error) -> StoreError {
        let mapped = map_err(&e);
        self.last_error.get_or_insert(e);
        mapped
    }
}

impl<Q: Queryable> SqlConn for MysqlConn<'_, Q> {
    fn exec(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        match self.q.exec_drop(sql, to_params(params)) {
            Ok(()) => Ok((self.affected)(self.q)),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn query(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        match self.q.exec::<mysql::Row, _, _>(sql, to_params(params)) {
            Ok(rows) => to_rows(rows),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn last_insert_id(&mut self) -> Result<i64, StoreError> {
        match (self.insert_id)(self.q) {
            Some(id) => i64::try_from(id).map_err(|_| {
                StoreError::Internal(format!(
                    "generated id {id} does not fit a signed 64-bit integer"
                ))
            }),
            None => Err(StoreError::Internal(
                "the last insert generated no id".into(),
            )),
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
        let mut conn = self.conn()?;
        for attempt in 1..=ATTEMPTS {
            let mut tx = conn
                .start_transaction(TxOpts::default())
                .map_err(|e| map_err(&e))?;
            let mut c = MysqlConn {
                q: &mut tx,
                last_error: None,
                affected: |t: &mysql::Transaction<'_>| t.affected_rows(),
                insert_id: |t: &mysql::Transaction<'_>| t.last_insert_id(),
            };
            let result = f(&mut c);
            let retry = c.last_error.as_ref().is_some_and(retryable);
            match result {
                Ok(v) => match tx.commit() {
                    Ok(()) => return Ok(v),
                    Err(e) if retryable(&e) && attempt < ATTEMPTS => continue,
                    Err(e) => return Err(map_err(&e)),
                },
                Err(e) => {
                    let _ = tx.rollback();
                    if retry && attempt < ATTEMPTS {
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
        let mut conn = self.conn()?;
        let mut c = MysqlConn {
            q: &mut conn,
            last_error: None,
            affected: |c: &mysql::PooledConn| c.affected_rows(),
            insert_id: |c: &mysql::PooledConn| Some(c.last_insert_id()).filter(|id| *id != 0),
        };
        f(&mut c)
    }

    fn migrations(&self) -> &'static [Migration] {
        MYSQL
    }
}
