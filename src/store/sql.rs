//! The small SQL surface every backend offers, so that each business
//! transaction is written once (in `sql_store/`, one file per domain) and runs on SQLite and
//! MySQL alike. A backend supplies connections, transactions and its dialect;
//! values cross this boundary as [`SqlValue`].

use super::{StoreError, StoreFuture};
use std::sync::Arc;

/// A parameter or column value, exactly as the driver gave it: nothing is
/// converted on the way in, so that a reader can refuse a value it did not
/// expect (this is money) instead of guessing what it meant.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQL NULL.
    Null,
    /// Any integer column.
    Int(i64),
    /// A floating-point value (SQLite REAL, MySQL FLOAT/DOUBLE). No column of
    /// the schema holds one; it is kept as it is so that reading it as an
    /// integer is an error rather than a silent truncation.
    Real(f64),
    /// Any text column.
    Text(String),
    /// Bytes that are not text: an SQLite BLOB, or MySQL bytes that are not
    /// UTF-8. No column of the schema holds one; reading it as text is an
    /// error rather than a lossy conversion.
    Blob(Vec<u8>),
}

impl SqlValue {
    /// What the value is, for error messages (long text is cut).
    fn describe(&self) -> String {
        const SHOWN: usize = 64;
        match self {
            SqlValue::Null => "NULL".to_string(),
            SqlValue::Int(v) => format!("integer {v}"),
            SqlValue::Real(v) => format!("real {v:?}"),
            SqlValue::Text(t) if t.chars().count() > SHOWN => {
                let cut: String = t.chars().take(SHOWN).collect();
                format!("text {cut:?}... ({} bytes)", t.len())
            }
            SqlValue::Text(t) => format!("text {t:?}"),
            SqlValue::Blob(b) => format!("{} bytes of non-text data", b.len()),
        }
    }
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> SqlValue {
        SqlValue::Int(v)
    }
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> SqlValue {
        SqlValue::Text(v.to_string())
    }
}

impl From<String> for SqlValue {
    fn from(v: String) -> SqlValue {
        SqlValue::Text(v)
    }
}

impl From<&String> for SqlValue {
    fn from(v: &String) -> SqlValue {
        SqlValue::Text(v.clone())
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> SqlValue {
        v.map(Into::into).unwrap_or(SqlValue::Null)
    }
}

/// One result row, with the names of its columns (shared by every row of a
/// query) so that a value of the wrong kind can be reported precisely.
///
/// Every accessor is strict: a value of another kind, a NULL where the
/// accessor does not allow one, or a missing column is
/// [`StoreError::Internal`] naming the column and what was found. Nothing is
/// defaulted or converted, because a guessed balance or status is worse than
/// a failed request.
#[derive(Debug, Clone)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<SqlValue>,
}

impl Row {
    /// A row of `values`, whose columns are named `columns` (in order).
    pub fn new(columns: Arc<[String]>, values: Vec<SqlValue>) -> Row {
        Row { columns, values }
    }

