//! The embedded default backend: one SQLite file per game, in WAL mode.
//!
//! A shard's `SqliteStore` keeps a small pool of connections that only that
//! shard's blocking threads use. SQLite serialises writers itself; write
//! transactions start with `BEGIN IMMEDIATE` so two writers never deadlock on
//! a lock upgrade, and `busy_timeout` makes a writer wait its turn.

use super::migrations::{Migration, SQLITE};
use super::{NewPlayer, Player, PlayerCredentials, PlayerStatus, Store, StoreError};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior};
use std::path::Path;
use std::sync::Mutex;

/// A pool of connections to one SQLite database file.
pub struct SqliteStore {
    path: String,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl SqliteStore {
    /// Opens (creating the file and its directory when missing) `path`.
    pub fn open(path: &str, pool_size: usize) -> Result<SqliteStore, StoreError> {
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
        let store = SqliteStore {
            path: path.to_string(),
            idle: Mutex::new(Vec::new()),
            max_idle: pool_size.max(1),
        };
        let conn = store.connect()?;
        store.give_back(conn);
        Ok(store)
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open(&self.path)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.path)))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(map_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
        .map_err(map_err)?;
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

    /// Runs `f` with a pooled connection, returning it afterwards.
    fn with<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self.take()?;
        let result = f(&mut conn);
        self.give_back(conn);
        result
    }
}

fn map_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::CannotOpen => {
                return StoreError::Unavailable(e.to_string())
            }
            _ => {}
        }
    }
    StoreError::Internal(e.to_string())
}

const PLAYER_COLUMNS: &str = "id, username, email, nickname, avatar, level, exp, gold, diamonds, \
     status, version, created_at, updated_at, last_login_at";

fn player_from_row(r: &Row<'_>) -> rusqlite::Result<Player> {
    let status: String = r.get(9)?;
    Ok(Player {
        id: r.get(0)?,
        username: r.get(1)?,
        email: r.get(2)?,
        nickname: r.get(3)?,
        avatar: r.get(4)?,
        level: r.get(5)?,
        exp: r.get(6)?,
        gold: r.get(7)?,
        diamonds: r.get(8)?,
        status: PlayerStatus::parse(&status).unwrap_or(PlayerStatus::Deleted),
        version: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
        last_login_at: r.get(13)?,
    })
}

fn apply(conn: &mut Connection, m: &Migration) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    let done: Option<u32> = tx
        .query_row(
            "SELECT version FROM schema_migrations WHERE version = ?1",
            params![m.version],
            |r| r.get(0),
        )
        .optional()
        .map_err(map_err)?;
    if done.is_some() {
        return Ok(());
    }
    for sql in m.statements {
        tx.execute_batch(sql).map_err(map_err)?;
    }
    tx.execute(
        "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?1, ?2, ?3)",
        params![m.version, m.description, crate::clock::now_ms()],
    )
    .map_err(map_err)?;
    tx.commit().map_err(map_err)
}

impl Store for SqliteStore {
    fn migrate(&self) -> Result<u32, StoreError> {
        self.with(|conn| {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version INTEGER PRIMARY KEY,
                    description TEXT NOT NULL,
                    applied_at INTEGER NOT NULL)",
            )
            .map_err(map_err)?;
            let mut reached = 0;
            for m in SQLITE {
                apply(conn, m)?;
                reached = m.version;
            }
            Ok(reached)
        })
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map(|_| ())
                .map_err(map_err)
        })
    }

    fn create_player(&self, new: &NewPlayer) -> Result<Player, StoreError> {
        self.with(|conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(map_err)?;
            let inserted = tx.execute(
                "INSERT INTO players (username, password_hash, email, nickname, gold, diamonds, \
                 created_at, updated_at) VALUES (?1, ?2, ?3, ?1, ?4, ?5, ?6, ?6)",
                params![
                    new.username,
                    new.password_hash,
                    new.email,
                    new.signup_gold,
                    new.signup_diamonds,
                    new.now_ms
                ],
            );
            match inserted {
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == ErrorCode::ConstraintViolation =>
                {
                    return Err(StoreError::Conflict("username"))
                }
                other => other.map_err(map_err)?,
            };
            let id = tx.last_insert_rowid();
            for (currency, amount) in [("gold", new.signup_gold), ("diamonds", new.signup_diamonds)]
            {
                tx.execute(
                    "INSERT INTO ledger (player_id, currency, delta, balance_after, reason, \
                     reference, created_at) VALUES (?1, ?2, ?3, ?3, 'signup', 'signup_grant', ?4)",
                    params![id, currency, amount, new.now_ms],
                )
                .map_err(map_err)?;
            }
            let player = tx
                .query_row(
                    &format!("SELECT {PLAYER_COLUMNS} FROM players WHERE id = ?1"),
                    params![id],
                    player_from_row,
                )
                .map_err(map_err)?;
            tx.commit().map_err(map_err)?;
            Ok(player)
        })
    }

    fn player(&self, id: i64) -> Result<Option<Player>, StoreError> {
        self.with(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {PLAYER_COLUMNS} FROM players WHERE id = ?1"
            ))
            .and_then(|mut st| st.query_row(params![id], player_from_row).optional())
            .map_err(map_err)
        })
    }

    fn credentials(&self, username: &str) -> Result<Option<PlayerCredentials>, StoreError> {
        self.with(|conn| {
            conn.prepare_cached("SELECT id, password_hash, status FROM players WHERE username = ?1")
                .and_then(|mut st| {
                    st.query_row(params![username], |r| {
                        let status: String = r.get(2)?;
                        Ok(PlayerCredentials {
                            id: r.get(0)?,
                            password_hash: r.get(1)?,
                            status: PlayerStatus::parse(&status).unwrap_or(PlayerStatus::Deleted),
                        })
                    })
                    .optional()
                })
                .map_err(map_err)
        })
    }

    fn record_login(&self, id: i64, now_ms: i64) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE players SET last_login_at = ?2 WHERE id = ?1",
                params![id, now_ms],
            )
            .map(|_| ())
            .map_err(map_err)
        })
    }

    fn create_session(
        &self,
        session_id: &str,
        player_id: i64,
        refresh_hash: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO sessions (session_id, player_id, refresh_hash, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![session_id, player_id, refresh_hash, now_ms, expires_at_ms],
            )
            .map(|_| ())
            .map_err(map_err)
        })
    }

    fn player_count(&self) -> Result<i64, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT COUNT(*) FROM players", [], |r| r.get(0))
                .map_err(map_err)
        })
    }
}
