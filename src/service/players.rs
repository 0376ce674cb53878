//! Player accounts: registration, login and profile reads.

use super::auth::{self, Caller, Role};
use super::validate;
use super::{blocking, business, ApiError, Services};
use crate::clock;
use crate::store::{NewPlayer, Player, PlayerStatus};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Body of registration.
#[derive(Debug, Deserialize)]
pub struct RegisterRequest {
    /// Unique username.
    pub username: String,
    /// Plain password (hashed with argon2id before storage).
    pub password: String,
    /// Optional e-mail.
    #[serde(default)]
    pub email: Option<String>,
}

/// Body of login.
#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    /// Username.
    pub username: String,
    /// Plain password.
    pub password: String,
}

/// The public JSON shape of a player.
pub fn player_json(p: &Player) -> Value {
    json!({
        "id": p.id,
        "username": p.username,
        "email": p.email,
        "nickname": p.nickname,
        "avatar": p.avatar,
        "level": p.level,
        "exp": p.exp,
        "gold": p.gold,
        "diamonds": p.diamonds,
        "status": p.status.as_str(),
        "version": p.version,
        "created_at": clock::rfc3339_ms(p.created_at),
        "updated_at": clock::rfc3339_ms(p.updated_at),
        "last_login_at": if p.last_login_at == 0 { Value::Null } else { Value::String(clock::rfc3339_ms(p.last_login_at)) },
    })
}

impl Services {
    /// Registers a player in `game_id`; answers the new profile.
    pub async fn register(&self, game_id: &str, req: RegisterRequest) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        validate::username(&req.username)?;
        validate::password(&req.password)?;
        let email = req.email.unwrap_or_default();
        validate::email(&email)?;
        let password = req.password;
        let password_hash = blocking(move || auth::hash_password(&password)).await?;
        let new = NewPlayer {
            username: req.username,
            password_hash,
            email,
            signup_gold: game.config.signup_gold,
            signup_diamonds: game.config.signup_diamonds,
            now_ms: clock::now_ms(),
        };
        let player = game.store.run(move |s| s.create_player(&new)).await?;
        tracing::info!(game = game_id, player_id = player.id, "player registered");
        Ok(json!({ "player": player_json(&player) }))
    }

    /// Checks a username and password and opens a session: answers the player,
    /// an access token and a refresh token. Unknown user and wrong password
    /// get the same answer after the same work.
    pub async fn login(&self, game_id: &str, req: LoginRequest) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        let bad = || ApiError::new(business::BAD_CREDENTIALS, "wrong username or password");
        if req.username.len() > 64 || req.password.len() > 128 {
            return Err(bad());
        }
        let username = req.username.clone();
        let creds = game.store.run(move |s| s.credentials(&username)).await?;
        let (hash, found) = match &creds {
            Some(c) => (c.password_hash.clone(), true),
            None => (self.dummy_hash.to_string(), false),
        };
        let password = req.password;
        let ok = blocking(move || auth::verify_password(&hash, &password)).await;
        let creds = match creds {
            Some(c) if ok && found => c,
            _ => return Err(bad()),
        };
        match creds.status {
            PlayerStatus::Active => {}
            PlayerStatus::Banned => {
                return Err(ApiError::new(business::PLAYER_BANNED, "player is banned"))
            }
            PlayerStatus::Deleted => return Err(bad()),
        }
        self.open_session(game_id, creds.id).await
    }

    /// Opens a session for a player (login, or a game server logging a
    /// player in): stores the refresh token's hash and signs an access token.
    pub async fn open_session(&self, game_id: &str, player_id: i64) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        let now_ms = clock::now_ms();
        let session_id = auth::random_hex(16);
        let secret = auth::random_hex(32);
        let refresh_token = format!("{session_id}.{secret}");
        let refresh_hash = auth::hex(&Sha256::digest(secret.as_bytes()));
        let refresh_expires =
            now_ms.saturating_add((self.config.auth.refresh_ttl_s as i64).saturating_mul(1000));
        let sid = session_id.clone();
        let player = game
            .store
            .run(move |s| {
                s.create_session(&sid, player_id, &refresh_hash, now_ms, refresh_expires)?;
                s.record_login(player_id, now_ms)?;
                s.player(player_id)
            })
            .await?
            .ok_or_else(|| ApiError::new(business::PLAYER_NOT_FOUND, "player not found"))?;
        let caller = Caller {
            game_id: game_id.to_string(),
            role: Role::Player,
            player_id: Some(player_id),
            session_id,
            subject: player_id.to_string(),
        };
        let (token, expires_at) = self.tokens().issue(&caller, now_ms / 1000)?;
        Ok(json!({
            "player": player_json(&player),
            "token": token,
            "token_type": "Bearer",
            "refresh_token": refresh_token,
            "expires_at": expires_at,
            "expires_in": self.config.auth.access_ttl_s,
        }))
    }

    /// Reads a player's profile, if the caller may see it.
    pub async fn get_player(
        &self,
        caller: &Caller,
        game_id: &str,
        player_id: i64,
    ) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        if !caller.may_access_player(game_id, player_id) {
            return Err(ApiError::forbidden("not allowed to access this player"));
        }
        let player = game
            .store
            .run(move |s| s.player(player_id))
            .await?
            .ok_or_else(|| ApiError::new(business::PLAYER_NOT_FOUND, "player not found"))?;
        Ok(json!({ "player": player_json(&player) }))
    }
}
