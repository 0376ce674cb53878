//! The business API against the real server: the same flow over HTTP and
//! over TCP, the SPEC §5 invariants under concurrency across shards, every
//! 401/403 case, rate limiting, game isolation, admin operations.

mod common;

use common::{frame, wait_for, FrameClient, HttpClient, Server, ServerConfig, SERVER_KEY};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// A business operation, expressed for either protocol.
#[derive(Clone, Debug)]
enum Op {
    Wallet(i64, &'static str, i64),
    Grant(i64, &'static str, i64),
    Use(i64, &'static str, i64),
    Transfer(i64, i64, &'static str, i64),
    Inventory(i64),
    CreateOrder(i64, &'static str, i64, &'static str, &'static str),
    PayLast,
    CancelLast,
    GetLast,
    GetOrder(&'static str),
    GetPlayer(i64),
    Update(i64, &'static str, Option<i64>),
    Ledger(i64),
}

/// Runs ops as a game server and returns (code, summary) per op, where
/// code is 200 on success or the error code, and summary keeps the fields
/// that must agree between protocols.
trait Protocol {
    fn run(&mut self, op: &Op, last_order: &mut String) -> (u64, Value);
}

fn summary(op: &Op, data: &Value) -> Value {
    match op {
        Op::Wallet(..) => json!([data["gold"], data["diamonds"]]),
        Op::Grant(..) | Op::Use(..) => data["item"]["quantity"].clone(),
        Op::Transfer(..) => json!([data["from"]["quantity"], data["to"]["quantity"]]),
        Op::Inventory(_) => json!(data["items"].as_array().map(|a| a
            .iter()
            .map(|e| json!([e["item_id"], e["quantity"]]))
            .collect::<Vec<_>>())),
        Op::CreateOrder(..) | Op::PayLast | Op::CancelLast | Op::GetLast | Op::GetOrder(_) => {
            json!([
                data["order"]["status"],
                data["order"]["total_price"],
                data["order"]["quantity"]
            ])
        }
        Op::GetPlayer(_) => json!([
            data["player"]["gold"],
            data["player"]["level"],
            data["player"]["version"]
        ]),
        Op::Update(..) => json!([
            data["player"]["gold"],
            data["player"]["nickname"],
            data["player"]["version"]
        ]),
        Op::Ledger(_) => json!([
            data["total"],
            data["items"][0]["delta"],
            data["items"][0]["reason"]
        ]),
    }
}

struct Http<'a> {
    server: &'a Server,
    token: String,
}

impl Protocol for Http<'_> {
    fn run(&mut self, op: &Op, last: &mut String) -> (u64, Value) {
        let t = self.token.as_str();
        let (status, body) = match op {
            Op::Wallet(p, cur, d) => self
                .server
                .call("POST", &format!("/api/v1/players/{p}/wallet"))
                .token(t)
                .json(json!({"currency":cur,"delta":d,"reason":"test"}))
                .send()
                .parts(),
            Op::Grant(p, i, q) => self
                .server
                .call("POST", &format!("/api/v1/players/{p}/items/{i}/grant"))
                .token(t)
                .json(json!({"quantity":q}))
                .send()
                .parts(),
            Op::Use(p, i, q) => self
                .server
                .call("POST", &format!("/api/v1/players/{p}/items/{i}/use"))
                .token(t)
                .json(json!({"quantity":q}))
                .send()
                .parts(),
            Op::Transfer(p, to, i, q) => self
                .server
                .call("POST", &format!("/api/v1/players/{p}/items/{i}/transfer"))
                .token(t)
                .json(json!({"target_player_id":to,"quantity":q}))
                .send()
                .parts(),
            Op::Inventory(p) => self
                .server
                .call("GET", &format!("/api/v1/players/{p}/items"))
                .token(t)
                .send()
                .parts(),
            Op::CreateOrder(p, i, q, cur, key) => {
                let mut c = self.server.http();
                let auth = format!("Bearer {}", self.token);
                let body =
                    json!({"player_id":p,"item_id":i,"quantity":q,"currency":cur}).to_string();
                let r = c.request(
                    "POST",
                    "/api/v1/orders",
                    &[("Authorization", &auth), ("Idempotency-Key", key)],
                    body.as_bytes(),
                );
                (r.status, r.json())
            }
            Op::PayLast => self
                .server
                .call("POST", &format!("/api/v1/orders/{last}/pay"))
                .token(t)
                .send()
                .parts(),
            Op::CancelLast => self
                .server
                .call("DELETE", &format!("/api/v1/orders/{last}"))
                .token(t)
                .send()
                .parts(),
            Op::GetLast => self
                .server
                .call("GET", &format!("/api/v1/orders/{last}"))
                .token(t)
                .send()
                .parts(),
            Op::GetOrder(id) => self
                .server
                .call("GET", &format!("/api/v1/orders/{id}"))
                .token(t)
                .send()
                .parts(),
            Op::GetPlayer(p) => self
                .server
                .call("GET", &format!("/api/v1/players/{p}"))
                .token(t)
                .send()
                .parts(),
            Op::Update(p, nick, v) => {
                let mut body = json!({"nickname": nick});
                if let Some(v) = v {
                    body["version"] = json!(v);
                }
                self.server
                    .call("PUT", &format!("/api/v1/players/{p}"))
                    .token(t)
                    .json(body)
                    .send()
                    .parts()
            }
            Op::Ledger(p) => self
                .server
                .call("GET", &format!("/api/v1/players/{p}/ledger?page_size=5"))
                .token(t)
                .send()
                .parts(),
        };
        if status < 300 {
            if let Some(id) = body["data"]["order"]["order_id"].as_str() {
                *last = id.to_string();
            }
            (200, summary(op, &body["data"]))
        } else {
            (body["code"].as_u64().unwrap_or(0), Value::Null)
        }
    }
}

struct Tcp {
    client: FrameClient,
    seq: u32,
}

impl Protocol for Tcp {
    fn run(&mut self, op: &Op, last: &mut String) -> (u64, Value) {
        let (t, body) = match op {
            Op::Wallet(p, cur, d) => (
                0x1003,
                json!({"action":"wallet","player_id":p,"currency":cur,"delta":d,"reason":"test"}),
            ),
            Op::Grant(p, i, q) => (
                0x1004,
                json!({"action":"grant","player_id":p,"item_id":i,"quantity":q}),
            ),
            Op::Use(p, i, q) => (
                0x1004,
                json!({"action":"use","player_id":p,"item_id":i,"quantity":q}),
            ),
            Op::Transfer(p, to, i, q) => (
                0x1004,
                json!({"action":"transfer","player_id":p,"item_id":i,"target_player_id":to,"quantity":q}),
            ),
            Op::Inventory(p) => (0x1004, json!({"action":"list","player_id":p})),
            Op::CreateOrder(p, i, q, cur, key) => (
                0x1005,
                json!({"action":"create","player_id":p,"item_id":i,"quantity":q,"currency":cur,"idempotency_key":key}),
            ),
            Op::PayLast => (0x1005, json!({"action":"pay","order_id":last})),
            Op::CancelLast => (0x1005, json!({"action":"cancel","order_id":last})),
            Op::GetLast => (0x1005, json!({"action":"get","order_id":last})),
            Op::GetOrder(id) => (0x1005, json!({"action":"get","order_id":id})),
            Op::GetPlayer(p) => (0x1003, json!({"action":"get","player_id":p})),
            Op::Update(p, nick, v) => {
                let mut b = json!({"action":"update","player_id":p,"nickname":nick});
                if let Some(v) = v {
                    b["version"] = json!(v);
                }
                (0x1003, b)
            }
            Op::Ledger(p) => (
                0x1003,
                json!({"action":"ledger","player_id":p,"page_size":5}),
            ),
        };
        self.seq += 1;
        let r = self.client.call(t, self.seq, "game1", &body.to_string());
        assert_eq!(r.sequence, self.seq);
        if r.msg_type == 0x2001 {
            return (r.error_code(), Value::Null);
        }
        assert_eq!(r.msg_type, t);
        let j = r.json();
        if let Some(id) = j["data"]["order"]["order_id"].as_str() {
            *last = id.to_string();
        }
        (200, summary(op, &j["data"]))
    }
}

fn scenario(p: i64, q: i64, key: &'static str) -> Vec<(Op, u64)> {
    vec![
        (Op::Wallet(p, "gold", 500), 200),
        (Op::Wallet(p, "gold", -5000), 3001),
        (Op::Wallet(p, "rubies", 5), 0xE002),
        (Op::Grant(p, "potion", 10), 200),
        (Op::Grant(p, "sword", 6), 2003),
        (Op::Grant(p, "nosuch", 1), 2002),
        (Op::Use(p, "potion", 4), 200),
        (Op::Use(p, "potion", 100), 2001),
        (Op::Transfer(p, q, "potion", 3), 200),
        (Op::Transfer(p, q, "potion", 30), 2001),
        (Op::Transfer(p, 99_999_999, "potion", 1), 1001),
        (Op::Inventory(p), 200),
        (Op::CreateOrder(p, "sword", 2, "gold", key), 200),
        (Op::CreateOrder(p, "sword", 2, "gold", key), 200),
        (Op::CreateOrder(p, "sword", 3, "gold", key), 409),
        (Op::CreateOrder(p, "gem", 1, "gold", "other-key"), 0xE002),
        (Op::PayLast, 200),
        (Op::PayLast, 200),
        (Op::CancelLast, 3003),
        (Op::GetLast, 200),
        (Op::GetOrder("o00000000000000000000000000000"), 3002),
        (Op::CreateOrder(p, "gem", 100, "diamonds", "big"), 200),
        (Op::PayLast, 3001),
        (Op::CancelLast, 200),
        (Op::PayLast, 3003),
        (Op::GetPlayer(p), 200),
        (Op::GetPlayer(99_999_999), 1001),
        (Op::Update(p, "Renamed", None), 200),
        (Op::Update(p, "Again", Some(1)), 409),
        (Op::Ledger(p), 200),
        (Op::Inventory(q), 200),
    ]
}

#[test]
fn http_and_tcp_give_the_same_results() {
    let server = Server::start(2);
    let (a1, _) = server.player("game1", "parity_a1");
    let (b1, _) = server.player("game1", "parity_b1");
    let (a2, _) = server.player("game1", "parity_a2");
    let (b2, _) = server.player("game1", "parity_b2");
    let mut http = Http {
        server: &server,
        token: server.server_token("game1"),
    };
    let mut tcp_client = server.tcp();
    assert_eq!(
        tcp_client.handshake_server("game1", SERVER_KEY).msg_type,
        0x0002
    );
    let mut tcp = Tcp {
        client: tcp_client,
        seq: 10,
    };
    let mut outcomes = Vec::new();
    let expected: Vec<u64> = scenario(0, 0, "").iter().map(|(_, e)| *e).collect();
    for (proto, (p, q, key)) in [
        (&mut http as &mut dyn Protocol, (a1, b1, "k-http")),
        (&mut tcp, (a2, b2, "k-tcp")),
    ] {
        let mut last = String::new();
        let run: Vec<(String, u64, Value)> = scenario(p, q, key)
            .iter()
            .map(|(op, _)| {
                let (code, data) = proto.run(op, &mut last);
                // HTTP's generic 400 is the protocol's 0xE002.
                (
                    format!("{op:?}"),
                    if code == 400 { 0xE002 } else { code },
                    data,
                )
            })
            .collect();
        outcomes.push(run);
    }
    let (h, t) = (&outcomes[0], &outcomes[1]);
    for (i, (((op, hc, hd), (_, tc, td)), want)) in h.iter().zip(t).zip(&expected).enumerate() {
        assert_eq!(hc, want, "step {i} {op}: http code");
        assert_eq!(tc, want, "step {i} {op}: tcp code");
        assert_eq!(hd, td, "step {i} {op}: data differs between http and tcp");
    }
    // Spot-check the absolute results once.
    let inv_a = &h[11].2;
    assert_eq!(inv_a, &json!([["potion", 3]]));
    let player = &h[25].2;
    assert_eq!(player[0], 1300, "1000 signup + 500 wallet - 200 order");
}

fn gs_token(server: &Server) -> String {
    server.server_token("game1")
}

/// Runs `n` closures on `n` threads, each with its own connection.
fn concurrently<T: Send + 'static>(
    n: usize,
    f: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = Arc::new(f);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let f = f.clone();
            std::thread::spawn(move || f(i))
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("worker"))
        .collect()
}

fn ledger_sum(server: &Server, token: &str, player: i64) -> (i64, i64, Vec<Value>) {
    let (mut gold, mut diamonds, mut all) = (0, 0, Vec::new());
    for page in 1.. {
        let (s, j) = server
            .call(
                "GET",
                &format!("/api/v1/players/{player}/ledger?page={page}&page_size=100"),
            )
            .token(token)
            .send()
            .parts();
        assert_eq!(s, 200);
        let items = j["data"]["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        for e in &items {
            match e["currency"].as_str() {
                Some("gold") => gold += e["delta"].as_i64().unwrap_or(0),
                Some("diamonds") => diamonds += e["delta"].as_i64().unwrap_or(0),
                other => panic!("unknown currency {other:?}"),
            }
        }
        all.extend(items);
    }
    (gold, diamonds, all)
}

fn balances(server: &Server, token: &str, player: i64) -> (i64, i64) {
    let (_, j) = server
        .call("GET", &format!("/api/v1/players/{player}"))
        .token(token)
        .send()
        .parts();
    (
        j["data"]["player"]["gold"].as_i64().expect("gold"),
        j["data"]["player"]["diamonds"].as_i64().expect("diamonds"),
    )
}

fn grant(
    server: &Server,
    token: &str,
    player: impl std::fmt::Display,
    quantity: i64,
) -> (u16, Value) {
    server
        .call(
            "POST",
            &format!("/api/v1/players/{player}/items/potion/grant"),
        )
        .token(token)
        .json(json!({ "quantity": quantity }))
        .send()
        .parts()
}

fn quantity(server: &Server, token: &str, player: i64, item: &str) -> i64 {
    let (_, j) = server
        .call("GET", &format!("/api/v1/players/{player}/items"))
        .token(token)
        .send()
        .parts();
    j["data"]["items"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["item_id"] == item))
        .and_then(|e| e["quantity"].as_i64())
        .unwrap_or(0)
}

#[test]
fn concurrent_pays_of_one_order_charge_once() {
    let server = Arc::new(Server::start(2));
    let token = gs_token(&server);
    let (p, _) = server.player("game1", "pay_once");
    let (s, j) = server
        .call("POST", "/api/v1/orders")
        .token(&token)
        .json(json!({"player_id":p,"item_id":"potion","quantity":10,"currency":"gold"}))
        .send()
        .parts();
    assert_eq!(s, 201, "{j}");
    let order = j["data"]["order"]["order_id"]
        .as_str()
        .expect("id")
        .to_string();
    let (srv, tok, ord) = (server.clone(), token.clone(), order.clone());
    let results = concurrently(200, move |_| {
        srv.call("POST", &format!("/api/v1/orders/{ord}/pay"))
            .token(&tok)
            .send()
            .parts()
    });
    for (s, j) in &results {
        assert_eq!(*s, 200, "{j}");
        assert_eq!(j["data"]["order"]["status"], "paid");
    }
    assert_eq!(balances(&server, &token, p).0, 900, "charged exactly once");
    assert_eq!(
        quantity(&server, &token, p, "potion"),
        10,
        "delivered exactly once"
    );
    let (gold, diamonds, entries) = ledger_sum(&server, &token, p);
    assert_eq!((gold, diamonds), balances(&server, &token, p));
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["reason"] == "order_pay")
            .count(),
        1
    );
}

