//! Route handlers: each turns a parsed request into one service call and the
//! result into a [`Response`]. No business rule lives here.

use super::request::Request;
use super::response::Response;
use super::router::{self, Matched, Params, Route};
use crate::service::players::RegisterRequest;
use crate::service::sessions::{LoginRequest, RefreshRequest, ServerAuthRequest};
use crate::service::{parse_json, ApiError, Caller, PageQuery, Role};
use crate::shard::Shard;
use serde_json::json;
use std::net::IpAddr;

/// Answers one request from `peer`.
pub async fn handle(shard: &Shard, req: &Request<'_>, peer: IpAddr) -> Response {
    let started = std::time::Instant::now();
    let (response, label) = if req.method == "OPTIONS" {
        (preflight(shard, req), "preflight")
    } else {
        match router::route(req.method, req.path) {
            Matched::NotFound => (Response::status(404, "no such endpoint"), "unmatched"),
            Matched::MethodNotAllowed(allow) => (
                Response::status(405, "method not allowed").with_header("Allow", allow),
                "unmatched",
            ),
            Matched::Found(route, params, label) => {
                let r = match rate_limit(shard, route, req, peer) {
                    Err(r) => r,
                    Ok(()) => dispatch(shard, route, params, req)
                        .await
                        .unwrap_or_else(|e| Response::error(&e)),
                };
                (r, label)
            }
        }
    };
    shard
        .metrics
        .request("http", label, response.status, started.elapsed());
    with_cors(shard, req, response)
}

/// Applies the per-IP budget to every route but the probes. Behind a proxy
/// on loopback, the first `X-Forwarded-For` address is the client.
fn rate_limit(
    shard: &Shard,
    route: Route,
    req: &Request<'_>,
    peer: IpAddr,
) -> Result<(), Response> {
    if matches!(route, Route::Health | Route::Ready) {
        return Ok(());
    }
    let client = match (peer.is_loopback(), req.headers.forwarded_for) {
        (true, Some(xff)) => xff
            .split(',')
            .next()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(peer),
        _ => peer,
    };
    let per_min = shard
        .node
        .rate_limit_per_min
        .load(std::sync::atomic::Ordering::Relaxed);
    shard
        .rate_limiter
        .check(client, per_min, std::time::Instant::now())
        .map_err(|retry| {
            Response::status(429, "too many requests").with_header("Retry-After", retry.to_string())
        })
}

/// Parses a JSON body, or an empty object when there is none.
fn body_or_empty<T: serde::de::DeserializeOwned + Default>(
    req: &Request<'_>,
) -> Result<T, ApiError> {
    if req.body.is_empty() {
        Ok(T::default())
    } else {
        parse_json(req.body)
    }
}

fn query_i64(req: &Request<'_>, name: &str) -> Result<Option<i64>, ApiError> {
    match req.query_param(name) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("{name} must be an integer"))),
    }
}

fn page(req: &Request<'_>) -> Result<PageQuery, ApiError> {
    Ok(PageQuery {
        page: query_i64(req, "page")?,
        page_size: query_i64(req, "page_size")?,
    })
}

