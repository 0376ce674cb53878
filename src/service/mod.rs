//! The business rules, shared by the HTTP and the binary front ends: who may
//! do what, and what a balance or an account may become.
//!
//! A shard owns one [`Services`] (behind an `Rc`): its own stores per game and
//! its own token issuer. Front ends translate a request into one call here and
//! the returned JSON value (or [`ApiError`]) back into their wire format, so a
//! rule lives in exactly one place.

/// Logs one business event (`log.events`): an info line with target
/// `event`, the game and player ids and what changed — never a secret.
macro_rules! business_event {
    ($services:expr, $($fields:tt)+) => {
        if $services.config.log.events {
            tracing::info!(target: "event", $($fields)+);
        }
    };
}

pub mod audit;
pub mod auth;
pub mod board_names;
pub mod board_views;
pub mod budgets;
pub mod connection_roles;
pub mod counters;
pub mod games;
pub mod hashing;
pub mod items;
pub mod leaderboards;
pub mod notifications;
pub mod orders;
pub mod players;
pub mod presence;
pub mod revocations;
pub mod sessions;

use crate::envelope::Data;
pub use crate::error::{business, ApiError};
pub use auth::{Caller, Role, TokenIssuer};

use crate::cache::{Cache, Change, LoadAbandoned};
use crate::cluster::registry::Registry;
use crate::config::{Config, GameConfig};
use crate::game::{GameError, GameLogic};
use crate::mesh::Peers;
use crate::node::NodeState;
use crate::rate_limit::RateLimiter;
use crate::realtime::hub::Hub;
use crate::realtime::relay::Relay;
use crate::store::{self, PageRequest, StoreError, StoreHandle};
use crate::validate;
use hashing::PasswordHasher;
use revocations::RevocationList;
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// One game as a shard sees it: its settings and its store.
pub struct GameContext {
    /// Game id.
    pub id: String,
    /// The game's configuration.
    pub config: GameConfig,
    /// This shard's handle to the game's database.
    pub store: StoreHandle,
    /// The game's logic module.
    pub logic: &'static dyn GameLogic,
}

/// A shard's instance of the service layer.
pub struct Services {
    config: Rc<Config>,
    games: BTreeMap<String, GameContext>,
    tokens: TokenIssuer,
    dummy_hash: Rc<str>,
    revocations: Rc<RevocationList>,
    peers: Peers,
    cache: Cache<ApiError>,
    hasher: PasswordHasher,
    limiter: RateLimiter,
    node: Arc<NodeState>,
    registry: Option<Registry>,
    maintenance: RefCell<BTreeMap<String, String>>,
    counters: counters::BusinessCounters,
    sockets: Rc<Hub>,
    relay: Relay,
    board_views: Rc<crate::leaderboard::local::LocalViews>,
    board_sql_answers: std::cell::Cell<u64>,
    /// Usernames looked up for reads of views that hold none (Redis).
    board_names: RefCell<crate::leaderboard::name_cache::NameCache>,
    /// Reads that needed a SQL lookup of usernames.
    board_name_lookups: std::cell::Cell<u64>,
    /// Board definitions this shard read lately, with when.
    known_boards: RefCell<
        std::collections::HashMap<(String, String), (crate::store::Board, std::time::Instant)>,
    >,
    shard: usize,
}

/// What a shard hands to [`Services::open`] besides the configuration.
pub struct ShardLinks {
    /// The node's effective JWT secret (random in dev mode, the same on every shard).
    pub jwt_secret: Vec<u8>,
    /// A password hash used to make failed logins of unknown users as slow
    /// as those of known ones.
    pub dummy_hash: Rc<str>,
    /// This shard's revoked sessions.
    pub revocations: Rc<RevocationList>,
    /// Links to the other shards.
    pub peers: Peers,
    /// The node's password hashing pool.
    pub hasher: PasswordHasher,
    /// This shard's index.
    pub shard: usize,
    /// What the node's shards share (shard count, hot-reloaded limits).
    pub node: Arc<NodeState>,
}

