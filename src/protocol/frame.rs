//! The binary frame format of SPEC §2, byte for byte compatible with the
//! original encoder. No I/O here: [`decode`] looks at a byte slice and borrows
//! the ids and body out of it; [`encode`] appends one frame to a buffer.

/// Size of the fixed header, which is also the smallest frame.
pub const HEADER_LEN: usize = 28;
/// The only protocol version.
pub const VERSION: u8 = 1;
/// Longest game id or user id accepted.
pub const MAX_ID_LEN: usize = 64;

/// A decoded frame, borrowing ids and body from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef<'a> {
    /// Protocol version byte.
    pub version: u8,
    /// Message type (see [`super::MessageType`]).
    pub msg_type: u16,
    /// Flag bits (see [`super::flags`]).
    pub flags: u8,
    /// Sequence id chosen by the sender, echoed in replies.
    pub sequence: u32,
    /// Sender's Unix time in seconds.
    pub timestamp: i64,
    /// Game id bytes (UTF-8 expected, checked by the dispatcher).
    pub game_id: &'a [u8],
    /// User id bytes.
    pub user_id: &'a [u8],
    /// Body bytes (JSON unless stated, gzip when Compressed).
    pub body: &'a [u8],
}

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// CRC32 did not match.
    BadChecksum,
    /// Version byte was not 1.
    UnsupportedVersion(u8),
    /// Id or body length above the limits.
    TooLarge,
}

/// Outcome of one [`decode`] call.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// Not enough bytes yet for one frame.
    Incomplete,
    /// A whole valid frame occupying `len` bytes.
    Frame {
        /// The frame.
        frame: FrameRef<'a>,
        /// Bytes it occupies at the start of the buffer.
        len: usize,
    },
    /// A whole but invalid frame of `len` bytes: answer with an Error frame,
    /// skip `len` bytes, and keep the connection.
    Invalid {
        /// What was wrong.
        error: FrameError,
        /// The frame's sequence id, for the reply.
        sequence: u32,
        /// Bytes to skip.
        len: usize,
    },
    /// The stream cannot continue (a length above the limits): answer with an
    /// Error frame and close the connection.
    Fatal {
        /// What was wrong.
        error: FrameError,
        /// The frame's sequence id, for the reply.
        sequence: u32,
    },
}

fn be_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// CRC32 (IEEE) of a whole frame except the checksum field (bytes 20..24).
pub fn checksum(frame: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&frame[..20]);
    h.update(&frame[24..]);
    h.finalize()
}

/// Decodes the frame at the start of `buf`. `max_body` bounds the body length
/// and [`MAX_ID_LEN`] the id lengths, before any of it is buffered.
pub fn decode(buf: &[u8], max_body: usize) -> Decoded<'_> {
    if buf.len() < HEADER_LEN {
        return Decoded::Incomplete;
    }
    let sequence = be_u32(buf, 4);
    let body_len = be_u32(buf, 16) as usize;
    let game_len = be_u16(buf, 24) as usize;
    let user_len = be_u16(buf, 26) as usize;
    if body_len > max_body || game_len > MAX_ID_LEN || user_len > MAX_ID_LEN {
        return Decoded::Fatal {
            error: FrameError::TooLarge,
            sequence,
        };
    }
    let len = HEADER_LEN + game_len + user_len + body_len;
    if buf.len() < len {
        return Decoded::Incomplete;
    }
    let frame = &buf[..len];
    if checksum(frame) != be_u32(frame, 20) {
        return Decoded::Invalid {
            error: FrameError::BadChecksum,
            sequence,
            len,
        };
    }
    if frame[0] != VERSION {
        return Decoded::Invalid {
            error: FrameError::UnsupportedVersion(frame[0]),
            sequence,
            len,
        };
    }
    let ids_end = HEADER_LEN + game_len + user_len;
    Decoded::Frame {
        frame: FrameRef {
            version: frame[0],
            msg_type: be_u16(frame, 1),
            flags: frame[3],
            sequence,
            timestamp: i64::from_be_bytes([
                frame[8], frame[9], frame[10], frame[11], frame[12], frame[13], frame[14],
                frame[15],
            ]),
            game_id: &frame[HEADER_LEN..HEADER_LEN + game_len],
            user_id: &frame[HEADER_LEN + game_len..ids_end],
            body: &frame[ids_end..],
        },
        len,
    }
}

