//! DataMiddleware on a real Redis Cluster (3 masters + 3 replicas from
//! `scripts/backends.sh cluster-start`, named by a `redis+cluster://` URL):
//! the L2 cache, cross-node invalidation, the node registry and revocations
//! work across its masters, and when a master is killed under load its
//! replica takes over while the node keeps answering from the database, no
//! acknowledged write is lost, and no stale value outlives
//! `cache.invalidation_max_ms` once the link is back.
//!
//! Needs MariaDB (DMTEST_BACKEND=mysql) and DMTEST_REDIS_CLUSTER;
//! scripts/test.sh starts both and sets DMTEST_REQUIRE_REDIS_CLUSTER=1.

mod common;

use common::{backend, node, wait_for, Server, TestBackend};
use datamiddleware::redis::cluster::slot;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The failover test kills a master: the tests of this file take turns so
/// that the other one does not run through the failover.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The cluster's URL, or `None` (skip) when the suite does not run one.
fn cluster_url() -> Option<String> {
    let url = std::env::var("DMTEST_REDIS_CLUSTER")
        .ok()
        .filter(|u| !u.is_empty());
    let required = std::env::var("DMTEST_REQUIRE_REDIS_CLUSTER").is_ok_and(|v| v == "1");
    if url.is_none() && required {
        panic!("DMTEST_REQUIRE_REDIS_CLUSTER=1 but DMTEST_REDIS_CLUSTER is not set");
    }
    if url.is_none() || !matches!(backend(), TestBackend::Mysql { .. }) {
        eprintln!("skipped: needs DMTEST_BACKEND=mysql and DMTEST_REDIS_CLUSTER");
        return None;
    }
    url
}

/// A two-shard node whose cache and cluster state live in the Redis
/// Cluster at `url`.
fn cluster_node(url: &str, id: &str) -> Server {
    node(id, url)
        .shards(2)
        .set("cache", "redis", url)
        .set("cache", "invalidation_max_ms", 100)
        .set("cluster", "heartbeat_ms", 200)
        .start()
}

fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The port of the master that serves `key` now, asked of any live node.
fn master_of(key: &str) -> Option<u16> {
    let slot = slot(key.as_bytes());
    for port in 17001..=17006 {
        let nodes = redis_cli(&["-p", &port.to_string(), "cluster", "nodes"]);
        for line in nodes.lines() {
            let parts: Vec<&str> = line.split(' ').collect();
            if parts.len() < 9 || !parts[2].contains("master") || parts[2].contains("fail") {
                continue;
            }
            let serves = parts[8..].iter().any(|r| {
                let (a, b) = r.split_once('-').unwrap_or((r, r));
                matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if a <= slot && slot <= b)
            });
            if serves {
                let addr = parts[1].split('@').next().unwrap_or("");
                return addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok());
            }
        }
        if !nodes.is_empty() {
            return None;
        }
    }
    None
}

fn backends(args: &[&str]) {
    let status = common::clean_command("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/backends.sh"))
        .args(args)
        .status()
        .expect("run backends.sh");
    assert!(status.success(), "backends.sh {args:?}");
}

/// Starts a killed node again and waits until it has rejoined as a replica,
/// so the next test finds three masters that serve slots and nothing in
/// flux.
fn restart(port: u16) {
    backends(&["cluster-restart", &port.to_string()]);
    wait_for(
        "the restarted node to rejoin as a replica",
        Duration::from_secs(30),
        || {
            redis_cli(&["-p", &port.to_string(), "role"]).starts_with("slave")
                && redis_cli(&["-p", &port.to_string(), "cluster", "info"])
                    .contains("cluster_state:ok")
                // Synced with its master: it can take over if the next test
                // kills that master.
                && redis_cli(&["-p", &port.to_string(), "info", "replication"])
                    .contains("master_link_status:up")
        },
    );
}

fn gold(server: &Server, auth: &str, id: i64) -> Option<i64> {
    let r = server
        .http()
        .try_request(
            "GET",
            &format!("/api/v1/players/{id}"),
            &[("Authorization", auth)],
            b"",
        )
        .ok()?;
    (r.status == 200)
        .then(|| r.json()["data"]["player"]["gold"].as_i64())
        .flatten()
}