#[test]
fn concurrent_uses_succeed_exactly_as_often_as_there_are_items() {
    let server = Arc::new(Server::start(2));
    let token = gs_token(&server);
    let (p, _) = server.player("game1", "use_50");
    let (s, _) = grant(&server, &token, p, 50);
    assert_eq!(s, 200);
    let (srv, tok) = (server.clone(), token.clone());
    let results = concurrently(200, move |_| {
        srv.call("POST", &format!("/api/v1/players/{p}/items/potion/use"))
            .token(&tok)
            .json(json!({"quantity":1}))
            .send()
            .parts()
    });
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let short = results
        .iter()
        .filter(|(s, j)| *s == 409 && j["code"] == 2001)
        .count();
    assert_eq!(
        (ok, short),
        (50, 150),
        "every call either used one item or got 2001"
    );
    assert_eq!(quantity(&server, &token, p, "potion"), 0);
}

#[test]
fn random_transfers_in_both_directions_keep_the_total() {
    let server = Arc::new(Server::start(2));
    let token = gs_token(&server);
    let players: Vec<i64> = (0..10)
        .map(|i| server.player("game1", &format!("xfer_{i}")).0)
        .collect();
    for p in &players {
        let (s, _) = grant(&server, &token, p, 100);
        assert_eq!(s, 200);
    }
    let (srv, tok, ps) = (server.clone(), token.clone(), players.clone());
    let results = concurrently(50, move |worker| {
        let mut c = srv.http();
        let mut outcomes = Vec::new();
        // A small deterministic generator per worker: 10 transfers each.
        let mut x = (worker as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for _ in 0..10 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let from = ps[(x % 10) as usize];
            let to = ps[((x / 10) % 9 + 1 + x % 10) as usize % 10];
            let q = (x / 1000) % 5 + 1;
            let (s, j) = c
                .call(
                    "POST",
                    &format!("/api/v1/players/{from}/items/potion/transfer"),
                )
                .token(&tok)
                .json(json!({"target_player_id":to,"quantity":q}))
                .send()
                .parts();
            outcomes.push((s, j["code"].as_u64().unwrap_or(200)));
        }
        outcomes
    });
    let all: Vec<(u16, u64)> = results.into_iter().flatten().collect();
    assert_eq!(all.len(), 500);
    for (s, code) in &all {
        assert!(
            *s == 200 || (*s == 409 && *code == 2001),
            "unexpected {s} {code}"
        );
    }
    assert!(
        all.iter().filter(|(s, _)| *s == 200).count() > 250,
        "most transfers succeed"
    );
    let total: i64 = players
        .iter()
        .map(|p| quantity(&server, &token, *p, "potion"))
        .sum();
    assert_eq!(total, 1000, "no item lost or duplicated");
}

