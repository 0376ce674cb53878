//! WebSocket frames (RFC 6455 §5) as the server reads and writes them:
//! client frames are masked and unmasked in place, fragmented messages are
//! joined up to a limit, control frames are checked, and server frames go
//! out unmasked. Sans-I/O: the socket loop feeds bytes in and writes what
//! the encoders append.
//!
//! Every violation the RFC names ends the connection with the close code it
//! gives ([`Violation::code`]): an unmasked client frame, a reserved bit or
//! opcode, a fragmented or oversized control frame (1002), text that is not
//! UTF-8 (1007), a message over the limit (1009).

use sha1::{Digest, Sha1};

/// The GUID a server appends to the client's key (RFC 6455 §1.3).
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest payload of a control frame (RFC 6455 §5.5).
const MAX_CONTROL: usize = 125;

/// Close codes the server sends (RFC 6455 §7.4.1, SPEC §11).
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is going away (a draining node).
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the protocol.
    pub const PROTOCOL: u16 = 1002;
    /// A text message that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// A policy was violated: a slow reader, a missed authentication.
    pub const POLICY: u16 = 1008;
    /// A message over the inbound limit.
    pub const TOO_BIG: u16 = 1009;
    /// The server failed.
    pub const INTERNAL: u16 = 1011;
    /// The session was revoked or the player banned (SPEC §11).
    pub const REVOKED: u16 = 4001;
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    use base64::Engine;
    let mut sha = Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// A whole message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (checked UTF-8).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping: answer with a pong carrying the same bytes.
    Ping(Vec<u8>),
    /// A pong (the answer to the server's ping).
    Pong,
    /// The client closes, with its code when it gave one.
    Close(Option<u16>),
}

/// Why the server closes a connection whose bytes broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The close code to send.
    pub code: u16,
    /// What was wrong (the close frame's reason).
    pub reason: &'static str,
}

impl Violation {
    fn protocol(reason: &'static str) -> Violation {
        Violation {
            code: close::PROTOCOL,
            reason,
        }
    }
}

/// What one call of [`Decoder::decode`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input that were read (a whole frame, or none).
    pub used: usize,
    /// The message the frame completed, if it completed one.
    pub message: Option<Message>,
}

/// Reads client frames into messages, joining fragments.
#[derive(Debug)]
pub struct Decoder {
    /// Largest message, fragments joined (SPEC §11: 64 KiB).
    max_message: usize,
    /// A fragmented message under way: its opcode and bytes so far.
    partial: Option<(u8, Vec<u8>)>,
}

impl Decoder {
    /// A decoder refusing messages over `max_message` bytes.
    pub fn new(max_message: usize) -> Decoder {
        Decoder {
            max_message,
            partial: None,
        }
    }

    /// Bytes a message under way holds (for the memory budget).
    pub fn buffered(&self) -> usize {
        self.partial.as_ref().map_or(0, |(_, b)| b.capacity())
    }

    /// Reads the frame at the start of `input` (unmasking it in place): none
    /// when it is not whole yet.
    pub fn decode(&mut self, input: &mut [u8]) -> Result<Decoded, Violation> {
        let nothing = Decoded {
            used: 0,
            message: None,
        };
        let Some(head) = Header::parse(input)? else {
            return Ok(nothing);
        };
        let is_control = head.opcode >= 0x8;
        if is_control && (!head.fin || head.len > MAX_CONTROL as u64) {
            return Err(Violation::protocol("a control frame is whole and short"));
        }
        let so_far = self.partial.as_ref().map_or(0, |(_, b)| b.len());
        let data_len = if is_control { 0 } else { so_far as u64 };
        if head.len.saturating_add(data_len) > self.max_message as u64 {
            return Err(Violation {
                code: close::TOO_BIG,
                reason: "message too big",
            });
        }
        // Within the limit, so it fits a usize.
        let len = head.len as usize;
        let end = head.size + len;
        if input.len() < end {
            return Ok(nothing);
        }
        let payload = &mut input[head.size..end];
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= head.mask[i % 4];
        }
        let message = self.take(head.opcode, head.fin, payload)?;
        Ok(Decoded { used: end, message })
    }

    fn take(
        &mut self,
        opcode: u8,
        fin: bool,
        payload: &[u8],
    ) -> Result<Option<Message>, Violation> {
        match opcode {
            0x0 => {
                let Some((_, bytes)) = self.partial.as_mut() else {
                    return Err(Violation::protocol("a continuation without a message"));
                };
                bytes.extend_from_slice(payload);
                if !fin {
                    return Ok(None);
                }
                let (first, bytes) = self.partial.take().unwrap_or_default();
                data_message(first, bytes).map(Some)
            }
            0x1 | 0x2 => {
                if self.partial.is_some() {
                    return Err(Violation::protocol("a new message inside a fragmented one"));
                }
                if fin {
                    return data_message(opcode, payload.to_vec()).map(Some);
                }
                self.partial = Some((opcode, payload.to_vec()));
                Ok(None)
            }
            0x8 => Ok(Some(Message::Close(close_code(payload)?))),
            0x9 => Ok(Some(Message::Ping(payload.to_vec()))),
            0xA => Ok(Some(Message::Pong)),
            _ => Err(Violation::protocol("reserved opcode")),
        }
    }
}

