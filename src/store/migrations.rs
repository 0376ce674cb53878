//! Versioned schema migrations. Each backend has its own SQL dialect for the
//! same numbered steps, so a database of either kind at version N has the same
//! tables and columns. Applied at start-up, each in its own transaction, and
//! recorded in `schema_migrations`.

/// One schema step: a version number and the statements that reach it.
pub struct Migration {
    /// Strictly increasing version number.
    pub version: u32,
    /// What the step does, for logs.
    pub description: &'static str,
    /// Statements, executed in order.
    pub statements: &'static [&'static str],
}

/// The SQLite migrations.
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        description: "players, item catalogue, inventories, orders, ledger, sessions",
        statements: &[
            "CREATE TABLE players (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            username TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            email TEXT NOT NULL DEFAULT '',
            nickname TEXT NOT NULL DEFAULT '',
            avatar TEXT NOT NULL DEFAULT '',
            level INTEGER NOT NULL DEFAULT 1,
            exp INTEGER NOT NULL DEFAULT 0,
            gold INTEGER NOT NULL DEFAULT 0 CHECK (gold >= 0),
            diamonds INTEGER NOT NULL DEFAULT 0 CHECK (diamonds >= 0),
            status TEXT NOT NULL DEFAULT 'active',
            version INTEGER NOT NULL DEFAULT 1,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            last_login_at INTEGER NOT NULL DEFAULT 0
        )",
            "CREATE TABLE item_defs (
            item_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            type TEXT NOT NULL DEFAULT '',
            quality TEXT NOT NULL DEFAULT '',
            description TEXT NOT NULL DEFAULT '',
            price_gold INTEGER NOT NULL DEFAULT 0 CHECK (price_gold >= 0),
            price_diamonds INTEGER NOT NULL DEFAULT 0 CHECK (price_diamonds >= 0),
            max_stack INTEGER NOT NULL DEFAULT 1 CHECK (max_stack >= 1),
            status TEXT NOT NULL DEFAULT 'active'
        )",
            "CREATE TABLE player_items (
            player_id INTEGER NOT NULL REFERENCES players(id),
            item_id TEXT NOT NULL,
            quantity INTEGER NOT NULL CHECK (quantity >= 0),
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (player_id, item_id)
        )",
            "CREATE TABLE orders (
            order_id TEXT PRIMARY KEY,
            player_id INTEGER NOT NULL REFERENCES players(id),
            item_id TEXT NOT NULL,
            quantity INTEGER NOT NULL CHECK (quantity > 0),
            unit_price INTEGER NOT NULL,
            total_price INTEGER NOT NULL,
            currency TEXT NOT NULL,
            status TEXT NOT NULL,
            idempotency_key TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            paid_at INTEGER NOT NULL DEFAULT 0,
            UNIQUE (player_id, idempotency_key)
        )",
            "CREATE INDEX orders_by_player ON orders (player_id, created_at)",
            "CREATE TABLE ledger (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            player_id INTEGER NOT NULL REFERENCES players(id),
            currency TEXT NOT NULL,
            delta INTEGER NOT NULL,
            balance_after INTEGER NOT NULL CHECK (balance_after >= 0),
            reason TEXT NOT NULL,
            reference TEXT NOT NULL DEFAULT '',
            created_at INTEGER NOT NULL
        )",
            "CREATE INDEX ledger_by_player ON ledger (player_id, id)",
            "CREATE TABLE sessions (
            session_id TEXT PRIMARY KEY,
            player_id INTEGER NOT NULL REFERENCES players(id),
            refresh_hash TEXT NOT NULL,
            revoked INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        )",
            "CREATE INDEX sessions_by_player ON sessions (player_id)",
        ],
    },
    Migration {
        version: 2,
        description: "refresh-token rotation history, session revocation time, daily rewards",
        statements: &[
            "ALTER TABLE sessions ADD COLUMN revoked_at INTEGER NOT NULL DEFAULT 0",
            "CREATE INDEX sessions_by_revocation ON sessions (revoked_at)",
            "CREATE TABLE refresh_history (
            refresh_hash TEXT PRIMARY KEY,
            session_id TEXT NOT NULL,
            used_at INTEGER NOT NULL
        )",
            "CREATE TABLE daily_rewards (
            player_id INTEGER NOT NULL,
            day INTEGER NOT NULL,
            PRIMARY KEY (player_id, day)
        )",
        ],
    },
];
