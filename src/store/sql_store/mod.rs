//! Every business transaction of a game's database, written once over the
//! [`Backend`] surface. Invariants are enforced inside the transaction with
//! conditional updates (`... WHERE quantity >= ?`), so a balance or quantity
//! can never go below zero whatever runs concurrently; rows are locked in the
//! global order documented in `store/mod.rs`.
//!
//! [`SqlStore`] implements each domain trait of `store/mod.rs` in the file of
//! that domain, mirroring `src/service/`, so a change to one domain's
//! transactions touches one file:
//!
//! - `players.rs`: [`PlayerStore`](crate::store::PlayerStore) (accounts, wallets, ledger, progress);
//! - `sessions.rs`: [`SessionStore`](crate::store::SessionStore) (sessions, refresh secrets, revocations);
//! - `items.rs`: [`ItemStore`](crate::store::ItemStore) (catalogue and inventories);
//! - `orders.rs`: [`OrderStore`](crate::store::OrderStore) (orders and their transitions);
//! - `jobs.rs`: [`JobStore`](crate::store::JobStore) (fenced singleton jobs);
//! - `database.rs`: [`DatabaseStore`](crate::store::DatabaseStore) (migrations, health, durability, stats, heartbeat).
//!
//! This file holds what several domains share: the [`SqlStore`] type with its
//! transaction helpers, the `args!` macro, and the row readers and changes
//! (players, catalogue entries, balances, inventory rows) that more than one
//! domain's transactions use. A helper used by one domain lives in its file.

use crate::store::sql::{Backend, Dialect, Row, SqlConn, SqlValue, TxKind};
use crate::store::{
    Currency, InventoryEntry, ItemDef, ItemStatus, Notice, NoticeData, NoticeKind, Notified,
    Player, PlayerStatus, Rule, StoreError,
};

/// Builds a parameter slice from values of mixed types.
macro_rules! args {
    ($($v:expr),* $(,)?) => { &[$(SqlValue::from($v)),*] };
}

mod audit;
mod boards;
mod database;
mod items;
mod jobs;
mod notices;
mod orders;
mod players;
mod sessions;

/// The [`Store`](crate::store::Store) of any SQL backend: implements every
/// domain trait, each in the file of its domain.
pub struct SqlStore<B: Backend> {
    backend: B,
    /// Store every notification, not only messages (`realtime.persist`).
    persist_all: bool,
}

impl<B: Backend> SqlStore<B> {
    /// Wraps a backend that stores only the notifications that are always
    /// stored (messages).
    pub fn new(backend: B) -> SqlStore<B> {
        SqlStore {
            backend,
            persist_all: false,
        }
    }

    /// Stores every notification its changes make (`realtime.persist`).
    pub fn persisting_all_notices(mut self, yes: bool) -> SqlStore<B> {
        self.persist_all = yes;
        self
    }

