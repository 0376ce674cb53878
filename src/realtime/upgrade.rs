//! `GET /ws`: the HTTP request that switches a connection to WebSocket
//! (RFC 6455 §4.2). It goes through the same phases as every request — the
//! per-address budget, then, when it carries `Authorization: Bearer`, the
//! caller's authentication and game scope — and its browser `Origin` must be
//! the server's own (same `Host`) or one of `http.cors_origins`. A client without the header (a browser
//! cannot set one) authenticates with its first message instead
//! (`realtime/socket.rs`); a token in the URL is never read.

use crate::http::request::Request;
use crate::http::response::Response;
use crate::pipeline::{self, Credentials, Scope};
use crate::realtime::frame;
use crate::service::auth::Caller;
use crate::shard::Shard;
use std::net::IpAddr;

/// The path that upgrades.
pub const PATH: &str = "/ws";

/// A connection that switched: who it is, if the upgrade said so.
#[derive(Debug)]
pub struct Upgrade {
    /// The caller the upgrade's `Authorization` header proved; `None` until
    /// the first message authenticates.
    pub caller: Option<Caller>,
}

/// Checks an upgrade request; on success appends the `101 Switching
/// Protocols` answer to `out`, else answers what was wrong.
pub async fn accept(
    shard: &Shard,
    req: &Request<'_>,
    client: IpAddr,
    out: &mut Vec<u8>,
) -> Result<Upgrade, Response> {
    let h = &req.headers;
    if req.method != "GET" {
        return Err(Response::status(405, "GET /ws upgrades to WebSocket"));
    }
    if !h.upgrade_websocket || !h.connection_upgrade {
        return Err(Response::status(
            426,
            "GET /ws is a WebSocket endpoint: send Upgrade: websocket and Connection: Upgrade",
        )
        .with_header("Upgrade", "websocket"));
    }
    if !h.websocket_13 {
        return Err(Response::status(426, "Sec-WebSocket-Version must be 13")
            .with_header("Sec-WebSocket-Version", "13"));
    }
    let key = h.websocket_key.map(str::trim).unwrap_or("");
    if !valid_key(key) {
        return Err(Response::status(
            400,
            "Sec-WebSocket-Key must be 16 bytes in base64",
        ));
    }
    if let Some(origin) = h.origin {
        if !h.same_origin && !shard.config.http.allows_origin(origin) {
            return Err(Response::status(
                403,
                "origin not allowed (http.cors_origins)",
            ));
        }
    }
    if shard.is_draining() {
        return Err(Response::status(503, "the node is draining"));
    }
    let refused = |e: crate::error::ApiError| Response::error(&e);
    pipeline::admit(shard, client).await.map_err(refused)?;
    let caller = match h.authorization {
        None => None,
        Some(header) => {
            let caller = pipeline::authenticate(shard, Credentials::Bearer(Some(header)))
                .map_err(refused)?;
            let game = pipeline::scope(shard, &caller, h.game_id, Scope::Game).map_err(refused)?;
            let mut caller = caller.into_owned();
            // An admin's socket acts in the game its upgrade named.
            caller.game_id = game.id.clone();
            Some(caller)
        }
    };
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
    out.extend_from_slice(frame::accept_key(key).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    Ok(Upgrade { caller })
}

/// Whether `key` is base64 of 16 bytes (24 characters, `==` at the end).
fn valid_key(key: &str) -> bool {
    use base64::Engine;
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|k| k.len() == 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_16_bytes_of_base64() {
        assert!(valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!valid_key(""));
        assert!(!valid_key("dGhlIHNhbXBsZSBub25jZQ"), "unpadded");
        assert!(!valid_key("dGhlIHNhbXBsZSBub25jZQ==dGhl"), "too long");
        assert!(!valid_key("!!!!!!!!!!!!!!!!!!!!!!=="), "not base64");
    }
}
