//! The node's budgets over real sockets (SPEC §2, §3): requests per client
//! address counted once per node — not per shard — and shared by HTTP and
//! TCP; failed logins and handshakes budgeted per address and per account
//! across both protocols; a connection with 5 failed handshakes is closed.

mod common;

use common::{frame, HttpClient, Server, SERVER_KEY};
use serde_json::json;
use std::time::Duration;

const HANDSHAKE: u16 = 0x0002;
const PLAYER_LOGIN: u16 = 0x1001;

/// An HTTP connection on each of the node's two shards.
fn one_connection_per_shard(server: &Server) -> [HttpClient; 2] {
    let mut found: [Option<HttpClient>; 2] = [None, None];
    for _ in 0..200 {
        let mut c = server.http();
        // Probes cost no budget.
        let shard = c.request("GET", "/health", &[], b"").json()["shard"]
            .as_u64()
            .expect("shard") as usize;
        if found[shard].is_none() {
            found[shard] = Some(c);
        }
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    let [Some(a), Some(b)] = found else {
        panic!("connections never reached both shards")
    };
    [a, b]
}

#[test]
fn the_request_budget_is_per_node_and_shared_by_http_and_tcp() {
    let server = Server::start_with(2, &[("auth", "rate_limit_per_ip_per_min = 60")]);
    let [mut a, mut b] = one_connection_per_shard(&server);
    for _ in 0..20 {
        assert_eq!(a.request("GET", "/api/v1/games", &[], b"").status, 200);
        assert_eq!(b.request("GET", "/api/v1/games", &[], b"").status, 200);
    }
    // 40 of the node's 60 are spent, on two shards: TCP requests take the
    // remaining 20 (a Ping is a probe and free; a Handshake is a request).
    let mut t = server.tcp();
    let hello = format!(r#"{{"server_key":"{SERVER_KEY}"}}"#);
    let mut served = 0;
    let refusal = loop {
        t.send(&frame(
            HANDSHAKE,
            0,
            served + 1,
            "game1",
            "gs",
            hello.as_bytes(),
        ));
        let r = t.read().expect("reply");
        if r.msg_type != HANDSHAKE {
            break r;
        }
        served += 1;
        assert!(served <= 20, "more than the node's budget");
    };
    assert_eq!(served, 20);
    assert_eq!(refusal.error_code(), 429);
    assert!(refusal.json()["retry_after_s"]
        .as_u64()
        .is_some_and(|s| s >= 1));
    assert_eq!(
        t.call(0x2002, 99, "game1", "").msg_type,
        0x2003,
        "pings stay free"
    );
    // Both HTTP connections are refused now, whichever shard they are on.
    for c in [&mut a, &mut b] {
        let r = c.request("GET", "/api/v1/games", &[], b"");
        assert_eq!(r.status, 429);
        assert!(r.header("Retry-After").is_some());
    }
}

fn http_login(server: &Server, user: &str, password: &str) -> (u16, Option<String>) {
    let mut c = server.http();
    let body = json!({"username": user, "password": password}).to_string();
    let r = c.request("POST", "/api/v1/auth/login", &[], body.as_bytes());
    (r.status, r.header("Retry-After").map(str::to_string))
}

#[test]
fn failed_logins_are_budgeted_per_account_and_per_address_over_both_protocols() {
    let server = Server::start_with(
        2,
        &[(
            "auth",
            "failed_logins_per_user_per_min = 3\nfailed_logins_per_ip_per_min = 6",
        )],
    );
    server.player("game1", "guessed");
    assert_eq!(http_login(&server, "guessed", "wrong-1").0, 401);
    assert_eq!(http_login(&server, "guessed", "wrong-2").0, 401);
    // The third guess comes over TCP, on a game server's connection.
    let mut gs = server.tcp();
    assert_eq!(gs.handshake_server("game1", SERVER_KEY).msg_type, HANDSHAKE);
    let guess = json!({"username": "guessed", "password": "wrong-3"}).to_string();
    assert_eq!(gs.call(PLAYER_LOGIN, 2, "game1", &guess).error_code(), 1003);
    // The account's budget is spent: even the right password waits, on
    // either protocol, and the refusal says for how long.
    let (status, retry) = http_login(&server, "guessed", "password1");
    assert_eq!(status, 429);
    assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s >= 1)));
    let right = json!({"username": "guessed", "password": "password1"}).to_string();
    let r = gs.call(PLAYER_LOGIN, 3, "game1", &right);
    assert_eq!(r.error_code(), 429);
    assert!(r.json()["retry_after_s"].as_u64().is_some());
    // Another account from the same address still may, until the address
    // has spent its own budget (6 failures: 3 so far).
    server.player("game1", "other");
    for i in 0..3 {
        assert_eq!(http_login(&server, "other", &format!("bad-{i}")).0, 401);
    }
    assert_eq!(http_login(&server, "other", "password1").0, 429);
    assert_eq!(http_login(&server, "nobody-at-all", "password1").0, 429);
}

#[test]
fn five_failed_handshakes_close_the_connection() {
    let server = Server::start(1);
    let mut t = server.tcp();
    let wrong = r#"{"server_key":"not-the-key"}"#;
    for seq in 1..=5u32 {
        t.send(&frame(HANDSHAKE, 0, seq, "game1", "gs", wrong.as_bytes()));
        let r = t.read().expect("a refusal before the close");
        assert_eq!((r.sequence, r.error_code()), (seq, 0xE003));
    }
    assert!(
        t.is_closed(Duration::from_secs(5)),
        "closed after 5 failures"
    );
    // A new connection with the right key is served.
    let mut ok = server.tcp();
    assert_eq!(ok.handshake_server("game1", SERVER_KEY).msg_type, HANDSHAKE);
}
