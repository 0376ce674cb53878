//! The node registry of SPEC §7 against a real Redis: nodes announce
//! themselves, `GET /api/v1/cluster/nodes` lists the live ones, a killed
//! node disappears when its key expires (3 heartbeats), a draining node at
//! once, and a second live process with the same node id is refused at
//! start-up while a restarted one takes its id back.
//!
//! Needs Redis: ignored unless run with `DMTEST_BACKEND=mysql ... --
//! --include-ignored` (scripts/test.sh does).

mod common;

use common::{node, redis, wait_for, Server};
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The ids of the live nodes whose id starts with `prefix`, as `on` lists them.
fn live(on: &Server, admin: &str, prefix: &str) -> Vec<Value> {
    let r = on.http().request(
        "GET",
        "/api/v1/cluster/nodes",
        &[("Authorization", &format!("Bearer {admin}"))],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["data"]["registry"], "redis");
    j["data"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| {
            n["node_id"]
                .as_str()
                .is_some_and(|id| id.starts_with(prefix))
        })
        .cloned()
        .collect()
}

fn ids(nodes: &[Value]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| n["node_id"].as_str().unwrap_or("").to_string())
        .collect()
}

fn prefix() -> String {
    format!("reg{}-", rand::random::<u32>())
}

#[test]
#[ignore = "needs Redis (DMTEST_BACKEND=mysql)"]
fn nodes_announce_themselves_and_a_killed_one_expires() {
    let p = prefix();
    let a = node(&format!("{p}a"), &redis())
        .set("cluster", "heartbeat_ms", 200)
        .start();
    let b = node(&format!("{p}b"), &redis())
        .set("cluster", "heartbeat_ms", 200)
        .start();
    let admin = a.admin_token();
    wait_for(
        "both nodes in the registry",
        Duration::from_secs(10),
        || live(&a, &admin, &p).len() == 2,
    );
    let nodes = live(&a, &admin, &p);
    assert_eq!(ids(&nodes), vec![format!("{p}a"), format!("{p}b")]);
    for (n, s) in nodes.iter().zip([&a, &b]) {
        assert_eq!(n["http"], s.http.to_string());
        assert_eq!(n["tcp"], s.tcp.to_string());
        assert_eq!(n["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(n["shards"], 1);
        assert!(n["started_at"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(n["requests_per_s"].is_number());
        assert!(n["http_connections"].is_u64() && n["tcp_connections"].is_u64());
    }
    // Traffic shows in the figures of the node that serves it, as node A
    // reads them from the registry: latency percentiles over the last
    // heartbeat and the backends node B sees.
    let mut c = b.http();
    let mut seen = None;
    wait_for(
        "node B's latency figures in the registry",
        Duration::from_secs(10),
        || {
            for _ in 0..50 {
                assert_eq!(c.request("GET", "/api/v1/games", &[], b"").status, 200);
            }
            seen = live(&a, &admin, &p)
                .into_iter()
                .find(|n| n["node_id"] == format!("{p}b") && n["p99_ms"].is_number());
            seen.is_some()
        },
    );
    let figures = seen.unwrap_or_default();
    let (p50, p99) = (
        figures["p50_ms"].as_f64().unwrap_or(-1.0),
        figures["p99_ms"].as_f64().unwrap_or(-1.0),
    );
    assert!(p50 > 0.0 && p99 >= p50 && p99 <= 10_000.0, "{figures}");
    let backends = figures["backends"].as_array().cloned().unwrap_or_default();
    let state = |name: &str| {
        backends
            .iter()
            .find(|b| b["name"] == name)
            .map(|b| b["up"].clone())
    };
    assert_eq!(state("redis"), Some(Value::Bool(true)), "{figures}");
    assert_eq!(
        state("database:game1"),
        Some(Value::Bool(true)),
        "{figures}"
    );
    assert!(
        backends.iter().any(|b| b["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("replica:game1:"))
            && b["lag_s"].is_number()),
        "{figures}"
    );
    // SIGKILL: nothing withdraws the key; it expires after 3 heartbeats.
    b.signal(libc::SIGKILL);
    let killed = Instant::now();
    wait_for(
        "the killed node to leave the registry",
        Duration::from_secs(10),
        || live(&a, &admin, &p).len() == 1,
    );
    println!(
        "killed node gone from the registry after {} ms (heartbeat 200 ms, key TTL 600 ms)",
        killed.elapsed().as_millis()
    );
    assert_eq!(ids(&live(&a, &admin, &p)), vec![format!("{p}a")]);
}

#[test]
#[ignore = "needs Redis (DMTEST_BACKEND=mysql)"]
fn a_draining_node_leaves_at_once() {
    let p = prefix();
    // A long heartbeat: the key would live 30 s, so leaving sooner can only
    // be the drain withdrawing it.
    let a = node(&format!("{p}a"), &redis())
        .set("cluster", "heartbeat_ms", 10_000)
        .start();
    let mut b = node(&format!("{p}b"), &redis())
        .set("cluster", "heartbeat_ms", 10_000)
        .start();
    let admin = a.admin_token();
    assert_eq!(live(&a, &admin, &p).len(), 2);
    b.signal(libc::SIGTERM);
    let drained = Instant::now();
    assert_eq!(b.wait_exit(Duration::from_secs(15)), Some(0));
    assert_eq!(ids(&live(&a, &admin, &p)), vec![format!("{p}a")]);
    assert!(
        drained.elapsed() < Duration::from_secs(30),
        "gone before its key could have expired"
    );
}

#[test]
#[ignore = "needs Redis (DMTEST_BACKEND=mysql)"]
fn a_second_live_node_with_the_same_id_is_refused_and_a_restarted_one_is_not() {
    let p = prefix();
    let id = format!("{p}dup");
    let mut a = node(&id, &redis())
        .set("cluster", "heartbeat_ms", 200)
        .start();
    // Same config (same id), other ports: a second live process.
    let text = std::fs::read_to_string(a.dir.join("config.toml")).expect("config");
    let other_http = common::loopback_addr();
    let other_tcp = common::loopback_addr();
    let text = text
        .replace(&a.http.to_string(), &other_http.to_string())
        .replace(&a.tcp.to_string(), &other_tcp.to_string());
    let path = a.dir.join("second.toml");
    std::fs::write(&path, text).expect("write");
    let out = common::server_command()
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("run a second node");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("node id `{id}` is already in use by a live node")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&a.http.to_string()),
        "names the live node: {stderr}"
    );
    // The first node is unaffected.
    assert_eq!(a.http().request("GET", "/health", &[], b"").status, 200);
    // Killed and restarted at once, the same process takes its id back (the
    // dead process's key stops being refreshed and expires).
    a.restart();
    let admin = a.admin_token();
    assert_eq!(ids(&live(&a, &admin, &p)), vec![id]);
}

#[test]
fn a_stand_alone_node_lists_itself() {
    let server = Server::start(2);
    let admin = server.admin_token();
    let r = server.http().request(
        "GET",
        "/api/v1/cluster/nodes",
        &[("Authorization", &format!("Bearer {admin}"))],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert!(j["data"]["registry"]
        .as_str()
        .is_some_and(|s| s.starts_with("none")));
    let nodes = j["data"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["node_id"], "test-node");
    assert_eq!(nodes[0]["shards"], 2);
    assert_eq!(nodes[0]["http"], server.http.to_string());
    // Admins only.
    let (_, player) = server.player("game1", "not_an_admin");
    let r = server.http().request(
        "GET",
        "/api/v1/cluster/nodes",
        &[("Authorization", &format!("Bearer {player}"))],
        b"",
    );
    assert_eq!(r.status, 403);
}

/// Logs a player in on `a`, logs it out there, and returns how long `b`
/// went on accepting the token afterwards.
fn logout_reaches(a: &Server, b: &Server, username: &str) -> Duration {
    let (id, token) = a.player("game1", username);
    let path = format!("/api/v1/players/{id}");
    let auth = format!("Bearer {token}");
    let get = |s: &Server| {
        s.http()
            .request("GET", &path, &[("Authorization", &auth)], b"")
            .status
    };
    assert_eq!(get(b), 200, "the token works on the other node");
    let mut on_b = b.http();
    let r = a.http().request(
        "POST",
        "/api/v1/auth/logout",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200);
    let answered = Instant::now();
    assert_eq!(get(a), 401, "refused on the node that answered the logout");
    let mut refused_after = None;
    while answered.elapsed() < Duration::from_secs(10) {
        let r = on_b.request("GET", &path, &[("Authorization", &auth)], b"");
        if r.status == 401 {
            refused_after = Some(answered.elapsed());
            break;
        }
        assert_eq!(r.status, 200);
    }
    refused_after.expect("the other node refuses the token")
}

#[test]
#[ignore = "needs Redis (DMTEST_BACKEND=mysql)"]
fn revocations_are_pushed_to_every_node_and_fall_back_to_the_database() {
    let p = prefix();
    let a = node(&format!("{p}a"), &redis())
        .set("cluster", "heartbeat_ms", 1000)
        .start();
    let b = a.start_peer(&format!("{p}b"));
    let pushed: Vec<u128> = (0..5)
        .map(|i| logout_reaches(&a, &b, &format!("pushed_logout_{i}")).as_millis())
        .collect();
    println!("5 logouts on node A refused on node B after {pushed:?} ms (pushed through Redis)");
    // The same two nodes with an unreachable cluster Redis: the push fails
    // and the databases' look-back (every 500 ms) carries the revocation.
    let dead = common::loopback_addr();
    let a2 = node(&format!("{p}c"), &format!("redis://{dead}")).start();
    let b2 = a2.start_peer(&format!("{p}d"));
    let fallback: Vec<u128> = (0..5)
        .map(|i| logout_reaches(&a2, &b2, &format!("fallback_logout_{i}")).as_millis())
        .collect();
    println!(
        "with Redis unreachable: refused on node B after {fallback:?} ms (database look-back)"
    );
}
