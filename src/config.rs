//! Node configuration: one TOML file, every key defaulted, `DM_<SECTION>_<KEY>`
//! environment overrides, and validation that names the offending key.
//!
//! The configuration is loaded once on the main thread before any shard starts;
//! each shard then receives its own clone, so nothing here is shared at run time.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

/// The embedded default configuration (`conf/datamiddleware.toml`), used when
/// no `--config` is given: dev mode, SQLite under `./data`, no Redis.
pub const EMBEDDED_DEFAULT: &str = include_str!("../conf/datamiddleware.toml");

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
    /// Blocking threads per shard for database drivers.
    pub blocking_threads: usize,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace_ms: u64,
    /// Request bytes (HTTP bodies, partial frames) all connections of the
    /// node may buffer together beyond a base of 16 KiB each; a request
    /// that does not fit gets 503 / 0xE006 and its connection is closed.
    pub max_buffered_bytes: usize,
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
            blocking_threads: 4,
            shutdown_grace_ms: 10_000,
            max_buffered_bytes: 128 * 1024 * 1024,
        }
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

/// A configuration that could not be loaded; the message names the key.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// Sections that `DM_<SECTION>_<KEY>` may name.
const SECTIONS: [&str; 8] = [
    "node", "http", "tcp", "auth", "cache", "cluster", "log", "orders",
];

impl Config {
    /// Loads `path` (or the embedded default when `None`), applies the `DM_*`
    /// variables of `env`, and validates the result.
    pub fn load(
        path: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (text, origin) = match path {
            Some(p) => (
                std::fs::read_to_string(p)
                    .map_err(|e| err(format!("cannot read config file {p}: {e}")))?,
                p.to_string(),
            ),
            None => (EMBEDDED_DEFAULT.to_string(), "embedded default".to_string()),
        };
        Config::from_toml_str(&text, &origin, env)
    }

