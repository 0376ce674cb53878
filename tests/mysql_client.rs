//! The MySQL client of `src/mysql/` against a real MariaDB, with no
//! DataMiddleware server: each test runs the client inside a glommio
//! `LocalExecutor`. Needs the server named by `DMTEST_MYSQL_PRIMARY`
//! (`scripts/backends.sh env` sets it), so the tests are ignored unless run
//! with `DMTEST_BACKEND=mysql ... -- --include-ignored` (as
//! `scripts/test.sh` does), and skip with a message when it is unset.
//! They work in their own database, `dm_mysql_client`, one table per test;
//! the pool's tests that count server connections each have a database of
//! their own (`SHOW PROCESSLIST` shows every test's connections).

use datamiddleware::mysql::{
    Connection, MysqlError, Opts, Pool, PoolError, PooledConn, QueryResult, Value,
};
use glommio::{LocalExecutorBuilder, Placement};
use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

const DB: &str = "dm_mysql_client";

/// The server's URL (no database), or `None` with a message.
fn server_url() -> Option<String> {
    match std::env::var("DMTEST_MYSQL_PRIMARY") {
        Ok(url) if !url.is_empty() => Some(url.trim_end_matches('/').to_string()),
        _ => {
            eprintln!("skipped: DMTEST_MYSQL_PRIMARY is not set (see scripts/backends.sh env)");
            None
        }
    }
}

/// Runs `test` on a fresh executor with the test database's options.
fn run<F, Fut>(test: F)
where
    F: FnOnce(Opts) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    run_in(DB, test)
}

/// Runs `test` on a fresh executor with options for database `db`.
fn run_in<F, Fut>(db: &'static str, test: F)
where
    F: FnOnce(Opts) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let Some(url) = server_url() else { return };
    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .make()
        .expect("glommio executor");
    executor.run(async move {
        let mut admin = Connection::connect_url(&url).await.expect("connect");
        admin
            .query(&format!("CREATE DATABASE IF NOT EXISTS {db}"))
            .await
            .expect("create database");
        admin.close().await;
        let opts = Opts::from_url(&format!("{url}/{db}")).expect("url");
        test(opts).await
    });
}

async fn connect(opts: &Opts) -> Connection {
    Connection::connect(opts).await.expect("connect")
}

/// The session counter `name` of `SHOW SESSION STATUS`.
async fn session_status(c: &mut Connection, name: &str) -> u64 {
    let r = c
        .query(&format!("SHOW SESSION STATUS LIKE '{name}'"))
        .await
        .expect("status");
    r.rows[0].u64(1).expect("a number")
}

/// A host name is resolved (on a blocking thread, not the executor) and
/// each of its addresses tried in turn: `localhost` may name `::1` first,
/// where the test server (bound to 127.0.0.1) refuses.
#[test]
#[ignore = "needs MariaDB (DMTEST_BACKEND=mysql)"]
fn a_host_name_is_resolved_and_each_of_its_addresses_tried() {
    run(|opts| async move {
        let mut named = opts.clone();
        named.host = "localhost".into();
        let mut c = Connection::connect(&named).await.expect("connect by name");
        let r = c.query("SELECT 1").await.expect("select");
        assert_eq!(r.rows.len(), 1);
        c.close().await;
        let mut nowhere = opts.clone();
        nowhere.host = "no-such-host.invalid".into();
        let e = Connection::connect(&nowhere)
            .await
            .expect_err("no such host");
        assert!(
            e.to_string().contains("no-such-host.invalid"),
            "the error names the host: {e}"
        );
    });
}

#[test]
#[ignore = "needs MariaDB (DMTEST_BACKEND=mysql)"]
fn connects_and_refuses_a_wrong_password() {
    run(|opts| async move {
        let mut c = connect(&opts).await;
        assert!(c.connection_id() > 0);
        assert!(!c.server_version().is_empty());
        let r = c.query("SELECT DATABASE(), 1").await.expect("select");
        assert_eq!(r.rows[0].str(0), Some(DB));
        c.ping().await.expect("ping");

        let mut wrong = opts.clone();
        wrong.password.push_str("-wrong");
        let e = Connection::connect(&wrong).await.expect_err("refused");
        assert_eq!(e.code(), Some(1045), "{e}");
        assert_eq!(e.sql_state(), Some("28000"));

        let mut closed = opts.clone();
        closed.port = 1; // nothing listens there
        let e = Connection::connect(&closed).await.expect_err("no server");
        assert!(matches!(e, MysqlError::Io(_)), "{e:?}");
    });
}