async fn dispatch(
    shard: &Shard,
    route: Route,
    params: Params<'_>,
    req: &Request<'_>,
) -> Result<Response, ApiError> {
    let services = &shard.services;
    let ok = |v: serde_json::Value| Ok(Response::ok(&v));
    match route {
        Route::Health => return Ok(health(shard)),
        Route::Ready => return Ok(ready(shard).await),
        Route::Metrics if shard.config.http.metrics_public => return Ok(metrics(shard).await),
        Route::Register => {
            let game = anonymous_game(shard, req)?;
            let body: RegisterRequest = parse_json(req.body)?;
            return Ok(Response::ok_with(
                201,
                &services.register(&game, body).await?,
            ));
        }
        Route::Login => {
            let game = anonymous_game(shard, req)?;
            return ok(services
                .login(&game, parse_json::<LoginRequest>(req.body)?)
                .await?);
        }
        Route::Refresh => {
            return ok(services
                .refresh(parse_json::<RefreshRequest>(req.body)?)
                .await?)
        }
        Route::ServerAuth => {
            return ok(services.server_token(parse_json::<ServerAuthRequest>(req.body)?)?)
        }
        Route::AdminAuth => {
            return ok(services
                .admin_login(parse_json::<LoginRequest>(req.body)?)
                .await?)
        }
        Route::ListGames => return ok(services.list_games()),
        _ => {}
    }
    let caller = authenticate(shard, req)?;
    let game = caller_game(shard, req, &caller)?;
    let g = game.as_str();
    let c = &caller;
    match route {
        Route::HealthDetailed => {
            services.require_admin(c)?;
            ok(detailed(shard).await)
        }
        Route::Logout => ok(services.logout(c).await?),
        Route::GetPlayer => {
            let data = services.get_player(c, g, player_id(params.get(0))?).await?;
            Ok(Response::ok_data(200, &data))
        }
        Route::UpdatePlayer => {
            let if_match = match req.headers.if_match {
                Some(v) => Some(v.trim_matches('"').parse::<i64>().map_err(|_| {
                    ApiError::bad_request("If-Match must be the player's version number")
                })?),
                None => None,
            };
            let body = parse_json(req.body)?;
            ok(services
                .update_player(c, g, player_id(params.get(0))?, body, if_match)
                .await?)
        }
        Route::Wallet => ok(services
            .change_wallet(c, g, player_id(params.get(0))?, parse_json(req.body)?)
            .await?),
        Route::Inventory => ok(services.inventory(c, g, player_id(params.get(0))?).await?),
        Route::UseItem => {
            let (pid, item) = (player_id(params.get(0))?, params.get(1).unwrap_or(""));
            ok(services
                .use_item(c, g, pid, item, parse_json(req.body)?)
                .await?)
        }
        Route::TransferItem => {
            let (pid, item) = (player_id(params.get(0))?, params.get(1).unwrap_or(""));
            ok(services
                .transfer_item(c, g, pid, item, parse_json(req.body)?)
                .await?)
        }
        Route::GrantItem => {
            let (pid, item) = (player_id(params.get(0))?, params.get(1).unwrap_or(""));
            ok(services
                .grant_item(c, g, pid, item, parse_json(req.body)?)
                .await?)
        }
        Route::PlayerOrders => {
            let pid = player_id(params.get(0))?;
            ok(services.list_orders(c, g, Some(pid), page(req)?).await?)
        }
        Route::Ledger => ok(services
            .ledger(c, g, player_id(params.get(0))?, page(req)?)
            .await?),
        Route::ListItems => ok(services.list_item_defs(c, g).await?),
        Route::CreateItem => Ok(Response::ok_with(
            201,
            &services
                .create_item_def(c, g, parse_json(req.body)?)
                .await?,
        )),
        Route::GetItem => ok(services
            .get_item_def(c, g, params.get(0).unwrap_or(""))
            .await?),
        Route::UpdateItem => ok(services
            .update_item_def(c, g, params.get(0).unwrap_or(""), parse_json(req.body)?)
            .await?),
        Route::DeleteItem => ok(services
            .delete_item_def(c, g, params.get(0).unwrap_or(""))
            .await?),
        Route::CreateOrder => {
            let (data, created) = services
                .create_order(c, g, parse_json(req.body)?, req.headers.idempotency_key)
                .await?;
            Ok(Response::ok_with(if created { 201 } else { 200 }, &data))
        }
        Route::ListOrders => ok(services
            .list_orders(c, g, query_i64(req, "player_id")?, page(req)?)
            .await?),
        Route::GetOrder => ok(services
            .get_order(c, g, params.get(0).unwrap_or(""))
            .await?),
        Route::CancelOrder => ok(services
            .cancel_order(c, g, params.get(0).unwrap_or(""))
            .await?),
        Route::PayOrder => ok(services
            .pay_order(c, g, params.get(0).unwrap_or(""))
            .await?),
        Route::OrderStatus => ok(services
            .change_order_status(c, g, params.get(0).unwrap_or(""), parse_json(req.body)?)
            .await?),
        Route::GameStats => {
            let target = params.get(0).unwrap_or("");
            ok(services.game_stats(c, target).await?)
        }
        Route::GameAction => {
            let target = params.get(0).unwrap_or("");
            if target != g && c.role != Role::Admin {
                return Err(ApiError::forbidden("token is not valid for this game"));
            }
            let body: serde_json::Value = body_or_empty(req)?;
            ok(services
                .game_action(c, target, params.get(1).unwrap_or(""), body)
                .await?)
        }
        Route::Metrics => {
            services.require_admin(c)?;
            Ok(metrics(shard).await)
        }
        Route::CacheStats => {
            services.require_admin(c)?;
            let mut shards = vec![shard.cache_stats()];
            shards.extend(services.peers().cache_stats().await);
            shards.sort_by_key(|s| s["shard"].as_u64());
            ok(json!({ "node_id": shard.config.node.id, "shards": shards }))
        }
        Route::CacheInvalidate => {
            services.require_admin(c)?;
            ok(services
                .invalidate_on_request(parse_json(req.body)?)
                .await?)
        }
        Route::Health
        | Route::Ready
        | Route::Register
        | Route::Login
        | Route::Refresh
        | Route::ServerAuth
        | Route::AdminAuth
        | Route::ListGames => Err(ApiError::internal()),
    }
}

