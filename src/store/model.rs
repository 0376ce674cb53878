//! Rows of the per-game database as plain Rust values, shared by every backend.

use serde::Serialize;

/// A player's profile and balances (the `players` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Player {
    /// 64-bit primary key.
    pub id: i64,
    /// Unique within the game.
    pub username: String,
    /// Contact address, possibly empty.
    pub email: String,
    /// Display name; starts as the username.
    pub nickname: String,
    /// Avatar URL or key, possibly empty.
    pub avatar: String,
    /// Level, computed by the game logic and never lowered.
    pub level: i64,
    /// Experience points.
    pub exp: i64,
    /// Gold balance, never below zero.
    pub gold: i64,
    /// Diamond balance, never below zero.
    pub diamonds: i64,
    /// `active`, `banned` or `deleted`.
    pub status: PlayerStatus,
    /// Optimistic-lock version, bumped by every update.
    pub version: i64,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Last update time, Unix milliseconds.
    pub updated_at: i64,
    /// Last login, Unix milliseconds; 0 when never.
    pub last_login_at: i64,
}

/// Account state of a player.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlayerStatus {
    /// May log in and play.
    Active,
    /// Refused at login (error 1004).
    Banned,
    /// Soft-deleted.
    Deleted,
}

impl PlayerStatus {
    /// The value stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            PlayerStatus::Active => "active",
            PlayerStatus::Banned => "banned",
            PlayerStatus::Deleted => "deleted",
        }
    }

    /// Parses a stored or requested value.
    pub fn parse(s: &str) -> Option<PlayerStatus> {
        match s {
            "active" => Some(PlayerStatus::Active),
            "banned" => Some(PlayerStatus::Banned),
            "deleted" => Some(PlayerStatus::Deleted),
            _ => None,
        }
    }
}

/// What registration stores for a new player.
#[derive(Debug, Clone)]
pub struct NewPlayer {
    /// Unique username.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Optional e-mail.
    pub email: String,
    /// Starting gold, recorded in the ledger as a signup grant.
    pub signup_gold: i64,
    /// Starting diamonds, recorded in the ledger as a signup grant.
    pub signup_diamonds: i64,
    /// Creation time, Unix milliseconds.
    pub now_ms: i64,
}

/// The credentials row looked up at login.
#[derive(Debug, Clone)]
pub struct PlayerCredentials {
    /// Player id.
    pub id: i64,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Account state.
    pub status: PlayerStatus,
}

/// The two currencies of SPEC §5 (rendered in JSON by name, e.g. in the
/// ledger).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Currency {
    /// Soft currency.
    Gold,
    /// Hard currency.
    Diamonds,
}

impl Currency {
    /// The name in JSON and the ledger, which is also the `players` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Currency::Gold => "gold",
            Currency::Diamonds => "diamonds",
        }
    }

    /// Parses `gold` or `diamonds`.
    pub fn parse(s: &str) -> Option<Currency> {
        match s {
            "gold" => Some(Currency::Gold),
            "diamonds" => Some(Currency::Diamonds),
            _ => None,
        }
    }
}

/// Optional profile changes; `None` leaves a field as it is (and is left
/// out of the audit record's details).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct PlayerPatch {
    /// New nickname.
    pub nickname: Option<String>,
    /// New avatar.
    pub avatar: Option<String>,
    /// New e-mail.
    pub email: Option<String>,
    /// New level (game servers and admins only).
    pub level: Option<i64>,
    /// New experience (game servers and admins only).
    pub exp: Option<i64>,
    /// New status (game servers and admins only).
    pub status: Option<PlayerStatus>,
}

/// A catalogue entry (the `item_defs` table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemDef {
    /// Catalogue key.
    pub item_id: String,
    /// Display name.
    pub name: String,
    /// Free-form type, e.g. `consumable` (`type` in the API and in audit
    /// records).
    #[serde(rename = "type")]
    pub item_type: String,
    /// Free-form quality, e.g. `rare`.
    pub quality: String,
    /// Text shown to players in the shop.
    pub description: String,
    /// Price in gold; 0 means not sold for gold.
    pub price_gold: i64,
    /// Price in diamonds; 0 means not sold for diamonds.
    pub price_diamonds: i64,
    /// Most a player may hold.
    pub max_stack: i64,
    /// Sold and granted, or withdrawn.
    pub status: ItemStatus,
}