#[test]
#[ignore = "needs MariaDB (DMTEST_BACKEND=mysql)"]
fn text_query_returns_bytes_and_nulls() {
    run(|opts| async move {
        let mut c = connect(&opts).await;
        let r = c
            .query("SELECT 42 AS n, 'héllo' AS s, NULL AS z, 2.5 AS d, X'00FF' AS b")
            .await
            .expect("select");
        assert_eq!(r.columns.len(), 5);
        assert_eq!(r.column("s"), Some(1));
        let row = r.rows[0].clone();
        assert_eq!(row.i64(0), Some(42));
        assert_eq!(row.str(1), Some("héllo"));
        assert!(row.is_null(2));
        assert_eq!(row.f64(3), Some(2.5));
        assert_eq!(row.bytes(4), Some(&[0x00, 0xff][..]));
        assert_eq!(
            row.into_text(),
            vec![
                Some(b"42".to_vec()),
                Some("héllo".as_bytes().to_vec()),
                None,
                Some(b"2.5".to_vec()),
                Some(vec![0x00, 0xff]),
            ]
        );
        // A server error leaves the connection usable.
        let e = c.query("SELEC 1").await.expect_err("syntax");
        assert_eq!(e.code(), Some(1064));
        assert!(!c.is_broken());
        assert_eq!(c.query("SELECT 1").await.expect("after").rows.len(), 1);
    });
}

#[test]
#[ignore = "needs MariaDB (DMTEST_BACKEND=mysql)"]
fn prepared_statements_bind_every_type_and_are_cached() {
    run(|opts| async move {
        let mut c = connect(&opts).await;
        c.query("DROP TABLE IF EXISTS t_params")
            .await
            .expect("drop");
        c.query(
            "CREATE TABLE t_params (id BIGINT AUTO_INCREMENT PRIMARY KEY, i BIGINT, \
             f DOUBLE, s VARCHAR(64), b BLOB, n INT NULL) ENGINE=InnoDB",
        )
        .await
        .expect("create");
        let insert = "INSERT INTO t_params (i, f, s, b, n) VALUES (?, ?, ?, ?, ?)";
        let before = session_status(&mut c, "Com_stmt_prepare").await;
        let mut ids = Vec::new();
        for k in 0..5i64 {
            let r = c
                .exec(
                    insert,
                    &[
                        Value::from(-9_000_000_000i64 + k),
                        Value::from(3.25f64),
                        Value::from("snow ☃"),
                        Value::from(vec![0u8, 1, 2, 255]),
                        Value::NULL,
                    ],
                )
                .await
                .expect("insert");
            assert_eq!(r.affected_rows, 1);
            assert!(r.last_insert_id > 0);
            ids.push(r.last_insert_id);
        }
        let after = session_status(&mut c, "Com_stmt_prepare").await;
        assert_eq!(after - before, 1, "one prepare for five executions");
        assert_eq!(c.cached_statements(), 1);
        assert!(ids.windows(2).all(|w| w[1] > w[0]));

        let r = c
            .exec(
                "SELECT i, f, s, b, n FROM t_params WHERE id = ?",
                &[Value::from(ids[2])],
            )
            .await
            .expect("select");
        let row = &r.rows[0];
        assert_eq!(row.get(0), Some(&Value::Int(-9_000_000_000 + 2)));
        assert_eq!(row.get(1), Some(&Value::Double(3.25)));
        assert_eq!(row.str(2), Some("snow ☃"));
        assert_eq!(row.bytes(3), Some(&[0u8, 1, 2, 255][..]));
        assert!(row.is_null(4));

        // UPDATE counts matched rows (CLIENT_FOUND_ROWS), even unchanged ones.
        let r = c
            .exec(
                "UPDATE t_params SET f = ? WHERE id <= ?",
                &[Value::from(3.25f64), Value::from(ids[1])],
            )
            .await
            .expect("update");
        assert_eq!(r.affected_rows, 2);

        // A wrong parameter count is refused before anything is sent.
        let e = c
            .exec("SELECT i FROM t_params WHERE id = ?", &[])
            .await
            .expect_err("count");
        assert!(matches!(e, MysqlError::Usage(_)), "{e:?}");
        assert!(!c.is_broken());
    });
}

