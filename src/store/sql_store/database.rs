//! The database as a whole, not one domain's rows: migrations, reachability,
//! the durability check at start-up, the stats counts and the replication
//! heartbeat ([`DatabaseStore`]). Kept apart from the business domains so
//! their files hold only business transactions.

use super::{count, row_of, SqlStore};
use crate::store::migrations::Migration;
use crate::store::sql::{Backend, Dialect, SqlConn, SqlValue};
use crate::store::{DatabaseStore, Durability, GameStats, StoreError, StoreFuture};

/// Whether a MySQL primary's settings make every commit durable against a
/// power loss — the redo log flushed at each commit, and the binary log too
/// when it is on (crash recovery rolls back what the binary log lost) — or
/// what is missing.
fn mysql_durable(flush_log: i64, log_bin: i64, sync_binlog: i64) -> Result<(), String> {
    let mut missing = Vec::new();
    if flush_log != 1 {
        missing.push(format!(
            "innodb_flush_log_at_trx_commit = {flush_log} (needs 1)"
        ));
    }
    if log_bin != 0 && sync_binlog != 1 {
        missing.push(format!(
            "sync_binlog = {sync_binlog} (needs 1 while the binary log is on)"
        ));
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the MySQL primary may lose acknowledged writes to a power loss: {}; set that on \
         the server, or durability = \"normal\" for this game",
        missing.join(", ")
    ))
}

/// How long a starting node waits for another one's migrations (seconds).
const MIGRATION_LOCK_WAIT_S: i64 = 120;

/// Applies one migration unless `schema_migrations` records it.
async fn apply_migration(c: &mut dyn SqlConn, m: &Migration) -> Result<(), StoreError> {
    let version = m.version as i64;
    let done = c
        .query_one(
            "SELECT version FROM schema_migrations WHERE version = ?",
            args![version],
        )
        .await?;
    if done.is_some() {
        return Ok(());
    }
    for sql in m.statements {
        c.exec(sql, &[]).await?;
    }
    c.exec(
        "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
        args![version, m.description, crate::clock::now_ms()],
    )
    .await
    .map(|_| ())
}

