//! The shipped `nginx/datamiddleware.conf` in front of two real nodes that
//! share MariaDB and Redis: the file (its `http` part and its commented
//! `stream` part) is rendered with loopback ports, checked with `nginx -t`,
//! and served; requests must reach both nodes, a write through one must be
//! read through the other, the binary protocol must pass through the stream
//! proxy, and with one node killed every request must still succeed.
//! Needs nginx with its stream module and the servers of
//! `scripts/backends.sh`, so it is ignored unless run as `scripts/test.sh` does.

mod common;

use common::{backend, request_json, unreserved_loopback_addr, Server, TestBackend, SERVER_KEY};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where Debian's package puts the stream module.
const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// An nginx master running a rendered config; stopped on drop.
struct Nginx {
    dir: PathBuf,
    http: SocketAddr,
    tcp: SocketAddr,
}

impl Nginx {
    /// Renders the shipped file for `nodes` (HTTP and TCP addresses), checks
    /// it with `nginx -t` and starts nginx on two free loopback ports.
    fn start(nodes: &[(SocketAddr, SocketAddr)]) -> Nginx {
        let shipped = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("nginx/datamiddleware.conf"),
        )
        .expect("nginx/datamiddleware.conf");
        let (http_part, stream_part) = shipped
            .split_once("# stream {")
            .expect("the shipped file has a commented stream block");
        let stream_part: String = format!("# stream {{{stream_part}")
            .lines()
            .map(|l| l.strip_prefix("# ").or(l.strip_prefix('#')).unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let (http, tcp) = (unreserved_loopback_addr(), unreserved_loopback_addr());
        let http_part = point_at(http_part, nodes.iter().map(|n| n.0), "8080", http);
        let stream_part = point_at(&stream_part, nodes.iter().map(|n| n.1), "9090", tcp);
        let dir =
            std::env::temp_dir().join(format!("dm-nginx-{}-{}", std::process::id(), http.port()));
        std::fs::create_dir_all(&dir).expect("nginx dir");
        let d = dir.display();
        let config = format!(
            "load_module {STREAM_MODULE};\n\
             worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             {http_part}\n}}\n{stream_part}\n"
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, &config).expect("write nginx.conf");
        let nginx = Nginx { dir, http, tcp };
        for args in [vec!["-t"], vec![]] {
            let out = Command::new("nginx")
                .args(&args)
                .arg("-p")
                .arg(&nginx.dir)
                .arg("-c")
                .arg(&conf)
                .output()
                .expect("run nginx (install nginx and libnginx-mod-stream)");
            assert!(
                out.status.success(),
                "nginx {args:?} failed: {}\n{config}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("nginx.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        std::thread::sleep(Duration::from_millis(200));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The shipped block with its `server 127.0.0.1:...` lines replaced by one
/// line per node (same parameters) and its `listen <port>` by `listen`.
fn point_at(
    block: &str,
    nodes: impl Iterator<Item = SocketAddr>,
    port: &str,
    listen: SocketAddr,
) -> String {
    let mut nodes: Vec<SocketAddr> = nodes.collect();
    nodes.reverse();
    let mut out = Vec::new();
    for line in block.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("server 127.0.0.1:") {
            if let Some(node) = nodes.pop() {
                let params = rest.split_once(' ').map(|(_, p)| p).unwrap_or(";");
                out.push(format!("    server {node} {params}"));
            }
        } else if trimmed.starts_with(&format!("listen {port} ")) {
            out.push(line.replacen(&format!("listen {port}"), &format!("listen {listen}"), 1));
        } else {
            out.push(line.to_string());
        }
    }
    assert!(
        nodes.is_empty(),
        "the shipped block lists fewer upstreams than nodes"
    );
    out.join("\n")
}

/// Node ids answering `/health` through nginx, over `n` fresh connections.
fn nodes_seen(nginx: SocketAddr, n: usize) -> HashSet<String> {
    (0..n)
        .map(|_| {
            let (s, j) = request_json(nginx, "GET", "/health", &[], "");
            assert_eq!(s, 200, "{j}");
            j["node_id"].as_str().expect("node_id").to_string()
        })
        .collect()
}

#[test]
#[ignore = "needs nginx and the servers of scripts/backends.sh (DMTEST_BACKEND=mysql)"]
fn two_nodes_behind_the_shipped_nginx_config() {
    assert!(
        matches!(backend(), TestBackend::Mysql { .. }),
        "run with DMTEST_BACKEND=mysql (see scripts/test.sh)"
    );
    let a = Server::start(2);
    let b = a.start_peer("node-b");
    let nginx = Nginx::start(&[(a.http, a.tcp), (b.http, b.tcp)]);

    // Both nodes take traffic.
    let seen = nodes_seen(nginx.http, 20);
    assert_eq!(
        seen,
        HashSet::from(["test-node".to_string(), "node-b".to_string()])
    );

    // A player registered, logged in and renamed through nginx is read back
    // the same through either node.
    let game = [("X-Game-Id", "game1")];
    let creds = r#"{"username":"via_nginx","password":"password1"}"#;
    let (s, j) = request_json(nginx.http, "POST", "/api/v1/players", &game, creds);
    assert_eq!(s, 201, "{j}");
    let (s, j) = request_json(nginx.http, "POST", "/api/v1/auth/login", &game, creds);
    assert_eq!(s, 200, "{j}");
    let id = j["data"]["player"]["id"].as_i64().expect("id");
    let auth = format!("Bearer {}", j["data"]["token"].as_str().expect("token"));
    let path = format!("/api/v1/players/{id}");
    let with_auth = [("Authorization", auth.as_str())];
    let (s, j) = request_json(nginx.http, "GET", &path, &with_auth, "");
    assert_eq!(s, 200, "{j}");
    // The WebSocket upgrade passes through the shipped `location = /ws`.
    let mut ws = common::ws::Ws::open(nginx.http, &with_auth);
    let ready = ws.json();
    assert_eq!(
        (ready["type"].as_str(), ready["player_id"].as_i64()),
        (Some("ready"), Some(id)),
        "{ready}"
    );
    ws.send_frame(0x9, b"via nginx");
    assert_eq!(
        ws.next(),
        Some(common::ws::Frame::Pong(b"via nginx".to_vec()))
    );
    drop(ws);
    let (s, j) = request_json(
        nginx.http,
        "PUT",
        &path,
        &with_auth,
        r#"{"nickname":"renamed"}"#,
    );
    assert_eq!(s, 200, "{j}");
    std::thread::sleep(Duration::from_millis(200));
    for node in [a.http, b.http] {
        let (s, j) = request_json(node, "GET", &path, &with_auth, "");
        assert_eq!(
            (s, j["data"]["player"]["nickname"].as_str()),
            (200, Some("renamed")),
            "{j}"
        );
    }
    for _ in 0..10 {
        let (s, j) = request_json(nginx.http, "GET", &path, &with_auth, "");
        assert_eq!(
            (s, j["data"]["player"]["nickname"].as_str()),
            (200, Some("renamed")),
            "{j}"
        );
    }

    // The binary protocol passes through the stream proxy.
    let mut tcp = common::FrameClient::connect(nginx.tcp);
    let reply = tcp.handshake_server("game1", SERVER_KEY);
    assert_eq!(reply.msg_type, 0x0002, "{:?}", reply.json());
    assert_eq!(tcp.call(0x2002, 7, "game1", "").msg_type, 0x2003);

    // One node gone: every request still succeeds, on the other node.
    drop(b);
    let seen = nodes_seen(nginx.http, 20);
    assert_eq!(seen, HashSet::from(["test-node".to_string()]));
    let mut tcp = common::FrameClient::connect(nginx.tcp);
    assert_eq!(tcp.handshake_server("game1", SERVER_KEY).msg_type, 0x0002);
}
