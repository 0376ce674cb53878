//! Every business transaction of a game's database, written once over the
//! [`Backend`] surface. Invariants are enforced inside the transaction with
//! conditional updates (`... WHERE quantity >= ?`), so a balance or quantity
//! can never go below zero whatever runs concurrently; rows are locked in the
//! global order documented in `store/mod.rs`.

use super::sql::{Backend, Dialect, Row, SqlConn, SqlValue, TxKind};
use super::*;

/// Builds a parameter slice from values of mixed types.
macro_rules! args {
    ($($v:expr),* $(,)?) => { &[$(SqlValue::from($v)),*] };
}

/// The [`Store`] of any SQL backend.
pub struct SqlStore<B: Backend> {
    backend: B,
}

impl<B: Backend> SqlStore<B> {
    /// Wraps a backend.
    pub fn new(backend: B) -> SqlStore<B> {
        SqlStore { backend }
    }

    fn write<R>(
        &self,
        mut f: impl FnMut(&mut dyn SqlConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.backend.transaction(TxKind::Write, &mut f)
    }

    fn read<R>(
        &self,
        mut f: impl FnMut(&mut dyn SqlConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.backend.transaction(TxKind::Read, &mut f)
    }

    /// A read of one statement: consistent on its own, so it needs no
    /// transaction (on MySQL that saves the `START TRANSACTION` and `COMMIT`
    /// round trips).
    fn read_one<R>(
        &self,
        mut f: impl FnMut(&mut dyn SqlConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.backend.with_conn(&mut f)
    }
}

/// Reads a row of `table` with `read`, naming the table in the error of a
/// value that is not what the schema says, so the log tells where it lies.
fn row_of<T>(
    table: &str,
    r: &Row,
    read: impl FnOnce(&Row) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    read(r).map_err(|e| match e {
        StoreError::Internal(m) => {
            StoreError::Internal(format!("unexpected value in {table}: {m}"))
        }
        other => other,
    })
}

const PLAYER_COLUMNS: &str = "id, username, email, nickname, avatar, level, exp, gold, diamonds, \
     status, version, created_at, updated_at, last_login_at";

fn player_from(r: &Row) -> Result<Player, StoreError> {
    row_of("players", r, |r| {
        Ok(Player {
            id: r.int(0)?,
            username: r.text(1)?,
            email: r.text(2)?,
            nickname: r.text(3)?,
            avatar: r.text(4)?,
            level: r.int(5)?,
            exp: r.int(6)?,
            gold: r.int(7)?,
            diamonds: r.int(8)?,
            status: r.parsed(9, "a player status", PlayerStatus::parse)?,
            version: r.int(10)?,
            created_at: r.int(11)?,
            updated_at: r.int(12)?,
            last_login_at: r.int(13)?,
        })
    })
}

/// How a `SELECT` holds the rows it reads until the transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lock {
    /// Not at all (a consistent read).
    No,
    /// Others may read but not change them.
    Share,
    /// Others may neither lock nor change them.
    Update,
}

impl Lock {
    fn suffix(self, dialect: Dialect) -> &'static str {
        match self {
            Lock::No => "",
            Lock::Share => dialect.for_share(),
            Lock::Update => dialect.for_update(),
        }
    }
}

fn load_player(c: &mut dyn SqlConn, id: i64, lock: Lock) -> Result<Option<Player>, StoreError> {
    let suffix = lock.suffix(c.dialect());
    let sql = format!("SELECT {PLAYER_COLUMNS} FROM players WHERE id = ?{suffix}");
    c.query_one(&sql, args![id])?
        .map(|r| player_from(&r))
        .transpose()
}

fn must_player(c: &mut dyn SqlConn, id: i64) -> Result<Player, StoreError> {
    load_player(c, id, Lock::No)?.ok_or(StoreError::Rule(Rule::PlayerNotFound))
}

/// The player a change acts on, held with `lock` for the rest of the
/// transaction; a deleted player is not found (1001), so a deletion and a
/// change of the same player serialise on its row.
fn live_player(c: &mut dyn SqlConn, id: i64, lock: Lock) -> Result<Player, StoreError> {
    match load_player(c, id, lock)? {
        Some(p) if p.status != PlayerStatus::Deleted => Ok(p),
        _ => Err(StoreError::Rule(Rule::PlayerNotFound)),
    }
}

/// The player a read shows: a deleted one only when `include_deleted`
/// (admins), else 1001 as if it did not exist.
fn visible_player(
    c: &mut dyn SqlConn,
    id: i64,
    include_deleted: bool,
) -> Result<Player, StoreError> {
    match load_player(c, id, Lock::No)? {
        Some(p) if include_deleted || p.status != PlayerStatus::Deleted => Ok(p),
        _ => Err(StoreError::Rule(Rule::PlayerNotFound)),
    }
}

const ITEM_COLUMNS: &str =
    "item_id, name, type, quality, description, price_gold, price_diamonds, max_stack, status";

fn item_from(r: &Row) -> Result<ItemDef, StoreError> {
    row_of("item_defs", r, |r| {
        Ok(ItemDef {
            item_id: r.text(0)?,
            name: r.text(1)?,
            item_type: r.text(2)?,
            quality: r.text(3)?,
            description: r.text(4)?,
            price_gold: r.int(5)?,
            price_diamonds: r.int(6)?,
            max_stack: r.int(7)?,
            status: r.parsed(8, "an item status", ItemStatus::parse)?,
        })
    })
}

fn load_item(
    c: &mut dyn SqlConn,
    item_id: &str,
    lock: Lock,
) -> Result<Option<ItemDef>, StoreError> {
    let suffix = lock.suffix(c.dialect());
    let sql = format!("SELECT {ITEM_COLUMNS} FROM item_defs WHERE item_id = ?{suffix}");
    c.query_one(&sql, args![item_id])?
        .map(|r| item_from(&r))
        .transpose()
}

fn insert_item(c: &mut dyn SqlConn, def: &ItemDef) -> Result<u64, StoreError> {
    c.exec(
        &format!("INSERT INTO item_defs ({ITEM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
        args![
            &def.item_id,
            &def.name,
            &def.item_type,
            &def.quality,
            &def.description,
            def.price_gold,
            def.price_diamonds,
            def.max_stack,
            def.status.as_str()
        ],
    )
}

/// The catalogue entry a sale, grant or transfer uses, share-locked until
/// the transaction ends: a withdrawal (status `deleted`) either commits
/// first and is seen here (2002), or waits until this change commits.
fn active_item(c: &mut dyn SqlConn, item_id: &str) -> Result<ItemDef, StoreError> {
    match load_item(c, item_id, Lock::Share)? {
        Some(def) if def.status == ItemStatus::Active => Ok(def),
        _ => Err(StoreError::Rule(Rule::ItemNotFound)),
    }
}

/// How long after a cluster's lease holder last ran a singleton job on a
/// database a stand-alone node (no `cluster.redis`) leaves that job alone.
const STANDALONE_DEFERS_MS: i64 = 60_000;

const ORDER_COLUMNS: &str = "order_id, player_id, item_id, quantity, unit_price, total_price, \
     currency, status, idempotency_key, created_at, updated_at, paid_at, cancel_reason";

fn order_from(r: &Row) -> Result<Order, StoreError> {
    row_of("orders", r, |r| {
        Ok(Order {
            order_id: r.text(0)?,
            player_id: r.int(1)?,
            item_id: r.text(2)?,
            quantity: r.int(3)?,
            unit_price: r.int(4)?,
            total_price: r.int(5)?,
            currency: r.parsed(6, "a currency", Currency::parse)?,
            status: r.parsed(7, "an order status", OrderStatus::parse)?,
            idempotency_key: r.opt_text(8)?,
            created_at: r.int(9)?,
            updated_at: r.int(10)?,
            paid_at: r.int(11)?,
            cancel_reason: r.text(12)?,
        })
    })
}

fn load_order(
    c: &mut dyn SqlConn,
    order_id: &str,
    lock: Lock,
) -> Result<Option<Order>, StoreError> {
    let suffix = lock.suffix(c.dialect());
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = ?{suffix}");
    c.query_one(&sql, args![order_id])?
        .map(|r| order_from(&r))
        .transpose()
}

fn entry(c: &mut dyn SqlConn, player_id: i64, item_id: &str) -> Result<InventoryEntry, StoreError> {
    let row = c.query_one(
        "SELECT quantity, updated_at FROM player_items WHERE player_id = ? AND item_id = ?",
        args![player_id, item_id],
    )?;
    // No row: the player never held the item, which is a quantity of 0.
    let (quantity, updated_at) = match row {
        Some(r) => row_of("player_items", &r, |r| Ok((r.int(0)?, r.int(1)?)))?,
        None => (0, 0),
    };
    Ok(InventoryEntry {
        player_id,
        item_id: item_id.to_string(),
        quantity,
        updated_at,
    })
}

/// One change of a balance, as its ledger row records it.
struct BalanceChange<'a> {
    currency: Currency,
    delta: i64,
    reason: &'a str,
    reference: &'a str,
    now_ms: i64,
}

/// Whose balance changes: a player by id, or one whose row this
/// transaction already holds for update (as read then), whose balance after
/// the change is then known without reading it back.
enum Account<'a> {
    Id(i64),
    Locked(&'a Player),
}

/// Changes a balance by `delta` unless it would go below zero or the player
/// is deleted (1001), and writes the ledger row. The caller's transaction
/// holds the player row after this.
fn change_balance(
    c: &mut dyn SqlConn,
    account: Account<'_>,
    change: &BalanceChange<'_>,
) -> Result<i64, StoreError> {
    let BalanceChange {
        currency,
        delta,
        reason,
        reference,
        now_ms,
    } = *change;
    let (player_id, held) = match account {
        Account::Id(id) => (id, None),
        Account::Locked(p) => (
            p.id,
            Some(match currency {
                Currency::Gold => p.gold,
                Currency::Diamonds => p.diamonds,
            }),
        ),
    };
    let col = currency.as_str();
    let changed = c.exec(
        &format!(
            "UPDATE players SET {col} = {col} + ?, version = version + 1, updated_at = ? \
             WHERE id = ? AND status <> 'deleted' AND {col} + ? >= 0"
        ),
        args![delta, now_ms, player_id, delta],
    )?;
    if changed == 0 {
        live_player(c, player_id, Lock::No)?;
        return Err(StoreError::Rule(Rule::NotEnoughCurrency));
    }
    let balance = match held {
        // Nobody else can have changed it since: the row is ours.
        Some(before) => before + delta,
        None => match c.query_one(
            &format!("SELECT {col} FROM players WHERE id = ?"),
            args![player_id],
        )? {
            Some(r) => row_of("players", &r, |r| r.int(0))?,
            None => return Err(StoreError::Rule(Rule::PlayerNotFound)),
        },
    };
    c.exec(
        "INSERT INTO ledger (player_id, currency, delta, balance_after, reason, reference, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        args![player_id, col, delta, balance, reason, reference, now_ms],
    )?;
    Ok(balance)
}

/// Adds `quantity` of a known item to a player within `max_stack`.
fn add_items(
    c: &mut dyn SqlConn,
    player_id: i64,
    def: &ItemDef,
    quantity: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    if quantity > def.max_stack {
        return Err(StoreError::Rule(Rule::StackLimit));
    }
    let item_id = def.item_id.as_str();
    for _ in 0..2 {
        let changed = c.exec(
            "UPDATE player_items SET quantity = quantity + ?, updated_at = ? \
             WHERE player_id = ? AND item_id = ? AND quantity + ? <= ?",
            args![
                quantity,
                now_ms,
                player_id,
                item_id,
                quantity,
                def.max_stack
            ],
        )?;
        if changed == 1 {
            return Ok(());
        }
        let exists = c
            .query_one(
                "SELECT quantity FROM player_items WHERE player_id = ? AND item_id = ?",
                args![player_id, item_id],
            )?
            .is_some();
        if exists {
            return Err(StoreError::Rule(Rule::StackLimit));
        }
        match c.exec(
            "INSERT INTO player_items (player_id, item_id, quantity, updated_at) VALUES (?, ?, ?, ?)",
            args![player_id, item_id, quantity, now_ms],
        ) {
            Ok(_) => return Ok(()),
            // Another transaction inserted the row first: update it instead.
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Unavailable("inventory row contention".into()))
}

/// Removes `quantity` of an item unless the player has fewer.
fn remove_items(
    c: &mut dyn SqlConn,
    player_id: i64,
    item_id: &str,
    quantity: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    let changed = c.exec(
        "UPDATE player_items SET quantity = quantity - ?, updated_at = ? \
         WHERE player_id = ? AND item_id = ? AND quantity >= ?",
        args![quantity, now_ms, player_id, item_id, quantity],
    )?;
    if changed == 0 {
        return Err(StoreError::Rule(Rule::NotEnoughItems));
    }
    Ok(())
}

/// What an order transition should do after locking the order.
enum Transition {
    /// The order already has the target state: answer it (idempotent repeat).
    Done(Order),
    /// The order is in the source state: go ahead.
    Go(Order),
}

/// Locks an order for a move `from` → `to`; 3003 when it is in neither.
fn lock_for(
    c: &mut dyn SqlConn,
    order_id: &str,
    from: OrderStatus,
    to: OrderStatus,
) -> Result<Transition, StoreError> {
    let order = found_or(load_order(c, order_id, Lock::Update)?, Rule::OrderNotFound)?;
    match order.status {
        s if s == to => Ok(Transition::Done(order)),
        s if s == from => Ok(Transition::Go(order)),
        _ => Err(StoreError::Rule(Rule::OrderState)),
    }
}

/// Records the move of `order` (locked by [`lock_for`], in state `from`) to
/// `to`, stamping `paid_at` for payments, and returns the order as it now is.
fn finish(
    c: &mut dyn SqlConn,
    order: Order,
    from: OrderStatus,
    to: OrderStatus,
    now_ms: i64,
) -> Result<Order, StoreError> {
    let order_id = order.order_id.as_str();
    let paid_at = if to == OrderStatus::Paid {
        "paid_at = ?, "
    } else {
        ""
    };
    let sql = format!(
        "UPDATE orders SET status = ?, {paid_at}updated_at = ? WHERE order_id = ? AND status = ?"
    );
    let mut params: Vec<SqlValue> = vec![to.as_str().into()];
    if to == OrderStatus::Paid {
        params.push(now_ms.into());
    }
    params.extend([now_ms.into(), order_id.into(), from.as_str().into()]);
    if c.exec(&sql, &params)? != 1 {
        return Err(StoreError::Internal(format!(
            "order {order_id} left state {} while locked",
            from.as_str()
        )));
    }
    // The row is locked since `lock_for` read it: it is that row with
    // what this statement set.
    Ok(Order {
        status: to,
        updated_at: now_ms,
        paid_at: if to == OrderStatus::Paid {
            now_ms
        } else {
            order.paid_at
        },
        ..order
    })
}

/// The count a `SELECT COUNT(*) ...` answers (0 if it answers no row; a
/// row that is not one integer is an error).
fn count(c: &mut dyn SqlConn, sql: &str, params: &[SqlValue]) -> Result<i64, StoreError> {
    match c.query_one(sql, params)? {
        Some(r) => row_of("a count", &r, |r| r.int(0)),
        None => Ok(0),
    }
}

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

/// The row, or the business rule that says it is missing.
fn found_or<T>(v: Option<T>, rule: Rule) -> Result<T, StoreError> {
    v.ok_or(StoreError::Rule(rule))
}

impl<B: Backend> Store for SqlStore<B> {
    fn migrate(&self) -> Result<u32, StoreError> {
        let mut reached = 0;
        self.backend.with_conn(&mut |c| {
            let ddl = match c.dialect() {
                Dialect::Sqlite => "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL)",
                Dialect::Mysql => "CREATE TABLE IF NOT EXISTS schema_migrations (version INT PRIMARY KEY, description VARCHAR(255) NOT NULL, applied_at BIGINT NOT NULL)",
            };
            c.exec(ddl, &[]).map(|_| ())
        })?;
        for m in self.backend.migrations() {
            self.write(|c| {
                if c.query_one("SELECT version FROM schema_migrations WHERE version = ?", args![m.version as i64])?.is_some() {
                    return Ok(());
                }
                for sql in m.statements {
                    c.exec(sql, &[])?;
                }
                c.exec(
                    "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                    args![m.version as i64, m.description, crate::clock::now_ms()],
                )
                .map(|_| ())
            })?;
            reached = m.version;
        }
        Ok(reached)
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.backend
            .with_conn(&mut |c| c.query("SELECT 1", &[]).map(|_| ()))
    }

    fn check_durability(&self) -> Result<(), StoreError> {
        let wanted = self.backend.durability();
        self.backend.with_conn(&mut |c| match c.dialect() {
            Dialect::Sqlite => {
                let level = match c.query_one("PRAGMA synchronous", &[])? {
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
                let row = c.query_one(
                    "SELECT CAST(@@innodb_flush_log_at_trx_commit AS SIGNED), \
                     CAST(@@log_bin AS SIGNED), CAST(@@sync_binlog AS SIGNED)",
                    &[],
                )?;
                let (flush_log, log_bin, sync_binlog) = match row {
                    Some(r) => row_of("server variables", &r, |r| {
                        Ok((r.int(0)?, r.int(1)?, r.int(2)?))
                    })?,
                    None => return Err(StoreError::Internal("no server variables".into())),
                };
                mysql_durable(flush_log, log_bin, sync_binlog).map_err(StoreError::Internal)
            }
        })
    }

    fn create_player(&self, new: &NewPlayer) -> Result<Player, StoreError> {
        self.write(|c| {
            let inserted = c.exec(
                "INSERT INTO players (username, password_hash, email, nickname, gold, diamonds, \
                 created_at, updated_at) VALUES (?, ?, ?, ?, 0, 0, ?, ?)",
                args![
                    &new.username,
                    &new.password_hash,
                    &new.email,
                    &new.username,
                    new.now_ms,
                    new.now_ms
                ],
            );
            match inserted {
                Err(StoreError::Conflict(_)) => return Err(StoreError::Rule(Rule::UsernameTaken)),
                other => other?,
            };
            let id = c.last_insert_id()?;
            for (currency, amount) in [
                (Currency::Gold, new.signup_gold),
                (Currency::Diamonds, new.signup_diamonds),
            ] {
                if amount == 0 {
                    continue;
                }
                let signup = BalanceChange {
                    currency,
                    delta: amount,
                    reason: "signup",
                    reference: "signup_grant",
                    now_ms: new.now_ms,
                };
                change_balance(c, Account::Id(id), &signup)?;
            }
            // The signup grants are part of creation, not updates.
            c.exec("UPDATE players SET version = 1 WHERE id = ?", args![id])?;
            must_player(c, id)
        })
    }

    fn player(&self, id: i64) -> Result<Option<Player>, StoreError> {
        self.read_one(|c| load_player(c, id, Lock::No))
    }

    fn credentials(&self, username: &str) -> Result<Option<PlayerCredentials>, StoreError> {
        self.read_one(|c| {
            let Some(row) = c.query_one(
                "SELECT id, password_hash, status FROM players WHERE username = ?",
                args![username],
            )?
            else {
                return Ok(None);
            };
            row_of("players", &row, |r| {
                Ok(Some(PlayerCredentials {
                    id: r.int(0)?,
                    password_hash: r.text(1)?,
                    status: r.parsed(2, "a player status", PlayerStatus::parse)?,
                }))
            })
        })
    }

    fn record_login(&self, id: i64, now_ms: i64) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec(
                "UPDATE players SET last_login_at = ? WHERE id = ?",
                args![now_ms, id],
            )
            .map(|_| ())
        })
    }

