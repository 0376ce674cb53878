//! Realtime (SPEC §11): WebSocket notifications, inbox and presence.
//!
//! - [`frame`]: RFC 6455 frames and the handshake's accept key (sans-I/O).
//! - [`upgrade`]: `GET /ws`, checked through the request pipeline's phases,
//!   answered `101` (the HTTP codec then hands the connection over).
//! - [`socket`]: one WebSocket connection: first-message authentication,
//!   pings, close codes.
//! - [`hub`]: a shard's sockets by session, so a revocation closes them.
//!
//! Built so far: the socket and its closing on revocation. The
//! notifications, the inbox, resume, presence and their cross-node fan-out
//! follow (issue 26).

pub mod delivery;
pub mod frame;
pub mod hub;
pub mod relay;
pub mod socket;
pub mod upgrade;
