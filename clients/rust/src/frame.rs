//! The frame format of the binary protocol, without I/O: encoding a request,
//! decoding a reply, and the numbers a client needs (message types, flags,
//! error codes, limits). Written apart from the server's own codec so that a
//! client needs nothing of the server; the repository's tests hold both to the
//! frames of the original encoder (`tests/data/golden-frames.hex`).
//!
//! A frame is a 28-byte big-endian header, the game id, the user id and the
//! body:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | version (1) |
//! | 1 | 2 | message type |
//! | 3 | 1 | flags |
//! | 4 | 4 | sequence id |
//! | 8 | 8 | timestamp, signed Unix seconds |
//! | 16 | 4 | body length |
//! | 20 | 4 | CRC32 (IEEE) of bytes 0..20 and 24..end |
//! | 24 | 2 | game id length |
//! | 26 | 2 | user id length |

/// Size of the fixed header (also the smallest frame).
pub const HEADER_LEN: usize = 28;
/// The only protocol version.
pub const VERSION: u8 = 1;
/// Longest game id or user id the server accepts, in bytes.
pub const MAX_ID_LEN: usize = 64;
/// The server's default limit on a request body (`tcp.max_body_bytes`).
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// Message type codes (header bytes 1..3).
pub mod msg {
    /// Keep-alive; answered with an empty Heartbeat. Resets the server's
    /// heartbeat timer.
    pub const HEARTBEAT: u16 = 0x0001;
    /// Authenticates the connection (server key, player token, or dev mode).
    pub const HANDSHAKE: u16 = 0x0002;
    /// Logs a player in with username and password.
    pub const PLAYER_LOGIN: u16 = 0x1001;
    /// Revokes all of a player's sessions.
    pub const PLAYER_LOGOUT: u16 = 0x1002;
    /// Player profile actions: get, update, create, wallet, ledger.
    pub const PLAYER_DATA: u16 = 0x1003;
    /// Inventory actions: list, use, grant, transfer.
    pub const ITEM_OPERATION: u16 = 0x1004;
    /// Order actions: create, get, list, pay, cancel.
    pub const ORDER_OPERATION: u16 = 0x1005;
    /// A failure, sent by the server only.
    pub const ERROR: u16 = 0x2001;
    /// Liveness probe; answered with Pong. Resets the heartbeat timer too.
    pub const PING: u16 = 0x2002;
    /// The answer to Ping, sent by the server only.
    pub const PONG: u16 = 0x2003;
}

/// Flag bits (header byte 3).
pub mod flags {
    /// The body is gzip-compressed.
    pub const COMPRESSED: u8 = 0x01;
    /// The body is encrypted: refused by the server with 0xE002 (use TLS).
    pub const ENCRYPTED: u8 = 0x02;
    /// The sender wants the reply (every request is answered anyway, unless
    /// Async is set without it).
    pub const NEED_RESPONSE: u8 = 0x04;
    /// With NeedResponse clear: fire-and-forget, answered only on failure.
    pub const ASYNC: u8 = 0x08;
}

/// Protocol error codes carried in the `code` of an Error frame's body.
/// Business failures carry the business codes (1001…3003) or 409 / 429
/// instead.
pub mod codes {
    /// Version byte other than 1.
    pub const UNSUPPORTED_VERSION: u32 = 0xE001;
    /// Bad checksum, JSON, type, UTF-8, body, or the Encrypted flag.
    pub const MALFORMED: u32 = 0xE002;
    /// Authentication required or failed.
    pub const AUTH: u32 = 0xE003;
    /// Permission denied.
    pub const FORBIDDEN: u32 = 0xE004;
    /// Not found.
    pub const NOT_FOUND: u32 = 0xE005;
    /// Internal error, backend unavailable, maintenance; with sequence 0:
    /// server busy or shutting down, and the connection closes.
    pub const INTERNAL: u32 = 0xE006;
    /// Idle or heartbeat timeout; the connection closes.
    pub const TIMEOUT: u32 = 0xE007;
    /// Frame or inflated body too large.
    pub const TOO_LARGE: u32 = 0xE008;
}

/// One frame, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Protocol version: [`VERSION`].
    pub version: u8,
    /// Message type ([`msg`]).
    pub msg_type: u16,
    /// Flag bits ([`flags`]).
    pub flags: u8,
    /// Chosen by the sender; a reply carries its request's.
    pub sequence: u32,
    /// The sender's clock, Unix seconds.
    pub timestamp: i64,
    /// Game id (UTF-8, at most [`MAX_ID_LEN`] bytes).
    pub game_id: String,
    /// User id (UTF-8, at most [`MAX_ID_LEN`] bytes).
    pub user_id: String,
    /// Body bytes: JSON, or gzip of JSON with [`flags::COMPRESSED`].
    pub body: Vec<u8>,
}

/// Why bytes are not a frame this client accepts, or a frame cannot be
/// encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The CRC32 field does not match the bytes.
    BadChecksum,
    /// Version byte other than 1.
    UnsupportedVersion(u8),
    /// An id or the body is longer than allowed.
    TooLarge,
    /// An id is not UTF-8.
    BadUtf8,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadChecksum => write!(f, "checksum mismatch"),
            FrameError::UnsupportedVersion(v) => write!(f, "unsupported protocol version {v}"),
            FrameError::TooLarge => write!(f, "id or body too long"),
            FrameError::BadUtf8 => write!(f, "id is not UTF-8"),
        }
    }
}

impl std::error::Error for FrameError {}

/// CRC32 (IEEE, as zlib's `crc32`) of a whole encoded frame except its
/// checksum field: bytes 0..20 followed by bytes 24..end.
pub fn checksum(frame: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&frame[..frame.len().min(20)]);
    if frame.len() > 24 {
        h.update(&frame[24..]);
    }
    h.finalize()
}

