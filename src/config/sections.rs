//! The key catalogue: [`Config`] and one struct per TOML section, every key
//! with its type, its meaning and its built-in default (`impl Default`). This
//! is the one list of what a configuration may say: serde's
//! `deny_unknown_fields` refuses any other key in the file, the environment
//! overrides accept only keys the defaults serialise, and
//! `tests/config_docs.rs` checks docs/configuration.md against these defaults.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The whole node configuration, as read from TOML.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Identity and threading of this node.
    pub node: NodeConfig,
    /// HTTP/JSON front end.
    pub http: HttpConfig,
    /// Binary TCP front end for game servers.
    pub tcp: TcpConfig,
    /// Tokens, passwords and rate limits.
    pub auth: AuthConfig,
    /// L1/L2 cache settings.
    pub cache: CacheConfig,
    /// Cluster coordination through Redis.
    pub cluster: ClusterConfig,
    /// Orders: how long a pending order lives.
    pub orders: OrdersConfig,
    /// WebSocket notifications: what is stored and how much a socket queues.
    pub realtime: RealtimeConfig,
    /// Leaderboards: how many past periods stay readable.
    pub leaderboards: LeaderboardsConfig,
    /// The audit log's checkpoints: signing key and interval.
    pub audit: AuditConfig,
    /// Log level, format and the access log.
    pub log: LogConfig,
    /// Game used when a request names none (`X-Game-Id` absent).
    pub default_game: String,
    /// Every game this node serves, by game id.
    pub games: BTreeMap<String, GameConfig>,
    /// Operator accounts (role `admin`), by user name.
    pub admins: BTreeMap<String, AdminAccount>,
}

/// `[admins.<name>]`: an operator account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminAccount {
    /// argon2id PHC string (`datamiddleware hash-password` prints one).
    pub password_hash: String,
}

/// `[[games.<id>.items]]`: a catalogue entry seeded at start-up when absent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemSeed {
    /// Catalogue key: 1 to 64 of `[A-Za-z0-9_.-]`.
    pub item_id: String,
    /// Display name.
    pub name: String,
    /// Free-form type.
    #[serde(rename = "type", default)]
    pub item_type: String,
    /// Free-form quality.
    #[serde(default)]
    pub quality: String,
    /// Text shown to players in the shop.
    #[serde(default)]
    pub description: String,
    /// Gold price; 0 = not sold for gold.
    #[serde(default)]
    pub price_gold: i64,
    /// Diamond price; 0 = not sold for diamonds.
    #[serde(default)]
    pub price_diamonds: i64,
    /// Most one player may hold.
    #[serde(default = "default_max_stack")]
    pub max_stack: i64,
}

fn default_max_stack() -> i64 {
    99
}

/// `[node]`: identity, shard count and shutdown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Node id reported by `/health` and the cluster registry.
    pub id: String,
    /// Number of shards (executors); 0 means one per available core.
    pub shards: usize,
    /// Whether each shard is pinned to its own core. Unpinned (the
    /// default) the OS places the shard threads: on a host whose cores are
    /// shared with nginx, game servers or a load generator it can move a
    /// shard off a busy core, and on a dedicated host it measures the same
    /// (docs/configuration.md, `node.pin`).
    pub pin: bool,
    /// Whether the node's threads run under `SCHED_BATCH`: woken by a
    /// request, a shard does not preempt the process running on its core
    /// (a game server, a load generator) but waits for it to block or its
    /// time slice to end, then serves every request that arrived meanwhile
    /// in one turn. For hosts where one busy process shares the server's
    /// cores (about a third more requests there); off by default, as
    /// clients with many threads saturating the cores are served about a
    /// tenth less (docs/configuration.md, `node.sched_batch`).
    pub sched_batch: bool,
    /// Blocking threads per shard for SQLite calls (a node whose games are
    /// all on MySQL keeps one idle thread: MySQL runs on the shard itself).
    pub blocking_threads: usize,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace_ms: u64,
    /// Request bytes (HTTP bodies, partial frames) all connections of the
    /// node may buffer together beyond a base of 16 KiB each; a request
    /// that does not fit gets 503 / 0xE006 and its connection is closed.
    pub max_buffered_bytes: usize,
    /// Read client connections through one multishot receive kept armed
    /// per connection (io_uring, kernel 6.0+) instead of a readiness poll
    /// and a `recv` per request; off, or on an older kernel, the old path.
    pub multishot_recv: bool,
    /// Buffers (4 KiB each, a power of two) in each shard's provided buffer
    /// ring for multishot receive; counted in `max_buffered_bytes`.
    pub recv_ring_buffers: usize,
}

