//! The request pipeline: the phases every request goes through, whatever
//! front end it came in by, written once (pingora's named phases are the
//! model). A front end maps its wire format in (a route or a message type,
//! its credentials, the game it names) and the answer out (a response or a
//! reply frame); between the two, in this order:
//!
//! 1. **admit** ([`admit`]) — the client's per-node request budget, before
//!    anything else is read (probes skip it);
//! 2. **authenticate** ([`authenticate`]) — the caller from an HTTP bearer
//!    token or from the connection's handshake (TCP), refused once its
//!    session is revoked (every request is checked, not only the first of a
//!    connection);
//! 3. **scope** ([`scope`]) — the game the request acts in: the token's,
//!    another one refused; an admin's choice; a game in maintenance refuses
//!    everyone but admins, except a logout ([`Scope::EndSession`]);
//! 4. **call** — the front end parses its body into the service's request
//!    type and makes one service call (`crate::service`);
//! 5. **envelope** — the answer as `crate::envelope` writes it, success or
//!    failure;
//! 6. **count** ([`count`]) — the request in the shard's metrics, by
//!    protocol, route or message, and status.
//!
//! Public requests (registration, logins) skip authentication and scope
//! through [`Services::anonymous_scope`](crate::service::Services::anonymous_scope)
//! inside their service call.

use crate::service::{ApiError, Caller, GameContext};
use crate::shard::Shard;
use std::borrow::Cow;
use std::net::IpAddr;
use std::time::Instant;

/// What a request brings to prove who it is.
#[derive(Debug, Clone, Copy)]
pub enum Credentials<'a> {
    /// HTTP: the `Authorization` header as sent, if any.
    Bearer(Option<&'a str>),
    /// A token as such (a WebSocket's `auth` message).
    Token(&'a str),
    /// TCP: who the connection's handshake made it, if one succeeded.
    Session(Option<&'a Caller>),
}

/// How a request is scoped to its game.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Any request: refused while the game is in maintenance (admins aside).
    Game,
    /// A logout: ending a session must always work, maintenance or not.
    EndSession,
}

/// Phase 1: the client's per-node request budget (429 once spent).
pub async fn admit(shard: &Shard, client: IpAddr) -> Result<(), ApiError> {
    shard.services.admit(client).await
}

/// Phase 2: the caller the credentials prove, refused (401) when they are
/// missing or wrong, or its session has been revoked.
pub fn authenticate<'a>(
    shard: &Shard,
    credentials: Credentials<'a>,
) -> Result<Cow<'a, Caller>, ApiError> {
    match credentials {
        Credentials::Bearer(header) => {
            let header = header
                .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
            let token = header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .ok_or_else(|| ApiError::unauthorized("Authorization must be a Bearer token"))?;
            // Verifies the signature, the game, and the revocations.
            shard.services.authenticate(token.trim()).map(Cow::Owned)
        }
        Credentials::Token(token) => shard.services.authenticate(token.trim()).map(Cow::Owned),
        Credentials::Session(caller) => {
            let caller = caller.ok_or_else(|| ApiError::unauthorized("handshake required"))?;
            shard.services.check_not_revoked(caller)?;
            Ok(Cow::Borrowed(caller))
        }
    }
}

/// Phase 3: the game `caller`'s request acts in, given the game it names.
pub fn scope<'s>(
    shard: &'s Shard,
    caller: &Caller,
    requested: Option<&str>,
    kind: Scope,
) -> Result<&'s GameContext, ApiError> {
    match kind {
        Scope::Game => shard.services.scope(caller, requested),
        Scope::EndSession => shard.services.scope_to_end_session(caller, requested),
    }
}

/// Phase 6: counts an answered request in the shard's metrics.
pub fn count(
    shard: &Shard,
    protocol: &'static str,
    label: &'static str,
    status: u16,
    started: Instant,
) {
    shard
        .metrics
        .request(protocol, label, status, started.elapsed());
}
