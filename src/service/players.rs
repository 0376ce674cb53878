//! Player accounts: registration, login and profile reads.

use super::auth::{self, Caller, Role};
use super::counters::Event;
use super::validate;
use super::{business, require_player, require_role, time_json, ApiError, PageQuery, Services};
use crate::cache::l1::Cached;
use crate::cache::{keys, Change};
use crate::clock;
use crate::store::{
    Currency, LedgerEntry, NewPlayer, Player, PlayerPatch, PlayerStatus, WalletAdjustment,
};
use serde::Deserialize;
use serde_json::{json, Value};

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
        "last_login_at": time_json(p.last_login_at),
    })
}

/// Body of a profile update; absent fields stay as they are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayerUpdate {
    /// New nickname (1 to 32 bytes).
    pub nickname: Option<String>,
    /// New avatar (at most 256 bytes).
    pub avatar: Option<String>,
    /// New e-mail.
    pub email: Option<String>,
    /// New level (game servers and admins).
    pub level: Option<i64>,
    /// New experience (game servers and admins).
    pub exp: Option<i64>,
    /// New status (game servers and admins).
    pub status: Option<String>,
    /// Expected current version (optimistic concurrency; `If-Match` also works).
    pub version: Option<i64>,
}

/// Body of a wallet change.
#[derive(Debug, Deserialize)]
pub struct WalletChange {
    /// `gold` or `diamonds`.
    pub currency: String,
    /// Signed amount, not 0, at most 10^12 in size.
    pub delta: i64,
    /// Why (1 to 64 bytes), recorded in the ledger.
    pub reason: String,
}

/// The JSON shape of a ledger entry.
pub fn ledger_json(e: &LedgerEntry) -> Value {
    json!({
        "id": e.id,
        "currency": e.currency,
        "delta": e.delta,
        "balance_after": e.balance_after,
        "reason": e.reason,
        "reference": e.reference,
        "created_at": clock::rfc3339_ms(e.created_at),
    })
}

impl Services {
    /// Creates a player for an authenticated caller: game servers and admins
    /// may (over TCP, where registration is a request like any other);
    /// players cannot create players.
    pub async fn create_player(
        &self,
        caller: &Caller,
        game_id: &str,
        req: RegisterRequest,
    ) -> Result<Value, ApiError> {
        if caller.role == Role::Player {
            return Err(ApiError::forbidden("players cannot create players"));
        }
        self.register(game_id, req, self.actor(caller)).await
    }

