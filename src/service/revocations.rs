//! A shard's set of revoked sessions. Access tokens are stateless JWTs, so a
//! logout takes effect by refusing every token of the session until the
//! tokens would have expired anyway. Each shard holds its own copy, filled at
//! start-up from the databases and kept current by [`crate::mesh`] messages.

use std::cell::RefCell;
use std::collections::HashMap;

/// Revoked session ids with the time after which they can be forgotten.
#[derive(Debug, Default)]
pub struct RevocationList {
    sessions: RefCell<HashMap<String, i64>>,
}

impl RevocationList {
    /// A list holding `sessions` until `until_s`.
    pub fn new(sessions: Vec<String>, until_s: i64) -> RevocationList {
        let list = RevocationList::default();
        list.revoke(sessions, until_s);
        list
    }

    /// Refuses `sessions` until `until_s` (Unix seconds).
    pub fn revoke(&self, sessions: Vec<String>, until_s: i64) {
        let mut map = self.sessions.borrow_mut();
        if map.len() > 10_000 {
            let now = crate::clock::now_s();
            map.retain(|_, until| *until > now);
        }
        for s in sessions {
            let entry = map.entry(s).or_insert(until_s);
            *entry = (*entry).max(until_s);
        }
    }

    /// Whether tokens of `session_id` are refused.
    pub fn is_revoked(&self, session_id: &str) -> bool {
        self.sessions.borrow().contains_key(session_id)
    }
}
