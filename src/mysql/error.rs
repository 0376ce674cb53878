//! Why a MySQL call failed, in kinds a caller can act on: a server's answer
//! keeps its error code and SQLSTATE (so a deadlock, a lock wait timeout or
//! a duplicate key can be mapped and retried or reported), while socket
//! failures, protocol violations and timeouts stay distinct — and say
//! whether the connection they happened on may be used again.

use mysql_common::packets::ServerError;
use mysql_common::proto::codec::error::PacketCodecError;
use std::fmt;
use std::time::Duration;

/// Server error codes callers commonly map (MySQL and MariaDB share them).
pub mod codes {
    /// `ER_ACCESS_DENIED_ERROR`: wrong user or password.
    pub const ACCESS_DENIED: u16 = 1045;
    /// `ER_CHECKREAD`: under MariaDB's `innodb_snapshot_isolation` (on by
    /// default since 11.6.2), a locking read met a row changed since the
    /// transaction's snapshot; the transaction must run again.
    pub const SNAPSHOT_CONFLICT: u16 = 1020;
    /// `ER_SERVER_SHUTDOWN`: the server is shutting down (it closes the connection).
    pub const SERVER_SHUTDOWN: u16 = 1053;
    /// `ER_DUP_ENTRY`: a unique key already holds the value.
    pub const DUPLICATE_KEY: u16 = 1062;
    /// `ER_NET_PACKET_TOO_LARGE`: a packet exceeded `max_allowed_packet` (the
    /// server closes the connection).
    pub const PACKET_TOO_LARGE: u16 = 1153;
    /// `ER_UNKNOWN_STMT_HANDLER`: the server does not know the prepared statement.
    pub const UNKNOWN_STMT_HANDLER: u16 = 1243;
    /// `ER_LOCK_WAIT_TIMEOUT`: a row lock was not granted in time.
    pub const LOCK_WAIT_TIMEOUT: u16 = 1205;
    /// `ER_LOCK_DEADLOCK`: the transaction lost a deadlock and was rolled back.
    pub const DEADLOCK: u16 = 1213;
    /// `ER_QUERY_INTERRUPTED`: `KILL QUERY` stopped the statement.
    pub const QUERY_INTERRUPTED: u16 = 1317;
    /// `ER_NEED_REPREPARE`: a prepared statement must be prepared again.
    pub const NEED_REPREPARE: u16 = 1615;
    /// MariaDB's `ER_CONNECTION_KILLED`: `KILL` ended the connection.
    pub const CONNECTION_KILLED: u16 = 1927;
    /// MySQL's `ER_CLIENT_INTERACTION_TIMEOUT`: the server closed an idle connection.
    pub const CLIENT_INTERACTION_TIMEOUT: u16 = 4031;
}

/// A failed MySQL call.
#[derive(Debug)]
pub enum MysqlError {
    /// The server answered with an ERR packet.
    Server {
        /// The server's error code (see [`codes`]).
        code: u16,
        /// The five-character SQLSTATE (`HY000` when the server gave none).
        state: String,
        /// The server's message.
        message: String,
    },
    /// The socket failed: refused, reset, or closed by the server.
    Io(std::io::Error),
    /// The server's bytes broke the protocol: a packet out of step, malformed
    /// or not expected at this point.
    Protocol(String),
    /// Authentication could not go on at the client's side (a plugin this
    /// client does not speak, or a challenge it cannot answer).
    Auth(String),
    /// Connecting or a statement took longer than allowed.
    Timeout(Duration),
    /// The connection broke earlier and must be dropped.
    Broken,
    /// The options or URL are not usable.
    Config(String),
    /// The call itself was wrong (say, a parameter count that does not match
    /// the statement's); nothing was sent.
    Usage(String),
}