/// Appends one encoded frame to `out`. Ids longer than 65535 bytes are cut
/// (callers never pass them: ids are bounded by [`MAX_ID_LEN`]).
pub fn encode(out: &mut Vec<u8>, frame: &FrameRef<'_>) {
    let game = &frame.game_id[..frame.game_id.len().min(u16::MAX as usize)];
    let user = &frame.user_id[..frame.user_id.len().min(u16::MAX as usize)];
    let start = out.len();
    out.reserve(HEADER_LEN + game.len() + user.len() + frame.body.len());
    out.push(frame.version);
    out.extend_from_slice(&frame.msg_type.to_be_bytes());
    out.push(frame.flags);
    out.extend_from_slice(&frame.sequence.to_be_bytes());
    out.extend_from_slice(&frame.timestamp.to_be_bytes());
    out.extend_from_slice(&(frame.body.len() as u32).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(game.len() as u16).to_be_bytes());
    out.extend_from_slice(&(user.len() as u16).to_be_bytes());
    out.extend_from_slice(game);
    out.extend_from_slice(user);
    out.extend_from_slice(frame.body);
    let crc = checksum(&out[start..]);
    out[start + 20..start + 24].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn golden() -> Vec<Vec<u8>> {
        include_str!("../../tests/data/golden-frames.hex")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| hex(l.trim()))
            .collect()
    }

    #[test]
    fn golden_frames_decode_and_reencode_byte_for_byte() {
        let frames = golden();
        assert_eq!(frames.len(), 3);
        let expect = [
            (0x0001u16, 1u32, ""),
            (0x2002, 2, ""),
            (0x0002, 3, "{\"client_version\":\"1.0.0\"}"),
        ];
        for (bytes, (ty, seq, body)) in frames.iter().zip(expect) {
            match decode(bytes, 65536) {
                Decoded::Frame { frame, len } => {
                    assert_eq!(len, bytes.len());
                    assert_eq!(frame.msg_type, ty);
                    assert_eq!(frame.sequence, seq);
                    assert_eq!(frame.flags, 0x04);
                    assert_eq!(frame.timestamp, 1_700_000_000);
                    assert_eq!(frame.game_id, b"game1");
                    assert_eq!(frame.user_id, b"u1");
                    assert_eq!(frame.body, body.as_bytes());
                    let mut out = Vec::new();
                    encode(&mut out, &frame);
                    assert_eq!(&out, bytes);
                }
                other => panic!("golden frame did not decode: {other:?}"),
            }
        }
    }

    #[test]
    fn reference_examples_match() {
        // Worked examples from reference/original-behaviour.md §3.2.
        type Case = (&'static str, u16, u8, u32, &'static [u8], &'static [u8]);
        let cases: [Case; 2] = [
            (
                "0100020400000001000000006774858000000000b56e2b9d0005000267616d653175 31",
                2,
                4,
                1,
                b"game1",
                b"u1",
            ),
            (
                "01000100000000070000000067748580000000006116d17000000000",
                1,
                0,
                7,
                b"",
                b"",
            ),
        ];
        for (expected, msg_type, flags, sequence, game_id, user_id) in cases {
            let mut out = Vec::new();
            encode(
                &mut out,
                &FrameRef {
                    version: 1,
                    msg_type,
                    flags,
                    sequence,
                    timestamp: 1_735_689_600,
                    game_id,
                    user_id,
                    body: b"",
                },
            );
            assert_eq!(out, hex(&expected.replace(' ', "")));
        }
    }

    #[test]
    fn partial_frames_are_incomplete_at_every_cut() {
        let frames = golden();
        let f = &frames[2];
        for cut in 0..f.len() {
            assert_eq!(decode(&f[..cut], 65536), Decoded::Incomplete, "cut {cut}");
        }
    }

    #[test]
    fn checksum_and_version_errors_keep_length() {
        let mut f = golden()[2].clone();
        let n = f.len();
        f[n - 1] ^= 0xff;
        assert_eq!(
            decode(&f, 65536),
            Decoded::Invalid {
                error: FrameError::BadChecksum,
                sequence: 3,
                len: n
            }
        );
        let mut v = golden()[0].clone();
        v[0] = 2;
        let crc = checksum(&v);
        v[20..24].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            decode(&v, 65536),
            Decoded::Invalid {
                error: FrameError::UnsupportedVersion(2),
                sequence: 1,
                len: v.len()
            }
        );
    }

    #[test]
    fn oversize_lengths_are_fatal_before_buffering() {
        let mut f = golden()[0].clone();
        f[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(matches!(
            decode(&f[..HEADER_LEN], 65536),
            Decoded::Fatal {
                error: FrameError::TooLarge,
                ..
            }
        ));
        let mut g = golden()[0].clone();
        g[24..26].copy_from_slice(&65u16.to_be_bytes());
        assert!(matches!(
            decode(&g[..HEADER_LEN], 65536),
            Decoded::Fatal {
                error: FrameError::TooLarge,
                ..
            }
        ));
    }

    #[test]
    fn back_to_back_frames_decode_one_at_a_time() {
        let frames = golden();
        let all: Vec<u8> = frames.concat();
        let mut at = 0;
        let mut seqs = Vec::new();
        while let Decoded::Frame { frame, len } = decode(&all[at..], 65536) {
            seqs.push(frame.sequence);
            at += len;
        }
        assert_eq!(seqs, vec![1, 2, 3]);
        assert_eq!(at, all.len());
    }
}