/// `[http]`: the HTTP/1.1 listener and its limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address of the HTTP listener (every shard binds it with SO_REUSEPORT).
    pub listen: String,
    /// Largest accepted request body (413 above).
    pub max_body_bytes: usize,
    /// Largest request line + headers (431 above).
    pub max_header_bytes: usize,
    /// A request must arrive completely within this time, and an idle
    /// keep-alive connection is closed after it.
    pub read_timeout_ms: u64,
    /// Origins allowed by CORS; `"*"` allows any.
    pub cors_origins: Vec<String>,
    /// `/metrics` without a token; when false it needs an admin token.
    pub metrics_public: bool,
    /// Proxies (addresses or networks like `10.0.0.0/8`) whose
    /// `X-Forwarded-For` names the client; from anyone else the header is
    /// ignored, so it cannot be forged to dodge rate limits.
    pub trusted_proxies: Vec<String>,
}

/// `[tcp]`: the binary protocol listener and its limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpConfig {
    /// Address of the TCP listener (every shard binds it with SO_REUSEPORT).
    pub listen: String,
    /// Connections per node; above it a new connection gets Error 0xE006.
    pub max_connections: usize,
    /// Largest frame body, before and after gzip inflation.
    pub max_body_bytes: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout_s: u64,
    /// An authenticated connection without Heartbeat/Ping for this long is closed.
    pub heartbeat_timeout_s: u64,
    /// Heartbeat interval advertised in the handshake reply.
    pub heartbeat_interval_s: u64,
}

/// `[auth]`: authentication mode, JWT settings and rate limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `prod` (secrets required) or `dev` (random JWT secret, trusting handshake).
    pub mode: AuthMode,
    /// HS256 secret for access tokens; at least 32 bytes in prod mode.
    pub jwt_secret: String,
    /// Lifetime of an access token.
    pub access_ttl_s: u64,
    /// Lifetime of a refresh token.
    pub refresh_ttl_s: u64,
    /// Requests per client IP per minute before 429.
    pub rate_limit_per_ip_per_min: u32,
    /// Failed logins and handshakes per client address per minute (HTTP
    /// and TCP together) before 429.
    pub failed_logins_per_ip_per_min: u32,
    /// Failed logins per account per minute from addresses that have not
    /// logged into it within `known_address_ttl_s`, before 429.
    pub failed_logins_per_user_per_min: u32,
    /// Failed logins per account per minute from any address, known ones
    /// included, before 429: the cap an attacker must exceed — from more
    /// addresses than the per-address budget allows — to lock a known
    /// address out too.
    pub failed_logins_per_user_cap_per_min: u32,
    /// How long an address that logged into an account stays exempt from
    /// that account's `failed_logins_per_user_per_min` (so guesses from
    /// elsewhere cannot lock its owner out); 0 turns the exemption off.
    pub known_address_ttl_s: u64,
    /// Threads of the node's password hashing pool (argon2id), at a lower
    /// CPU priority than the shards, so logins cannot starve database work;
    /// 0 means one per available core.
    pub hash_threads: usize,
    /// Hashes that may wait for a hashing thread; beyond, 503 at once.
    pub hash_queue: usize,
}

/// Authentication strictness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Secrets are mandatory and the trusting handshake is refused.
    Prod,
    /// Convenient local mode: random JWT secret, the original's trusting handshake.
    Dev,
}

/// `[cache]`: L1 (per shard) and L2 (Redis) cache settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Redis URL for L2; empty means L1 only.
    pub redis: String,
    /// Entries per shard in L1.
    pub l1_max_entries: usize,
    /// Bytes per shard in L1.
    pub l1_max_bytes: usize,
    /// L1 time to live.
    pub l1_ttl_ms: u64,
    /// L2 time to live (jittered by ±10 %).
    pub l2_ttl_s: u64,
    /// Time to live of cached not-found answers.
    pub negative_ttl_ms: u64,
    /// Bound on how long any node may serve a value after a write replaced it.
    pub invalidation_max_ms: u64,
}

/// `[cluster]`: node registry and coordination through Redis.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Redis URL for cluster state; empty means a single stand-alone node.
    pub redis: String,
    /// Interval of the node heartbeat.
    pub heartbeat_ms: u64,
    /// How long a singleton job's lease lasts without renewal: a holder
    /// that dies is replaced within it.
    pub job_lease_ms: u64,
    /// How often each singleton job runs (on whichever node holds it).
    pub job_interval_ms: u64,
    /// For failure tests only: a pause between taking a job's lease and its
    /// database write, the window a paused holder (GC, SIGSTOP) would be
    /// caught in; 0 in production.
    pub job_write_delay_ms: u64,
}

/// `[orders]`: order lifetime.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrdersConfig {
    /// A pending order older than this is cancelled (reason `expired`) by
    /// the singleton job.
    pub pending_ttl_s: u64,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        OrdersConfig { pending_ttl_s: 900 }
    }
}

