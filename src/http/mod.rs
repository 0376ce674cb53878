//! The HTTP/JSON front end (SPEC §3): HTTP/1.1 with keep-alive and
//! pipelining, parsed with httparse, answered by handlers that call the shared
//! service layer. Each shard runs its own listener on the shared port.

pub mod console;
pub mod handlers;
pub mod health;
pub mod request;
pub mod response;
pub mod router;
pub mod server;
