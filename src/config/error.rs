//! The one error type of configuration loading, and the helpers its messages
//! are made with. A file of its own so that every step of the loader (the
//! overrides, the seed, validation) can build errors without importing the
//! loader in `mod.rs`, which imports them (no import circles).

use std::fmt;

/// A configuration that could not be loaded; the message names the key.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Builds a [`ConfigError`] from a message; the shorthand every step uses.
pub(super) fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
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