    fn update_player(
        &self,
        id: i64,
        patch: &PlayerPatch,
        expected_version: Option<i64>,
        now_ms: i64,
    ) -> Result<Player, StoreError> {
        self.write(|c| {
            let mut sets = vec![
                "version = version + 1".to_string(),
                "updated_at = ?".to_string(),
            ];
            let mut params: Vec<SqlValue> = vec![now_ms.into()];
            let text_fields = [
                ("nickname", &patch.nickname),
                ("avatar", &patch.avatar),
                ("email", &patch.email),
            ];
            for (col, v) in text_fields {
                if let Some(v) = v {
                    sets.push(format!("{col} = ?"));
                    params.push(v.into());
                }
            }
            for (col, v) in [("level", patch.level), ("exp", patch.exp)] {
                if let Some(v) = v {
                    sets.push(format!("{col} = ?"));
                    params.push(v.into());
                }
            }
            if let Some(s) = patch.status {
                sets.push("status = ?".to_string());
                params.push(s.as_str().into());
            }
            let mut sql = format!(
                "UPDATE players SET {} WHERE id = ? AND status <> 'deleted'",
                sets.join(", ")
            );
            params.push(id.into());
            if let Some(v) = expected_version {
                sql.push_str(" AND version = ?");
                params.push(v.into());
            }
            if c.exec(&sql, &params)? == 0 {
                live_player(c, id, Lock::No)?;
                return Err(StoreError::Rule(Rule::VersionConflict));
            }
            must_player(c, id)
        })
    }

