//! Games: the configured list, per-game stats, and game logic actions.

use super::players::player_json;
use super::{require_player, require_role, ApiError, Caller, Role, Services};
use crate::cache::{keys, Change};
use crate::clock;
use crate::store::Progress;
use serde_json::{json, Value};

impl Services {
    /// Every configured game (anyone).
    pub fn list_games(&self) -> Value {
        let games: Vec<Value> = self
            .games()
            .map(|g| {
                json!({
                    "game_id": g.id,
                    "name": g.config.name,
                    "status": "active",
                    "logic": g.logic.name(),
                    "actions": g.logic.actions(),
                })
            })
            .collect();
        json!({ "games": games })
    }

    /// Counts of one game (admin).
    pub async fn game_stats(&self, caller: &Caller, game_id: &str) -> Result<Value, ApiError> {
        self.require_admin(caller)?;
        let game = self.game(game_id)?;
        let s = game.store.run(async |s| s.game_stats().await).await?;
        Ok(json!({
            "game_id": game_id,
            "players": s.players,
            "active_players": s.active_players,
            "orders": s.orders,
            "paid_orders": s.paid_orders,
            "items": s.items,
        }))
    }

    /// Runs a game logic action for `params.player_id` (game servers, admins).
    pub async fn game_action(
        &self,
        caller: &Caller,
        game_id: &str,
        action: &str,
        params: Value,
    ) -> Result<Value, ApiError> {
        require_role(caller, &[Role::GameServer, Role::Admin])?;
        // A game server acts in its own game only; an admin in any.
        let game = self.scope(caller, Some(game_id))?;
        let player_id = params
            .get("player_id")
            .and_then(Value::as_i64)
            .filter(|p| *p > 0)
            .ok_or_else(|| ApiError::bad_request("player_id required"))?;
        require_player(caller, game_id, player_id)?;
        let now = clock::now_ms();
        let progress = game.logic.plan(action, &params, now)?;
        let reward = match &progress {
            Progress::DailyReward {
                currency, amount, ..
            } => Some((*currency, *amount)),
            _ => None,
        };
        let actor = self.actor(caller);
        let done = game
            .store
            .run(async move |s| s.apply_progress(player_id, progress, &actor, now).await)
            .await?;
        let player = self.delivered(game_id, done);
        if let Some((currency, amount)) = reward {
            self.counters().currency(game_id, currency, amount);
        }
        self.changed(Change::written(
            game_id,
            player_id,
            vec![keys::player(game_id, player_id)],
        ))
        .await;
        Ok(json!({ "action": action, "player": player_json(&player) }))
    }
}