impl Services {
    /// Opens this shard's stores for every configured game.
    pub fn open(config: Rc<Config>, links: ShardLinks) -> Result<Services, StoreError> {
        let cache = Cache::new(&config.cache, &config.node.id).map_err(StoreError::Internal)?;
        let registry = match config.cluster.redis.as_str() {
            "" => None,
            url => Some(
                Registry::new(
                    url,
                    &config.node.id,
                    Duration::from_millis(config.cluster.heartbeat_ms),
                )
                .map_err(StoreError::Internal)?,
            ),
        };
        let mut games = BTreeMap::new();
        for (id, game) in &config.games {
            let persist = config.realtime.persist;
            let primary = store::open(&game.url, game.pool_size, game.durability, persist)?;
            let mut replicas = Vec::new();
            for url in &game.replicas {
                // A replica takes no writes: nothing to make durable.
                replicas.push((
                    crate::config::redact(url),
                    store::open(url, game.pool_size, store::Durability::Normal, false)?,
                ));
            }
            let logic = crate::game::by_name(&game.logic).ok_or_else(|| {
                StoreError::Internal(format!("unknown game logic {}", game.logic))
            })?;
            games.insert(
                id.clone(),
                GameContext {
                    id: id.clone(),
                    config: game.clone(),
                    store: StoreHandle::new(
                        primary,
                        replicas,
                        game.max_replica_lag_ms,
                        game.read_your_writes_ms,
                    ),
                    logic,
                },
            );
        }
        let sockets = Hub::new(config.realtime.max_queued, links.node.ws_sockets.clone());
        Ok(Services {
            tokens: TokenIssuer::new(&links.jwt_secret, config.auth.access_ttl_s),
            config,
            games,
            dummy_hash: links.dummy_hash,
            revocations: links.revocations,
            peers: links.peers,
            cache,
            hasher: links.hasher,
            limiter: RateLimiter::new(links.shard, links.node.gauges.len()),
            node: links.node,
            registry,
            maintenance: RefCell::new(BTreeMap::new()),
            counters: counters::BusinessCounters::default(),
            sockets,
            relay: Relay::default(),
            board_views: Rc::default(),
            board_sql_answers: std::cell::Cell::new(0),
            board_names: RefCell::default(),
            board_name_lookups: std::cell::Cell::new(0),
            known_boards: RefCell::default(),
            shard: links.shard,
        })
    }

    /// The audit log's actor for `caller` (SPEC §13): role, who, from
    /// where, on which node.
    pub fn actor(&self, caller: &Caller) -> crate::audit::Actor {
        crate::audit::Actor {
            role: caller.role.as_str().to_string(),
            id: caller.subject.clone(),
            client: caller
                .client
                .map_or_else(|| "-".to_string(), |c| c.to_string()),
            node: self.config.node.id.clone(),
        }
    }

    /// Records an admin action that changes no row of a game database (a
    /// sign-in, a cache flush, a config-centre change, a broadcast) in a
    /// transaction of its own, right after the action, in `game_id`'s
    /// database (the default game's for node-wide actions). A record that
    /// cannot be written is logged whole (the log is the copy outside the
    /// database) and the action stands.
    pub async fn audit_alone(
        &self,
        game_id: Option<&str>,
        actor: crate::audit::Actor,
        action: &str,
        subject: String,
        details: serde_json::Value,
    ) {
        let game_id = game_id.unwrap_or(&self.config.default_game);
        let Ok(game) = self.game(game_id) else { return };
        let draft = crate::audit::AuditDraft {
            action: action.to_string(),
            subject,
            details: details.to_string(),
        };
        let (record, now) = (draft.clone(), crate::clock::now_ms());
        let who = actor.clone();
        let written = game
            .store
            .run(async move |s| s.record_audit(&who, &[record], now).await)
            .await;
        if let Err(e) = written {
            tracing::error!(game = game_id, action = %draft.action, subject = %draft.subject, details = %draft.details, actor = %actor.id, error = %e, "audit record not written");
        }
    }

    /// The actor of a request no one signed in made (a registration).
    pub fn anonymous_actor(&self, client: Option<std::net::IpAddr>) -> crate::audit::Actor {
        crate::audit::Actor {
            role: "anonymous".to_string(),
            id: "-".to_string(),
            client: client.map_or_else(|| "-".to_string(), |c| c.to_string()),
            node: self.config.node.id.clone(),
        }
    }

