//! Fuzz target: inflation of Compressed frame bodies
//! (`protocol::inflate_body`, the function the TCP dispatcher calls). The
//! first input byte picks the limit, the rest is the body. Beyond "no panic"
//! it checks that the result never exceeds the limit, that the limit is
//! exact (the same body with a limit one byte lower is TooLarge, with its
//! own size is the same bytes), and that any bytes gzipped by flate2 inflate
//! back to themselves.
//!
//! Cost: an input that inflates to the whole 64 KiB is inflated once; the
//! re-inflations of the exactness checks run for results up to
//! [`EXACT_UP_TO`] bytes, where the limit's edge cases are (the small limits
//! half the inputs pick are all below it). Inflating every 64 KiB result four
//! times made executions ~4× slower as such inputs filled the queue, without
//! reaching code the smaller results do not.

use datamiddleware::protocol::{inflate_body, InflateError};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;

/// tcp.max_body_bytes by default.
const DEFAULT_LIMIT: usize = 65536;

/// Results up to this size are re-inflated to check the limit is exact.
const EXACT_UP_TO: usize = 4096;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(data).expect("write to a Vec");
    enc.finish().expect("finish to a Vec")
}

fn check(body: &[u8], limit: usize) {
    match inflate_body(body, limit) {
        Ok(out) => {
            assert!(out.len() <= limit);
            if out.len() > EXACT_UP_TO {
                return;
            }
            assert_eq!(inflate_body(body, out.len()).as_deref(), Ok(&out[..]));
            if !out.is_empty() {
                assert_eq!(
                    inflate_body(body, out.len() - 1),
                    Err(InflateError::TooLarge)
                );
            }
            if limit < DEFAULT_LIMIT {
                assert_eq!(inflate_body(body, DEFAULT_LIMIT), Ok(out));
            }
        }
        Err(InflateError::TooLarge) => {
            // A larger limit can only give more bytes or a later error.
            if limit < DEFAULT_LIMIT {
                if let Ok(out) = inflate_body(body, DEFAULT_LIMIT) {
                    assert!(out.len() > limit);
                }
            }
        }
        Err(InflateError::NotGzip) => {}
    }
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&selector, body)) = data.split_first() else {
            return;
        };
        // A small limit (0..=127 bytes) half of the time, so "too large" is
        // reached, otherwise the server's default.
        let limit = if selector & 0x80 == 0 {
            (selector & 0x7f) as usize
        } else {
            DEFAULT_LIMIT
        };
        check(body, limit);
        // Whatever the bytes, gzipped they come back unchanged.
        let packed = gzip(body);
        assert_eq!(inflate_body(&packed, body.len()).as_deref(), Ok(body));
    });
}