    /// Registers a player in `game_id` (anyone); answers the new profile.
    pub async fn register(
        &self,
        game_id: &str,
        req: RegisterRequest,
        actor: crate::audit::Actor,
    ) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        validate::username(&req.username)?;
        validate::password(&req.password)?;
        let email = req.email.unwrap_or_default();
        validate::email(&email)?;
        let password = req.password;
        let password_hash = self
            .hashing(move || auth::hash_password(&password))
            .await??;
        let new = NewPlayer {
            username: req.username,
            password_hash,
            email,
            signup_gold: game.config.signup_gold,
            signup_diamonds: game.config.signup_diamonds,
            now_ms: clock::now_ms(),
        };
        let player = game
            .store
            .run(async move |s| s.create_player(&new, &actor).await)
            .await?;
        self.changed(Change::written(
            game_id,
            player.id,
            vec![keys::player(game_id, player.id)],
        ))
        .await;
        let counters = self.counters();
        counters.event(game_id, Event::Registration);
        counters.currency(game_id, Currency::Gold, game.config.signup_gold);
        counters.currency(game_id, Currency::Diamonds, game.config.signup_diamonds);
        business_event!(
            self,
            game = game_id,
            player_id = player.id,
            "player registered"
        );
        Ok(json!({ "player": player_json(&player) }))
    }

    /// Finds a player by username (game servers and admins: a console's or
    /// support tool's look-up); a deleted player only for admins.
    pub async fn find_player(
        &self,
        caller: &Caller,
        game_id: &str,
        username: &str,
    ) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        if !caller.may_access_every_player(game_id) {
            return Err(ApiError::forbidden(
                "requires role game_server of this game or admin",
            ));
        }
        if username.is_empty() {
            return Err(ApiError::bad_request("username required"));
        }
        // The same rule as registration and login: a name no account can
        // have is refused before any query (MariaDB would have matched
        // `bob ` to `bob`).
        let name = validate::canonical_username(username)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "username must be 3 to 32 characters of letters, digits, _ . -",
                )
            })?
            .to_string();
        let store = game.store.clone();
        let player = store
            .run(async move |s| match s.credentials(&name).await? {
                Some(c) => s.player(c.id).await,
                None => Ok(None),
            })
            .await?
            .filter(|p| caller.role == Role::Admin || p.status != PlayerStatus::Deleted)
            .ok_or(crate::store::Rule::PlayerNotFound)?;
        Ok(json!({ "player": player_json(&player) }))
    }

    /// Reads a player's profile, if the caller may see it. A deleted player
    /// is not found (1001) except for admins, whose reads bypass the cache
    /// (it holds what everyone else may see).
    pub async fn get_player(
        &self,
        caller: &Caller,
        game_id: &str,
        player_id: i64,
    ) -> Result<super::Data, ApiError> {
        let game = self.game(game_id)?;
        require_player(caller, game_id, player_id)?;
        let store = game.store.clone();
        if caller.role == Role::Admin {
            let p = store
                .run(async move |s| s.player(player_id).await)
                .await?
                .ok_or(crate::store::Rule::PlayerNotFound)?;
            return Ok(json!({ "player": player_json(&p) }).into());
        }
        let cached = self
            .cache()
            .get_or_load(&keys::player(game_id, player_id), || async move {
                let p = store.run(async move |s| s.player(player_id).await).await?;
                Ok(p.filter(|p| p.status != PlayerStatus::Deleted)
                    .map(|p| player_json(&p).to_string()))
            })
            .await?;
        match cached {
            Cached::Value(json) => Ok(super::Data::Wrapped("player", json)),
            Cached::Missing => Err(ApiError::new(
                business::PLAYER_NOT_FOUND,
                "player not found",
            )),
        }
    }
}

/// Turns cached JSON text back into a value.
pub fn parse_cached(json: &str) -> Result<Value, ApiError> {
    serde_json::from_str(json).map_err(|e| {
        tracing::error!(error = %e, "cached value is not JSON");
        ApiError::internal()
    })
}