    fn adjust_balance(
        &self,
        id: i64,
        currency: Currency,
        delta: i64,
        reason: &str,
        reference: &str,
        now_ms: i64,
    ) -> Result<Player, StoreError> {
        self.write(|c| {
            let change = BalanceChange {
                currency,
                delta,
                reason,
                reference,
                now_ms,
            };
            change_balance(c, Account::Id(id), &change)?;
            must_player(c, id)
        })
    }

    fn ledger(
        &self,
        id: i64,
        page: PageRequest,
        include_deleted: bool,
    ) -> Result<Page<LedgerEntry>, StoreError> {
        self.read(|c| {
            visible_player(c, id, include_deleted)?;
            let total = count(c, "SELECT COUNT(*) FROM ledger WHERE player_id = ?", args![id])?;
            let items = c
                .query(
                    "SELECT id, player_id, currency, delta, balance_after, reason, reference, created_at \
                     FROM ledger WHERE player_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
                    args![id, page.page_size, page.offset()],
                )?
                .iter()
                .map(|r| {
                    row_of("ledger", r, |r| {
                        Ok(LedgerEntry {
                            id: r.int(0)?,
                            player_id: r.int(1)?,
                            currency: r.parsed(2, "a currency", Currency::parse)?,
                            delta: r.int(3)?,
                            balance_after: r.int(4)?,
                            reason: r.text(5)?,
                            reference: r.text(6)?,
                            created_at: r.int(7)?,
                        })
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok(Page { items, total })
        })
    }

    fn apply_progress(
        &self,
        id: i64,
        progress: Progress,
        now_ms: i64,
    ) -> Result<Player, StoreError> {
        self.write(|c| {
            let p = live_player(c, id, Lock::Update)?;
            match progress {
                Progress::AddExp {
                    amount,
                    level_for,
                    max_exp,
                } => {
                    let exp = p
                        .exp
                        .checked_add(amount)
                        .filter(|e| *e <= max_exp)
                        .ok_or(StoreError::Rule(Rule::ExpLimit(max_exp)))?;
                    let level = p.level.max(level_for(exp));
                    c.exec(
                        "UPDATE players SET exp = ?, level = ?, version = version + 1, updated_at = ? WHERE id = ?",
                        args![exp, level, now_ms, id],
                    )?;
                }
                Progress::LevelUp { exp_for, max_level } => {
                    if p.level >= max_level {
                        return Err(StoreError::Rule(Rule::LevelLimit(max_level)));
                    }
                    let level = p.level + 1;
                    let exp = p.exp.max(exp_for(level));
                    c.exec(
                        "UPDATE players SET exp = ?, level = ?, version = version + 1, updated_at = ? WHERE id = ?",
                        args![exp, level, now_ms, id],
                    )?;
                }
                Progress::DailyReward { day, currency, amount } => {
                    match c.exec("INSERT INTO daily_rewards (player_id, day) VALUES (?, ?)", args![id, day]) {
                        Err(StoreError::Conflict(_)) => return Err(StoreError::Rule(Rule::AlreadyClaimed)),
                        other => other?,
                    };
                    let reference = format!("day:{day}");
                    let reward = BalanceChange { currency, delta: amount, reason: "daily_reward", reference: &reference, now_ms };
                    change_balance(c, Account::Id(id), &reward)?;
                }
            }
            must_player(c, id)
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
        self.write(|c| {
            c.exec(
                "INSERT INTO sessions (session_id, player_id, refresh_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                args![session_id, player_id, refresh_hash, now_ms, expires_at_ms],
            )
            .map(|_| ())
        })
    }

    fn rotate_refresh(
        &self,
        session_id: &str,
        presented_hash: &str,
        new_hash: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<RefreshOutcome, StoreError> {
        self.write(|c| {
            let lock = c.dialect().for_update();
            let Some(row) = c.query_one(
                &format!("SELECT player_id, refresh_hash, revoked, expires_at FROM sessions WHERE session_id = ?{lock}"),
                args![session_id],
            )?
            else {
                return Ok(RefreshOutcome::Invalid);
            };
            let (player_id, current, revoked, expires) = row_of("sessions", &row, |r| {
                Ok((r.int(0)?, r.text(1)?, r.int(2)?, r.int(3)?))
            })?;
            if revoked != 0 || expires <= now_ms {
                return Ok(RefreshOutcome::Invalid);
            }
            if current == presented_hash {
                c.exec(
                    "INSERT INTO refresh_history (refresh_hash, session_id, used_at) VALUES (?, ?, ?)",
                    args![&current, session_id, now_ms],
                )?;
                c.exec(
                    "UPDATE sessions SET refresh_hash = ?, expires_at = ? WHERE session_id = ?",
                    args![new_hash, expires_at_ms, session_id],
                )?;
                return Ok(RefreshOutcome::Rotated { player_id });
            }
            let reused = c
                .query_one("SELECT session_id FROM refresh_history WHERE refresh_hash = ? AND session_id = ?", args![presented_hash, session_id])?
                .is_some();
            if reused {
                c.exec("UPDATE sessions SET revoked = 1, revoked_at = ? WHERE session_id = ?", args![now_ms, session_id])?;
                return Ok(RefreshOutcome::Reused);
            }
            Ok(RefreshOutcome::Invalid)
        })
    }

    fn revoke_session(&self, session_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        self.write(|c| {
            Ok(c.exec(
                "UPDATE sessions SET revoked = 1, revoked_at = ? WHERE session_id = ? AND revoked = 0",
                args![now_ms, session_id],
            )? > 0)
        })
    }

    fn revoke_player_sessions(
        &self,
        player_id: i64,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.write(|c| {
            let ids: Vec<String> = c
                .query(
                    "SELECT session_id FROM sessions WHERE player_id = ? AND revoked = 0 AND expires_at > ?",
                    args![player_id, now_ms],
                )?
                .iter()
                .map(|r| row_of("sessions", r, |r| r.text(0)))
                .collect::<Result<_, _>>()?;
            c.exec(
                "UPDATE sessions SET revoked = 1, revoked_at = ? WHERE player_id = ? AND revoked = 0",
                args![now_ms, player_id],
            )?;
            Ok(ids)
        })
    }

    fn revoke_token(&self, session_id: &str, now_ms: i64) -> Result<(), StoreError> {
        self.write(|c| {
            match c.exec(
                "INSERT INTO revoked_tokens (session_id, revoked_at) VALUES (?, ?)",
                args![session_id, now_ms],
            ) {
                Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    fn revoked_sessions_since(&self, since_ms: i64) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let mut ids = Vec::new();
            for (table, sql) in [
                (
                    "sessions",
                    "SELECT session_id FROM sessions WHERE revoked = 1 AND revoked_at >= ?",
                ),
                (
                    "revoked_tokens",
                    "SELECT session_id FROM revoked_tokens WHERE revoked_at >= ?",
                ),
            ] {
                for r in c.query(sql, args![since_ms])? {
                    ids.push(row_of(table, &r, |r| r.text(0))?);
                }
            }
            Ok(ids)
        })
    }

    fn item_defs(&self, include_deleted: bool) -> Result<Vec<ItemDef>, StoreError> {
        self.read_one(|c| {
            let filter = if include_deleted {
                ""
            } else {
                " WHERE status = 'active'"
            };
            c.query(
                &format!("SELECT {ITEM_COLUMNS} FROM item_defs{filter} ORDER BY item_id"),
                &[],
            )?
            .iter()
            .map(item_from)
            .collect()
        })
    }

    fn item_def(&self, item_id: &str) -> Result<Option<ItemDef>, StoreError> {
        self.read_one(|c| load_item(c, item_id, Lock::No))
    }

    fn create_item_def(&self, def: &ItemDef) -> Result<ItemDef, StoreError> {
        self.write(|c| {
            let r = insert_item(c, def);
            match r {
                Err(StoreError::Conflict(_)) => Err(StoreError::Rule(Rule::ItemExists)),
                other => other.map(|_| ()),
            }?;
            found_or(load_item(c, &def.item_id, Lock::No)?, Rule::ItemNotFound)
        })
    }

    fn update_item_def(&self, item_id: &str, patch: &ItemDefPatch) -> Result<ItemDef, StoreError> {
        // The service answers a bad status with a 400 before calling; one
        // that gets here anyway must not reach the table.
        let status = match patch.status.as_deref() {
            Some(s) => Some(ItemStatus::parse(s).ok_or_else(|| {
                StoreError::Internal(format!("item status {s:?} is not active or deleted"))
            })?),
            None => None,
        };
        self.write(|c| {
            let mut sets = Vec::new();
            let mut params: Vec<SqlValue> = Vec::new();
            let texts = [
                ("name", &patch.name),
                ("type", &patch.item_type),
                ("quality", &patch.quality),
                ("description", &patch.description),
            ];
            for (col, v) in texts {
                if let Some(v) = v {
                    sets.push(format!("{col} = ?"));
                    params.push(v.into());
                }
            }
            if let Some(s) = status {
                sets.push("status = ?".to_string());
                params.push(s.as_str().into());
            }
            for (col, v) in [
                ("price_gold", patch.price_gold),
                ("price_diamonds", patch.price_diamonds),
                ("max_stack", patch.max_stack),
            ] {
                if let Some(v) = v {
                    sets.push(format!("{col} = ?"));
                    params.push(v.into());
                }
            }
            if !sets.is_empty() {
                params.push(item_id.into());
                c.exec(
                    &format!("UPDATE item_defs SET {} WHERE item_id = ?", sets.join(", ")),
                    &params,
                )?;
            }
            found_or(load_item(c, item_id, Lock::No)?, Rule::ItemNotFound)
        })
    }

    fn seed_item_defs(&self, defs: &[ItemDef]) -> Result<usize, StoreError> {
        self.write(|c| {
            let mut added = 0;
            for def in defs {
                if load_item(c, &def.item_id, Lock::No)?.is_none() {
                    insert_item(c, def)?;
                    added += 1;
                }
            }
            Ok(added)
        })
    }

    fn inventory(
        &self,
        player_id: i64,
        include_deleted: bool,
    ) -> Result<Vec<InventoryEntry>, StoreError> {
        self.read(|c| {
            visible_player(c, player_id, include_deleted)?;
            c.query(
                "SELECT item_id, quantity, updated_at FROM player_items WHERE player_id = ? AND quantity > 0 ORDER BY item_id",
                args![player_id],
            )?
            .iter()
            .map(|r| {
                row_of("player_items", r, |r| {
                    Ok(InventoryEntry {
                        player_id,
                        item_id: r.text(0)?,
                        quantity: r.int(1)?,
                        updated_at: r.int(2)?,
                    })
                })
            })
            .collect()
        })
    }

    fn use_item(
        &self,
        player_id: i64,
        item_id: &str,
        quantity: i64,
        now_ms: i64,
    ) -> Result<InventoryEntry, StoreError> {
        self.write(|c| {
            // Shared: uses and grants of one player do not queue on each
            // other, only a deletion waits for them (or is seen).
            live_player(c, player_id, Lock::Share)?;
            match remove_items(c, player_id, item_id, quantity, now_ms) {
                // A withdrawn item may still be used: inventories keep it.
                // Only a known item ever enters an inventory, and catalogue
                // entries are never deleted, so the catalogue is asked only
                // to tell a missing item (2002) from too few (2001).
                Err(StoreError::Rule(Rule::NotEnoughItems))
                    if load_item(c, item_id, Lock::No)?.is_none() =>
                {
                    return Err(StoreError::Rule(Rule::ItemNotFound))
                }
                other => other?,
            }
            entry(c, player_id, item_id)
        })
    }

    fn grant_item(
        &self,
        player_id: i64,
        item_id: &str,
        quantity: i64,
        now_ms: i64,
    ) -> Result<InventoryEntry, StoreError> {
        self.write(|c| {
            live_player(c, player_id, Lock::Share)?;
            let def = active_item(c, item_id)?;
            add_items(c, player_id, &def, quantity, now_ms)?;
            entry(c, player_id, item_id)
        })
    }

    fn transfer_item(
        &self,
        from: i64,
        to: i64,
        item_id: &str,
        quantity: i64,
        now_ms: i64,
    ) -> Result<(InventoryEntry, InventoryEntry), StoreError> {
        self.write(|c| {
            // Lock both players in ascending id order: transfers in opposite
            // directions then queue instead of deadlocking. Neither may be
            // deleted.
            let lock = c.dialect().for_update();
            let found = c.query(
                &format!("SELECT id, status FROM players WHERE id IN (?, ?) ORDER BY id{lock}"),
                args![from.min(to), from.max(to)],
            )?;
            let mut live = 0;
            for r in &found {
                let status = row_of("players", r, |r| {
                    r.parsed(1, "a player status", PlayerStatus::parse)
                })?;
                if status != PlayerStatus::Deleted {
                    live += 1;
                }
            }
            if live < 2 {
                return Err(StoreError::Rule(Rule::PlayerNotFound));
            }
            let def = active_item(c, item_id)?;
            remove_items(c, from, item_id, quantity, now_ms)?;
            add_items(c, to, &def, quantity, now_ms)?;
            Ok((entry(c, from, item_id)?, entry(c, to, item_id)?))
        })
    }

    fn create_order(&self, new: &NewOrder) -> Result<(Order, bool), StoreError> {
        // Two attempts: a concurrent create with the same key makes our
        // insert fail; the second attempt then finds that order.
        for _ in 0..2 {
            let result = self.write(|c| {
                // Held until the order is in: a deletion of the player waits,
                // or is seen (1001) — also by a repeat of an older create.
                live_player(c, new.player_id, Lock::Share)?;
                if let Some(key) = &new.idempotency_key {
                    let existing = c.query_one(
                        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE player_id = ? AND idempotency_key = ?"),
                        args![new.player_id, key],
                    )?;
                    if let Some(row) = existing {
                        let order = order_from(&row)?;
                        if order.item_id != new.item_id || order.quantity != new.quantity || order.currency != new.currency {
                            return Err(StoreError::Rule(Rule::IdempotencyMismatch));
                        }
                        return Ok((order, false));
                    }
                }
                let def = active_item(c, &new.item_id)?;
                let unit = def.price(new.currency).ok_or(StoreError::Rule(Rule::NotForSale))?;
                let total = unit.checked_mul(new.quantity).ok_or(StoreError::Rule(Rule::NotEnoughCurrency))?;
                c.exec(
                    &format!("INSERT INTO orders ({ORDER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, 0, '')"),
                    args![&new.order_id, new.player_id, &new.item_id, new.quantity, unit, total, new.currency.as_str(), new.idempotency_key.clone(), new.now_ms, new.now_ms],
                )?;
                // The row is what was just inserted.
                let order = Order {
                    order_id: new.order_id.clone(),
                    player_id: new.player_id,
                    item_id: new.item_id.clone(),
                    quantity: new.quantity,
                    unit_price: unit,
                    total_price: total,
                    currency: new.currency,
                    status: OrderStatus::Pending,
                    idempotency_key: new.idempotency_key.clone(),
                    created_at: new.now_ms,
                    updated_at: new.now_ms,
                    paid_at: 0,
                    cancel_reason: String::new(),
                };
                Ok((order, true))
            });
            match result {
                Err(StoreError::Conflict(_)) if new.idempotency_key.is_some() => continue,
                other => return other,
            }
        }
        Err(StoreError::Unavailable("order creation contention".into()))
    }

    fn order(&self, order_id: &str) -> Result<Option<Order>, StoreError> {
        self.read_one(|c| load_order(c, order_id, Lock::No))
    }

    fn orders(
        &self,
        player_id: Option<i64>,
        page: PageRequest,
        include_deleted: bool,
    ) -> Result<Page<Order>, StoreError> {
        self.read(|c| {
            if let Some(p) = player_id {
                visible_player(c, p, include_deleted)?;
            }
            let (filter, params): (&str, Vec<SqlValue>) = match player_id {
                Some(p) => (" WHERE player_id = ?", vec![p.into()]),
                None => ("", Vec::new()),
            };
            let total = count(c, &format!("SELECT COUNT(*) FROM orders{filter}"), &params)?;
            let mut p = params.clone();
            p.push(page.page_size.into());
            p.push(page.offset().into());
            let items = c
                .query(&format!("SELECT {ORDER_COLUMNS} FROM orders{filter} ORDER BY order_id DESC LIMIT ? OFFSET ?"), &p)?
                .iter()
                .map(order_from)
                .collect::<Result<_, _>>()?;
            Ok(Page { items, total })
        })
    }

    fn pay_order(&self, order_id: &str, now_ms: i64) -> Result<(Order, bool), StoreError> {
        self.write(|c| {
            let order = match lock_for(c, order_id, OrderStatus::Pending, OrderStatus::Paid)? {
                Transition::Done(order) => return Ok((order, false)),
                Transition::Go(order) => order,
            };
            // In the global lock order (orders, players, item_defs, items);
            // any refusal rolls back and leaves the order pending.
            let buyer = live_player(c, order.player_id, Lock::Update)?;
            let def = active_item(c, &order.item_id)?;
            let payment = BalanceChange {
                currency: order.currency,
                delta: -order.total_price,
                reason: "order_pay",
                reference: order_id,
                now_ms,
            };
            change_balance(c, Account::Locked(&buyer), &payment)?;
            add_items(c, order.player_id, &def, order.quantity, now_ms)?;
            finish(c, order, OrderStatus::Pending, OrderStatus::Paid, now_ms).map(|o| (o, true))
        })
    }

    fn run_fenced(
        &self,
        job: FencedJob,
        token: Option<i64>,
        holder: &str,
        now_ms: i64,
    ) -> Result<FencedRun, StoreError> {
        let name = job.name();
        self.write(|c| {
            let lock = c.dialect().for_update();
            let fence = c.query_one(
                &format!("SELECT token, holder, updated_at FROM job_fences WHERE job = ?{lock}"),
                args![name],
            )?;
            let fence = match fence {
                Some(row) => Some(row_of("job_fences", &row, |r| {
                    Ok((r.int(0)?, r.text(1)?, r.int(2)?))
                })?),
                None => None,
            };
            let mut new_holder = false;
            match (token, fence) {
                // A stand-alone node: no lease, no token. It leaves the job to
                // a cluster that ran it on this database lately (a node
                // started without cluster.redis by mistake must not run it
                // beside the lease holder) and runs it otherwise.
                (None, Some((seen, _, at)))
                    if seen > 0 && now_ms.saturating_sub(at) < STANDALONE_DEFERS_MS =>
                {
                    return Ok(FencedRun::ClusterActive);
                }
                (None, _) => {}
                (Some(token), Some((seen, seen_holder, _))) => {
                    // An older token, or the same token in other hands (a
                    // counter Redis lost handed it out twice): refused.
                    if seen > token || (seen == token && seen_holder != holder) {
                        // Nothing written: the commit only ends the read.
                        return Ok(FencedRun::Stale { newer: seen });
                    }
                    new_holder = seen != token;
                    // Every run says when it ran: that is how a stand-alone
                    // node on the same database sees a cluster at work.
                    c.exec(
                        "UPDATE job_fences SET token = ?, holder = ?, updated_at = ? WHERE job = ?",
                        args![token, holder, now_ms, name],
                    )?;
                }
                (Some(token), None) => {
                    new_holder = true;
                    c.exec(
                        "INSERT INTO job_fences (job, token, holder, updated_at) VALUES (?, ?, ?, ?)",
                        args![name, token, holder, now_ms],
                    )?;
                }
            }
            let affected = match job {
                FencedJob::ExpireOrders { created_before_ms } => c.exec(
                    "UPDATE orders SET status = 'cancelled', cancel_reason = 'expired', updated_at = ? \
                     WHERE status = 'pending' AND created_at < ?",
                    args![now_ms, created_before_ms],
                )?,
                FencedJob::PurgeSessions {
                    expired_before_ms,
                    revoked_before_ms,
                } => {
                    let history = c.exec(
                        "DELETE FROM refresh_history WHERE session_id IN \
                         (SELECT session_id FROM sessions WHERE expires_at < ?)",
                        args![expired_before_ms],
                    )?;
                    let sessions =
                        c.exec("DELETE FROM sessions WHERE expires_at < ?", args![expired_before_ms])?;
                    let tokens = c.exec(
                        "DELETE FROM revoked_tokens WHERE revoked_at < ?",
                        args![revoked_before_ms],
                    )?;
                    history + sessions + tokens
                }
            };
            // A run is recorded when it changed something or when the job
            // changed hands, so the table grows with events, not with time.
            if new_holder || affected > 0 {
                c.exec(
                    "INSERT INTO job_runs (job, token, holder, started_at, affected) VALUES (?, ?, ?, ?, ?)",
                    args![name, token.unwrap_or(0), holder, now_ms, affected as i64],
                )?;
            }
            Ok(FencedRun::Ran(affected))
        })
    }

    fn cancel_order(&self, order_id: &str, now_ms: i64) -> Result<(Order, bool), StoreError> {
        self.write(
            |c| match lock_for(c, order_id, OrderStatus::Pending, OrderStatus::Cancelled)? {
                Transition::Done(order) => Ok((order, false)),
                Transition::Go(order) => finish(
                    c,
                    order,
                    OrderStatus::Pending,
                    OrderStatus::Cancelled,
                    now_ms,
                )
                .map(|o| (o, true)),
            },
        )
    }

    fn refund_order(&self, order_id: &str, now_ms: i64) -> Result<(Order, bool), StoreError> {
        self.write(|c| {
            let order = match lock_for(c, order_id, OrderStatus::Paid, OrderStatus::Refunded)? {
                Transition::Done(order) => return Ok((order, false)),
                Transition::Go(order) => order,
            };
            let refund = BalanceChange {
                currency: order.currency,
                delta: order.total_price,
                reason: "order_refund",
                reference: order_id,
                now_ms,
            };
            change_balance(c, Account::Id(order.player_id), &refund)?;
            let held = entry(c, order.player_id, &order.item_id)?.quantity;
            let take_back = held.min(order.quantity);
            if take_back > 0 {
                remove_items(c, order.player_id, &order.item_id, take_back, now_ms)?;
            }
            finish(c, order, OrderStatus::Paid, OrderStatus::Refunded, now_ms).map(|o| (o, true))
        })
    }

    fn game_stats(&self) -> Result<GameStats, StoreError> {
        self.read(|c| {
            Ok(GameStats {
                players: count(c, "SELECT COUNT(*) FROM players", &[])?,
                active_players: count(
                    c,
                    "SELECT COUNT(*) FROM players WHERE status = 'active'",
                    &[],
                )?,
                orders: count(c, "SELECT COUNT(*) FROM orders", &[])?,
                paid_orders: count(c, "SELECT COUNT(*) FROM orders WHERE status = 'paid'", &[])?,
                items: count(
                    c,
                    "SELECT COUNT(*) FROM item_defs WHERE status = 'active'",
                    &[],
                )?,
            })
        })
    }

    fn write_heartbeat(&self, now_ms: i64) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec(
                "UPDATE dm_heartbeat SET ts_ms = ? WHERE id = 1",
                args![now_ms],
            )
            .map(|_| ())
        })
    }

    fn read_heartbeat(&self) -> Result<i64, StoreError> {
        self.backend.with_conn(&mut |c| {
            match c.query_one("SELECT ts_ms FROM dm_heartbeat WHERE id = 1", &[])? {
                Some(r) => row_of("dm_heartbeat", &r, |r| r.int(0)),
                // A replica that has not received the row yet: nothing
                // replicated so far.
                None => Ok(0),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let backend = super::super::sqlite::SqliteBackend::open(
                &path.display().to_string(),
                1,
                durability,
            )
            .expect("open");
            let read = backend
                .with_conn(&mut |c| {
                    let r = c.query_one("PRAGMA synchronous", &[])?;
                    r.map(|r| r.int(0)).transpose()
                })
                .expect("pragma");
            assert_eq!(read, Some(level), "{durability:?}");
            let store = SqlStore::new(backend);
            assert_eq!(store.check_durability(), Ok(()));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
