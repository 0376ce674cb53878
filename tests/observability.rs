//! The shipped Prometheus alert rules and Grafana dashboard — valid for
//! Prometheus's own tools, asking only for metrics the server exports — and
//! the business counters of `/metrics`.
//! Needs `promtool` (scripts/test.sh installs it and sets
//! `DMTEST_REQUIRE_PROMTOOL=1`; elsewhere these skip without it).

mod common;

use common::{promtool_with, wait_for, Server, SERVER_KEY};
use datamiddleware::metrics::FAMILIES;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

fn promtool(args: &[&str]) -> Option<std::process::Output> {
    promtool_with(args, "")
}

fn assert_ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `dm_*` metric names a query text mentions.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("dm_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// Whether `name` is a family of /metrics, or a series of a histogram one.
fn exported(name: &str) -> bool {
    FAMILIES.iter().any(|(family, kind, _)| {
        name == *family
            || (*kind == "histogram"
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| name.strip_suffix(suffix) == Some(family)))
    })
}

#[test]
fn alert_rules_pass_promtool_and_fire_in_their_unit_tests() {
    let rules = std::fs::read_to_string("conf/prometheus-rules.yml").expect("rules");
    for name in metric_names(&rules) {
        assert!(
            exported(&name),
            "the rules use {name}, which /metrics never exports"
        );
    }
    for alert in [
        "NodeDown",
        "ReplicaLagging",
        "RedisDown",
        "ErrorRatio",
        "SlowRequests",
    ] {
        assert!(
            rules.contains(&format!("alert: DataMiddleware{alert}")),
            "{alert}"
        );
    }
    let Some(out) = promtool(&["check", "rules", "conf/prometheus-rules.yml"]) else {
        return;
    };
    assert_ok(&out, "promtool check rules");
    let Some(out) = promtool(&["test", "rules", "conf/prometheus-rules.test.yml"]) else {
        return;
    };
    assert_ok(&out, "promtool test rules");
}

#[test]
fn dashboard_queries_parse_and_ask_only_for_exported_metrics() {
    let text = std::fs::read_to_string("conf/grafana-dashboard.json").expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or("?");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} has no query");
        for t in targets {
            exprs.push((
                title.to_string(),
                t["expr"].as_str().expect("expr").to_string(),
            ));
        }
    }
    let titles: String = exprs.iter().map(|(t, _)| t.to_lowercase()).collect();
    for topic in ["requests", "latency", "errors", "cache", "replica"] {
        assert!(titles.contains(topic), "no panel about {topic}");
    }
    for (title, expr) in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{title}: {expr}");
        for name in names {
            assert!(
                exported(&name),
                "{title} asks for {name}, which /metrics never exports"
            );
        }
    }
    // Every query as a recording rule, Grafana's variables replaced: promtool
    // parses PromQL exactly as Prometheus will.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in exprs.iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&expr).expect("quote")
        ));
    }
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-queries.yml");
    std::fs::write(&file, rules).expect("write rules");
    let Some(out) = promtool(&["check", "rules", file.to_str().expect("path")]) else {
        return;
    };
    assert_ok(&out, "the dashboard's queries");
}