    /// Column `i` as an integer. Only an integer value is accepted: NULL,
    /// text (even text that looks like a number), a real and bytes are
    /// errors. Backends hand integers over as integers (SQLite INTEGER
    /// values; MySQL BIGINT/INT and `COUNT(*)` through the binary protocol),
    /// and no query reads a MySQL DECIMAL (`SUM`, `AVG`), the one kind the
    /// driver sends as text — see `store/mysql.rs`.
    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        match self.value(i)? {
            SqlValue::Int(v) => Ok(*v),
            other => Err(self.unexpected(i, "an integer", other)),
        }
    }

    /// Column `i` as text. Only a text value is accepted: NULL (use
    /// [`Row::opt_text`] for a nullable column), an integer, a real and bytes
    /// are errors.
    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        match self.value(i)? {
            SqlValue::Text(t) => Ok(t.clone()),
            other => Err(self.unexpected(i, "text", other)),
        }
    }

    /// Column `i` of a nullable text column (`orders.idempotency_key`):
    /// `None` for NULL, the text otherwise; any other kind is an error.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.value(i)? {
            SqlValue::Null => Ok(None),
            SqlValue::Text(t) => Ok(Some(t.clone())),
            other => Err(self.unexpected(i, "text or NULL", other)),
        }
    }

    /// Column `i` as text that `parse` turns into a value of a closed set
    /// (a status, a currency); text it refuses is an error that says it
    /// expected `what`.
    pub fn parsed<T>(
        &self,
        i: usize,
        what: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, StoreError> {
        let value = self.value(i)?;
        match value {
            SqlValue::Text(t) => parse(t).ok_or_else(|| self.unexpected(i, what, value)),
            other => Err(self.unexpected(i, what, other)),
        }
    }

    fn value(&self, i: usize) -> Result<&SqlValue, StoreError> {
        self.values.get(i).ok_or_else(|| {
            StoreError::Internal(format!(
                "column {i} read from a row of {} columns",
                self.values.len()
            ))
        })
    }

    fn unexpected(&self, i: usize, expected: &str, found: &SqlValue) -> StoreError {
        let name = self.columns.get(i).map(String::as_str).unwrap_or("?");
        StoreError::Internal(format!(
            "column {i} ({name}): expected {expected}, found {}",
            found.describe()
        ))
    }
}

/// SQL differences the shared transactions must know about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite: the whole database is locked by a write transaction.
    Sqlite,
    /// MySQL/MariaDB (InnoDB): rows are locked with `FOR UPDATE`.
    Mysql,
}

impl Dialect {
    /// How many audit chains new records are spread over (SPEC §13). MySQL:
    /// [`crate::audit::CHAINS`], so changes of unrelated players take
    /// places in different chains. SQLite: one — the file has a single writer, so
    /// more chains would serialise nothing less and only put each commit's
    /// record on another page of the records' B-tree (one chain appends at
    /// its tail, a page every commit already has in its log).
    pub fn audit_chains(self) -> i64 {
        match self {
            Dialect::Sqlite => 1,
            Dialect::Mysql => crate::audit::CHAINS,
        }
    }

    /// Suffix of a `SELECT` that locks the rows it reads for the rest of the
    /// transaction (SQLite's `BEGIN IMMEDIATE` already holds the write lock).
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Mysql => " FOR UPDATE",
        }
    }

    /// Suffix of a `SELECT` that share-locks the rows it reads: others may
    /// read them but not change them until this transaction ends (a payment
    /// holds its catalogue entry so a withdrawal waits for it, or it sees
    /// the withdrawal). `LOCK IN SHARE MODE` is understood by MariaDB and
    /// MySQL alike.
    pub fn for_share(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Mysql => " LOCK IN SHARE MODE",
        }
    }
}

/// Notification id sequences a backend keeps itself (SPEC §11: ids
/// increase by one per player in commit order). Taken inside a write
/// transaction; what it took counts once that transaction commits, and is
/// forgotten if it rolls back.
pub trait NoticeIds {
    /// Takes the next `count` ids of `player_id`; answers the last one, or
    /// `None` when the player has no row.
    fn take(&mut self, player_id: i64, count: i64) -> Result<Option<i64>, StoreError>;
    /// Gives back the last `count` ids this transaction took of `player_id`.
    fn give_back(&mut self, player_id: i64, count: i64);
    /// The last committed id of `player_id`, if this process knows it.
    fn last(&self, player_id: i64) -> Option<i64>;
}

/// The heads of the audit chains (SPEC §13) as this process knows them: an
/// append links its records after the head and inserts them, and the
/// records' key (`(chain, seq)`, on SQLite one integer made of them)
/// refuses a place already taken. On SQLite,
/// whose file only this process writes, they are exact; on MySQL each
/// shard's are the heads it last saw committed — another shard or node may
/// have moved one since, which costs that append a step, never a wrong
/// record (see `sql_store::audit`).
pub trait AuditHeads {
    /// `chain`'s head (seq, hash) as this transaction sees it, when this
    /// process knows it (else the caller reads it from the records).
    fn head(&self, chain: i64) -> Option<(i64, String)>;
    /// Moves `chain`'s head; it counts once the transaction commits.
    fn set_head(&mut self, chain: i64, seq: i64, hash: String);
}