    async fn write<R>(
        &self,
        f: impl AsyncFnMut(&mut dyn SqlConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.backend.transaction(TxKind::Write, f).await
    }

    async fn read<R>(
        &self,
        f: impl AsyncFnMut(&mut dyn SqlConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.backend.transaction(TxKind::Read, f).await
    }

    /// A read of one statement: consistent on its own, so it needs no
    /// transaction (on MySQL that saves the `START TRANSACTION` and `COMMIT`
    /// round trips).
    async fn read_one<R>(
        &self,
        f: impl AsyncFnMut(&mut dyn SqlConn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.backend.with_conn(f).await
    }
}

/// One notification a transaction makes, before its id is allocated.
type Draft = (NoticeKind, NoticeData);

/// The `wallet` notification of a balance change that left `balance`.
fn wallet_draft(change: &BalanceChange<'_>, balance: i64) -> Draft {
    let data = NoticeData::Wallet {
        currency: change.currency,
        delta: change.delta,
        balance,
        reason: change.reason.to_string(),
    };
    (NoticeKind::Wallet, data)
}

/// The `item` notification of a change of `delta` that left `quantity`.
fn item_draft(item_id: &str, delta: i64, quantity: i64) -> Draft {
    let data = NoticeData::Item {
        item_id: item_id.to_string(),
        delta,
        quantity,
    };
    (NoticeKind::Item, data)
}

/// Notification ids taken on one player's row by the statement that changed
/// it: `count` ids ending with `last`. The row is then held for update until
/// the transaction ends, so nobody else takes ids of that player meanwhile.
#[derive(Debug, Clone, Copy)]
struct Ids {
    player_id: i64,
    last: i64,
    count: i64,
}

/// The `SET` term that takes `?` ids on a player's row where the backend
/// keeps no sequence itself (MySQL: nodes share the database).
/// `LAST_INSERT_ID(expr)` hands the new value back after the statement, so
/// the `UPDATE` that changes the row also allocates the ids.
const TAKE_IDS: &str = ", notify_seq = LAST_INSERT_ID(notify_seq + ?)";

/// Takes `count` (≥ 1) ids of `player_id`, which holds the player's row
/// for update (call it in the `players` step of the lock order): from the
/// backend's own sequence after a look at the row, or with one `UPDATE` of
/// the row. A deleted player is skipped unless `deleted_too`. `None`: no
/// such (live) player.
async fn take_ids(
    c: &mut dyn SqlConn,
    player_id: i64,
    count: i64,
    deleted_too: bool,
) -> Result<Option<Ids>, StoreError> {
    if c.notice_ids().is_some() {
        // The backend's writer holds the whole database (SQLite), so the
        // row needs no lock of its own: only whether it is there.
        let sql = if deleted_too {
            "SELECT id FROM players WHERE id = ?"
        } else {
            "SELECT id FROM players WHERE id = ? AND status <> 'deleted'"
        };
        if c.query_one(sql, args![player_id]).await?.is_none() {
            return Ok(None);
        }
        let Some(ids) = c.notice_ids() else {
            return Ok(None);
        };
        return Ok(ids.take(player_id, count)?.map(|last| Ids {
            player_id,
            last,
            count,
        }));
    }
    let sql = if deleted_too {
        "UPDATE players SET notify_seq = LAST_INSERT_ID(notify_seq + ?) WHERE id = ?"
    } else {
        "UPDATE players SET notify_seq = LAST_INSERT_ID(notify_seq + ?) WHERE id = ? AND status <> 'deleted'"
    };
    if c.exec(sql, args![count, player_id]).await? == 0 {
        return Ok(None);
    }
    Ok(Some(Ids {
        player_id,
        last: c.last_insert_id()?,
        count,
    }))
}

/// Gives `drafts` the ids of `ids` in order, stores them in `notifications`
/// when `store`, and appends them to `out`. Ids taken but not used (a change
/// that turned out to make fewer notifications) are given back to the
/// player's sequence, so ids stay without gaps.
async fn issue(
    c: &mut dyn SqlConn,
    store: bool,
    ids: Ids,
    drafts: Vec<Draft>,
    now_ms: i64,
    out: &mut Vec<Notice>,
) -> Result<(), StoreError> {
    let used = drafts.len() as i64;
    if used > ids.count {
        return Err(StoreError::Internal(format!(
            "{used} notifications for {} ids taken",
            ids.count
        )));
    }
    if used < ids.count {
        let unused = ids.count - used;
        match c.notice_ids() {
            Some(seqs) => seqs.give_back(ids.player_id, unused),
            None => {
                c.exec(
                    "UPDATE players SET notify_seq = notify_seq - ? WHERE id = ?",
                    args![unused, ids.player_id],
                )
                .await?;
            }
        }
    }
    let first = ids.last - ids.count + 1;
    for (i, (kind, data)) in drafts.into_iter().enumerate() {
        let notice = Notice {
            player_id: ids.player_id,
            id: first + i as i64,
            kind,
            data,
            at: now_ms,
        };
        if store {
            store_notice(c, &notice).await?;
        }
        out.push(notice);
    }
    Ok(())
}

/// Takes ids for `drafts` on `player_id`'s row (see [`take_ids`]; deleted
/// players too, whom the caller has already refused) and issues them. A
/// player without a row gets none.
async fn notify(
    c: &mut dyn SqlConn,
    store: bool,
    player_id: i64,
    drafts: Vec<Draft>,
    now_ms: i64,
    out: &mut Vec<Notice>,
) -> Result<(), StoreError> {
    if drafts.is_empty() {
        return Ok(());
    }
    match take_ids(c, player_id, drafts.len() as i64, true).await? {
        Some(ids) => issue(c, store, ids, drafts, now_ms, out).await,
        None => Ok(()),
    }
}

/// `value` with the notifications of `drafts` for one player.
async fn notified<T>(
    c: &mut dyn SqlConn,
    persist_all: bool,
    player_id: i64,
    drafts: Vec<Draft>,
    now_ms: i64,
    value: T,
) -> Result<Notified<T>, StoreError> {
    let taken = match drafts.len() as i64 {
        0 => None,
        n => take_ids(c, player_id, n, true).await?,
    };
    match taken {
        Some(ids) => issued(c, persist_all, ids, drafts, now_ms, value).await,
        None => Ok(Notified {
            value,
            notices: Vec::new(),
        }),
    }
}

/// `value` with the notifications of `drafts`, given the ids already taken.
async fn issued<T>(
    c: &mut dyn SqlConn,
    persist_all: bool,
    ids: Ids,
    drafts: Vec<Draft>,
    now_ms: i64,
    value: T,
) -> Result<Notified<T>, StoreError> {
    let mut notices = Vec::new();
    issue(c, persist_all, ids, drafts, now_ms, &mut notices).await?;
    Ok(Notified { value, notices })
}

/// The live player a change acts on, its row held for update with `count`
/// notification ids taken on it in the same statement (1001 if it is
/// missing or deleted, so a deletion and a change serialise on the row).
async fn live_player_ids(
    c: &mut dyn SqlConn,
    player_id: i64,
    count: i64,
) -> Result<Ids, StoreError> {
    take_ids(c, player_id, count, false)
        .await?
        .ok_or(StoreError::Rule(Rule::PlayerNotFound))
}

/// Writes one notification's row.
async fn store_notice(c: &mut dyn SqlConn, n: &Notice) -> Result<(), StoreError> {
    let data = serde_json::to_string(&n.data)
        .map_err(|e| StoreError::Internal(format!("a notification's fields: {e}")))?;
    c.exec(
        "INSERT INTO notifications (player_id, id, kind, data, created_at) VALUES (?, ?, ?, ?, ?)",
        args![n.player_id, n.id, n.kind.as_str(), data, n.at],
    )
    .await
    .map(|_| ())
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

async fn load_player(
    c: &mut dyn SqlConn,
    id: i64,
    lock: Lock,
) -> Result<Option<Player>, StoreError> {
    let suffix = lock.suffix(c.dialect());
    let sql = format!("SELECT {PLAYER_COLUMNS} FROM players WHERE id = ?{suffix}");
    c.query_one(&sql, args![id])
        .await?
        .map(|r| player_from(&r))
        .transpose()
}

/// The player a change acts on, held with `lock` for the rest of the
/// transaction; a deleted player is not found (1001), so a deletion and a
/// change of the same player serialise on its row.
async fn live_player(c: &mut dyn SqlConn, id: i64, lock: Lock) -> Result<Player, StoreError> {
    match load_player(c, id, lock).await? {
        Some(p) if p.status != PlayerStatus::Deleted => Ok(p),
        _ => Err(StoreError::Rule(Rule::PlayerNotFound)),
    }
}

/// The player a read shows: a deleted one only when `include_deleted`
/// (admins), else 1001 as if it did not exist.
async fn visible_player(
    c: &mut dyn SqlConn,
    id: i64,
    include_deleted: bool,
) -> Result<Player, StoreError> {
    match load_player(c, id, Lock::No).await? {
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

async fn load_item(
    c: &mut dyn SqlConn,
    item_id: &str,
    lock: Lock,
) -> Result<Option<ItemDef>, StoreError> {
    let suffix = lock.suffix(c.dialect());
    let sql = format!("SELECT {ITEM_COLUMNS} FROM item_defs WHERE item_id = ?{suffix}");
    c.query_one(&sql, args![item_id])
        .await?
        .map(|r| item_from(&r))
        .transpose()
}

/// The catalogue entry a sale, grant or transfer uses, share-locked until
/// the transaction ends: a withdrawal (status `deleted`) either commits
/// first and is seen here (2002), or waits until this change commits.
async fn active_item(c: &mut dyn SqlConn, item_id: &str) -> Result<ItemDef, StoreError> {
    match load_item(c, item_id, Lock::Share).await? {
        Some(def) if def.status == ItemStatus::Active => Ok(def),
        _ => Err(StoreError::Rule(Rule::ItemNotFound)),
    }
}

async fn entry(
    c: &mut dyn SqlConn,
    player_id: i64,
    item_id: &str,
) -> Result<InventoryEntry, StoreError> {
    let row = c
        .query_one(
            "SELECT quantity, updated_at FROM player_items WHERE player_id = ? AND item_id = ?",
            args![player_id, item_id],
        )
        .await?;
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
/// is deleted (1001), takes `notices` notification ids on the player's row
/// in the same statement, and writes the ledger row. Answers the balance
/// after the change and the ids; the caller's transaction holds the player
/// row after this.
async fn change_balance(
    c: &mut dyn SqlConn,
    account: Account<'_>,
    change: &BalanceChange<'_>,
    notices: i64,
) -> Result<(i64, Ids), StoreError> {
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
    let own_ids = c.notice_ids().is_some();
    // Where the row counts the ids, the term even for none: one
    // statement text per currency.
    let (term, params): (&str, &[SqlValue]) = if own_ids {
        ("", args![delta, now_ms, player_id, delta])
    } else {
        (TAKE_IDS, args![delta, now_ms, notices, player_id, delta])
    };
    let changed = c
        .exec(
            &format!(
                "UPDATE players SET {col} = {col} + ?, version = version + 1, updated_at = ?{term} \
                 WHERE id = ? AND status <> 'deleted' AND {col} + ? >= 0"
            ),
            params,
        )
        .await?;
    if changed == 0 {
        live_player(c, player_id, Lock::No).await?;
        return Err(StoreError::Rule(Rule::NotEnoughCurrency));
    }
    let last = match c.notice_ids() {
        _ if notices == 0 => 0,
        Some(seqs) => seqs
            .take(player_id, notices)?
            .ok_or(StoreError::Rule(Rule::PlayerNotFound))?,
        None => c.last_insert_id()?,
    };
    let balance = match held {
        // Nobody else can have changed it since: the row is ours.
        Some(before) => before + delta,
        None => match c
            .query_one(
                &format!("SELECT {col} FROM players WHERE id = ?"),
                args![player_id],
            )
            .await?
        {
            Some(r) => row_of("players", &r, |r| r.int(0))?,
            None => return Err(StoreError::Rule(Rule::PlayerNotFound)),
        },
    };
    c.exec(
        "INSERT INTO ledger (player_id, currency, delta, balance_after, reason, reference, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        args![player_id, col, delta, balance, reason, reference, now_ms],
    ).await?;
    let ids = Ids {
        player_id,
        last,
        count: notices,
    };
    Ok((balance, ids))
}

/// Adds `quantity` of a known item to a player within `max_stack`;
/// answers the stack after it (read back from the change itself with
/// `LAST_INSERT_ID(expr)`, not by another statement).
async fn add_items(
    c: &mut dyn SqlConn,
    player_id: i64,
    def: &ItemDef,
    quantity: i64,
    now_ms: i64,
) -> Result<i64, StoreError> {
    if quantity > def.max_stack {
        return Err(StoreError::Rule(Rule::StackLimit));
    }
    let item_id = def.item_id.as_str();
    for _ in 0..2 {
        let changed = c
            .exec(
                "UPDATE player_items SET quantity = LAST_INSERT_ID(quantity + ?), updated_at = ? \
             WHERE player_id = ? AND item_id = ? AND quantity + ? <= ?",
                args![
                    quantity,
                    now_ms,
                    player_id,
                    item_id,
                    quantity,
                    def.max_stack
                ],
            )
            .await?;
        if changed == 1 {
            // Never 0: `quantity` is at least 1.
            return c.last_insert_id();
        }
        let exists = c
            .query_one(
                "SELECT quantity FROM player_items WHERE player_id = ? AND item_id = ?",
                args![player_id, item_id],
            )
            .await?
            .is_some();
        if exists {
            return Err(StoreError::Rule(Rule::StackLimit));
        }
        match c.exec(
            "INSERT INTO player_items (player_id, item_id, quantity, updated_at) VALUES (?, ?, ?, ?)",
            args![player_id, item_id, quantity, now_ms],
        ).await {
            Ok(_) => return Ok(quantity),
            // Another transaction inserted the row first: update it instead.
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Unavailable("inventory row contention".into()))
}

/// Removes `quantity` of an item unless the player has fewer.
async fn remove_items(
    c: &mut dyn SqlConn,
    player_id: i64,
    item_id: &str,
    quantity: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    let changed = c
        .exec(
            "UPDATE player_items SET quantity = quantity - ?, updated_at = ? \
         WHERE player_id = ? AND item_id = ? AND quantity >= ?",
            args![quantity, now_ms, player_id, item_id, quantity],
        )
        .await?;
    if changed == 0 {
        return Err(StoreError::Rule(Rule::NotEnoughItems));
    }
    Ok(())
}

/// The count a `SELECT COUNT(*) ...` answers (0 if it answers no row; a
/// row that is not one integer is an error).
async fn count(c: &mut dyn SqlConn, sql: &str, params: &[SqlValue]) -> Result<i64, StoreError> {
    match c.query_one(sql, params).await? {
        Some(r) => row_of("a count", &r, |r| r.int(0)),
        None => Ok(0),
    }
}

/// The row, or the business rule that says it is missing.
fn found_or<T>(v: Option<T>, rule: Rule) -> Result<T, StoreError> {
    v.ok_or(StoreError::Rule(rule))
}