/// Catalogue state of an item (SPEC §5: a withdrawn item is not sold or
/// granted). Rendered in JSON by its stored name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    /// Sold and granted.
    Active,
    /// Withdrawn: not sold or granted (2002); inventories keep what they hold.
    Deleted,
}

impl ItemStatus {
    /// The value stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Active => "active",
            ItemStatus::Deleted => "deleted",
        }
    }

    /// Parses a stored or requested value.
    pub fn parse(s: &str) -> Option<ItemStatus> {
        match s {
            "active" => Some(ItemStatus::Active),
            "deleted" => Some(ItemStatus::Deleted),
            _ => None,
        }
    }
}

impl ItemDef {
    /// The unit price in `currency`, if the item is sold for it.
    pub fn price(&self, currency: Currency) -> Option<i64> {
        let p = match currency {
            Currency::Gold => self.price_gold,
            Currency::Diamonds => self.price_diamonds,
        };
        (p > 0).then_some(p)
    }
}

/// Optional catalogue changes (also the body of `PUT /api/v1/items/{id}`).
#[derive(Debug, Clone, Default, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ItemDefPatch {
    /// New name.
    pub name: Option<String>,
    /// New type.
    #[serde(rename = "type")]
    pub item_type: Option<String>,
    /// New quality.
    pub quality: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New gold price.
    pub price_gold: Option<i64>,
    /// New diamond price.
    pub price_diamonds: Option<i64>,
    /// New stack limit.
    pub max_stack: Option<i64>,
    /// New status as requested: text, so that the service can answer a bad
    /// value with its own 400 message; it checks it with
    /// [`ItemStatus::parse`], and the store refuses anything else.
    pub status: Option<String>,
}

/// One line of a player's inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryEntry {
    /// The player who holds the item.
    pub player_id: i64,
    /// The catalogue entry held.
    pub item_id: String,
    /// Quantity held (≥ 0).
    pub quantity: i64,
    /// Last change, Unix ms.
    pub updated_at: i64,
}

/// Order states of SPEC §5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// Created, not paid.
    Pending,
    /// Charged and delivered.
    Paid,
    /// Cancelled before payment.
    Cancelled,
    /// Paid, then reversed by an admin.
    Refunded,
}

impl OrderStatus {
    /// Stored and JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Refunded => "refunded",
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(s: &str) -> Option<OrderStatus> {
        match s {
            "pending" => Some(OrderStatus::Pending),
            "paid" => Some(OrderStatus::Paid),
            "cancelled" => Some(OrderStatus::Cancelled),
            "refunded" => Some(OrderStatus::Refunded),
            _ => None,
        }
    }
}

/// An order (the `orders` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Time-sortable unique id.
    pub order_id: String,
    /// The player who pays and receives the items.
    pub player_id: i64,
    /// Item bought.
    pub item_id: String,
    /// How many.
    pub quantity: i64,
    /// Price of one, in `currency`.
    pub unit_price: i64,
    /// `unit_price × quantity`.
    pub total_price: i64,
    /// Currency charged.
    pub currency: Currency,
    /// Where the order is in `pending → paid | cancelled`, `paid → refunded`.
    pub status: OrderStatus,
    /// Client's idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// Creation, Unix ms.
    pub created_at: i64,
    /// Last change, Unix ms.
    pub updated_at: i64,
    /// Payment, Unix ms; 0 when unpaid.
    pub paid_at: i64,
    /// Why a cancelled order was cancelled: `expired` when the singleton
    /// job did it, empty otherwise.
    pub cancel_reason: String,
}

/// Orders one run of the expiry job cancels at most; the rest wait for
/// the next run.
pub const EXPIRE_BATCH: i64 = 1_000;

/// A singleton job's work, run under a fencing token (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FencedJob {
    /// Cancels pending orders created before the time, reason `expired`
    /// (at most [`EXPIRE_BATCH`] a run), each player notified.
    ExpireOrders {
        /// Unix ms: orders created earlier expire.
        created_before_ms: i64,
    },
    /// Deletes sessions whose refresh token expired, and revoked-token
    /// records older than any access token can live.
    PurgeSessions {
        /// Unix ms: sessions that expired earlier go.
        expired_before_ms: i64,
        /// Unix ms: revoked-token records written earlier go.
        revoked_before_ms: i64,
    },
    /// Deletes stored notifications older than `realtime.keep_days`.
    PurgeNotifications {
        /// Unix ms: notifications made earlier go.
        created_before_ms: i64,
    },
    /// Closes the periods of resetting leaderboards that ended by `now_ms`
    /// (an archive row each, once: its key is the board and period) and
    /// deletes the records of periods older than the current one and
    /// `keep_periods` before it.
    ResetLeaderboards {
        /// The boards' clock (Unix ms).
        now_ms: i64,
        /// Past periods kept readable (`leaderboards.keep_periods`).
        keep_periods: i64,
    },
}