/// Prometheus text exposition of every shard's metrics.
async fn metrics(shard: &Shard) -> Response {
    let mut samples = shard.metric_samples();
    samples.extend(shard.services.peers().metric_samples().await);
    let mut r = Response::raw(200, crate::metrics::render(&samples).into_bytes());
    r.content_type = "text/plain; version=0.0.4";
    r
}

/// Per-shard and per-backend state (admin).
async fn detailed(shard: &Shard) -> serde_json::Value {
    use std::sync::atomic::Ordering::Relaxed;
    let shards: Vec<serde_json::Value> = shard
        .node
        .gauges
        .iter()
        .enumerate()
        .map(|(i, g)| {
            json!({
                "shard": i,
                "http_connections": g.http_connections.load(Relaxed),
                "tcp_connections": g.tcp_connections.load(Relaxed),
                "http_requests": g.http_requests.load(Relaxed),
                "tcp_frames": g.tcp_frames.load(Relaxed),
            })
        })
        .collect();
    let failed = shard.services.check_backends().await;
    let backends: Vec<serde_json::Value> = shard
        .services
        .games()
        .iter()
        .map(|g| {
            let name = format!("database:{}", g.id);
            let error = failed.iter().find(|(n, _)| *n == name).map(|(_, e)| e.clone());
            json!({ "component": name, "status": if error.is_some() { "down" } else { "up" }, "error": error })
        })
        .collect();
    let databases: Vec<serde_json::Value> = shard
        .services
        .games()
        .iter()
        .map(|g| {
            let replicas: Vec<serde_json::Value> = g
                .store
                .replica_reports()
                .into_iter()
                .map(|r| json!({ "name": r.name, "usable": r.usable, "lag_ms": r.lag_ms, "reads": r.reads, "error": r.error }))
                .collect();
            json!({ "game": g.id, "primary_reads": g.store.primary_reads(), "replicas": replicas })
        })
        .collect();
    json!({
        "node_id": shard.config.node.id,
        "uptime_s": shard.node.started.elapsed().as_secs(),
        "databases_seen_by_this_shard": databases,
        "answered_by_shard": shard.id,
        "tcp_connections_node": shard.node.tcp_connections.load(Relaxed),
        "shards": shards,
        "backends": backends,
    })
}

fn health(shard: &Shard) -> Response {
    let body = shard
        .health
        .current(&shard.config.node.id, shard.id, shard.node.started);
    Response::raw(200, body)
}