#[test]
#[ignore = "needs MariaDB (DMTEST_BACKEND=mysql)"]
fn statement_cache_evicts_and_closes_the_least_recent() {
    run(|mut opts| async move {
        opts.stmt_cache_size = 2;
        let mut c = connect(&opts).await;
        let closes = session_status(&mut c, "Com_stmt_close").await;
        let prepares = session_status(&mut c, "Com_stmt_prepare").await;
        for sql in [
            "SELECT ? + 1",
            "SELECT ? + 2",
            "SELECT ? + 1",
            "SELECT ? + 3",
        ] {
            c.exec(sql, &[Value::from(1i64)]).await.expect("exec");
        }
        // "+ 2" was the least recently used when "+ 3" came: closed.
        assert_eq!(c.cached_statements(), 2);
        assert_eq!(session_status(&mut c, "Com_stmt_close").await - closes, 1);
        assert_eq!(
            session_status(&mut c, "Com_stmt_prepare").await - prepares,
            3
        );
        let r = c
            .exec("SELECT ? + 1", &[Value::from(41i64)])
            .await
            .expect("hit");
        assert_eq!(r.rows[0].i64(0), Some(42));
        assert_eq!(
            session_status(&mut c, "Com_stmt_prepare").await - prepares,
            3
        );

        // Without a cache, every statement is prepared, run and closed.
        opts.stmt_cache_size = 0;
        let mut c = connect(&opts).await;
        for _ in 0..3 {
            c.exec("SELECT ?", &[Value::from(1i64)])
                .await
                .expect("exec");
        }
        assert_eq!(c.cached_statements(), 0);
        assert_eq!(session_status(&mut c, "Com_stmt_close").await, 3);
    });
}

#[test]
#[ignore = "needs MariaDB (DMTEST_BACKEND=mysql)"]
fn transactions_commit_and_roll_back() {
    run(|opts| async move {
        let mut c = connect(&opts).await;
        let mut other = connect(&opts).await;
        c.query("DROP TABLE IF EXISTS t_txn").await.expect("drop");
        c.query("CREATE TABLE t_txn (k INT PRIMARY KEY, v INT) ENGINE=InnoDB")
            .await
            .expect("create");

        c.begin().await.expect("begin");
        assert!(c.in_transaction());
        c.exec(
            "INSERT INTO t_txn VALUES (?, ?)",
            &[1i64.into(), 10i64.into()],
        )
        .await
        .expect("insert");
        c.exec(
            "UPDATE t_txn SET v = v + ? WHERE k = ?",
            &[5i64.into(), 1i64.into()],
        )
        .await
        .expect("update");
        let seen = other
            .query("SELECT COUNT(*) FROM t_txn")
            .await
            .expect("count");
        assert_eq!(seen.rows[0].i64(0), Some(0), "not visible before COMMIT");
        c.commit().await.expect("commit");
        assert!(!c.in_transaction());
        let seen = other
            .query("SELECT v FROM t_txn WHERE k = 1")
            .await
            .expect("v");
        assert_eq!(seen.rows[0].i64(0), Some(15));

        c.begin().await.expect("begin");
        c.exec(
            "INSERT INTO t_txn VALUES (?, ?)",
            &[2i64.into(), 20i64.into()],
        )
        .await
        .expect("insert");
        c.exec("DELETE FROM t_txn WHERE k = ?", &[1i64.into()])
            .await
            .expect("delete");
        c.rollback().await.expect("rollback");
        assert!(!c.in_transaction());
        let seen = other
            .query("SELECT k, v FROM t_txn ORDER BY k")
            .await
            .expect("rows");
        assert_eq!(seen.rows.len(), 1);
        assert_eq!(
            (seen.rows[0].i64(0), seen.rows[0].i64(1)),
            (Some(1), Some(15))
        );
    });
}