impl Services {
    /// Applies a partial profile update. Players may change nickname, avatar
    /// and e-mail of their own profile; game servers and admins also level,
    /// exp and status. `expected_version` (from `If-Match` or the body) makes
    /// it conditional: 409 when the profile changed meanwhile. Banning or
    /// deleting a player revokes its sessions on every shard.
    pub async fn update_player(
        &self,
        caller: &Caller,
        game_id: &str,
        player_id: i64,
        req: PlayerUpdate,
        if_match: Option<i64>,
    ) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        require_player(caller, game_id, player_id)?;
        let privileged = req.level.is_some() || req.exp.is_some() || req.status.is_some();
        if privileged && caller.role == Role::Player {
            return Err(ApiError::forbidden(
                "players may change nickname, avatar and email only",
            ));
        }
        if let Some(n) = &req.nickname {
            if n.is_empty() {
                return Err(ApiError::bad_request("nickname must not be empty"));
            }
            validate::text("nickname", n, 32)?;
        }
        if let Some(a) = &req.avatar {
            validate::text("avatar", a, 256)?;
        }
        if let Some(e) = &req.email {
            validate::email(e)?;
        }
        if let Some(level) = req.level {
            validate::in_range("level", level, 1..=validate::MAX_LEVEL)?;
        }
        if let Some(exp) = req.exp {
            validate::in_range("exp", exp, 0..=validate::MAX_EXP)?;
        }
        let status = match &req.status {
            Some(s) => Some(PlayerStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request("status must be active, banned or deleted")
            })?),
            None => None,
        };
        let expected = match (if_match, req.version) {
            (Some(a), Some(b)) if a != b => {
                return Err(ApiError::bad_request("If-Match and version disagree"))
            }
            (a, b) => a.or(b),
        };
        let patch = PlayerPatch {
            nickname: req.nickname,
            avatar: req.avatar,
            email: req.email,
            level: req.level,
            exp: req.exp,
            status,
        };
        let now = clock::now_ms();
        let actor = self.actor(caller);
        let player = game
            .store
            .run(async move |s| {
                s.update_player(player_id, &patch, expected, &actor, now)
                    .await
            })
            .await?;
        let player = self.delivered(game_id, player);
        self.changed(Change::written(
            game_id,
            player_id,
            vec![keys::player(game_id, player_id)],
        ))
        .await;
        if let Some(status) = status {
            business_event!(
                self,
                game = game_id,
                player_id,
                status = status.as_str(),
                by = %caller.subject,
                "player status set"
            );
        }
        if let Some(status) = status {
            self.board_player_shown(game_id, player_id, status == PlayerStatus::Active)
                .await;
        }
        if matches!(status, Some(PlayerStatus::Banned | PlayerStatus::Deleted)) {
            let sessions = game
                .store
                .run(async move |s| s.revoke_player_sessions(player_id, now).await)
                .await?;
            self.revoke(sessions).await;
        }
        Ok(json!({ "player": player_json(&player) }))
    }

    /// Credits or debits a balance (game servers and admins); never below
    /// zero (3001); recorded in the ledger with the reason and the caller.
    pub async fn change_wallet(
        &self,
        caller: &Caller,
        game_id: &str,
        player_id: i64,
        req: WalletChange,
    ) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        require_role(caller, &[Role::GameServer, Role::Admin])?;
        require_player(caller, game_id, player_id)?;
        let currency = Currency::parse(&req.currency)
            .ok_or_else(|| ApiError::bad_request("currency must be gold or diamonds"))?;
        if req.delta == 0 || req.delta.unsigned_abs() > 1_000_000_000_000 {
            return Err(ApiError::bad_request(
                "delta must be non-zero and at most 10^12 in size",
            ));
        }
        if req.reason.is_empty() {
            return Err(ApiError::bad_request("reason required"));
        }
        validate::text("reason", &req.reason, 64)?;
        let reason = format!("wallet:{}", req.reason);
        let reference = caller.subject.clone();
        let now = clock::now_ms();
        let delta = req.delta;
        let actor = self.actor(caller);
        let player = game
            .store
            .run(async move |s| {
                let change = WalletAdjustment {
                    currency,
                    delta,
                    reason: &reason,
                    reference: &reference,
                };
                s.adjust_balance(player_id, &change, &actor, now).await
            })
            .await?;
        let player = self.delivered(game_id, player);
        self.counters().currency(game_id, currency, delta);
        business_event!(
            self,
            game = game_id,
            player_id,
            currency = currency.as_str(),
            delta,
            reason = %req.reason,
            by = %caller.subject,
            "balance changed"
        );
        self.changed(Change::written(
            game_id,
            player_id,
            vec![keys::player(game_id, player_id)],
        ))
        .await;
        Ok(json!({
            "player_id": player.id,
            "currency": currency.as_str(),
            "balance": match currency { Currency::Gold => player.gold, Currency::Diamonds => player.diamonds },
            "gold": player.gold,
            "diamonds": player.diamonds,
        }))
    }

    /// A page of a player's currency history, newest first (a deleted
    /// player's for admins only).
    pub async fn ledger(
        &self,
        caller: &Caller,
        game_id: &str,
        player_id: i64,
        page: PageQuery,
    ) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        require_player(caller, game_id, player_id)?;
        let page = page.resolve()?;
        let all = caller.role == Role::Admin;
        let rows = game
            .store
            .read(Some(player_id), async move |s| {
                s.ledger(player_id, page, all).await
            })
            .await?;
        Ok(super::page_json(
            rows.items.iter().map(ledger_json).collect(),
            page,
            rows.total,
        ))
    }
}
