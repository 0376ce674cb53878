//! Rows read behind the server's back, straight from a test server's
//! database.

use super::{backend, Server, TestBackend};
use serde_json::{json, Value};

/// Rows of `sql` on game1's database (the SQLite file, or the MariaDB
/// primary), as JSON values: integers as numbers, text as strings, NULL as
/// `Null` (MariaDB's DECIMAL, e.g. a `SUM`, as its text). Statements
/// without rows (`UPDATE`) answer no rows.
pub fn rows(server: &Server, sql: &str) -> Vec<Vec<Value>> {
    match backend() {
        TestBackend::Sqlite => {
            let db =
                rusqlite::Connection::open(server.dir.join("game1.db")).expect("open game1.db");
            let mut st = db.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            let n = st.column_count();
            let mapped = st
                .query_map([], |r| {
                    (0..n)
                        .map(|i| r.get::<_, rusqlite::types::Value>(i))
                        .collect::<Result<Vec<_>, _>>()
                })
                .expect("query");
            mapped
                .map(|r| {
                    r.expect("row")
                        .into_iter()
                        .map(|v| match v {
                            rusqlite::types::Value::Integer(i) => json!(i),
                            rusqlite::types::Value::Text(t) => json!(t),
                            rusqlite::types::Value::Null => Value::Null,
                            other => panic!("unexpected {other:?}"),
                        })
                        .collect()
                })
                .collect()
        }
        TestBackend::Mysql { primary, .. } => {
            use mysql::prelude::Queryable;
            let url = format!("{primary}/{}", server.databases[0]);
            let mut c =
                mysql::Conn::new(mysql::Opts::from_url(&url).expect("url")).expect("connect");
            let rows: Vec<mysql::Row> = c.exec(sql, ()).unwrap_or_else(|e| panic!("{sql}: {e}"));
            rows.into_iter()
                .map(|r| {
                    r.unwrap()
                        .into_iter()
                        .map(|v| match v {
                            mysql::Value::Int(i) => json!(i),
                            mysql::Value::UInt(u) => json!(u),
                            mysql::Value::Bytes(b) => json!(String::from_utf8(b).expect("utf-8")),
                            mysql::Value::NULL => Value::Null,
                            other => panic!("unexpected {other:?}"),
                        })
                        .collect()
                })
                .collect()
        }
    }
}

/// An integer column of [`rows`], whether the database gave it as a number
/// or as text (MariaDB's DECIMAL).
pub fn column_i64(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}
