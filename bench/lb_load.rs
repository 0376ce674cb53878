//! `dm-bench lb-load`: the bulk loader of the leaderboard bench. It writes
//! players 1..=N and one record each on a board straight into the game's
//! SQL database, in large transactions, so that `lb-write` and `lb-read`
//! (`--lb-players N`) can run against a million records without
//! registering a million players through the server (an argon2id hash
//! each).
//!
//! What it writes, on either backend (the columns of migrations 1, 7
//! and 8, `src/store/migrations.rs`):
//! - `players`: ids 1..=N, username `lb_` and the id in 9 digits, status
//!   `active`, the password of the seeded players (`bench-password-1`,
//!   one argon2id hash shared by every row); a player whose id is already
//!   there is kept as it is;
//! - `leaderboards`: the board, when missing, as `POST
//!   /api/v1/leaderboards` makes it by default (sort `desc`, operator
//!   `best`, reset `never`, not player-writable); an existing board that
//!   resets is refused (the loader writes period 0, a board that never
//!   resets);
//! - `leaderboard_records`: (board, period 0, player) for each player, a
//!   score from 0 to 10^9 that is a fixed function of the id, subscore 0,
//!   written now; a record already there is replaced.
//!
//! The server must be stopped: on SQLite the loader takes the file for
//! itself (locking mode EXCLUSIVE), and a file the server has open is
//! refused; on MySQL its writes would be invisible to ranks the server
//! keeps in memory, built at start.

use datamiddleware::config::redact;
use mysql::prelude::Queryable;
use rusqlite::{params, OpenFlags, OptionalExtension};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The tables the loader writes: made by the server's migrations.
const TABLES: [&str; 3] = ["players", "leaderboards", "leaderboard_records"];

/// Rows per multi-row statement on MySQL.
const MYSQL_ROWS_PER_STATEMENT: u64 = 1000;

/// `dm-bench lb-load`'s options.
#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// The game's database: a SQLite file (`PATH`, or `sqlite://PATH` as
    /// in the game's `url`) or `mysql://user:pass@host:port/db`. The
    /// server must have started on it once (its migrations make the
    /// tables) and must be stopped while loading.
    #[arg(long, value_name = "PATH|URL")]
    pub db: String,
    /// Players to write, ids 1..=N, each with a record on the board.
    #[arg(long, value_name = "N")]
    pub lb_players: u64,
    /// The board (created when missing: sort desc, operator best, never
    /// resets).
    #[arg(long, default_value = "bench")]
    pub board: String,
    /// Players (and their records) per transaction.
    #[arg(long, default_value_t = 100_000)]
    pub batch: u64,
    /// Print JSON instead of a line.
    #[arg(long)]
    pub json: bool,
}

/// What a load did.
#[derive(Debug, PartialEq)]
pub struct Loaded {
    /// `sqlite` or `mysql`.
    pub backend: &'static str,
    /// The board.
    pub board: String,
    /// Whether the board row was made.
    pub created_board: bool,
    /// Players 1..=N (all there afterwards).
    pub players: u64,
    /// Of them, rows inserted by this load (the others were there).
    pub new_players: u64,
    /// Records written (inserted or replaced).
    pub records: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl Loaded {
    /// The one line (or JSON) dm-bench prints.
    pub fn report(&self, as_json: bool) -> String {
        let per_s = self.players as f64 / self.seconds.max(1e-9);
        if as_json {
            return json!({
                "backend": self.backend,
                "board": self.board,
                "created_board": self.created_board,
                "players": self.players,
                "new_players": self.new_players,
                "records": self.records,
                "seconds": self.seconds,
                "players_per_s": per_s,
            })
            .to_string();
        }
        format!(
            "lb-load ({}): board `{}`{}, players 1..={} ({} new) and {} records in {:.2} s ({:.0} players/s)",
            self.backend,
            self.board,
            if self.created_board { " (created)" } else { "" },
            self.players,
            self.new_players,
            self.records,
            self.seconds,
            per_s
        )
    }
}

/// Where the rows go.
#[derive(Debug, PartialEq)]
enum Target {
    Sqlite(PathBuf),
    Mysql(String),
}

fn target(db: &str) -> Result<Target, String> {
    if let Some(path) = db.strip_prefix("sqlite://") {
        return Ok(Target::Sqlite(PathBuf::from(path)));
    }
    if db.starts_with("mysql://") {
        return Ok(Target::Mysql(db.to_string()));
    }
    if let Some((scheme, _)) = db.split_once("://") {
        return Err(format!(
            "--db: unsupported scheme `{scheme}://` (a SQLite file path, sqlite://PATH or mysql://...)"
        ));
    }
    if db.is_empty() {
        return Err("--db: empty".into());
    }
    Ok(Target::Sqlite(PathBuf::from(db)))
}

/// Player `id`'s username: `lb_` and 9 digits, so that the usernames'
/// index fills in order.
pub fn username(id: u64) -> String {
    format!("lb_{id:09}")
}

/// Player `id`'s loaded score: 0 to 10^9, a fixed function of the id.
pub fn score(id: u64) -> i64 {
    (mix(id ^ 0x6c62_6c6f_6164) % 1_000_000_000) as i64
}

/// splitmix64.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The rows to write.
struct Spec<'a> {
    board: &'a str,
    players: u64,
    batch: u64,
    password_hash: &'a str,
    now_ms: i64,
}

