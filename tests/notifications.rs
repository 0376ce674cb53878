//! Notifications over `/ws` against the real server (SPEC §11): every kind
//! a change makes, ids increasing per player, the inbox and its routes,
//! messages over HTTP and the binary protocol's Notify (0x1006), resume
//! without gaps or duplicates, subscriptions, presence, broadcasts to many
//! sockets, and a slow reader closed. The cross-node tests (ignored without
//! Redis) run on the MariaDB + Redis and the Redis Cluster passes.

mod common;

use common::ws::{Frame, Ws};
use common::{node, redis, wait_for, Server, ServerConfig, SERVER_KEY};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A socket of `token`'s caller, past its `ready` (returned).
fn socket(server: &Server, token: &str) -> (Ws, Value) {
    let bearer = format!("Bearer {token}");
    let mut ws = Ws::open(server.http, &[("Authorization", &bearer)]);
    let ready = ws.json();
    assert_eq!(ready["type"], "ready", "{ready}");
    (ws, ready)
}

/// The next `n` text messages, pings skipped.
fn texts(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        match ws.next() {
            Some(Frame::Text(t)) => out.push(serde_json::from_str(&t).expect("JSON")),
            Some(Frame::Ping(_)) => {}
            other => panic!("expected text after {out:?}, got {other:?}"),
        }
    }
    out
}

fn credit(server: &Server, admin: &str, player: i64, delta: i64) {
    let (s, j) = server
        .call("POST", &format!("/api/v1/players/{player}/wallet"))
        .token(admin)
        .json(json!({"currency": "gold", "delta": delta, "reason": "quest"}))
        .send()
        .parts();
    assert_eq!(s, 200, "{j}");
}

fn message(server: &Server, token: &str, player: i64, body: &str) -> (u16, Value) {
    server
        .call("POST", &format!("/api/v1/players/{player}/notifications"))
        .token(token)
        .json(json!({"subject": "hi", "body": body}))
        .lenient()
        .send()
        .parts()
}

