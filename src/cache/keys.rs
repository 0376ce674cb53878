//! Cache key names, one place for all of them: `<game>:<kind>[:<id>]`.
//!
//! The grammar is closed: a profile `<game>:p:<id>`, an inventory
//! `<game>:inv:<id>`, a player's orders `<game>:o:<id>` and a catalogue
//! `<game>:items`, with `<game>` a configured game and `<id>` the decimal
//! digits of an `i64`. [`check_key`] and [`check_prefix`] hold what an
//! operator may name (`POST /api/v1/cache/invalidate`) to that grammar, so
//! that the route can never reach a key that is not a cache entry.

/// A player's profile.
pub fn player(game: &str, id: i64) -> String {
    format!("{game}:p:{id}")
}

/// A player's inventory.
pub fn inventory(game: &str, id: i64) -> String {
    format!("{game}:inv:{id}")
}

/// A player's orders (not cached; invalidating it routes that player's reads
/// to the primary for the read-your-writes window).
pub fn orders(game: &str, id: i64) -> String {
    format!("{game}:o:{id}")
}

/// A game's active catalogue.
pub fn catalogue(game: &str) -> String {
    format!("{game}:items")
}

/// The kinds of key that carry a player id after them (`<game>:<kind>:<id>`).
const PER_PLAYER: [&str; 3] = ["p", "inv", "o"];
/// The kinds of key with nothing after them (`<game>:<kind>`).
const PER_GAME: [&str; 1] = ["items"];

/// What a refusal says the grammar is.
const GRAMMAR: &str =
    "<game>:p:<id>, <game>:inv:<id>, <game>:o:<id> or <game>:items, with a configured game and a numeric id";

/// Longest key or prefix shown in full in a refusal; longer ones are cut.
const SHOWN: usize = 64;

/// `text` quoted (and escaped) for a refusal, cut after [`SHOWN`] bytes.
fn shown(text: &str) -> String {
    if text.len() <= SHOWN {
        return format!("{text:?}");
    }
    let mut end = SHOWN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &text[..end], text.len())
}

/// Whether `id` is a player id as keys spell it: decimal digits of an `i64`.
fn is_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && id.parse::<i64>().is_ok()
}

/// Whether `rest` (what follows `<game>:`) is a key of the grammar.
fn is_kind_and_id(rest: &str) -> bool {
    if PER_GAME.contains(&rest) {
        return true;
    }
    rest.split_once(':')
        .is_some_and(|(kind, id)| PER_PLAYER.contains(&kind) && is_id(id))
}

/// Whether `rest` (what follows `<game>:`) begins some key of the grammar.
fn begins_kind_and_id(rest: &str) -> bool {
    if PER_GAME.iter().any(|k| k.starts_with(rest)) {
        return true;
    }
    match rest.split_once(':') {
        None => PER_PLAYER.iter().any(|k| k.starts_with(rest)),
        Some((kind, id)) => PER_PLAYER.contains(&kind) && (id.is_empty() || is_id(id)),
    }
}

/// Checks that `key` is one cache key of the grammar, for a game
/// `is_game` accepts; the refusal names the key and says what is expected.
pub fn check_key(key: &str, is_game: impl Fn(&str) -> bool) -> Result<(), String> {
    let valid = key
        .split_once(':')
        .is_some_and(|(game, rest)| is_game(game) && is_kind_and_id(rest));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "key {} is not a cache key: expected {GRAMMAR} (for a prefix use \"prefix\")",
            shown(key)
        ))
    }
}

/// Checks that `prefix` begins with `<game>:` for a game `is_game` accepts
/// and that the rest begins some cache key of the grammar (`game1:`,
/// `game1:p:`, `game1:p:4`, `game1:it`); the refusal names the prefix.
pub fn check_prefix(prefix: &str, is_game: impl Fn(&str) -> bool) -> Result<(), String> {
    let valid = prefix
        .split_once(':')
        .is_some_and(|(game, rest)| is_game(game) && begins_kind_and_id(rest));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "prefix {} does not begin a cache key: it starts with a configured game and a colon (e.g. \"game1:\") and then begins one of {GRAMMAR}",
            shown(prefix)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn game(g: &str) -> bool {
        g == "game1" || g == "game-2"
    }

    #[test]
    fn the_keys_the_service_makes_pass() {
        for key in [
            player("game1", 42),
            inventory("game1", 0),
            orders("game-2", i64::MAX),
            catalogue("game1"),
        ] {
            assert_eq!(check_key(&key, game), Ok(()), "{key}");
        }
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        for key in [
            "",
            "dm:config",
            "dm:node:a",
            "dm:lock:{expire}",
            "*",
            "game1:*",
            "game1:p:*",
            "game1:p:",
            "game1:p:abc",
            "game1:p:-1",
            "game1:p:+1",
            "game1:p: 1",
            "game1:p:1 ",
            "game1:p:9223372036854775808",
            "game1:p:1:2",
            "game1:items:1",
            "game1:items*",
            "game1:x:1",
            "game1:",
            "game1",
            "nosuchgame:p:1",
            "GAME1:p:1",
            ":p:1",
            "game1:p:1\n",
        ] {
            let refusal = check_key(key, game).expect_err(key);
            assert!(refusal.contains(&format!("{key:?}")), "{refusal}");
        }
        let long = "x".repeat(300);
        let refusal = check_key(&long, game).expect_err("long");
        assert!(
            refusal.contains("300 bytes") && refusal.len() < 400,
            "{refusal}"
        );
    }

    #[test]
    fn prefixes_begin_a_key_of_a_configured_game() {
        for prefix in [
            "game1:",
            "game1:p",
            "game1:p:",
            "game1:p:4",
            "game1:p:9223372036854775807",
            "game1:i",
            "game1:in",
            "game1:inv",
            "game1:inv:",
            "game1:inv:12",
            "game1:o",
            "game1:o:7",
            "game1:it",
            "game1:items",
            "game-2:",
        ] {
            assert_eq!(check_prefix(prefix, game), Ok(()), "{prefix}");
        }
        for prefix in [
            "",
            "*",
            "?",
            "[",
            "dm",
            "dm:",
            "dm:config",
            "game1",
            "gam",
            "game1:*",
            "game1:p*",
            "game1:p:*",
            "game1:p:[0-9]",
            "game1:p:?",
            "game1:p:a",
            "game1:p:-",
            "game1:p:99999999999999999999",
            "game1:items:",
            "game1:itemsx",
            "game1:x",
            "game1:p:1:",
            "nosuchgame:",
        ] {
            let refusal = check_prefix(prefix, game).expect_err(prefix);
            assert!(refusal.contains(&format!("{prefix:?}")), "{refusal}");
        }
    }
}
