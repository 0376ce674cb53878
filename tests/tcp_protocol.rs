//! The binary protocol over real sockets against the real server: golden
//! frames, every bad-input rule of SPEC §2, pipelining, authentication.

mod common;

use common::{frame, Server, SERVER_KEY};
use std::io::Write;
use std::time::Duration;

const HEARTBEAT: u16 = 0x0001;
const HANDSHAKE: u16 = 0x0002;
const PLAYER_LOGIN: u16 = 0x1001;
const PLAYER_DATA: u16 = 0x1003;
const ERROR: u16 = 0x2001;
const PING: u16 = 0x2002;
const PONG: u16 = 0x2003;

fn golden() -> Vec<Vec<u8>> {
    include_str!("data/golden-frames.hex")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let l = l.trim();
            (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).expect("hex"))
                .collect()
        })
        .collect()
}

#[test]
fn golden_frames_are_answered_over_the_wire() {
    let server = Server::start_with(1, &[("auth", "mode = \"dev\"")]);
    let frames = golden();
    let mut c = server.tcp();
    c.send(&frames[0]);
    let r = c.read().expect("heartbeat reply");
    assert_eq!((r.msg_type, r.sequence, r.body.len()), (HEARTBEAT, 1, 0));
    assert_eq!(r.game_id, "game1");
    assert!(r.timestamp > 1_700_000_000, "server timestamp is now");
    c.send(&frames[1]);
    let r = c.read().expect("pong");
    assert_eq!((r.msg_type, r.sequence, r.body.len()), (PONG, 2, 0));
    // Golden handshake: dev mode trusts the header user id (original behaviour).
    c.send(&frames[2]);
    let r = c.read().expect("handshake reply");
    assert_eq!((r.msg_type, r.sequence), (HANDSHAKE, 3));
    assert_eq!(r.user_id, "u1");
    let j = r.json();
    assert_eq!(j["code"], 200);
    assert_eq!(j["data"]["role"], "game_server");
    assert_eq!(j["data"]["game_id"], "game1");
    assert_eq!(j["data"]["user_id"], "u1");
    assert_eq!(j["data"]["heartbeat_interval_s"], 30);
}

#[test]
fn prod_mode_refuses_the_trusting_handshake() {
    let server = Server::start(1);
    let mut c = server.tcp();
    c.send(&golden()[2]);
    let r = c.read().expect("reply");
    assert_eq!(r.error_code(), 0xE003);
    // Wrong key, unknown game.
    assert_eq!(
        c.handshake_server("game1", "wrong-key-wrong-key")
            .error_code(),
        0xE003
    );
    assert_eq!(c.handshake_server("game9", SERVER_KEY).error_code(), 0xE005);
    // The right key works on the same connection.
    let r = c.handshake_server("game1", SERVER_KEY);
    assert_eq!(r.msg_type, HANDSHAKE);
    assert_eq!(r.json()["data"]["role"], "game_server");
}

