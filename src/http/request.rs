//! HTTP/1.1 request parsing over the connection's read buffer with httparse.
//! A [`Request`] borrows everything from that buffer; nothing is copied until
//! a handler needs an owned value.

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request line + headers.
    pub max_header_bytes: usize,
    /// Largest body.
    pub max_body_bytes: usize,
}

/// The headers the server looks at, picked out once while parsing.
#[derive(Debug, Default, Clone, Copy)]
pub struct KnownHeaders<'a> {
    /// `Authorization`.
    pub authorization: Option<&'a str>,
    /// `X-Game-Id`.
    pub game_id: Option<&'a str>,
    /// `If-Match`.
    pub if_match: Option<&'a str>,
    /// `Idempotency-Key`.
    pub idempotency_key: Option<&'a str>,
    /// `Origin`.
    pub origin: Option<&'a str>,
    /// Whether `Origin` is `http://` or `https://` and this request's
    /// `Host`: a page the server served (a `GET /ws` from it needs no
    /// listing in `http.cors_origins`).
    pub same_origin: bool,
    /// `X-Forwarded-For` (believed only from `http.trusted_proxies`).
    pub forwarded_for: Option<&'a str>,
    /// `X-Request-Id`.
    pub request_id: Option<&'a str>,
    /// Whether `Upgrade` is `websocket` (`GET /ws`).
    pub upgrade_websocket: bool,
    /// Whether `Connection` holds the `upgrade` token.
    pub connection_upgrade: bool,
    /// Whether `Sec-WebSocket-Version` is 13, the only one there is.
    pub websocket_13: bool,
    /// `Sec-WebSocket-Key`.
    pub websocket_key: Option<&'a str>,
}

/// Whether a browser's `Origin` is `scheme://` + `host`.
fn same_origin(origin: &str, host: &str) -> bool {
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!(authority, Some(a) if !host.is_empty() && a.eq_ignore_ascii_case(host))
}

/// A complete request borrowed from the read buffer.
#[derive(Debug)]
pub struct Request<'a> {
    /// Method, e.g. `GET`.
    pub method: &'a str,
    /// Path without the query string.
    pub path: &'a str,
    /// Query string without `?`, possibly empty.
    pub query: &'a str,
    /// Headers the server uses.
    pub headers: KnownHeaders<'a>,
    /// Body (Content-Length bytes).
    pub body: &'a [u8],
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
}

impl Request<'_> {
    /// The value of query parameter `name`, if present, as sent (numbers and
    /// plain tokens need no decoding; [`Request::query_text`] decodes).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
    }

    /// The value of query parameter `name` with its `%XX` escapes and `+`
    /// decoded (empty when absent); `None` when an escape is broken or the
    /// result is not UTF-8.
    pub fn query_text(&self, name: &str) -> Option<String> {
        let value = self.query_param(name).unwrap_or("");
        let mut bytes = Vec::with_capacity(value.len());
        let mut rest = value.bytes();
        while let Some(b) = rest.next() {
            bytes.push(match b {
                b'+' => b' ',
                b'%' => {
                    let hex = [rest.next()?, rest.next()?];
                    let hex = std::str::from_utf8(&hex).ok()?;
                    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return None;
                    }
                    u8::from_str_radix(hex, 16).ok()?
                }
                other => other,
            });
        }
        String::from_utf8(bytes).ok()
    }
}

/// Outcome of [`parse`].
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A whole request occupying `len` bytes.
    Complete {
        /// The request.
        request: Request<'a>,
        /// Bytes consumed.
        len: usize,
    },
    /// More bytes are needed; `expect_continue` when the client waits for
    /// `100 Continue` before sending its body.
    Partial {
        /// Client sent `Expect: 100-continue` and its headers are complete.
        expect_continue: bool,
    },
    /// The request is refused; answer `status` and close the connection.
    Refused {
        /// HTTP status.
        status: u16,
        /// Reason for the client.
        message: &'static str,
    },
}

const MAX_HEADERS: usize = 64;

