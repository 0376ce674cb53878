//! The `sql-direct` baseline's client: a store backend over the blocking
//! `mysql` crate, one connection per load thread. It is independent of the
//! server's own client (`src/mysql/`) on purpose, so that the baseline does
//! not share that client's costs or faults; the SQL and the transactions are
//! the server's own (`SqlStore` runs over it), so both lines do the same
//! work in the database.
//!
//! Its futures are ready before they are first polled (every call blocks),
//! so a load thread drives a store call with `block_on`. A transaction that
//! lost a deadlock or a lock wait runs again, as the server's pool does.

use datamiddleware::store::migrations::{Migration, MYSQL};
use datamiddleware::store::sql::{Backend, Dialect, Row, SqlConn, SqlValue, TxKind};
use datamiddleware::store::{Durability, StoreError, StoreFuture};
use mysql::consts::CapabilityFlags;
use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder, Params, Value};
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

/// Attempts of a transaction that lost a deadlock (as the server's pool).
const ATTEMPTS: usize = 4;

/// One blocking connection, used by one load thread.
pub struct DirectBackend {
    conn: RefCell<Conn>,
    durability: Durability,
}

impl DirectBackend {
    /// Connects to `url` with the options the server's client uses
    /// (CLIENT_FOUND_ROWS, statement cache, timeouts).
    pub fn connect(url: &str, durability: Durability) -> Result<DirectBackend, String> {
        Ok(DirectBackend {
            conn: RefCell::new(open(url)?),
            durability,
        })
    }
}

/// A blocking connection to `url` with the options the server's client
/// uses (CLIENT_FOUND_ROWS, statement cache, timeouts); also the bulk
/// loader's (`lb_load.rs`).
pub fn open(url: &str) -> Result<Conn, String> {
    let opts = Opts::from_url(url).map_err(|e| format!("bad MySQL url: {e}"))?;
    let opts: Opts = OptsBuilder::from_opts(opts)
        .additional_capabilities(CapabilityFlags::CLIENT_FOUND_ROWS)
        .tcp_connect_timeout(Some(Duration::from_secs(2)))
        .read_timeout(Some(Duration::from_secs(10)))
        .write_timeout(Some(Duration::from_secs(10)))
        .prefer_socket(false)
        .stmt_cache_size(Some(256))
        .into();
    Conn::new(opts).map_err(|e| e.to_string())
}

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

fn from_value(v: Value) -> Result<SqlValue, StoreError> {
    Ok(match v {
        Value::NULL => SqlValue::Null,
        Value::Int(i) => SqlValue::Int(i),
        Value::UInt(u) => SqlValue::Int(
            i64::try_from(u).map_err(|_| StoreError::Internal(format!("unsigned {u}")))?,
        ),
        Value::Bytes(b) => match String::from_utf8(b) {
            Ok(s) => SqlValue::Text(s),
            Err(e) => SqlValue::Blob(e.into_bytes()),
        },
        Value::Float(f) => SqlValue::Real(f64::from(f)),
        Value::Double(f) => SqlValue::Real(f),
        other => return Err(StoreError::Internal(format!("unexpected value {other:?}"))),
    })
}

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
        .map(|r| {
            let values = r
                .unwrap()
                .into_iter()
                .map(from_value)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Row::new(names.clone(), values))
        })
        .collect()
}

/// The connection seen through [`SqlConn`], remembering whether the first
/// error lost a deadlock (the transaction then runs again).
struct DirectConn<'a> {
    conn: &'a mut Conn,
    first_error_retryable: Option<bool>,
}

impl DirectConn<'_> {
    fn exec_now(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        let r = self.conn.exec_drop(sql, to_params(params));
        self.note(r).map(|()| self.conn.affected_rows())
    }

    fn query_now(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        let r = self.conn.exec::<mysql::Row, _, _>(sql, to_params(params));
        to_rows(self.note(r)?)
    }

    fn note<T>(&mut self, r: Result<T, mysql::Error>) -> Result<T, StoreError> {
        r.map_err(|e| {
            self.first_error_retryable.get_or_insert(retryable(&e));
            map_err(&e)
        })
    }
}

impl SqlConn for DirectConn<'_> {
    fn exec<'a>(&'a mut self, sql: &'a str, params: &'a [SqlValue]) -> StoreFuture<'a, u64> {
        Box::pin(std::future::ready(self.exec_now(sql, params)))
    }

    fn query<'a>(&'a mut self, sql: &'a str, params: &'a [SqlValue]) -> StoreFuture<'a, Vec<Row>> {
        Box::pin(std::future::ready(self.query_now(sql, params)))
    }

    fn last_insert_id(&mut self) -> Result<i64, StoreError> {
        i64::try_from(self.conn.last_insert_id())
            .ok()
            .filter(|id| *id != 0)
            .ok_or_else(|| StoreError::Internal("the last insert generated no id".into()))
    }

    fn dialect(&self) -> Dialect {
        Dialect::Mysql
    }
}

// The connection is borrowed across the transaction's awaits on purpose:
// they never suspend (every statement blocks and its future is ready), and
// one thread owns the backend.
#[allow(clippy::await_holding_refcell_ref)]
impl Backend for DirectBackend {
    async fn transaction<R>(
        &self,
        _kind: TxKind,
        mut f: impl AsyncFnMut(&mut dyn SqlConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self.conn.borrow_mut();
        for attempt in 1..=ATTEMPTS {
            conn.query_drop("START TRANSACTION")
                .map_err(|e| map_err(&e))?;
            let mut c = DirectConn {
                conn: &mut conn,
                first_error_retryable: None,
            };
            let result = f(&mut c).await;
            let retry = c.first_error_retryable == Some(true);
            match result {
                Ok(v) => match conn.query_drop("COMMIT") {
                    Ok(()) => return Ok(v),
                    Err(e) if retryable(&e) && attempt < ATTEMPTS => continue,
                    Err(e) => return Err(map_err(&e)),
                },
                Err(e) => {
                    conn.query_drop("ROLLBACK").map_err(|e| map_err(&e))?;
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

    async fn with_conn<R>(
        &self,
        mut f: impl AsyncFnMut(&mut dyn SqlConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self.conn.borrow_mut();
        f(&mut DirectConn {
            conn: &mut conn,
            first_error_retryable: None,
        })
        .await
    }

    fn migrations(&self) -> &'static [Migration] {
        MYSQL
    }
}