    /// Parses configuration `text` (its messages name `origin`, the file),
    /// applies the `DM_*` variables of `env`, and validates the result: all of
    /// [`Config::load`] but reading the file, a function of its own so that
    /// the fuzz target `config_loader` (under `fuzz/`) runs the real loader.
    /// An `items_file` named in `text` is still read, as `load` reads it.
    pub fn from_toml_str(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| err(format!("{origin}: {e}")))?;
        apply_env_overrides(&mut table, env)?;
        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| err(format!("{origin}: key `{}`: {}", e.path(), e.inner())))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that the types alone cannot, naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        parse_addr("http.listen", &self.http.listen)?;
        parse_addr("tcp.listen", &self.tcp.listen)?;
        if self.node.id.is_empty() || self.node.id.len() > 64 {
            return Err(err("key `node.id`: must be 1 to 64 characters"));
        }
        if self.node.shards > 1024 {
            return Err(err("key `node.shards`: at most 1024"));
        }
        if self.node.blocking_threads == 0 || self.node.blocking_threads > 256 {
            return Err(err("key `node.blocking_threads`: must be 1 to 256"));
        }
        positive("http.max_body_bytes", self.http.max_body_bytes as u64)?;
        if self.http.max_header_bytes < 1024 {
            return Err(err("key `http.max_header_bytes`: at least 1024"));
        }
        positive("http.read_timeout_ms", self.http.read_timeout_ms)?;
        if self.auth.hash_threads > 256 {
            return Err(err(
                "key `auth.hash_threads`: at most 256 (0 = one per core)",
            ));
        }
        if self.node.max_buffered_bytes < 1024 * 1024 {
            return Err(err(
                "key `node.max_buffered_bytes`: at least 1048576 (1 MiB)",
            ));
        }
        positive(
            "auth.failed_logins_per_ip_per_min",
            self.auth.failed_logins_per_ip_per_min as u64,
        )?;
        positive(
            "auth.failed_logins_per_user_per_min",
            self.auth.failed_logins_per_user_per_min as u64,
        )?;
        positive(
            "auth.failed_logins_per_user_cap_per_min",
            self.auth.failed_logins_per_user_cap_per_min as u64,
        )?;
        if self.auth.failed_logins_per_user_cap_per_min <= self.auth.failed_logins_per_user_per_min
        {
            // Else guesses from unknown addresses could spend the cap that
            // an account's known addresses live by (and lock them out).
            return Err(err(format!(
                "key `auth.failed_logins_per_user_cap_per_min`: must be greater than \
                 auth.failed_logins_per_user_per_min ({})",
                self.auth.failed_logins_per_user_per_min
            )));
        }
        positive("auth.hash_queue", self.auth.hash_queue as u64)?;
        positive("orders.pending_ttl_s", self.orders.pending_ttl_s)?;
        if !(100..=3_600_000).contains(&self.cluster.job_lease_ms) {
            return Err(err("key `cluster.job_lease_ms`: from 100 to 3600000"));
        }
        if !(50..=3_600_000).contains(&self.cluster.job_interval_ms) {
            return Err(err("key `cluster.job_interval_ms`: from 50 to 3600000"));
        }
        crate::client_ip::TrustedProxies::parse(&self.http.trusted_proxies)
            .map_err(|e| err(format!("key `http.trusted_proxies`: {e}")))?;
        positive("tcp.max_connections", self.tcp.max_connections as u64)?;
        positive("tcp.max_body_bytes", self.tcp.max_body_bytes as u64)?;
        if self.tcp.max_body_bytes > 64 * 1024 * 1024 {
            return Err(err("key `tcp.max_body_bytes`: at most 64 MiB"));
        }
        positive("tcp.idle_timeout_s", self.tcp.idle_timeout_s)?;
        positive("tcp.heartbeat_timeout_s", self.tcp.heartbeat_timeout_s)?;
        positive("tcp.heartbeat_interval_s", self.tcp.heartbeat_interval_s)?;
        positive("auth.access_ttl_s", self.auth.access_ttl_s)?;
        positive("auth.refresh_ttl_s", self.auth.refresh_ttl_s)?;
        positive(
            "auth.rate_limit_per_ip_per_min",
            self.auth.rate_limit_per_ip_per_min as u64,
        )?;
        positive("cache.l1_max_entries", self.cache.l1_max_entries as u64)?;
        if !matches!(
            self.log.level.as_str(),
            "error" | "warn" | "info" | "debug" | "trace"
        ) {
            return Err(err(
                "key `log.level`: must be error, warn, info, debug or trace",
            ));
        }
        if self.log.access && matches!(self.log.level.as_str(), "error" | "warn") {
            return Err(err(
                "key `log.access`: access lines are info lines; set `log.level` to info, debug or trace",
            ));
        }
        if self.log.events && matches!(self.log.level.as_str(), "error" | "warn") {
            return Err(err(
                "key `log.events`: event lines are info lines; set `log.level` to info, debug or trace",
            ));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(err("key `log.format`: must be text or json"));
        }
        if self.games.is_empty() {
            return Err(err("key `games`: at least one game must be configured"));
        }
        if !self.games.contains_key(&self.default_game) {
            return Err(err(format!(
                "key `default_game`: game `{}` is not configured under [games]",
                self.default_game
            )));
        }
        let prod = self.auth.mode == AuthMode::Prod;
        if prod && self.auth.jwt_secret.len() < 32 {
            return Err(err(
                "key `auth.jwt_secret`: prod mode needs a secret of at least 32 bytes (set DM_AUTH_JWT_SECRET)",
            ));
        }
        for (id, game) in &self.games {
            if id.is_empty() || id.len() > 64 || !id.bytes().all(is_id_byte) {
                return Err(err(format!(
                    "key `games.{id}`: game ids are 1 to 64 of [A-Za-z0-9_-]"
                )));
            }
            if !(game.url.starts_with("sqlite://") || game.url.starts_with("mysql://")) {
                return Err(err(format!(
                    "key `games.{id}.url`: must start with sqlite:// or mysql://"
                )));
            }
            if !game.replicas.is_empty() && !game.url.starts_with("mysql://") {
                return Err(err(format!(
                    "key `games.{id}.replicas`: replicas need a mysql:// primary"
                )));
            }
            if let Some(bad) = game.replicas.iter().find(|r| !r.starts_with("mysql://")) {
                return Err(err(format!(
                    "key `games.{id}.replicas`: `{}` must start with mysql://",
                    redact(bad)
                )));
            }
            if game.pool_size == 0 || game.pool_size > 256 {
                return Err(err(format!("key `games.{id}.pool_size`: must be 1 to 256")));
            }
            if game.signup_gold < 0 || game.signup_diamonds < 0 {
                return Err(err(format!(
                    "key `games.{id}.signup_gold`/`signup_diamonds`: must not be negative"
                )));
            }
            for item in &game.items {
                validate_item_seed(id, item)?;
            }
            if !game.items_file.is_empty() {
                for item in load_items_file(&game.items_file)
                    .map_err(|e| err(format!("key `games.{id}.items_file`: {e}")))?
                {
                    validate_item_seed(id, &item)?;
                }
            }
            if game.logic != "standard" {
                return Err(err(format!(
                    "key `games.{id}.logic`: unknown game logic `{}` (known: standard)",
                    game.logic
                )));
            }
            if prod && game.server_key.len() < 16 {
                return Err(err(format!(
                    "key `games.{id}.server_key`: prod mode needs a key of at least 16 bytes"
                )));
            }
        }
        for (name, admin) in &self.admins {
            if name.is_empty() || name.len() > 64 || !name.bytes().all(is_id_byte) {
                return Err(err(format!(
                    "key `admins.{name}`: names are 1 to 64 of [A-Za-z0-9_-]"
                )));
            }
            if argon2::PasswordHash::new(&admin.password_hash).is_err() {
                return Err(err(format!(
                    "key `admins.{name}.password_hash`: not a PHC hash string (make one with `datamiddleware hash-password`)"
                )));
            }
        }
        Ok(())
    }

    /// The catalogue seed of a game: inline `items`, then `items_file`.
    pub fn item_seed(&self, game_id: &str) -> Result<Vec<ItemSeed>, ConfigError> {
        let Some(game) = self.games.get(game_id) else {
            return Ok(Vec::new());
        };
        let mut items = game.items.clone();
        if !game.items_file.is_empty() {
            items.extend(
                load_items_file(&game.items_file)
                    .map_err(|e| err(format!("key `games.{game_id}.items_file`: {e}")))?,
            );
        }
        Ok(items)
    }

    /// The HTTP listen address (validated by [`Config::validate`]).
    pub fn http_addr(&self) -> Result<SocketAddr, ConfigError> {
        parse_addr("http.listen", &self.http.listen)
    }

    /// The TCP listen address (validated by [`Config::validate`]).
    pub fn tcp_addr(&self) -> Result<SocketAddr, ConfigError> {
        parse_addr("tcp.listen", &self.tcp.listen)
    }
}

