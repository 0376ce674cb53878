//! Building reply frames into a connection's write buffer.

use crate::clock;
use crate::envelope::{write_error, write_success, Data};
use crate::error::ApiError;
use crate::protocol::{encode, FrameRef, MessageType, VERSION};

/// Where a reply goes: the request's sequence number and game id, and the
/// user id the connection answers as. Every reply of one request carries
/// the same three, so they travel together.
#[derive(Debug, Clone, Copy)]
pub struct ReplyTo<'a> {
    /// The request's sequence number (0 for messages no request caused).
    pub sequence: u32,
    /// The request's game id, echoed.
    pub game_id: &'a [u8],
    /// The connection's user id (empty before a handshake).
    pub user_id: &'a [u8],
}

impl<'a> ReplyTo<'a> {
    /// A reply to no request in particular (timeouts, shutdown, refusals).
    pub fn connection(user_id: &'a [u8]) -> ReplyTo<'a> {
        ReplyTo {
            sequence: 0,
            game_id: b"",
            user_id,
        }
    }
}

/// Appends a reply of `msg_type` with `body`.
pub fn frame(out: &mut Vec<u8>, to: &ReplyTo<'_>, msg_type: MessageType, body: &[u8]) {
    encode(
        out,
        &FrameRef {
            version: VERSION,
            msg_type: msg_type.code(),
            flags: 0,
            sequence: to.sequence,
            timestamp: clock::now_s(),
            game_id: to.game_id,
            user_id: to.user_id,
            body,
        },
    );
}

/// Appends a success reply: the JSON envelope with `data`.
pub fn ok(out: &mut Vec<u8>, to: &ReplyTo<'_>, msg_type: MessageType, data: &Data) {
    let mut body = Vec::with_capacity(256);
    if let Err(e) = write_success(&mut body, data) {
        error(out, to, &e);
        return;
    }
    frame(out, to, msg_type, &body);
}

/// Appends an Error frame carrying the error's protocol code (and, for a
/// spent budget, when to retry).
pub fn error(out: &mut Vec<u8>, to: &ReplyTo<'_>, e: &ApiError) {
    let mut body = Vec::with_capacity(64);
    write_error(&mut body, e.tcp_code(), &e.message, e.retry_after_s);
    frame(out, to, MessageType::Error, &body);
}

/// Appends an Error frame with an explicit code.
pub fn error_code(out: &mut Vec<u8>, to: &ReplyTo<'_>, code: u32, message: &str) {
    let mut body = Vec::with_capacity(64);
    write_error(&mut body, code, message, None);
    frame(out, to, MessageType::Error, &body);
}