/// `[realtime]`: WebSocket notifications (SPEC §11).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RealtimeConfig {
    /// Store every notification in the game database, not only messages:
    /// a client that resumes then misses nothing of any kind, at the cost
    /// of one more row per change.
    pub persist: bool,
    /// Notifications one socket may have waiting to be written; a client
    /// that reads slower than they come is closed (1008) past it.
    pub max_queued: usize,
    /// Stored notifications older than this many days are deleted by the
    /// singleton job.
    pub keep_days: u64,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        RealtimeConfig {
            persist: false,
            max_queued: 256,
            keep_days: 30,
        }
    }
}

/// `[leaderboards]`: SPEC §12.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaderboardsConfig {
    /// Past periods of a resetting board that stay readable (`?period=`);
    /// older records are deleted by the reset job.
    pub keep_periods: u64,
    /// For tests only: added to the clock the boards' periods are computed
    /// with, so that a test reaches a UTC day boundary in seconds; 0 in
    /// production.
    pub clock_offset_ms: i64,
}

impl Default for LeaderboardsConfig {
    fn default() -> Self {
        LeaderboardsConfig {
            keep_periods: 4,
            clock_offset_ms: 0,
        }
    }
}

/// `[audit]`: the tamper-evident audit log (SPEC §13).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The Ed25519 key (its 32-byte seed, hex or base64) checkpoints are
    /// signed with; give it through `DM_AUDIT_SIGNING_KEY`. Required in
    /// prod mode; in dev mode a key is made once and kept in `key_file`.
    pub signing_key: String,
    /// Dev mode without `signing_key`: where the generated key is kept
    /// (default: `audit-signing.key` beside the default game's SQLite
    /// file, or in `data/`).
    pub key_file: String,
    /// How often (seconds) each node signs every chain's head.
    pub checkpoint_s: u64,
    /// Public keys (hex) of earlier signing keys whose checkpoints still
    /// verify: the keys a rotation replaced.
    pub trusted_keys: Vec<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            signing_key: String::new(),
            key_file: String::new(),
            checkpoint_s: 10,
            trusted_keys: Vec::new(),
        }
    }
}

/// `[log]`: log level and format.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace` (hot-reloadable with SIGHUP).
    pub level: String,
    /// `text` or `json`.
    pub format: String,
    /// One info line per HTTP request (method, path, status, time, request
    /// id); read at start-up. Off by default: it costs a log line per request.
    pub access: bool,
    /// One info line per business change (target `event`: registrations,
    /// logins, balance changes, orders, item moves, bans, catalogue edits)
    /// with the game and player ids; read at start-up. Off by default for
    /// the same reason as `access`.
    pub events: bool,
}

/// What a game's acknowledged writes survive (`games.<id>.durability`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// A power loss or OS crash: SQLite syncs its log at every commit
    /// (`synchronous = FULL`); a MySQL primary must flush its redo log and
    /// binary log at every commit, which is checked at start-up.
    #[default]
    Full,
    /// A crash of the process only: SQLite syncs at checkpoints
    /// (`synchronous = NORMAL`), so a power loss may roll back the last
    /// acknowledged writes; a MySQL server's own settings are not checked.
    Normal,
}

/// `[games.<id>]`: one game's database and secrets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GameConfig {
    /// Display name.
    pub name: String,
    /// Primary database: `sqlite://path` or `mysql://user:pass@host:port/db`.
    pub url: String,
    /// Read replicas (MySQL only).
    pub replicas: Vec<String>,
    /// Shared secret of this game's servers; at least 16 bytes in prod mode.
    pub server_key: String,
    /// Connections per shard to each database.
    pub pool_size: usize,
    /// Replicas lagging more than this are skipped.
    pub max_replica_lag_ms: u64,
    /// After a write, that player's reads go to the primary for this long.
    pub read_your_writes_ms: u64,
    /// Gold granted at sign-up.
    pub signup_gold: i64,
    /// Diamonds granted at sign-up.
    pub signup_diamonds: i64,
    /// Game logic module serving `POST /api/v1/games/{id}/{action}`.
    pub logic: String,
    /// Catalogue entries seeded at start-up when absent.
    pub items: Vec<ItemSeed>,
    /// A JSON file with an array of catalogue entries, seeded like `items`.
    pub items_file: String,
    /// What an acknowledged write survives: `full` (the default) or `normal`.
    pub durability: Durability,
}

