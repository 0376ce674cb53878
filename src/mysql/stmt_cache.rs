//! A connection's prepared statements, by SQL text: each text is prepared
//! once (`COM_STMT_PREPARE`) and its server-side id reused; at most
//! `capacity` are kept, and the least recently used one is evicted — the
//! caller closes it on the server (`COM_STMT_CLOSE`), which holds every
//! prepared statement until then (and counts them against
//! `max_prepared_stmt_count`).
//!
//! No I/O here: the connection asks, prepares on a miss, inserts, and closes
//! what the insert evicted.

use std::collections::HashMap;

/// A statement prepared on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    /// The server's statement id.
    pub id: u32,
    /// Number of `?` parameters.
    pub params: u16,
}

/// Prepared statements by SQL text, least recently used evicted first.
#[derive(Debug)]
pub struct StmtCache {
    capacity: usize,
    tick: u64,
    entries: HashMap<String, (Prepared, u64)>,
}

impl StmtCache {
    /// A cache of at most `capacity` statements (0: none is kept).
    pub fn new(capacity: usize) -> StmtCache {
        StmtCache {
            capacity,
            tick: 0,
            entries: HashMap::new(),
        }
    }

    /// The statement prepared for `sql`, marked as just used.
    pub fn get(&mut self, sql: &str) -> Option<Prepared> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(sql).map(|(p, used)| {
            *used = tick;
            *p
        })
    }

    /// Keeps `stmt` for `sql`; returns the statement to close on the server:
    /// the one evicted to make room, a statement `sql` had before, or
    /// `stmt` itself when the capacity is 0.
    pub fn insert(&mut self, sql: &str, stmt: Prepared) -> Option<Prepared> {
        if self.capacity == 0 {
            return Some(stmt);
        }
        self.tick += 1;
        if let Some(old) = self.entries.insert(sql.to_string(), (stmt, self.tick)) {
            return Some(old.0);
        }
        if self.entries.len() <= self.capacity {
            return None;
        }
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, (_, used))| *used)
            .map(|(k, _)| k.clone())?;
        self.entries.remove(&oldest).map(|(p, _)| p)
    }

    /// Forgets `sql`'s statement (the server no longer has it).
    pub fn remove(&mut self, sql: &str) -> Option<Prepared> {
        self.entries.remove(sql).map(|(p, _)| p)
    }

    /// Statements it keeps at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Statements kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: u32) -> Prepared {
        Prepared { id, params: 0 }
    }

    #[test]
    fn evicts_the_least_recently_used() {
        let mut c = StmtCache::new(2);
        assert_eq!(c.insert("a", p(1)), None);
        assert_eq!(c.insert("b", p(2)), None);
        assert_eq!(c.get("a"), Some(p(1))); // b is now the oldest
        assert_eq!(c.insert("c", p(3)), Some(p(2)));
        assert_eq!(c.get("b"), None);
        assert_eq!(c.len(), 2);
        assert_eq!(
            c.insert("a", p(4)),
            Some(p(1)),
            "a replaced: close the old one"
        );
        assert_eq!(c.remove("c"), Some(p(3)));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let mut c = StmtCache::new(0);
        assert_eq!(c.insert("a", p(1)), Some(p(1)));
        assert!(c.is_empty());
    }
}