impl MysqlError {
    /// The server's error code, for [`MysqlError::Server`].
    pub fn code(&self) -> Option<u16> {
        match self {
            MysqlError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The server's SQLSTATE, for [`MysqlError::Server`].
    pub fn sql_state(&self) -> Option<&str> {
        match self {
            MysqlError::Server { state, .. } => Some(state),
            _ => None,
        }
    }

    /// The transaction lost a deadlock (1213); the server rolled it back.
    pub fn is_deadlock(&self) -> bool {
        self.code() == Some(codes::DEADLOCK)
    }

    /// A locking read met a row changed since the transaction's snapshot
    /// (1020, MariaDB's snapshot isolation).
    pub fn is_snapshot_conflict(&self) -> bool {
        self.code() == Some(codes::SNAPSHOT_CONFLICT)
    }

    /// Whether the transaction this error ended should run again: it lost a
    /// deadlock (1213), a lock wait (1205) or a snapshot conflict (1020),
    /// and wrote nothing. The pool reruns such transactions; callers that
    /// see one after the reruns answer "busy".
    pub fn loses_transaction(&self) -> bool {
        self.is_deadlock() || self.is_lock_wait_timeout() || self.is_snapshot_conflict()
    }

    /// A row lock was not granted in time (1205).
    pub fn is_lock_wait_timeout(&self) -> bool {
        self.code() == Some(codes::LOCK_WAIT_TIMEOUT)
    }

    /// A unique key already holds the value (1062).
    pub fn is_duplicate_key(&self) -> bool {
        self.code() == Some(codes::DUPLICATE_KEY)
    }

    /// Whether the connection this happened on can no longer be used: every
    /// socket, protocol, authentication and timeout failure, and the server
    /// errors after which the server closes the connection. Other server
    /// errors leave the connection in step and usable.
    pub fn breaks_connection(&self) -> bool {
        match self {
            MysqlError::Server { code, .. } => matches!(
                *code,
                codes::SERVER_SHUTDOWN
                    | codes::PACKET_TOO_LARGE
                    | codes::CONNECTION_KILLED
                    | codes::CLIENT_INTERACTION_TIMEOUT
            ),
            MysqlError::Io(_)
            | MysqlError::Protocol(_)
            | MysqlError::Auth(_)
            | MysqlError::Timeout(_)
            | MysqlError::Broken => true,
            MysqlError::Config(_) | MysqlError::Usage(_) => false,
        }
    }

    /// A [`MysqlError::Protocol`] with `what` as its message.
    pub(crate) fn protocol(what: impl fmt::Display) -> MysqlError {
        MysqlError::Protocol(what.to_string())
    }
}

impl From<&ServerError<'_>> for MysqlError {
    fn from(e: &ServerError<'_>) -> MysqlError {
        MysqlError::Server {
            code: e.error_code(),
            state: e
                .sql_state_ref()
                .map(|s| s.as_str().into_owned())
                .unwrap_or_else(|| "HY000".to_string()),
            message: e.message_str().into_owned(),
        }
    }
}

impl From<std::io::Error> for MysqlError {
    fn from(e: std::io::Error) -> MysqlError {
        MysqlError::Io(e)
    }
}

impl From<PacketCodecError> for MysqlError {
    fn from(e: PacketCodecError) -> MysqlError {
        match e {
            PacketCodecError::Io(e) => MysqlError::Io(e),
            other => MysqlError::Protocol(other.to_string()),
        }
    }
}

impl fmt::Display for MysqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MysqlError::Server {
                code,
                state,
                message,
            } => write!(f, "mysql: server error {code} ({state}): {message}"),
            MysqlError::Io(e) => write!(f, "mysql: i/o: {e}"),
            MysqlError::Protocol(m) => write!(f, "mysql: protocol: {m}"),
            MysqlError::Auth(m) => write!(f, "mysql: authentication: {m}"),
            MysqlError::Timeout(d) => write!(f, "mysql: no answer within {d:?}"),
            MysqlError::Broken => write!(f, "mysql: the connection broke earlier"),
            MysqlError::Config(m) => write!(f, "mysql: options: {m}"),
            MysqlError::Usage(m) => write!(f, "mysql: {m}"),
        }
    }
}

impl std::error::Error for MysqlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MysqlError::Io(e) => Some(e),
            _ => None,
        }
    }
}