fn data_message(opcode: u8, bytes: Vec<u8>) -> Result<Message, Violation> {
    if opcode == 0x2 {
        return Ok(Message::Binary(bytes));
    }
    String::from_utf8(bytes)
        .map(Message::Text)
        .map_err(|_| Violation {
            code: close::INVALID_DATA,
            reason: "text is not UTF-8",
        })
}

/// The code of a client's close frame: none, or two bytes and UTF-8 reason.
fn close_code(payload: &[u8]) -> Result<Option<u16>, Violation> {
    match payload {
        [] => Ok(None),
        [_] => Err(Violation::protocol("a close code has two bytes")),
        [a, b, reason @ ..] => {
            if std::str::from_utf8(reason).is_err() {
                return Err(Violation {
                    code: close::INVALID_DATA,
                    reason: "close reason is not UTF-8",
                });
            }
            Ok(Some(u16::from_be_bytes([*a, *b])))
        }
    }
}

/// A frame's header as read.
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    len: u64,
    /// Bytes of the header.
    size: usize,
}

impl Header {
    fn parse(input: &[u8]) -> Result<Option<Header>, Violation> {
        let [b0, b1, rest @ ..] = input else {
            return Ok(None);
        };
        if b0 & 0x70 != 0 {
            return Err(Violation::protocol("reserved bits set"));
        }
        if b1 & 0x80 == 0 {
            return Err(Violation::protocol("a client frame must be masked"));
        }
        let (len, ext) = match b1 & 0x7F {
            126 => match rest {
                [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
                _ => return Ok(None),
            },
            127 => match rest.get(..8) {
                Some(bytes) => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(bytes);
                    let len = u64::from_be_bytes(be);
                    if len >> 63 != 0 {
                        return Err(Violation::protocol("payload length's top bit set"));
                    }
                    (len, 8)
                }
                None => return Ok(None),
            },
            short => (u64::from(short), 0),
        };
        let Some(mask) = rest.get(ext..ext + 4) else {
            return Ok(None);
        };
        Ok(Some(Header {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0F,
            mask: [mask[0], mask[1], mask[2], mask[3]],
            len,
            size: 2 + ext + 4,
        }))
    }
}

/// Appends a frame of `opcode` carrying `payload`, the last of its message
/// when `fin`; a client's frame carries `mask` and its payload masked with it
/// (RFC 6455 §5.3). The server's own frames are unmasked; the masked form
/// is here for clients (the load generator, the tests).
pub fn encode_frame(
    fin: bool,
    opcode: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
    out: &mut Vec<u8>,
) {
    out.push(if fin { 0x80 } else { 0 } | opcode);
    let masked = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(masked | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(masked | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(masked | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        None => out.extend_from_slice(payload),
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().zip(key.iter().cycle()).map(|(b, m)| b ^ m));
        }
    }
}

/// Appends a server frame (final, unmasked) with `opcode` and `payload`.
fn encode(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    encode_frame(true, opcode, payload, None, out);
}

/// Appends a text frame.
pub fn encode_text(text: &str, out: &mut Vec<u8>) {
    encode(0x1, text.as_bytes(), out);
}

/// Appends a ping frame.
pub fn encode_ping(payload: &[u8], out: &mut Vec<u8>) {
    encode(0x9, &payload[..payload.len().min(MAX_CONTROL)], out);
}

/// Appends a pong frame answering a ping with `payload`.
pub fn encode_pong(payload: &[u8], out: &mut Vec<u8>) {
    encode(0xA, &payload[..payload.len().min(MAX_CONTROL)], out);
}