/// Appends `frame`, encoded, to `out`. Refuses ids longer than
/// [`MAX_ID_LEN`] and bodies longer than `u32::MAX` (the server would close
/// the connection on them).
pub fn encode(frame: &Frame, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let game = frame.game_id.as_bytes();
    let user = frame.user_id.as_bytes();
    if game.len() > MAX_ID_LEN || user.len() > MAX_ID_LEN {
        return Err(FrameError::TooLarge);
    }
    let body_len = u32::try_from(frame.body.len()).map_err(|_| FrameError::TooLarge)?;
    let start = out.len();
    out.reserve(HEADER_LEN + game.len() + user.len() + frame.body.len());
    out.push(frame.version);
    out.extend_from_slice(&frame.msg_type.to_be_bytes());
    out.push(frame.flags);
    out.extend_from_slice(&frame.sequence.to_be_bytes());
    out.extend_from_slice(&frame.timestamp.to_be_bytes());
    out.extend_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    // Both lengths fit: checked against MAX_ID_LEN above.
    out.extend_from_slice(&(game.len() as u16).to_be_bytes());
    out.extend_from_slice(&(user.len() as u16).to_be_bytes());
    out.extend_from_slice(game);
    out.extend_from_slice(user);
    out.extend_from_slice(&frame.body);
    let crc = checksum(&out[start..]);
    out[start + 20..start + 24].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

fn be_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes the frame at the start of `buf`: `Ok(None)` while the bytes of a
/// whole frame have not all arrived, `Ok(Some((frame, len)))` with the bytes
/// it occupies, or why it is not acceptable. Lengths are checked against
/// `max_body` and [`MAX_ID_LEN`] from the header alone, before waiting for
/// the rest.
pub fn decode(buf: &[u8], max_body: usize) -> Result<Option<(Frame, usize)>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let body_len = be_u32(buf, 16) as usize;
    let game_len = be_u16(buf, 24) as usize;
    let user_len = be_u16(buf, 26) as usize;
    if body_len > max_body || game_len > MAX_ID_LEN || user_len > MAX_ID_LEN {
        return Err(FrameError::TooLarge);
    }
    let len = HEADER_LEN + game_len + user_len + body_len;
    if buf.len() < len {
        return Ok(None);
    }
    let bytes = &buf[..len];
    if checksum(bytes) != be_u32(bytes, 20) {
        return Err(FrameError::BadChecksum);
    }
    if bytes[0] != VERSION {
        return Err(FrameError::UnsupportedVersion(bytes[0]));
    }
    let ids_end = HEADER_LEN + game_len + user_len;
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| FrameError::BadUtf8);
    let mut timestamp = [0u8; 8];
    timestamp.copy_from_slice(&bytes[8..16]);
    let frame = Frame {
        version: bytes[0],
        msg_type: be_u16(bytes, 1),
        flags: bytes[3],
        sequence: be_u32(bytes, 4),
        timestamp: i64::from_be_bytes(timestamp),
        game_id: text(&bytes[HEADER_LEN..HEADER_LEN + game_len])?,
        user_id: text(&bytes[HEADER_LEN + game_len..ids_end])?,
        body: bytes[ids_end..].to_vec(),
    };
    Ok(Some((frame, len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
            .collect()
    }

    /// The two worked examples of the original's documentation: a Handshake
    /// with ids and no body, and a Heartbeat without ids.
    #[test]
    fn worked_examples_encode_byte_for_byte() {
        let handshake = Frame {
            version: 1,
            msg_type: msg::HANDSHAKE,
            flags: flags::NEED_RESPONSE,
            sequence: 1,
            timestamp: 1_735_689_600,
            game_id: "game1".into(),
            user_id: "u1".into(),
            body: Vec::new(),
        };
        let mut out = Vec::new();
        assert_eq!(encode(&handshake, &mut out), Ok(()));
        assert_eq!(
            out,
            hex("01 0002 04 00000001 0000000067748580 00000000 b56e2b9d 0005 0002 67616d6531 7531")
        );
        assert_eq!(decode(&out, DEFAULT_MAX_BODY), Ok(Some((handshake, 35))));
        let heartbeat = Frame {
            version: 1,
            msg_type: msg::HEARTBEAT,
            flags: 0,
            sequence: 7,
            timestamp: 1_735_689_600,
            game_id: String::new(),
            user_id: String::new(),
            body: Vec::new(),
        };
        let mut out = Vec::new();
        assert_eq!(encode(&heartbeat, &mut out), Ok(()));
        assert_eq!(
            out,
            hex("01 0001 00 00000007 0000000067748580 00000000 6116d170 0000 0000")
        );
    }

    #[test]
    fn partial_bad_and_oversized_frames() {
        let frame = Frame {
            version: 1,
            msg_type: msg::PING,
            flags: 0,
            sequence: 9,
            timestamp: 1,
            game_id: "game1".into(),
            user_id: String::new(),
            body: b"{}".to_vec(),
        };
        let mut out = Vec::new();
        assert_eq!(encode(&frame, &mut out), Ok(()));
        for cut in 0..out.len() {
            assert_eq!(decode(&out[..cut], DEFAULT_MAX_BODY), Ok(None), "cut {cut}");
        }
        let mut bad = out.clone();
        bad[HEADER_LEN] ^= 1;
        assert_eq!(decode(&bad, DEFAULT_MAX_BODY), Err(FrameError::BadChecksum));
        assert_eq!(decode(&out, 1), Err(FrameError::TooLarge));
        let long = Frame {
            game_id: "g".repeat(MAX_ID_LEN + 1),
            ..frame
        };
        assert_eq!(encode(&long, &mut Vec::new()), Err(FrameError::TooLarge));
    }
}