#[test]
#[ignore = "needs MariaDB (DMTEST_BACKEND=mysql)"]
fn duplicate_key_keeps_its_code() {
    run(|opts| async move {
        let mut c = connect(&opts).await;
        c.query("DROP TABLE IF EXISTS t_dup").await.expect("drop");
        c.query("CREATE TABLE t_dup (k VARCHAR(16) PRIMARY KEY) ENGINE=InnoDB")
            .await
            .expect("create");
        c.exec("INSERT INTO t_dup VALUES (?)", &["a".into()])
            .await
            .expect("first");
        let e = c
            .exec("INSERT INTO t_dup VALUES (?)", &["a".into()])
            .await
            .expect_err("duplicate");
        assert!(e.is_duplicate_key(), "{e}");
        assert_eq!((e.code(), e.sql_state()), (Some(1062), Some("23000")));
        assert!(!e.breaks_connection() && !c.is_broken());
        let e = c
            .query("INSERT INTO t_dup VALUES ('a')")
            .await
            .expect_err("text too");
        assert_eq!(e.code(), Some(1062));
        c.exec("INSERT INTO t_dup VALUES (?)", &["b".into()])
            .await
            .expect("still usable");
    });
}

/// A batch goes out pipelined and its answers come back in order, each its
/// own: a duplicate key in the middle fails that statement only, the ones
/// after it run, and the connection stays usable (also for a batch run
/// right after plain statements, whose packets must not be sent again).
#[test]
#[ignore = "needs MariaDB (DMTEST_BACKEND=mysql)"]
fn a_batch_is_pipelined_and_answered_statement_by_statement() {
    run(|opts| async move {
        let mut c = connect(&opts).await;
        c.query("DROP TABLE IF EXISTS t_batch").await.expect("drop");
        c.query(
            "CREATE TABLE t_batch (k VARCHAR(16) PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB",
        )
        .await
        .expect("create");
        c.exec("INSERT INTO t_batch VALUES (?, ?)", &["a".into(), 1.into()])
            .await
            .expect("first");
        let insert = "INSERT INTO t_batch VALUES (?, ?)";
        let bump = "UPDATE t_batch SET n = n + ? WHERE k = ?";
        let answers = c
            .exec_batch(&[
                (bump, vec![10.into(), "a".into()]),
                (insert, vec!["a".into(), 2.into()]),
                (insert, vec!["b".into(), 3.into()]),
                (bump, vec![100.into(), "b".into()]),
                (bump, vec![1.into(), "nobody".into()]),
            ])
            .await
            .expect("batch");
        let affected: Vec<Result<u64, Option<u16>>> = answers
            .iter()
            .map(|r| r.as_ref().map(|d| d.affected_rows).map_err(|e| e.code()))
            .collect();
        assert_eq!(affected, vec![Ok(1), Err(Some(1062)), Ok(1), Ok(1), Ok(0)]);
        assert!(!c.is_broken());
        let rows = c
            .query("SELECT k, n FROM t_batch ORDER BY k")
            .await
            .expect("read");
        let got: Vec<(String, String)> = rows
            .rows
            .iter()
            .map(|r| {
                let text = |i: usize| match r.get(i) {
                    Some(Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
                    other => format!("{other:?}"),
                };
                (text(0), text(1))
            })
            .collect();
        assert_eq!(
            got,
            vec![("a".into(), "11".into()), ("b".into(), "103".into())]
        );
    });
}

#[test]
#[ignore = "needs MariaDB (DMTEST_BACKEND=mysql)"]
fn a_statement_timeout_breaks_the_connection() {
    run(|opts| async move {
        let mut c = connect(&opts).await;
        c.set_statement_timeout(Duration::from_millis(200));
        let t0 = Instant::now();
        let e = c.query("SELECT SLEEP(5)").await.expect_err("timeout");
        assert!(matches!(e, MysqlError::Timeout(_)), "{e:?}");
        // Before the server would have answered: the timeout ended it.
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert!(c.is_broken());
        let e = c.query("SELECT 1").await.expect_err("never reused");
        assert!(matches!(e, MysqlError::Broken), "{e:?}");
        let e = c.exec("SELECT ?", &[1i64.into()]).await.expect_err("never");
        assert!(matches!(e, MysqlError::Broken), "{e:?}");

        // The same through the binary protocol.
        let mut c = connect(&opts).await;
        c.set_statement_timeout(Duration::from_millis(200));
        let e = c
            .exec("SELECT SLEEP(?)", &[Value::from(5i64)])
            .await
            .expect_err("timeout");
        assert!(matches!(e, MysqlError::Timeout(_)), "{e:?}");
        assert!(c.is_broken());
    });
}

#[test]
#[ignore = "needs MariaDB (DMTEST_BACKEND=mysql)"]
fn a_killed_connection_is_reported_broken() {
    run(|opts| async move {
        let mut victim = connect(&opts).await;
        victim.exec("SELECT ?", &[1i64.into()]).await.expect("warm");
        let mut killer = connect(&opts).await;
        killer
            .query(&format!("KILL {}", victim.connection_id()))
            .await
            .expect("kill");
        let e = victim.query("SELECT 1").await.expect_err("killed");
        eprintln!("a killed connection's next statement: {e}");
        assert!(e.breaks_connection(), "{e:?}");
        assert!(victim.is_broken());
        assert!(matches!(
            victim.query("SELECT 1").await,
            Err(MysqlError::Broken)
        ));
        assert!(!killer.is_broken());
        killer.query("SELECT 1").await.expect("the killer lives on");
    });
}

#[test]
#[ignore = "needs MariaDB (DMTEST_BACKEND=mysql)"]
fn large_results_are_read_whole() {
    run(|opts| async move {
        let mut c = connect(&opts).await;
        // 10 000 rows from digits (MariaDB caps recursive CTEs at 1000
        // iterations by default).
        let rows = "WITH d (n) AS (SELECT 0 UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL \
                    SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL \
                    SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) \
                    SELECT 1 + a.n + 10 * b.n + 100 * c.n + 1000 * e.n AS n FROM d a, d b, d c, d e";
        let sql = format!("SELECT n, REPEAT('x', n % 300) AS pad FROM ({rows}) t ORDER BY n");
        let r = c.query(&sql).await.expect("text");
        assert_eq!(r.rows.len(), 10_000);
        for (k, row) in r.rows.iter().enumerate() {
            let n = k as i64 + 1;
            assert_eq!(row.i64(0), Some(n));
            assert_eq!(row.bytes(1).map(<[u8]>::len), Some((n % 300) as usize));
        }
        let sum: i64 = r.rows.iter().filter_map(|row| row.i64(0)).sum();
        assert_eq!(sum, 10_000 * 10_001 / 2);

        let r = c
            .exec(
                &sql.replace(") t ORDER", ") t WHERE n <= ? ORDER"),
                &[Value::from(10_000i64)],
            )
            .await
            .expect("binary");
        assert_eq!(r.rows.len(), 10_000);
        assert_eq!(r.rows[9_999].i64(0), Some(10_000));
        assert_eq!(r.rows[9_999].bytes(1).map(<[u8]>::len), Some(10_000 % 300));

        // One 3 MB value: one packet spanning many socket reads.
        let r = c
            .exec("SELECT REPEAT('y', ?)", &[Value::from(3_000_000i64)])
            .await
            .expect("big value");
        let big = r.rows[0].bytes(0).expect("bytes");
        assert_eq!(big.len(), 3_000_000);
        assert!(big.iter().all(|&b| b == b'y'));
        assert!(!c.is_broken());
    });
}

/// A statement on a pooled connection, its error as the pool's.
async fn pq(c: &mut PooledConn, sql: &str) -> Result<QueryResult, PoolError> {
    Ok(c.query(sql).await?)
}

/// Connections the server has open in database `db`.
async fn server_connections(c: &mut Connection, db: &str) -> i64 {
    let r = c
        .query(&format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '{db}'"
        ))
        .await
        .expect("processlist");
    r.rows[0].i64(0).expect("a count")
}

