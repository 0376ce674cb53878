//! Realtime (SPEC §11): WebSocket notifications, inbox and presence.
//!
//! - [`frame`]: RFC 6455 frames and the handshake's accept key (sans-I/O).
//! - [`upgrade`]: `GET /ws`, checked through the request pipeline's phases,
//!   answered `101` (the HTTP codec then hands the connection over).
//! - [`socket`]: one WebSocket connection: first-message authentication,
//!   pings, close codes.
//!
//! Built so far: the socket itself. The per-shard registry of sockets, the
//! notifications, resume and their cross-node fan-out follow (issue 26).

pub mod frame;
pub mod socket;
pub mod upgrade;
