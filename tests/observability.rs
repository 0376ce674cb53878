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
    let server = Server::start(2);
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
