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
