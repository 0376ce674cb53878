//! `GET /ws` against the real server (SPEC §11): the upgrade and its
//! refusals, authentication by header and by first message, the browser
//! origin check, pings, and the close codes of a socket that breaks the
//! rules, through `tests/common/ws.rs` (a client written from RFC 6455, so
//! the tests do not share the server's frame code).

mod common;

use common::ws::{send_upgrade, upgrade_request, Frame, Ws};
use common::{Server, ServerConfig};
use std::io::Write;
use std::time::{Duration, Instant};

#[test]
fn a_player_authenticates_with_the_upgrades_header() {
    let server = Server::start(1);
    let (id, token) = server.player("game1", "ws_header");
    let bearer = format!("Bearer {token}");
    let mut ws = Ws::open(server.http, &[("Authorization", &bearer)]);
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
    let mut ws = Ws::open(server.http, &[("Origin", "https://play.example")]);
    ws.send_text(&format!(r#"{{"type":"auth","token":"{token}"}}"#));
    let ready = ws.json();
    assert_eq!(ready["type"], "ready", "{ready}");
    assert_eq!(ready["player_id"], id, "{ready}");
    // Another origin is refused at the upgrade, before any socket exists.
    let (_, status, head, _) = send_upgrade(
        server.http,
        &upgrade_request(&[("Origin", "https://evil.example")]),
    );
    assert_eq!(status, 403, "{head}");
    // A page of the server's own origin (Host `test` here) needs no listing.
    let (_, status, head, _) =
        send_upgrade(server.http, &upgrade_request(&[("Origin", "http://test")]));
    assert_eq!(status, 101, "{head}");
    let (_, status, head, _) = send_upgrade(
        server.http,
        &upgrade_request(&[("Origin", "http://test.evil.example")]),
    );
    assert_eq!(status, 403, "{head}");
}

#[test]
fn wrong_credentials_and_silence_close_with_1008() {
    let server = Server::start(1);
    // A wrong header: 401 at the upgrade.
    let (_, status, head, _) = send_upgrade(
        server.http,
        &upgrade_request(&[("Authorization", "Bearer not-a-token")]),
    );
    assert_eq!(status, 401, "{head}");
    // A wrong token in the first message: close 1008.
    let mut ws = Ws::open(server.http, &[]);
    ws.send_text(r#"{"type":"auth","token":"not-a-token"}"#);
    let (code, reason) = ws.close_code();
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("authentication failed"), "{reason}");
    // Anything else before authenticating: close 1008.
    let mut ws = Ws::open(server.http, &[]);
    ws.send_text(r#"{"type":"subscribe","player_id":1}"#);
    assert_eq!(ws.close_code().0, 1008);
    // Nothing at all: closed 1008 once the 5 s window ends, not before.
    let opened = Instant::now();
    let mut ws = Ws::open(server.http, &[]);
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
    let mut ws = Ws::open(server.http, &[("Authorization", &bearer)]);
    assert_eq!(ws.json()["type"], "ready");
    ws.send_frame(0x1, &vec![b'a'; 64 * 1024 + 1]);
    assert_eq!(ws.close_code().0, 1009);
    // Text that is not UTF-8: 1007.
    let mut ws = Ws::open(server.http, &[("Authorization", &bearer)]);
    assert_eq!(ws.json()["type"], "ready");
    ws.send_frame(0x1, &[0xff, 0xfe]);
    assert_eq!(ws.close_code().0, 1007);
    // An unmasked frame: 1002.
    let mut ws = Ws::open(server.http, &[("Authorization", &bearer)]);
    assert_eq!(ws.json()["type"], "ready");
    ws.stream.write_all(&[0x81, 0x01, b'x']).expect("send");
    assert_eq!(ws.close_code().0, 1002);
    // A binary message: messages are JSON text (1002).
    let mut ws = Ws::open(server.http, &[("Authorization", &bearer)]);
    assert_eq!(ws.json()["type"], "ready");
    ws.send_frame(0x2, b"\x00\x01");
    assert_eq!(ws.close_code().0, 1002);
}

#[test]
fn requests_that_are_not_upgrades_are_refused_with_what_to_send() {
    let server = Server::start(1);
    let plain = "GET /ws HTTP/1.1\r\nHost: test\r\n\r\n";
    let (_, status, head, _) = send_upgrade(server.http, plain);
    assert_eq!(status, 426, "{head}");
    assert!(head.contains("Upgrade: websocket"), "{head}");
    let old = upgrade_request(&[]).replace("Version: 13", "Version: 8");
    let (_, status, head, _) = send_upgrade(server.http, &old);
    assert_eq!(status, 426, "{head}");
    assert!(head.contains("Sec-WebSocket-Version: 13"), "{head}");
    let bad_key = upgrade_request(&[]).replace("dGhlIHNhbXBsZSBub25jZQ==", "short");
    let (_, status, head, _) = send_upgrade(server.http, &bad_key);
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
        .map(|_| Ws::open(server.http, &[("Authorization", &bearer)]))
        .collect();
    for ws in &mut sockets {
        assert_eq!(ws.json()["type"], "ready");
    }
    // Another player's socket stays open.
    let (other_id, other_token) = server.player("game1", "ws_stays");
    let other_bearer = format!("Bearer {other_token}");
    let mut other = Ws::open(server.http, &[("Authorization", &other_bearer)]);
    assert_eq!(other.json()["type"], "ready");
    let r = server.http().request(
        "POST",
        "/api/v1/auth/logout",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for ws in &mut sockets {
        let (texts, code, reason) = ws.until_close();
        assert_eq!(code, 4001, "{reason}");
        assert_eq!(
            texts.last().map(|t| t["type"].clone()),
            Some("session_revoked".into())
        );
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
    let (texts, code, _) = other.until_close();
    assert_eq!(code, 4001);
    // The ban's own notification comes before the close.
    let kinds: Vec<_> = texts
        .iter()
        .map(|t| {
            t["kind"]
                .as_str()
                .unwrap_or(t["type"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(kinds, ["player", "session_revoked"], "{texts:?}");
    assert_eq!(texts[0]["data"]["status"], "banned");
}

#[test]
fn a_draining_node_closes_its_sockets_with_1001_and_exits() {
    let mut server = Server::start(1);
    let (_, token) = server.player("game1", "ws_drain");
    let bearer = format!("Bearer {token}");
    let mut ws = Ws::open(server.http, &[("Authorization", &bearer)]);
    assert_eq!(ws.json()["type"], "ready");
    server.signal(libc::SIGTERM);
    let (code, reason) = ws.close_code();
    assert_eq!(code, 1001, "{reason}");
    assert_eq!(
        server.wait_exit(Duration::from_secs(15)),
        Some(0),
        "the node drains and exits 0 with a socket open"
    );
}
