//! Typed configuration for test servers: what a test sets on top of the
//! harness's standard config ([`Server::start_with`]), and the cluster
//! nodes several test files start.
//!
//! ```ignore
//! let server = ServerConfig::new()
//!     .shards(2)
//!     .set("cache", "redis", url.as_str())
//!     .set("cache", "invalidation_max_ms", 100)
//!     .start();
//! ```

use super::{backend, Server, StartOptions, TestBackend};

/// The sections of the harness's config template; keys of any other
/// section go into tables of their own at the end of the config.
const TEMPLATE_SECTIONS: [&str; 7] = ["node", "http", "tcp", "auth", "log", "cache", "audit"];

/// A test server's configuration overrides, then [`ServerConfig::start`].
#[derive(Clone, Debug)]
#[must_use = "a config is used by .start()"]
pub struct ServerConfig {
    shards: usize,
    /// (section, TOML lines), in the order set.
    lines: Vec<(String, String)>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig::new()
    }
}

impl ServerConfig {
    /// One shard, nothing overridden.
    pub fn new() -> Self {
        ServerConfig {
            shards: 1,
            lines: Vec::new(),
        }
    }

    /// The number of shards (`node.shards`).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    /// `node.id`.
    pub fn node_id(self, id: &str) -> Self {
        self.set("node", "id", id)
    }

    /// `key = value` in `[section]`, the value written as TOML (a string
    /// quoted, a number or boolean as it is). Keys of `cache` replace the
    /// backend's cache settings (see [`Server::start_with`]); a section
    /// the template does not have (`cluster`, `orders`, ...) becomes a
    /// table at the end.
    pub fn set(self, section: &str, key: &str, value: impl Into<toml::Value>) -> Self {
        let line = format!("{key} = {}", value.into());
        self.toml(section, &line)
    }

    /// Raw TOML lines in `[section]` (for values [`ServerConfig::set`]
    /// cannot write); `tail` is raw TOML at the end of the config.
    pub fn toml(mut self, section: &str, lines: &str) -> Self {
        self.lines.push((section.to_string(), lines.to_string()));
        self
    }

    /// Starts the server and waits until it is ready.
    pub fn start(self) -> Server {
        self.start_with_options(StartOptions::default())
    }

    /// [`ServerConfig::start`] with [`StartOptions`].
    pub fn start_with_options(self, options: StartOptions<'_>) -> Server {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut tables: Vec<(String, String)> = Vec::new();
        for (section, lines) in self.lines {
            if section == "tail" || TEMPLATE_SECTIONS.contains(&section.as_str()) {
                pairs.push((section, lines));
            } else if let Some((_, table)) = tables.iter_mut().find(|(s, _)| *s == section) {
                table.push_str(&format!("{lines}\n"));
            } else {
                let table = format!("[{section}]\n{lines}\n");
                tables.push((section, table));
            }
        }
        pairs.extend(tables.into_iter().map(|(_, t)| ("tail".to_string(), t)));
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(s, l)| (s.as_str(), l.as_str()))
            .collect();
        Server::start_with_options(self.shards, &pairs, options)
    }
}

/// The test Redis (`DMTEST_REDIS`); fails the test on the SQLite backend.
pub fn redis() -> String {
    match backend() {
        TestBackend::Mysql { redis, .. } => redis,
        TestBackend::Sqlite => panic!("needs DMTEST_BACKEND=mysql (Redis)"),
    }
}

/// A cluster node: one shard, node id `id`, its cluster state (registry,
/// config centre, job leases) in the Redis at `redis` (`cluster.redis`).
pub fn node(id: &str, redis: &str) -> ServerConfig {
    ServerConfig::new()
        .node_id(id)
        .set("cluster", "redis", redis)
}
