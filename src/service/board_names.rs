//! The usernames of ranked records (SPEC §12: a list answers each record's
//! `username`). A local view holds its records' names and answers with
//! them; a Redis view's members hold none, so the names it leaves empty
//! come from this shard's cache (`leaderboard::name_cache`) and what is
//! still missing from one SQL read — which also leaves out players who no
//! longer show (banned, deleted).

use super::Services;
use crate::error::ApiError;
use crate::leaderboard::ViewRecord;
use std::time::Instant;

impl Services {
    /// Fills in the usernames `records` lack; a record whose player does
    /// not show keeps an empty one (the caller leaves it out).
    pub(super) async fn fill_board_names(
        &self,
        game_id: &str,
        records: &mut [ViewRecord],
    ) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut missing = Vec::new();
        {
            let cache = self.board_names.borrow();
            for r in records.iter_mut().filter(|r| r.username.is_empty()) {
                match cache.get(game_id, r.key.player_id, now) {
                    Some(name) => r.username = name.to_string(),
                    None => missing.push(r.key.player_id),
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        self.board_name_lookups
            .set(self.board_name_lookups.get() + 1);
        let game = self.game(game_id)?;
        let found = game
            .store
            .run(async move |s| s.shown_usernames(&missing).await)
            .await?;
        let mut cache = self.board_names.borrow_mut();
        for (player_id, name) in found {
            cache.put(game_id, player_id, &name, now);
            for r in records.iter_mut().filter(|r| r.key.player_id == player_id) {
                r.username.clone_from(&name);
            }
        }
        Ok(())
    }

    /// Keeps a username this shard learned (a score write read it).
    pub(super) fn learn_board_name(&self, game_id: &str, player_id: i64, username: &str) {
        if self.registry().is_some() {
            self.board_names
                .borrow_mut()
                .put(game_id, player_id, username, Instant::now());
        }
    }

    /// Forgets a player's username here (its status changed).
    pub(super) fn forget_board_name(&self, game_id: &str, player_id: i64) {
        self.board_names.borrow_mut().forget(game_id, player_id);
    }

    /// Reads of ranked records that needed usernames from SQL (views that
    /// hold none, names not in this shard's cache), for `/metrics`.
    pub fn board_name_lookups(&self) -> u64 {
        self.board_name_lookups.get()
    }
}
