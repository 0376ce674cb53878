//! The envelope every answer travels in, whatever the front end (SPEC §3):
//! `{"code":200,"message":"ok","data":...}` for a success,
//! `{"code":N,"message":"..."}` for a failure, and the JSON request bodies
//! they answer. Written once, below the service layer: services return
//! [`Data`] (a cached answer stays JSON text), and HTTP responses, binary
//! reply frames and WebSocket messages are all written by these functions.

use crate::error::ApiError;
use serde::de::DeserializeOwned;
use std::rc::Rc;

/// The `data` of a success answer: a JSON value, or cached JSON text to be
/// sent as `{"<key>":<text>}` without parsing it again.
#[derive(Debug, Clone)]
pub enum Data {
    /// A value to serialise.
    Value(serde_json::Value),
    /// `{"<key>": <raw JSON text>}`.
    Wrapped(&'static str, Rc<str>),
}

impl From<serde_json::Value> for Data {
    fn from(v: serde_json::Value) -> Data {
        Data::Value(v)
    }
}

/// Appends `{"code":200,"message":"ok","data":<data>}`: the success envelope
/// both front ends send.
pub fn write_success(out: &mut Vec<u8>, data: &Data) -> Result<(), ApiError> {
    out.extend_from_slice(b"{\"code\":200,\"message\":\"ok\",\"data\":");
    match data {
        Data::Value(v) => serde_json::to_writer(&mut *out, v).map_err(|_| ApiError::internal())?,
        Data::Wrapped(key, raw) => {
            out.extend_from_slice(b"{\"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(raw.as_bytes());
            out.push(b'}');
        }
    }
    out.push(b'}');
    Ok(())
}

/// Appends `{"code":N,"message":"..."}` (with `"retry_after_s"` when given):
/// the failure envelope. HTTP sends the error's HTTP-style code and says
/// when to retry in a header; the binary protocol sends its own code and
/// the delay in the body.
pub fn write_error(out: &mut Vec<u8>, code: u32, message: &str, retry_after_s: Option<u64>) {
    let body = match retry_after_s {
        None => serde_json::json!({ "code": code, "message": message }),
        Some(retry) => {
            serde_json::json!({ "code": code, "message": message, "retry_after_s": retry })
        }
    };
    // Writing a JSON value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &body);
}

/// Parses a JSON request body into `T`, answering 400 with the reason.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("request body required (JSON)"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_envelope_with_and_without_a_retry_delay() {
        let mut out = Vec::new();
        write_error(&mut out, 404, "no such \"player\"", None);
        assert_eq!(out, br#"{"code":404,"message":"no such \"player\""}"#);
        let mut out = Vec::new();
        write_error(&mut out, 0xE007, "slow down", Some(3));
        assert_eq!(
            out,
            br#"{"code":57351,"message":"slow down","retry_after_s":3}"#
        );
    }

    #[test]
    fn success_envelope_for_values_and_cached_text() {
        let mut out = Vec::new();
        write_success(&mut out, &Data::Value(serde_json::json!({"a": 1}))).expect("writes");
        assert_eq!(out, br#"{"code":200,"message":"ok","data":{"a":1}}"#);
        let mut out = Vec::new();
        write_success(&mut out, &Data::Wrapped("player", Rc::from(r#"{"id":7}"#))).expect("writes");
        assert_eq!(
            out,
            br#"{"code":200,"message":"ok","data":{"player":{"id":7}}}"#
        );
        let parsed: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(parsed["data"]["player"]["id"], 7);
    }
}