#[test]
#[ignore = "needs MariaDB and a Redis Cluster (scripts/test.sh)"]
fn two_nodes_share_cache_invalidation_and_registry_through_a_redis_cluster() {
    let Some(url) = cluster_url() else { return };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tag = rand::random::<u32>();
    let a = cluster_node(&url, &format!("rc{tag}-a"));
    let b = a.start_peer(&format!("rc{tag}-b"));
    let (id, _) = a.player("game1", &format!("rc{tag}"));
    let gs = format!("Bearer {}", a.server_token("game1"));
    // B caches the profile; A changes it; B sees the change (invalidation
    // published through the cluster).
    let before = gold(&b, &gs, id).expect("read on B");
    let wallet = format!("/api/v1/players/{id}/wallet");
    let r = a.http().request(
        "POST",
        &wallet,
        &[("Authorization", &gs)],
        br#"{"currency":"gold","delta":7,"reason":"cluster"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let written = Instant::now();
    wait_for(
        "node B to see node A's write",
        Duration::from_secs(2),
        || gold(&b, &gs, id) == Some(before + 7),
    );
    println!("B saw A's write after {} ms", written.elapsed().as_millis());
    // The profile sits in L2 (namespace `cache:`) on the master of its slot
    // (redis-cli -c follows MOVED).
    let key = format!("cache:game1:p:{id}");
    let port = master_of(&key).expect("a master for the key");
    let stored = redis_cli(&["-c", "-p", &port.to_string(), "exists", &key]);
    assert!(stored.trim() == "1" || stored.trim() == "0", "{stored}");
    // The registry lists both nodes, whichever masters their keys are on.
    let admin = format!("Bearer {}", a.admin_token());
    wait_for("both nodes in the registry", Duration::from_secs(5), || {
        let r = a.http().request(
            "GET",
            "/api/v1/cluster/nodes",
            &[("Authorization", &admin)],
            b"",
        );
        let nodes = r.json()["data"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ours = nodes
            .iter()
            .filter(|n| {
                n["node_id"]
                    .as_str()
                    .is_some_and(|i| i.starts_with(&format!("rc{tag}-")))
            })
            .count();
        ours == 2
            && nodes.iter().any(|n| {
                n["backends"]
                    .as_array()
                    .is_some_and(|bs| bs.iter().any(|b| b["name"] == "redis" && b["up"] == true))
            })
    });
    // A logout on A is refused on B (pushed through the cluster's pub/sub).
    let (_, token) = a.player("game1", &format!("rc{tag}x"));
    let bearer = format!("Bearer {token}");
    assert_eq!(
        a.http()
            .request(
                "POST",
                "/api/v1/auth/logout",
                &[("Authorization", &bearer)],
                b""
            )
            .status,
        200
    );
    wait_for("the logout to reach node B", Duration::from_secs(3), || {
        b.http()
            .request("GET", "/api/v1/items", &[("Authorization", &bearer)], b"")
            .status
            == 401
    });
}

#[test]
#[ignore = "needs MariaDB and a Redis Cluster (scripts/test.sh)"]
fn a_master_killed_under_load_fails_over_without_losing_a_write_or_serving_stale() {
    let Some(url) = cluster_url() else { return };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tag = rand::random::<u32>();
    let a = cluster_node(&url, &format!("rf{tag}-a"));
    let b = a.start_peer(&format!("rf{tag}-b"));
    let (id, _) = a.player("game1", &format!("rf{tag}"));
    let gs = format!("Bearer {}", a.server_token("game1"));
    let start_gold = gold(&a, &gs, id).expect("read");
    // The master of the profile's L2 entry.
    let key = format!("cache:game1:p:{id}");
    let victim = master_of(&key).expect("the profile's master");

    // Load: wallet credits on A (counted when acknowledged) and reads on B.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let failed_writes = Arc::new(AtomicU64::new(0));
    let read_failures = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let t0 = Instant::now();
    let writer = {
        let (stop, acked, failed, addr, gs) = (
            stop.clone(),
            acked.clone(),
            failed_writes.clone(),
            a.http,
            gs.clone(),
        );
        std::thread::spawn(move || {
            let mut c = common::HttpClient::connect(addr).expect("connect");
            let body = br#"{"currency":"gold","delta":1,"reason":"failover"}"#;
            let path = format!("/api/v1/players/{id}/wallet");
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match c.try_request("POST", &path, &[("Authorization", &gs)], body) {
                    Ok(r) if r.status == 200 => acked.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let reader = {
        let (stop, failures, addr, gs) = (stop.clone(), read_failures.clone(), b.http, gs.clone());
        std::thread::spawn(move || {
            let mut c = common::HttpClient::connect(addr).expect("connect");
            let path = format!("/api/v1/players/{id}");
            for _ in 0..50_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let ok = c
                    .try_request("GET", &path, &[("Authorization", &gs)], b"")
                    .is_ok_and(|r| r.status == 200);
                if !ok {
                    failures.lock().map(|mut f| f.push(t0.elapsed())).ok();
                    c = common::HttpClient::connect(addr).expect("reconnect");
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    backends(&["cluster-kill", &victim.to_string()]);
    let killed = Instant::now();
    // The replica takes over the slots.
    wait_for(
        "a replica to take over the killed master's slots",
        Duration::from_secs(20),
        || master_of(&key).is_some_and(|p| p != victim),
    );
    let promoted = killed.elapsed();
    // Node A's link to Redis is back once it reports Redis up again.
    wait_for("node A to use Redis again", Duration::from_secs(20), || {
        let text = a.http().request("GET", "/metrics", &[], b"").text();
        text.lines()
            .filter(|l| l.starts_with("dm_backend_up{") && l.contains("backend=\"redis\""))
            .all(|l| l.ends_with(" 1"))
            && text.contains("backend=\"redis\"")
    });
    let relinked = killed.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    let _ = reader.join();
    restart(victim);

    // Nothing acknowledged was lost: the balance is the start plus every
    // acknowledged credit (a write that failed may or may not have landed,
    // so it is allowed on top).
    let acked = acked.load(Ordering::Relaxed) as i64;
    let failed = failed_writes.load(Ordering::Relaxed) as i64;
    let admin = format!("Bearer {}", a.admin_token());
    let now = gold(&a, &admin, id).expect("final read (admin: from the database)");
    // No copy from before the outage survives it: the writes whose
    // tombstones and messages Redis could not take while the master was
    // down were sent again once it answered, so node B's cached read (its L1,
    // then L2 on the promoted replica) agrees with the database.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        gold(&b, &gs, id),
        Some(now),
        "node B's cached read after the failover"
    );
    assert!(
        now >= start_gold + acked && now <= start_gold + acked + failed,
        "balance {now}, start {start_gold}, {acked} acknowledged, {failed} failed"
    );
    assert!(acked > 100, "the load ran: {acked} writes acknowledged");
    let reads_failed = read_failures.lock().map(|f| f.clone()).unwrap_or_default();
    println!(
        "master :{victim} killed; replica promoted after {} ms; node back on Redis after {} ms; \
         {acked} writes acknowledged, {failed} failed; {} reads failed {:?}",
        promoted.as_millis(),
        relinked.as_millis(),
        reads_failed.len(),
        reads_failed
    );
    assert!(
        reads_failed.is_empty(),
        "reads kept being answered (from the database)"
    );

    // Once back on Redis, no stale value outlives invalidation_max_ms: a
    // write on A is seen on B within it (plus the time to ask).
    for round in 0..5 {
        let before = gold(&b, &gs, id).expect("read on B");
        let r = a.http().request(
            "POST",
            &format!("/api/v1/players/{id}/wallet"),
            &[("Authorization", &gs)],
            br#"{"currency":"gold","delta":1,"reason":"after"}"#,
        );
        assert_eq!(r.status, 200);
        let written = Instant::now();
        std::thread::sleep(Duration::from_millis(100));
        let seen = gold(&b, &gs, id);
        assert_eq!(
            seen,
            Some(before + 1),
            "round {round}: node B still served the old balance {} ms after the write",
            written.elapsed().as_millis()
        );
    }
}

/// `ASK` while a slot migrates and `MOVED` once it has moved, on a real
/// cluster: the slot of a player's inventory key is moved from its master to
/// another one by hand (`CLUSTER SETSLOT ... IMPORTING / MIGRATING / NODE`),
/// and the node's reads and writes follow it.
#[test]
#[ignore = "needs MariaDB and a Redis Cluster (scripts/test.sh)"]
fn reads_and_writes_follow_ask_and_moved_while_a_slot_migrates() {
    let Some(url) = cluster_url() else { return };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tag = rand::random::<u32>();
    let a = cluster_node(&url, &format!("rm{tag}-a"));
    let (id, _) = a.player("game1", &format!("rm{tag}"));
    let gs = format!("Bearer {}", a.server_token("game1"));
    // The inventory's L2 entry (namespace `cache:`).
    let key = format!("cache:game1:inv:{id}");
    let slot = slot(key.as_bytes()).to_string();
    let from = master_of(&key).expect("the key's master");
    // Another master that serves slots now (a node just restarted may call
    // itself master for a moment before it learns it is a replica).
    let to = (0..1000)
        .filter_map(|i| master_of(&format!("other-{i}")))
        .find(|p| *p != from)
        .expect("another master");
    let id_of = |port: u16| {
        redis_cli(&["-p", &port.to_string(), "cluster", "myid"])
            .trim()
            .to_string()
    };
    let (from_id, to_id) = (id_of(from), id_of(to));
    let (from_p, to_p) = (from.to_string(), to.to_string());
    let ok = |out: String| assert_eq!(out.trim(), "OK", "{out}");
    ok(redis_cli(&[
        "-p",
        &to_p,
        "cluster",
        "setslot",
        &slot,
        "importing",
        &from_id,
    ]));
    ok(redis_cli(&[
        "-p",
        &from_p,
        "cluster",
        "setslot",
        &slot,
        "migrating",
        &to_id,
    ]));

    // The inventory was never cached: its master answers ASK (the key is
    // not there), and the node reads and fills it on the importing master.
    let inventory = format!("/api/v1/players/{id}/items");
    let r = a
        .http()
        .request("GET", &inventory, &[("Authorization", &gs)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let asked = common::clean_command("bash")
        .arg("-c")
        .arg(format!(
            "printf 'ASKING\\nEXISTS {key}\\n' | redis-cli -p {to}"
        ))
        .output()
        .expect("redis-cli");
    let asked = String::from_utf8_lossy(&asked.stdout).into_owned();
    assert!(
        asked.lines().nth(1) == Some("1"),
        "the fill landed on the importing master: {asked:?}"
    );

    // The slot now belongs to the other master: MOVED, and the node follows.
    ok(redis_cli(&[
        "-p", &to_p, "cluster", "setslot", &slot, "node", &to_id,
    ]));
    ok(redis_cli(&[
        "-p", &from_p, "cluster", "setslot", &slot, "node", &to_id,
    ]));
    let grant = format!("/api/v1/players/{id}/items/potion/grant");
    let r = a.http().request(
        "POST",
        &grant,
        &[("Authorization", &gs)],
        br#"{"quantity":3}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = a
        .http()
        .request("GET", &inventory, &[("Authorization", &gs)], b"");
    let items = r.json()["data"]["items"].clone();
    assert!(
        items.as_array().is_some_and(|i| i
            .iter()
            .any(|e| e["item_id"] == "potion" && e["quantity"] == 3)),
        "the read after the move sees the grant: {items}"
    );
    assert_eq!(
        master_of(&key),
        Some(to),
        "the cluster agrees the slot moved"
    );
    // The node's Redis link stayed up through both redirections.
    let text = a.http().request("GET", "/metrics", &[], b"").text();
    assert!(
        text.lines()
            .filter(|l| l.starts_with("dm_backend_up{") && l.contains("backend=\"redis\""))
            .all(|l| l.ends_with(" 1")),
        "{text}"
    );
}

/// A URL naming one node of the cluster is enough, even after that node
/// dies: the invalidation subscriber learns the other nodes from the
/// cluster and moves to one of them, and commands follow the slot map.
#[test]
#[ignore = "needs MariaDB and a Redis Cluster (scripts/test.sh)"]
fn a_one_seed_url_outlives_its_seed() {
    let Some(_) = cluster_url() else { return };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tag = rand::random::<u32>();
    let seed = master_of("any-key").expect("a master");
    let a = cluster_node(
        &format!("redis+cluster://127.0.0.1:{seed}"),
        &format!("ro{tag}-a"),
    );
    let admin = format!("Bearer {}", a.admin_token());
    let bus = || {
        let r = a.http().request(
            "GET",
            "/api/v1/cache/stats",
            &[("Authorization", &admin)],
            b"",
        );
        r.json()["data"]["shards"]
            .as_array()
            .map(|s| {
                s.iter()
                    .map(|s| s["invalidation_bus"].as_str().unwrap_or("").to_string())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    wait_for("the invalidation bus up", Duration::from_secs(10), || {
        bus().iter().all(|s| s == "up")
    });
    backends(&["cluster-kill", &seed.to_string()]);
    let killed = Instant::now();
    wait_for(
        "a replica to take over the seed's slots",
        Duration::from_secs(30),
        || master_of("any-key").is_some_and(|p| p != seed),
    );
    // A subscriber that knew only the dead seed would stay down for good.
    wait_for(
        "the bus up on another node",
        Duration::from_secs(10),
        || bus().iter().all(|s| s == "up"),
    );
    println!(
        "its only seed killed; slots taken over and the bus up on another node after {} ms",
        killed.elapsed().as_millis()
    );
    // Commands work too: a player registered and read through L2.
    let (id, token) = a.player("game1", &format!("ro{tag}"));
    let r = a.http().request(
        "GET",
        &format!("/api/v1/players/{id}"),
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    restart(seed);
}
