//! The business rules, shared by the HTTP and the binary front ends: who may
//! do what, and what a balance or an account may become.
//!
//! A shard owns one [`Services`] (behind an `Rc`): its own stores per game and
//! its own token issuer. Front ends translate a request into one call here and
//! the returned JSON value (or [`ApiError`]) back into their wire format, so a
//! rule lives in exactly one place.

pub mod auth;
pub mod error;
pub mod players;
pub mod validate;

pub use auth::{Caller, Role, TokenIssuer};
pub use error::{business, ApiError};

use crate::config::{Config, GameConfig};
use crate::store::{self, StoreError, StoreHandle};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::rc::Rc;

/// One game as a shard sees it: its settings and its store.
pub struct GameContext {
    /// Game id.
    pub id: String,
    /// The game's configuration.
    pub config: GameConfig,
    /// This shard's handle to the game's database.
    pub store: StoreHandle,
}

/// A shard's instance of the service layer.
pub struct Services {
    config: Rc<Config>,
    games: HashMap<String, GameContext>,
    tokens: TokenIssuer,
    dummy_hash: Rc<str>,
}

impl Services {
    /// Opens this shard's stores for every configured game. `jwt_secret` is the
    /// node's effective secret (random in dev mode, the same on every shard);
    /// `dummy_hash` is a password hash used to keep failed logins of unknown
    /// users as slow as those of known ones.
    pub fn open(
        config: Rc<Config>,
        jwt_secret: &[u8],
        dummy_hash: Rc<str>,
    ) -> Result<Services, StoreError> {
        let mut games = HashMap::new();
        for (id, game) in &config.games {
            let store = store::open(&game.url, game.pool_size)?;
            games.insert(
                id.clone(),
                GameContext {
                    id: id.clone(),
                    config: game.clone(),
                    store: StoreHandle::new(store),
                },
            );
        }
        Ok(Services {
            tokens: TokenIssuer::new(jwt_secret, config.auth.access_ttl_s),
            config,
            games,
            dummy_hash,
        })
    }

    /// The node configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The token issuer.
    pub fn tokens(&self) -> &TokenIssuer {
        &self.tokens
    }

    /// A configured game, or 404.
    pub fn game(&self, id: &str) -> Result<&GameContext, ApiError> {
        self.games
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("game `{id}` is not configured")))
    }

    /// Every configured game, in id order.
    pub fn games(&self) -> Vec<&GameContext> {
        let mut v: Vec<&GameContext> = self.games.values().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Verifies an access token and that its game still exists.
    pub fn authenticate(&self, token: &str) -> Result<Caller, ApiError> {
        let caller = self.tokens.verify(token)?;
        if caller.role != Role::Admin && !self.games.contains_key(&caller.game_id) {
            return Err(ApiError::unauthorized("token names an unknown game"));
        }
        Ok(caller)
    }

    /// Authenticates a game server by its game's `server_key`.
    pub fn authenticate_server(&self, game_id: &str, key: &str) -> Result<Caller, ApiError> {
        let game = self.game(game_id)?;
        let expected = game.config.server_key.as_bytes();
        if expected.is_empty() || !auth::constant_time_eq(expected, key.as_bytes()) {
            return Err(ApiError::unauthorized("invalid server key"));
        }
        Ok(Caller {
            game_id: game_id.to_string(),
            role: Role::GameServer,
            player_id: None,
            session_id: auth::random_hex(16),
            subject: format!("server:{game_id}"),
        })
    }

    /// Pings every game's database; returns (game id, error) for each failure.
    pub async fn check_backends(&self) -> Vec<(String, String)> {
        let mut failed = Vec::new();
        for game in self.games() {
            if let Err(e) = game.store.run(|s| s.ping()).await {
                failed.push((format!("database:{}", game.id), e.to_string()));
            }
        }
        failed
    }
}

/// Parses a JSON request body into `T`, answering 400 with the reason.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("request body required (JSON)"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

/// Runs CPU-heavy work (password hashing) on the shard's blocking pool.
pub async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    glommio::executor().spawn_blocking(f).await
}
