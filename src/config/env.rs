//! Environment overrides: `DM_<SECTION>_<KEY>`, `DM_DEFAULT_GAME`,
//! `DM_GAMES_<GAME>_<KEY>` and `DM_ADMINS_<NAME>_PASSWORD_HASH`, applied to
//! the parsed TOML table before it is typed, so that an override is checked
//! exactly as the same key written in the file, and a variable naming no key
//! is refused rather than ignored.

use super::error::{err, ConfigError};
use super::sections::{Config, GameConfig, SECTIONS};

/// Applies `DM_<SECTION>_<KEY>`, `DM_DEFAULT_GAME`, `DM_GAMES_<GAME>_<KEY>` and
/// `DM_ADMINS_<NAME>_PASSWORD_HASH` variables to the parsed table. A value is taken as a string where the key is
/// a string, otherwise it is parsed as a TOML value (`2`, `true`, `["a"]`).
pub(super) fn apply_env_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let defaults = toml::Value::try_from(Config::default())
        .map_err(|e| err(format!("internal: defaults do not serialise: {e}")))?;
    let game_defaults = toml::Value::try_from(GameConfig::default())
        .map_err(|e| err(format!("internal: defaults do not serialise: {e}")))?;
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("DM_"))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let rest = name["DM_".len()..].to_ascii_lowercase();
        if rest == "default_game" {
            table.insert("default_game".into(), toml::Value::String(raw));
            continue;
        }
        if let Some(admin_part) = rest.strip_prefix("admins_") {
            // DM_ADMINS_<NAME>_PASSWORD_HASH: an operator account without a
            // file (the name is taken in lower case).
            let admin = admin_part
                .strip_suffix("_password_hash")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    err(format!(
                        "environment variable {name}: expected DM_ADMINS_<NAME>_PASSWORD_HASH"
                    ))
                })?;
            let admins = table
                .entry("admins")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| err("key `admins`: must be a table"))?;
            let mut account = toml::Table::new();
            account.insert("password_hash".into(), toml::Value::String(raw));
            admins.insert(admin.to_string(), toml::Value::Table(account));
            continue;
        }
        if let Some(game_part) = rest.strip_prefix("games_") {
            let (game, key) = split_game_key(table, game_part, &game_defaults)
                .ok_or_else(|| err(format!("environment variable {name}: expected DM_GAMES_<GAME>_<KEY> with a known key")))?;
            let value = typed_value(&raw, game_defaults.get(&key));
            let games = table
                .entry("games")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let games = games
                .as_table_mut()
                .ok_or_else(|| err("key `games`: must be a table"))?;
            let entry = games
                .entry(game)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            entry
                .as_table_mut()
                .ok_or_else(|| err(format!("environment variable {name}: game is not a table")))?
                .insert(key, value);
            continue;
        }
        let section = SECTIONS
            .iter()
            .find(|s| rest.starts_with(&format!("{s}_")))
            .ok_or_else(|| {
                err(format!(
                    "environment variable {name}: unknown section (known: {})",
                    SECTIONS.join(", ")
                ))
            })?;
        let key = &rest[section.len() + 1..];
        let default = defaults.get(*section).and_then(|s| s.get(key));
        if default.is_none() {
            return Err(err(format!(
                "environment variable {name}: `{section}.{key}` is not a configuration key"
            )));
        }
        let value = typed_value(&raw, default);
        let sec = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        sec.as_table_mut()
            .ok_or_else(|| err(format!("key `{section}`: must be a table")))?
            .insert(key.to_string(), value);
    }
    Ok(())
}

/// Splits `game1_server_key` into (`game1`, `server_key`), preferring a game id
/// that already exists in the file (ids may contain underscores).
fn split_game_key(
    table: &toml::Table,
    part: &str,
    game_defaults: &toml::Value,
) -> Option<(String, String)> {
    let keys = game_defaults.as_table()?;
    let mut candidates: Vec<(String, String)> = keys
        .keys()
        .filter_map(|k| {
            let game = part.strip_suffix(k.as_str())?.strip_suffix('_')?;
            (!game.is_empty()).then(|| (game.to_string(), k.clone()))
        })
        .collect();
    let existing = table.get("games").and_then(|g| g.as_table());
    candidates.sort_by_key(|(g, _)| {
        let known = existing
            .map(|t| t.keys().any(|k| k.eq_ignore_ascii_case(g)))
            .unwrap_or(false);
        (!known, g.len())
    });
    let (game, key) = candidates.into_iter().next()?;
    let game = existing
        .and_then(|t| t.keys().find(|k| k.eq_ignore_ascii_case(&game)).cloned())
        .unwrap_or(game);
    Some((game, key))
}

/// A variable's text as the TOML value of its key: the text itself for a
/// string key, else the text parsed as TOML (the text itself when it does not
/// parse, so that the key's type check names the key).
fn typed_value(raw: &str, default: Option<&toml::Value>) -> toml::Value {
    if let Some(toml::Value::String(_)) = default {
        return toml::Value::String(raw.to_string());
    }
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or(toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::load_str;

    #[test]
    fn env_overrides_keys_with_types() {
        let c = load_str(
            "[auth]\nmode = \"dev\"\n[games.my_game]\nurl = \"sqlite://x.db\"\n",
            &[
                ("DM_HTTP_LISTEN", "127.0.0.1:18080"),
                ("DM_NODE_SHARDS", "2"),
                ("DM_NODE_ID", "42"),
                ("DM_DEFAULT_GAME", "my_game"),
                ("DM_GAMES_MY_GAME_SERVER_KEY", "k"),
                ("HOME", "/root"),
            ],
        )
        .expect("loads");
        assert_eq!(c.http.listen, "127.0.0.1:18080");
        assert_eq!(c.node.shards, 2);
        assert_eq!(c.node.id, "42");
        assert_eq!(c.games["my_game"].server_key, "k");
    }

    #[test]
    fn admin_accounts_come_from_the_environment_too() {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
        let c = load_str(
            "[auth]\nmode = \"dev\"\n",
            &[("DM_ADMINS_OPS_PASSWORD_HASH", hash)],
        )
        .expect("loads");
        assert_eq!(c.admins["ops"].password_hash, hash);
        let e =
            load_str("[auth]\nmode = \"dev\"\n", &[("DM_ADMINS_OPS", hash)]).expect_err("no key");
        assert!(e.0.contains("DM_ADMINS_<NAME>_PASSWORD_HASH"), "{e}");
        let e = load_str(
            "[auth]\nmode = \"dev\"\n",
            &[("DM_ADMINS_OPS_PASSWORD_HASH", "plain")],
        )
        .expect_err("not a hash");
        assert!(e.0.contains("admins.ops.password_hash"), "{e}");
    }

    #[test]
    fn unknown_env_key_is_refused() {
        let e = load_str("[auth]\nmode = \"dev\"\n", &[("DM_HTTP_LISTN", "x")]).unwrap_err();
        assert!(e.0.contains("DM_HTTP_LISTN"), "{e}");
        let e = load_str("[auth]\nmode = \"dev\"\n", &[("DM_NOPE_X", "x")]).unwrap_err();
        assert!(e.0.contains("DM_NOPE_X"), "{e}");
    }
}
