//! `scripts/cluster.sh` as an operator runs it: a cluster of real nodes
//! (this build's binary) sharing MariaDB and Redis, behind nginx rendered
//! from the shipped `nginx/datamiddleware.conf`.
//!
//! - A rolling restart of 3 nodes under load through nginx fails no HTTP
//!   request (reads and wallet writes), TCP clients see only the documented
//!   Error 0xE006 "server shutting down" and reconnect, and every
//!   acknowledged write is in the database afterwards.
//! - With `DMC_TLS=1`, the shipped TLS lines serve HTTPS and TLS-wrapped
//!   frames (self-signed certificate, checked by the clients).
//!
//! Needs nginx with its stream module, openssl, curl and the servers of
//! `scripts/backends.sh`: ignored unless run as `scripts/test.sh` does
//! (`DMTEST_BACKEND=mysql ... -- --include-ignored`).

mod common;

use common::{backend, frame, mysql_admin, request_json, TestBackend};
use datamiddleware::protocol::{decode, Decoded};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A cluster started by the script in its own directory, ports, Redis
/// database and MariaDB database; stopped (and its database dropped) on drop.
struct Cluster {
    dir: PathBuf,
    env: Vec<(String, String)>,
    database: String,
    /// What `scripts/cluster.sh env` printed.
    vars: HashMap<String, String>,
}

