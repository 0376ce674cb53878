//! HTTP responses: the JSON envelope of SPEC §3 and their serialisation into
//! the connection's write buffer.

use crate::decimal;
use crate::envelope::{write_error, write_success, Data};
use crate::error::ApiError;
use serde_json::Value;
use std::io::Write;

/// A response ready to be written.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Content type of the body.
    pub content_type: &'static str,
    /// Headers beyond the standard ones.
    pub headers: Vec<(&'static str, String)>,
    /// Close the connection after this response.
    pub close: bool,
}

impl Response {
    /// `{"code":200,"message":"ok","data":...}` with `status`.
    pub fn ok_with(status: u16, data: &Value) -> Response {
        Response::ok_data(status, &Data::Value(data.clone()))
    }

    /// `status` with the success envelope around `data`.
    pub fn ok_data(status: u16, data: &Data) -> Response {
        let mut body = Vec::with_capacity(256);
        match write_success(&mut body, data) {
            Ok(()) => Response::raw(status, body),
            Err(e) => Response::error(&e),
        }
    }

    /// 200 with the success envelope.
    pub fn ok(data: &Value) -> Response {
        Response::ok_with(200, data)
    }

    /// The error envelope `{"code":N,"message":"..."}` with the error's status.
    pub fn error(e: &ApiError) -> Response {
        let mut body = Vec::with_capacity(64);
        write_error(&mut body, e.code, &e.message, None);
        let r = Response::raw(e.http_status(), body);
        match e.retry_after_s {
            Some(s) => r.with_header("Retry-After", s.to_string()),
            None => r,
        }
    }

    /// An error envelope for a plain HTTP status.
    pub fn status(status: u16, message: &str) -> Response {
        Response::error(&ApiError::new(status as u32, message))
    }

    /// A JSON body as is.
    pub fn raw(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            body,
            content_type: "application/json",
            headers: Vec::new(),
            close: false,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Appends the response to `out`; `keep_alive` false adds `Connection: close`.
    /// Plain byte appends, not `write!`: this runs once per response.
    pub fn write_to(&self, out: &mut Vec<u8>, keep_alive: bool) {
        out.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(out, self.status as usize);
        out.push(b' ');
        out.extend_from_slice(reason(self.status).as_bytes());
        out.extend_from_slice(b"\r\nServer: datamiddleware\r\nContent-Type: ");
        out.extend_from_slice(self.content_type.as_bytes());
        out.extend_from_slice(b"\r\nContent-Length: ");
        push_decimal(out, self.body.len());
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        if !keep_alive || self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, n: usize) {
    let mut digits = [0u8; decimal::MAX_DIGITS];
    out.extend_from_slice(decimal::unsigned(n as u64, &mut digits));
}

/// The reason phrase of a status.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_and_head() {
        let mut out = Vec::new();
        Response::ok(&serde_json::json!({"a":1})).write_to(&mut out, true);
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"code\":200,\"message\":\"ok\",\"data\":{\"a\":1}}"));
        assert!(!text.contains("Connection: close"));
        let mut out = Vec::new();
        Response::error(&ApiError::new(1001, "player not found")).write_to(&mut out, false);
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("{\"code\":1001,\"message\":\"player not found\"}"));
    }

    #[test]
    fn content_length_is_the_body_length() {
        for len in [0usize, 7, 10, 99, 100, 12_345] {
            let mut out = Vec::new();
            Response::raw(201, vec![b'x'; len]).write_to(&mut out, true);
            let text = String::from_utf8(out).expect("utf8");
            assert!(text.starts_with("HTTP/1.1 201 Created\r\n"), "{text}");
            assert!(text.contains(&format!("\r\nContent-Length: {len}\r\n")));
        }
    }
}
