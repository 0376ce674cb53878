//! The config centre of SPEC §7 against a real Redis: versioned GET/PUT
//! with If-Match, invalid values named, maintenance mode and rate limits
//! applied on every node within about a second, kept across restarts and
//! given to a node started later.
//!
//! One test only: the document is one Redis key shared by whoever uses this
//! Redis, and test binaries run one after another. Needs Redis: ignored
//! unless run with `DMTEST_BACKEND=mysql ... -- --include-ignored`.

mod common;

use common::{frame, node, redis, wait_for, Server, SERVER_KEY};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn put(s: &Server, admin: &str, version: u64, body: Value) -> (u16, Value) {
    let v = version.to_string();
    s.call("PUT", "/api/v1/cluster/config")
        .token(admin)
        .header("If-Match", &v)
        .json(body)
        .send()
        .parts()
}

fn register(s: &Server, name: &str) -> (u16, Value) {
    let r = s.http().request(
        "POST",
        "/api/v1/players",
        &[("X-Game-Id", "game1")],
        json!({"username": name, "password": "password1"})
            .to_string()
            .as_bytes(),
    );
    let status = r.status;
    (status, r.json())
}

#[test]
#[ignore = "needs Redis (DMTEST_BACKEND=mysql)"]
fn settings_are_versioned_validated_and_applied_on_every_node() {
    let redis = redis();
    let p = format!("cc{}-", rand::random::<u32>());
    let a = node(&format!("{p}a"), &redis).shards(2).start();
    let mut b = a.start_peer(&format!("{p}b"));
    let admin = a.admin_token();
    let (s, j) = a
        .call("GET", "/api/v1/cluster/config")
        .token(&admin)
        .send()
        .parts();
    assert_eq!(s, 200, "{j}");
    let v0 = j["data"]["version"].as_u64().expect("version");
    assert_eq!(j["data"]["defaults"]["log_level"], "warn");
    // Versioning and validation.
    let (s, _) = a
        .call("PUT", "/api/v1/cluster/config")
        .token(&admin)
        .body("{}")
        .send()
        .parts();
    assert_eq!(s, 428, "If-Match required");
    for (body, key) in [
        (json!({"rate_limit": 5}), "rate_limit"),
        (
            json!({"rate_limit_per_ip_per_min": 0}),
            "rate_limit_per_ip_per_min",
        ),
        (json!({"log_level": "loud"}), "log_level"),
        (
            json!({"maintenance": {"game9": "down"}}),
            "maintenance.game9",
        ),
    ] {
        let (s, j) = put(&a, &admin, v0, body);
        assert_eq!(s, 400, "{j}");
        assert!(
            j["message"].as_str().is_some_and(|m| m.contains(key)),
            "{j} names {key}"
        );
    }
    let (_, player) = a.player("game2", &format!("{p}player"));
    let (s, _) = a
        .call("PUT", "/api/v1/cluster/config")
        .token(&player)
        .header("If-Match", "0")
        .body("{}")
        .send()
        .parts();
    assert_eq!(s, 403, "admins only");

    // Maintenance of game1, with a message, set on node A.
    let message = "game1 is down for maintenance until 10:00 UTC";
    let (s, j) = put(&a, &admin, v0, json!({"maintenance": {"game1": message}}));
    assert_eq!(s, 200, "{j}");
    let v1 = j["data"]["version"].as_u64().expect("version");
    assert_eq!(v1, v0 + 1);
    let (s, _) = put(&a, &admin, v0, json!({}));
    assert_eq!(s, 412, "a stale version is refused");
    let set = Instant::now();
    wait_for(
        "node B to apply maintenance",
        Duration::from_secs(10),
        || register(&b, &format!("{p}late")).0 == 503,
    );
    println!(
        "maintenance applied on node B {} ms after the PUT on node A",
        set.elapsed().as_millis()
    );
    let (s, j) = register(&b, &format!("{p}late2"));
    assert_eq!((s, j["message"].as_str()), (503, Some(message)));
    // Admins, probes and other games are unaffected.
    assert_eq!(b.http().request("GET", "/health", &[], b"").status, 200);
    let (s, _) = b
        .call("GET", "/api/v1/games/game1/stats")
        .token(&admin)
        .send()
        .parts();
    assert_eq!(s, 200);
    let (s, _) = b
        .call("GET", "/api/v1/items")
        .token(&admin)
        .game("game1")
        .send()
        .parts();
    assert_eq!(s, 200);
    assert_eq!(
        register(&b, &format!("{p}g2")).0,
        503,
        "anonymous requests name game1 by default"
    );
    let r = b.http().request(
        "POST",
        "/api/v1/players",
        &[("X-Game-Id", "game2")],
        json!({"username": format!("{p}in_game2"), "password": "password1"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 201, "game2 is not in maintenance");
    // TCP business frames get 0xE006 with the message; pings still work.
    let mut t = b.tcp();
    assert_eq!(t.handshake_server("game1", SERVER_KEY).msg_type, 0x0002);
    let r = t.call(0x1003, 2, "game1", r#"{"action":"get","player_id":1}"#);
    assert_eq!(r.error_code(), 0xE006);
    assert_eq!(r.json()["message"], message);
    t.send(&frame(0x2002, 0, 3, "game1", "", b""));
    assert_eq!(t.read().expect("pong").msg_type, 0x2003);
    // Kept across a restart, and given to a node started later.
    b.restart();
    wait_for(
        "the restarted node to apply it",
        Duration::from_secs(10),
        || register(&b, &format!("{p}r")).0 == 503,
    );
    let c = a.start_peer(&format!("{p}c"));
    wait_for("a later node to apply it", Duration::from_secs(10), || {
        register(&c, &format!("{p}c")).0 == 503
    });

    // A rate limit for every node: 20 requests a minute per client.
    let (s, j) = put(&a, &admin, v1, json!({"rate_limit_per_ip_per_min": 20}));
    assert_eq!(s, 200, "{j}");
    let v2 = j["data"]["version"].as_u64().expect("version");
    wait_for(
        "node B to take the new limit",
        Duration::from_secs(10),
        || b.http().request("GET", "/api/v1/games", &[], b"").status == 429,
    );
    assert!(
        register(&b, &format!("{p}after")).0 != 503,
        "maintenance lifted"
    );

    // Back to the files' settings, so other tests find a clean document.
    let (s, _) = put(&a, &admin, v2, json!({}));
    assert_eq!(s, 200);
    wait_for("node C to lift the limit", Duration::from_secs(10), || {
        c.http().request("GET", "/api/v1/games", &[], b"").status == 200
    });
}