#[test]
#[ignore = "needs MariaDB (DMTEST_BACKEND=mysql)"]
fn the_pool_never_opens_more_than_its_size() {
    const BOUND_DB: &str = "dm_mysql_pool_bound";
    run_in(BOUND_DB, |opts| async move {
        let pool = Pool::new(opts.clone(), 2, Duration::from_secs(10));
        let in_use = Rc::new(Cell::new(0usize));
        let most_in_use = Rc::new(Cell::new(0usize));
        let most_on_server = Rc::new(Cell::new(0i64));
        let most_waiting = Rc::new(Cell::new(0usize));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (pool, in_use, most_in_use, most_on_server, most_waiting) = (
                pool.clone(),
                in_use.clone(),
                most_in_use.clone(),
                most_on_server.clone(),
                most_waiting.clone(),
            );
            tasks.push(glommio::spawn_local(async move {
                pool.run(async |c: &mut PooledConn| {
                    in_use.set(in_use.get() + 1);
                    most_in_use.set(most_in_use.get().max(in_use.get()));
                    let sql = format!(
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '{BOUND_DB}'"
                    );
                    let n = pq(c, &sql).await?.rows[0].i64(0).unwrap_or(-1);
                    most_on_server.set(most_on_server.get().max(n));
                    most_waiting.set(most_waiting.get().max(pool.figures().waiting));
                    assert!(pool.figures().open <= 2, "{:?}", pool.figures());
                    pq(c, "SELECT SLEEP(0.05)").await?;
                    in_use.set(in_use.get() - 1);
                    Ok::<_, PoolError>(())
                })
                .await
            }));
        }
        for t in tasks {
            t.await.expect("work");
        }
        let f = pool.figures();
        eprintln!("after 10 tasks on a pool of 2: {f:?}");
        assert_eq!(most_in_use.get(), 2);
        assert!(
            (1..=2).contains(&most_on_server.get()),
            "{}",
            most_on_server.get()
        );
        assert!(most_waiting.get() >= 1, "tasks had to wait");
        assert_eq!((f.open, f.idle, f.waiting), (2, 2, 0));
        assert_eq!((f.opened_total, f.dropped_broken_total), (2, 0));
        let mut admin = connect(&opts).await;
        // The admin connection itself is in the database too.
        assert_eq!(server_connections(&mut admin, BOUND_DB).await, 3);
    });
}