/// The kind and id of each notification in `msgs`.
fn kinds_and_ids(msgs: &[Value]) -> Vec<(String, i64)> {
    msgs.iter()
        .map(|m| {
            assert_eq!(m["type"], "notification", "{m}");
            (
                m["kind"].as_str().unwrap_or("").to_string(),
                m["id"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

#[test]
fn every_change_a_player_sees_reaches_its_socket_with_increasing_ids() {
    let server = ServerConfig::new().shards(2).start();
    let admin = server.admin_token();
    let (p, token) = server.player("game1", "rt_kinds");
    let (mut ws, ready) = socket(&server, &token);
    let start = ready["last_id"].as_i64().expect("last_id");
    // Several sockets of the same player on both shards all get them.
    let mut more: Vec<Ws> = (0..3).map(|_| socket(&server, &token).0).collect();

    credit(&server, &admin, p, 500);
    let grant = server
        .call("POST", &format!("/api/v1/players/{p}/items/potion/grant"))
        .token(&admin)
        .json(json!({"quantity": 3}))
        .send();
    assert_eq!(grant.status, 200, "{}", grant.text());
    let used = server
        .call("POST", &format!("/api/v1/players/{p}/items/potion/use"))
        .token(&token)
        .json(json!({"quantity": 1}))
        .send();
    assert_eq!(used.status, 200, "{}", used.text());
    let (s, j) = server
        .call("POST", "/api/v1/orders")
        .token(&admin)
        .json(json!({"player_id": p, "item_id": "sword", "quantity": 1, "currency": "gold"}))
        .send()
        .parts();
    assert_eq!(s, 201, "{j}");
    let order = j["data"]["order"]["order_id"]
        .as_str()
        .expect("id")
        .to_string();
    let paid = server
        .call("POST", &format!("/api/v1/orders/{order}/pay"))
        .token(&admin)
        .send();
    assert_eq!(paid.status, 200, "{}", paid.text());
    let (s, j) = message(&server, &admin, p, "welcome");
    assert_eq!(s, 201, "{j}");

    let got = texts(&mut ws, 8);
    let want = [
        "wallet", "item", "item", "order", "wallet", "item", "order", "message",
    ];
    let ids: Vec<i64> = (1..=8).map(|i| start + i).collect();
    let seen = kinds_and_ids(&got);
    assert_eq!(
        seen.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        want,
        "{got:?}"
    );
    assert_eq!(seen.iter().map(|(_, id)| *id).collect::<Vec<_>>(), ids);
    // The fields SPEC §11 lists for each kind.
    assert_eq!(
        got[0]["data"],
        json!({"currency": "gold", "delta": 500, "balance": 1500, "reason": "wallet:quest"})
    );
    assert_eq!(
        got[1]["data"],
        json!({"item_id": "potion", "delta": 3, "quantity": 3})
    );
    assert_eq!(
        got[2]["data"],
        json!({"item_id": "potion", "delta": -1, "quantity": 2})
    );
    assert_eq!(
        got[3]["data"],
        json!({"order_id": order, "status": "pending"})
    );
    assert_eq!(got[4]["data"]["delta"], -100);
    assert_eq!(got[4]["data"]["balance"], 1400);
    assert_eq!(got[6]["data"], json!({"order_id": order, "status": "paid"}));
    assert_eq!(got[7]["data"]["body"], "welcome");
    assert_eq!(got[7]["data"]["from"], "admin:ops");
    assert_eq!(got[0]["game"], "game1");
    assert_eq!(got[0]["player_id"], p);
    assert!(
        got[0]["at"]
            .as_str()
            .is_some_and(|t| t.starts_with("20") && t.ends_with('Z')),
        "{}",
        got[0]
    );
    for ws in &mut more {
        assert_eq!(
            kinds_and_ids(&texts(ws, 8))
                .iter()
                .map(|(_, id)| *id)
                .collect::<Vec<_>>(),
            ids
        );
    }
    // A repeated create makes nothing, and a refund with nothing to take
    // back makes two: ids stay without gaps either way.
    let create = json!({"player_id": p, "item_id": "sword", "quantity": 1, "currency": "gold"});
    let mut created = Vec::new();
    for _ in 0..2 {
        let (s, j) = server
            .call("POST", "/api/v1/orders")
            .token(&admin)
            .header("Idempotency-Key", "rt-kinds-1")
            .json(create.clone())
            .send()
            .parts();
        assert!(s == 201 || s == 200, "{s} {j}");
        created.push(j["data"]["order"]["order_id"].clone());
    }
    assert_eq!(created[0], created[1], "the repeat answers the same order");
    let used = server
        .call("POST", &format!("/api/v1/players/{p}/items/sword/use"))
        .token(&token)
        .json(json!({"quantity": 1}))
        .send();
    assert_eq!(used.status, 200, "{}", used.text());
    let refunded = server
        .call("PUT", &format!("/api/v1/orders/{order}/status"))
        .token(&admin)
        .json(json!({"status": "refunded"}))
        .send();
    assert_eq!(refunded.status, 200, "{}", refunded.text());
    credit(&server, &admin, p, 1);
    let later = kinds_and_ids(&texts(&mut ws, 5));
    let want: Vec<(String, i64)> = ["order", "item", "wallet", "order", "wallet"]
        .iter()
        .zip(9..)
        .map(|(k, i)| (k.to_string(), start + i))
        .collect();
    assert_eq!(later, want);

    // Another player's socket saw none of it.
    let (_, other_token) = server.player("game1", "rt_other");
    let (mut other, _) = socket(&server, &other_token);
    other.send_frame(0x9, b"x");
    assert_eq!(other.next(), Some(Frame::Pong(b"x".to_vec())));
}

#[test]
fn the_inbox_keeps_messages_and_refuses_what_it_must() {
    let server = ServerConfig::new().start();
    let admin = server.admin_token();
    let gs = server.server_token("game1");
    let (p, token) = server.player("game1", "rt_inbox");
    let (q, q_token) = server.player("game1", "rt_inbox_other");
    credit(&server, &admin, p, 5); // not stored without realtime.persist
    for (i, by) in [&admin, &gs].into_iter().enumerate() {
        let (s, j) = message(&server, by, p, &format!("m{i}"));
        assert_eq!(s, 201, "{j}");
        assert_eq!(j["data"]["notification"]["kind"], "message");
    }
    // The player reads its inbox: the messages, oldest first; last_id
    // counts the wallet notification too.
    let (s, j) = server
        .call("GET", &format!("/api/v1/players/{p}/notifications?after=0"))
        .token(&token)
        .send()
        .parts();
    assert_eq!(s, 200, "{j}");
    let items = j["data"]["notifications"].as_array().expect("list").clone();
    assert_eq!(items.len(), 2, "{j}");
    assert_eq!(items[0]["data"]["body"], "m0");
    assert_eq!(items[1]["data"]["body"], "m1");
    assert_eq!(items[1]["data"]["from"], "server:game1");
    assert_eq!(j["data"]["last_id"], 3);
    let after = items[0]["id"].as_i64().expect("id");
    let (_, j) = server
        .call(
            "GET",
            &format!("/api/v1/players/{p}/notifications?after={after}&limit=1"),
        )
        .token(&token)
        .send()
        .parts();
    assert_eq!(j["data"]["notifications"][0]["data"]["body"], "m1");
    // Refusals: another player's inbox, a player sending, bad bodies and
    // parameters, an unknown player.
    let r = server
        .call("GET", &format!("/api/v1/players/{p}/notifications"))
        .token(&q_token)
        .lenient()
        .send();
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(message(&server, &q_token, q, "self").0, 403);
    assert_eq!(message(&server, &admin, p, "  ").0, 400);
    assert_eq!(message(&server, &admin, p, &"x".repeat(4001)).0, 400);
    let (s, j) = server
        .call("POST", &format!("/api/v1/players/{p}/notifications"))
        .token(&admin)
        .json(json!({"body": "x", "sender": "spoof"}))
        .lenient()
        .send()
        .parts();
    assert_eq!(s, 400, "unknown fields are refused: {j}");
    for query in ["after=-1", "after=x", "limit=0", "limit=201"] {
        let r = server
            .call("GET", &format!("/api/v1/players/{p}/notifications?{query}"))
            .token(&token)
            .lenient()
            .send();
        assert_eq!(r.status, 400, "{query}: {}", r.text());
    }
    let (s, j) = message(&server, &admin, 99_999_999, "nobody");
    assert_eq!(s, 404, "{j}");
    let (s, j) = message(&server, &admin, p, "two\nlines");
    assert_eq!(s, 201, "a body may span lines: {j}");
    let r = server
        .call("GET", "/api/v1/players/99999999/presence")
        .token(&admin)
        .lenient()
        .send();
    assert_eq!(r.status, 404, "{}", r.text());
    // The binary protocol's Notify: a stored message, and a live-only one.
    let mut tcp = server.tcp();
    assert_eq!(tcp.handshake_server("game1", SERVER_KEY).msg_type, 0x0002);
    let body = json!({"player_id": p, "subject": "s", "body": "over tcp"}).to_string();
    let r = tcp.call(0x1006, 7, "game1", &body);
    assert_eq!(r.msg_type, 0x1006, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["data"]["notification"]["data"]["body"], "over tcp");
    let body = json!({"player_id": p, "body": "live only", "persistent": false}).to_string();
    assert_eq!(tcp.call(0x1006, 8, "game1", &body).msg_type, 0x1006);
    let r = tcp.call(0x1006, 9, "game1", &json!({"player_id": p}).to_string());
    assert_eq!(r.error_code(), 0xE002, "a Notify without a body");
    let (_, j) = server
        .call("GET", &format!("/api/v1/players/{p}/notifications?after=3"))
        .token(&token)
        .send()
        .parts();
    let bodies: Vec<_> = j["data"]["notifications"]
        .as_array()
        .expect("list")
        .iter()
        .map(|n| n["data"]["body"].clone())
        .collect();
    assert_eq!(
        bodies,
        ["two\nlines", "over tcp"],
        "the live-only one is not stored"
    );
    assert_eq!(j["data"]["last_id"], 6);
}

#[test]
fn a_resumed_socket_gets_what_it_missed_in_order_without_duplicates() {
    for persist in [false, true] {
        let server = ServerConfig::new()
            .shards(2)
            .set("realtime", "persist", persist)
            .start();
        let admin = server.admin_token();
        let (p, token) = server.player("game1", "rt_resume");
        let (mut ws, _) = socket(&server, &token);
        credit(&server, &admin, p, 1);
        message(&server, &admin, p, "one");
        let got = texts(&mut ws, 2);
        let last = got[1]["id"].as_i64().expect("id");
        drop(ws);
        // Missed while away: two credits and a message.
        credit(&server, &admin, p, 2);
        message(&server, &admin, p, "two");
        credit(&server, &admin, p, 3);
        let (mut ws, ready) = socket(&server, &token);
        assert_eq!(ready["last_id"], last + 3);
        ws.send_text(&json!({"type": "resume", "after": last}).to_string());
        // Live ones made while resuming come after, once.
        credit(&server, &admin, p, 4);
        let mut seen = Vec::new();
        let mut resumed = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.last().copied() != Some(last + 4) && Instant::now() < deadline {
            let m = texts(&mut ws, 1).remove(0);
            match m["type"].as_str() {
                Some("notification") => seen.push(m["id"].as_i64().expect("id")),
                Some("missed") => {
                    assert!(!persist, "nothing is missed when all is stored: {m}");
                    let (from, to) = (
                        m["from"].as_i64().unwrap_or(0),
                        m["to"].as_i64().unwrap_or(0),
                    );
                    seen.extend(from..=to);
                }
                Some("resumed") => resumed = Some(m),
                _ => panic!("unexpected {m}"),
            }
        }
        assert_eq!(
            seen,
            [last + 1, last + 2, last + 3, last + 4],
            "persist {persist}"
        );
        let resumed = resumed.expect("a resumed message");
        assert_eq!(
            resumed["replayed"],
            if persist { 3 } else { 1 },
            "{resumed}"
        );
        assert_eq!(resumed["missed"], if persist { 0 } else { 2 }, "{resumed}");
        // A resume past the newest id is an error the socket survives.
        ws.send_text(&json!({"type": "resume", "after": 1_000_000}).to_string());
        assert_eq!(texts(&mut ws, 1)[0]["type"], "error");
    }
}

#[test]
fn game_servers_subscribe_to_players_and_players_cannot() {
    let server = ServerConfig::new().start();
    let admin = server.admin_token();
    let gs = server.server_token("game1");
    let (p, token) = server.player("game1", "rt_sub");
    let (mut watcher, ready) = socket(&server, &gs);
    assert_eq!(ready["role"], "game_server");
    watcher.send_text(&json!({"type": "subscribe", "player_id": p}).to_string());
    let sub = texts(&mut watcher, 1).remove(0);
    assert_eq!(sub["type"], "subscribed", "{sub}");
    credit(&server, &admin, p, 9);
    let n = texts(&mut watcher, 1).remove(0);
    assert_eq!(
        (n["kind"].as_str(), n["player_id"].as_i64()),
        (Some("wallet"), Some(p))
    );
    // A player may not follow anyone; an unknown player is refused.
    let (mut player, _) = socket(&server, &token);
    player.send_text(&json!({"type": "subscribe", "player_id": p}).to_string());
    assert_eq!(texts(&mut player, 1)[0]["type"], "error");
    watcher.send_text(&json!({"type": "subscribe", "player_id": 99_999_999}).to_string());
    assert_eq!(texts(&mut watcher, 1)[0]["type"], "error");
    // Another game's server cannot follow this game's player.
    let (mut other, _) = socket(&server, &server.server_token("game2"));
    other.send_text(&json!({"type": "subscribe", "player_id": p}).to_string());
    assert_eq!(texts(&mut other, 1)[0]["type"], "error");
    other.send_text(&json!({"type": "subscribe", "player_id": p, "game": "game1"}).to_string());
    assert_eq!(
        texts(&mut other, 1)[0]["type"],
        "error",
        "naming the game does not help"
    );
    // An admin's socket follows players of any game it names.
    let (q, _) = server.player("game2", "rt_sub_game2");
    let (mut admin_ws, ready) = socket(&server, &admin);
    assert_eq!(ready["game"], "game1", "the default game");
    admin_ws.send_text(&json!({"type": "subscribe", "player_id": q, "game": "game2"}).to_string());
    assert_eq!(texts(&mut admin_ws, 1)[0]["type"], "subscribed");
    let (s, j) = server
        .call("POST", &format!("/api/v1/players/{q}/wallet"))
        .token(&admin)
        .game("game2")
        .json(json!({"currency": "gold", "delta": 3, "reason": "quest"}))
        .send()
        .parts();
    assert_eq!(s, 200, "{j}");
    let n = texts(&mut admin_ws, 1).remove(0);
    assert_eq!(
        (n["game"].as_str(), n["player_id"].as_i64()),
        (Some("game2"), Some(q))
    );
    admin_ws.send_text(&json!({"type": "subscribe", "player_id": q, "game": "nope"}).to_string());
    assert_eq!(texts(&mut admin_ws, 1)[0]["message"], "no such game");
}

#[test]
fn presence_is_true_while_a_socket_is_open_on_any_shard() {
    let server = ServerConfig::new().shards(2).start();
    let (p, token) = server.player("game1", "rt_presence");
    let presence = |token: &str| {
        let (s, j) = server
            .call("GET", &format!("/api/v1/players/{p}/presence"))
            .token(token)
            .send()
            .parts();
        assert_eq!(s, 200, "{j}");
        j["data"].clone()
    };
    let admin = server.admin_token();
    let before = presence(&admin);
    assert_eq!(before["online"], false, "{before}");
    assert_eq!(before["last_seen"], Value::Null);
    // Sockets on either shard: online, on this node.
    for _ in 0..4 {
        let (ws, _) = socket(&server, &token);
        let now = presence(&admin);
        assert_eq!(now["online"], true, "{now}");
        assert_eq!(now["nodes"], json!(["test-node"]), "{now}");
        drop(ws);
        wait_for("the socket to leave", Duration::from_secs(5), || {
            presence(&admin)["online"] == false
        });
    }
    let after = presence(&token);
    assert!(
        after["last_seen"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{after}"
    );
}

#[test]
fn a_broadcast_reaches_a_thousand_sockets() {
    common::raise_open_files(8192);
    let server = ServerConfig::new().shards(2).start();
    let admin = server.admin_token();
    // 50 players with 20 sockets each.
    let players: Vec<(i64, String)> = (0..50)
        .map(|i| server.player("game1", &format!("rt_bc_{i}")))
        .collect();
    let mut sockets: Vec<Ws> = players
        .iter()
        .flat_map(|(_, token)| {
            (0..20)
                .map(|_| socket(&server, token).0)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(sockets.len(), 1000);
    let (s, j) = server
        .call("POST", "/api/v1/games/game1/broadcast")
        .token(&admin)
        .json(json!({"subject": "maintenance", "body": "in 10 minutes"}))
        .send()
        .parts();
    assert_eq!(s, 200, "{j}");
    assert_eq!(
        j["data"]["delivered"], 50,
        "one message per connected player"
    );
    for ws in &mut sockets {
        let m = texts(ws, 1).remove(0);
        assert_eq!(
            (m["kind"].as_str(), m["data"]["body"].as_str()),
            (Some("message"), Some("in 10 minutes"))
        );
    }
    // Only admins broadcast.
    let r = server
        .call("POST", "/api/v1/games/game1/broadcast")
        .token(&server.server_token("game1"))
        .json(json!({"body": "x"}))
        .lenient()
        .send();
    assert_eq!(r.status, 403, "{}", r.text());
}

#[test]
fn a_reader_too_slow_for_its_notifications_is_closed_with_1008() {
    let server = ServerConfig::new().set("realtime", "max_queued", 4).start();
    let admin = server.admin_token();
    let (p, token) = server.player("game1", "rt_slow");
    let (mut slow, _) = socket(&server, &token);
    // Never read while large messages pile up: once the kernel's buffers
    // are full, the queue fills and the socket is closed.
    let body = "x".repeat(3_900);
    let mut closed = false;
    let mut http = server.http();
    for i in 0..20_000 {
        let r = http
            .call("POST", &format!("/api/v1/players/{p}/notifications"))
            .token(&admin)
            .json(json!({"body": body}))
            .send();
        assert_eq!(r.status, 201);
        if i % 100 == 99 {
            let (s, j) = server
                .call("GET", &format!("/api/v1/players/{p}/presence"))
                .token(&admin)
                .send()
                .parts();
            assert_eq!(s, 200);
            if j["data"]["online"] == false {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "the slow socket was never closed");
    let metrics = server
        .http()
        .request(
            "GET",
            "/metrics",
            &[("Authorization", &format!("Bearer {admin}"))],
            b"",
        )
        .text();
    let closed_slow: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("dm_ws_closed_total{") && l.contains("reason=\"slow\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(
        closed_slow, 1.0,
        "closed for reading too slowly:\n{metrics}"
    );
    // What it reads now ends without a close frame (cut mid-write) or with 1008.
    loop {
        match slow.next() {
            Some(Frame::Close(code, _)) => {
                assert_eq!(code, 1008);
                break;
            }
            Some(_) => continue,
            None => break,
        }
    }
    // The node serves on.
    let (mut ws, _) = socket(&server, &token);
    credit(&server, &admin, p, 1);
    assert_eq!(texts(&mut ws, 1)[0]["kind"], "wallet");
}

#[test]
#[ignore = "needs Redis (DMTEST_BACKEND=mysql)"]
fn notifications_presence_and_revocations_cross_nodes() {
    let p = format!("rt{}-", rand::random::<u32>());
    let a = node(&format!("{p}a"), &redis()).start();
    let b = a.start_peer(&format!("{p}b"));
    let admin = a.admin_token();
    let (player, token) = a.player("game1", &format!("{p}player"));
    let (mut on_b, ready) = socket(&b, &token);
    let start = ready["last_id"].as_i64().expect("last_id");
    // Presence is true on A for a socket on B.
    wait_for("presence on A", Duration::from_secs(5), || {
        let j = a
            .call("GET", &format!("/api/v1/players/{player}/presence"))
            .token(&admin)
            .send()
            .json;
        j["data"]["nodes"] == json!([format!("{p}b")])
    });
    // A change on A reaches the socket on B.
    credit(&a, &admin, player, 7);
    let n = texts(&mut on_b, 1).remove(0);
    assert_eq!(
        (n["kind"].as_str(), n["id"].as_i64()),
        (Some("wallet"), Some(start + 1))
    );
    // The socket moves to A and resumes: the message sent meanwhile
    // through B comes first, then live ones from B.
    drop(on_b);
    message(&b, &admin, player, "while away");
    let (mut on_a, _) = socket(&a, &token);
    on_a.send_text(&json!({"type": "resume", "after": start + 1}).to_string());
    let got = texts(&mut on_a, 2);
    assert_eq!(got[0]["data"]["body"], "while away", "{got:?}");
    assert_eq!(got[1]["type"], "resumed");
    credit(&b, &admin, player, 1);
    assert_eq!(texts(&mut on_a, 1)[0]["id"], start + 3);
    // A broadcast from B reaches the socket on A.
    let (s, j) = b
        .call("POST", "/api/v1/games/game1/broadcast")
        .token(&admin)
        .json(json!({"body": "to all"}))
        .send()
        .parts();
    assert_eq!(s, 200, "{j}");
    assert_eq!(texts(&mut on_a, 1)[0]["data"]["body"], "to all");
    // Maintenance set through the config centre: each node tells its own
    // players, when it begins and when it ends.
    let version = |s: &Server| {
        s.call("GET", "/api/v1/cluster/config")
            .token(&admin)
            .send()
            .json["data"]["version"]
            .as_u64()
            .expect("version")
    };
    let put = |v: u64, body: Value| {
        let (s, j) = b
            .call("PUT", "/api/v1/cluster/config")
            .token(&admin)
            .header("If-Match", &v.to_string())
            .json(body)
            .send()
            .parts();
        assert_eq!(s, 200, "{j}");
    };
    let v = version(&b);
    put(v, json!({"maintenance": {"game1": "back at 10:00"}}));
    let m = texts(&mut on_a, 1).remove(0);
    assert_eq!(
        (m["kind"].as_str(), m["data"]["message"].as_str()),
        (Some("maintenance"), Some("back at 10:00")),
        "{m}"
    );
    assert_eq!(m["data"]["active"], true);
    put(v + 1, json!({}));
    let m = texts(&mut on_a, 1).remove(0);
    assert_eq!(
        (m["kind"].as_str(), m["data"]["active"].as_bool()),
        (Some("maintenance"), Some(false)),
        "{m}"
    );
    // A logout on B closes the sockets of that session on both nodes.
    let (mut second_b, _) = socket(&b, &token);
    let r = b.http().request(
        "POST",
        "/api/v1/auth/logout",
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let started = Instant::now();
    assert_eq!(on_a.until_close().1, 4001);
    assert_eq!(second_b.until_close().1, 4001);
    println!(
        "logout on B closed the socket on A after {:?}",
        started.elapsed()
    );
}

#[test]
fn an_order_the_expiry_job_cancels_is_notified() {
    let server = ServerConfig::new()
        .set("orders", "pending_ttl_s", 1)
        .set("cluster", "job_interval_ms", 100)
        .start();
    let admin = server.admin_token();
    let (p, token) = server.player("game1", "rt_expiry");
    let (mut ws, _) = socket(&server, &token);
    let (s, j) = server
        .call("POST", "/api/v1/orders")
        .token(&admin)
        .json(json!({"player_id": p, "item_id": "potion", "quantity": 1, "currency": "gold"}))
        .send()
        .parts();
    assert_eq!(s, 201, "{j}");
    let order = j["data"]["order"]["order_id"].clone();
    let got = texts(&mut ws, 2);
    assert_eq!(
        got[0]["data"],
        json!({"order_id": order, "status": "pending"})
    );
    assert_eq!(
        got[1]["data"],
        json!({"order_id": order, "status": "cancelled"})
    );
    assert_eq!(got[1]["id"].as_i64(), got[0]["id"].as_i64().map(|i| i + 1));
}

#[test]
fn a_resume_replays_a_bounded_number_and_a_socket_asks_a_bounded_number() {
    let server = ServerConfig::new().start();
    let admin = server.admin_token();
    let (p, token) = server.player("game1", "rt_bounded");
    let mut http = server.http();
    for i in 0..250 {
        let r = http
            .call("POST", &format!("/api/v1/players/{p}/notifications"))
            .token(&admin)
            .json(json!({"body": format!("m{i}")}))
            .send();
        assert_eq!(r.status, 201);
    }
    let (mut ws, ready) = socket(&server, &token);
    assert_eq!(ready["last_id"], 250);
    ws.send_text(&json!({"type": "resume", "after": 0}).to_string());
    let got = texts(&mut ws, 202);
    assert_eq!(
        got[0],
        json!({"type": "missed", "player_id": p, "from": 1, "to": 50})
    );
    let ids: Vec<i64> = got[1..201]
        .iter()
        .map(|m| m["id"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(ids, (51..=250).collect::<Vec<_>>());
    assert_eq!(got[201]["type"], "resumed");
    assert_eq!(
        (got[201]["replayed"].as_i64(), got[201]["missed"].as_i64()),
        (Some(200), Some(50))
    );
    // The older ones are in the inbox.
    let (_, j) = server
        .call(
            "GET",
            &format!("/api/v1/players/{p}/notifications?after=0&limit=1"),
        )
        .token(&token)
        .send()
        .parts();
    assert_eq!(j["data"]["notifications"][0]["data"]["body"], "m0");
    // 30 resumes a minute, then an error the socket survives.
    for _ in 0..29 {
        ws.send_text(&json!({"type": "resume", "after": 250}).to_string());
        assert_eq!(texts(&mut ws, 1)[0]["type"], "resumed");
    }
    ws.send_text(&json!({"type": "resume", "after": 250}).to_string());
    let e = texts(&mut ws, 1).remove(0);
    assert_eq!(e["type"], "error", "{e}");
    ws.send_frame(0x9, b"alive");
    assert_eq!(ws.next(), Some(Frame::Pong(b"alive".to_vec())));
}

#[test]
fn ids_stay_contiguous_through_refusals_and_keep_increasing_across_a_restart() {
    let mut server = ServerConfig::new().shards(2).start();
    let admin = server.admin_token();
    let (p, token) = server.player("game1", "rt_restart");
    let (mut ws, ready) = socket(&server, &token);
    let start = ready["last_id"].as_i64().expect("last_id");
    credit(&server, &admin, p, 5);
    // A refused change rolls back and takes no id.
    let refused = server
        .call("POST", &format!("/api/v1/players/{p}/items/potion/use"))
        .token(&token)
        .json(json!({"quantity": 99}))
        .send();
    assert_eq!(refused.status, 409, "{}", refused.text());
    credit(&server, &admin, p, 6);
    let before = kinds_and_ids(&texts(&mut ws, 2));
    assert_eq!(
        before,
        vec![
            ("wallet".to_string(), start + 1),
            ("wallet".to_string(), start + 2)
        ]
    );
    drop(ws);

    server.restart();
    let (mut ws, ready) = socket(&server, &token);
    let last = ready["last_id"].as_i64().expect("last_id");
    assert!(
        last >= start + 2,
        "ids never go back: {last} after {}",
        start + 2
    );
    credit(&server, &admin, p, 7);
    let (s, j) = message(&server, &admin, p, "after the restart");
    assert_eq!(s, 201, "{j}");
    let after = kinds_and_ids(&texts(&mut ws, 2));
    assert_eq!(
        after,
        vec![
            ("wallet".to_string(), last + 1),
            ("message".to_string(), last + 2)
        ]
    );
    // A client resuming from before the restart gets the stored message
    // once, and what was not stored reported as missed.
    let (mut again, _) = socket(&server, &token);
    again.send_text(&json!({"type": "resume", "after": start + 2}).to_string());
    let mut replayed = Vec::new();
    loop {
        let m = again.json();
        match m["type"].as_str() {
            Some("resumed") => break,
            Some("notification") => replayed.push(m["id"].as_i64().expect("id")),
            Some("missed") => {
                assert!(m["from"].as_i64() > Some(start + 2), "{m}");
                assert!(m["to"].as_i64() < Some(last + 2), "{m}");
            }
            _ => panic!("unexpected {m}"),
        }
    }
    assert_eq!(replayed, vec![last + 2]);
}
