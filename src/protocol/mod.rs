//! The binary protocol of game servers (SPEC §2): the frame codec and the
//! message types, flags and protocol error codes. Nothing here does I/O; the
//! TCP front end owns sockets and buffers.

pub mod frame;
pub mod gzip;
pub mod message;

pub use frame::{decode, encode, Decoded, FrameError, FrameRef, HEADER_LEN, MAX_ID_LEN, VERSION};
pub use gzip::{inflate_body, InflateError};
pub use message::{codes, flags, MessageType};
