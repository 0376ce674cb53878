//! The shipped Prometheus alert rules and Grafana dashboard: valid for
//! Prometheus's own tools, and asking only for metrics the server exports.
//! Needs `promtool` (scripts/test.sh installs it and sets
//! `DMTEST_REQUIRE_PROMTOOL=1`; elsewhere these skip without it).

use datamiddleware::metrics::FAMILIES;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Runs promtool with `args`; `None` when it is not installed (and not required).
fn promtool(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("promtool").args(args).output() {
        Ok(out) => Some(out),
        Err(e) => {
            assert!(
                std::env::var("DMTEST_REQUIRE_PROMTOOL").as_deref() != Ok("1"),
                "promtool: {e}"
            );
            eprintln!("promtool not installed: skipped");
            None
        }
    }
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
