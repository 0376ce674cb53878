//! Validation: the checks the types alone cannot make (addresses, ranges,
//! limits that must agree, prod-mode secrets, game ids, database URLs, admin
//! hashes), each error naming the key at fault. Run on every load, after the
//! environment overrides, so a bad override is caught like a bad file.

use super::error::{err, redact, ConfigError};
use super::items::{load_items_file, validate_item_seed};
use super::sections::{AuthMode, Config};
use std::net::SocketAddr;

impl Config {
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
        let ring = self.node.recv_ring_buffers;
        if !(1..=32768).contains(&ring) || !ring.is_power_of_two() {
            return Err(err(
                "key `node.recv_ring_buffers`: a power of two from 1 to 32768",
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
        if !(1..=65_536).contains(&self.realtime.max_queued) {
            return Err(err("key `realtime.max_queued`: from 1 to 65536"));
        }
        positive("realtime.keep_days", self.realtime.keep_days)?;
        if self.leaderboards.keep_periods > 1_000 {
            return Err(err("key `leaderboards.keep_periods`: from 0 to 1000"));
        }
        if self.leaderboards.clock_offset_ms.unsigned_abs() > 366 * 86_400_000 {
            return Err(err(
                "key `leaderboards.clock_offset_ms`: at most a year either way",
            ));
        }
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
        if let Some(bad) = self
            .audit
            .trusted_keys
            .iter()
            .find(|k| k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(err(format!(
                "key `audit.trusted_keys`: {bad:?} is not a public key (64 hex digits, as `datamiddleware audit public-key` prints)"
            )));
        }
        if !(1..=3_600).contains(&self.audit.checkpoint_s) {
            return Err(err("key `audit.checkpoint_s`: from 1 to 3600"));
        }
        if !self.audit.signing_key.is_empty() {
            crate::audit::AuditKey::parse(&self.audit.signing_key)
                .map_err(|e| err(format!("key `audit.signing_key`: {e}")))?;
        } else if self.auth.mode == AuthMode::Prod {
            return Err(err(
                "key `audit.signing_key`: required in prod mode (set DM_AUDIT_SIGNING_KEY to 32 random bytes in hex; `datamiddleware audit new-key` makes one)",
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
            let urls = std::iter::once(&game.url).chain(&game.replicas);
            if let Some(with_options) = urls
                .filter(|u| u.starts_with("mysql://"))
                .find(|u| u.contains('?') || u.contains('#'))
            {
                let key = if *with_options == game.url {
                    "url"
                } else {
                    "replicas"
                };
                return Err(err(format!(
                    "key `games.{id}.{key}`: MySQL URL options (`?...`) are not supported: \
                     write mysql://user:password@host:port/database"
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
}

/// A byte that game ids and admin names may hold: `[A-Za-z0-9_-]`.
fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Parses a listen address, naming `key` when it is not one; the loader's
/// [`Config::http_addr`] and [`Config::tcp_addr`] use it too.
pub(super) fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        err(format!(
            "key `{key}`: `{value}` is not an address like 0.0.0.0:8080"
        ))
    })
}

/// Refuses 0 for a key that must be positive.
fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(err(format!("key `{key}`: must be greater than 0")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::tests::load_str;

    #[test]
    fn empty_file_gets_defaults_but_prod_needs_secrets() {
        let e = load_str("", &[]).unwrap_err();
        assert!(e.0.contains("auth.jwt_secret"), "{e}");
        let c = load_str("[auth]\nmode = \"dev\"\n", &[]).expect("dev mode loads");
        assert_eq!(c.http.max_body_bytes, 1024 * 1024);
        assert_eq!(c.tcp.idle_timeout_s, 300);
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
    fn mysql_urls_with_options_are_refused_naming_the_key() {
        let with = |url: &str, replica: &str| {
            format!(
                "default_game = \"g1\"\n[auth]\nmode = \"dev\"\n[games.g1]\nurl = \"{url}\"\nreplicas = [\"{replica}\"]\n"
            )
        };
        let plain = "mysql://u:p@127.0.0.1:3306/g1";
        let e = load_str(
            &with("mysql://u:p@127.0.0.1/g1?prefer_socket=false", plain),
            &[],
        )
        .unwrap_err();
        assert!(
            e.0.contains("games.g1.url") && e.0.contains("not supported"),
            "{e}"
        );
        let e = load_str(&with(plain, "mysql://u:p@10.0.0.2/g1?ssl=1"), &[]).unwrap_err();
        assert!(e.0.contains("games.g1.replicas"), "{e}");
        assert!(load_str(&with(plain, plain), &[]).is_ok());
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
