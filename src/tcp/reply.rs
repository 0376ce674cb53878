//! Building reply frames into a connection's write buffer.

use crate::clock;
use crate::protocol::{encode, FrameRef, MessageType, VERSION};
use crate::service::{write_success, ApiError, Data};

/// Appends a reply of `msg_type` with `body`.
pub fn frame(
    out: &mut Vec<u8>,
    msg_type: MessageType,
    sequence: u32,
    game_id: &[u8],
    user_id: &[u8],
    body: &[u8],
) {
    encode(
        out,
        &FrameRef {
            version: VERSION,
            msg_type: msg_type.code(),
            flags: 0,
            sequence,
            timestamp: clock::now_s(),
            game_id,
            user_id,
            body,
        },
    );
}

/// Appends a success reply: the JSON envelope with `data`.
pub fn ok(
    out: &mut Vec<u8>,
    msg_type: MessageType,
    sequence: u32,
    game_id: &[u8],
    user_id: &[u8],
    data: &Data,
) {
    let mut body = Vec::with_capacity(256);
    if let Err(e) = write_success(&mut body, data) {
        error(out, sequence, game_id, user_id, &e);
        return;
    }
    frame(out, msg_type, sequence, game_id, user_id, &body);
}

/// Appends an Error frame carrying the error's protocol code.
pub fn error(out: &mut Vec<u8>, sequence: u32, game_id: &[u8], user_id: &[u8], e: &ApiError) {
    error_code(out, sequence, game_id, user_id, e.tcp_code(), &e.message);
}

/// Appends an Error frame with an explicit code.
pub fn error_code(
    out: &mut Vec<u8>,
    sequence: u32,
    game_id: &[u8],
    user_id: &[u8],
    code: u32,
    message: &str,
) {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    frame(
        out,
        MessageType::Error,
        sequence,
        game_id,
        user_id,
        body.as_bytes(),
    );
}
