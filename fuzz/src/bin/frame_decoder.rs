//! Fuzz target: the binary frame decoder (`protocol::decode`) as the TCP
//! connection loop drives it. Beyond "no panic" it checks that a decoded
//! frame re-encodes byte for byte, that every cut of a whole frame is
//! `Incomplete`, that lengths stay in the buffer and under the limits, and
//! that a stream of frames always makes progress. Inputs are also tried with
//! their checksum fixed up, so mutations get past the CRC into the fields.

use datamiddleware::protocol::frame::checksum;
use datamiddleware::protocol::{decode, encode, Decoded, FrameError, HEADER_LEN, MAX_ID_LEN};

/// tcp.max_body_bytes by default, and a small limit so "too large" is reached.
const LIMITS: [usize; 2] = [65536, 16];

fn declared_len(buf: &[u8]) -> usize {
    let body = u32::from_be_bytes([buf[16], buf[17], buf[18], buf[19]]) as usize;
    let game = u16::from_be_bytes([buf[24], buf[25]]) as usize;
    let user = u16::from_be_bytes([buf[26], buf[27]]) as usize;
    HEADER_LEN + game + user + body
}

fn within_limits(buf: &[u8], max_body: usize) -> bool {
    let body = u32::from_be_bytes([buf[16], buf[17], buf[18], buf[19]]) as usize;
    let game = u16::from_be_bytes([buf[24], buf[25]]) as usize;
    let user = u16::from_be_bytes([buf[26], buf[27]]) as usize;
    body <= max_body && game <= MAX_ID_LEN && user <= MAX_ID_LEN
}

/// Checks one `decode` call against what the header says.
fn check_one(buf: &[u8], max_body: usize) -> Option<usize> {
    let decoded = decode(buf, max_body);
    if buf.len() < HEADER_LEN {
        assert_eq!(decoded, Decoded::Incomplete);
        return None;
    }
    let fits = within_limits(buf, max_body);
    match decoded {
        Decoded::Incomplete => {
            assert!(fits, "over-limit lengths must be fatal, not incomplete");
            assert!(declared_len(buf) > buf.len());
            None
        }
        Decoded::Fatal { error, sequence } => {
            assert_eq!(error, FrameError::TooLarge);
            assert!(!fits);
            assert_eq!(
                sequence,
                u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]])
            );
            None
        }
        Decoded::Invalid { error, len, .. } => {
            assert!(fits);
            assert_eq!(len, declared_len(buf));
            assert!(len <= buf.len());
            let stored = u32::from_be_bytes([buf[20], buf[21], buf[22], buf[23]]);
            match error {
                FrameError::BadChecksum => assert_ne!(checksum(&buf[..len]), stored),
                FrameError::UnsupportedVersion(v) => {
                    assert_eq!(checksum(&buf[..len]), stored);
                    assert_ne!(v, 1);
                    assert_eq!(v, buf[0]);
                }
                FrameError::TooLarge => panic!("TooLarge must be Fatal"),
            }
            Some(len)
        }
        Decoded::Frame { frame, len } => {
            assert!(fits);
            assert_eq!(len, declared_len(buf));
            assert!(len <= buf.len());
            assert_eq!(frame.version, 1);
            assert!(frame.body.len() <= max_body);
            assert!(frame.game_id.len() <= MAX_ID_LEN && frame.user_id.len() <= MAX_ID_LEN);
            assert_eq!(
                HEADER_LEN + frame.game_id.len() + frame.user_id.len() + frame.body.len(),
                len
            );
            let mut out = Vec::new();
            encode(&mut out, &frame);
            assert_eq!(&out[..], &buf[..len], "decode/encode must round-trip");
            match decode(&out, max_body) {
                Decoded::Frame {
                    frame: again,
                    len: l,
                } => {
                    assert_eq!(again, frame);
                    assert_eq!(l, len);
                }
                other => panic!("re-encoded frame did not decode: {other:?}"),
            }
            for cut in [0, 1, HEADER_LEN - 1, HEADER_LEN, len / 2, len - 1] {
                if cut < len {
                    assert_eq!(
                        decode(&buf[..cut], max_body),
                        Decoded::Incomplete,
                        "cut {cut}"
                    );
                }
            }
            Some(len)
        }
    }
}

/// The connection loop: decode frames back to back until the buffer ends or
/// the stream is fatal; each step must consume at least a header.
fn check_stream(buf: &[u8], max_body: usize) {
    let mut at = 0;
    while let Some(len) = check_one(&buf[at..], max_body) {
        assert!(len >= HEADER_LEN);
        at += len;
    }
    assert!(at <= buf.len());
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        for max_body in LIMITS {
            check_stream(data, max_body);
        }
        // The same bytes with a correct checksum on the first frame, so the
        // fuzzer explores the fields behind the CRC as well.
        if data.len() >= HEADER_LEN {
            let len = declared_len(data);
            if len <= data.len() {
                let mut fixed = data.to_vec();
                let crc = checksum(&fixed[..len]);
                fixed[20..24].copy_from_slice(&crc.to_be_bytes());
                for max_body in LIMITS {
                    if within_limits(&fixed, max_body) && fixed[0] == 1 {
                        assert!(matches!(decode(&fixed, max_body), Decoded::Frame { .. }));
                    }
                    check_stream(&fixed, max_body);
                }
            }
        }
    });
}
