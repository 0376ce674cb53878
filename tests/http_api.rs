//! The HTTP front end over real sockets: keep-alive, pipelining, every limit
//! and error status of SPEC §3, slow clients, and the register/login/read path.

mod common;

use common::{HttpClient, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[test]
fn keep_alive_serves_1000_requests_on_one_connection() {
    let server = Server::start(2);
    let mut c = server.http();
    let mut shard = None;
    for _ in 0..1000 {
        let r = c.request("GET", "/health", &[], b"");
        assert_eq!(r.status, 200);
        let j = r.json();
        assert_eq!(j["status"], "ok");
        // One connection stays on one shard.
        let s = j["shard"].as_u64().expect("shard");
        assert_eq!(*shard.get_or_insert(s), s);
    }
}

#[test]
fn health_reports_identity() {
    let server = Server::start(1);
    let j = server.http().request("GET", "/health", &[], b"").json();
    assert_eq!(j["node_id"], "test-node");
    assert_eq!(j["version"], env!("CARGO_PKG_VERSION"));
    assert!(j["uptime_s"].is_u64());
    assert!(j["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    let r = server.http().request("GET", "/ready", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["checks"]["database:game1"], "ok");
    // The node-only readiness (Kubernetes) names no backend; a scope it
    // does not know is refused.
    let r = server.http().request("GET", "/ready?scope=node", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["checks"]["node"], "ok");
    assert!(r.json()["data"]["checks"]["database:game1"].is_null());
    let r = server
        .http()
        .request("GET", "/ready?scope=everything", &[], b"");
    assert_eq!(r.status, 400);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start(2);
    let mut c = server.http();
    let mut batch = Vec::new();
    for i in 0..50 {
        let path = if i % 2 == 0 { "/health" } else { "/nope" };
        batch.extend_from_slice(&HttpClient::format("GET", path, &[], b""));
    }
    c.send_raw(&batch);
    for i in 0..50 {
        let r = c.read_response().expect("response");
        assert_eq!(r.status, if i % 2 == 0 { 200 } else { 404 }, "response {i}");
    }
}

#[test]
fn error_statuses() {
    let server = Server::start_with(1, &[("http", "max_body_bytes = 1000")]);
    // 404 unknown path, keep-alive continues.
    let mut c = server.http();
    let r = c.request("GET", "/no/such/path", &[], b"");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], 404);
    // 405 with Allow.
    let r = c.request("DELETE", "/health", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET"));
    let r = c.request("GET", "/api/v1/auth/login", &[], b"");
    assert_eq!((r.status, r.header("Allow")), (405, Some("POST")));
    // 400 bad JSON; the connection stays usable.
    let r = c.request("POST", "/api/v1/players", &[], b"{\"username\":");
    assert_eq!(r.status, 400);
    assert!(r.json()["message"]
        .as_str()
        .is_some_and(|m| m.contains("JSON")));
    let r = c.request("POST", "/api/v1/players", &[], b"");
    assert_eq!(r.status, 400);
    assert_eq!(c.request("GET", "/health", &[], b"").status, 200);
    // 401 without a token, with a malformed one.
    assert_eq!(c.request("GET", "/api/v1/players/1", &[], b"").status, 401);
    let r = c.request(
        "GET",
        "/api/v1/players/1",
        &[("Authorization", "Bearer abc.def.ghi")],
        b"",
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["code"], 401);
    // 413 body too large: answered, then closed.
    let mut c = server.http();
    let big = vec![b'a'; 2000];
    let r = c.request("POST", "/api/v1/players", &[], &big);
    assert_eq!(r.status, 413);
    assert!(c.is_closed(Duration::from_secs(3)));
    // 411 chunked body.
    let mut c = server.http();
    c.send_raw(b"POST /api/v1/players HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    let r = c.read_response().expect("411");
    assert_eq!(r.status, 411);
    assert!(c.is_closed(Duration::from_secs(3)));
    // 431 headers too large.
    let mut c = server.http();
    let huge = "x".repeat(20 * 1024);
    let r = c.request("GET", "/health", &[("X-Huge", &huge)], b"");
    assert_eq!(r.status, 431);
    // 400 garbage request line.
    let mut c = server.http();
    c.send_raw(b"\x01\x02\x03 nonsense\r\n\r\n");
    assert_eq!(c.read_response().expect("400").status, 400);
    // Unknown game.
    let r = server.http().request(
        "POST",
        "/api/v1/players",
        &[("X-Game-Id", "nope")],
        br#"{"username":"abc","password":"password1"}"#,
    );
    assert_eq!(r.status, 404);
}

#[test]
fn slowloris_is_cut_off_while_others_are_served() {
    let server = Server::start_with(1, &[("http", "read_timeout_ms = 1500")]);
    let mut slow = TcpStream::connect(server.http).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let started = Instant::now();
    let addr = server.http;
    let fast = std::thread::spawn(move || {
        let mut c = HttpClient::connect(addr).expect("connect");
        let mut served = 0;
        while started.elapsed() < Duration::from_millis(2500) {
            assert_eq!(c.request("GET", "/health", &[], b"").status, 200);
            served += 1;
        }
        served
    });
    // The slow client trickles one header byte every 100 ms from a thread,
    // while this thread waits for the server's answer.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writer = slow.try_clone().expect("clone");
    let stop = done.clone();
    let trickle = std::thread::spawn(move || {
        let mut bytes = b"GET /health HTTP/1.1\r\nHost: slow\r\nX-Slow: ".to_vec();
        bytes.extend(std::iter::repeat_n(b'a', 100));
        for b in bytes {
            if stop.load(std::sync::atomic::Ordering::Relaxed) || writer.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let mut rest = Vec::new();
    let mut chunk = [0u8; 1024];
    while let Ok(n) = slow.read(&mut chunk) {
        if n == 0 {
            break;
        }
        rest.extend_from_slice(&chunk[..n]);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    trickle.join().expect("trickle");
    let text = String::from_utf8_lossy(&rest);
    assert!(text.starts_with("HTTP/1.1 408"), "slow client got {text:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "slow client was not cut off in time"
    );
    let served = fast.join().expect("fast client");
    assert!(served > 10, "other clients kept being served ({served})");
}

#[test]
fn idle_keep_alive_connection_is_closed_after_the_read_timeout() {
    let server = Server::start_with(1, &[("http", "read_timeout_ms = 1500")]);
    let mut c = server.http();
    assert_eq!(c.request("GET", "/health", &[], b"").status, 200);
    assert!(c.is_closed(Duration::from_secs(5)));
}

#[test]
fn expect_continue_and_connection_close() {
    let server = Server::start(1);
    let mut c = server.http();
    c.send_raw(b"POST /api/v1/players HTTP/1.1\r\nHost: t\r\nContent-Length: 45\r\nExpect: 100-continue\r\n\r\n");
    let mut head = [0u8; 25];
    c.stream.read_exact(&mut head).expect("100 continue");
    assert_eq!(&head, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.send_raw(br#"{"username":"cont_user","password":"password1"}"#[..45].as_ref());
    // 45 bytes cut the JSON short on purpose: a 400, not a hang.
    assert_eq!(c.read_response().expect("response").status, 400);
    let mut c = server.http();
    let r = c.request("GET", "/health", &[("Connection", "close")], b"");
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.is_closed(Duration::from_secs(3)));
}

#[test]
fn register_login_and_read_a_player() {
    let server = Server::start(2);
    let mut c = server.http();
    let body = br#"{"username":"http_bob","password":"password1","email":"bob@example.com"}"#;
    let r = c.request("POST", "/api/v1/players/register", &[], body);
    assert_eq!(r.status, 201, "{}", r.text());
    let p = &r.json()["data"]["player"];
    assert_eq!(p["level"], 1);
    assert_eq!(p["gold"], 1000);
    assert_eq!(p["diamonds"], 100);
    assert_eq!(p["nickname"], "http_bob");
    assert_eq!(p["status"], "active");
    assert!(r.json()["data"]["player"].get("password_hash").is_none());
    // Username taken.
    let r = c.request("POST", "/api/v1/players", &[], body);
    assert_eq!((r.status, r.json()["code"].as_u64()), (409, Some(1002)));
    // Validation.
    let r = c.request(
        "POST",
        "/api/v1/players",
        &[],
        br#"{"username":"x","password":"password1"}"#,
    );
    assert_eq!(r.status, 400);
    // Wrong password and unknown user give the same answer.
    let wrong = c.request(
        "POST",
        "/api/v1/auth/login",
        &[],
        br#"{"username":"http_bob","password":"wrong-pass"}"#,
    );
    let unknown = c.request(
        "POST",
        "/api/v1/players/login",
        &[],
        br#"{"username":"nobody_here","password":"wrong-pass"}"#,
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.json()["code"], 1003);
    // Login and read.
    let r = c.request(
        "POST",
        "/api/v1/auth/login",
        &[],
        br#"{"username":"http_bob","password":"password1"}"#,
    );
    assert_eq!(r.status, 200);
    let j = r.json();
    let token = j["data"]["token"].as_str().expect("token").to_string();
    let id = j["data"]["player"]["id"].as_i64().expect("id");
    assert!(j["data"]["refresh_token"].is_string());
    let auth = format!("Bearer {token}");
    let r = c.request(
        "GET",
        &format!("/api/v1/players/{id}"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["player"]["email"], "bob@example.com");
    // Another player's data: 403. A token of game1 with X-Game-Id game2: 403.
    let (other, _) = server.player("game1", "http_carol");
    let r = c.request(
        "GET",
        &format!("/api/v1/players/{other}"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 403);
    let r = c.request(
        "GET",
        &format!("/api/v1/players/{id}"),
        &[("Authorization", &auth), ("X-Game-Id", "game2")],
        b"",
    );
    assert_eq!(r.status, 403);
    // Bad id.
    let r = c.request(
        "GET",
        "/api/v1/players/abc",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 400);
}

#[test]
fn games_are_isolated() {
    let server = Server::start(1);
    let (id1, _) = server.player("game1", "same_name");
    // The same username is free in game2: a separate database.
    let (id2, token2) = server.player("game2", "same_name");
    assert_eq!(id1, id2, "both databases start their ids at 1");
    let j = server
        .http()
        .request(
            "GET",
            &format!("/api/v1/players/{id2}"),
            &[("Authorization", &format!("Bearer {token2}"))],
            b"",
        )
        .json();
    assert_eq!(j["data"]["player"]["username"], "same_name");
    if matches!(common::backend(), common::TestBackend::Sqlite) {
        assert!(server.dir.join("game1.db").exists() && server.dir.join("game2.db").exists());
    }
}

#[test]
fn cors_preflight_follows_the_config() {
    let server = Server::start_with(1, &[("http", "cors_origins = [\"https://shop.example\"]")]);
    let mut c = server.http();
    let r = c.request(
        "OPTIONS",
        "/api/v1/players",
        &[
            ("Origin", "https://shop.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("https://shop.example")
    );
    let r = c.request(
        "OPTIONS",
        "/api/v1/players",
        &[("Origin", "https://evil.example")],
        b"",
    );
    assert_eq!(r.status, 403);
    let r = c.request("GET", "/health", &[("Origin", "https://shop.example")], b"");
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("https://shop.example")
    );
}

#[test]
fn metrics_expose_requests_latency_connections_and_cache() {
    let server = Server::start(2);
    let mut clients: Vec<HttpClient> = (0..8).map(|_| server.http()).collect();
    for c in clients.iter_mut() {
        assert_eq!(c.request("GET", "/health", &[], b"").status, 200);
        assert_eq!(c.request("GET", "/nope", &[], b"").status, 404);
    }
    let mut t = server.tcp();
    assert_eq!(t.call(0x2002, 1, "game1", "").msg_type, 0x2003);
    let r = server.http().request("GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r
        .header("Content-Type")
        .is_some_and(|v| v.starts_with("text/plain")));
    let text = r.text();
    let health: f64 = text
        .lines()
        .filter(|l| {
            l.starts_with("dm_requests_total{")
                && l.contains("route=\"/health\"")
                && l.contains("status=\"200\"")
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum();
    assert!(health >= 8.0, "{text}");
    assert!(text.contains("route=\"unmatched\",status=\"404\""));
    assert!(text.contains("protocol=\"tcp\",route=\"ping\",status=\"200\""));
    // Latency is a histogram by protocol and route: its +Inf buckets, summed
    // over the shards, count every /health answered, as `_count` does.
    assert_eq!(
        text.matches("# TYPE dm_request_latency_seconds histogram")
            .count(),
        1
    );
    let summed = |prefix: &str, also: &str| -> f64 {
        text.lines()
            .filter(|l| {
                l.starts_with(prefix) && l.contains("route=\"/health\"") && l.contains(also)
            })
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    };
    let inf = summed("dm_request_latency_seconds_bucket{", "le=\"+Inf\"");
    assert_eq!(
        inf,
        summed("dm_request_latency_seconds_count{", ""),
        "{text}"
    );
    assert!(inf >= 8.0, "{text}");
    assert!(
        summed("dm_request_latency_seconds_sum{", "") > 0.0,
        "{text}"
    );
    assert!(
        summed("dm_request_latency_seconds_bucket{", "le=\"10\"") <= inf,
        "buckets are cumulative"
    );
    assert!(text.contains("protocol=\"tcp\",route=\"ping\",le=\"+Inf\"} 1"));
    promtool_accepts(&text);
    assert!(text.contains("dm_open_connections{shard=\"0\",protocol=\"http\"}"));
    assert!(text.contains("dm_open_connections{shard=\"1\",protocol=\"tcp\"}"));
    assert!(text.contains("dm_cache_hits_total{shard=\"1\",level=\"l1\"}"));
    assert_eq!(text.matches("# TYPE dm_requests_total counter").count(), 1);
    // Private metrics need an admin token.
    let private = Server::start_with(1, &[("http", "metrics_public = false")]);
    assert_eq!(
        private.http().request("GET", "/metrics", &[], b"").status,
        401
    );
    let admin = format!("Bearer {}", private.admin_token());
    assert_eq!(
        private
            .http()
            .request("GET", "/metrics", &[("Authorization", &admin)], b"")
            .status,
        200
    );
}

#[test]
fn a_fast_trickle_cannot_keep_a_request_open_past_the_deadline() {
    let server = Server::start_with(1, &[("http", "read_timeout_ms = 1000")]);
    let mut slow = TcpStream::connect(server.http).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(8)))
        .expect("timeout");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writer = slow.try_clone().expect("clone");
    let stop = done.clone();
    let started = Instant::now();
    // A header byte every 0.2 ms: data keeps arriving, the request never completes.
    let trickle = std::thread::spawn(move || {
        let _ = writer.write_all(b"GET /health HTTP/1.1\r\nX-Slow: ");
        while !stop.load(std::sync::atomic::Ordering::Relaxed)
            && started.elapsed() < Duration::from_secs(6)
        {
            if writer.write_all(b"a").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    while let Ok(n) = slow.read(&mut chunk) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    trickle.join().expect("trickle");
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut off at the deadline, not when the client stopped"
    );
}

#[test]
fn request_ids_are_echoed_and_carried_into_logs() {
    let server = Server::start_with(
        1,
        &[
            ("log", "level = \"info\""),
            ("log", "access = true"),
            ("log", "events = true"),
        ],
    );
    let mut c = server.http();
    let r = c.request("GET", "/health", &[("X-Request-Id", "req-42")], b"");
    assert_eq!((r.status, r.header("X-Request-Id")), (200, Some("req-42")));
    let r = c.request("GET", "/no/such/route", &[("X-Request-Id", "req-43")], b"");
    assert_eq!((r.status, r.header("X-Request-Id")), (404, Some("req-43")));
    let r = c.request("GET", "/health", &[], b"");
    assert_eq!(r.header("X-Request-Id"), None, "no id, none invented");
    let long = "x".repeat(129);
    let r = c.request("GET", "/health", &[("X-Request-Id", &long)], b"");
    assert_eq!(r.header("X-Request-Id"), None, "an oversized id is ignored");
    let body = br#"{"username":"traced","password":"password1"}"#;
    let r = c.request(
        "POST",
        "/api/v1/players",
        &[("X-Game-Id", "game1"), ("X-Request-Id", "req-44")],
        body,
    );
    assert_eq!(r.status, 201);

    let log = server.wait_for_log("request_id=\"req-44\"");
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no log line with {needle:?} in:\n{log}"))
            .to_string()
    };
    // One access line per request, with method, path, status and id.
    let access = line("request_id=\"req-42\"");
    assert!(access.contains("method=\"GET\""), "{access}");
    assert!(
        access.contains("path=\"/health\"") && access.contains("status=200"),
        "{access}"
    );
    let not_found = line("request_id=\"req-43\"");
    assert!(not_found.contains("status=404"), "{not_found}");
    // The two requests without a usable id (and the harness's readiness
    // probe) get one made up: node, shard, a number.
    assert!(log.matches("request_id=\"test-node-").count() >= 2, "{log}");
    assert!(!log.contains(&long), "the oversized id is not logged");
    // A line the service logs while handling the request carries its id.
    assert!(line("player registered").contains("req-44"));
}

/// Requests are parsed strictly (SPEC §3): each of these gets 400 with a
/// message, over a real socket, and the connection is closed.
#[test]
fn ambiguous_requests_are_refused_with_400() {
    let server = Server::start(1);
    let cases: [(&str, &[u8]); 7] = [
        ("no Host", b"GET /health HTTP/1.1\r\n\r\n"),
        (
            "signed length",
            b"POST /api/v1/players HTTP/1.1\r\nHost: t\r\nContent-Length: +2\r\n\r\n{}",
        ),
        (
            "repeated length",
            b"POST /api/v1/players HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
        ),
        (
            "repeated Authorization",
            b"GET /api/v1/items HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n",
        ),
        (
            "repeated X-Game-Id",
            b"GET /api/v1/games HTTP/1.1\r\nHost: t\r\nX-Game-Id: game1\r\nX-Game-Id: game2\r\n\r\n",
        ),
        (
            "repeated Idempotency-Key",
            b"GET /api/v1/games HTTP/1.1\r\nHost: t\r\nIdempotency-Key: a\r\nIdempotency-Key: a\r\n\r\n",
        ),
        ("repeated Host", b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ];
    for (what, raw) in cases {
        let mut c = server.http();
        c.send_raw(raw);
        let r = c.read_response().expect(what);
        assert_eq!(r.status, 400, "{what}");
        assert!(
            r.json()["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: a message says why"
        );
    }
    // HTTP/1.0 without Host is fine.
    let mut c = server.http();
    c.send_raw(b"GET /health HTTP/1.0\r\n\r\n");
    assert_eq!(c.read_response().expect("1.0").status, 200);
}

/// A forged `X-Forwarded-For` does not buy a new budget: reached directly
/// (no trusted proxy) the header is ignored, and behind a trusted proxy that
/// appends, only the address the proxy wrote counts.
#[test]
fn forged_forwarded_for_does_not_dodge_the_rate_limit() {
    for trusted in [false, true] {
        let mut http = String::new();
        if trusted {
            http.push_str("trusted_proxies = [\"127.0.0.1\"]");
        }
        let server = Server::start_with(
            1,
            &[("auth", "rate_limit_per_ip_per_min = 30"), ("http", &http)],
        );
        let mut c = server.http();
        let mut served = 0;
        for i in 0..40 {
            // What a client sends, with what an appending proxy adds after it.
            let xff = if trusted {
                format!("10.9.{i}.1, 203.0.113.7")
            } else {
                format!("10.9.{i}.1")
            };
            let r = c.request("GET", "/api/v1/games", &[("X-Forwarded-For", &xff)], b"");
            match r.status {
                200 => served += 1,
                429 => break,
                other => panic!("unexpected status {other}"),
            }
        }
        assert_eq!(served, 30, "trusted proxy: {trusted}");
        if trusted {
            // Another client behind the same proxy has its own budget.
            let r = c.request(
                "GET",
                "/api/v1/games",
                &[("X-Forwarded-For", "198.51.100.4")],
                b"",
            );
            assert_eq!(r.status, 200);
        }
    }
}

/// `promtool check metrics` (Prometheus's own linter) accepts `text`
/// (skipped where promtool is not installed and not required).
fn promtool_accepts(text: &str) {
    if let Some(out) = common::promtool_with(&["check", "metrics"], text) {
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `GET /api/v1/players?username=`: game servers of the game and admins find
/// a player by name (percent-encoded names too); players may not; an unknown
/// name is 1001.
#[test]
fn players_are_found_by_username_by_game_servers_and_admins_only() {
    let server = Server::start(1);
    let (id, player_token) = server.player("game1", "zo_e.1");
    let gs = format!("Bearer {}", server.server_token("game1"));
    let other_gs = format!("Bearer {}", server.server_token("game2"));
    let admin = format!("Bearer {}", server.admin_token());
    let mut c = server.http();
    let mut find = |auth: &str, game: &str, query: &str| {
        let r = c.request(
            "GET",
            &format!("/api/v1/players?username={query}"),
            &[("Authorization", auth), ("X-Game-Id", game)],
            b"",
        );
        (r.status, r.json())
    };
    for auth in [&gs, &admin] {
        let (status, body) = find(auth, "game1", "zo%5Fe%2E1");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["player"]["id"], id);
        assert_eq!(body["data"]["player"]["username"], "zo_e.1");
    }
    assert_eq!(find(&gs, "game1", "nobody").1["code"], 1001);
    assert_eq!(find(&gs, "game1", "").0, 400);
    assert_eq!(find(&gs, "game1", "bad%zz").0, 400);
    assert_eq!(find(&gs, "game1", "bad%+A").0, 400);
    assert_eq!(
        find(&format!("Bearer {player_token}"), "game1", "zo%5Fe%2E1").0,
        403
    );
    // A game server of another game: refused (its token names game2).
    assert_eq!(find(&other_gs, "game1", "zo%5Fe%2E1").0, 403);
    assert_eq!(find(&other_gs, "game2", "zo%5Fe%2E1").1["code"], 1001);
}