/// A connection inside a transaction. Its statements are futures: MySQL's
/// go out on the shard's own io_uring and yield while the server works;
/// SQLite's are answered before they are first polled (its transactions run
/// whole on a blocking thread, see [`super::StoreHandle`]). They are boxed so
/// that every business transaction is written once over `&mut dyn SqlConn`.
pub trait SqlConn {
    /// Runs a statement; answers the number of rows it changed. A unique
    /// constraint violation is `StoreError::Conflict("unique")`.
    fn exec<'a>(&'a mut self, sql: &'a str, params: &'a [SqlValue]) -> StoreFuture<'a, u64>;
    /// Runs a query; answers all rows.
    fn query<'a>(&'a mut self, sql: &'a str, params: &'a [SqlValue]) -> StoreFuture<'a, Vec<Row>>;
    /// The id the last statement generated, read right after the INSERT
    /// (on MySQL a later statement resets it), or the value it gave
    /// `LAST_INSERT_ID(expr)` (both backends have that function); an error
    /// (not 0) when it generated none.
    fn last_insert_id(&mut self) -> Result<i64, StoreError>;
    /// This connection's dialect.
    fn dialect(&self) -> Dialect;
    /// The players' notification id sequences, when the backend keeps them
    /// itself (SQLite, whose file only this process writes); `None`: they
    /// are taken on the player's row (`notify_seq`) in the transaction.
    fn notice_ids(&mut self) -> Option<&mut dyn NoticeIds> {
        None
    }
    /// The audit chains' heads this process knows (see [`AuditHeads`]), in
    /// a write transaction; `None` elsewhere (then an append reads each
    /// head from its chain's newest record).
    fn audit_heads(&mut self) -> Option<&mut dyn AuditHeads> {
        None
    }
    /// Runs `statements` in order, sent together where the backend can:
    /// MySQL pipelines them (one round trip for all; the server runs each
    /// whatever the others gave, so batch only statements that may all
    /// run). Each statement's rows changed, or its error.
    fn exec_batch<'a>(
        &'a mut self,
        statements: &'a [(&'a str, Vec<SqlValue>)],
    ) -> StoreFuture<'a, Vec<Result<u64, StoreError>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(statements.len());
            for (sql, params) in statements {
                out.push(self.exec(sql, params).await);
            }
            Ok(out)
        })
    }

    /// The first row of a query, if any.
    fn query_one<'a>(
        &'a mut self,
        sql: &'a str,
        params: &'a [SqlValue],
    ) -> StoreFuture<'a, Option<Row>> {
        Box::pin(async move { Ok(self.query(sql, params).await?.into_iter().next()) })
    }
}

/// Whether a transaction writes (SQLite takes the write lock up front).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxKind {
    /// Reads only.
    Read,
    /// Reads and writes.
    Write,
}