#[test]
fn concurrent_wallet_debits_never_overdraw_and_the_ledger_adds_up() {
    let server = Arc::new(Server::start(2));
    let token = gs_token(&server);
    let (p, _) = server.player("game1", "ledger_sum");
    let (srv, tok) = (server.clone(), token.clone());
    // 1000 gold at signup; 200 debits of 7 can succeed at most 142 times.
    let results = concurrently(200, move |i| {
        let body = if i % 10 == 0 {
            json!({"currency":"diamonds","delta":-3,"reason":"spend"})
        } else {
            json!({"currency":"gold","delta":-7,"reason":"spend"})
        };
        srv.call("POST", &format!("/api/v1/players/{p}/wallet"))
            .token(&tok)
            .json(body)
            .send()
            .parts()
            .0
    });
    assert!(results.iter().all(|s| *s == 200 || *s == 409));
    let (gold, diamonds) = balances(&server, &token, p);
    assert!(gold >= 0 && diamonds >= 0);
    assert_eq!(gold, 1000 - 7 * 142, "180 gold debits, 142 fit");
    assert_eq!(diamonds, 100 - 3 * 20);
    let (lg, ld, _) = ledger_sum(&server, &token, p);
    assert_eq!(
        (lg, ld),
        (gold, diamonds),
        "ledger deltas sum to the balances"
    );
}

