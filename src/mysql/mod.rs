//! The MySQL/MariaDB client on glommio sockets, so that a shard speaks to
//! its databases on its own io_uring (SPEC §1): no thread hop, no lock
//! shared with another core.
//!
//! What is hand-written and why: the `mysql` and `mysql_async` crates need
//! blocking threads or tokio, so the socket loop, the connect and
//! authentication exchange, the result-set state machine and the
//! prepared-statement cache are ours. The protocol's bytes — packet framing
//! with sequence ids, the handshake, the auth plugins' cryptography,
//! OK/ERR/column packets, `COM_STMT_EXECUTE` requests and text and binary
//! row values — are `mysql_common`'s (sans-I/O).
//!
//! - [`opts`]: what a `mysql://` URL names, and the limits.
//! - [`packet`]: framed packets over a `TcpStream`, with reused buffers.
//! - [`error`]: [`MysqlError`], which keeps server codes and SQLSTATE.
//!
//! Pools per shard, and the store on top, come later (issue 25).

pub mod error;
pub mod opts;
pub mod packet;

pub use error::{codes, MysqlError};
pub use opts::Opts;
