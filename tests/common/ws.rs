//! A WebSocket client for the tests (`GET /ws`, SPEC §11), written from
//! RFC 6455 over a blocking socket so the tests do not share the server's
//! frame code: the upgrade, masked client frames, and the server's frames.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A frame the server sent.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Text(String),
    Close(u16, String),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

pub struct Ws {
    /// The socket (a test may write raw bytes on it).
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// The upgrade request, with `extra` headers.
pub fn upgrade_request(extra: &[(&str, &str)]) -> String {
    let mut req = String::from(
        "GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    );
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// Sends `request` and reads the HTTP answer's head: (status, head text).
pub fn send_upgrade(addr: SocketAddr, request: &str) -> (TcpStream, u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).expect("read head");
        assert!(
            n > 0,
            "closed before an answer: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status = head[9..12].parse().expect("status");
    let rest = buf[end..].to_vec();
    (stream, status, head, rest)
}

impl Ws {
    /// Upgrades with `extra` headers; panics unless the answer is 101.
    pub fn open(addr: SocketAddr, extra: &[(&str, &str)]) -> Ws {
        let (stream, status, head, rest) = send_upgrade(addr, &upgrade_request(extra));
        assert_eq!(status, 101, "{head}");
        // RFC 6455 §1.3's example key and its accept value.
        assert!(
            head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "{head}"
        );
        Ws { stream, buf: rest }
    }

    /// Sends a masked client frame.
    pub fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let mut out = Vec::new();
        let mask = Some([0x12, 0x34, 0x56, 0x78]);
        datamiddleware::realtime::frame::encode_frame(true, opcode, payload, mask, &mut out);
        // The server may close before taking it all (an oversized frame).
        let _ = self.stream.write_all(&out);
    }

    pub fn send_text(&mut self, text: &str) {
        self.send_frame(0x1, text.as_bytes());
    }

    /// The next frame from the server (unmasked), or `None` at end of stream.
    pub fn next(&mut self) -> Option<Frame> {
        loop {
            if self.buf.len() >= 2 {
                let (b0, b1) = (self.buf[0], self.buf[1]);
                assert_eq!(b1 & 0x80, 0, "server frames are not masked");
                let (len, head) = match b1 & 0x7F {
                    126 if self.buf.len() >= 4 => (
                        usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                        4,
                    ),
                    127 if self.buf.len() >= 10 => {
                        let mut n = [0u8; 8];
                        n.copy_from_slice(&self.buf[2..10]);
                        (usize::try_from(u64::from_be_bytes(n)).expect("length"), 10)
                    }
                    // The extended length has not all come yet.
                    126 | 127 => (usize::MAX / 2, 0),
                    n => (usize::from(n), 2),
                };
                if self.buf.len() >= head + len {
                    let payload = self.buf[head..head + len].to_vec();
                    self.buf.drain(..head + len);
                    return Some(match b0 & 0x0F {
                        0x1 => Frame::Text(String::from_utf8(payload).expect("utf-8")),
                        0x8 => Frame::Close(
                            u16::from_be_bytes([payload[0], payload[1]]),
                            String::from_utf8_lossy(&payload[2..]).to_string(),
                        ),
                        0x9 => Frame::Ping(payload),
                        0xA => Frame::Pong(payload),
                        op => panic!("unexpected opcode {op}"),
                    });
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next text frame as JSON.
    pub fn json(&mut self) -> Value {
        match self.next() {
            Some(Frame::Text(t)) => serde_json::from_str(&t).expect("JSON"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The close frame the server ends with: (code, reason).
    /// The text messages (as JSON) before the close frame, and the close.
    pub fn until_close(&mut self) -> (Vec<Value>, u16, String) {
        let mut texts = Vec::new();
        loop {
            match self.next() {
                Some(Frame::Close(code, reason)) => return (texts, code, reason),
                Some(Frame::Ping(_)) => continue,
                Some(Frame::Text(t)) => {
                    texts.push(serde_json::from_str(&t).unwrap_or(Value::String(t)))
                }
                other => panic!("expected text or a close frame, got {other:?}"),
            }
        }
    }

    pub fn close_code(&mut self) -> (u16, String) {
        loop {
            match self.next() {
                Some(Frame::Close(code, reason)) => return (code, reason),
                Some(Frame::Ping(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }
}
