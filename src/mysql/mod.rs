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
//! - [`connect`]: TCP connect, handshake and authentication.
//! - [`result`]: OK, ERR and result sets, text and binary rows.
//! - [`stmt_cache`]: the per-connection LRU of prepared statements.
//! - [`conn`]: [`Connection`], what callers use.
//! - [`error`]: [`MysqlError`], which keeps server codes and SQLSTATE.
//! - [`pool`]: [`Pool`], a shard's bounded pool of connections to one
//!   server, with the retries of stale connections and lost deadlocks.
//!
//! The store's MySQL backend (`store/mysql.rs`) runs on top of [`Pool`].

pub mod conn;
pub mod connect;
pub mod error;
pub mod opts;
pub mod packet;
pub mod pool;
pub mod result;
pub mod stmt_cache;

pub use conn::Connection;
pub use error::{codes, MysqlError};
pub use mysql_common::packets::Column;
pub use mysql_common::Value;
pub use opts::Opts;
pub use pool::{Pool, PoolError, PoolFigures, PooledConn};
pub use result::{QueryResult, Row};