async fn ready(shard: &Shard) -> Response {
    if shard.is_draining() || shard.node.is_shutting_down() {
        return Response::status(503, "shutting down");
    }
    let failed = shard.services.check_backends().await;
    if failed.is_empty() {
        let mut checks: serde_json::Map<String, serde_json::Value> = shard
            .services
            .games()
            .iter()
            .map(|g| (format!("database:{}", g.id), json!("ok")))
            .collect();
        // Redis is optional for serving: without it the node answers from
        // L1 and the databases, so it stays ready and says it is degraded.
        let cache = shard.services.cache();
        let mut degraded = false;
        if cache.has_l2() {
            let state = match cache.l2_ping().await {
                Ok(()) => "ok".to_string(),
                Err(e) => {
                    degraded = true;
                    format!("down: {e}")
                }
            };
            checks.insert("redis".into(), json!(state));
            if !cache.bus_ok() {
                degraded = true;
                checks.insert("invalidation_channel".into(), json!("down"));
            }
        }
        for g in shard.services.games() {
            for r in g.store.replica_reports() {
                let state = if r.usable {
                    "ok".to_string()
                } else {
                    format!(
                        "skipped (lag {} ms{})",
                        r.lag_ms,
                        r.error.map(|e| format!(", {e}")).unwrap_or_default()
                    )
                };
                checks.insert(format!("replica:{}:{}", g.id, r.name), json!(state));
            }
        }
        let status = if degraded { "degraded" } else { "ready" };
        return Response::ok(&json!({ "status": status, "checks": checks }));
    }
    let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
    let body = json!({
        "code": 503,
        "message": format!("not ready: {} unavailable", names.join(", ")),
        "failed": failed.iter().map(|(n, e)| json!({"component": n, "error": e})).collect::<Vec<_>>(),
    });
    Response::raw(503, body.to_string().into_bytes())
}

/// The bearer token's caller, or 401.
fn authenticate(shard: &Shard, req: &Request<'_>) -> Result<Caller, ApiError> {
    let header = req
        .headers
        .authorization
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| ApiError::unauthorized("Authorization must be a Bearer token"))?;
    shard.services.authenticate(token.trim())
}

/// The game of an unauthenticated request: `X-Game-Id` or the default game.
fn anonymous_game(shard: &Shard, req: &Request<'_>) -> Result<String, ApiError> {
    let game = req
        .headers
        .game_id
        .unwrap_or(shard.config.default_game.as_str());
    shard.services.game(game).map(|g| g.id.clone())
}

/// The game an authenticated request acts in: a player's or game server's
/// token fixes it (a different `X-Game-Id` is refused); an admin names it.
fn caller_game(shard: &Shard, req: &Request<'_>, caller: &Caller) -> Result<String, ApiError> {
    match (caller.role, req.headers.game_id) {
        (Role::Admin, Some(g)) => shard.services.game(g).map(|g| g.id.clone()),
        (Role::Admin, None) => Ok(shard.config.default_game.clone()),
        (_, Some(g)) if g != caller.game_id => {
            Err(ApiError::forbidden("token is not valid for this game"))
        }
        _ => Ok(caller.game_id.clone()),
    }
}

fn player_id(raw: Option<&str>) -> Result<i64, ApiError> {
    raw.and_then(|s| s.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request("player id must be a positive integer"))
}

fn allowed_origin<'a>(shard: &Shard, req: &Request<'a>) -> Option<&'a str> {
    let origin = req.headers.origin?;
    shard
        .config
        .http
        .cors_origins
        .iter()
        .any(|o| o == "*" || o == origin)
        .then_some(origin)
}

fn preflight(shard: &Shard, req: &Request<'_>) -> Response {
    if allowed_origin(shard, req).is_none() {
        return Response::status(403, "origin not allowed");
    }
    let mut r = Response::raw(204, Vec::new())
        .with_header(
            "Access-Control-Allow-Methods",
            "GET, POST, PUT, DELETE, OPTIONS",
        )
        .with_header(
            "Access-Control-Allow-Headers",
            "Authorization, Content-Type, X-Game-Id, If-Match, Idempotency-Key, X-Request-Id",
        )
        .with_header("Access-Control-Max-Age", "600");
    r.content_type = "text/plain";
    r
}

fn with_cors(shard: &Shard, req: &Request<'_>, response: Response) -> Response {
    match allowed_origin(shard, req) {
        Some(origin) => response
            .with_header("Access-Control-Allow-Origin", origin)
            .with_header("Vary", "Origin"),
        None => response,
    }
}
