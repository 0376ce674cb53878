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
    HEARTBEAT,
    REVOKED_TOKENS,
    SINGLETON_JOBS,
    Migration {
        version: 6,
        description: "usernames compare byte for byte (NO PAD)",
        // SQLite's BINARY collation never ignored trailing spaces: nothing to do.
        statements: &[],
    },
    NOTIFICATIONS,
    LEADERBOARDS,
    AUDIT,
    AUDIT_ONE_WRITER,
    AUDIT_NO_HEAD_ROWS,
    AUDIT_ONE_KEY,
];

/// Version 3, the same for both dialects: the heartbeat row the primary
/// updates so that replica lag can be measured in milliseconds.
const HEARTBEAT: Migration = Migration {
    version: 3,
    description: "replication heartbeat",
    statements: &[
        "CREATE TABLE dm_heartbeat (id INTEGER PRIMARY KEY, ts_ms BIGINT NOT NULL)",
        "INSERT INTO dm_heartbeat (id, ts_ms) VALUES (1, 0)",
    ],
};

/// Version 4, the same for both dialects: revoked game-server and admin
/// tokens, which have no row in `sessions`, so that their logout reaches every
/// node and survives a restart.
const REVOKED_TOKENS: Migration = Migration {
    version: 4,
    description: "revoked game-server and admin tokens",
    statements: &[
        "CREATE TABLE revoked_tokens (session_id VARCHAR(64) NOT NULL PRIMARY KEY, revoked_at BIGINT NOT NULL)",
        "CREATE INDEX revoked_tokens_by_time ON revoked_tokens (revoked_at)",
    ],
};

/// Version 5, the same for both dialects: singleton jobs (SPEC §7) — the
/// fencing token each job's writes are checked against, a record of every
/// run, and why an order was cancelled (`expired` by the job).
const SINGLETON_JOBS: Migration = Migration {
    version: 5,
    description: "fencing tokens and runs of singleton jobs, order cancel reasons",
    statements: &[
        "ALTER TABLE orders ADD COLUMN cancel_reason VARCHAR(32) NOT NULL DEFAULT ''",
        "CREATE INDEX orders_by_status_time ON orders (status, created_at)",
        "CREATE TABLE job_fences (job VARCHAR(64) NOT NULL PRIMARY KEY, token BIGINT NOT NULL, holder VARCHAR(128) NOT NULL, updated_at BIGINT NOT NULL)",
        "CREATE TABLE job_runs (job VARCHAR(64) NOT NULL, token BIGINT NOT NULL, holder VARCHAR(128) NOT NULL, started_at BIGINT NOT NULL, affected BIGINT NOT NULL, PRIMARY KEY (job, token, started_at))",
    ],
};

/// Version 7, the same for both dialects: notifications (SPEC §11). Each
/// player's row counts the notifications made for it (`notify_seq`, bumped
/// in the transaction of the change, so ids increase per player in commit
/// order); the stored ones (every `message`, all with `realtime.persist`)
/// are rows of `notifications`, keyed by player and id for resume.
const NOTIFICATIONS: Migration = Migration {
    version: 7,
    description: "per-player notification ids and stored notifications",
    statements: &[
        "ALTER TABLE players ADD COLUMN notify_seq BIGINT NOT NULL DEFAULT 0",
        "CREATE TABLE notifications (player_id BIGINT NOT NULL, id BIGINT NOT NULL, kind VARCHAR(16) NOT NULL, data TEXT NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (player_id, id))",
        "CREATE INDEX notifications_by_time ON notifications (created_at)",
    ],
};

