//! Node configuration: one TOML file, every key defaulted, `DM_<SECTION>_<KEY>`
//! environment overrides, and validation that names the offending key.
//!
//! The configuration is loaded once on the main thread before any shard starts;
//! each shard then receives its own clone, so nothing here is shared at run time.
//!
//! This file is the loader: it reads the file, applies the overrides,
//! validates, and re-exports the types, so every `crate::config::X` path is
//! the same as when all of it was one file. Each job has a file of its own,
//! and each imports only files listed above it here (no import circles):
//!
//! - `error.rs`: [`ConfigError`], the one error type, and [`redact`];
//! - `sections.rs`: the key catalogue, [`Config`] and its sections with
//!   their defaults;
//! - `env.rs`: the `DM_*` environment overrides;
//! - `items.rs`: a game's catalogue seed (`items`, `items_file`);
//! - `validate.rs`: the checks the types alone cannot make.

mod env;
mod error;
mod items;
mod sections;
mod validate;

pub use error::{redact, ConfigError};
pub use sections::{
    AdminAccount, AuthConfig, AuthMode, CacheConfig, ClusterConfig, Config, Durability, GameConfig,
    HttpConfig, ItemSeed, LogConfig, NodeConfig, OrdersConfig, TcpConfig,
};

use env::apply_env_overrides;
use error::err;
use std::net::SocketAddr;
use validate::parse_addr;

/// The embedded default configuration (`conf/datamiddleware.toml`), used when
/// no `--config` is given: dev mode, SQLite under `./data`, no Redis.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../conf/datamiddleware.toml");

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

    /// The HTTP listen address (validated by [`Config::validate`]).
    pub fn http_addr(&self) -> Result<SocketAddr, ConfigError> {
        parse_addr("http.listen", &self.http.listen)
    }

    /// The TCP listen address (validated by [`Config::validate`]).
    pub fn tcp_addr(&self) -> Result<SocketAddr, ConfigError> {
        parse_addr("tcp.listen", &self.tcp.listen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads `text` as a config file with `env` as the environment: the
    /// whole loader, file read included, for the tests of every file here.
    pub(super) fn load_str(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
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
}