#[test]
fn business_messages_need_a_handshake() {
    let server = Server::start(1);
    let mut c = server.tcp();
    for t in [PLAYER_LOGIN, 0x1002, PLAYER_DATA, 0x1004, 0x1005] {
        let r = c.call(t, 9, "game1", r#"{"action":"get","player_id":1}"#);
        assert_eq!(r.sequence, 9);
        assert_eq!(r.error_code(), 0xE003, "type {t:#x}");
    }
    // Heartbeat and Ping stay allowed.
    assert_eq!(c.call(HEARTBEAT, 10, "game1", "").msg_type, HEARTBEAT);
    assert_eq!(c.call(PING, 11, "game1", "").msg_type, PONG);
}

#[test]
fn bad_frames_get_errors_and_the_connection_stays_usable() {
    let server = Server::start(1);
    let mut c = server.tcp();
    // Bad checksum.
    let mut f = frame(PING, 0x04, 1, "game1", "", b"");
    f[20] ^= 0xff;
    c.send(&f);
    let r = c.read().expect("reply");
    assert_eq!((r.error_code(), r.sequence), (0xE002, 1));
    // Unsupported version (with a correct checksum).
    let mut f = frame(PING, 0x04, 2, "game1", "", b"");
    f[0] = 7;
    let crc = datamiddleware::protocol::frame::checksum(&f);
    f[20..24].copy_from_slice(&crc.to_be_bytes());
    c.send(&f);
    assert_eq!(c.read().expect("reply").error_code(), 0xE001);
    // Unknown type.
    assert_eq!(c.call(0x7777, 3, "game1", "").error_code(), 0xE002);
    // Client-sent Error and Pong frames are refused.
    assert_eq!(c.call(ERROR, 4, "game1", "").error_code(), 0xE002);
    // Bad UTF-8 in the user id.
    let mut f = frame(HANDSHAKE, 0x04, 5, "game1", "ab", b"");
    let at = f.len() - 1;
    f[at] = 0xff;
    let crc = datamiddleware::protocol::frame::checksum(&f);
    f[20..24].copy_from_slice(&crc.to_be_bytes());
    c.send(&f);
    assert_eq!(c.read().expect("reply").error_code(), 0xE002);
    // Encrypted flag.
    c.send(&frame(HANDSHAKE, 0x04 | 0x02, 6, "game1", "", b"{}"));
    assert_eq!(c.read().expect("reply").error_code(), 0xE002);
    // Bad JSON in a handshake.
    assert_eq!(
        c.call(HANDSHAKE, 7, "game1", "{not json").error_code(),
        0xE002
    );
    // Still usable: authenticate and ping.
    assert_eq!(c.handshake_server("game1", SERVER_KEY).msg_type, HANDSHAKE);
    let r = c.call(PING, 8, "game1", "");
    assert_eq!((r.msg_type, r.sequence), (PONG, 8));
    // Bad JSON in a business message, then still usable.
    assert_eq!(c.call(PLAYER_DATA, 9, "game1", "[1,").error_code(), 0xE002);
    assert_eq!(c.call(PING, 10, "game1", "").msg_type, PONG);
}

/// SPEC §2: the Encrypted flag is refused with 0xE002 ("use TLS instead")
/// whatever the message, keep-alives included, and the connection stays
/// usable.
#[test]
fn encrypted_heartbeats_and_pings_get_e002() {
    let server = Server::start(1);
    let mut c = server.tcp();
    for (t, seq) in [(HEARTBEAT, 1), (PING, 2)] {
        c.send(&frame(t, 0x04 | 0x02, seq, "game1", "", b""));
        let r = c.read().expect("reply");
        assert_eq!(
            (r.error_code(), r.sequence),
            (0xE002, seq),
            "type {t:#06x} with the Encrypted flag"
        );
        let message = r.json()["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains("TLS"), "{message}");
    }
    // The same with a handshake behind it: the caller is kept.
    assert_eq!(c.handshake_server("game1", SERVER_KEY).msg_type, HANDSHAKE);
    c.send(&frame(PING, 0x02, 3, "game1", "", b""));
    assert_eq!(c.read().expect("reply").error_code(), 0xE002);
    let r = c.call(PING, 4, "game1", "");
    assert_eq!((r.msg_type, r.sequence), (PONG, 4));
    let create = r#"{"action":"create","username":"after_encrypted","password":"password1"}"#;
    let r = c.call(PLAYER_DATA, 5, "game1", create);
    assert_eq!(
        r.msg_type,
        PLAYER_DATA,
        "still authenticated: {:?}",
        r.json()
    );
    assert_eq!(c.call(HEARTBEAT, 6, "game1", "").msg_type, HEARTBEAT);
}

#[test]
fn oversize_frames_get_e008_and_the_connection_closes() {
    let server = Server::start_with(1, &[("tcp", "max_body_bytes = 1024")]);
    // Body length above the limit: refused from the header alone.
    let mut c = server.tcp();
    let big = vec![b'x'; 2000];
    c.send(&frame(PING, 0x04, 1, "game1", "", &big));
    assert_eq!(c.read().expect("reply").error_code(), 0xE008);
    assert!(c.is_closed(Duration::from_secs(5)));
    // Id longer than 64 bytes.
    let mut c = server.tcp();
    c.send(&frame(PING, 0x04, 2, &"g".repeat(65), "", b""));
    assert_eq!(c.read().expect("reply").error_code(), 0xE008);
    assert!(c.is_closed(Duration::from_secs(5)));
    // A header that only announces a huge body is refused before the body.
    let mut c = server.tcp();
    let mut f = frame(PING, 0x04, 3, "game1", "", b"");
    f[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
    c.send(&f);
    assert_eq!(c.read().expect("reply").error_code(), 0xE008);
    assert!(c.is_closed(Duration::from_secs(5)));
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

#[test]
fn gzip_bodies_inflate_within_the_limit() {
    let server = Server::start_with(1, &[("tcp", "max_body_bytes = 4096")]);
    let mut c = server.tcp();
    // A valid compressed handshake.
    let body = gzip(format!(r#"{{"server_key":"{SERVER_KEY}"}}"#).as_bytes());
    c.send(&frame(HANDSHAKE, 0x04 | 0x01, 1, "game1", "gs", &body));
    let r = c.read().expect("reply");
    assert_eq!(
        r.msg_type,
        HANDSHAKE,
        "{:?}",
        String::from_utf8_lossy(&r.body)
    );
    // A bomb: 1 MiB of zeros compresses to about 1 KiB.
    let bomb = gzip(&vec![b' '; 1 << 20]);
    assert!(bomb.len() < 4096);
    c.send(&frame(PLAYER_DATA, 0x04 | 0x01, 2, "game1", "", &bomb));
    assert_eq!(c.read().expect("reply").error_code(), 0xE008);
    // Not gzip at all.
    c.send(&frame(PLAYER_DATA, 0x04 | 0x01, 3, "game1", "", b"plain"));
    assert_eq!(c.read().expect("reply").error_code(), 0xE002);
    // The connection is still in sync.
    assert_eq!(c.call(PING, 4, "game1", "").msg_type, PONG);
}

#[test]
fn idle_connection_is_closed() {
    let server = Server::start_with(1, &[("tcp", "idle_timeout_s = 1")]);
    let mut c = server.tcp();
    assert_eq!(c.call(PING, 1, "game1", "").msg_type, PONG);
    let r = c.read().expect("timeout notice");
    assert_eq!(r.error_code(), 0xE007);
    assert!(c.is_closed(Duration::from_secs(5)));
}

#[test]
fn authenticated_connection_without_heartbeats_is_closed() {
    let server = Server::start_with(
        1,
        &[("tcp", "heartbeat_timeout_s = 1\nidle_timeout_s = 60")],
    );
    let mut c = server.tcp();
    assert_eq!(c.handshake_server("game1", SERVER_KEY).msg_type, HANDSHAKE);
    // Non-heartbeat traffic does not count as a heartbeat.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        c.call(
            PLAYER_DATA,
            2,
            "game1",
            r#"{"action":"get","player_id":99}"#
        )
        .error_code(),
        1001
    );
    let r = c.read().expect("timeout notice");
    assert_eq!(r.error_code(), 0xE007);
    assert!(String::from_utf8_lossy(&r.body).contains("heartbeat"));
    assert!(c.is_closed(Duration::from_secs(5)));
    // An unauthenticated connection is only subject to the idle timeout.
    let mut d = server.tcp();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(d.call(PING, 1, "game1", "").msg_type, PONG);
}

#[test]
fn heartbeats_keep_an_authenticated_connection_open() {
    let server = Server::start_with(
        1,
        &[("tcp", "heartbeat_timeout_s = 1\nidle_timeout_s = 60")],
    );
    let mut c = server.tcp();
    assert_eq!(c.handshake_server("game1", SERVER_KEY).msg_type, HANDSHAKE);
    for seq in 0..6 {
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(c.call(HEARTBEAT, seq, "game1", "").msg_type, HEARTBEAT);
    }
}

#[test]
fn connections_above_the_limit_get_server_busy() {
    let server = Server::start_with(2, &[("tcp", "max_connections = 2")]);
    let mut a = server.tcp();
    let mut b = server.tcp();
    assert_eq!(a.call(PING, 1, "game1", "").msg_type, PONG);
    assert_eq!(b.call(PING, 1, "game1", "").msg_type, PONG);
    let mut c = server.tcp();
    let r = c.read().expect("busy notice");
    assert_eq!(r.error_code(), 0xE006);
    assert!(String::from_utf8_lossy(&r.body).contains("busy"));
    assert!(c.is_closed(Duration::from_secs(5)));
    // Closing one frees a slot.
    drop(a);
    std::thread::sleep(Duration::from_millis(200));
    let mut d = server.tcp();
    assert_eq!(d.call(PING, 2, "game1", "").msg_type, PONG);
}

#[test]
fn pipelined_burst_of_2000_frames_is_answered_in_order() {
    let server = Server::start(2);
    let mut c = server.tcp();
    assert_eq!(c.handshake_server("game1", SERVER_KEY).msg_type, HANDSHAKE);
    let mut burst = Vec::new();
    for seq in 0..2000u32 {
        let t = if seq % 3 == 0 { HEARTBEAT } else { PING };
        burst.extend_from_slice(&frame(t, 0x04, seq, "game1", "", b""));
    }
    // A business message in the middle must not reorder anything.
    let mid = frame(
        PLAYER_DATA,
        0x04,
        5000,
        "game1",
        "",
        br#"{"action":"get","player_id":424242}"#,
    );
    let frame_len = burst.len() / 2000;
    let first = 1000usize;
    let mut all = burst[..first * frame_len].to_vec();
    all.extend_from_slice(&mid);
    all.extend_from_slice(&burst[first * frame_len..]);
    let writer = {
        let mut s = c.stream.try_clone().expect("clone");
        std::thread::spawn(move || s.write_all(&all).expect("write burst"))
    };
    let mut expected: Vec<u32> = (0..first as u32).collect();
    expected.push(5000);
    expected.extend(first as u32..2000);
    for want in expected {
        let r = c.read().expect("reply");
        assert_eq!(r.sequence, want);
        if want == 5000 {
            assert_eq!(r.error_code(), 1001);
        } else {
            assert_eq!(r.msg_type, if want % 3 == 0 { HEARTBEAT } else { PONG });
        }
    }
    writer.join().expect("writer");
}

#[test]
fn player_login_and_data_over_tcp() {
    let server = Server::start(2);
    let (id, token) = server.player("game1", "tcp_alice");
    // Game server connection: login on the player's behalf, read any player.
    let mut gs = server.tcp();
    assert_eq!(gs.handshake_server("game1", SERVER_KEY).msg_type, HANDSHAKE);
    let r = gs.call(
        PLAYER_LOGIN,
        2,
        "game1",
        r#"{"username":"tcp_alice","password":"password1"}"#,
    );
    assert_eq!(r.msg_type, PLAYER_LOGIN, "{:?}", r.json());
    let j = r.json();
    assert_eq!(j["data"]["player"]["id"], id);
    assert!(j["data"]["token"].as_str().is_some_and(|t| t.len() > 20));
    assert!(j["data"]["refresh_token"].is_string());
    assert!(j["data"]["expires_at"].is_i64());
    let r = gs.call(
        PLAYER_LOGIN,
        3,
        "game1",
        r#"{"username":"tcp_alice","password":"nope-nope"}"#,
    );
    assert_eq!(r.error_code(), 1003);
    let r = gs.call(
        PLAYER_DATA,
        4,
        "game1",
        &format!(r#"{{"action":"get","player_id":{id}}}"#),
    );
    assert_eq!(r.json()["data"]["player"]["username"], "tcp_alice");
    // Same answer as HTTP for the same player.
    let mut h = server.http();
    let http = h.request(
        "GET",
        &format!("/api/v1/players/{id}"),
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    );
    assert_eq!(
        http.json()["data"]["player"]["gold"],
        r.json()["data"]["player"]["gold"]
    );
    // Fire-and-forget (Async without NeedResponse): a success sends nothing;
    // the next ping proves order.
    gs.send(&frame(
        PLAYER_DATA,
        0x08,
        5,
        "game1",
        "",
        format!(r#"{{"action":"get","player_id":{id}}}"#).as_bytes(),
    ));
    assert_eq!(gs.call(PING, 6, "game1", "").sequence, 6);
    // A game-server connection of game1 cannot act in game2.
    assert_eq!(
        gs.call(PLAYER_DATA, 7, "game2", r#"{"action":"get","player_id":1}"#)
            .error_code(),
        0xE004
    );
    // Player connection bound by token: own data only.
    let mut p = server.tcp();
    let body = format!(r#"{{"token":"{token}"}}"#);
    p.send(&frame(HANDSHAKE, 0x04, 1, "game1", "", body.as_bytes()));
    let r = p.read().expect("handshake");
    assert_eq!(r.json()["data"]["role"], "player");
    assert_eq!(r.user_id, id.to_string());
    let r = p.call(PLAYER_DATA, 2, "game1", r#"{"action":"get"}"#);
    assert_eq!(r.json()["data"]["player"]["id"], id);
    assert_eq!(r.user_id, id.to_string());
    let r = p.call(
        PLAYER_DATA,
        3,
        "game1",
        &format!(r#"{{"action":"get","player_id":{}}}"#, id + 1000),
    );
    assert_eq!(r.error_code(), 0xE004);
    // A player token cannot handshake for another game.
    let mut q = server.tcp();
    q.send(&frame(HANDSHAKE, 0x04, 1, "game2", "", body.as_bytes()));
    assert_eq!(q.read().expect("reply").error_code(), 0xE003);
    // A tampered token is refused.
    let mut bad = token.clone();
    bad.pop();
    let body = format!(r#"{{"token":"{bad}x"}}"#);
    q.send(&frame(HANDSHAKE, 0x04, 2, "game1", "", body.as_bytes()));
    assert_eq!(q.read().expect("reply").error_code(), 0xE003);
}

/// A client built on the original's encoder never sets NeedResponse and
/// waits for every reply: with flags 0 everywhere it gets each one, in order
/// (SPEC §2 "Replies").
#[test]
fn a_client_of_the_original_gets_every_reply_with_flags_0() {
    let server = Server::start(2);
    let mut c = server.tcp();
    let ask = |c: &mut common::FrameClient, t: u16, seq: u32, body: &str| {
        c.send(&frame(t, 0, seq, "game1", "gs-1", body.as_bytes()));
        c.read().expect("a reply to a flags-0 frame")
    };
    let r = ask(&mut c, HEARTBEAT, 1, "");
    assert_eq!((r.msg_type, r.sequence), (HEARTBEAT, 1));
    let r = ask(&mut c, PING, 2, "");
    assert_eq!((r.msg_type, r.sequence), (PONG, 2));
    let hello = format!(r#"{{"server_key":"{SERVER_KEY}"}}"#);
    let r = ask(&mut c, HANDSHAKE, 3, &hello);
    assert_eq!((r.msg_type, r.sequence), (HANDSHAKE, 3));
    assert_eq!(r.json()["data"]["role"], "game_server");
    let create = r#"{"action":"create","username":"orig_client","password":"password1"}"#;
    let r = ask(&mut c, PLAYER_DATA, 4, create);
    assert_eq!((r.msg_type, r.sequence), (PLAYER_DATA, 4));
    let id = r.json()["data"]["player"]["id"]
        .as_i64()
        .expect("player id");
    // 100 pipelined business frames with flags 0: 100 replies, in order.
    let get = format!(r#"{{"action":"get","player_id":{id}}}"#);
    let mut burst = Vec::new();
    for seq in 100..200u32 {
        burst.extend(frame(PLAYER_DATA, 0, seq, "game1", "", get.as_bytes()));
    }
    c.send(&burst);
    for seq in 100..200u32 {
        let r = c.read().expect("pipelined reply");
        assert_eq!((r.msg_type, r.sequence), (PLAYER_DATA, seq));
        assert_eq!(r.json()["data"]["player"]["id"], id);
    }
    // Fire-and-forget (Async without NeedResponse) is the one exception:
    // a success is not answered, a failure is.
    c.send(&frame(PLAYER_DATA, 0x08, 300, "game1", "", get.as_bytes()));
    c.send(&frame(
        PLAYER_DATA,
        0x08,
        301,
        "game1",
        "",
        b"{\"action\":\"nope\"}",
    ));
    let r = c.read().expect("the failure is answered");
    assert_eq!((r.msg_type, r.sequence), (ERROR, 301));
    let r = ask(&mut c, PING, 302, "");
    assert_eq!((r.msg_type, r.sequence), (PONG, 302));
}

/// Ids that are not UTF-8 are refused on every message type, Ping and
/// Heartbeat included, and the Error reply never echoes the bytes.
#[test]
fn ids_that_are_not_utf8_are_refused_on_every_message_type() {
    let server = Server::start(1);
    let mut c = server.tcp();
    for (seq, t) in [HEARTBEAT, PING, HANDSHAKE, PLAYER_DATA, 0x7777]
        .into_iter()
        .enumerate()
    {
        let seq = seq as u32 + 1;
        for (game, user) in [
            (&b"g\xff1"[..], &b""[..]),
            (&b"game1"[..], &b"\xc3\x28"[..]),
        ] {
            let mut out = Vec::new();
            datamiddleware::protocol::encode(
                &mut out,
                &datamiddleware::protocol::FrameRef {
                    version: 1,
                    msg_type: t,
                    flags: 0,
                    sequence: seq,
                    timestamp: 1_700_000_000,
                    game_id: game,
                    user_id: user,
                    body: b"",
                },
            );
            c.send(&out);
            let r = c.read().expect("an error reply");
            assert_eq!((r.msg_type, r.sequence), (ERROR, seq), "type {t:#06x}");
            assert_eq!(r.error_code(), 0xE002);
            assert_eq!((r.game_id.as_str(), r.user_id.as_str()), ("", ""));
        }
    }
    // The connection stays usable.
    assert_eq!(c.call(PING, 99, "game1", "").msg_type, PONG);
}