fn load_items_file(path: &str) -> Result<Vec<ItemSeed>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))
}

/// A seed entry obeys the catalogue's one rule set, the admin API's too.
fn validate_item_seed(game: &str, item: &ItemSeed) -> Result<(), ConfigError> {
    let fields = crate::validate::CatalogueFields {
        name: Some(&item.name),
        item_type: Some(&item.item_type),
        quality: Some(&item.quality),
        description: Some(&item.description),
        price_gold: Some(item.price_gold),
        price_diamonds: Some(item.price_diamonds),
        max_stack: Some(item.max_stack),
    };
    crate::validate::item_id(&item.item_id)
        .and_then(|()| crate::validate::catalogue_fields(&fields))
        .map_err(|e| {
            err(format!(
                "key `games.{game}.items`: item `{}`: {e}",
                item.item_id
            ))
        })
}

/// A database URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        err(format!(
            "key `{key}`: `{value}` is not an address like 0.0.0.0:8080"
        ))
    })
}

fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(err(format!("key `{key}`: must be greater than 0")));
    }
    Ok(())
}

/// Applies `DM_<SECTION>_<KEY>`, `DM_DEFAULT_GAME` and `DM_GAMES_<GAME>_<KEY>`
/// variables to the parsed table. A value is taken as a string where the key is
/// a string, otherwise it is parsed as a TOML value (`2`, `true`, `["a"]`).
fn apply_env_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let defaults = toml::Value::try_from(Config::default())
        .map_err(|e| err(format!("internal: defaults do not serialise: {e}")))?;
    let game_defaults = toml::Value::try_from(GameConfig::default())
        .map_err(|e| err(format!("internal: defaults do not serialise: {e}")))?;
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("DM_"))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let rest = name["DM_".len()..].to_ascii_lowercase();
        if rest == "default_game" {
            table.insert("default_game".into(), toml::Value::String(raw));
            continue;
        }
        if let Some(admin_part) = rest.strip_prefix("admins_") {
            // DM_ADMINS_<NAME>_PASSWORD_HASH: an operator account without a
            // file (the name is taken in lower case).
            let admin = admin_part
                .strip_suffix("_password_hash")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    err(format!(
                        "environment variable {name}: expected DM_ADMINS_<NAME>_PASSWORD_HASH"
                    ))
                })?;
            let admins = table
                .entry("admins")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| err("key `admins`: must be a table"))?;
            let mut account = toml::Table::new();
            account.insert("password_hash".into(), toml::Value::String(raw));
            admins.insert(admin.to_string(), toml::Value::Table(account));
            continue;
        }
        if let Some(game_part) = rest.strip_prefix("games_") {
            let (game, key) = split_game_key(table, game_part, &game_defaults)
                .ok_or_else(|| err(format!("environment variable {name}: expected DM_GAMES_<GAME>_<KEY> with a known key")))?;
            let value = typed_value(&raw, game_defaults.get(&key));
            let games = table
                .entry("games")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let games = games
                .as_table_mut()
                .ok_or_else(|| err("key `games`: must be a table"))?;
            let entry = games
                .entry(game)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            entry
                .as_table_mut()
                .ok_or_else(|| err(format!("environment variable {name}: game is not a table")))?
                .insert(key, value);
            continue;
        }
        let section = SECTIONS
            .iter()
            .find(|s| rest.starts_with(&format!("{s}_")))
            .ok_or_else(|| {
                err(format!(
                    "environment variable {name}: unknown section (known: {})",
                    SECTIONS.join(", ")
                ))
            })?;
        let key = &rest[section.len() + 1..];
        let default = defaults.get(*section).and_then(|s| s.get(key));
        if default.is_none() {
            return Err(err(format!(
                "environment variable {name}: `{section}.{key}` is not a configuration key"
            )));
        }
        let value = typed_value(&raw, default);
        let sec = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        sec.as_table_mut()
            .ok_or_else(|| err(format!("key `{section}`: must be a table")))?
            .insert(key.to_string(), value);
    }
    Ok(())
}