    /// Runs a password hash or verification on the node's hashing pool
    /// (503 at once when it is saturated).
    pub async fn hashing<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        self.hasher.run(f).await
    }

    /// This shard's revoked sessions.
    pub fn revocations(&self) -> &RevocationList {
        &self.revocations
    }

    /// This shard's WebSocket connections, by session.
    pub fn sockets(&self) -> &Rc<Hub> {
        &self.sockets
    }

    /// This shard's queue of notifications for its peers and other nodes.
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// Refuses `sessions` on this shard until `until_s` and closes their
    /// WebSocket connections here (4001): the one place a revocation is
    /// applied, whoever made it (this shard, another, another node).
    pub fn apply_revocation(&self, sessions: Vec<String>, until_s: i64) {
        self.sockets.close_sessions(
            &sessions,
            (crate::realtime::frame::close::REVOKED, "session revoked"),
        );
        self.revocations.revoke(sessions, until_s);
    }

    /// This shard's link to the cluster registry (`cluster.redis`), if any.
    pub fn registry(&self) -> Option<&Registry> {
        self.registry.as_ref()
    }

    /// This shard's cache.
    pub fn counters(&self) -> &counters::BusinessCounters {
        &self.counters
    }

    /// This shard's cache.
    pub fn cache(&self) -> &Cache<ApiError> {
        &self.cache
    }

    /// Links to the other shards.
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// Applies a change this or another shard or node made: drops its keys
    /// from L1 and keeps its writers' reads on the primary for the
    /// read-your-writes window.
    pub fn apply_change(&self, change: &Change) {
        self.cache.invalidate_local(&change.keys);
        for w in &change.wrote {
            if let Some(g) = self.games.get(&w.game) {
                g.store.wrote(w.player);
            }
        }
    }

    /// Announces a change before the write is answered: this shard, every
    /// other shard (acknowledged), L2 and the other nodes.
    pub async fn changed(&self, change: Change) {
        self.apply_change(&change);
        self.peers
            .broadcast(true, |ack| crate::mesh::ShardMessage::Invalidate {
                change: change.clone(),
                ack,
            })
            .await;
        self.cache.invalidate_remote(&change).await;
    }

    /// `POST /api/v1/cache/invalidate` (admin): drops keys or a prefix everywhere.
    /// Only cache keys and prefixes of the cache key grammar are taken
    /// ([`crate::cache::keys::check_key`], [`crate::cache::keys::check_prefix`]):
    /// the cluster's own Redis keys (settings, leases, the registry) are
    /// beyond this route's reach, and a refusal names the key.
    pub async fn invalidate_on_request(
        &self,
        caller: &Caller,
        req: InvalidateRequest,
    ) -> Result<serde_json::Value, ApiError> {
        self.require_admin(caller)?;
        let mut keys = req.keys.unwrap_or_default();
        let total = keys.len() + usize::from(req.prefix.is_some());
        if !(1..=1000).contains(&total) {
            return Err(ApiError::bad_request("give 1 to 1000 keys, or a prefix"));
        }
        let is_game = |game: &str| self.games.contains_key(game);
        for key in &keys {
            crate::cache::keys::check_key(key, is_game).map_err(ApiError::bad_request)?;
        }
        if let Some(prefix) = req.prefix {
            crate::cache::keys::check_prefix(&prefix, is_game).map_err(ApiError::bad_request)?;
            // Inside the cache, a trailing `*` marks a prefix.
            keys.push(format!("{prefix}*"));
        }
        let n = keys.len();
        let details = serde_json::json!({ "keys": keys });
        self.changed(Change::keys_only(keys)).await;
        self.audit_alone(
            None,
            self.actor(caller),
            "cache.invalidate",
            "cache".into(),
            details,
        )
        .await;
        Ok(serde_json::json!({ "invalidated": n }))
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
    pub fn games(&self) -> impl Iterator<Item = &GameContext> {
        self.games.values()
    }

    /// The game a caller's request acts in, decided here for both front
    /// ends: a player's or game server's token fixes it (naming another game
    /// is refused with 403); an admin names any game, or gets the default.
    /// A game in maintenance (config centre) answers non-admins 503 with
    /// its message (a logout is scoped by [`Services::scope_to_end_session`]
    /// instead).
    pub fn scope(
        &self,
        caller: &Caller,
        requested: Option<&str>,
    ) -> Result<&GameContext, ApiError> {
        let game = self.scope_game(caller, requested)?;
        if caller.role != Role::Admin {
            self.check_maintenance(&game.id)?;
        }
        Ok(game)
    }

    /// The scope of a logout (HTTP `/api/v1/auth/logout`,
    /// `/api/v1/players/logout`, TCP PlayerLogout): [`Services::scope`]
    /// without the maintenance check. Ending a session — one whose token
    /// leaked, say — must always work (issue 21), so this is the one call a
    /// game in maintenance still answers non-admins; the game is still
    /// decided (and another one refused) as for any other call.
    pub fn scope_to_end_session(
        &self,
        caller: &Caller,
        requested: Option<&str>,
    ) -> Result<&GameContext, ApiError> {
        self.scope_game(caller, requested)
    }

    fn scope_game(
        &self,
        caller: &Caller,
        requested: Option<&str>,
    ) -> Result<&GameContext, ApiError> {
        match (caller.role, requested) {
            (Role::Admin, Some(g)) => self.game(g),
            (Role::Admin, None) => self.game(&self.config.default_game),
            (_, Some(g)) if g != caller.game_id => {
                Err(ApiError::forbidden("token is not valid for this game"))
            }
            _ => self.game(&caller.game_id),
        }
    }

    /// The game an anonymous request (registration, login) acts in: the one
    /// it names, or the default game.
    pub fn anonymous_scope(&self, requested: Option<&str>) -> Result<&GameContext, ApiError> {
        let game = self.game(requested.unwrap_or(&self.config.default_game))?;
        self.check_maintenance(&game.id)?;
        Ok(game)
    }

    /// 503 with the operator's message while `game` is in maintenance
    /// (config centre); admins are never scoped through here. Every
    /// non-admin call goes through it — [`Services::scope`],
    /// [`Services::anonymous_scope`], a token refresh — except a logout
    /// ([`Services::scope_to_end_session`]).
    fn check_maintenance(&self, game: &str) -> Result<(), ApiError> {
        match self.maintenance.borrow().get(game) {
            Some(message) => Err(ApiError::unavailable(message.clone())),
            None => Ok(()),
        }
    }

    /// The games in maintenance on this shard, with their messages (set by
    /// the config centre through shard 0).
    pub fn set_maintenance(&self, games: BTreeMap<String, String>) {
        *self.maintenance.borrow_mut() = games;
    }

    /// Verifies an access token, that its session is not revoked and that
    /// its game still exists.
    pub fn authenticate(&self, token: &str) -> Result<Caller, ApiError> {
        let caller = self.tokens.verify(token)?;
        self.check_not_revoked(&caller)?;
        if caller.role != Role::Admin && !self.games.contains_key(&caller.game_id) {
            return Err(ApiError::unauthorized("token names an unknown game"));
        }
        Ok(caller)
    }

    /// 401 once the caller's session has been revoked (logout, ban, reused
    /// refresh token): checked for every HTTP request and, since a TCP
    /// connection outlives its handshake, for every frame after it.
    pub fn check_not_revoked(&self, caller: &Caller) -> Result<(), ApiError> {
        if self.revocations.is_revoked(&caller.session_id) {
            return Err(ApiError::unauthorized("token revoked"));
        }
        Ok(())
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
            client: None,
        })
    }
}

