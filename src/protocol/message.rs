//! Message types, flag bits and protocol error codes of the binary protocol.

/// Every message type the protocol defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Keep-alive; answered with an empty Heartbeat.
    Heartbeat,
    /// Authenticates the connection.
    Handshake,
    /// Logs a player in.
    PlayerLogin,
    /// Revokes a player's sessions.
    PlayerLogout,
    /// Player profile actions.
    PlayerData,
    /// Inventory actions.
    ItemOperation,
    /// Order actions.
    OrderOperation,
    /// A message to a player (SPEC §11): `{"player_id","subject","body","persistent"?}`.
    Notify,
    /// Leaderboard actions (SPEC §12): `submit`, `top`, `around`, `rank`.
    Leaderboard,
    /// Server-to-client error report.
    Error,
    /// Liveness probe; answered with Pong.
    Ping,
    /// Answer to Ping.
    Pong,
}

impl MessageType {
    /// Maps a wire code to a type; `None` for unknown codes.
    pub fn from_code(code: u16) -> Option<MessageType> {
        Some(match code {
            0x0001 => MessageType::Heartbeat,
            0x0002 => MessageType::Handshake,
            0x1001 => MessageType::PlayerLogin,
            0x1002 => MessageType::PlayerLogout,
            0x1003 => MessageType::PlayerData,
            0x1004 => MessageType::ItemOperation,
            0x1005 => MessageType::OrderOperation,
            0x1006 => MessageType::Notify,
            0x1007 => MessageType::Leaderboard,
            0x2001 => MessageType::Error,
            0x2002 => MessageType::Ping,
            0x2003 => MessageType::Pong,
            _ => return None,
        })
    }

    /// The wire code of this type.
    pub fn code(self) -> u16 {
        match self {
            MessageType::Heartbeat => 0x0001,
            MessageType::Handshake => 0x0002,
            MessageType::PlayerLogin => 0x1001,
            MessageType::PlayerLogout => 0x1002,
            MessageType::PlayerData => 0x1003,
            MessageType::ItemOperation => 0x1004,
            MessageType::OrderOperation => 0x1005,
            MessageType::Notify => 0x1006,
            MessageType::Leaderboard => 0x1007,
            MessageType::Error => 0x2001,
            MessageType::Ping => 0x2002,
            MessageType::Pong => 0x2003,
        }
    }

    /// A short name for logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            MessageType::Heartbeat => "heartbeat",
            MessageType::Handshake => "handshake",
            MessageType::PlayerLogin => "player_login",
            MessageType::PlayerLogout => "player_logout",
            MessageType::PlayerData => "player_data",
            MessageType::ItemOperation => "item_operation",
            MessageType::OrderOperation => "order_operation",
            MessageType::Notify => "notify",
            MessageType::Leaderboard => "leaderboard",
            MessageType::Error => "error",
            MessageType::Ping => "ping",
            MessageType::Pong => "pong",
        }
    }
}

/// Flag bits of the frame header.
pub mod flags {
    /// The body is gzip-compressed.
    pub const COMPRESSED: u8 = 0x01;
    /// The body is encrypted (refused: use TLS).
    pub const ENCRYPTED: u8 = 0x02;
    /// The sender wants a reply to a business message.
    pub const NEED_RESPONSE: u8 = 0x04;
    /// The sender does not wait for the reply.
    pub const ASYNC: u8 = 0x08;
}

/// Protocol error codes carried in Error frames.
pub mod codes {
    /// Version byte other than 1.
    pub const UNSUPPORTED_VERSION: u32 = 0xE001;
    /// Bad checksum, JSON, type, UTF-8, or Encrypted flag.
    pub const MALFORMED: u32 = 0xE002;
    /// Authentication required or failed.
    pub const AUTH: u32 = 0xE003;
    /// Permission denied.
    pub const FORBIDDEN: u32 = 0xE004;
    /// Not found.
    pub const NOT_FOUND: u32 = 0xE005;
    /// Internal error, server busy, shutting down.
    pub const INTERNAL: u32 = 0xE006;
    /// A connection idle or silent (no heartbeat) past its timeout; sent
    /// just before the server closes it.
    pub const TIMEOUT: u32 = 0xE007;
    /// Frame or inflated body too large.
    pub const TOO_LARGE: u32 = 0xE008;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_is_none() {
        for code in [
            0x0001, 0x0002, 0x1001, 0x1002, 0x1003, 0x1004, 0x1005, 0x1006, 0x1007, 0x2001, 0x2002,
            0x2003,
        ] {
            let t = MessageType::from_code(code).expect("known");
            assert_eq!(t.code(), code);
        }
        assert_eq!(MessageType::from_code(0x1008), None);
        assert_eq!(MessageType::from_code(0), None);
    }
}