impl Default for Config {
    fn default() -> Self {
        let mut games = BTreeMap::new();
        games.insert("game1".to_string(), GameConfig::default());
        Config {
            node: NodeConfig::default(),
            http: HttpConfig::default(),
            tcp: TcpConfig::default(),
            auth: AuthConfig::default(),
            cache: CacheConfig::default(),
            cluster: ClusterConfig::default(),
            orders: OrdersConfig::default(),
            realtime: RealtimeConfig::default(),
            leaderboards: LeaderboardsConfig::default(),
            audit: AuditConfig::default(),
            log: LogConfig::default(),
            default_game: "game1".to_string(),
            games,
            admins: BTreeMap::new(),
        }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: "node-1".to_string(),
            shards: 0,
            pin: false,
            sched_batch: false,
            blocking_threads: 4,
            shutdown_grace_ms: 10_000,
            max_buffered_bytes: 128 * 1024 * 1024,
            multishot_recv: true,
            recv_ring_buffers: 64,
        }
    }
}

impl HttpConfig {
    /// Whether a browser `Origin` may call the API and open `/ws`
    /// (`cors_origins` lists it, or holds `"*"`).
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.cors_origins.iter().any(|o| o == "*" || o == origin)
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "0.0.0.0:8080".to_string(),
            max_body_bytes: 1024 * 1024,
            max_header_bytes: 16 * 1024,
            read_timeout_ms: 10_000,
            cors_origins: Vec::new(),
            metrics_public: true,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            listen: "0.0.0.0:9090".to_string(),
            max_connections: 50_000,
            max_body_bytes: 64 * 1024,
            idle_timeout_s: 300,
            heartbeat_timeout_s: 90,
            heartbeat_interval_s: 30,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::Prod,
            jwt_secret: String::new(),
            access_ttl_s: 900,
            refresh_ttl_s: 2_592_000,
            rate_limit_per_ip_per_min: 1000,
            failed_logins_per_ip_per_min: 30,
            failed_logins_per_user_per_min: 10,
            failed_logins_per_user_cap_per_min: 100,
            known_address_ttl_s: 30 * 24 * 3600,
            hash_threads: 0,
            hash_queue: 64,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            redis: String::new(),
            l1_max_entries: 100_000,
            l1_max_bytes: 64 * 1024 * 1024,
            l1_ttl_ms: 10_000,
            l2_ttl_s: 600,
            negative_ttl_ms: 1_000,
            invalidation_max_ms: 100,
        }
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis: String::new(),
            heartbeat_ms: 1000,
            job_lease_ms: 5000,
            job_interval_ms: 1000,
            job_write_delay_ms: 0,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_string(),
            format: "text".to_string(),
            access: false,
            events: false,
        }
    }
}

impl Default for GameConfig {
    fn default() -> Self {
        GameConfig {
            name: "Game 1".to_string(),
            url: "sqlite://data/game1.db".to_string(),
            replicas: Vec::new(),
            server_key: String::new(),
            pool_size: 4,
            max_replica_lag_ms: 1000,
            read_your_writes_ms: 2000,
            signup_gold: 1000,
            signup_diamonds: 100,
            logic: "standard".to_string(),
            items: Vec::new(),
            items_file: String::new(),
            durability: Durability::Full,
        }
    }
}

/// Sections that `DM_<SECTION>_<KEY>` may name: the table-valued fields of
/// [`Config`] but `games` and `admins`, which have variables of their own.
pub(super) const SECTIONS: [&str; 11] = [
    "node",
    "http",
    "tcp",
    "auth",
    "cache",
    "cluster",
    "log",
    "orders",
    "realtime",
    "leaderboards",
    "audit",
];

#[cfg(test)]
mod tests {
    use crate::config::tests::load_str;
    use crate::config::{Config, Durability};

    #[test]
    fn durability_is_full_unless_a_game_says_normal() {
        let text = "default_game = \"a\"\n[auth]\nmode = \"dev\"\n[games.a]\n[games.b]\ndurability = \"normal\"\n";
        let c = load_str(text, &[]).expect("loads");
        assert_eq!(c.games["a"].durability, Durability::Full);
        assert_eq!(c.games["b"].durability, Durability::Normal);
        let e = load_str(&text.replace("normal", "fast"), &[]).unwrap_err();
        assert!(e.0.contains("games.b.durability"), "{e}");
        // The embedded development default trades power-loss safety for speed;
        // the shipped production examples do not.
        let dev = Config::load(None, Vec::new()).expect("embedded default");
        assert_eq!(dev.games["game1"].durability, Durability::Normal);
        for example in ["conf/node.example.toml", "conf/production.example.toml"] {
            let text = std::fs::read_to_string(example).expect("example");
            let text = text
                .replace(
                    "jwt_secret = \"\"",
                    "jwt_secret = \"0123456789abcdef0123456789abcdef\"",
                )
                .replace("server_key = \"\"", "server_key = \"0123456789abcdef\"")
                .replace(
                    "signing_key = \"\"",
                    "signing_key = \"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60\"",
                );
            let c = load_str(&text, &[]).expect(example);
            assert!(
                c.games.values().all(|g| g.durability == Durability::Full),
                "{example}"
            );
        }
    }
}