/// Runs the load `args` describe; `password` is the loaded players'.
pub fn run(args: &LoadArgs, password: &str) -> Result<Loaded, String> {
    datamiddleware::validate::item_id(&args.board)
        .map_err(|_| "--board must be 1 to 64 of letters, digits, _ - .".to_string())?;
    if args.lb_players == 0 || args.lb_players > 1_000_000_000 {
        return Err("--lb-players must be 1 to 10^9".into());
    }
    if args.batch == 0 {
        return Err("--batch must be >= 1".into());
    }
    let target = target(&args.db)?;
    let password_hash = datamiddleware::service::auth::hash_password(password)
        .map_err(|_| "cannot hash the players' password".to_string())?;
    let spec = Spec {
        board: &args.board,
        players: args.lb_players,
        batch: args.batch,
        password_hash: &password_hash,
        now_ms: datamiddleware::clock::now_ms(),
    };
    let t0 = Instant::now();
    let (backend, (created_board, new_players)) = match &target {
        Target::Sqlite(path) => ("sqlite", load_sqlite(path, &spec)?),
        Target::Mysql(url) => ("mysql", load_mysql(url, &spec)?),
    };
    Ok(Loaded {
        backend,
        board: args.board.clone(),
        created_board,
        players: args.lb_players,
        new_players,
        records: args.lb_players,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The progress line when a batch of `batch` ending at `done` crossed a
/// tenth of the load (on stderr).
fn progress(done: u64, batch: u64, total: u64, t0: Instant) {
    let tenth = |n: u64| n * 10 / total;
    if total >= 100_000 && tenth(done) > tenth(done.saturating_sub(batch)) {
        eprintln!(
            "dm-bench: lb-load {done} of {total} players ({:.1} s)",
            t0.elapsed().as_secs_f64()
        );
    }
}

/// What a board row says, when there is one: refuses a board that resets.
fn check_board(board: &str, found: Option<(String, String, String)>) -> Result<bool, String> {
    let Some((sort, operator, reset)) = found else {
        return Ok(false);
    };
    if reset != "never" {
        return Err(format!(
            "board `{board}` exists with reset `{reset}`: the loader writes period 0, a board \
             that never resets (use another --board)"
        ));
    }
    if sort != "desc" || operator != "best" {
        eprintln!("dm-bench: note: board `{board}` exists with sort {sort}, operator {operator}");
    }
    Ok(true)
}

fn missing_tables(found: &[String]) -> Result<(), String> {
    let missing: Vec<&str> = TABLES
        .iter()
        .copied()
        .filter(|t| !found.iter().any(|f| f == t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the database has no table {}: start the server on it once first (its migrations make \
         them; leaderboards need migration 8), then stop it and load",
        missing.join(", ")
    ))
}

/// (board created, players inserted).
fn load_sqlite(path: &Path, spec: &Spec) -> Result<(bool, u64), String> {
    let shown = path.display();
    if !path.is_file() {
        return Err(format!(
            "no SQLite database at {shown}: give the game's database file (the path of its \
             sqlite:// url, relative to the server's directory); start the server on it once \
             first so that it makes the tables"
        ));
    }
    let mut conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open {shown}: {e}"))?;
    let err = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => format!(
            "{shown} is in use by another process: stop the server (SQLite is loaded with the \
             server stopped)"
        ),
        _ => format!("{shown}: {e}"),
    };
    conn.busy_timeout(Duration::from_millis(500)).map_err(err)?;
    // The file for this connection alone, until it closes: a server that
    // has it open (WAL, shared memory) makes the first read fail.
    conn.execute_batch(
        "PRAGMA locking_mode = EXCLUSIVE; PRAGMA synchronous = OFF; \
         PRAGMA cache_size = -262144; PRAGMA temp_store = MEMORY;",
    )
    .map_err(err)?;
    let tables: Vec<String> = {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .map_err(err)?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)?
    };
    missing_tables(&tables)?;
    // The exclusive lock itself (the read above may have been served
    // under a shared one).
    conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;")
        .map_err(err)?;
    let found = conn
        .query_row(
            "SELECT sort, operator, reset FROM leaderboards WHERE id = ?",
            [spec.board],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(err)?;
    let created = !check_board(spec.board, found)?;
    if created {
        conn.execute(
            "INSERT INTO leaderboards (id, sort, operator, reset, player_writable, created_at) \
             VALUES (?, 'desc', 'best', 'never', 0, ?)",
            params![spec.board, spec.now_ms],
        )
        .map_err(err)?;
    }
    let t0 = Instant::now();
    let mut inserted = 0;
    let mut first = 1;
    while first <= spec.players {
        let last = (first + spec.batch - 1).min(spec.players);
        let tx = conn.transaction().map_err(err)?;
        {
            let mut player = tx
                .prepare(
                    "INSERT OR IGNORE INTO players (id, username, password_hash, status, \
                     created_at, updated_at) VALUES (?, ?, ?, 'active', ?, ?)",
                )
                .map_err(err)?;
            for id in first..=last {
                inserted += player
                    .execute(params![
                        id as i64,
                        username(id),
                        spec.password_hash,
                        spec.now_ms,
                        spec.now_ms
                    ])
                    .map_err(err)? as u64;
            }
            let mut record = tx
                .prepare(
                    "INSERT INTO leaderboard_records (board_id, period, player_id, score, \
                     subscore, written_at, last_write) VALUES (?, 0, ?, ?, 0, ?, '') \
                     ON CONFLICT (board_id, period, player_id) DO UPDATE SET \
                     score = excluded.score, subscore = 0, written_at = excluded.written_at, \
                     last_write = ''",
                )
                .map_err(err)?;
            for id in first..=last {
                record
                    .execute(params![spec.board, id as i64, score(id), spec.now_ms])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        progress(last, last + 1 - first, spec.players, t0);
        first = last + 1;
    }
    let count = |sql: &str| -> Result<u64, String> {
        conn.query_row(sql, [spec.players as i64], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(err)
    };
    verify(
        spec.players,
        count("SELECT COUNT(*) FROM players WHERE id BETWEEN 1 AND ?")?,
        count("SELECT COUNT(*) FROM players WHERE id BETWEEN 1 AND ? AND status = 'active'")?,
    )?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(err)?;
    Ok((created, inserted))
}

/// Every id 1..=N must be a player (a username `lb_...` taken by another
/// id keeps its own out); inactive ones do not show in ranks.
fn verify(players: u64, present: u64, active: u64) -> Result<(), String> {
    if present < players {
        return Err(format!(
            "only {present} of the player ids 1..={players} exist after the load: usernames \
             lb_... are taken by other ids in this database (load into a database of its own)"
        ));
    }
    if active < players {
        eprintln!(
            "dm-bench: note: {} of the players 1..={players} are not active: their records do \
             not show",
            players - active
        );
    }
    Ok(())
}

/// (board created, players inserted).
fn load_mysql(url: &str, spec: &Spec) -> Result<(bool, u64), String> {
    let shown = redact(url);
    let mut conn =
        crate::direct_backend::open(url).map_err(|e| format!("cannot connect to {shown}: {e}"))?;
    let err = |e: mysql::Error| format!("{shown}: {e}");
    let mut tables = Vec::new();
    for t in TABLES {
        if let Some(name) = conn
            .query_first::<String, _>(format!("SHOW TABLES LIKE '{t}'"))
            .map_err(err)?
        {
            tables.push(name);
        }
    }
    missing_tables(&tables)?;
    // Inlined below: generated names, digits and the PHC string.
    if spec.password_hash.contains(['\'', '\\']) {
        return Err("the password hash has a quote".into());
    }
    let found: Option<(String, String, String)> = conn
        .exec_first(
            "SELECT sort, operator, reset FROM leaderboards WHERE id = ?",
            (spec.board,),
        )
        .map_err(err)?;
    let created = !check_board(spec.board, found)?;
    if created {
        conn.exec_drop(
            "INSERT INTO leaderboards (id, sort, operator, reset, player_writable, created_at) \
             VALUES (?, 'desc', 'best', 'never', 0, ?)",
            (spec.board, spec.now_ms),
        )
        .map_err(err)?;
    }
    let board = spec.board; // [A-Za-z0-9_.-]: checked in `run`.
    let t0 = Instant::now();
    let mut inserted = 0;
    let mut first = 1;
    while first <= spec.players {
        let last = (first + spec.batch - 1).min(spec.players);
        conn.query_drop("START TRANSACTION").map_err(err)?;
        let mut from = first;
        while from <= last {
            let to = (from + MYSQL_ROWS_PER_STATEMENT - 1).min(last);
            let mut players = String::from(
                "INSERT IGNORE INTO players (id, username, password_hash, status, created_at, \
                 updated_at) VALUES ",
            );
            let mut records = String::from(
                "INSERT INTO leaderboard_records (board_id, period, player_id, score, subscore, \
                 written_at, last_write) VALUES ",
            );
            for id in from..=to {
                let sep = if id == from { "" } else { "," };
                let now = spec.now_ms;
                players.push_str(&format!(
                    "{sep}({id},'{}','{}','active',{now},{now})",
                    username(id),
                    spec.password_hash
                ));
                records.push_str(&format!("{sep}('{board}',0,{id},{},0,{now},'')", score(id)));
            }
            records.push_str(
                " ON DUPLICATE KEY UPDATE score = VALUES(score), subscore = 0, \
                 written_at = VALUES(written_at), last_write = ''",
            );
            conn.query_drop(&players).map_err(err)?;
            inserted += conn.affected_rows();
            conn.query_drop(&records).map_err(err)?;
            from = to + 1;
        }
        conn.query_drop("COMMIT").map_err(err)?;
        progress(last, last + 1 - first, spec.players, t0);
        first = last + 1;
    }
    let mut count = |sql: &str| -> Result<u64, String> {
        conn.exec_first::<u64, _, _>(sql, (spec.players,))
            .map_err(err)
            .map(Option::unwrap_or_default)
    };
    let present = count("SELECT COUNT(*) FROM players WHERE id BETWEEN 1 AND ?")?;
    let active =
        count("SELECT COUNT(*) FROM players WHERE id BETWEEN 1 AND ? AND status = 'active'")?;
    verify(spec.players, present, active)?;
    Ok((created, inserted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datamiddleware::store::migrations::SQLITE;

    fn args(db: &str, n: u64) -> LoadArgs {
        LoadArgs {
            db: db.to_string(),
            lb_players: n,
            board: "bench".into(),
            batch: 300,
            json: false,
        }
    }

    /// A SQLite file at the server's latest schema, in a directory of its own.
    fn migrated(name: &str) -> (PathBuf, rusqlite::Connection) {
        let dir = std::env::temp_dir().join(format!("dm-lb-load-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("game1.db");
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch("PRAGMA journal_mode = WAL")
            .expect("wal");
        for m in SQLITE {
            for s in m.statements {
                conn.execute_batch(s).expect("migration");
            }
        }
        (path, conn)
    }

    #[test]
    fn db_names_a_file_or_a_url() {
        assert_eq!(
            target("data/game1.db"),
            Ok(Target::Sqlite("data/game1.db".into()))
        );
        assert_eq!(
            target("sqlite://data/game1.db"),
            Ok(Target::Sqlite("data/game1.db".into()))
        );
        assert_eq!(
            target("mysql://u:p@127.0.0.1:3306/db"),
            Ok(Target::Mysql("mysql://u:p@127.0.0.1:3306/db".into()))
        );
        assert!(target("postgres://x").is_err());
        assert!(target("").is_err());
    }

    #[test]
    fn loads_players_records_and_the_board_and_loads_again() {
        let (path, conn) = migrated("load");
        // A player registered before the load keeps its row.
        conn.execute(
            "INSERT INTO players (id, username, password_hash, created_at, updated_at) \
             VALUES (2, 'someone', 'x', 1, 1)",
            [],
        )
        .expect("player");
        drop(conn);
        let db = path.to_str().expect("utf-8").to_string();
        let loaded = run(&args(&db, 1000), "bench-password-1").expect("loads");
        assert!(loaded.created_board);
        assert_eq!(
            (loaded.players, loaded.new_players, loaded.records),
            (1000, 999, 1000)
        );
        let again =
            run(&args(&format!("sqlite://{db}"), 1000), "bench-password-1").expect("loads again");
        assert!(!again.created_board);
        assert_eq!(again.new_players, 0);
        let conn = rusqlite::Connection::open(&path).expect("open");
        let one = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
        assert_eq!(one("SELECT COUNT(*) FROM players"), 1000);
        assert_eq!(
            one("SELECT COUNT(*) FROM leaderboard_records WHERE board_id = 'bench' AND period = 0"),
            1000
        );
        assert_eq!(
            one(
                "SELECT COUNT(*) FROM leaderboards WHERE id = 'bench' AND sort = 'desc' \
                 AND operator = 'best' AND reset = 'never'"
            ),
            1
        );
        assert_eq!(
            one("SELECT score FROM leaderboard_records WHERE player_id = 7"),
            score(7)
        );
        let (name, hash): (String, String) = conn
            .query_row(
                "SELECT username, password_hash FROM players WHERE id = 1000",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("player 1000");
        assert_eq!(name, "lb_000001000");
        assert!(datamiddleware::validate::username(&name).is_ok());
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        // A registration after the load gets the next id.
        conn.execute(
            "INSERT INTO players (username, password_hash, created_at, updated_at) \
             VALUES ('later', 'x', 1, 1)",
            [],
        )
        .expect("later");
        assert_eq!(one("SELECT MAX(id) FROM players"), 1001);
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }

    #[test]
    fn refuses_a_bad_path_missing_tables_a_database_in_use_and_a_board_that_resets() {
        let e = run(&args("/nonexistent/dir/game1.db", 10), "pw-123456").unwrap_err();
        assert!(e.contains("no SQLite database"), "{e}");

        let (path, conn) = migrated("refusals");
        let db = path.to_str().expect("utf-8").to_string();
        // A connection that has it open in WAL mode, as the server's pool.
        let _: i64 = conn
            .query_row("SELECT COUNT(*) FROM players", [], |r| r.get(0))
            .expect("read");
        let e = run(&args(&db, 10), "pw-123456").unwrap_err();
        assert!(e.contains("stop the server"), "{e}");
        conn.execute(
            "INSERT INTO leaderboards VALUES ('daily', 'desc', 'best', 'daily', 0, 1)",
            [],
        )
        .expect("board");
        drop(conn);
        let mut daily = args(&db, 10);
        daily.board = "daily".into();
        let e = run(&daily, "pw-123456").unwrap_err();
        assert!(e.contains("reset `daily`"), "{e}");
        let mut bad = args(&db, 10);
        bad.board = "bad board!".into();
        assert!(run(&bad, "pw-123456").is_err());
        assert!(run(&args(&db, 0), "pw-123456").is_err());

        // A file the server never started on.
        let empty = path.with_file_name("empty.db");
        rusqlite::Connection::open(&empty)
            .and_then(|c| c.execute_batch("CREATE TABLE players (id INTEGER)"))
            .expect("empty");
        let e = run(&args(empty.to_str().expect("utf-8"), 10), "pw-123456").unwrap_err();
        assert!(
            e.contains("no table leaderboards, leaderboard_records"),
            "{e}"
        );
        // Not a database at all.
        let text = path.with_file_name("notes.txt");
        std::fs::write(&text, "not a database, just some text that is long enough").expect("txt");
        assert!(run(&args(text.to_str().expect("utf-8"), 10), "pw-123456").is_err());
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }

    #[test]
    fn scores_and_usernames_are_fixed_per_id() {
        assert_eq!(score(42), score(42));
        assert!((1..10_000).all(|id| (0..1_000_000_000).contains(&score(id))));
        let distinct: std::collections::HashSet<i64> = (1..10_000).map(score).collect();
        assert!(distinct.len() > 9_900);
        assert_eq!(username(1), "lb_000000001");
    }
}
