//! Cache key names, one place for all of them: `<game>:<kind>[:<id>]`.

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

/// The (game, player) a key concerns; player 0 for game-wide keys.
pub fn subject(key: &str) -> Option<(&str, i64)> {
    let mut parts = key.split(':');
    let game = parts.next()?;
    let kind = parts.next()?;
    match (kind, parts.next()) {
        ("p" | "inv" | "o", Some(id)) => Some((game, id.parse().ok()?)),
        ("items", None) => Some((game, 0)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        assert_eq!(subject(&player("g1", 7)), Some(("g1", 7)));
        assert_eq!(subject(&inventory("g1", 8)), Some(("g1", 8)));
        assert_eq!(subject(&orders("g1", 9)), Some(("g1", 9)));
        assert_eq!(subject(&catalogue("g1")), Some(("g1", 0)));
        assert_eq!(subject("g1:p:x"), None);
        assert_eq!(subject("junk"), None);
    }
}