#[test]
#[ignore = "needs MariaDB (DMTEST_BACKEND=mysql)"]
fn a_waiter_gives_up_with_a_clear_error() {
    run(|opts| async move {
        let pool = Pool::new(opts, 1, Duration::from_millis(200));
        let held = pool.get().await.expect("the one connection");
        let t0 = Instant::now();
        let e = pool.get().await.expect_err("busy");
        let waited = t0.elapsed();
        assert!(matches!(e, PoolError::Busy { size: 1, .. }), "{e:?}");
        assert!(
            // It waited its whole timeout (and the held loan never came back).
            waited >= Duration::from_millis(190),
            "{waited:?}"
        );
        let message = e.to_string();
        eprintln!("a waiter's error: {message}");
        assert!(message.contains("busy") && message.contains("dm_mysql_client"));
        let e = pool
            .run(async |c: &mut PooledConn| pq(c, "SELECT 1").await)
            .await
            .expect_err("busy through run too");
        assert!(matches!(e, PoolError::Busy { .. }), "{e:?}");
        assert_eq!(pool.figures().busy_total, 2);
        assert_eq!(pool.figures().waiting, 0);
        held.release().await;
        pool.run(async |c: &mut PooledConn| pq(c, "SELECT 1").await)
            .await
            .expect("free again");
    });
}

