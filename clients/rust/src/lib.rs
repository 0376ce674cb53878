//! A blocking reference client of DataMiddleware's binary TCP protocol, for
//! game servers (the protocol is described in `docs/protocol.md` at the
//! root of the repository).
//!
//! It exists so that a game server does not have to write the frame codec,
//! the reply matching and the reconnection rules itself: depend on this
//! crate (or copy `frame.rs` and `client.rs`) and call the server.
//!
//! ```no_run
//! use dm_client::{msg, Auth, Client, Config};
//! use serde_json::json;
//!
//! # fn main() -> Result<(), dm_client::Error> {
//! let config = Config::new("127.0.0.1:9090", "game1", Auth::ServerKey("KEY".into()));
//! let mut client = Client::connect(config)?;
//! let player = client.create_player("alice", "password1")?;
//! client.change_wallet(player.id, "gold", 250, "quest reward")?;
//! // Any message as JSON; `data` of the reply envelope comes back.
//! let items = client.call(msg::ITEM_OPERATION, &json!({"action": "list", "player_id": player.id}))?;
//! // Many requests in one write; the replies come back in request order.
//! let gets: Vec<_> = (0..10)
//!     .map(|_| (msg::PLAYER_DATA, json!({"action": "get", "player_id": player.id})))
//!     .collect();
//! for reply in client.pipeline(&gets) {
//!     println!("{}", reply?);
//! }
//! # let _ = items;
//! # Ok(())
//! # }
//! ```
//!
//! - [`frame`]: the 28-byte header, CRC32 and the codes (no I/O).
//! - [`Client`]: connect, handshake, calls, pipelining, reconnection.

pub mod client;
pub mod frame;

pub use client::{
    safe_to_resend, Auth, Client, Config, Error, HandshakeInfo, Login, Player, ServerError,
    WalletBalance,
};
pub use frame::{codes, flags, msg, Frame, FrameError};