/// Appends a close frame with `code` and a reason (cut to fit a control
/// frame at a character boundary).
pub fn encode_close(code: u16, reason: &str, out: &mut Vec<u8>) {
    let mut cut = reason.len().min(MAX_CONTROL - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = Vec::with_capacity(2 + cut);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    encode(0x8, &payload, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked with a fixed key.
    fn client(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(
            fin,
            opcode,
            payload,
            Some([0x37, 0xfa, 0x21, 0x3d]),
            &mut out,
        );
        out
    }

    fn one(d: &mut Decoder, mut bytes: Vec<u8>) -> Result<Decoded, Violation> {
        d.decode(&mut bytes)
    }

    #[test]
    fn the_rfc_accept_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn a_masked_text_frame_is_a_message_and_a_partial_one_waits() {
        let mut d = Decoder::new(64 * 1024);
        let frame = client(true, 0x1, b"{\"type\":\"auth\"}");
        for cut in 0..frame.len() {
            let mut part = frame[..cut].to_vec();
            assert_eq!(d.decode(&mut part).map(|x| x.used), Ok(0), "cut {cut}");
        }
        let got = one(&mut d, frame.clone()).expect("frame");
        assert_eq!(got.used, frame.len());
        assert_eq!(
            got.message,
            Some(Message::Text("{\"type\":\"auth\"}".into()))
        );
    }

    #[test]
    fn fragments_join_and_control_frames_pass_between_them() {
        let mut d = Decoder::new(64 * 1024);
        assert_eq!(
            one(&mut d, client(false, 0x1, b"hel")).unwrap().message,
            None
        );
        assert_eq!(
            one(&mut d, client(true, 0x9, b"p")).unwrap().message,
            Some(Message::Ping(b"p".to_vec()))
        );
        assert_eq!(
            one(&mut d, client(false, 0x0, b"lo ")).unwrap().message,
            None
        );
        assert_eq!(
            one(&mut d, client(true, 0x0, b"you")).unwrap().message,
            Some(Message::Text("hello you".into()))
        );
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn lengths_of_16_and_64_bits_are_read() {
        let mut d = Decoder::new(1 << 20);
        for n in [125, 126, 65_535, 65_536, 70_000] {
            let payload = vec![b'a'; n];
            let got = one(&mut d, client(true, 0x2, &payload)).unwrap();
            assert_eq!(got.message, Some(Message::Binary(payload)), "{n}");
        }
    }

    #[test]
    fn violations_close_with_the_rfcs_codes() {
        let code = |bytes: Vec<u8>| one(&mut Decoder::new(64 * 1024), bytes).unwrap_err().code;
        let mut unmasked = client(true, 0x1, b"x");
        unmasked[1] &= 0x7F;
        assert_eq!(code(unmasked), close::PROTOCOL);
        let mut rsv = client(true, 0x1, b"x");
        rsv[0] |= 0x40;
        assert_eq!(code(rsv), close::PROTOCOL);
        assert_eq!(
            code(client(true, 0x3, b"x")),
            close::PROTOCOL,
            "reserved opcode"
        );
        assert_eq!(
            code(client(false, 0x9, b"x")),
            close::PROTOCOL,
            "fragmented ping"
        );
        assert_eq!(
            code(client(true, 0x9, &[0; 126])),
            close::PROTOCOL,
            "long ping"
        );
        assert_eq!(
            code(client(true, 0x0, b"x")),
            close::PROTOCOL,
            "lone continuation"
        );
        assert_eq!(code(client(true, 0x1, &[0xff, 0xfe])), close::INVALID_DATA);
        assert_eq!(
            code(client(true, 0x8, &[3])),
            close::PROTOCOL,
            "one-byte close"
        );
    }

    #[test]
    fn a_message_over_the_limit_is_refused_before_its_payload_arrives() {
        let mut d = Decoder::new(64 * 1024);
        // Only the header of a 1 GiB frame: refused at once, nothing buffered.
        let mut head = client(true, 0x2, &[]);
        head[1] = 0x80 | 127;
        head.splice(2..2, (1u64 << 30).to_be_bytes());
        assert_eq!(d.decode(&mut head).unwrap_err().code, close::TOO_BIG);
        // Fragments that add up past the limit.
        let mut d = Decoder::new(100);
        assert!(one(&mut d, client(false, 0x1, &[b'a'; 60])).is_ok());
        assert_eq!(
            one(&mut d, client(true, 0x0, &[b'a'; 60]))
                .unwrap_err()
                .code,
            close::TOO_BIG
        );
        // A length with the top bit set.
        let mut huge = client(true, 0x2, &[]);
        huge[1] = 0x80 | 127;
        huge.splice(2..2, u64::MAX.to_be_bytes());
        assert_eq!(
            Decoder::new(10).decode(&mut huge).unwrap_err().code,
            close::PROTOCOL
        );
    }

    #[test]
    fn close_frames_carry_their_code() {
        let mut d = Decoder::new(64);
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        assert_eq!(
            one(&mut d, client(true, 0x8, &payload)).unwrap().message,
            Some(Message::Close(Some(1000)))
        );
        assert_eq!(
            one(&mut d, client(true, 0x8, &[])).unwrap().message,
            Some(Message::Close(None))
        );
    }

    #[test]
    fn server_frames_are_final_and_unmasked() {
        let mut out = Vec::new();
        encode_text("hi", &mut out);
        assert_eq!(out, [0x81, 2, b'h', b'i']);
        out.clear();
        encode_text(&"x".repeat(300), &mut out);
        assert_eq!(&out[..4], &[0x81, 126, 1, 44]);
        out.clear();
        encode_close(close::REVOKED, &"é".repeat(100), &mut out);
        assert_eq!(out[0], 0x88);
        let len = usize::from(out[1]);
        assert!(len <= MAX_CONTROL, "{len}");
        assert_eq!(&out[2..4], &4001u16.to_be_bytes());
        assert!(
            std::str::from_utf8(&out[4..]).is_ok(),
            "cut at a character boundary"
        );
    }
}
