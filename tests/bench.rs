//! dm-bench against a real server: a one-second run of each kind of
//! scenario, checking that the counts it reports add up and nothing failed;
//! and a run the server mostly refuses, which must not pass for throughput.

mod common;

use common::{Server, SERVER_KEY};
use serde_json::Value;
use std::process::Command;

fn bench(server: &Server, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_dm-bench"))
        .args([
            "--http",
            &server.http.to_string(),
            "--tcp",
            &server.tcp.to_string(),
        ])
        .args([
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--json",
            "--server-key",
            SERVER_KEY,
            "--players",
            "4",
        ])
        .args(args)
        .output()
        .expect("run dm-bench");
    assert!(
        out.status.success(),
        "dm-bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn check(j: &Value, scenario: &str) {
    assert_eq!(j["scenario"], scenario);
    let requests = j["requests"].as_u64().expect("requests");
    let ok = j["ok"].as_u64().expect("ok");
    let errors: u64 = j["errors"]
        .as_object()
        .expect("errors")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert!(requests > 0, "{j}");
    assert_eq!(requests, ok + errors, "{j}");
    assert_eq!(errors, 0, "{j}");
    let qps = j["qps"].as_f64().expect("qps");
    assert!((qps - requests as f64 / j["duration_s"].as_f64().expect("duration")).abs() < 1e-6);
    let lat = &j["latency_ms"];
    let p50 = lat["p50"].as_f64().expect("p50");
    assert!(
        p50 > 0.0
            && p50 <= lat["p99"].as_f64().expect("p99")
            && lat["p99"].as_f64() <= lat["max"].as_f64(),
        "{j}"
    );
}

#[test]
fn one_second_runs_report_consistent_counts() {
    let server = Server::start(2);
    check(
        &bench(&server, &["--scenario", "health", "-c", "8"]),
        "health",
    );
    check(
        &bench(
            &server,
            &["--scenario", "ping", "-c", "4", "--pipeline", "16"],
        ),
        "ping",
    );
    check(
        &bench(&server, &["--scenario", "player", "-c", "8"]),
        "player",
    );
    check(
        &bench(&server, &["--scenario", "tcp-player", "-c", "8"]),
        "tcp-player",
    );
    check(
        &bench(&server, &["--scenario", "mixed", "-c", "8"]),
        "mixed",
    );
    // Open loop keeps close to the asked rate.
    let j = bench(
        &server,
        &["--scenario", "health", "-c", "4", "--rate", "2000"],
    );
    check(&j, "health");
    let qps = j["qps"].as_f64().expect("qps");
    // The schedule, not the server's speed, sets how many requests go out.
    assert!(
        (1000.0..=2600.0).contains(&qps),
        "open loop at 2000/s sent {qps}/s"
    );
    assert_eq!(j["rate"], 2000.0);
}

#[test]
fn bad_arguments_and_unreachable_servers_fail_clearly() {
    let out = Command::new(env!("CARGO_BIN_EXE_dm-bench"))
        .args(["-c", "0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("connections"));
    // Numbers that cannot become durations are refused, not a panic.
    for (flag, value) in [
        ("--duration", "NaN"),
        ("--duration", "1e30"),
        ("--warmup", "-0.5"),
        ("--answer-timeout", "0"),
        ("--rate", "inf"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_dm-bench"))
            .arg(format!("{flag}={value}"))
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flag}={value}: {stderr}");
        assert!(stderr.contains("must be"), "{flag}={value}: {stderr}");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("addr");
    let out = Command::new(env!("CARGO_BIN_EXE_dm-bench"))
        .args([
            "--scenario",
            "player",
            "--http",
            &port.to_string(),
            "--duration",
            "1",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("connect"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_server_that_never_answers_ends_the_run_with_timeouts() {
    // Accepts and holds connections, never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_dm-bench"))
        .args([
            "--http",
            &addr.to_string(),
            "--scenario",
            "health",
            "-c",
            "4",
        ])
        .args(["--duration", "1", "--warmup", "0", "--answer-timeout", "1"])
        .arg("--json")
        .output()
        .expect("run dm-bench");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "dm-bench must end by itself"
    );
    let j: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(j["ok"], 0, "{j}");
    assert_eq!(j["errors"]["timeout"], 4, "one per connection: {j}");
}

#[test]
fn refused_requests_are_not_throughput_and_fail_the_run() {
    // 60 requests a minute per address: nearly every request of a
    // one-second run at full speed gets 429.
    let server = Server::start_with(1, &[("auth", "rate_limit_per_ip_per_min = 60")]);
    let out = Command::new(env!("CARGO_BIN_EXE_dm-bench"))
        .args(["--http", &server.http.to_string(), "--scenario", "health"])
        .args(["--duration", "1", "--warmup", "0", "--json", "-c", "4"])
        .output()
        .expect("run dm-bench");
    // /health is not rate limited: this run is clean.
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_dm-bench"))
        .args(["--http", &server.http.to_string(), "--scenario", "player"])
        .args(["--duration", "1", "--warmup", "0", "--json", "-c", "4"])
        .args(["--server-key", SERVER_KEY, "--players", "1"])
        .output()
        .expect("run dm-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("requests failed"), "{stderr}");
    assert!(stderr.contains("http_429"), "{stderr}");
    assert!(
        stderr.contains("DM_AUTH_RATE_LIMIT_PER_IP_PER_MIN"),
        "{stderr}"
    );
    let j: Value = serde_json::from_slice(&out.stdout).expect("the report is printed all the same");
    let (ok, requests) = (
        j["ok"].as_u64().unwrap_or(0),
        j["requests"].as_u64().unwrap_or(0),
    );
    assert!(requests > 10 * ok.max(1), "{j}");
    let qps = j["qps"].as_f64().expect("qps");
    assert!(
        (qps - ok as f64 / j["duration_s"].as_f64().expect("duration")).abs() < 1e-6,
        "{j}"
    );
    assert!(j["error_ratio"].as_f64().unwrap_or(0.0) > 0.5, "{j}");
}

#[test]
#[ignore = "needs MariaDB (DMTEST_BACKEND=mysql)"]
fn sql_direct_runs_mixed_transactions_against_the_servers_database() {
    let common::TestBackend::Mysql { primary, .. } = common::backend() else {
        panic!("needs DMTEST_BACKEND=mysql");
    };
    let server = Server::start(1);
    let url = format!("{primary}/{}", server.databases[0]);
    let j = bench(
        &server,
        &["--scenario", "sql-direct", "-c", "4", "--mysql", &url],
    );
    assert_eq!(j["scenario"], "sql-direct");
    let ok = j["ok"].as_u64().expect("ok");
    assert!(ok > 0, "{j}");
    assert_eq!(j["errors"], serde_json::json!({}), "{j}");
    // Its orders are in the database, created and paid as mixed would.
    let r = server.http().request(
        "GET",
        "/api/v1/players/1/orders",
        &[(
            "Authorization",
            &format!("Bearer {}", server.server_token("game1")),
        )],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let orders = r.json()["data"]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        orders.iter().any(|o| o["status"] == "paid"),
        "no paid order after {ok} requests: {}",
        r.text()
    );
    // Without --mysql it says what it needs.
    let out = Command::new(env!("CARGO_BIN_EXE_dm-bench"))
        .args([
            "--scenario",
            "sql-direct",
            "--http",
            &server.http.to_string(),
        ])
        .output()
        .expect("run dm-bench");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mysql"));
}

#[test]
fn zipf_players_and_the_servers_cache_hit_ratio_of_the_run() {
    let server = Server::start(2);
    let j = bench(
        &server,
        &["--scenario", "player", "-c", "4", "--zipf", "1.0"],
    );
    check(&j, "player");
    // The window's lookups are the run's reads (each one L1 lookup), and a
    // repeated read of a cached player is an L1 hit.
    let cache = &j["cache"];
    let lookups = cache["l1_lookups"].as_f64().expect("l1_lookups");
    assert!(lookups >= j["ok"].as_f64().unwrap_or(0.0) * 0.9, "{j}");
    let ratio = cache["l1_hit_ratio"].as_f64().expect("l1_hit_ratio");
    assert!(ratio > 0.5 && ratio <= 1.0, "{j}");
    // A bad exponent is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_dm-bench"))
        .args(["--http", &server.http.to_string(), "--zipf", "-1"])
        .output()
        .expect("run dm-bench");
    assert!(!out.status.success());
}
