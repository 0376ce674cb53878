//! `GET /ws` against the real server (SPEC §11): the upgrade and its
//! refusals, authentication by header and by first message, the browser
//! origin check, pings, and the close codes of a socket that breaks the
//! rules. A small WebSocket client over a blocking socket, written from
//! RFC 6455, so the test does not share the server's frame code.

mod common;

use common::{Server, ServerConfig};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A frame the server sent.
#[derive(Debug, PartialEq)]
enum Frame {
    Text(String),
    Close(u16, String),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

struct Ws {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// The upgrade request, with `extra` headers.
fn upgrade_request(extra: &[(&str, &str)]) -> String {
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
fn send_upgrade(server: &Server, request: &str) -> (TcpStream, u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(server.http).expect("connect");
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
    fn open(server: &Server, extra: &[(&str, &str)]) -> Ws {
        let (stream, status, head, rest) = send_upgrade(server, &upgrade_request(extra));
        assert_eq!(status, 101, "{head}");
        // RFC 6455 §1.3's example key and its accept value.
        assert!(
            head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "{head}"
        );
        Ws { stream, buf: rest }
    }

    /// Sends a masked client frame.
    fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 65535 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        // The server may close before taking it all (an oversized frame).
        let _ = self.stream.write_all(&out);
    }

    fn send_text(&mut self, text: &str) {
        self.send_frame(0x1, text.as_bytes());
    }

    /// The next frame from the server (unmasked), or `None` at end of stream.
    fn next(&mut self) -> Option<Frame> {
        loop {
            if self.buf.len() >= 2 {
                let (b0, b1) = (self.buf[0], self.buf[1]);
                assert_eq!(b1 & 0x80, 0, "server frames are not masked");
                let (len, head) = match b1 & 0x7F {
                    126 => (
                        usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                        4,
                    ),
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
    fn json(&mut self) -> Value {
        match self.next() {
            Some(Frame::Text(t)) => serde_json::from_str(&t).expect("JSON"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The close frame the server ends with: (code, reason).
    fn close_code(&mut self) -> (u16, String) {
        loop {
            match self.next() {
                Some(Frame::Close(code, reason)) => return (code, reason),
                Some(Frame::Ping(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }
}

#[test]
fn a_player_authenticates_with_the_upgrades_header() {
    let server = Server::start(1);
    let (id, token) = server.player("game1", "ws_header");
    let bearer = format!("Bearer {token}");
    let mut ws = Ws::open(&server, &[("Authorization", &bearer)]);
    let ready = ws.json();
    assert_eq!(ready["type"], "ready", "{ready}");
    assert_eq!(ready["player_id"], id, "{ready}");
    assert_eq!(ready["game"], "game1", "{ready}");
    assert_eq!(ready["role"], "player", "{ready}");
    // A second auth is an error the socket survives.
    ws.send_text(&format!(r#"{{"type":"auth","token":"{token}"}}"#));
    let e = ws.json();
    assert_eq!(e["type"], "error", "{e}");
    // A ping gets its pong, with the same bytes.
    ws.send_frame(0x9, b"are you there");
    assert_eq!(ws.next(), Some(Frame::Pong(b"are you there".to_vec())));
    // The client closes: the server answers the close and ends.
    ws.send_frame(0x8, &1000u16.to_be_bytes());
    assert_eq!(ws.close_code().0, 1000);
    assert_eq!(ws.next(), None, "the connection ends");
}

#[test]
fn a_browser_authenticates_with_its_first_message_from_an_allowed_origin() {
    let server = ServerConfig::new()
        .set("http", "cors_origins", vec!["https://play.example"])
        .start();
    let (id, token) = server.player("game1", "ws_message");
    let mut ws = Ws::open(&server, &[("Origin", "https://play.example")]);
    ws.send_text(&format!(r#"{{"type":"auth","token":"{token}"}}"#));
    let ready = ws.json();
    assert_eq!(ready["type"], "ready", "{ready}");
    assert_eq!(ready["player_id"], id, "{ready}");
    // Another origin is refused at the upgrade, before any socket exists.
    let (_, status, head, _) = send_upgrade(
        &server,
        &upgrade_request(&[("Origin", "https://evil.example")]),
    );
    assert_eq!(status, 403, "{head}");
}

#[test]
fn wrong_credentials_and_silence_close_with_1008() {
    let server = Server::start(1);
    // A wrong header: 401 at the upgrade.
    let (_, status, head, _) = send_upgrade(
        &server,
        &upgrade_request(&[("Authorization", "Bearer not-a-token")]),
    );
    assert_eq!(status, 401, "{head}");
    // A wrong token in the first message: close 1008.
    let mut ws = Ws::open(&server, &[]);
    ws.send_text(r#"{"type":"auth","token":"not-a-token"}"#);
    let (code, reason) = ws.close_code();
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("authentication failed"), "{reason}");
    // Anything else before authenticating: close 1008.
    let mut ws = Ws::open(&server, &[]);
    ws.send_text(r#"{"type":"subscribe","player_id":1}"#);
    assert_eq!(ws.close_code().0, 1008);
    // Nothing at all: closed 1008 once the 5 s window ends, not before.
    let opened = Instant::now();
    let mut ws = Ws::open(&server, &[]);
    let (code, reason) = ws.close_code();
    assert_eq!(code, 1008, "{reason}");
    assert!(opened.elapsed() >= Duration::from_secs(5), "closed early");
}

#[test]
fn frames_that_break_the_rules_close_with_the_rfcs_codes() {
    let server = Server::start(1);
    let (_, token) = server.player("game1", "ws_rules");
    let bearer = format!("Bearer {token}");
    // A message over 64 KiB: 1009.
    let mut ws = Ws::open(&server, &[("Authorization", &bearer)]);
    assert_eq!(ws.json()["type"], "ready");
    ws.send_frame(0x1, &vec![b'a'; 64 * 1024 + 1]);
    assert_eq!(ws.close_code().0, 1009);
    // Text that is not UTF-8: 1007.
    let mut ws = Ws::open(&server, &[("Authorization", &bearer)]);
    assert_eq!(ws.json()["type"], "ready");
    ws.send_frame(0x1, &[0xff, 0xfe]);
    assert_eq!(ws.close_code().0, 1007);
    // An unmasked frame: 1002.
    let mut ws = Ws::open(&server, &[("Authorization", &bearer)]);
    assert_eq!(ws.json()["type"], "ready");
    ws.stream.write_all(&[0x81, 0x01, b'x']).expect("send");
    assert_eq!(ws.close_code().0, 1002);
    // A binary message: messages are JSON text (1002).
    let mut ws = Ws::open(&server, &[("Authorization", &bearer)]);
    assert_eq!(ws.json()["type"], "ready");
    ws.send_frame(0x2, b"\x00\x01");
    assert_eq!(ws.close_code().0, 1002);
}

#[test]
fn requests_that_are_not_upgrades_are_refused_with_what_to_send() {
    let server = Server::start(1);
    let plain = "GET /ws HTTP/1.1\r\nHost: test\r\n\r\n";
    let (_, status, head, _) = send_upgrade(&server, plain);
    assert_eq!(status, 426, "{head}");
    assert!(head.contains("Upgrade: websocket"), "{head}");
    let old = upgrade_request(&[]).replace("Version: 13", "Version: 8");
    let (_, status, head, _) = send_upgrade(&server, &old);
    assert_eq!(status, 426, "{head}");
    assert!(head.contains("Sec-WebSocket-Version: 13"), "{head}");
    let bad_key = upgrade_request(&[]).replace("dGhlIHNhbXBsZSBub25jZQ==", "short");
    let (_, status, head, _) = send_upgrade(&server, &bad_key);
    assert_eq!(status, 400, "{head}");
    // The server still serves HTTP on other connections.
    let r = server.http().request("GET", "/health", &[], b"");
    assert_eq!(r.status, 200);
}

#[test]
fn a_logout_or_a_ban_closes_the_sessions_sockets_on_every_shard_with_4001() {
    let server = ServerConfig::new().shards(2).start();
    let (_, token) = server.player("game1", "ws_logout");
    let bearer = format!("Bearer {token}");
    // Several sockets: the kernel spreads them over both shards.
    let mut sockets: Vec<Ws> = (0..6)
        .map(|_| Ws::open(&server, &[("Authorization", &bearer)]))
        .collect();
    for ws in &mut sockets {
        assert_eq!(ws.json()["type"], "ready");
    }
    // Another player's socket stays open.
    let (other_id, other_token) = server.player("game1", "ws_stays");
    let other_bearer = format!("Bearer {other_token}");
    let mut other = Ws::open(&server, &[("Authorization", &other_bearer)]);
    assert_eq!(other.json()["type"], "ready");
    let r = server.http().request(
        "POST",
        "/api/v1/auth/logout",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for ws in &mut sockets {
        let (code, reason) = ws.close_code();
        assert_eq!(code, 4001, "{reason}");
    }
    other.send_frame(0x9, b"still here");
    assert_eq!(other.next(), Some(Frame::Pong(b"still here".to_vec())));
    // A ban revokes every session of the player: its socket closes too.
    let admin = server.admin_token();
    let r = server
        .http()
        .call("PUT", &format!("/api/v1/players/{other_id}"))
        .token(&admin)
        .game("game1")
        .json(serde_json::json!({"status": "banned"}))
        .lenient()
        .send();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(other.close_code().0, 4001);
}
