//! Where and how a connection goes: parsed from the `mysql://` URL the
//! configuration names (`mysql://user:pass@host:port/db`, user, password and
//! database percent-decoded as the `mysql` crate does), plus the limits the
//! URL does not carry — connect and statement timeouts, the prepared
//! statement cache's size, the largest packet.

use super::error::MysqlError;
use std::fmt;
use std::time::Duration;

/// Default bound on connecting (TCP and handshake together).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default bound on one statement, from sending it to its last row.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of prepared statements kept per connection.
pub const STMT_CACHE_SIZE: usize = 256;
/// Default largest packet accepted or sent (the server's own limit applies too).
pub const MAX_ALLOWED_PACKET: usize = 64 * 1024 * 1024;

/// Connection options.
#[derive(Clone, PartialEq, Eq)]
pub struct Opts {
    /// Host name or address.
    pub host: String,
    /// TCP port (default 3306).
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password (empty for none).
    pub password: String,
    /// Database to select at connect, if any.
    pub db: Option<String>,
    /// Bound on connecting (TCP and handshake together).
    pub connect_timeout: Duration,
    /// Bound on each statement, from sending it to its last row.
    pub statement_timeout: Duration,
    /// Prepared statements kept per connection (0: prepare, run and close
    /// each time).
    pub stmt_cache_size: usize,
    /// Largest packet accepted or sent.
    pub max_allowed_packet: usize,
}

impl Opts {
    /// Options for `url` (`mysql://user:pass@host:port/db`; user, password,
    /// port and database optional) with the default limits.
    pub fn from_url(url: &str) -> Result<Opts, MysqlError> {
        let bad = |why: &str| MysqlError::Config(format!("bad MySQL url: {why}"));
        let rest = url
            .strip_prefix("mysql://")
            .ok_or_else(|| bad("must start with mysql://"))?;
        if rest.contains('?') || rest.contains('#') {
            return Err(bad("URL options (?...) are not supported"));
        }
        let (auth, hostpart) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (hostport, db) = match hostpart.split_once('/') {
            Some((h, d)) => (h, (!d.is_empty()).then_some(d)),
            None => (hostpart, None),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in host"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, p),
                None if after.is_empty() => (h, ""),
                None => return Err(bad("junk after ]")),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, p),
                None => (hostport, ""),
            }
        };
        if host.is_empty() {
            return Err(bad("host missing"));
        }
        let port = if port.is_empty() {
            3306
        } else {
            port.parse::<u16>()
                .map_err(|_| bad("port must be a number up to 65535"))?
        };
        let (user, password) = match auth {
            None => (String::new(), String::new()),
            Some(a) => match a.split_once(':') {
                Some((u, p)) => (decode(u).ok_or_else(|| bad("user"))?, {
                    decode(p).ok_or_else(|| bad("password"))?
                }),
                None => (decode(a).ok_or_else(|| bad("user"))?, String::new()),
            },
        };
        let db = match db {
            Some(d) => Some(decode(d).ok_or_else(|| bad("database"))?),
            None => None,
        };
        Ok(Opts {
            host: host.to_string(),
            port,
            user,
            password,
            db,
            connect_timeout: CONNECT_TIMEOUT,
            statement_timeout: STATEMENT_TIMEOUT,
            stmt_cache_size: STMT_CACHE_SIZE,
            max_allowed_packet: MAX_ALLOWED_PACKET,
        })
    }

    /// `host:port/db`, without credentials, for messages.
    pub fn name(&self) -> String {
        format!(
            "{}:{}/{}",
            self.host,
            self.port,
            self.db.as_deref().unwrap_or("")
        )
    }
}

/// The password stays out of logs.
impl fmt::Debug for Opts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opts")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"…")
            .field("db", &self.db)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("stmt_cache_size", &self.stmt_cache_size)
            .field("max_allowed_packet", &self.max_allowed_packet)
            .finish()
    }
}

/// Percent-decoding (`%40` → `@`); `None` for a broken escape or bytes
/// that are not UTF-8.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_configuration_form() {
        let o = Opts::from_url("mysql://app:p%40ss@10.0.0.12:3307/game1").expect("url");
        assert_eq!(o.host, "10.0.0.12");
        assert_eq!(o.port, 3307);
        assert_eq!(o.user, "app");
        assert_eq!(o.password, "p@ss");
        assert_eq!(o.db.as_deref(), Some("game1"));
        assert_eq!(o.name(), "10.0.0.12:3307/game1");
        assert!(!format!("{o:?}").contains("p@ss"));
    }

    #[test]
    fn defaults_and_refusals() {
        let o = Opts::from_url("mysql://root@db").expect("url");
        assert_eq!(
            (o.port, o.password.as_str(), o.db.clone()),
            (3306, "", None)
        );
        let o = Opts::from_url("mysql://u:p@[::1]:13306/").expect("v6");
        assert_eq!((o.host.as_str(), o.port, o.db), ("::1", 13306, None));
        assert!(Opts::from_url("postgres://x").is_err());
        assert!(Opts::from_url("mysql://u:p@:3306/db").is_err());
        assert!(Opts::from_url("mysql://u:p@h:99999/db").is_err());
        assert!(Opts::from_url("mysql://u:p%4@h/db").is_err());
        assert!(Opts::from_url("mysql://u:p@h/db?ssl=true").is_err());
    }
}