impl<B: Backend> DatabaseStore for SqlStore<B> {
    fn migrate(&self) -> StoreFuture<'_, u32> {
        Box::pin(async move {
            let migrations = self.backend.migrations();
            let dialect = self
                .backend
                .with_conn(async |c| {
                    let ddl = match c.dialect() {
                        Dialect::Sqlite => "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL)",
                        Dialect::Mysql => "CREATE TABLE IF NOT EXISTS schema_migrations (version INT PRIMARY KEY, description VARCHAR(255) NOT NULL, applied_at BIGINT NOT NULL)",
                    };
                    c.exec(ddl, &[]).await?;
                    Ok(c.dialect())
                })
                .await?;
            match dialect {
                // Each step in a transaction of its own, which SQLite's DDL
                // keeps whole; writers of one file take turns on its lock.
                Dialect::Sqlite => {
                    for m in migrations {
                        self.write(async |c| apply_migration(c, m).await).await?;
                    }
                }
                // MySQL commits each DDL statement at once, so two nodes
                // starting together on an empty database would both create
                // the same table (1050): the steps run on one connection
                // under a named lock, and a node that waited finds them done.
                Dialect::Mysql => {
                    self.backend
                        .with_conn(async |c| {
                            let held = c
                                .query_one(
                                    "SELECT GET_LOCK('datamiddleware.migrations', ?)",
                                    args![MIGRATION_LOCK_WAIT_S],
                                )
                                .await?
                                .map(|r| r.int(0).unwrap_or(0));
                            if held != Some(1) {
                                return Err(StoreError::Unavailable(format!(
                                    "another node held the migration lock for {MIGRATION_LOCK_WAIT_S} s"
                                )));
                            }
                            let mut applied = Ok(());
                            for m in migrations {
                                applied = apply_migration(c, m).await;
                                if applied.is_err() {
                                    break;
                                }
                            }
                            // Released also when a step failed; a dropped
                            // connection releases it too.
                            c.query("SELECT RELEASE_LOCK('datamiddleware.migrations')", &[])
                                .await?;
                            applied
                        })
                        .await?;
                }
            }
            Ok(migrations.last().map_or(0, |m| m.version))
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.backend
                .with_conn(async |c| c.query("SELECT 1", &[]).await.map(|_| ()))
                .await
        })
    }

    fn check_durability(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let wanted = self.backend.durability();
            self.backend
                .with_conn(async |c| match c.dialect() {
                    Dialect::Sqlite => {
                        let level = match c.query_one("PRAGMA synchronous", &[]).await? {
                            Some(r) => row_of("PRAGMA synchronous", &r, |r| r.int(0))?,
                            None => -1,
                        };
                        let expected = match wanted {
                            Durability::Full => 2,
                            Durability::Normal => 1,
                        };
                        if level == expected {
                            Ok(())
                        } else {
                            Err(StoreError::Internal(format!(
                                "SQLite runs with synchronous = {level}, not {expected}"
                            )))
                        }
                    }
                    // With "normal" the server's own settings are trusted.
                    Dialect::Mysql if wanted == Durability::Normal => Ok(()),
                    Dialect::Mysql => {
                        let row = c
                            .query_one(
                                "SELECT CAST(@@innodb_flush_log_at_trx_commit AS SIGNED), \
                     CAST(@@log_bin AS SIGNED), CAST(@@sync_binlog AS SIGNED)",
                                &[],
                            )
                            .await?;
                        let (flush_log, log_bin, sync_binlog) = match row {
                            Some(r) => row_of("server variables", &r, |r| {
                                Ok((r.int(0)?, r.int(1)?, r.int(2)?))
                            })?,
                            None => return Err(StoreError::Internal("no server variables".into())),
                        };
                        mysql_durable(flush_log, log_bin, sync_binlog).map_err(StoreError::Internal)
                    }
                })
                .await
        })
    }

    fn game_stats(&self) -> StoreFuture<'_, GameStats> {
        Box::pin(self.read(async move |c| {
            Ok(GameStats {
                players: count(c, "SELECT COUNT(*) FROM players", &[]).await?,
                active_players: count(
                    c,
                    "SELECT COUNT(*) FROM players WHERE status = 'active'",
                    &[],
                )
                .await?,
                orders: count(c, "SELECT COUNT(*) FROM orders", &[]).await?,
                paid_orders: count(c, "SELECT COUNT(*) FROM orders WHERE status = 'paid'", &[])
                    .await?,
                items: count(
                    c,
                    "SELECT COUNT(*) FROM item_defs WHERE status = 'active'",
                    &[],
                )
                .await?,
            })
        }))
    }

    fn write_heartbeat(&self, now_ms: i64) -> StoreFuture<'_, ()> {
        Box::pin(self.write(async move |c| {
            c.exec(
                "UPDATE dm_heartbeat SET ts_ms = ? WHERE id = 1",
                args![now_ms],
            )
            .await
            .map(|_| ())
        }))
    }

    fn read_heartbeat(&self) -> StoreFuture<'_, i64> {
        Box::pin(async move {
            self.backend
                .with_conn(async |c| {
                    match c
                        .query_one("SELECT ts_ms FROM dm_heartbeat WHERE id = 1", &[])
                        .await?
                    {
                        Some(r) => row_of("dm_heartbeat", &r, |r| r.int(0)),
                        // A replica that has not received the row yet: nothing
                        // replicated so far.
                        None => Ok(0),
                    }
                })
                .await
        })
    }

    fn pool_figures(&self) -> Option<crate::mysql::PoolFigures> {
        self.backend.pool_figures()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    #[test]
    fn a_mysql_primary_is_durable_only_flushing_both_logs_at_each_commit() {
        assert_eq!(mysql_durable(1, 1, 1), Ok(()));
        assert_eq!(mysql_durable(1, 0, 0), Ok(()), "no binary log to lose");
        let e = mysql_durable(2, 1, 1).unwrap_err();
        assert!(
            e.contains("innodb_flush_log_at_trx_commit = 2 (needs 1)"),
            "{e}"
        );
        let e = mysql_durable(1, 1, 0).unwrap_err();
        assert!(e.contains("sync_binlog = 0"), "{e}");
        assert!(!e.contains("innodb_flush_log_at_trx_commit"), "{e}");
        let e = mysql_durable(0, 1, 100).unwrap_err();
        assert!(
            e.contains("innodb_flush") && e.contains("sync_binlog = 100"),
            "{e}"
        );
    }

    #[test]
    fn sqlite_syncs_every_commit_only_when_durability_is_full() {
        let dir = std::env::temp_dir().join(format!(
            "dm-durability-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        for (durability, level) in [(Durability::Full, 2), (Durability::Normal, 1)] {
            let path = dir.join(format!("{durability:?}.db"));
            let backend = crate::store::sqlite::SqliteBackend::open(
                &path.display().to_string(),
                1,
                durability,
            )
            .expect("open");
            let read = block_on(backend.with_conn(async |c| {
                let r = c.query_one("PRAGMA synchronous", &[]).await?;
                r.map(|r| r.int(0)).transpose()
            }))
            .expect("pragma");
            assert_eq!(read, Some(level), "{durability:?}");
            let store = SqlStore::new(backend);
            assert_eq!(block_on(store.check_durability()), Ok(()));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
