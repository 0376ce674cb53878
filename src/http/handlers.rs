//! Route handlers: each turns a parsed request into one service call and the
//! result into a [`Response`]. No business rule lives here.

use super::request::Request;
use super::response::Response;
use super::router::{self, Matched, Params, Route};
use crate::clock;
use crate::service::players::{LoginRequest, RegisterRequest};
use crate::service::{parse_json, ApiError, Caller, Role};
use crate::shard::Shard;
use serde_json::json;

/// Answers one request.
pub async fn handle(shard: &Shard, req: &Request<'_>) -> Response {
    let response = if req.method == "OPTIONS" {
        preflight(shard, req)
    } else {
        match router::route(req.method, req.path) {
            Matched::NotFound => Response::status(404, "no such endpoint"),
            Matched::MethodNotAllowed(allow) => {
                Response::status(405, "method not allowed").with_header("Allow", allow)
            }
            Matched::Found(route, params) => dispatch(shard, route, params, req)
                .await
                .unwrap_or_else(|e| Response::error(&e)),
        }
    };
    with_cors(shard, req, response)
}

async fn dispatch(
    shard: &Shard,
    route: Route,
    params: Params<'_>,
    req: &Request<'_>,
) -> Result<Response, ApiError> {
    let services = &shard.services;
    match route {
        Route::Health => Ok(health(shard)),
        Route::Ready => Ok(ready(shard).await),
        Route::Register => {
            let game = anonymous_game(shard, req)?;
            let body: RegisterRequest = parse_json(req.body)?;
            let data = services.register(&game, body).await?;
            Ok(Response::ok_with(201, &data))
        }
        Route::Login => {
            let game = anonymous_game(shard, req)?;
            let body: LoginRequest = parse_json(req.body)?;
            Ok(Response::ok(&services.login(&game, body).await?))
        }
        Route::GetPlayer => {
            let caller = authenticate(shard, req)?;
            let game = caller_game(shard, req, &caller)?;
            let id = player_id(params.get(0))?;
            Ok(Response::ok(
                &services.get_player(&caller, &game, id).await?,
            ))
        }
    }
}

fn health(shard: &Shard) -> Response {
    Response::raw(
        200,
        json!({
            "status": "ok",
            "timestamp": clock::rfc3339_ms(clock::now_ms()),
            "uptime_s": shard.node.started.elapsed().as_secs(),
            "version": env!("CARGO_PKG_VERSION"),
            "node_id": shard.config.node.id,
            "shard": shard.id,
        })
        .to_string()
        .into_bytes(),
    )
}

async fn ready(shard: &Shard) -> Response {
    if shard.is_draining() || shard.node.is_shutting_down() {
        return Response::status(503, "shutting down");
    }
    let failed = shard.services.check_backends().await;
    if failed.is_empty() {
        let checks: serde_json::Map<String, serde_json::Value> = shard
            .services
            .games()
            .iter()
            .map(|g| (format!("database:{}", g.id), json!("ok")))
            .collect();
        return Response::ok(&json!({ "status": "ready", "checks": checks }));
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