/// A database a [`super::sql_store::SqlStore`] runs on.
///
/// Its methods are `async fn`s without a `Send` bound on purpose: a MySQL
/// backend's futures live and end on the shard that made them, and a SQLite
/// backend's run whole on the one blocking thread that polls them.
#[allow(async_fn_in_trait)]
pub trait Backend: 'static {
    /// Runs `f` in one transaction: committed when it returns `Ok`, rolled
    /// back otherwise. Backends may retry `f` after a deadlock.
    async fn transaction<R>(
        &self,
        kind: TxKind,
        f: impl AsyncFnMut(&mut dyn SqlConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError>;
    /// What this database's acknowledged writes must survive.
    fn durability(&self) -> super::Durability;
    /// Runs `f` on a connection outside any explicit transaction
    /// (single-statement reads, DDL, migrations bookkeeping, health checks).
    /// A backend may run `f` again on another connection when the first one
    /// had gone stale before any of `f`'s statements completed.
    async fn with_conn<R>(
        &self,
        f: impl AsyncFnMut(&mut dyn SqlConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError>;
    /// The migrations in this backend's dialect.
    fn migrations(&self) -> &'static [super::migrations::Migration];
    /// The figures of this backend's connection pool on the shard, when it
    /// keeps one of its own (MySQL); `None` for SQLite.
    fn pool_figures(&self) -> Option<crate::mysql::PoolFigures> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: Vec<SqlValue>) -> Row {
        let names: Vec<String> = ["id", "status", "gold", "key"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        Row::new(names.into(), values)
    }

    fn internal(r: Result<impl std::fmt::Debug, StoreError>) -> String {
        match r {
            Err(StoreError::Internal(m)) => m,
            other => panic!("expected an internal error, got {other:?}"),
        }
    }

    #[test]
    fn int_accepts_only_integers() {
        let r = row(vec![
            SqlValue::Int(-7),
            SqlValue::Null,
            SqlValue::Text("12".into()),
            SqlValue::Real(1.5),
        ]);
        assert_eq!(r.int(0), Ok(-7));
        assert_eq!(
            internal(r.int(1)),
            "column 1 (status): expected an integer, found NULL"
        );
        assert_eq!(
            internal(r.int(2)),
            "column 2 (gold): expected an integer, found text \"12\""
        );
        assert_eq!(
            internal(r.int(3)),
            "column 3 (key): expected an integer, found real 1.5"
        );
        let whole = row(vec![SqlValue::Real(2.0)]);
        assert_eq!(
            internal(whole.int(0)),
            "column 0 (id): expected an integer, found real 2.0"
        );
        assert_eq!(internal(r.int(4)), "column 4 read from a row of 4 columns");
    }

    #[test]
    fn text_accepts_only_text() {
        let r = row(vec![
            SqlValue::Text("alice".into()),
            SqlValue::Null,
            SqlValue::Int(3),
            SqlValue::Blob(vec![0xff, 0xfe]),
        ]);
        assert_eq!(r.text(0).as_deref(), Ok("alice"));
        assert_eq!(
            internal(r.text(1)),
            "column 1 (status): expected text, found NULL"
        );
        assert_eq!(
            internal(r.text(2)),
            "column 2 (gold): expected text, found integer 3"
        );
        assert_eq!(
            internal(r.text(3)),
            "column 3 (key): expected text, found 2 bytes of non-text data"
        );
        let empty = row(vec![SqlValue::Text(String::new())]);
        assert_eq!(empty.text(0).as_deref(), Ok(""), "empty text is text");
    }

    #[test]
    fn opt_text_allows_null_and_nothing_else() {
        let r = row(vec![
            SqlValue::Text("k1".into()),
            SqlValue::Null,
            SqlValue::Int(1),
        ]);
        assert_eq!(r.opt_text(0), Ok(Some("k1".to_string())));
        assert_eq!(r.opt_text(1), Ok(None));
        assert_eq!(
            internal(r.opt_text(2)),
            "column 2 (gold): expected text or NULL, found integer 1"
        );
    }

    #[test]
    fn parsed_refuses_unknown_names() {
        let parse = |s: &str| (s == "active").then_some(1);
        let r = row(vec![
            SqlValue::Text("active".into()),
            SqlValue::Text("frozen".into()),
            SqlValue::Null,
        ]);
        assert_eq!(r.parsed(0, "a status", parse), Ok(1));
        assert_eq!(
            internal(r.parsed(1, "a status", parse)),
            "column 1 (status): expected a status, found text \"frozen\""
        );
        assert_eq!(
            internal(r.parsed(2, "a status", parse)),
            "column 2 (gold): expected a status, found NULL"
        );
    }

    #[test]
    fn long_text_is_cut_in_messages() {
        let r = row(vec![SqlValue::Text("é".repeat(100))]);
        let m = internal(r.int(0));
        assert!(
            m.contains(&format!("text \"{}\"...", "é".repeat(64))),
            "{m}"
        );
        assert!(m.ends_with("(200 bytes)"), "{m}");
    }

    #[test]
    fn a_row_without_names_still_reports_the_index() {
        let r = Row::new(Vec::new().into(), vec![SqlValue::Null]);
        assert_eq!(
            internal(r.int(0)),
            "column 0 (?): expected an integer, found NULL"
        );
    }
}
