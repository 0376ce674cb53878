//! The usernames of ranked players a shard looked up lately, for the views
//! that hold no names (Redis: a member is a record's 32 bytes of sort keys,
//! SPEC §12). A username never changes once the player exists, so a name
//! found stays right; entries still expire after [`NAME_TTL`], so a player
//! banned or deleted on another node, whose record a Redis outage left in
//! a view, drops out of reads within that time as it did with a lookup per
//! read. The local views keep their records' names themselves
//! (`rank_index::Names`) and need none of this.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a looked-up name is used.
pub const NAME_TTL: Duration = Duration::from_secs(10);
/// Names kept per shard before the cache starts again empty.
pub const MAX_NAMES: usize = 100_000;

/// Per game: player → username and when it was looked up.
#[derive(Debug, Default)]
pub struct NameCache {
    games: HashMap<String, HashMap<i64, (String, Instant)>>,
    held: usize,
}

impl NameCache {
    /// A player's username if looked up within [`NAME_TTL`] of `now`.
    pub fn get(&self, game: &str, player_id: i64, now: Instant) -> Option<&str> {
        let (name, at) = self.games.get(game)?.get(&player_id)?;
        (now.saturating_duration_since(*at) < NAME_TTL).then_some(name.as_str())
    }

    /// Keeps a player's username, looked up (or written) at `now`.
    pub fn put(&mut self, game: &str, player_id: i64, username: &str, now: Instant) {
        if self.held >= MAX_NAMES {
            self.games.clear();
            self.held = 0;
        }
        if !self.games.contains_key(game) {
            self.games.insert(game.to_string(), HashMap::new());
        }
        let Some(names) = self.games.get_mut(game) else {
            return;
        };
        if names
            .insert(player_id, (username.to_string(), now))
            .is_none()
        {
            self.held += 1;
        }
    }

    /// Forgets a player's name (its status changed).
    pub fn forget(&mut self, game: &str, player_id: i64) {
        if let Some(names) = self.games.get_mut(game) {
            if names.remove(&player_id).is_some() {
                self.held -= 1;
            }
        }
    }

    /// Names held.
    pub fn len(&self) -> usize {
        self.held
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_expire_are_forgotten_and_stay_bounded() {
        let mut cache = NameCache::default();
        let t0 = Instant::now();
        cache.put("g", 1, "one", t0);
        cache.put("h", 1, "other", t0);
        assert_eq!(cache.get("g", 1, t0), Some("one"));
        assert_eq!(cache.get("h", 1, t0), Some("other"));
        assert_eq!(cache.get("g", 2, t0), None);
        assert_eq!(cache.get("g", 1, t0 + NAME_TTL), None, "expired");
        cache.put("g", 1, "one", t0 + NAME_TTL);
        assert_eq!(cache.len(), 2, "put again, not twice");
        cache.forget("g", 1);
        assert_eq!(cache.get("g", 1, t0), None);
        assert_eq!(cache.len(), 1);
        for p in 0..MAX_NAMES as i64 + 5 {
            cache.put("g", p, "x", t0);
        }
        assert!(cache.len() <= MAX_NAMES);
    }
}