/// Splits `game1_server_key` into (`game1`, `server_key`), preferring a game id
/// that already exists in the file (ids may contain underscores).
fn split_game_key(
    table: &toml::Table,
    part: &str,
    game_defaults: &toml::Value,
) -> Option<(String, String)> {
    let keys = game_defaults.as_table()?;
    let mut candidates: Vec<(String, String)> = keys
        .keys()
        .filter_map(|k| {
            let game = part.strip_suffix(k.as_str())?.strip_suffix('_')?;
            (!game.is_empty()).then(|| (game.to_string(), k.clone()))
        })
        .collect();
    let existing = table.get("games").and_then(|g| g.as_table());
    candidates.sort_by_key(|(g, _)| {
        let known = existing
            .map(|t| t.keys().any(|k| k.eq_ignore_ascii_case(g)))
            .unwrap_or(false);
        (!known, g.len())
    });
    let (game, key) = candidates.into_iter().next()?;
    let game = existing
        .and_then(|t| t.keys().find(|k| k.eq_ignore_ascii_case(&game)).cloned())
        .unwrap_or(game);
    Some((game, key))
}

fn typed_value(raw: &str, default: Option<&toml::Value>) -> toml::Value {
    if let Some(toml::Value::String(_)) = default {
        return toml::Value::String(raw.to_string());
    }
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or(toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("dmcfg-{}", rand::random::<u64>()));
        std::fs::write(&dir, text).map_err(|e| err(e.to_string()))?;
        let r = Config::load(
            dir.to_str(),
            env.iter().map(|(a, b)| (a.to_string(), b.to_string())),
        );
        let _ = std::fs::remove_file(&dir);
        r
    }

    #[test]
    fn embedded_default_is_valid_dev_sqlite() {
        let c = Config::load(None, Vec::new()).expect("embedded default loads");
        assert_eq!(c.auth.mode, AuthMode::Dev);
        assert!(c.games["game1"].url.starts_with("sqlite://"));
        assert!(c.cache.redis.is_empty());
    }

    #[test]
    fn empty_file_gets_defaults_but_prod_needs_secrets() {
        let e = load_str("", &[]).unwrap_err();
        assert!(e.0.contains("auth.jwt_secret"), "{e}");
        let c = load_str("[auth]\nmode = \"dev\"\n", &[]).expect("dev mode loads");
        assert_eq!(c.http.max_body_bytes, 1024 * 1024);
        assert_eq!(c.tcp.idle_timeout_s, 300);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = load_str("[auth]\nmode = \"dev\"\n[http]\nlisten_addr = \"x\"\n", &[]).unwrap_err();
        assert!(e.0.contains("listen_addr"), "{e}");
        assert!(e.0.contains("http"), "{e}");
    }

    #[test]
    fn bad_value_is_named() {
        let e = load_str(
            "[auth]\nmode = \"dev\"\n[tcp]\nmax_connections = \"lots\"\n",
            &[],
        )
        .unwrap_err();
        assert!(e.0.contains("tcp.max_connections"), "{e}");
        let e = load_str(
            "[auth]\nmode = \"dev\"\n[http]\nlisten = \"nowhere\"\n",
            &[],
        )
        .unwrap_err();
        assert!(e.0.contains("http.listen"), "{e}");
    }

    #[test]
    fn env_overrides_keys_with_types() {
        let c = load_str(
            "[auth]\nmode = \"dev\"\n[games.my_game]\nurl = \"sqlite://x.db\"\n",
            &[
                ("DM_HTTP_LISTEN", "127.0.0.1:18080"),
                ("DM_NODE_SHARDS", "2"),
                ("DM_NODE_ID", "42"),
                ("DM_DEFAULT_GAME", "my_game"),
                ("DM_GAMES_MY_GAME_SERVER_KEY", "k"),
                ("HOME", "/root"),
            ],
        )
        .expect("loads");
        assert_eq!(c.http.listen, "127.0.0.1:18080");
        assert_eq!(c.node.shards, 2);
        assert_eq!(c.node.id, "42");
        assert_eq!(c.games["my_game"].server_key, "k");
    }

    #[test]
    fn admin_accounts_come_from_the_environment_too() {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
        let c = load_str(
            "[auth]\nmode = \"dev\"\n",
            &[("DM_ADMINS_OPS_PASSWORD_HASH", hash)],
        )
        .expect("loads");
        assert_eq!(c.admins["ops"].password_hash, hash);
        let e =
            load_str("[auth]\nmode = \"dev\"\n", &[("DM_ADMINS_OPS", hash)]).expect_err("no key");
        assert!(e.0.contains("DM_ADMINS_<NAME>_PASSWORD_HASH"), "{e}");
        let e = load_str(
            "[auth]\nmode = \"dev\"\n",
            &[("DM_ADMINS_OPS_PASSWORD_HASH", "plain")],
        )
        .expect_err("not a hash");
        assert!(e.0.contains("admins.ops.password_hash"), "{e}");
    }

    #[test]
    fn item_seed_comes_from_config_and_file() {
        let path = std::env::temp_dir().join(format!("dm-items-{}.json", rand::random::<u64>()));
        std::fs::write(&path, r#"[{"item_id":"bow","name":"Bow","price_gold":5}]"#).expect("write");
        let text = format!(
            "[auth]\nmode = \"dev\"\n[games.game1]\nitems_file = \"{}\"\n[[games.game1.items]]\nitem_id = \"sword\"\nname = \"Sword\"\n",
            path.display()
        );
        let c = load_str(&text, &[]).expect("loads");
        let ids: Vec<String> = c
            .item_seed("game1")
            .expect("seed")
            .into_iter()
            .map(|i| i.item_id)
            .collect();
        assert_eq!(ids, vec!["sword", "bow"]);
        std::fs::write(&path, r#"[{"item_id":"bad id","name":"X"}]"#).expect("write");
        let e = load_str(&text, &[]).unwrap_err();
        assert!(e.0.contains("games.game1.items"), "{e}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn item_seeds_obey_the_admin_api_caps() {
        // Each of these passes the old config-only checks but not the
        // catalogue rule set the admin API applies.
        for (field, value, named) in [
            ("price_gold", "1000000000001", "price_gold"),
            ("max_stack", "1000001", "max_stack"),
            ("description", "\"a\\nb\"", "description"),
            ("type", &format!("\"{}\"", "t".repeat(33)), "type"),
        ] {
            let text = format!(
                "[auth]\nmode = \"dev\"\n[games.game1]\n[[games.game1.items]]\nitem_id = \"sword\"\nname = \"Sword\"\n{field} = {value}\n"
            );
            let e = load_str(&text, &[]).unwrap_err();
            assert!(
                e.0.contains("games.game1.items") && e.0.contains(named),
                "{e}"
            );
        }
    }

    #[test]
    fn admin_hash_must_be_a_phc_string() {
        let e = load_str(
            "[auth]\nmode = \"dev\"\n[admins.ops]\npassword_hash = \"plain\"\n",
            &[],
        )
        .unwrap_err();
        assert!(e.0.contains("admins.ops.password_hash"), "{e}");
    }

    #[test]
    fn unknown_env_key_is_refused() {
        let e = load_str("[auth]\nmode = \"dev\"\n", &[("DM_HTTP_LISTN", "x")]).unwrap_err();
        assert!(e.0.contains("DM_HTTP_LISTN"), "{e}");
        let e = load_str("[auth]\nmode = \"dev\"\n", &[("DM_NOPE_X", "x")]).unwrap_err();
        assert!(e.0.contains("DM_NOPE_X"), "{e}");
    }

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
                .replace("server_key = \"\"", "server_key = \"0123456789abcdef\"");
            let c = load_str(&text, &[]).expect(example);
            assert!(
                c.games.values().all(|g| g.durability == Durability::Full),
                "{example}"
            );
        }
    }

    #[test]
    fn access_log_needs_info_lines() {
        let text = "[auth]\nmode = \"dev\"\n[log]\nlevel = \"warn\"\naccess = true\n";
        let e = load_str(text, &[]).unwrap_err();
        assert!(e.0.contains("log.access"), "{e}");
        let c = load_str(text, &[("DM_LOG_LEVEL", "info")]).expect("info level");
        assert!(c.log.access);
        assert!(
            !load_str("[auth]\nmode = \"dev\"\n", &[])
                .expect("default")
                .log
                .access
        );
    }
}