#[test]
#[ignore = "needs MariaDB (DMTEST_BACKEND=mysql)"]
fn killed_idle_connections_are_replaced_unseen() {
    run(|opts| async move {
        let pool = Pool::new(opts.clone(), 2, Duration::from_secs(5));
        let a = pool.get().await.expect("a");
        let b = pool.get().await.expect("b");
        let killed = [a.connection_id(), b.connection_id()];
        a.release().await;
        b.release().await;
        assert_eq!(pool.figures().idle, 2);
        let mut admin = connect(&opts).await;
        for id in killed {
            admin.query(&format!("KILL {id}")).await.expect("kill");
        }
        glommio::timer::sleep(Duration::from_millis(100)).await;

        // Work outside a transaction, then a transaction: each meets a
        // killed connection first and runs again on a fresh one.
        let (id, n) = pool
            .run(async |c: &mut PooledConn| {
                let r = pq(c, "SELECT 7").await?;
                Ok::<_, PoolError>((c.connection_id(), r.rows[0].i64(0)))
            })
            .await
            .expect("no error seen");
        assert_eq!(n, Some(7));
        assert!(!killed.contains(&id));
        // The fresh connection went back on top of the idle ones (the most
        // recent is lent first): hold it, so the transaction gets the
        // other killed one.
        let fresh = pool.get().await.expect("the fresh one");
        assert_eq!(fresh.connection_id(), id);
        assert!(fresh.reused());
        let id = pool
            .transaction(async |c: &mut PooledConn| {
                assert!(c.in_transaction());
                pq(c, "SELECT 1").await?;
                Ok::<_, PoolError>(c.connection_id())
            })
            .await
            .expect("no error seen");
        assert!(!killed.contains(&id));
        fresh.release().await;
        let f = pool.figures();
        eprintln!("after two killed idle connections: {f:?}");
        assert_eq!(f.stale_retries_total, 2);
        assert_eq!(f.dropped_broken_total, 2);
        assert_eq!((f.open, f.opened_total), (2, 4));
    });
}

#[test]
#[ignore = "needs MariaDB (DMTEST_BACKEND=mysql)"]
fn a_transaction_left_open_does_not_leak() {
    run(|opts| async move {
        let mut admin = connect(&opts).await;
        admin
            .query("DROP TABLE IF EXISTS t_pool_leak")
            .await
            .expect("drop");
        admin
            .query("CREATE TABLE t_pool_leak (k INT PRIMARY KEY) ENGINE=InnoDB")
            .await
            .expect("create");
        let pool = Pool::new(opts, 1, Duration::from_secs(5));
        let first = pool
            .run(async |c: &mut PooledConn| {
                c.begin().await?;
                c.exec("INSERT INTO t_pool_leak VALUES (?)", &[1i64.into()])
                    .await?;
                assert!(c.in_transaction());
                Ok::<_, PoolError>(c.connection_id())
            })
            .await
            .expect("insert, no commit");
        let (id, open, rows) = pool
            .run(async |c: &mut PooledConn| {
                let r = pq(c, "SELECT COUNT(*) FROM t_pool_leak").await?;
                Ok::<_, PoolError>((c.connection_id(), c.in_transaction(), r.rows[0].i64(0)))
            })
            .await
            .expect("next borrower");
        assert_eq!(id, first, "rolled back and reused, not dropped");
        assert!(!open);
        assert_eq!(rows, Some(0), "the uncommitted row is gone");
        assert_eq!(pool.figures().dropped_broken_total, 0);

        // A loan dropped without `release` cannot roll back: the
        // connection is closed, and the transaction with it.
        let mut c = pool.get().await.expect("get");
        c.begin().await.expect("begin");
        c.exec("INSERT INTO t_pool_leak VALUES (?)", &[2i64.into()])
            .await
            .expect("insert");
        drop(c);
        assert_eq!(pool.figures().dropped_broken_total, 1);
        let rows = admin
            .query("SELECT COUNT(*) FROM t_pool_leak")
            .await
            .expect("count");
        assert_eq!(rows.rows[0].i64(0), Some(0));
    });
}

