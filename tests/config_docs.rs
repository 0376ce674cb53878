//! `docs/configuration.md` against the configuration code: every key of the
//! `Config` structs (found by walking the defaults serialised to TOML, so a
//! new key cannot be missed) has a row in the key tables with its TOML type
//! and built-in default, no row names a key that does not exist, the keys
//! marked reloadable are exactly the config centre's hot settings, the
//! embedded default's differences from the built-in defaults are all listed,
//! and the environment overrides behave as the page says.

use datamiddleware::cluster::settings::HotSettings;
use datamiddleware::config::{AdminAccount, Config, ItemSeed, EMBEDDED_DEFAULT};
use std::collections::{BTreeMap, BTreeSet};
use toml::Value;

const DOC: &str = include_str!("../docs/configuration.md");

/// A documented key: its row's cells (type, default, reload, meaning).
struct Row {
    cells: Vec<String>,
}

/// The rows of every table whose header starts with `header`, by the key in
/// their first cell (without backticks).
fn rows(header: &str) -> BTreeMap<String, Row> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in DOC.lines() {
        if !line.starts_with('|') {
            inside = false;
            continue;
        }
        if line.starts_with(header) {
            inside = true;
            continue;
        }
        if !inside || line.starts_with("|---") {
            continue;
        }
        let cells: Vec<String> = line
            .trim_matches('|')
            .split(" | ")
            .map(|c| c.trim().to_string())
            .collect();
        let key = cells[0].trim_matches('`').to_string();
        assert!(
            out.insert(key.clone(), Row { cells }).is_none(),
            "`{key}` documented twice"
        );
    }
    out
}

fn key_rows() -> BTreeMap<String, Row> {
    rows("| key | type | default | reload | meaning |")
}

/// The first `code` span of a cell.
fn code(cell: &str) -> Option<&str> {
    let start = cell.find('`')? + 1;
    let len = cell[start..].find('`')?;
    Some(&cell[start..start + len])
}

/// Every key of the configuration with its built-in default (`None`: a key
/// that must be given), named as the page names them: `node.id`,
/// `games.<id>.url`, `games.<id>.items[].name`, `admins.<name>.password_hash`.
fn config_keys() -> BTreeMap<String, (Value, bool)> {
    let mut out = BTreeMap::new();
    let root = Value::try_from(Config::default()).expect("defaults serialise");
    for (key, value) in root.as_table().expect("table") {
        match (key.as_str(), value) {
            ("games", Value::Table(games)) => {
                out.insert(key.clone(), (value.clone(), false));
                let (_, game) = games.iter().next().expect("a default game");
                for (k, v) in game.as_table().expect("game table") {
                    out.insert(format!("games.<id>.{k}"), (v.clone(), false));
                }
                // A seed entry with only what it must have: every other
                // field shows its default.
                let seed: ItemSeed =
                    toml::from_str("item_id = \"x\"\nname = \"x\"").expect("minimal seed");
                for (k, v) in Value::try_from(seed).expect("seed").as_table().expect("t") {
                    let required = k == "item_id" || k == "name";
                    out.insert(format!("games.<id>.items[].{k}"), (v.clone(), required));
                }
            }
            ("admins", _) => {
                out.insert(key.clone(), (value.clone(), false));
                let admin: AdminAccount =
                    toml::from_str("password_hash = \"x\"").expect("minimal admin");
                for (k, v) in Value::try_from(admin)
                    .expect("admin")
                    .as_table()
                    .expect("t")
                {
                    out.insert(format!("admins.<name>.{k}"), (v.clone(), true));
                }
            }
            (section, Value::Table(t)) => {
                for (k, v) in t {
                    out.insert(format!("{section}.{k}"), (v.clone(), false));
                }
            }
            _ => {
                out.insert(key.clone(), (value.clone(), false));
            }
        }
    }
    out
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Integer(_) => "integer",
        Value::Float(_) => "float",
        Value::Boolean(_) => "boolean",
        Value::Datetime(_) => "datetime",
        Value::Array(_) => "list",
        Value::Table(_) => "table",
    }
}