impl FencedJob {
    /// The job's name: its lock, its fencing row and its runs.
    pub fn name(&self) -> &'static str {
        match self {
            FencedJob::ExpireOrders { .. } => "expire-orders",
            FencedJob::PurgeSessions { .. } => "purge-sessions",
            FencedJob::PurgeNotifications { .. } => "purge-notifications",
            FencedJob::ResetLeaderboards { .. } => "reset-leaderboards",
        }
    }
}

/// What a fenced job's transaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FencedRun {
    /// The work ran and changed this many rows.
    Ran(u64),
    /// Refused, nothing written: a holder with the newer token `newer`
    /// has written (the lease passed on, or the Redis counter that hands
    /// out tokens was lost and restarted below the database's).
    Stale {
        /// The newest token the database has seen for the job.
        newer: i64,
    },
    /// Not run by a stand-alone node: a cluster's lease holder ran the job
    /// on this database within the last minute.
    ClusterActive,
}

/// What order creation needs.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// Id to use if a new order is created.
    pub order_id: String,
    /// The player who pays and receives the items.
    pub player_id: i64,
    /// The catalogue entry bought.
    pub item_id: String,
    /// Quantity (≥ 1).
    pub quantity: i64,
    /// The currency the price is charged in.
    pub currency: Currency,
    /// Idempotency key, if the client sent one.
    pub idempotency_key: Option<String>,
    /// Now, Unix ms.
    pub now_ms: i64,
}

/// One currency change (the `ledger` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Sequence number.
    pub id: i64,
    /// The player whose balance changed.
    pub player_id: i64,
    /// The balance that changed.
    pub currency: Currency,
    /// Signed change.
    pub delta: i64,
    /// Balance after the change.
    pub balance_after: i64,
    /// Why (signup, wallet, order_pay, order_refund, daily_reward, ...).
    pub reason: String,
    /// Order id, action or caller.
    pub reference: String,
    /// When, Unix ms.
    pub created_at: i64,
}

/// Page selection: 1-based page, 1 to 100 rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// 1-based page number.
    pub page: i64,
    /// Rows per page.
    pub page_size: i64,
}

impl PageRequest {
    /// Rows to skip.
    pub fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.page_size)
    }
}

/// One page of rows and the total count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Rows in all pages.
    pub total: i64,
}

/// A change of a player's progress computed by a game logic module.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// Adds experience; the level becomes `max(level, level_for(exp))`.
    /// Refused (nothing changes) when experience would pass `max_exp`.
    AddExp {
        /// Experience to add (> 0).
        amount: i64,
        /// The game's level formula; it never answers more than the highest
        /// level a profile update may set.
        level_for: fn(i64) -> i64,
        /// Most experience a player may have.
        max_exp: i64,
    },
    /// Raises the level by one, with experience at least `exp_for(level)`;
    /// refused at `max_level`.
    LevelUp {
        /// Experience needed to reach a level.
        exp_for: fn(i64) -> i64,
        /// Highest level.
        max_level: i64,
    },
    /// Grants a currency once per `day` (days since the Unix epoch, UTC).
    DailyReward {
        /// UTC day number.
        day: i64,
        /// Currency granted.
        currency: Currency,
        /// Amount granted.
        amount: i64,
    },
}

/// Outcome of a refresh-token rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The presented token was current: it is replaced; the session's player.
    Rotated {
        /// The session's player.
        player_id: i64,
    },
    /// An old, already rotated token was presented: the session is revoked.
    Reused,
    /// Unknown, expired or revoked.
    Invalid,
}

/// Figures for `GET /api/v1/games/{id}/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GameStats {
    /// Registered players, any status.
    pub players: i64,
    /// Players with status active.
    pub active_players: i64,
    /// Orders in any state.
    pub orders: i64,
    /// Paid orders.
    pub paid_orders: i64,
    /// Catalogue entries.
    pub items: i64,
}

