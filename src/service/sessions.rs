//! Sessions: player login with rotating refresh tokens, logout, game-server
//! and admin tokens, and revocation across shards.
//!
//! A player session has an id (carried in every access token as `sid`) and a
//! refresh secret whose SHA-256 is stored. Refreshing replaces the secret;
//! presenting a replaced secret again means it leaked, so the whole session
//! (the "family" of tokens it produced) is revoked. Revocation is written to
//! the database and pushed to every shard before the request is answered.

use super::auth::{self, Caller, Role};
use super::budgets::Guesser;
use super::counters::Event;
use super::players::player_json;
use super::{business, require_player, require_role, ApiError, Services};
use crate::clock;
use crate::config::AuthMode;
use crate::store::{PlayerStatus, RefreshOutcome};
use crate::validate;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// Body of a TCP Handshake: one way to say who the connection is.
#[derive(Debug, Default, Deserialize)]
pub struct HandshakeRequest {
    /// The game server's secret (role `game_server`).
    #[serde(default)]
    pub server_key: Option<String>,
    /// A player's access token (the connection is bound to that player).
    #[serde(default)]
    pub token: Option<String>,
}

/// Body of login.
#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    /// The account's username within the game.
    pub username: String,
    /// Plain password.
    pub password: String,
}

/// Body of a refresh.
#[derive(Debug, Deserialize)]
pub struct RefreshRequest {
    /// The refresh token of the last login or refresh.
    pub refresh_token: String,
}

/// Body of a game server's authentication.
#[derive(Debug, Deserialize)]
pub struct ServerAuthRequest {
    /// Game id.
    pub game_id: String,
    /// The game's server key.
    pub server_key: String,
}

/// Body of a logout by a game server (TCP PlayerLogout).
#[derive(Debug, Default, Deserialize)]
pub struct LogoutRequest {
    /// The player to log out; the connection's player when absent.
    #[serde(default)]
    pub player_id: Option<i64>,
}