/// Version 7 on MySQL: as [`NOTIFICATIONS`], the table in utf8mb4 (a
/// message's body is any Unicode text).
const MYSQL_NOTIFICATIONS: Migration = Migration {
    version: 7,
    description: NOTIFICATIONS.description,
    statements: &[
        "ALTER TABLE players ADD COLUMN notify_seq BIGINT NOT NULL DEFAULT 0",
        "CREATE TABLE notifications (player_id BIGINT NOT NULL, id BIGINT NOT NULL, kind VARCHAR(16) NOT NULL, data TEXT NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (player_id, id), KEY notifications_by_time (created_at)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    ],
};

/// Version 8: leaderboards (SPEC §12). A board's records are keyed by
/// board, period (the UTC start of the period in ms, 0 for a board that
/// never resets) and player; the index serves exact ranks in the board's
/// order (score, subscore, then the earlier write, then the player).
const LEADERBOARDS: Migration = Migration {
    version: 8,
    description: "leaderboards, their records and archived periods",
    statements: &[
        "CREATE TABLE leaderboards (id VARCHAR(64) NOT NULL PRIMARY KEY, sort VARCHAR(4) NOT NULL, operator VARCHAR(4) NOT NULL, reset VARCHAR(8) NOT NULL, player_writable INT NOT NULL, created_at BIGINT NOT NULL)",
        "CREATE TABLE leaderboard_records (board_id VARCHAR(64) NOT NULL, period BIGINT NOT NULL, player_id BIGINT NOT NULL, score BIGINT NOT NULL, subscore BIGINT NOT NULL, written_at BIGINT NOT NULL, last_write VARCHAR(64) NOT NULL DEFAULT '', version BIGINT NOT NULL DEFAULT 1, PRIMARY KEY (board_id, period, player_id))",
        "CREATE INDEX leaderboard_records_by_rank ON leaderboard_records (board_id, period, score, subscore, written_at, player_id)",
        "CREATE INDEX leaderboard_records_by_player ON leaderboard_records (player_id)",
        "CREATE TABLE leaderboard_archives (board_id VARCHAR(64) NOT NULL, period BIGINT NOT NULL, closed_at BIGINT NOT NULL, records BIGINT NOT NULL, holder VARCHAR(200) NOT NULL, PRIMARY KEY (board_id, period))",
    ],
};

/// Version 8 on MySQL: as [`LEADERBOARDS`], InnoDB with binary collation.
const MYSQL_LEADERBOARDS: Migration = Migration {
    version: 8,
    description: LEADERBOARDS.description,
    statements: &[
        "CREATE TABLE leaderboards (id VARCHAR(64) NOT NULL PRIMARY KEY, sort VARCHAR(4) NOT NULL, operator VARCHAR(4) NOT NULL, reset VARCHAR(8) NOT NULL, player_writable INT NOT NULL, created_at BIGINT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE leaderboard_records (board_id VARCHAR(64) NOT NULL, period BIGINT NOT NULL, player_id BIGINT NOT NULL, score BIGINT NOT NULL, subscore BIGINT NOT NULL, written_at BIGINT NOT NULL, last_write VARCHAR(64) NOT NULL DEFAULT '', version BIGINT NOT NULL DEFAULT 1, PRIMARY KEY (board_id, period, player_id), KEY leaderboard_records_by_rank (board_id, period, score, subscore, written_at, player_id), KEY leaderboard_records_by_player (player_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE leaderboard_archives (board_id VARCHAR(64) NOT NULL, period BIGINT NOT NULL, closed_at BIGINT NOT NULL, records BIGINT NOT NULL, holder VARCHAR(200) NOT NULL, PRIMARY KEY (board_id, period)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    ],
};

/// Version 9: the audit log (SPEC §13) — records hash-chained over
/// `audit::CHAINS` chains, each chain's head (on MySQL a row made at the
/// chain's first record and locked last in a change's transaction; the
/// rows go in version 11), and the signed checkpoints. A subject's records
/// are all in its chain: reads by subject scan that chain's key range, so
/// no subject index (whose random inserts cost every change pages) is kept.
const AUDIT: Migration = Migration {
    version: 9,
    description: "the audit log: records, chain heads, checkpoints",
    statements: &[
        "CREATE TABLE audit_records (chain INT NOT NULL, seq BIGINT NOT NULL, at BIGINT NOT NULL, actor_role VARCHAR(16) NOT NULL, actor_id VARCHAR(128) NOT NULL, client VARCHAR(64) NOT NULL, node VARCHAR(128) NOT NULL, action VARCHAR(64) NOT NULL, subject VARCHAR(128) NOT NULL, details TEXT NOT NULL, prev_hash CHAR(64) NOT NULL, hash CHAR(64) NOT NULL, PRIMARY KEY (chain, seq)) WITHOUT ROWID",
        "CREATE INDEX audit_records_by_time ON audit_records (at)",
        "CREATE INDEX audit_records_by_actor ON audit_records (actor_id, at)",
        "CREATE TABLE audit_heads (chain INT NOT NULL PRIMARY KEY, seq BIGINT NOT NULL, hash CHAR(64) NOT NULL) WITHOUT ROWID",
        "CREATE TABLE audit_checkpoints (chain INT NOT NULL, seq BIGINT NOT NULL, hash CHAR(64) NOT NULL, at BIGINT NOT NULL, node VARCHAR(128) NOT NULL, public_key CHAR(64) NOT NULL, signature CHAR(128) NOT NULL, PRIMARY KEY (chain, seq))",
    ],
};

/// Version 9 on MySQL: as [`AUDIT`], InnoDB with binary collation.
const MYSQL_AUDIT: Migration = Migration {
    version: 9,
    description: AUDIT.description,
    statements: &[
        "CREATE TABLE audit_records (chain INT NOT NULL, seq BIGINT NOT NULL, at BIGINT NOT NULL, actor_role VARCHAR(16) NOT NULL, actor_id VARCHAR(128) NOT NULL, client VARCHAR(64) NOT NULL, node VARCHAR(128) NOT NULL, action VARCHAR(64) NOT NULL, subject VARCHAR(128) NOT NULL, details TEXT NOT NULL, prev_hash CHAR(64) NOT NULL, hash CHAR(64) NOT NULL, PRIMARY KEY (chain, seq), KEY audit_records_by_time (at), KEY audit_records_by_actor (actor_id, at)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE audit_heads (chain INT NOT NULL PRIMARY KEY, seq BIGINT NOT NULL, hash CHAR(64) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE audit_checkpoints (chain INT NOT NULL, seq BIGINT NOT NULL, hash CHAR(64) NOT NULL, at BIGINT NOT NULL, node VARCHAR(128) NOT NULL, public_key CHAR(64) NOT NULL, signature CHAR(128) NOT NULL, PRIMARY KEY (chain, seq)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    ],
};

/// Version 10 on SQLite: the audit log's hot path gives up the records'
/// secondary indexes. Since this version SQLite appends every record to one
/// chain (its file has one writer; see `Dialect::audit_chains`), at the
/// tail of the records' key: an audited commit then adds one page to its
/// log. The actor index, keyed by the actor (a player id: a random leaf),
/// and the time index added one page each. Reads list the records in the
/// order written (chain, then seq) and filter them. Records of a log begun
/// over 1,024 chains stay where they are and verify as they did; a dropped
/// index loses no record.
const AUDIT_ONE_WRITER: Migration = Migration {
    version: 10,
    description: "the audit log on SQLite: one chain appended at its tail, no secondary index",
    statements: &[
        "DROP INDEX IF EXISTS audit_records_by_actor",
        "DROP INDEX IF EXISTS audit_records_by_time",
    ],
};

/// Version 10 on MySQL: nothing changes — the chains, their head rows and
/// the time and actor indexes (InnoDB buffers secondary index inserts) stay
/// as they are; the step is recorded so both backends number their versions
/// alike.
const MYSQL_AUDIT_ONE_WRITER: Migration = Migration {
    version: 10,
    description: "the audit log: unchanged on MySQL (SQLite drops its secondary indexes)",
    statements: &[],
};

/// Version 11, the same for both dialects: the chains' head rows go. An
/// append takes the places after its chain's head in the records' own key
/// (`sql_store::audit`), so no change updates a head row any more (on
/// MySQL that row was a second statement, a row image in the binary log
/// and a lock on every audited change); a chain's head is its newest
/// record. SQLite never moved its rows (it keeps its heads in memory).
const AUDIT_NO_HEAD_ROWS: Migration = Migration {
    version: 11,
    description: "the audit log: no head rows (a chain's head is its newest record)",
    statements: &["DROP TABLE IF EXISTS audit_heads"],
};

/// Version 12 on SQLite: a record's chain and seq become one integer key,
/// the table's `rowid` (`chain << 40 | seq`, see `sql_store::audit`; the
/// `chain` and `seq` columns are computed from it). Records appended in
/// order then go to the table's last leaf, which SQLite splits by starting
/// a new page; the `(chain, seq)` key of a `WITHOUT ROWID` table rebalanced
/// its last three leaves instead, so one audited commit in six wrote four
/// more pages to the log (1.83 pages a commit against 1.15 now, measured
/// in bench/RESULTS.md, "Issue 28" run 10). Every record is copied, in
/// order, with its key computed from where it was. A record whose chain or
/// seq has no key (a chain outside 0–1,023 or a negative seq: only a hand
/// edit makes one) stops the step — and the node's start — on the named
/// `CHECK`, rather than land in another chain's place.
const AUDIT_ONE_KEY: Migration = Migration {
    version: 12,
    description: "the audit log on SQLite: a record's chain and seq in one rowid key",
    statements: &[
        "CREATE TABLE audit_records_keyed (id INTEGER PRIMARY KEY CONSTRAINT audit_record_chain_and_seq_in_range CHECK (id >= 0), chain INT GENERATED ALWAYS AS (id >> 40) VIRTUAL, seq BIGINT GENERATED ALWAYS AS (id & 1099511627775) VIRTUAL, at BIGINT NOT NULL, actor_role VARCHAR(16) NOT NULL, actor_id VARCHAR(128) NOT NULL, client VARCHAR(64) NOT NULL, node VARCHAR(128) NOT NULL, action VARCHAR(64) NOT NULL, subject VARCHAR(128) NOT NULL, details TEXT NOT NULL, prev_hash CHAR(64) NOT NULL, hash CHAR(64) NOT NULL)",
        "INSERT INTO audit_records_keyed (id, at, actor_role, actor_id, client, node, action, subject, details, prev_hash, hash) SELECT CASE WHEN chain BETWEEN 0 AND 1023 AND seq BETWEEN 0 AND 1099511627775 THEN (chain << 40) + seq ELSE -1 END, at, actor_role, actor_id, client, node, action, subject, details, prev_hash, hash FROM audit_records ORDER BY chain, seq",
        "DROP TABLE audit_records",
        "ALTER TABLE audit_records_keyed RENAME TO audit_records",
    ],
};

/// Version 12 on MySQL: nothing changes — the records' clustered key stays
/// `(chain, seq)`; the step is recorded so both backends number their
/// versions alike.
const MYSQL_AUDIT_ONE_KEY: Migration = Migration {
    version: 12,
    description: "the audit log: unchanged on MySQL (SQLite keys records by one integer)",
    statements: &[],
};

/// The MySQL/MariaDB migrations (InnoDB, utf8mb4 with binary collation so
/// that uniqueness matches SQLite's): the same numbered steps as [`SQLITE`].
pub const MYSQL: &[Migration] = &[
    Migration {
        version: 1,
        description: "players, item catalogue, inventories, orders, ledger, sessions",
        statements: &[
            "CREATE TABLE players (
                id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                username VARCHAR(64) NOT NULL UNIQUE,
                password_hash VARCHAR(255) NOT NULL,
                email VARCHAR(254) NOT NULL DEFAULT '',
                nickname VARCHAR(64) NOT NULL DEFAULT '',
                avatar VARCHAR(512) NOT NULL DEFAULT '',
                level BIGINT NOT NULL DEFAULT 1,
                exp BIGINT NOT NULL DEFAULT 0,
                gold BIGINT NOT NULL DEFAULT 0 CHECK (gold >= 0),
                diamonds BIGINT NOT NULL DEFAULT 0 CHECK (diamonds >= 0),
                status VARCHAR(16) NOT NULL DEFAULT 'active',
                version BIGINT NOT NULL DEFAULT 1,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                last_login_at BIGINT NOT NULL DEFAULT 0
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            "CREATE TABLE item_defs (
                item_id VARCHAR(64) NOT NULL PRIMARY KEY,
                name VARCHAR(128) NOT NULL,
                type VARCHAR(32) NOT NULL DEFAULT '',
                quality VARCHAR(32) NOT NULL DEFAULT '',
                description VARCHAR(1024) NOT NULL DEFAULT '',
                price_gold BIGINT NOT NULL DEFAULT 0 CHECK (price_gold >= 0),
                price_diamonds BIGINT NOT NULL DEFAULT 0 CHECK (price_diamonds >= 0),
                max_stack BIGINT NOT NULL DEFAULT 1 CHECK (max_stack >= 1),
                status VARCHAR(16) NOT NULL DEFAULT 'active'
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            "CREATE TABLE player_items (
                player_id BIGINT NOT NULL,
                item_id VARCHAR(64) NOT NULL,
                quantity BIGINT NOT NULL CHECK (quantity >= 0),
                updated_at BIGINT NOT NULL,
                PRIMARY KEY (player_id, item_id),
                FOREIGN KEY (player_id) REFERENCES players(id)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            "CREATE TABLE orders (
                order_id VARCHAR(64) NOT NULL PRIMARY KEY,
                player_id BIGINT NOT NULL,
                item_id VARCHAR(64) NOT NULL,
                quantity BIGINT NOT NULL CHECK (quantity > 0),
                unit_price BIGINT NOT NULL,
                total_price BIGINT NOT NULL,
                currency VARCHAR(16) NOT NULL,
                status VARCHAR(16) NOT NULL,
                idempotency_key VARCHAR(64) NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                paid_at BIGINT NOT NULL DEFAULT 0,
                UNIQUE KEY orders_idempotency (player_id, idempotency_key),
                KEY orders_by_player (player_id, created_at),
                FOREIGN KEY (player_id) REFERENCES players(id)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            "CREATE TABLE ledger (
                id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                player_id BIGINT NOT NULL,
                currency VARCHAR(16) NOT NULL,
                delta BIGINT NOT NULL,
                balance_after BIGINT NOT NULL CHECK (balance_after >= 0),
                reason VARCHAR(128) NOT NULL,
                reference VARCHAR(128) NOT NULL DEFAULT '',
                created_at BIGINT NOT NULL,
                KEY ledger_by_player (player_id, id),
                FOREIGN KEY (player_id) REFERENCES players(id)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            "CREATE TABLE sessions (
                session_id VARCHAR(64) NOT NULL PRIMARY KEY,
                player_id BIGINT NOT NULL,
                refresh_hash VARCHAR(64) NOT NULL,
                revoked INT NOT NULL DEFAULT 0,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                KEY sessions_by_player (player_id)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        ],
    },
    Migration {
        version: 2,
        description: "refresh-token rotation history, session revocation time, daily rewards",
        statements: &[
            "ALTER TABLE sessions ADD COLUMN revoked_at BIGINT NOT NULL DEFAULT 0, ADD KEY sessions_by_revocation (revoked_at)",
            "CREATE TABLE refresh_history (
                refresh_hash VARCHAR(64) NOT NULL PRIMARY KEY,
                session_id VARCHAR(64) NOT NULL,
                used_at BIGINT NOT NULL
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            "CREATE TABLE daily_rewards (
                player_id BIGINT NOT NULL,
                day BIGINT NOT NULL,
                PRIMARY KEY (player_id, day)
            ) ENGINE=InnoDB",
        ],
    },
    HEARTBEAT,
    REVOKED_TOKENS,
    SINGLETON_JOBS,
    Migration {
        version: 6,
        description: "usernames compare byte for byte (NO PAD)",
        // MariaDB's utf8mb4_bin is a PAD SPACE collation: `name` and `name `
        // compared equal, so a padded username found (and logged in as) the
        // player (issue 21). utf8mb4_nopad_bin compares byte for byte, as
        // SQLite does. The `/*M!` comment runs on MariaDB only; MySQL 8
        // keeps its collation, and the service refuses padded usernames
        // before any query on both (crate::validate::canonical_username).
        statements: &[
            "ALTER TABLE players MODIFY username VARCHAR(64) /*M! CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin */ NOT NULL",
        ],
    },
    MYSQL_NOTIFICATIONS,
    MYSQL_LEADERBOARDS,
    MYSQL_AUDIT,
    MYSQL_AUDIT_ONE_WRITER,
    AUDIT_NO_HEAD_ROWS,
    MYSQL_AUDIT_ONE_KEY,
];
