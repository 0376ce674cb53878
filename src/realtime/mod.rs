//! Realtime (SPEC §11): WebSocket notifications, inbox and presence.
//!
//! - [`frame`]: RFC 6455 frames and the handshake's accept key (sans-I/O).
//!
//! Built so far: the frame codec. The upgrade on `GET /ws`, the per-shard
//! registry of sockets, the notifications and their cross-node fan-out
//! follow (issue 26).

pub mod frame;
