//! Inflation of gzip frame bodies (flag Compressed, SPEC §2). A pure function
//! of the body bytes and the limit, apart from the TCP dispatcher, so that the
//! fuzz target `gzip_body` (under `fuzz/`) exercises the server's own code.

use std::io::Read;

/// Why a Compressed body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// The body is not a valid gzip stream (answered with 0xE002).
    NotGzip,
    /// The inflated body would exceed the limit (answered with 0xE008);
    /// inflation stopped one byte past it.
    TooLarge,
}

/// Inflates a gzip `body`, reading at most `limit + 1` bytes of output so a
/// small "zip bomb" body costs no more than the limit: the result is at most
/// `limit` bytes or [`InflateError::TooLarge`]. The dispatcher answers the
/// errors; this exists as a function of its own so the fuzz target calls the
/// same code the server runs.
pub fn inflate_body(body: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take((limit as u64).saturating_add(1))
        .read_to_end(&mut inflated)
        .map_err(|_| InflateError::NotGzip)?;
    if inflated.len() > limit {
        return Err(InflateError::TooLarge);
    }
    Ok(inflated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).expect("write to a Vec");
        enc.finish().expect("finish to a Vec")
    }

    #[test]
    fn inflates_up_to_the_limit_and_refuses_past_it() {
        let body = gzip(b"{\"a\":1}");
        assert_eq!(inflate_body(&body, 7), Ok(b"{\"a\":1}".to_vec()));
        assert_eq!(inflate_body(&body, 6), Err(InflateError::TooLarge));
        let bomb = gzip(&vec![0u8; 1 << 20]);
        assert!(bomb.len() < 2048);
        assert_eq!(inflate_body(&bomb, 65536), Err(InflateError::TooLarge));
    }

    #[test]
    fn garbage_and_empty_bodies_are_not_gzip() {
        assert_eq!(inflate_body(b"", 100), Err(InflateError::NotGzip));
        assert_eq!(inflate_body(b"{\"a\":1}", 100), Err(InflateError::NotGzip));
        let body = gzip(b"hello");
        assert_eq!(
            inflate_body(&body[..body.len() - 4], 100),
            Err(InflateError::NotGzip)
        );
    }
}