impl Cluster {
    /// `slot`: this test's own range of ports and Redis database.
    fn start(name: &str, slot: u16, nodes: usize, tls: bool) -> Cluster {
        let redis_db = 2 + slot;
        assert!(
            matches!(backend(), TestBackend::Mysql { .. }),
            "needs DMTEST_BACKEND=mysql (scripts/backends.sh)"
        );
        let (http, tcp) = free_port_bases(slot, nodes);
        let dir = std::env::temp_dir().join(format!("dmc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let database = format!("dmc_{name}_{}", std::process::id());
        let env = vec![
            ("DMC_DIR".to_string(), dir.display().to_string()),
            ("DMC_HTTP_PORT".to_string(), http.to_string()),
            ("DMC_TCP_PORT".to_string(), tcp.to_string()),
            ("DMC_REDIS_DB".to_string(), redis_db.to_string()),
            ("DMC_DATABASE".to_string(), database.clone()),
            ("DMC_SHARDS".to_string(), "1".to_string()),
            (
                "DMC_TLS".to_string(),
                if tls { "1" } else { "0" }.to_string(),
            ),
            (
                "DMC_BIN".to_string(),
                env!("CARGO_BIN_EXE_datamiddleware").to_string(),
            ),
        ];
        let mut cluster = Cluster {
            dir,
            env,
            database,
            vars: HashMap::new(),
        };
        // The registry of this Redis database starts empty.
        let _ = Command::new("redis-cli")
            .args(["-p", "16379", "-n", &redis_db.to_string(), "flushdb"])
            .output();
        cluster.script(&["start", &nodes.to_string()]);
        let printed = cluster.script(&["env"]);
        cluster.vars = printed
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        cluster
    }

    /// Runs `scripts/cluster.sh args...`; its stdout, or a panic with its output.
    fn script(&self, args: &[&str]) -> String {
        let out = common::clean_command("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/cluster.sh");
        assert!(
            out.status.success(),
            "cluster.sh {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn var(&self, name: &str) -> String {
        self.vars
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("cluster.sh env printed no {name}: {:?}", self.vars))
    }

    fn addr(&self, name: &str) -> SocketAddr {
        self.var(name)
            .parse()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = common::clean_command("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh"))
            .arg("stop")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output();
        mysql_admin(&format!("DROP DATABASE IF EXISTS {}", self.database));
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Two port bases with `nodes` free ports after each (and +443 for TLS),
/// searched from a start of this test's own (`slot`): the tests of this
/// file run at once, and a port found free is only bound later, by nginx
/// and the nodes.
fn free_port_bases(slot: u16, nodes: usize) -> (u16, u16) {
    let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
    let mut found = Vec::new();
    // Below 32768, where the kernel's ephemeral ports begin.
    let mut base = 10_000 + slot * 10_000 + (std::process::id() % 800) as u16 * 10;
    while found.len() < 2 {
        let ports = (0..=nodes as u16).chain([443]);
        if ports.into_iter().all(|i| free(base + i)) {
            found.push(base);
            base += 1_000;
        } else {
            base += 7;
        }
        assert!(base < 30_000, "no free loopback ports");
    }
    (found[0], found[1])
}

/// dm-bench (this build) with the cluster's addresses and server key.
fn bench(cluster: &Cluster, scenario: &str, connections: usize, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dm-bench"));
    c.args([
        "--scenario",
        scenario,
        "--json",
        "--players",
        "10",
        "--warmup",
        "0",
    ])
    .args([
        "--http",
        &cluster.var("DMC_HTTP"),
        "--tcp",
        &cluster.var("DMC_TCP"),
    ])
    .args(["--server-key", &cluster.var("DMC_SERVER_KEY")])
    .args(["-c", &connections.to_string(), "--threads", "1"])
    .args(extra)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

/// A dm-bench run in the background; killed if the test ends without
/// [`BenchRun::finish`].
struct BenchRun {
    child: Child,
    what: &'static str,
    stderr: Option<std::thread::JoinHandle<String>>,
    started: std::sync::mpsc::Receiver<()>,
}

impl BenchRun {
    fn spawn(mut command: Command, what: &'static str) -> BenchRun {
        let mut child = command.spawn().expect("run dm-bench");
        let err = child.stderr.take().expect("stderr");
        let (tx, started) = std::sync::mpsc::channel();
        let stderr = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut all = String::new();
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains("load starts") {
                    let _ = tx.send(());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        BenchRun {
            child,
            what,
            stderr: Some(stderr),
            started,
        }
    }

    /// Waits until its players are seeded and the load is on.
    fn wait_started(&self) {
        if self.started.recv_timeout(Duration::from_secs(120)).is_err() {
            panic!("dm-bench {} did not start its load", self.what);
        }
    }

    /// Ends the run (SIGINT) and returns its JSON report.
    fn finish(mut self) -> Value {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let mut out = String::new();
        if let Some(mut s) = self.child.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        let status = self.child.wait().expect("wait for dm-bench");
        let err = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        assert!(
            status.success(),
            "dm-bench {} failed: {err}{out}",
            self.what
        );
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("dm-bench {}: {e}: {out}", self.what))
    }
}

impl Drop for BenchRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ids of the seeded players `bench_0..n` (they log in through nginx).
fn bench_player_ids(cluster: &Cluster, n: usize) -> Vec<i64> {
    (0..n)
        .map(|i| {
            let body = format!(r#"{{"username":"bench_{i}","password":"bench-password-1"}}"#);
            let (status, j) = request_json(
                cluster.addr("DMC_HTTP"),
                "POST",
                "/api/v1/auth/login",
                &[("X-Game-Id", "game1")],
                &body,
            );
            assert_eq!(status, 200, "login bench_{i}: {j}");
            j["data"]["player"]["id"].as_i64().expect("player id")
        })
        .collect()
}

/// The players' gold together, read through nginx.
fn total_gold(cluster: &Cluster, token: &str, ids: &[i64]) -> i64 {
    let auth = format!("Bearer {token}");
    ids.iter()
        .map(|id| {
            let (status, j) = request_json(
                cluster.addr("DMC_HTTP"),
                "GET",
                &format!("/api/v1/players/{id}"),
                &[("Authorization", &auth), ("X-Game-Id", "game1")],
                "",
            );
            assert_eq!(status, 200, "player {id}: {j}");
            j["data"]["player"]["gold"].as_i64().expect("gold")
        })
        .sum()
}

fn server_token(cluster: &Cluster) -> String {
    let body = serde_json::json!({"game_id": "game1", "server_key": cluster.var("DMC_SERVER_KEY")});
    let (status, j) = request_json(
        cluster.addr("DMC_HTTP"),
        "POST",
        "/api/v1/auth/server",
        &[],
        &body.to_string(),
    );
    assert_eq!(status, 200, "{j}");
    j["data"]["token"].as_str().expect("token").to_string()
}

/// The live nodes' (id, instance) from the registry, through nginx as an admin.
fn registry(cluster: &Cluster) -> Vec<(String, String)> {
    nodes(cluster)
        .iter()
        .map(|n| {
            (
                n["node_id"].as_str().unwrap_or("").to_string(),
                n["instance"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The open TCP connections of all live nodes, as the registry has them.
fn tcp_connections(cluster: &Cluster) -> u64 {
    nodes(cluster)
        .iter()
        .filter_map(|n| n["tcp_connections"].as_u64())
        .sum()
}

/// The registry's live nodes, sorted by id.
fn nodes(cluster: &Cluster) -> Vec<Value> {
    let body = serde_json::json!({
        "username": cluster.var("DMC_ADMIN_USER"),
        "password": cluster.var("DMC_ADMIN_PASSWORD"),
    });
    let nginx = cluster.addr("DMC_HTTP");
    let (status, j) = request_json(nginx, "POST", "/api/v1/auth/admin", &[], &body.to_string());
    assert_eq!(status, 200, "admin login: {j}");
    let auth = format!(
        "Bearer {}",
        j["data"]["token"].as_str().expect("admin token")
    );
    let (status, j) = request_json(
        nginx,
        "GET",
        "/api/v1/cluster/nodes",
        &[("Authorization", &auth)],
        "",
    );
    assert_eq!(status, 200, "{j}");
    let mut nodes = j["data"]["nodes"].as_array().expect("nodes").clone();
    nodes.sort_by(|a, b| a["node_id"].as_str().cmp(&b["node_id"].as_str()));
    nodes
}

#[test]
#[ignore = "needs nginx, MariaDB and Redis (scripts/test.sh runs it)"]
fn rolling_restart_of_three_nodes_fails_no_request_and_loses_no_write() {
    let cluster = Cluster::start("rolling", 0, 3, false);
    let before_restart = registry(&cluster);
    assert_eq!(
        before_restart
            .iter()
            .map(|n| n.0.as_str())
            .collect::<Vec<_>>(),
        ["dmc-1", "dmc-2", "dmc-3"]
    );
    // Seed the players once (each later run finds them).
    let seeded = bench(&cluster, "player", 2, &["--duration", "0.5"])
        .output()
        .expect("seed with dm-bench");
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let token = server_token(&cluster);
    let ids = bench_player_ids(&cluster, 10);
    let gold_before = total_gold(&cluster, &token, &ids);

    let long = ["--duration", "600", "--reconnect"];
    let reads = BenchRun::spawn(bench(&cluster, "player", 8, &long), "player");
    let frames = BenchRun::spawn(bench(&cluster, "tcp-player", 4, &long), "tcp-player");
    let writes = BenchRun::spawn(bench(&cluster, "wallet", 2, &long), "wallet");
    // Each run logs its 10 players in before it loads.
    for run in [&reads, &frames, &writes] {
        run.wait_started();
    }
    // The TCP clients sit on a node (one the restart will drain) before
    // the restart begins; the registry counts them within a heartbeat.
    common::wait_for(
        "4 TCP clients on the nodes",
        Duration::from_secs(10),
        || tcp_connections(&cluster) >= 4,
    );
    let t0 = Instant::now();
    cluster.script(&["restart-rolling"]);
    let took = t0.elapsed();
    let reads = reads.finish();
    let frames = frames.finish();
    let writes = writes.finish();
    println!("rolling restart of 3 nodes took {took:?}");
    println!("HTTP GET through nginx: {reads}");
    println!("TCP PlayerData through nginx: {frames}");
    println!("HTTP wallet writes through nginx: {writes}");

    // Every node was restarted: new instances under the same ids.
    let after = registry(&cluster);
    assert_eq!(after.len(), 3, "{after:?}");
    for (old, new) in before_restart.iter().zip(&after) {
        assert_eq!(old.0, new.0);
        assert_ne!(old.1, new.1, "node {} was not restarted", old.0);
    }
    // The loads ran across the whole restart.
    for (what, r) in [
        ("player", &reads),
        ("tcp-player", &frames),
        ("wallet", &writes),
    ] {
        let ran = r["duration_s"].as_f64().unwrap_or(0.0);
        assert!(
            ran >= took.as_secs_f64(),
            "{what} measured {ran} s only: {r}"
        );
        assert!(r["ok"].as_u64().unwrap_or(0) > 0, "{what} did nothing: {r}");
    }
    // No failed HTTP read (nginx retries idempotent requests on the next
    // node). A write is not retried by nginx once sent: one that met a
    // closing connection may fail (502), but none may be lost once answered.
    assert_eq!(reads["errors"], serde_json::json!({}), "{reads}");
    // TCP: no error answer, and the only reason to reconnect was the drain's
    // documented Error 0xE006 (every TCP client of nginx goes to one node by
    // its address hash, so the drains must have reached it).
    assert_eq!(frames["errors"], serde_json::json!({}), "{frames}");
    let reconnects = frames["reconnects"].as_object().expect("reconnects");
    assert!(
        reconnects.keys().all(|k| k == "tcp_0xe006"),
        "TCP connections ended otherwise than by 0xE006: {frames}"
    );
    assert!(
        reconnects
            .get("tcp_0xe006")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            >= 4,
        "the TCP clients were never drained: {frames}"
    );
    // Every acknowledged +1 is in the database; beyond them, at most the
    // writes that failed (applied, but their answer lost). Reads may come
    // from the replica or a cache for up to a second: wait for them.
    let acknowledged = writes["ok"].as_i64().unwrap_or(-1);
    let failed: i64 = writes["errors"]
        .as_object()
        .map_or(0, |e| e.values().filter_map(Value::as_i64).sum());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut credited = total_gold(&cluster, &token, &ids) - gold_before;
    while credited < acknowledged && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        credited = total_gold(&cluster, &token, &ids) - gold_before;
    }
    println!(
        "wallet writes: {acknowledged} acknowledged, {failed} failed; credited in the database {credited}"
    );
    assert!(
        credited >= acknowledged && credited <= acknowledged + failed,
        "{credited} credited for {acknowledged} acknowledged and {failed} failed writes: {writes}"
    );

    // `kill` is a crash: status shows the node dead, nginx routes around
    // it, the registry drops it within 3 heartbeats; `start` brings it back.
    cluster.script(&["kill", "3"]);
    let status = cluster.script(&["status"]);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("dmc-3 ") && l.contains(" dead ")),
        "{status}"
    );
    // It also says what the config centre holds (kept in Redis across runs).
    assert!(status.contains("config centre"), "{status}");
    let (code, _) = request_json(cluster.addr("DMC_HTTP"), "GET", "/health", &[], "");
    assert_eq!(code, 200);
    common::wait_for(
        "the killed node to leave the registry",
        Duration::from_secs(10),
        || registry(&cluster).len() == 2,
    );
    cluster.script(&["start", "3"]);
    assert_eq!(registry(&cluster).len(), 3);
}

/// Reads one frame from `r`.
fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> (u16, Value) {
    loop {
        if let Decoded::Frame { frame, len } = decode(buf, 1 << 20) {
            let out = (
                frame.msg_type,
                serde_json::from_slice(frame.body).unwrap_or(Value::Null),
            );
            buf.drain(..len);
            return out;
        }
        let mut chunk = [0u8; 4096];
        let n = r.read(&mut chunk).expect("read from openssl s_client");
        assert!(n > 0, "TLS stream ended before a whole frame: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
#[ignore = "needs nginx, openssl, curl, MariaDB and Redis (scripts/test.sh runs it)"]
fn nginx_terminates_tls_for_http_and_frames() {
    let cluster = Cluster::start("tls", 1, 1, true);
    let ca = cluster.var("DMC_TLS_CA");
    let https = cluster.var("DMC_HTTPS");
    // HTTPS, the certificate checked against the generated CA.
    let out = Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            &ca,
            "-w",
            "\n%{http_code} %{ssl_verify_result}",
        ])
        .arg(format!("https://{https}/health"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.ends_with("\n200 0"), "{text}");
    assert!(text.contains(r#""node_id":"dmc-1""#), "{text}");
    // An authenticated API call over HTTPS.
    let body = serde_json::json!({"game_id": "game1", "server_key": cluster.var("DMC_SERVER_KEY")});
    let out = Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            &ca,
            "-X",
            "POST",
            "-d",
            &body.to_string(),
        ])
        .arg(format!("https://{https}/api/v1/auth/server"))
        .output()
        .expect("run curl");
    let j: Value = serde_json::from_slice(&out.stdout).expect("JSON over HTTPS");
    assert_eq!(j["data"]["role"], "game_server", "{j}");
    // Plain HTTP to the TLS port is refused by nginx, not passed on.
    let (status, _) = request_json(https.parse().expect("addr"), "GET", "/health", &[], "");
    assert_eq!(status, 400);

    // Frames wrapped in TLS: openssl s_client verifies the certificate and
    // carries the bytes both ways.
    let mut client = Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_return_error", "-CAfile", &ca])
        .args(["-connect", &cluster.var("DMC_TLS_TCP")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl s_client");
    let mut to = client.stdin.take().expect("stdin");
    let mut from = client.stdout.take().expect("stdout");
    let key = cluster.var("DMC_SERVER_KEY");
    let handshake = format!(r#"{{"server_key":"{key}"}}"#);
    to.write_all(&frame(
        0x0002,
        0x04,
        1,
        "game1",
        "gs-tls",
        handshake.as_bytes(),
    ))
    .expect("send handshake");
    to.write_all(&frame(0x2002, 0x04, 2, "game1", "gs-tls", b""))
        .expect("send ping");
    to.flush().expect("flush");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let a = read_frame(&mut from, &mut buf);
        let b = read_frame(&mut from, &mut buf);
        (a, b)
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = client.kill();
    let _ = client.wait();
    assert!(
        reader.is_finished(),
        "no frames came back through TLS within 20 s"
    );
    let ((t1, b1), (t2, _)) = reader.join().expect("reader");
    assert_eq!(
        t1, 0x0002,
        "the Handshake's answer expected, got {t1:#x}: {b1}"
    );
    assert_eq!(b1["code"], 200, "{b1}");
    assert_eq!(b1["data"]["role"], "game_server", "{b1}");
    assert_eq!(t2, 0x2003, "Pong expected, got {t2:#x}");
}
