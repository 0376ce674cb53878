//! The WebSocket client side that `--scenario ws` and `idle-ws` need
//! (RFC 6455), sans-I/O: the upgrade request and its key, the check of the
//! answer's `Sec-WebSocket-Accept`, masked client frames, and the server's
//! (unmasked) frames. The accept value and the frame encoding are the
//! codec's own (`realtime/frame.rs`, pinned to RFC 6455's examples by the
//! tests here and there); reading the server's frames is the client's.

use base64::Engine;
use datamiddleware::realtime::frame;

/// Opcodes (RFC 6455 §5.2).
pub const TEXT: u8 = 0x1;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// A fresh `Sec-WebSocket-Key`: 16 random bytes in base64.
pub fn new_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>())
}

/// The `Sec-WebSocket-Accept` a server must answer `key` with.
pub fn accept_for(key: &str) -> String {
    frame::accept_key(key)
}

/// `GET /ws` asking to upgrade, authenticated with `Authorization: Bearer`.
pub fn upgrade_request(key: &str, token: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    )
}

/// What the answer to the upgrade said.
#[derive(Debug, PartialEq, Eq)]
pub enum Upgraded {
    /// The head is not complete yet.
    Partial,
    /// 101 with the right accept key; the frames start after `len` bytes.
    Switched { len: usize },
    /// Anything else: its status (0 when it was not HTTP, or 101 with a
    /// wrong or missing accept key).
    Refused(u16),
}

/// Reads the answer to [`upgrade_request`] made with `key`.
pub fn upgraded(bytes: &[u8], key: &str) -> Upgraded {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Upgraded::Partial,
        Err(_) => return Upgraded::Refused(0),
    };
    let status = response.code.unwrap_or(0);
    let accepted = response.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("sec-websocket-accept")
            && h.value.trim_ascii() == accept_for(key).as_bytes()
    });
    match (status, accepted) {
        (101, true) => Upgraded::Switched { len },
        (101, false) => Upgraded::Refused(0),
        (status, _) => Upgraded::Refused(status),
    }
}

/// Appends a masked client frame (FIN set) of `opcode` carrying `payload`.
pub fn encode(opcode: u8, payload: &[u8], mask: [u8; 4], out: &mut Vec<u8>) {
    frame::encode_frame(true, opcode, payload, Some(mask), out);
}

/// One frame from the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Not all of it has come yet.
    Incomplete,
    /// A whole frame: its opcode, its payload, and the bytes it took.
    Whole {
        opcode: u8,
        payload: &'a [u8],
        len: usize,
    },
    /// Not a frame a server may send (masked, a length past `max`).
    Bad,
}

/// Reads the frame at the start of `bytes`, whose payload may be at most
/// `max` bytes. The server sends each message in one frame (FIN set); a
/// continuation frame comes back as its opcode 0 for the caller to refuse.
pub fn decode(bytes: &[u8], max: usize) -> Frame<'_> {
    let [b0, b1, ..] = *bytes else {
        return Frame::Incomplete;
    };
    if b1 & 0x80 != 0 {
        return Frame::Bad;
    }
    let (len, head) = match b1 & 0x7F {
        126 => match bytes.get(2..4) {
            Some(n) => (u16::from_be_bytes([n[0], n[1]]) as u64, 4),
            None => return Frame::Incomplete,
        },
        127 => match bytes.get(2..10) {
            Some(n) => (u64::from_be_bytes(n.try_into().unwrap_or([0xFF; 8])), 10),
            None => return Frame::Incomplete,
        },
        n => (u64::from(n), 2),
    };
    if len > max as u64 {
        return Frame::Bad;
    }
    let end = head + len as usize;
    match bytes.get(head..end) {
        Some(payload) => Frame::Whole {
            opcode: b0 & 0x0F,
            payload,
            len: end,
        },
        None => Frame::Incomplete,
    }
}

/// The code of a close frame's payload (1005, "no status", when empty).
pub fn close_code(payload: &[u8]) -> u16 {
    match payload {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 1005,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_of_rfc_6455s_example() {
        assert_eq!(
            accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let key = new_key();
        assert_eq!(key.len(), 24);
        assert_ne!(key, new_key());
    }

    #[test]
    fn the_upgrade_is_checked() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let req = upgrade_request(key, "T");
        assert!(req.contains("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
        assert!(req.contains("Authorization: Bearer T\r\n") && req.ends_with("\r\n\r\n"));
        let ok = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                   Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x00";
        assert_eq!(upgraded(ok, key), Upgraded::Switched { len: ok.len() - 2 });
        assert_eq!(upgraded(&ok[..20], key), Upgraded::Partial);
        assert_eq!(
            upgraded(ok, "AAAAAAAAAAAAAAAAAAAAAA=="),
            Upgraded::Refused(0)
        );
        assert_eq!(
            upgraded(b"HTTP/1.1 401 Unauthorized\r\n\r\n", key),
            Upgraded::Refused(401)
        );
    }

    #[test]
    fn client_frames_are_masked_and_server_frames_read() {
        // RFC 6455 §5.7: a masked "Hello".
        let mut out = Vec::new();
        encode(TEXT, b"Hello", [0x37, 0xfa, 0x21, 0x3d], &mut out);
        assert_eq!(
            out,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        out.clear();
        encode(PONG, &[7; 300], [1, 2, 3, 4], &mut out);
        assert_eq!(&out[..4], &[0x8A, 0x80 | 126, 1, 44]);
        assert_eq!(out.len(), 4 + 4 + 300);
        // Unmasked server frames: short, 16-bit and 64-bit lengths.
        let hello = [0x81, 0x05, b'H', b'e', b'l', b'l', b'o', 0x89];
        assert_eq!(
            decode(&hello, 1024),
            Frame::Whole {
                opcode: TEXT,
                payload: b"Hello",
                len: 7
            }
        );
        assert_eq!(decode(&hello[..4], 1024), Frame::Incomplete);
        assert_eq!(decode(&hello[7..], 1024), Frame::Incomplete);
        let mut long = vec![0x81, 126, 0x01, 0x00];
        long.extend_from_slice(&[b'x'; 256]);
        assert!(matches!(decode(&long, 1024), Frame::Whole { len: 260, .. }));
        assert_eq!(decode(&long[..3], 1024), Frame::Incomplete);
        assert_eq!(decode(&long, 100), Frame::Bad);
        let mut huge = vec![0x81, 127];
        huge.extend_from_slice(&70_000u64.to_be_bytes());
        assert_eq!(decode(&huge, 1 << 20), Frame::Incomplete);
        huge.resize(10 + 70_000, b'y');
        assert!(matches!(
            decode(&huge, 1 << 20),
            Frame::Whole { len: 70_010, .. }
        ));
        assert_eq!(
            decode(&[0x81, 0x85, 0, 0, 0, 0], 1024),
            Frame::Bad,
            "masked"
        );
        assert_eq!(close_code(&[0x03, 0xE8, b'x']), 1000);
        assert_eq!(close_code(&[]), 1005);
    }
}