#[test]
fn every_configuration_key_is_documented_with_its_type_and_default() {
    let keys = config_keys();
    let rows = key_rows();
    assert!(keys.len() > 60, "only {} keys found", keys.len());
    let mut problems = Vec::new();
    for (key, (default, required)) in &keys {
        let Some(row) = rows.get(key) else {
            problems.push(format!("`{key}` has no row in docs/configuration.md"));
            continue;
        };
        let (ty, documented) = (&row.cells[1], &row.cells[2]);
        if !ty.starts_with(type_name(default)) {
            problems.push(format!(
                "`{key}`: type `{ty}`, but the key is of type {}",
                type_name(default)
            ));
        }
        if *required {
            if documented != "required" {
                problems.push(format!(
                    "`{key}`: must be given; the page says {documented}"
                ));
            }
        } else if !matches!(default, Value::Table(_))
            && code(documented) != Some(default.to_string().as_str())
        {
            problems.push(format!(
                "`{key}`: default `{default}`, the page says {documented}"
            ));
        }
    }
    for key in rows.keys() {
        if !keys.contains_key(key) {
            problems.push(format!(
                "docs/configuration.md documents `{key}`, which is no key"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_reloadable_keys_are_the_hot_settings() {
    // Every hot setting the config centre knows, filled in to serialise.
    let all = HotSettings {
        rate_limit_per_ip_per_min: Some(1),
        failed_logins_per_ip_per_min: Some(1),
        failed_logins_per_user_per_min: Some(1),
        log_level: Some("info".into()),
        maintenance: BTreeMap::new(),
    };
    let keys = config_keys();
    let hot: BTreeSet<String> = Value::try_from(all)
        .expect("settings")
        .as_table()
        .expect("table")
        .keys()
        .filter(|k| *k != "maintenance")
        .map(|k| {
            let in_auth = format!("auth.{k}");
            if keys.contains_key(&in_auth) {
                in_auth
            } else {
                k.replacen('_', ".", 1)
            }
        })
        .collect();
    assert_eq!(hot.len(), 4);
    for (key, row) in key_rows() {
        let reload = &row.cells[3];
        if hot.contains(&key) {
            assert_eq!(reload, "SIGHUP, config centre", "`{key}`");
        } else {
            assert_eq!(reload, "no", "`{key}`");
        }
    }
    let reload_table = rows("| setting | file key | config centre key |");
    let listed: BTreeSet<String> = reload_table
        .values()
        .map(|r| r.cells[1].trim_matches('`').to_string())
        .collect();
    assert_eq!(listed, hot);
}

/// Leaf differences between two TOML values, by dotted path (an array is one
/// leaf).
fn differences(path: &str, a: &Value, b: &Value, out: &mut BTreeSet<String>) {
    match (a, b) {
        (Value::Table(x), Value::Table(y)) => {
            let names: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for name in names {
                let p = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                match (x.get(name), y.get(name)) {
                    (Some(a), Some(b)) => differences(&p, a, b, out),
                    _ => {
                        out.insert(p);
                    }
                }
            }
        }
        (a, b) if a != b => {
            out.insert(path.to_string());
        }
        _ => {}
    }
}

#[test]
fn the_embedded_defaults_differences_are_listed() {
    let embedded = Config::load(None, Vec::new()).expect("embedded default");
    let mut found = BTreeSet::new();
    differences(
        "",
        &Value::try_from(Config::default()).expect("defaults"),
        &Value::try_from(embedded).expect("embedded"),
        &mut found,
    );
    let listed: BTreeSet<String> = rows("| key | embedded default | why |")
        .into_keys()
        .collect();
    assert_eq!(listed, found, "docs/configuration.md, The embedded default");
    assert!(EMBEDDED_DEFAULT.contains("mode = \"dev\""));
}

#[test]
fn environment_overrides_work_as_documented() {
    // Each section key, set through its DM_ variable to the value it has
    // anyway, loads.
    let base = "[auth]\nmode = \"dev\"\n";
    let loaded = Value::try_from(Config::from_toml_str(base, "test", Vec::new()).expect("base"))
        .expect("serialises");
    let mut overridden = 0;
    for (section, table) in loaded.as_table().expect("table") {
        let Value::Table(table) = table else { continue };
        if section == "games" || section == "admins" {
            continue;
        }
        for (key, value) in table {
            let name = format!("DM_{}_{}", section, key).to_ascii_uppercase();
            let raw = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let result = Config::from_toml_str(base, "test", vec![(name.clone(), raw)]);
            let c = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            let again = Value::try_from(c).expect("serialises");
            assert_eq!(&again[section.as_str()][key.as_str()], value, "{name}");
            overridden += 1;
        }
    }
    assert!(overridden > 40, "{overridden}");
    // Lists as TOML arrays, a game key, an admin, and an unknown name.
    let c = Config::from_toml_str(
        base,
        "test",
        vec![
            (
                "DM_HTTP_CORS_ORIGINS".into(),
                r#"["http://127.0.0.1:3000", "http://localhost:3000"]"#.into(),
            ),
            (
                "DM_GAMES_GAME1_ITEMS".into(),
                r#"[{item_id = "bow", name = "Bow", price_gold = 50, max_stack = 2}]"#.into(),
            ),
            ("DM_GAMES_GAME2_URL".into(), "sqlite://data/game2.db".into()),
        ],
    )
    .expect("lists and tables");
    assert_eq!(c.http.cors_origins.len(), 2);
    assert_eq!(c.games["game1"].items[0].max_stack, 2);
    assert_eq!(c.games["game2"].pool_size, 4);
    for bad in ["DM_NOT_A_SECTION", "DM_HTTP_LISTN", "DM_GAMES_GAME1_FOO"] {
        let e = Config::from_toml_str(base, "test", vec![(bad.into(), "1".into())])
            .err()
            .unwrap_or_else(|| panic!("{bad} is refused"));
        assert!(e.0.contains(bad), "{e}");
        assert!(DOC.contains(bad), "{bad} is in the page");
    }
}

#[test]
fn no_link_leaves_the_repository() {
    // Every http(s) address in docs/ is this machine's (examples), never a
    // page elsewhere: the documentation must stand on its own.
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/docs");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(docs).expect("docs/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md" || e == "yaml") {
            files.push(path);
        }
    }
    assert!(files.len() >= 2, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let name = path.display();
        for (i, _) in text.match_indices("://") {
            let scheme_start = text[..i]
                .rfind(|c: char| !c.is_ascii_alphanumeric() && c != '+')
                .map_or(0, |p| p + 1);
            let scheme = &text[scheme_start..i];
            if scheme == "http" || scheme == "https" {
                let rest = &text[i + 3..];
                assert!(
                    rest.starts_with("127.0.0.1") || rest.starts_with("localhost"),
                    "{name}: a link out of the repository: {}",
                    &text[scheme_start..(i + 40).min(text.len())]
                );
            }
        }
    }
}
