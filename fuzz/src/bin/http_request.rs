//! Fuzz target: the HTTP/1.1 request parser (`http::request::parse`) with the
//! server's default limits and with the smallest the configuration allows.
//! Beyond "no panic" it checks that a complete request's body is exactly
//! Content-Length bytes (read again with httparse on its own), that it lies
//! inside the consumed bytes, that the same request parses the same from its
//! own bytes alone (pipelining), that every shorter prefix is Partial (more
//! bytes needed, as the connection loop assumes), and that refusals use the
//! statuses the server documents.

use datamiddleware::http::request::{parse, Limits, Parsed};

const LIMITS: [Limits; 2] = [
    // http.max_header_bytes and http.max_body_bytes by default.
    Limits {
        max_header_bytes: 16 * 1024,
        max_body_bytes: 1024 * 1024,
    },
    // The smallest header limit validation allows, and a small body limit.
    Limits {
        max_header_bytes: 1024,
        max_body_bytes: 64,
    },
];

/// Content-Length as an independent reading of the head says (None: absent).
fn content_length(head: &[u8]) -> Option<usize> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        other => panic!("the parser completed a head httparse does not: {other:?}"),
    }
    let mut found = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            // RFC 9110: 1*DIGIT, around it only the whitespace httparse keeps.
            let digits = h.value.trim_ascii();
            assert!(
                !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
                "the parser took Content-Length {:?}",
                String::from_utf8_lossy(h.value)
            );
            let n: usize = std::str::from_utf8(digits)
                .ok()
                .and_then(|t| t.parse().ok())
                .expect("digits the parser took");
            assert!(found.is_none_or(|old| old == n));
            found = Some(n);
        }
    }
    found
}

fn check(data: &[u8], limits: &Limits) {
    match parse(data, limits) {
        Parsed::Complete { request, len } => {
            assert!(len <= data.len());
            let body = request.body;
            assert!(body.len() <= limits.max_body_bytes);
            let head_len = len - body.len();
            assert!(head_len <= limits.max_header_bytes);
            // The body is the slice right before `len`, and its length is the
            // Content-Length header's (0 without one).
            assert_eq!(body, &data[head_len..len]);
            assert_eq!(body.as_ptr(), data[head_len..].as_ptr());
            assert_eq!(content_length(&data[..head_len]).unwrap_or(0), body.len());
            assert!(request.path.starts_with('/'));
            assert!(!request.path.contains('?'));
            // Pipelining: the request alone parses the same.
            match parse(&data[..len], limits) {
                Parsed::Complete {
                    request: alone,
                    len: l,
                } => {
                    assert_eq!(l, len);
                    assert_eq!(alone.method, request.method);
                    assert_eq!(alone.path, request.path);
                    assert_eq!(alone.query, request.query);
                    assert_eq!(alone.body, request.body);
                    assert_eq!(alone.keep_alive, request.keep_alive);
                    assert_eq!(alone.headers.authorization, request.headers.authorization);
                }
                other => panic!("a complete request alone parsed as {other:?}"),
            }
            // Every shorter prefix waits for more bytes.
            for cut in [0, len / 2, head_len.saturating_sub(1), head_len, len - 1] {
                if cut < len {
                    match parse(&data[..cut], limits) {
                        Parsed::Partial { .. } => {}
                        other => panic!("prefix {cut} of a {len}-byte request: {other:?}"),
                    }
                }
            }
        }
        Parsed::Partial { .. } => {}
        Parsed::Refused { status, message } => {
            assert!(
                matches!(status, 400 | 411 | 413 | 417 | 431),
                "status {status}"
            );
            assert!(!message.is_empty());
        }
    }
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        for limits in &LIMITS {
            check(data, limits);
        }
    });
}