/// The budget key of a login at `username` in `game_id`: the account, or
/// one shared key for every name no account can have
/// ([`validate::canonical_username`]), so padded or otherwise mangled
/// variants of a name never get budgets of their own.
fn login_account(game_id: &str, username: &str) -> String {
    match validate::canonical_username(username) {
        Some(name) => format!("player:{game_id}:{name}"),
        None => format!("player:{game_id}:<not a username>"),
    }
}

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Services {
    /// Checks a username and password and opens a session. Unknown user and
    /// wrong password get the same answer after the same work.
    pub async fn login(
        &self,
        game_id: &str,
        req: LoginRequest,
        guesser: Guesser,
    ) -> Result<Value, ApiError> {
        let account = login_account(game_id, &req.username);
        let result = self
            .guarded(guesser, Some(&account), self.check_login(game_id, req))
            .await;
        match &result {
            Ok(v) => {
                self.counters().event(game_id, Event::Login);
                let player_id = v["player"]["id"].as_i64();
                business_event!(self, game = game_id, player_id, "player logged in");
            }
            Err(e) if e.code == business::BAD_CREDENTIALS || e.code == business::PLAYER_BANNED => {
                self.counters().event(game_id, Event::FailedLogin);
                business_event!(self, game = game_id, code = e.code, "login refused");
            }
            Err(_) => {}
        }
        result
    }

    /// The credential check and session of a login, behind [`Services::login`]'s budgets.
    async fn check_login(&self, game_id: &str, req: LoginRequest) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        let bad = || ApiError::new(business::BAD_CREDENTIALS, "wrong username or password");
        if req.username.len() > 64 || req.password.len() > 128 {
            return Err(bad());
        }
        // A name no account can have is never looked up (MariaDB's PAD
        // SPACE would have found `bob` for `bob `), but costs the same hash.
        let creds = match validate::canonical_username(&req.username) {
            Some(name) => {
                let username = name.to_string();
                game.store
                    .run(async move |s| s.credentials(&username).await)
                    .await?
            }
            None => None,
        };
        let hash = match &creds {
            Some(c) => c.password_hash.clone(),
            None => self.dummy_hash.to_string(),
        };
        let password = req.password;
        let ok = self
            .hashing(move || auth::verify_password(&hash, &password))
            .await?;
        let creds = match creds {
            Some(c) if ok => c,
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

    /// Opens a session for a player: stores the refresh secret's hash and
    /// signs an access token.
    pub async fn open_session(&self, game_id: &str, player_id: i64) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        let now_ms = clock::now_ms();
        let session_id = auth::random_hex(16);
        let secret = auth::random_hex(32);
        let refresh_hash = hash_secret(&secret);
        let expires = self.refresh_expiry(now_ms);
        let sid = session_id.clone();
        let player = game
            .store
            .run(async move |s| {
                s.create_session(&sid, player_id, &refresh_hash, now_ms, expires)
                    .await?;
                s.record_login(player_id, now_ms).await?;
                s.player(player_id).await
            })
            .await?
            .ok_or_else(|| ApiError::new(business::PLAYER_NOT_FOUND, "player not found"))?;
        self.changed(crate::cache::Change::written(
            game_id,
            player_id,
            vec![crate::cache::keys::player(game_id, player_id)],
        ))
        .await;
        self.token_pair(game_id, &player, &session_id, &secret, now_ms)
    }

    /// The answer of login and refresh: the player, a new access token and
    /// the refresh token `<game>.<session>.<secret>`.
    fn token_pair(
        &self,
        game_id: &str,
        player: &crate::store::Player,
        session_id: &str,
        secret: &str,
        now_ms: i64,
    ) -> Result<Value, ApiError> {
        let (token, expires_at) = self.player_token(game_id, player.id, session_id, now_ms)?;
        Ok(json!({
            "player": player_json(player),
            "token": token,
            "token_type": "Bearer",
            "refresh_token": format!("{game_id}.{session_id}.{secret}"),
            "expires_at": expires_at,
            "expires_in": self.config.auth.access_ttl_s,
        }))
    }

    fn refresh_expiry(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add((self.config.auth.refresh_ttl_s as i64).saturating_mul(1000))
    }

    fn player_token(
        &self,
        game_id: &str,
        player_id: i64,
        session_id: &str,
        now_ms: i64,
    ) -> Result<(String, i64), ApiError> {
        let caller = Caller {
            game_id: game_id.to_string(),
            role: Role::Player,
            player_id: Some(player_id),
            session_id: session_id.to_string(),
            subject: player_id.to_string(),
            client: None,
        };
        self.tokens().issue(&caller, now_ms / 1000)
    }

    /// Exchanges a refresh token for a new pair; the old one stops working.
    /// Reusing an old one revokes the whole session. While the token's game
    /// is in maintenance it answers 503 with the message and changes nothing.
    pub async fn refresh(&self, req: RefreshRequest) -> Result<Value, ApiError> {
        let invalid = || ApiError::unauthorized("invalid refresh token");
        let mut parts = req.refresh_token.splitn(3, '.');
        let (Some(game_id), Some(session_id), Some(secret)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        if session_id.len() != 32 || secret.len() != 64 {
            return Err(invalid());
        }
        let game = self.games.get(game_id).ok_or_else(invalid)?;
        // Refused like any other call of a game in maintenance, before
        // anything is rotated: the token still works once it is lifted.
        self.check_maintenance(game_id)?;
        let now_ms = clock::now_ms();
        let new_secret = auth::random_hex(32);
        let (sid, presented, new_hash, expires) = (
            session_id.to_string(),
            hash_secret(secret),
            hash_secret(&new_secret),
            self.refresh_expiry(now_ms),
        );
        let outcome = game
            .store
            .run(async move |s| {
                s.rotate_refresh(&sid, &presented, &new_hash, now_ms, expires)
                    .await
            })
            .await?;
        match outcome {
            RefreshOutcome::Rotated { player_id } => {
                let pid = player_id;
                let player = game
                    .store
                    .run(async move |s| s.player(pid).await)
                    .await?
                    .filter(|p| p.status == PlayerStatus::Active)
                    .ok_or_else(invalid)?;
                self.token_pair(game_id, &player, session_id, &new_secret, now_ms)
            }
            RefreshOutcome::Reused => {
                tracing::warn!(
                    game = game_id,
                    session = session_id,
                    "refresh token reuse; session revoked"
                );
                self.revoke(vec![session_id.to_string()]).await;
                Err(ApiError::unauthorized(
                    "refresh token was already used; the session is revoked",
                ))
            }
            RefreshOutcome::Invalid => Err(invalid()),
        }
    }

    /// Ends the caller's session on every shard of this node at once, and,
    /// through the database, on every other node within about half a second
    /// and after any restart.
    pub async fn logout(&self, caller: &Caller) -> Result<Value, ApiError> {
        // Recorded in the caller's game database (an admin token carries the
        // default game), from where every node and every restart reads it.
        let game = self.game(&caller.game_id)?;
        let sid = caller.session_id.clone();
        let now = clock::now_ms();
        if caller.role == Role::Player {
            game.store
                .run(async move |s| s.revoke_session(&sid, now).await.map(|_| ()))
                .await?;
        } else {
            game.store
                .run(async move |s| s.revoke_token(&sid, now).await)
                .await?;
        }
        self.revoke(vec![caller.session_id.clone()]).await;
        Ok(json!({ "revoked_sessions": 1 }))
    }

    /// Revokes every session of a player (TCP PlayerLogout): the player
    /// itself, a game server of its game, or an admin.
    pub async fn logout_player(
        &self,
        caller: &Caller,
        game_id: &str,
        req: LogoutRequest,
    ) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        let player_id = req
            .player_id
            .or(caller.player_id)
            .ok_or_else(|| ApiError::bad_request("player_id required"))?;
        require_player(caller, game_id, player_id)?;
        let now = clock::now_ms();
        let sessions = game
            .store
            .run(async move |s| s.revoke_player_sessions(player_id, now).await)
            .await?;
        let n = sessions.len();
        self.revoke(sessions).await;
        Ok(json!({ "player_id": player_id, "revoked_sessions": n }))
    }

    /// A `game_server` access token for a game's server key.
    pub async fn server_token(
        &self,
        req: ServerAuthRequest,
        client: IpAddr,
    ) -> Result<Value, ApiError> {
        let check = async { self.authenticate_server(&req.game_id, &req.server_key) };
        let caller = self.guarded_secret(client, check).await?;
        let (token, expires_at) = self.tokens().issue(&caller, clock::now_s())?;
        Ok(json!({
            "token": token,
            "token_type": "Bearer",
            "role": "game_server",
            "game_id": caller.game_id,
            "expires_at": expires_at,
            "expires_in": self.config.auth.access_ttl_s,
        }))
    }

    /// Who a TCP connection is, from its Handshake (SPEC §2): a game server
    /// by its key, a player by an access token of this game, or — in dev
    /// mode only — whoever the header's user id says. Returns the caller and
    /// the user id replies carry. Failures count against `client`'s budget.
    pub async fn handshake(
        &self,
        game_id: &str,
        header_user: &str,
        req: HandshakeRequest,
        client: IpAddr,
    ) -> Result<(Caller, String), ApiError> {
        let check = async {
            if game_id.is_empty() {
                return Err(ApiError::unauthorized(
                    "handshake needs a game id in the header",
                ));
            }
            self.game(game_id)?;
            if let Some(key) = req.server_key {
                let caller = self.authenticate_server(game_id, &key)?;
                Ok((caller, header_user.to_string()))
            } else if let Some(token) = req.token {
                let caller = self.authenticate(&token)?;
                if caller.game_id != game_id {
                    return Err(ApiError::unauthorized("token is for another game"));
                }
                let user = caller.subject.clone();
                Ok((caller, user))
            } else if self.config.auth.mode == AuthMode::Dev && !header_user.is_empty() {
                let caller = Caller {
                    game_id: game_id.to_string(),
                    role: Role::GameServer,
                    player_id: None,
                    session_id: auth::random_hex(16),
                    subject: header_user.to_string(),
                    client: None,
                };
                Ok((caller, header_user.to_string()))
            } else {
                Err(ApiError::unauthorized(
                    "handshake needs server_key or token",
                ))
            }
        };
        self.guarded_secret(client, check).await
    }

    /// An `admin` access token for an operator account of the config.
    pub async fn admin_login(&self, req: LoginRequest, client: IpAddr) -> Result<Value, ApiError> {
        let name = req.username.clone();
        let signed_in = self.admin_login_checked(req, client).await?;
        let actor = crate::audit::Actor {
            role: "admin".into(),
            id: format!("admin:{name}"),
            client: client.to_string(),
            node: self.config.node.id.clone(),
        };
        self.audit_alone(
            None,
            actor,
            "admin.sign_in",
            format!("admin:{name}"),
            json!({}),
        )
        .await;
        Ok(signed_in)
    }

    /// [`Services::admin_login`] behind its budgets.
    async fn admin_login_checked(
        &self,
        req: LoginRequest,
        client: IpAddr,
    ) -> Result<Value, ApiError> {
        // Names that are no operator share one budget: guessing at them
        // cannot open a budget per made-up name.
        let account = if self.config.admins.contains_key(&req.username) {
            format!("admin:{}", req.username)
        } else {
            "admin:<unknown>".to_string()
        };
        self.guarded(
            Guesser::Client(client),
            Some(&account),
            self.check_admin(req),
        )
        .await
    }

    /// The credential check of an operator, behind [`Services::admin_login`]'s budgets.
    async fn check_admin(&self, req: LoginRequest) -> Result<Value, ApiError> {
        let bad = || ApiError::new(business::BAD_CREDENTIALS, "wrong username or password");
        if req.username.len() > 64 || req.password.len() > 128 {
            return Err(bad());
        }
        let account = self.config.admins.get(&req.username);
        let hash = account
            .map(|a| a.password_hash.clone())
            .unwrap_or_else(|| self.dummy_hash.to_string());
        let password = req.password;
        let ok = self
            .hashing(move || auth::verify_password(&hash, &password))
            .await?;
        if !(ok && account.is_some()) {
            return Err(bad());
        }
        let caller = Caller {
            game_id: self.config.default_game.clone(),
            role: Role::Admin,
            player_id: None,
            session_id: auth::random_hex(16),
            subject: format!("admin:{}", req.username),
            client: None,
        };
        let (token, expires_at) = self.tokens().issue(&caller, clock::now_s())?;
        Ok(json!({
            "token": token,
            "token_type": "Bearer",
            "role": "admin",
            "expires_at": expires_at,
            "expires_in": self.config.auth.access_ttl_s,
        }))
    }

    /// Refuses `sessions` on this shard and every other shard of the node.
    pub async fn revoke(&self, sessions: Vec<String>) {
        if sessions.is_empty() {
            return;
        }
        let until = clock::now_s().saturating_add(self.config.auth.access_ttl_s as i64 + 1);
        self.refuse_on_this_node(&sessions, until, true).await;
        // Every other node, within milliseconds (SPEC §7); if Redis is down
        // they still learn it from the databases within about a second.
        if let Some(registry) = self.registry() {
            let pushed = crate::cluster::registry::PushedRevocation {
                node: self.config.node.id.clone(),
                sessions,
                until_s: until,
            };
            if let Err(e) = registry.push_revocation(&pushed).await {
                tracing::warn!(error = %e, "revocation not pushed; other nodes will read it from the database");
            }
        }
    }

    /// Refuses `sessions` until `until_s` on this shard and every other shard
    /// of the node; with `wait`, returns once each has applied it. The one
    /// path for a revocation made here and one another node pushed.
    pub async fn refuse_on_this_node(&self, sessions: &[String], until_s: i64, wait: bool) {
        self.apply_revocation(sessions.to_vec(), until_s);
        self.peers
            .broadcast(wait, |ack| crate::mesh::ShardMessage::Revoke {
                sessions: sessions.to_vec(),
                until_s,
                ack,
            })
            .await;
    }

    /// Refuses, on every shard of this node, the sessions that any game's
    /// database records as revoked since `since_ms` — by this node or by
    /// another one — and returns how many were new here. This is how a
    /// logout, a ban or a reused refresh token reaches every node.
    pub async fn adopt_revocations(&self, since_ms: i64) -> Result<usize, ApiError> {
        let mut fresh = Vec::new();
        for game in self.games() {
            let found = game
                .store
                .run(async move |s| s.revoked_sessions_since(since_ms).await)
                .await?;
            fresh.extend(found.into_iter().filter(|sid| !self.revocations.holds(sid)));
        }
        let n = fresh.len();
        self.revoke(fresh).await;
        Ok(n)
    }

    /// Whether the caller is an admin (for ops routes).
    pub fn require_admin(&self, caller: &Caller) -> Result<(), ApiError> {
        require_role(caller, &[Role::Admin])
    }
}