/// Parses the request at the start of `buf`.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Parsed<'a> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_header_bytes {
                return refused(431, "request header fields too large");
            }
            return Parsed::Partial {
                expect_continue: false,
            };
        }
        Err(httparse::Error::TooManyHeaders) => {
            return refused(431, "too many header fields (at most 64)")
        }
        Err(_) => return refused(400, "malformed HTTP request"),
    };
    if head_len > limits.max_header_bytes {
        return refused(431, "request header fields too large");
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return refused(400, "malformed HTTP request");
    };
    let mut headers = KnownHeaders::default();
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut connection_close = version == 0;
    let mut expect_continue = false;
    let mut host: Option<&str> = None;
    for h in req.headers.iter() {
        let Ok(value) = std::str::from_utf8(h.value) else {
            // Other headers may carry Latin-1 and are skipped, but not these:
            // a skipped Content-Length or Transfer-Encoding would make the
            // body the next pipelined request (found by fuzz/ http_request).
            if ["authorization", "content-length", "transfer-encoding"]
                .iter()
                .any(|n| h.name.eq_ignore_ascii_case(n))
            {
                return refused(400, "header value is not UTF-8");
            }
            continue;
        };
        let value = value.trim();
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            // Digits only (RFC 9110 §8.6): no sign, no spaces, no list —
            // `usize::from_str` alone also takes "+2", which a proxy in front
            // may read differently (also a fuzz finding).
            let digits = h.value.trim_ascii();
            let Some(n) = (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
                .then(|| value.parse::<usize>().ok())
                .flatten()
            else {
                return refused(400, "invalid Content-Length (digits only)");
            };
            if content_length.replace(n).is_some() {
                return refused(400, "repeated Content-Length header");
            }
        } else if name.eq_ignore_ascii_case("host") {
            if host.replace(value).is_some() {
                return refused(400, "repeated Host header");
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    connection_close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    connection_close = false;
                } else if token.eq_ignore_ascii_case("upgrade") {
                    headers.connection_upgrade = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if value.eq_ignore_ascii_case("100-continue") {
                expect_continue = true;
            } else {
                return refused(417, "unsupported Expect value");
            }
        } else if name.eq_ignore_ascii_case("authorization") {
            if headers.authorization.replace(value).is_some() {
                return refused(400, "repeated Authorization header");
            }
        } else if name.eq_ignore_ascii_case("x-game-id") {
            if headers.game_id.replace(value).is_some() {
                return refused(400, "repeated X-Game-Id header");
            }
        } else if name.eq_ignore_ascii_case("if-match") {
            headers.if_match = Some(value);
        } else if name.eq_ignore_ascii_case("idempotency-key") {
            if headers.idempotency_key.replace(value).is_some() {
                return refused(400, "repeated Idempotency-Key header");
            }
        } else if name.eq_ignore_ascii_case("origin") {
            headers.origin = Some(value);
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            headers.forwarded_for = Some(value);
        } else if name.eq_ignore_ascii_case("x-request-id") {
            headers.request_id = Some(value);
        } else if name.eq_ignore_ascii_case("upgrade") {
            headers.upgrade_websocket = value.trim().eq_ignore_ascii_case("websocket");
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            if headers.websocket_key.replace(value).is_some() {
                return refused(400, "repeated Sec-WebSocket-Key header");
            }
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            headers.websocket_13 = value.trim() == "13";
        }
    }
    if version == 1 && host.is_none() {
        return refused(400, "HTTP/1.1 request without Host");
    }
    headers.same_origin = matches!((headers.origin, host), (Some(o), Some(h)) if same_origin(o, h));
    if chunked {
        if content_length.is_some() {
            return refused(400, "both Transfer-Encoding and Content-Length");
        }
        return refused(
            411,
            "chunked request bodies are not accepted; send Content-Length",
        );
    }
    let body_len = content_length.unwrap_or(0);
    if body_len > limits.max_body_bytes {
        return refused(413, "request body too large");
    }
    let total = head_len + body_len;
    if buf.len() < total {
        return Parsed::Partial { expect_continue };
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if !path.starts_with('/') {
        return refused(400, "request target must be an absolute path");
    }
    Parsed::Complete {
        request: Request {
            method,
            path,
            query,
            headers,
            body: &buf[head_len..total],
            keep_alive: !connection_close,
        },
        len: total,
    }
}

fn refused(status: u16, message: &'static str) -> Parsed<'static> {
    Parsed::Refused { status, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_of_the_servers_own_origin_is_same_origin() {
        let host = "127.0.0.1:8080";
        assert!(same_origin("http://127.0.0.1:8080", host));
        assert!(same_origin("https://Game.Example", "game.example"));
        assert!(!same_origin("http://127.0.0.1:8081", host), "another port");
        assert!(!same_origin("http://evil.example", host));
        assert!(!same_origin("null", host));
        assert!(!same_origin("http://", ""));
    }

    const LIMITS: Limits = Limits {
        max_header_bytes: 1024,
        max_body_bytes: 16,
    };

    #[test]
    fn parses_pipelined_requests_with_bodies() {
        let raw = b"POST /a?x=1&y=2 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nX-Game-Id: g\r\n\r\n{}GET /b HTTP/1.1\r\nHost: t\r\n\r\n";
        let Parsed::Complete { request, len } = parse(raw, &LIMITS) else {
            panic!("first request incomplete")
        };
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/a");
        assert_eq!(request.query_param("y"), Some("2"));
        assert_eq!(request.query_param("z"), None);
        assert_eq!(request.headers.game_id, Some("g"));
        assert_eq!(request.body, b"{}");
        assert!(request.keep_alive);
        let Parsed::Complete { request, .. } = parse(&raw[len..], &LIMITS) else {
            panic!("second request incomplete")
        };
        assert_eq!(request.path, "/b");
    }

    #[test]
    fn refusals() {
        let cases: [(&[u8], u16); 15] = [
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (
                "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\u{3000}\r\n\r\n{}".as_bytes(),
                400,
            ),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +2\r\n\r\n{}", 400),
            (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2, 2\r\n\r\n{}", 400),
            (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400),
            (b"GET / HTTP/1.1\r\nHost: t\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: t\r\nX-Game-Id: a\r\nx-game-id: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: t\r\nIdempotency-Key: a\r\nIdempotency-Key: b\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
                411,
            ),
            (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 17\r\n\r\n", 413),
            (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            (b"GARBAGE\r\n\r\n", 400),
            (
                b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
                400,
            ),
        ];
        for (raw, status) in cases {
            match parse(raw, &LIMITS) {
                Parsed::Refused { status: s, .. } => {
                    assert_eq!(s, status, "{:?}", String::from_utf8_lossy(raw))
                }
                other => panic!("{other:?} for {:?}", String::from_utf8_lossy(raw)),
            }
        }
        let big = format!("GET / HTTP/1.1\r\nHost: t\r\nX-A: {}\r\n", "a".repeat(2000));
        assert!(matches!(
            parse(big.as_bytes(), &LIMITS),
            Parsed::Refused { status: 431, .. }
        ));
    }

    #[test]
    fn framing_headers_that_are_not_utf8_are_refused_not_skipped() {
        // Skipping them took the body for a second request (fuzz finding).
        let cases: [&[u8]; 3] = [
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\xff\r\n\r\nGET /",
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\xe9\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \xff\r\n\r\n",
        ];
        for raw in cases {
            assert!(
                matches!(parse(raw, &LIMITS), Parsed::Refused { status: 400, .. }),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        let Parsed::Complete { request, .. } = parse(
            b"GET / HTTP/1.1\r\nHost: t\r\nX-Note: caf\xe9\r\n\r\n",
            &LIMITS,
        ) else {
            panic!("a Latin-1 value of another header is skipped")
        };
        assert_eq!(request.path, "/");
    }

    #[test]
    fn partial_and_connection_semantics() {
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: t\r\n", &LIMITS),
            Parsed::Partial { .. }
        ));
        assert!(matches!(
            parse(
                b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
                &LIMITS
            ),
            Parsed::Partial {
                expect_continue: true
            }
        ));
        let Parsed::Complete { request, .. } = parse(b"GET / HTTP/1.0\r\n\r\n", &LIMITS) else {
            panic!()
        };
        assert!(!request.keep_alive);
        // HTTP/1.0 needs no Host.
        assert!(matches!(
            parse(b"GET / HTTP/1.0\r\n\r\n", &LIMITS),
            Parsed::Complete { .. }
        ));
        let Parsed::Complete { request, .. } = parse(
            b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            &LIMITS,
        ) else {
            panic!()
        };
        assert!(!request.keep_alive);
    }
}