#[test]
#[ignore = "needs MariaDB (DMTEST_BACKEND=mysql)"]
fn a_timed_out_statement_is_killed_on_the_server() {
    run(|mut opts| async move {
        // The statement that times out waits for a row lock the admin
        // session holds: InnoDB keeps such a wait for
        // innodb_lock_wait_timeout (50 s) even after its client is gone,
        // so only the pool's KILL QUERY can end it while the lock is held.
        let mut admin = connect(&opts).await;
        admin
            .query("CREATE TABLE IF NOT EXISTS t_pool_kill (id INT PRIMARY KEY)")
            .await
            .expect("table");
        admin
            .query("INSERT IGNORE INTO t_pool_kill VALUES (1)")
            .await
            .expect("row");
        admin.begin().await.expect("begin");
        admin
            .query("SELECT id FROM t_pool_kill WHERE id = 1 FOR UPDATE")
            .await
            .expect("lock");
        let mut watcher = connect(&opts).await;
        opts.statement_timeout = Duration::from_millis(300);
        let pool = Pool::new(opts, 2, Duration::from_secs(5));
        let id = Rc::new(Cell::new(0u32));
        let e = pool
            .run(async |c: &mut PooledConn| {
                id.set(c.connection_id());
                pq(
                    c,
                    "SELECT id FROM t_pool_kill WHERE id = 1 FOR UPDATE /* pool timeout */",
                )
                .await
            })
            .await
            .expect_err("timeout");
        assert!(
            matches!(e, PoolError::Mysql(MysqlError::Timeout(_))),
            "{e:?}"
        );
        assert_eq!(pool.figures().dropped_broken_total, 1);
        let sql = format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE ID = {} AND INFO LIKE '%pool timeout%'",
            id.get()
        );
        // Gone while the lock is still held: the KILL ended it (bounded
        // wait, well inside the 50 s the lock wait would otherwise last).
        let t0 = Instant::now();
        loop {
            let r = watcher.query(&sql).await.expect("processlist");
            if r.rows[0].i64(0) == Some(0) {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the lock wait still runs: {:?}",
                pool.figures()
            );
            glommio::timer::sleep(Duration::from_millis(50)).await;
        }
        admin.rollback().await.expect("rollback");
        let f = pool.figures();
        eprintln!("after a timed-out statement: {f:?} ({:?})", t0.elapsed());
        assert_eq!(f.kills_total, 1);
        // The KILL's connection went back to the pool.
        assert_eq!((f.open, f.idle), (1, 1));
        pool.run(async |c: &mut PooledConn| pq(c, "SELECT 1").await)
            .await
            .expect("the pool goes on");
    });
}

#[test]
#[ignore = "needs MariaDB (DMTEST_BACKEND=mysql)"]
fn a_deadlock_is_retried_to_success() {
    run(|opts| async move {
        let mut admin = connect(&opts).await;
        admin
            .query("DROP TABLE IF EXISTS t_pool_deadlock")
            .await
            .expect("drop");
        admin
            .query("CREATE TABLE t_pool_deadlock (k INT PRIMARY KEY, v INT) ENGINE=InnoDB")
            .await
            .expect("create");
        admin
            .query("INSERT INTO t_pool_deadlock VALUES (1, 0), (2, 0)")
            .await
            .expect("rows");
        let pool = Pool::new(opts, 2, Duration::from_secs(5));
        // Each transaction locks its first row, waits (on its first try
        // only) until the other has locked its own, then wants the other's.
        let locked = Rc::new(Cell::new(0u32));
        let tries = Rc::new(Cell::new(0u32));
        let mut tasks = Vec::new();
        for (first, second) in [(1i64, 2i64), (2, 1)] {
            let (pool, locked, tries) = (pool.clone(), locked.clone(), tries.clone());
            tasks.push(glommio::spawn_local(async move {
                let mut attempt = 0;
                pool.transaction(async |c: &mut PooledConn| {
                    attempt += 1;
                    tries.set(tries.get() + 1);
                    let update = "UPDATE t_pool_deadlock SET v = v + 1 WHERE k = ?";
                    c.exec(update, &[first.into()]).await?;
                    if attempt == 1 {
                        locked.set(locked.get() + 1);
                        while locked.get() < 2 {
                            glommio::timer::sleep(Duration::from_millis(5)).await;
                        }
                    }
                    c.exec(update, &[second.into()]).await?;
                    Ok::<_, PoolError>(attempt)
                })
                .await
            }));
        }
        let mut attempts = Vec::new();
        for t in tasks {
            attempts.push(t.await.expect("both succeed in the end"));
        }
        attempts.sort_unstable();
        eprintln!("attempts: {attempts:?}, figures: {:?}", pool.figures());
        assert_eq!(attempts, vec![1, 2], "the deadlock's loser ran again");
        assert_eq!(tries.get(), 3);
        assert_eq!(pool.figures().lock_retries_total, 1);
        let r = admin
            .query("SELECT k, v FROM t_pool_deadlock ORDER BY k")
            .await
            .expect("rows");
        assert_eq!(r.rows[0].i64(1), Some(2));
        assert_eq!(r.rows[1].i64(1), Some(2));
    });
}