/// What a notification is about (SPEC §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// A balance changed: currency, delta, balance, reason.
    Wallet,
    /// An item was used, granted, moved, bought or taken back: item_id,
    /// delta, quantity.
    Item,
    /// An order was made or changed state: order_id, status.
    Order,
    /// A message to the player: subject, body, from. Always stored.
    Message,
    /// The game goes into or out of maintenance: message.
    Maintenance,
    /// The player's account status changed (e.g. banned): status.
    Player,
    /// The player's rank on a board moved into (or within) the top 10:
    /// board, period, rank, score, subscore.
    Leaderboard,
}

impl NoticeKind {
    /// Every kind, for parsing stored rows.
    pub const ALL: [NoticeKind; 7] = [
        NoticeKind::Wallet,
        NoticeKind::Item,
        NoticeKind::Order,
        NoticeKind::Message,
        NoticeKind::Maintenance,
        NoticeKind::Player,
        NoticeKind::Leaderboard,
    ];

    /// The name on the wire and in the `notifications` table.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Wallet => "wallet",
            NoticeKind::Item => "item",
            NoticeKind::Order => "order",
            NoticeKind::Message => "message",
            NoticeKind::Maintenance => "maintenance",
            NoticeKind::Player => "player",
            NoticeKind::Leaderboard => "leaderboard",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<NoticeKind> {
        NoticeKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One notification for one player: made in the transaction of the change
/// it tells about, with the next id of that player's sequence, so ids
/// increase per player in the order the changes committed.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// Whom it is for.
    pub player_id: i64,
    /// Its id in the player's sequence (1, 2, ...).
    pub id: i64,
    /// What it is about.
    pub kind: NoticeKind,
    /// The kind's fields (a JSON object once rendered).
    pub data: NoticeData,
    /// When the change committed (Unix ms).
    pub at: i64,
}

/// A notification's fields (SPEC §11), kept typed until something renders
/// them: most notifications a change makes are dropped unread (no socket
/// follows the player, nothing is stored), and building a JSON object for
/// each was a measurable part of every write. Renders as the JSON object
/// SPEC §11 gives for its kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum NoticeData {
    /// A balance changed (`wallet`).
    Wallet {
        /// Which balance.
        currency: Currency,
        /// By how much it changed.
        delta: i64,
        /// The balance after the change.
        balance: i64,
        /// The change's ledger reason.
        reason: String,
    },
    /// A stack changed (`item`).
    Item {
        /// Which item.
        item_id: String,
        /// By how much the stack changed.
        delta: i64,
        /// The stack after the change.
        quantity: i64,
    },
    /// An order reached a state (`order`).
    Order {
        /// Which order.
        order_id: String,
        /// Its new state's name.
        status: &'static str,
    },
    /// Any other kind's fields, and every stored notification read back.
    Json(serde_json::Value),
}

/// A balance change asked of [`crate::store::PlayerStore::adjust_balance`].
#[derive(Debug, Clone, Copy)]
pub struct WalletAdjustment<'a> {
    /// Which balance.
    pub currency: Currency,
    /// By how much (may be negative; never below zero).
    pub delta: i64,
    /// The ledger's reason.
    pub reason: &'a str,
    /// The ledger's reference.
    pub reference: &'a str,
}

/// Which audit records a read wants (`GET /api/v1/audit`).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only those by this actor id (a player id, an admin's name, ...).
    pub actor: Option<String>,
    /// Only those about this subject (`player:42`, `order:o1`, ...).
    pub subject: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only those after this one (its `at`, chain and seq).
    pub after: Option<(i64, i64, i64)>,
    /// At most this many.
    pub limit: i64,
}

/// What a change returns together with the notifications it made, for the
/// service to deliver once it committed.
#[derive(Debug, Clone)]
pub struct Notified<T> {
    /// The change's own result.
    pub value: T,
    /// Its notifications, in id order per player.
    pub notices: Vec<Notice>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_status_round_trips_and_renders_as_before() {
        for s in [ItemStatus::Active, ItemStatus::Deleted] {
            assert_eq!(ItemStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).ok(), Some(s.as_str().into()));
        }
        assert_eq!(ItemStatus::parse("bogus"), None);
        assert_eq!(ItemStatus::parse("Active"), None, "stored names are exact");
    }

    #[test]
    fn currencies_render_by_name() {
        for c in [Currency::Gold, Currency::Diamonds] {
            assert_eq!(Currency::parse(c.as_str()), Some(c));
            assert_eq!(serde_json::to_value(c).ok(), Some(c.as_str().into()));
        }
    }
}
