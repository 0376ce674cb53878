//! Singleton jobs under a Redis lease with a fencing token (SPEC §7), on
//! nodes sharing MariaDB and Redis: pending orders expire (cancelled, reason
//! `expired`) exactly once; one node runs a job at a time; a killed holder
//! is replaced within its lease; a holder paused past its lease cannot write
//! once its successor has (the database refuses its stale token).
//!
//! Needs MariaDB and Redis: ignored unless run with `DMTEST_BACKEND=mysql
//! ... -- --include-ignored`.

mod common;

use common::{column_i64, node, redis, rows, wait_for, Server, ServerConfig};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// `config` with this file's timings: job leases of 1 s, jobs every
/// 100 ms, orders pending for 1 s.
fn job_timings(config: ServerConfig) -> ServerConfig {
    config
        .set("cluster", "job_lease_ms", 1000)
        .set("cluster", "job_interval_ms", 100)
        .set("orders", "pending_ttl_s", 1)
}

fn order(server: &Server, gs: &str, player: i64, key: &str) -> String {
    let r = server.http().request(
        "POST",
        "/api/v1/orders",
        &[
            ("Authorization", &format!("Bearer {gs}")),
            ("Idempotency-Key", key),
        ],
        json!({"player_id": player, "item_id": "potion", "quantity": 1, "currency": "gold"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["data"]["order"]["order_id"]
        .as_str()
        .expect("id")
        .to_string()
}

fn get_order(server: &Server, gs: &str, id: &str) -> Value {
    let r = server.http().request(
        "GET",
        &format!("/api/v1/orders/{id}"),
        &[("Authorization", &format!("Bearer {gs}"))],
        b"",
    );
    r.json()["data"]["order"].clone()
}

/// Holders of `job` by token, from the runs recorded in the database:
/// every token must have exactly one holder, and tokens grow with time.
fn check_one_holder_per_token(server: &Server, job: &str) -> Vec<(i64, String)> {
    let runs = rows(
        server,
        &format!("SELECT token, holder, started_at FROM job_runs WHERE job = '{job}' ORDER BY started_at, token"),
    );
    let mut seen: Vec<(i64, String)> = Vec::new();
    for r in &runs {
        let token = column_i64(&r[0]).expect("token");
        match seen.iter().find(|(t, _)| *t == token) {
            Some((_, holder)) => assert_eq!(holder, &r[1], "token {token} has one holder"),
            None => {
                if let Some((last, _)) = seen.last() {
                    assert!(token > *last, "tokens grow with time: {runs:?}");
                }
                seen.push((token, r[1].as_str().expect("holder").to_string()));
            }
        }
    }
    seen
}

#[test]
#[ignore = "needs MariaDB and Redis (DMTEST_BACKEND=mysql)"]
fn jobs_run_on_one_node_at_a_time_and_a_killed_holder_is_replaced() {
    let p = format!("job{}-", rand::random::<u32>());
    let a = job_timings(node(&format!("{p}a"), &redis())).start();
    let b = a.start_peer(&format!("{p}b"));
    let c = a.start_peer(&format!("{p}c"));
    let gs = a.server_token("game1");
    let (player, _) = a.player("game1", &format!("{p}buyer"));
    let orders: Vec<String> = (0..5)
        .map(|i| order(&b, &gs, player, &format!("k{i}")))
        .collect();
    // Pending orders older than 1 s are cancelled with reason `expired`.
    wait_for("the orders to expire", Duration::from_secs(15), || {
        orders
            .iter()
            .all(|o| get_order(&a, &gs, o)["status"] == "cancelled")
    });
    for o in &orders {
        let j = get_order(&c, &gs, o);
        assert_eq!(
            (j["status"].as_str(), j["cancel_reason"].as_str()),
            (Some("cancelled"), Some("expired"))
        );
    }
    // Exactly once: one run changed them (5 rows), none changed them again.
    let changed = rows(
        &a,
        "SELECT SUM(affected) FROM job_runs WHERE job = 'expire-orders'",
    );
    assert_eq!(
        column_i64(&changed[0][0]),
        Some(5),
        "each order expired once"
    );
    let holders = check_one_holder_per_token(&a, "expire-orders");
    let (token, holder) = holders.last().cloned().expect("a holder");
    // Kill whichever node holds the job: another takes it within the lease.
    let victim = ["a", "b", "c"]
        .iter()
        .position(|n| holder.starts_with(&format!("{p}{n}/")))
        .expect("the holder is one of the nodes");
    let killed = Instant::now();
    match victim {
        0 => a.signal(libc::SIGKILL),
        1 => b.signal(libc::SIGKILL),
        _ => c.signal(libc::SIGKILL),
    }
    // Rows come from the shared database; `a` names it even when killed.
    wait_for(
        "another node to take the job",
        Duration::from_secs(15),
        || {
            let h = check_one_holder_per_token(&a, "expire-orders");
            h.last().is_some_and(|(t, _)| *t > token)
        },
    );
    println!(
        "holder {holder} killed; job taken over after {} ms (lease 1000 ms)",
        killed.elapsed().as_millis()
    );
    let (_, new_holder) = check_one_holder_per_token(&a, "expire-orders")
        .last()
        .cloned()
        .expect("holder");
    assert_ne!(new_holder, holder);
}

#[test]
#[ignore = "needs MariaDB and Redis (DMTEST_BACKEND=mysql)"]
fn a_holder_paused_past_its_lease_cannot_write_after_its_successor() {
    let p = format!("pause{}-", rand::random::<u32>());
    // Node A pauses 3 s between taking a lease and writing: the window a GC
    // pause or SIGSTOP would catch a holder in.
    let a = job_timings(node(&format!("{p}a"), &redis()))
        .set("cluster", "job_write_delay_ms", 3000)
        .start();
    let lock_key = "dm:lock:{expire-orders}";
    // A's job runs take each job's lease in turn and wait 3 s before each
    // write: it holds this job's 1 s lease once per round of every job
    // (four of them, 12 s), so the wait covers a whole round and more.
    wait_for("node A to take the lease", Duration::from_secs(20), || {
        common::redis_get(&redis(), lock_key).is_some_and(|v| v.starts_with(&format!("{p}a/")))
    });
    let stale: i64 = common::redis_get(&redis(), lock_key)
        .and_then(|v| v.rsplit('|').next().and_then(|t| t.parse().ok()))
        .expect("token");
    a.signal(libc::SIGSTOP);
    // Node B (no pause) takes over once A's lease lapses, and writes.
    let text = std::fs::read_to_string(a.dir.join("config.toml"))
        .expect("config")
        .replace("job_write_delay_ms = 3000", "");
    std::fs::write(a.dir.join("config.toml"), text).expect("write");
    let b = a.start_peer(&format!("{p}b"));
    wait_for(
        "node B to write under a newer token",
        Duration::from_secs(15),
        || {
            let f = rows(
                &a,
                "SELECT token, holder FROM job_fences WHERE job = 'expire-orders'",
            );
            f.first().is_some_and(|r| {
                r[1].as_str().unwrap_or("").starts_with(&format!("{p}b/"))
                    && column_i64(&r[0]).unwrap_or(0) > stale
            })
        },
    );
    a.signal(libc::SIGCONT);
    // A wakes up, writes with its stale token, and is refused.
    a.wait_for_log("fencing token stale");
    // (Rows are read from the shared database; `a` only names it.)
    let by_a = rows(
        &a,
        &format!(
            "SELECT COUNT(*) FROM job_runs WHERE job = 'expire-orders' AND holder LIKE '{p}a/%'"
        ),
    );
    assert_eq!(
        column_i64(&by_a[0][0]),
        Some(0),
        "the paused holder wrote nothing"
    );
    check_one_holder_per_token(&a, "expire-orders");
    drop(b);
}

#[test]
#[ignore = "needs MariaDB and Redis (DMTEST_BACKEND=mysql)"]
fn jobs_resume_when_redis_lost_the_token_counter_and_on_a_stand_alone_node() {
    if redis().starts_with("redis+cluster://") {
        // It empties a Redis database of its own; a cluster has only one,
        // shared with the rest of the suite. Covered on single Redis.
        eprintln!("skipped on a Redis Cluster: needs a database of its own to empty");
        return;
    }
    // Its own Redis database, emptied: the lease and counter keys are not
    // shared with the other tests of this file, nor left from a former run.
    let own_redis = format!(
        "{}5",
        redis().trim_end_matches(|c: char| c.is_ascii_digit())
    );
    let flushed = std::process::Command::new("redis-cli")
        .args(["-u", &own_redis, "flushdb"])
        .output()
        .expect("run redis-cli");
    assert!(flushed.status.success(), "{flushed:?}");
    let a = job_timings(node("fence-a", &own_redis)).start();
    let fence = |s: &Server| -> i64 {
        rows(
            s,
            "SELECT token FROM job_fences WHERE job = 'expire-orders'",
        )
        .first()
        .and_then(|r| column_i64(&r[0]))
        .unwrap_or(0)
    };
    wait_for("the first fenced run", Duration::from_secs(10), || {
        fence(&a) > 0
    });
    // The database has seen far newer tokens than Redis hands out now: what
    // a cluster sees after its Redis restarted without persistence.
    rows(
        &a,
        "UPDATE job_fences SET token = 1000000 WHERE job = 'expire-orders'",
    );
    let gs = a.server_token("game1");
    let (player, _) = a.player("game1", "fence_p1");
    let first = order(&a, &gs, player, "fence-1");
    wait_for(
        "the order to expire after the counter was lost",
        Duration::from_secs(15),
        || get_order(&a, &gs, &first)["status"] == "cancelled",
    );
    assert_eq!(get_order(&a, &gs, &first)["cancel_reason"], "expired");
    a.wait_for_log("fencing token stale");
    assert!(
        fence(&a) > 1_000_000,
        "the counter was raised past the database's token"
    );

    // The same database under a stand-alone node (no cluster.redis): while
    // the cluster's holder ran the job within the last minute, it leaves the
    // job alone (a node started without cluster.redis by mistake must not
    // run it beside the holder); once the cluster is gone, it runs it,
    // whatever tokens the cluster left behind.
    let mut a = a;
    a.signal(libc::SIGTERM);
    assert!(
        a.wait_exit(Duration::from_secs(20)).is_some(),
        "node a did not stop"
    );
    let b = a.start_peer_edited("fence-b", |text| {
        text.replace(&format!("\"{own_redis}\""), "\"\"")
    });
    let second = order(&b, &gs, player, "fence-2");
    // Its jobs run every 100 ms and the order is due after 1 s: 3 s is
    // thirty chances to run it.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(get_order(&b, &gs, &second)["status"], "pending");
    rows(&a, "UPDATE job_fences SET updated_at = updated_at - 120000");
    wait_for(
        "the order to expire on a stand-alone node",
        Duration::from_secs(15),
        || get_order(&b, &gs, &second)["status"] == "cancelled",
    );
    assert_eq!(get_order(&b, &gs, &second)["cancel_reason"], "expired");
}