impl From<GameError> for ApiError {
    fn from(e: GameError) -> ApiError {
        match e {
            GameError::UnknownAction(m) => ApiError::not_found(m),
            GameError::BadParameters(m) => ApiError::bad_request(m),
        }
    }
}

impl From<LoadAbandoned> for ApiError {
    fn from(_: LoadAbandoned) -> ApiError {
        tracing::error!("a cache load another request waited for was dropped");
        ApiError::internal()
    }
}

/// Body of `POST /api/v1/cache/invalidate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidateRequest {
    /// Exact keys, e.g. `game1:p:42`.
    pub keys: Option<Vec<String>>,
    /// A key prefix, e.g. `game1:`.
    pub prefix: Option<String>,
}

/// Refuses unless the caller may act on `player_id` of `game_id` (403).
pub fn require_player(caller: &Caller, game_id: &str, player_id: i64) -> Result<(), ApiError> {
    if caller.may_access_player(game_id, player_id) {
        Ok(())
    } else {
        Err(ApiError::forbidden("not allowed to access this player"))
    }
}

/// Refuses unless the caller has one of `roles` (403).
pub fn require_role(caller: &Caller, roles: &[Role]) -> Result<(), ApiError> {
    if roles.contains(&caller.role) {
        Ok(())
    } else {
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::forbidden(format!(
            "requires role {}",
            names.join(" or ")
        )))
    }
}

/// `?page=&page_size=` (defaults 1 and 20, page size at most 100).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct PageQuery {
    /// 1-based page.
    pub page: Option<i64>,
    /// Rows per page.
    pub page_size: Option<i64>,
}

impl PageQuery {
    /// Validates into a [`PageRequest`].
    pub fn resolve(self) -> Result<PageRequest, ApiError> {
        let page = self.page.unwrap_or(1);
        let page_size = self.page_size.unwrap_or(20);
        validate::in_range("page", page, 1..=1_000_000)?;
        validate::in_range("page_size", page_size, 1..=100)?;
        Ok(PageRequest { page, page_size })
    }
}

/// The JSON shape of a page.
pub fn page_json(
    items: Vec<serde_json::Value>,
    page: PageRequest,
    total: i64,
) -> serde_json::Value {
    serde_json::json!({ "items": items, "page": page.page, "page_size": page.page_size, "total": total })
}

/// Renders Unix ms as RFC 3339, or null for 0.
pub fn time_json(ms: i64) -> serde_json::Value {
    if ms == 0 {
        serde_json::Value::Null
    } else {
        serde_json::Value::String(crate::clock::rfc3339_ms(ms))
    }
}