/// The sum over shards of the samples of `name` whose labels contain every
/// one of `labels`.
fn total(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

#[test]
fn business_counters_count_each_event_of_a_game_once() {
    // The player logs in from 127.0.0.1 below, which makes it a known
    // address of the account: its wrong guesses meet the account's overall
    // cap, set low here so the loop sees it refuse (above the account's
    // own budget, as it must be).
    let server = Server::start_with(
        2,
        &[(
            "auth",
            "failed_logins_per_user_per_min = 5\nfailed_logins_per_user_cap_per_min = 10",
        )],
    );
    let (id, _) = server.player("game1", "counted"); // a registration and a login
    let gs = format!("Bearer {}", server.server_token("game1"));
    let mut c = server.http();
    let mut call = |method: &str, path: &str, auth: &str, body: &str| -> (u16, Value) {
        let mut headers = vec![("X-Game-Id", "game1")];
        if !auth.is_empty() {
            headers.push(("Authorization", auth));
        }
        let r = c.request(method, path, &headers, body.as_bytes());
        (
            r.status,
            serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        )
    };
    let wallet = format!("/api/v1/players/{id}/wallet");
    for delta in [10, -3] {
        let body = format!(r#"{{"currency":"gold","delta":{delta},"reason":"count"}}"#);
        assert_eq!(call("POST", &wallet, &gs, &body).0, 200);
    }
    let order =
        format!(r#"{{"player_id":{id},"item_id":"potion","quantity":2,"currency":"gold"}}"#);
    let (s, j) = call("POST", "/api/v1/orders", &gs, &order);
    assert_eq!(s, 201, "{j}");
    let order_id = j["data"]["order"]["order_id"]
        .as_str()
        .expect("order id")
        .to_string();
    let price = j["data"]["order"]["total_price"]
        .as_f64()
        .expect("total price");
    let pay = format!("/api/v1/orders/{order_id}/pay");
    assert_eq!(call("POST", &pay, &gs, "").0, 200);
    assert_eq!(
        call("POST", &pay, &gs, "").0,
        200,
        "a repeat: not a second payment"
    );
    // Wrong passwords until the account's failure budget refuses them.
    let (mut failed, mut refused) = (0.0, 0.0);
    for _ in 0..20 {
        let wrong = r#"{"username":"counted","password":"not-the-password"}"#;
        match call("POST", "/api/v1/auth/login", "", wrong).0 {
            401 => failed += 1.0,
            429 => refused += 1.0,
            other => panic!("a wrong password answered {other}"),
        }
    }
    assert!(
        failed >= 1.0 && refused >= 1.0,
        "{failed} failed, {refused} refused"
    );

    let text = server.http().request("GET", "/metrics", &[], b"").text();
    let game = "game=\"game1\"";
    assert_eq!(
        total(&text, "dm_registrations_total", &[game]),
        1.0,
        "{text}"
    );
    assert_eq!(
        total(&text, "dm_logins_total", &[game, "result=\"ok\""]),
        1.0
    );
    assert_eq!(
        total(&text, "dm_logins_total", &[game, "result=\"failed\""]),
        failed
    );
    assert_eq!(total(&text, "dm_orders_paid_total", &[game]), 1.0);
    let gold = "currency=\"gold\"";
    // Signup's 1,000 gold and the wallet's +10; the wallet's -3 and the payment.
    assert_eq!(
        total(&text, "dm_currency_credited_total", &[game, gold]),
        1010.0
    );
    assert_eq!(
        total(&text, "dm_currency_debited_total", &[game, gold]),
        3.0 + price
    );
    assert_eq!(
        total(
            &text,
            "dm_currency_credited_total",
            &[game, "currency=\"diamonds\""]
        ),
        100.0
    );
    assert_eq!(
        total(&text, "dm_rate_limited_total", &["limit=\"failures\""]),
        refused
    );
    for family in [
        "dm_registrations_total",
        "dm_logins_total",
        "dm_rate_limited_total",
    ] {
        assert_eq!(text.matches(&format!("# TYPE {family} counter")).count(), 1);
    }
    if let Some(out) = promtool_with(&["check", "metrics"], &text) {
        assert_ok(&out, "promtool check metrics");
    }
}

#[test]
fn tcp_connections_are_counted_by_the_role_their_handshake_gave_them() {
    let server = Server::start(1);
    let scrape = || server.http().request("GET", "/metrics", &[], b"").text();
    let role =
        |text: &str, role: &str| total(text, "dm_tcp_connections", &[&format!("role=\"{role}\"")]);
    let mut anonymous = server.tcp();
    let mut game_server = server.tcp();
    assert_eq!(anonymous.call(0x2002, 1, "game1", "").msg_type, 0x2003);
    let shaken = game_server.handshake_server("game1", SERVER_KEY).json();
    assert_eq!(shaken["data"]["role"], "game_server", "{shaken}");
    let text = scrape();
    assert_eq!(role(&text, "none"), 1.0, "{text}");
    assert_eq!(role(&text, "game_server"), 1.0, "{text}");
    assert_eq!(role(&text, "player"), 0.0, "{text}");
    drop(game_server);
    wait_for(
        "the closed connection to leave the counts",
        std::time::Duration::from_secs(5),
        || role(&scrape(), "game_server") == 0.0,
    );
    assert_eq!(role(&scrape(), "none"), 1.0);
    drop(anonymous);
    wait_for(
        "no connection left",
        std::time::Duration::from_secs(5),
        || role(&scrape(), "none") == 0.0,
    );
}

/// The JSON log of a whole business run: every line names the node and (for
/// the shards' lines) the shard; lines written while handling a request carry
/// its request id, business events the game and player ids — and no
/// password, token, refresh token, server key or JWT secret appears anywhere.
#[test]
fn json_logs_carry_node_shard_request_and_player_ids_and_never_a_secret() {
    let server = Server::start_with(
        2,
        &[(
            "log",
            "level = \"debug\"\nformat = \"json\"\naccess = true\nevents = true",
        )],
    );
    let password = "log-secret-password-77";
    let mut c = server.http();
    let mut call = |method: &str, path: &str, auth: &str, id: &str, body: &str| -> Value {
        let mut headers = vec![("X-Game-Id", "game1"), ("X-Request-Id", id)];
        if !auth.is_empty() {
            headers.push(("Authorization", auth));
        }
        let r = c.request(method, path, &headers, body.as_bytes());
        assert!(r.status < 300, "{method} {path}: {} {}", r.status, r.text());
        r.json()
    };
    let register = format!(r#"{{"username":"logged","password":"{password}"}}"#);
    let player = call("POST", "/api/v1/players", "", "rq-register", &register);
    let player_id = player["data"]["player"]["id"].as_i64().expect("player id");
    let login = call("POST", "/api/v1/auth/login", "", "rq-login", &register);
    let token = login["data"]["token"].as_str().expect("token").to_string();
    let refresh = login["data"]["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let admin = server.admin_token();
    let gs = server.server_token("game1");
    let (bearer, admin_auth) = (format!("Bearer {token}"), format!("Bearer {admin}"));
    let gs_auth = format!("Bearer {gs}");
    let wallet = format!("/api/v1/players/{player_id}/wallet");
    call(
        "POST",
        &wallet,
        &gs_auth,
        "rq-wallet",
        r#"{"currency":"gold","delta":50,"reason":"quest"}"#,
    );
    let order = call(
        "POST",
        "/api/v1/orders",
        &bearer,
        "rq-order",
        r#"{"item_id":"potion","quantity":1,"currency":"gold"}"#,
    );
    let order_id = order["data"]["order"]["order_id"]
        .as_str()
        .expect("order id")
        .to_string();
    call(
        "POST",
        &format!("/api/v1/orders/{order_id}/pay"),
        &bearer,
        "rq-pay",
        "",
    );
    call(
        "PUT",
        &format!("/api/v1/orders/{order_id}/status"),
        &admin_auth,
        "rq-refund",
        r#"{"status":"refunded"}"#,
    );
    let grant = format!("/api/v1/players/{player_id}/items/potion/grant");
    call("POST", &grant, &gs_auth, "rq-grant", r#"{"quantity":2}"#);
    call(
        "POST",
        "/api/v1/auth/refresh",
        "",
        "rq-refresh",
        &format!(r#"{{"refresh_token":"{refresh}"}}"#),
    );
    call(
        "PUT",
        &format!("/api/v1/players/{player_id}"),
        &admin_auth,
        "rq-ban",
        r#"{"status":"banned"}"#,
    );
    // Without an X-Request-Id the server makes one up.
    let r = server.http().request(
        "GET",
        "/api/v1/games/game1/stats",
        &[("Authorization", &admin_auth)],
        b"",
    );
    assert_eq!(r.status, 200);
    // A TCP frame's lines carry an id too.
    let mut tcp = server.tcp();
    let hs = tcp.call(
        0x0002,
        1,
        "game1",
        &format!(r#"{{"server_key":"{SERVER_KEY}"}}"#),
    );
    assert_eq!(hs.msg_type, 0x0002, "{}", String::from_utf8_lossy(&hs.body));

    let log = server.wait_for_log("\"player status set\"");
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 10, "{log}");
    for line in &lines {
        assert!(
            line["timestamp"].is_string() && line["level"].is_string(),
            "{line}"
        );
        assert!(
            line["node"]
                .as_str()
                .is_some_and(|n| !n.is_empty() && n != "-"),
            "{line}"
        );
    }
    let event = |message: &str, request_id: &str| -> &Value {
        lines
            .iter()
            .find(|l| l["message"] == message && l["request_id"] == request_id)
            .unwrap_or_else(|| panic!("no {message:?} line for {request_id}:\n{log}"))
    };
    for (message, request_id) in [
        ("player registered", "rq-register"),
        ("player logged in", "rq-login"),
        ("balance changed", "rq-wallet"),
        ("order created", "rq-order"),
        ("order moved", "rq-pay"),
        ("order moved", "rq-refund"),
        ("item granted", "rq-grant"),
        ("player status set", "rq-ban"),
    ] {
        let line = event(message, request_id);
        assert_eq!(line["target"], "event", "{line}");
        assert_eq!(line["game"], "game1", "{line}");
        assert_eq!(line["player_id"], player_id, "{line}");
        assert!(line["shard"].as_u64().is_some_and(|s| s < 2), "{line}");
    }
    assert_eq!(event("order moved", "rq-refund")["status"], "refunded");
    // The access line of the request without an id, and a made-up id on the
    // lines written while it was handled (the stats query logs at debug).
    assert!(lines
        .iter()
        .any(|l| l["target"] == "access" && l["path"] == "/api/v1/games/game1/stats"));
    let node = lines[0]["node"].as_str().unwrap_or_default().to_string();
    assert!(
        lines.iter().any(|l| l["request_id"]
            .as_str()
            .is_some_and(|id| id.starts_with(&format!("{node}-")))),
        "no made-up request id in:\n{log}"
    );
    for secret in [
        password,
        &token,
        &refresh,
        &admin,
        &gs,
        SERVER_KEY,
        common::ADMIN_PASSWORD,
        "test-jwt-secret-0123456789abcdef0123456789",
    ] {
        assert!(
            !log.contains(secret),
            "a secret ({secret}) is in the log:\n{log}"
        );
    }
    // The refresh token's secret part alone must not be there either.
    let refresh_secret = refresh.rsplit('.').next().unwrap_or_default();
    assert!(refresh_secret.len() >= 16 && !log.contains(refresh_secret));
}