#[test]
fn unauthenticated_and_unauthorised_calls_are_refused() {
    let server = Server::start(2);
    let (alice, alice_token) = server.player("game1", "authz_alice");
    let (bob, _) = server.player("game1", "authz_bob");
    let p = format!("/api/v1/players/{alice}");
    // No token, garbage, tampered, expired, signed with another secret.
    assert_eq!(server.call("GET", &p).send().parts().0, 401);
    assert_eq!(
        server.call("GET", &p).token("garbage").send().parts().0,
        401
    );
    let mut tampered = alice_token.clone().into_bytes();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'a' { b'b' } else { b'a' };
    assert_eq!(
        server
            .call("GET", &p)
            .token(&String::from_utf8(tampered).expect("ascii"))
            .send()
            .parts()
            .0,
        401
    );
    let secret = b"test-jwt-secret-0123456789abcdef0123456789";
    let issuer = datamiddleware::service::TokenIssuer::new(secret, 60);
    let caller = datamiddleware::service::Caller {
        game_id: "game1".into(),
        role: datamiddleware::service::Role::Player,
        player_id: Some(alice),
        session_id: "x".repeat(32),
        subject: alice.to_string(),
        client: None,
    };
    let (expired, _) = issuer
        .issue(&caller, datamiddleware::clock::now_s() - 3600)
        .expect("issue");
    let (s, j) = server.call("GET", &p).token(&expired).send().parts();
    assert_eq!((s, j["message"].as_str()), (401, Some("token expired")));
    let (fresh, _) = issuer
        .issue(&caller, datamiddleware::clock::now_s())
        .expect("issue");
    assert_eq!(
        server.call("GET", &p).token(&fresh).send().parts().0,
        200,
        "a correctly signed token works"
    );
    let (foreign, _) =
        datamiddleware::service::TokenIssuer::new(b"another-secret-another-secret-xx", 60)
            .issue(&caller, datamiddleware::clock::now_s())
            .expect("issue");
    assert_eq!(server.call("GET", &p).token(&foreign).send().parts().0, 401);
    // Other player's data.
    for path in [
        format!("/api/v1/players/{bob}"),
        format!("/api/v1/players/{bob}/items"),
        format!("/api/v1/players/{bob}/ledger"),
        format!("/api/v1/players/{bob}/orders"),
    ] {
        assert_eq!(
            server
                .call("GET", &path)
                .token(&alice_token)
                .send()
                .parts()
                .0,
            403,
            "{path}"
        );
    }
    // Other game's data: a game1 player token with X-Game-Id game2; a game2
    // server token on game1.
    assert_eq!(
        server
            .call("GET", &p)
            .token(&alice_token)
            .game("game2")
            .send()
            .parts()
            .0,
        403
    );
    let gs2 = server.server_token("game2");
    assert_eq!(
        server
            .call("GET", &p)
            .token(&gs2)
            .game("game1")
            .send()
            .parts()
            .0,
        403
    );
    // Player calling game-server-only routes.
    let wallet = json!({"currency":"gold","delta":100,"reason":"cheat"});
    assert_eq!(
        server
            .call("POST", &format!("{p}/wallet"))
            .token(&alice_token)
            .json(wallet)
            .send()
            .parts()
            .0,
        403
    );
    assert_eq!(
        server
            .call("POST", &format!("{p}/items/potion/grant"))
            .token(&alice_token)
            .json(json!({"quantity":5}))
            .send()
            .parts()
            .0,
        403
    );
    assert_eq!(
        server
            .call("PUT", &p)
            .token(&alice_token)
            .json(json!({"level":99}))
            .send()
            .parts()
            .0,
        403
    );
    assert_eq!(
        server
            .call("POST", "/api/v1/games/game1/add_exp")
            .token(&alice_token)
            .json(json!({"player_id":alice,"amount":5}))
            .send()
            .parts()
            .0,
        403
    );
    assert_eq!(
        server
            .call("POST", "/api/v1/items")
            .token(&alice_token)
            .json(json!({"item_id":"x","name":"X"}))
            .send()
            .parts()
            .0,
        403
    );
    assert_eq!(
        server
            .call("GET", "/health/detailed")
            .token(&alice_token)
            .send()
            .parts()
            .0,
        403
    );
    // Game server cannot refund (admin only) and cannot see admin routes.
    let gs = server.server_token("game1");
    assert_eq!(
        server
            .call("GET", "/api/v1/games/game1/stats")
            .token(&gs)
            .send()
            .parts()
            .0,
        403
    );
    // Wrong server key and unknown admin.
    assert_eq!(
        server
            .call("POST", "/api/v1/auth/server")
            .json(json!({"game_id":"game1","server_key":"nope-nope-nope-nope"}))
            .send()
            .parts()
            .0,
        401
    );
    let (s, j) = server
        .call("POST", "/api/v1/auth/admin")
        .json(json!({"username":"ops","password":"wrong-password"}))
        .send()
        .parts();
    assert_eq!((s, j["code"].as_u64()), (401, Some(1003)));
}

#[test]
fn logout_revokes_tokens_on_every_shard_and_refresh_rotates() {
    let server = Server::start(2);
    let mut c = server.http();
    let body = json!({"username":"sess_user","password":"password1"});
    assert_eq!(
        c.call("POST", "/api/v1/players")
            .json(body.clone())
            .send()
            .parts()
            .0,
        201
    );
    let (_, login) = c
        .call("POST", "/api/v1/auth/login")
        .json(body.clone())
        .send()
        .parts();
    let token = login["data"]["token"].as_str().expect("token").to_string();
    let refresh1 = login["data"]["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let id = login["data"]["player"]["id"].as_i64().expect("id");
    let path = format!("/api/v1/players/{id}");
    // Rotation: the new refresh token works once; the old one is refused.
    let (s, r) = c
        .call("POST", "/api/v1/auth/refresh")
        .json(json!({"refresh_token": refresh1}))
        .send()
        .parts();
    assert_eq!(s, 200, "{r}");
    let token2 = r["data"]["token"].as_str().expect("token").to_string();
    let refresh2 = r["data"]["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    assert_ne!(refresh1, refresh2);
    assert_eq!(c.call("GET", &path).token(&token2).send().parts().0, 200);
    // Reusing the old refresh token revokes the whole session family.
    let (s, j) = c
        .call("POST", "/api/v1/auth/refresh")
        .json(json!({"refresh_token": refresh1}))
        .send()
        .parts();
    assert_eq!(s, 401, "{j}");
    let mut conns: Vec<HttpClient> = (0..12).map(|_| server.http()).collect();
    for conn in conns.iter_mut() {
        assert_eq!(
            conn.call("GET", &path).token(&token2).send().parts().0,
            401,
            "revoked on every shard"
        );
        assert_eq!(conn.call("GET", &path).token(&token).send().parts().0, 401);
    }
    assert_eq!(
        c.call("POST", "/api/v1/auth/refresh")
            .json(json!({"refresh_token": refresh2}))
            .send()
            .parts()
            .0,
        401
    );
    assert_eq!(
        c.call("POST", "/api/v1/auth/refresh")
            .json(json!({"refresh_token": "game1.nonsense"}))
            .send()
            .parts()
            .0,
        401
    );
    // A new login; logout revokes it on every shard immediately.
    let (_, login) = c
        .call("POST", "/api/v1/players/login")
        .json(body)
        .send()
        .parts();
    let token3 = login["data"]["token"].as_str().expect("token").to_string();
    for conn in conns.iter_mut() {
        assert_eq!(conn.call("GET", &path).token(&token3).send().parts().0, 200);
    }
    assert_eq!(
        c.call("POST", "/api/v1/auth/logout")
            .token(&token3)
            .send()
            .parts()
            .0,
        200
    );
    for conn in conns.iter_mut() {
        let (s, j) = conn.call("GET", &path).token(&token3).send().parts();
        assert_eq!((s, j["message"].as_str()), (401, Some("token revoked")));
    }
    // The binary protocol refuses the revoked token too.
    assert_eq!(tcp_token_handshake(&server, &token3), 0xE003);
}

/// A TCP handshake of game1 with a player's access token: the Error frame's
/// code, or 0 when it was accepted.
fn tcp_token_handshake(server: &Server, token: &str) -> u64 {
    let mut t = server.tcp();
    let body = json!({ "token": token }).to_string();
    t.send(&frame(0x0002, 0x04, 1, "game1", "", body.as_bytes()));
    let reply = t.read().expect("reply");
    if reply.msg_type == 0x2001 {
        reply.error_code()
    } else {
        0
    }
}

#[test]
fn revocations_survive_a_restart() {
    let mut server = Server::start(1);
    let (id, token) = server.player("game1", "restart_user");
    assert_eq!(
        server
            .call("POST", "/api/v1/auth/logout")
            .token(&token)
            .send()
            .parts()
            .0,
        200
    );
    // Same databases, new process: the revoked session is loaded back.
    server.restart();
    let (s, _) = server
        .call("GET", &format!("/api/v1/players/{id}"))
        .token(&token)
        .send()
        .parts();
    assert_eq!(s, 401, "a token revoked before the restart stays revoked");
}

#[test]
fn rate_limit_answers_429_and_recovers() {
    // 120 per minute per node (not per shard), refilling 2 per second.
    let server = ServerConfig::new()
        .shards(2)
        .set("auth", "rate_limit_per_ip_per_min", 120)
        .start();
    let mut c = server.http();
    let mut limited = None;
    for i in 0..200 {
        let r = c.request("GET", "/api/v1/games", &[], b"");
        if r.status == 429 {
            limited = Some((i, r));
            break;
        }
        assert_eq!(r.status, 200);
    }
    let (count, r) = limited.expect("rate limit reached");
    assert_eq!(count, 120, "one connection gets the node's whole budget");
    let retry: u64 = r
        .header("Retry-After")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert_eq!(retry, 1);
    assert_eq!(r.json()["code"], 429);
    // Probes are not limited.
    assert_eq!(c.request("GET", "/health", &[], b"").status, 200);
    std::thread::sleep(Duration::from_millis(retry * 1000 + 100));
    assert_eq!(
        c.request("GET", "/api/v1/games", &[], b"").status,
        200,
        "recovered"
    );
}

#[test]
fn a_player_of_game1_is_invisible_to_game2() {
    let server = Server::start(1);
    let (id, _) = server.player("game1", "only_in_game1");
    let gs2 = server.server_token("game2");
    let (s, j) = server
        .call("GET", &format!("/api/v1/players/{id}"))
        .token(&gs2)
        .send()
        .parts();
    assert_eq!((s, j["code"].as_u64()), (404, Some(1001)));
    let (s, j) = server
        .call("POST", "/api/v1/auth/login")
        .game("game2")
        .json(json!({"username":"only_in_game1","password":"password1"}))
        .send()
        .parts();
    assert_eq!((s, j["code"].as_u64()), (401, Some(1003)));
    // Catalogues are separate too.
    let (_, j) = server
        .call("GET", "/api/v1/items")
        .token(&gs2)
        .send()
        .parts();
    let ids: Vec<&str> = j["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["item_id"].as_str())
        .collect();
    assert_eq!(ids, vec!["shield"]);
    // The same over TCP: a game2 server connection.
    let mut t = server.tcp();
    assert_eq!(
        t.handshake_server("game2", &format!("{SERVER_KEY}-2"))
            .msg_type,
        0x0002
    );
    assert_eq!(
        t.call(
            0x1003,
            2,
            "game2",
            &json!({"action":"get","player_id":id}).to_string()
        )
        .error_code(),
        1001
    );
}

#[test]
fn admin_catalogue_orders_refund_and_game_logic() {
    let server = Server::start(2);
    let admin = server.admin_token();
    let gs = gs_token(&server);
    let (p, player_token) = server.player("game1", "admin_flow");
    // Catalogue CRUD.
    let new_item =
        json!({"item_id":"bow","name":"Bow","type":"weapon","price_gold":50,"max_stack":2});
    let (s, j) = server
        .call("POST", "/api/v1/items")
        .token(&admin)
        .json(new_item.clone())
        .send()
        .parts();
    assert_eq!(s, 201, "{j}");
    assert_eq!(
        server
            .call("POST", "/api/v1/items")
            .token(&admin)
            .json(new_item)
            .send()
            .parts()
            .0,
        409
    );
    let (s, j) = server
        .call("PUT", "/api/v1/items/bow")
        .token(&admin)
        .json(json!({"price_gold":60}))
        .send()
        .parts();
    assert_eq!(
        (s, j["data"]["item"]["price_gold"].as_i64()),
        (200, Some(60))
    );
    let (s, j) = server
        .call("GET", "/api/v1/items/bow")
        .token(&player_token)
        .send()
        .parts();
    assert_eq!((s, j["data"]["item"]["name"].as_str()), (200, Some("Bow")));
    assert_eq!(
        server
            .call("PUT", "/api/v1/items/bow")
            .token(&admin)
            .json(json!({"max_stack":0}))
            .send()
            .parts()
            .0,
        400
    );
    // Every catalogue field is checked on creation and on update alike.
    let long = "x".repeat(1025);
    for (method, path, body, field) in [
        (
            "POST",
            "/api/v1/items",
            json!({"item_id":"axe","name":"","type":"weapon"}),
            "name",
        ),
        (
            "POST",
            "/api/v1/items",
            json!({"item_id":"axe","name":"Axe","type":"weapon","price_gold":-1}),
            "price_gold",
        ),
        (
            "POST",
            "/api/v1/items",
            json!({"item_id":"axe","name":"Axe","type":"weapon","max_stack":0}),
            "max_stack",
        ),
        (
            "POST",
            "/api/v1/items",
            json!({"item_id":"axe","name":"Axe","type":"weapon","description":long}),
            "description",
        ),
        ("PUT", "/api/v1/items/bow", json!({"name":""}), "name"),
        (
            "PUT",
            "/api/v1/items/bow",
            json!({"price_diamonds":1_000_000_000_001_i64}),
            "price_diamonds",
        ),
        (
            "PUT",
            "/api/v1/items/bow",
            json!({"status":"bogus"}),
            "status",
        ),
    ] {
        let (s, j) = server
            .call(method, path)
            .token(&admin)
            .json(body)
            .send()
            .parts();
        assert_eq!(s, 400, "{method} {path} {field}: {j}");
        let message = j["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(field), "{field}: {message}");
    }
    let (s, _) = server
        .call("GET", "/api/v1/items/axe")
        .token(&admin)
        .send()
        .parts();
    assert_eq!(s, 404, "no refused creation left an entry");
    // Orders: buy two bows, pay, refund.
    let (s, j) = server
        .call("POST", "/api/v1/orders")
        .token(&player_token)
        .json(json!({"item_id":"bow","quantity":2,"currency":"gold"}))
        .send()
        .parts();
    assert_eq!(s, 201, "{j}");
    assert_eq!(j["data"]["order"]["total_price"], 120);
    let order = j["data"]["order"]["order_id"]
        .as_str()
        .expect("id")
        .to_string();
    let status = format!("/api/v1/orders/{order}/status");
    // Paying is POST .../pay alone: the admin status route never charges.
    for token in [&gs, &admin] {
        let (s, j) = server
            .call("PUT", &status)
            .token(token)
            .json(json!({"status":"paid"}))
            .send()
            .parts();
        assert_eq!(s, 400, "{j}");
        let message = j["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("POST /api/v1/orders/{order}/pay")),
            "{message}"
        );
    }
    let (_, j) = server
        .call("GET", &format!("/api/v1/orders/{order}"))
        .token(&admin)
        .send()
        .parts();
    assert_eq!(j["data"]["order"]["status"], "pending", "{j}");
    assert_eq!(balances(&server, &admin, p).0, 1000, "nothing charged");
    assert_eq!(quantity(&server, &admin, p, "bow"), 0, "nothing delivered");
    assert_eq!(
        server
            .call("POST", &format!("/api/v1/orders/{order}/pay"))
            .token(&player_token)
            .send()
            .parts()
            .0,
        200
    );
    assert_eq!(balances(&server, &admin, p).0, 880);
    assert_eq!(quantity(&server, &admin, p, "bow"), 2);
    assert_eq!(
        server
            .call("PUT", &status)
            .token(&gs)
            .json(json!({"status":"refunded"}))
            .send()
            .parts()
            .0,
        403
    );
    assert_eq!(
        server
            .call("PUT", &status)
            .token(&player_token)
            .json(json!({"status":"refunded"}))
            .send()
            .parts()
            .0,
        403
    );
    let (s, j) = server
        .call("PUT", &status)
        .token(&admin)
        .json(json!({"status":"refunded"}))
        .send()
        .parts();
    assert_eq!(
        (s, j["data"]["order"]["status"].as_str()),
        (200, Some("refunded")),
        "{j}"
    );
    assert_eq!(
        balances(&server, &admin, p).0,
        1000,
        "refund credits the price back"
    );
    assert_eq!(
        quantity(&server, &admin, p, "bow"),
        0,
        "and takes the items back"
    );
    let (g, d, entries) = ledger_sum(&server, &admin, p);
    assert_eq!((g, d), balances(&server, &admin, p));
    assert!(entries
        .iter()
        .any(|e| e["reason"] == "order_refund" && e["delta"] == 120));
    assert_eq!(
        server
            .call("PUT", &status)
            .token(&admin)
            .json(json!({"status":"cancelled"}))
            .send()
            .parts()
            .0,
        409
    );
    // Deleting withdraws the item: no longer sold or shown to players.
    assert_eq!(
        server
            .call("DELETE", "/api/v1/items/bow")
            .token(&admin)
            .send()
            .parts()
            .0,
        200
    );
    let (s, j) = server
        .call("GET", "/api/v1/items/bow")
        .token(&player_token)
        .send()
        .parts();
    assert_eq!((s, j["code"].as_u64()), (404, Some(2002)));
    let (s, j) = server
        .call("POST", "/api/v1/orders")
        .token(&player_token)
        .json(json!({"item_id":"bow","quantity":1,"currency":"gold"}))
        .send()
        .parts();
    assert_eq!((s, j["code"].as_u64()), (404, Some(2002)));
    // Orders listing with pagination.
    for k in 0..3 {
        let (s, _) = server.call("POST", "/api/v1/orders").token(&player_token).json(json!({"item_id":"potion","quantity":1,"currency":"gold","idempotency_key":format!("pg{k}")})).send().parts();
        assert_eq!(s, 201);
    }
    let (_, j) = server
        .call(
            "GET",
            &format!("/api/v1/players/{p}/orders?page=1&page_size=2"),
        )
        .token(&player_token)
        .send()
        .parts();
    assert_eq!(
        (
            j["data"]["total"].as_i64(),
            j["data"]["items"].as_array().map(Vec::len)
        ),
        (Some(4), Some(2))
    );
    let (_, j2) = server
        .call("GET", "/api/v1/orders?page=2&page_size=2")
        .token(&player_token)
        .send()
        .parts();
    assert_eq!(j2["data"]["items"].as_array().map(Vec::len), Some(2));
    assert_ne!(
        j["data"]["items"][0]["order_id"],
        j2["data"]["items"][0]["order_id"]
    );
    assert_eq!(
        server
            .call("GET", "/api/v1/orders?page_size=101")
            .token(&player_token)
            .send()
            .parts()
            .0,
        400
    );
    // Game logic: add_exp, level_up, daily reward once per day.
    let (s, j) = server
        .call("POST", "/api/v1/games/game1/add_exp")
        .token(&gs)
        .json(json!({"player_id":p,"amount":250}))
        .send()
        .parts();
    assert_eq!(
        (s, j["data"]["player"]["level"].as_i64()),
        (200, Some(3)),
        "{j}"
    );
    let (_, j) = server
        .call("POST", "/api/v1/games/game1/level_up")
        .token(&gs)
        .json(json!({"player_id":p}))
        .send()
        .parts();
    assert_eq!(
        (
            j["data"]["player"]["level"].as_i64(),
            j["data"]["player"]["exp"].as_i64()
        ),
        (Some(4), Some(300))
    );
    let (_, j) = server
        .call("PUT", &format!("/api/v1/players/{p}"))
        .token(&admin)
        .json(json!({"exp":0}))
        .send()
        .parts();
    assert_eq!(j["data"]["player"]["exp"], 0);
    let (_, j) = server
        .call("POST", "/api/v1/games/game1/add_exp")
        .token(&gs)
        .json(json!({"player_id":p,"amount":1}))
        .send()
        .parts();
    assert_eq!(j["data"]["player"]["level"], 4, "level is never lowered");
    let gold_before = balances(&server, &admin, p).0;
    let (s, _) = server
        .call("POST", "/api/v1/games/game1/daily_reward")
        .token(&gs)
        .json(json!({"player_id":p}))
        .send()
        .parts();
    assert_eq!(s, 200);
    assert_eq!(
        server
            .call("POST", "/api/v1/games/game1/daily_reward")
            .token(&gs)
            .json(json!({"player_id":p}))
            .send()
            .parts()
            .0,
        409
    );
    assert_eq!(balances(&server, &admin, p).0, gold_before + 100);
    assert_eq!(
        server
            .call("POST", "/api/v1/games/game1/fly")
            .token(&gs)
            .json(json!({"player_id":p}))
            .send()
            .parts()
            .0,
        404
    );
    // Games list, stats, detailed health.
    let (_, j) = server.call("GET", "/api/v1/games").send().parts();
    assert_eq!(j["data"]["games"].as_array().map(Vec::len), Some(2));
    let (s, j) = server
        .call("GET", "/api/v1/games/game1/stats")
        .token(&admin)
        .send()
        .parts();
    assert_eq!(s, 200);
    assert!(j["data"]["players"].as_i64() >= Some(1));
    let (s, j) = server
        .call("GET", "/health/components")
        .token(&admin)
        .send()
        .parts();
    assert_eq!(s, 200);
    assert_eq!(j["data"]["shards"].as_array().map(Vec::len), Some(2));
}

#[test]
fn optimistic_concurrency_on_profile_updates() {
    let server = Server::start(1);
    let (p, token) = server.player("game1", "versioned");
    let path = format!("/api/v1/players/{p}");
    let (_, j) = server.call("GET", &path).token(&token).send().parts();
    let v = j["data"]["player"]["version"].as_i64().expect("version");
    let mut c = server.http();
    let auth = format!("Bearer {token}");
    let r = c.request(
        "PUT",
        &path,
        &[("Authorization", &auth), ("If-Match", &v.to_string())],
        br#"{"nickname":"First"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["player"]["version"], v + 1);
    let r = c.request(
        "PUT",
        &path,
        &[("Authorization", &auth), ("If-Match", &v.to_string())],
        br#"{"nickname":"Stale"}"#,
    );
    assert_eq!(r.status, 409);
    let r = c.request(
        "PUT",
        &path,
        &[("Authorization", &auth)],
        br#"{"nickname":"Last","avatar":"a.png","email":"v@example.com"}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["player"]["nickname"], "Last");
    let r = c.request(
        "PUT",
        &path,
        &[("Authorization", &auth)],
        br#"{"nickname":"x","unknown":1}"#,
    );
    assert_eq!(r.status, 400);
    // Banning revokes the player's sessions.
    let admin = server.admin_token();
    assert_eq!(
        server
            .call("PUT", &path)
            .token(&admin)
            .json(json!({"status":"banned"}))
            .send()
            .parts()
            .0,
        200
    );
    assert_eq!(
        server.call("GET", &path).token(&token).send().parts().0,
        401
    );
    let (s, j) = server
        .call("POST", "/api/v1/auth/login")
        .json(json!({"username":"versioned","password":"password1"}))
        .send()
        .parts();
    assert_eq!((s, j["code"].as_u64()), (403, Some(1004)));
}

#[test]
fn a_logout_on_one_node_is_refused_on_the_other() {
    let a = Server::start(2);
    let b = a.start_peer("node-b");
    let (id, token) = a.player("game1", "two_node_user");
    let path = format!("/api/v1/players/{id}");
    assert_eq!(b.call("GET", &path).token(&token).send().parts().0, 200);
    assert_eq!(
        tcp_token_handshake(&b, &token),
        0,
        "accepted before the logout"
    );
    let (s, j) = a
        .call("POST", "/api/v1/auth/logout")
        .token(&token)
        .send()
        .parts();
    assert_eq!(s, 200, "{j}");
    // Node B learns it from the database (every 500 ms), Redis or not.
    let started = std::time::Instant::now();
    let mut c = b.http();
    wait_for(
        "node B to refuse a token logged out on node A",
        Duration::from_secs(10),
        || {
            let (s, j) = c.call("GET", &path).token(&token).send().parts();
            if s == 401 {
                assert_eq!(j["message"], "token revoked");
                return true;
            }
            assert_eq!(s, 200, "{j}");
            false
        },
    );
    eprintln!("logout reached node B after {:?}", started.elapsed());
    // Every shard of B refuses it, over HTTP and TCP.
    for _ in 0..8 {
        assert_eq!(b.call("GET", &path).token(&token).send().parts().0, 401);
    }
    assert_eq!(tcp_token_handshake(&b, &token), 0xE003);
}

#[test]
fn admin_and_game_server_logouts_reach_other_nodes_and_survive_a_restart() {
    let mut a = Server::start(1);
    let b = a.start_peer("node-b");
    let (id, _) = a.player("game1", "seen_by_servers");
    let player_path = format!("/api/v1/players/{id}");
    let admin = a.admin_token();
    let game_server = a.server_token("game1");
    let checks = [
        (admin.as_str(), "/api/v1/cache/stats"),
        (game_server.as_str(), player_path.as_str()),
    ];
    for (token, path) in checks {
        assert_eq!(b.call("GET", path).token(token).send().parts().0, 200);
        let (s, j) = a
            .call("POST", "/api/v1/auth/logout")
            .token(token)
            .send()
            .parts();
        assert_eq!(s, 200, "{j}");
        assert_eq!(a.call("GET", path).token(token).send().parts().0, 401);
    }
    for (token, path) in checks {
        wait_for(
            &format!("node B to refuse a token logged out on node A: {path}"),
            Duration::from_secs(10),
            || b.call("GET", path).token(token).send().parts().0 == 401,
        );
    }
    a.restart();
    for (token, path) in checks {
        assert_eq!(
            a.call("GET", path).token(token).send().parts().0,
            401,
            "still refused after a restart: {path}"
        );
    }
    // A fresh token of the same accounts works: only the sessions were revoked.
    let admin2 = a.admin_token();
    assert_eq!(
        a.call("GET", "/api/v1/cache/stats")
            .token(&admin2)
            .send()
            .parts()
            .0,
        200
    );
}

#[test]
fn an_open_player_connection_is_cut_off_when_its_session_is_revoked() {
    let server = Server::start(2);
    let (id, token) = server.player("game1", "tcp_revoked");
    let mut t = server.tcp();
    let hello = json!({ "token": token }).to_string();
    t.send(&frame(0x0002, 0x04, 1, "game1", "", hello.as_bytes()));
    assert_eq!(t.read().expect("handshake").msg_type, 0x0002);
    let get = json!({"action": "get", "player_id": id}).to_string();
    assert_eq!(t.call(0x1003, 2, "game1", &get).msg_type, 0x1003);
    // Logged out over HTTP (the session may be on the other shard).
    let (s, j) = server
        .call("POST", "/api/v1/auth/logout")
        .token(&token)
        .send()
        .parts();
    assert_eq!(s, 200, "{j}");
    let refused = t.call(0x1003, 3, "game1", &get);
    assert_eq!(refused.error_code(), 0xE003);
    assert_eq!(t.call(0x1003, 4, "game1", &get).error_code(), 0xE003);
    // A new login handshakes the same connection again.
    let (_, fresh) = server
        .call("POST", "/api/v1/auth/login")
        .game("game1")
        .json(json!({"username": "tcp_revoked", "password": "password1"}))
        .send()
        .parts();
    let fresh = fresh["data"]["token"].as_str().expect("token").to_string();
    let hello = json!({ "token": fresh }).to_string();
    t.send(&frame(0x0002, 0x04, 5, "game1", "", hello.as_bytes()));
    assert_eq!(t.read().expect("handshake").msg_type, 0x0002);
    assert_eq!(t.call(0x1003, 6, "game1", &get).msg_type, 0x1003);
}

/// Rules that used to live in one front end only now hold for both: a player
/// connection cannot create players, names no other game, and an update with
/// a field its HTTP route refuses is refused over TCP too (the dispatcher
/// removes only its own envelope fields).
#[test]
fn tcp_requests_obey_the_same_scope_and_body_rules_as_http() {
    let server = Server::start(2);
    let (id, token) = server.player("game1", "tcp_rules");
    let mut t = server.tcp();
    let hello = json!({ "token": token }).to_string();
    t.send(&frame(0x0002, 0x04, 1, "game1", "", hello.as_bytes()));
    assert_eq!(t.read().expect("handshake").msg_type, 0x0002);
    let create = json!({"action": "create", "username": "made_by_player", "password": "password1"});
    assert_eq!(
        t.call(0x1003, 2, "game1", &create.to_string()).error_code(),
        0xE004
    );
    let get = json!({"action": "get", "player_id": id}).to_string();
    assert_eq!(t.call(0x1003, 3, "game2", &get).error_code(), 0xE004);
    let update = json!({"action": "update", "player_id": id, "nickname": "ok", "level": 9});
    assert_eq!(
        t.call(0x1003, 4, "game1", &update.to_string()).error_code(),
        0xE004,
        "players may not set their level"
    );
    let unknown = json!({"action": "update", "player_id": id, "nickname": "ok", "colour": "red"});
    assert_eq!(
        t.call(0x1003, 5, "game1", &unknown.to_string())
            .error_code(),
        0xE002
    );
    let fine = json!({"action": "update", "player_id": id, "nickname": "renamed"});
    let r = t.call(0x1003, 6, "game1", &fine.to_string());
    assert_eq!(r.msg_type, 0x1003);
    assert_eq!(r.json()["data"]["player"]["nickname"], "renamed");
    // The HTTP side of the same scope rule: another game's id is 403.
    let (s, _) = server
        .call("GET", &format!("/api/v1/players/{id}"))
        .token(&token)
        .game("game2")
        .send()
        .parts();
    assert_eq!(s, 403);
}
