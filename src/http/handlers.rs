//! Route handlers: each turns a parsed request into one service call and the
//! result into a [`Response`]. No business rule lives here.

use super::health::HealthBody;
use super::request::Request;
use super::response::Response;
use super::router::{self, Authed, Matched, Params, Probe, Public, Route};
use crate::envelope::parse_json;
use crate::ops::health::Readiness;
use crate::ops::Operations;
use crate::pipeline::{self, Credentials, Scope};
use crate::service::audit::AuditQuery;
use crate::service::budgets::Guesser;
use crate::service::players::RegisterRequest;
use crate::service::sessions::{LoginRequest, RefreshRequest, ServerAuthRequest};
use crate::service::{ApiError, Caller, PageQuery};
use crate::shard::Shard;
use serde_json::json;
use std::net::IpAddr;

/// Answers one request from `peer`; `health` is this shard's `/health` body.
pub async fn handle(
    shard: &Shard,
    health: &HealthBody,
    req: &Request<'_>,
    peer: IpAddr,
) -> Response {
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
                (answer(shard, health, route, params, req, peer).await, label)
            }
        }
    };
    pipeline::count(shard, "http", label, response.status, started);
    with_cors(shard, req, response)
}

/// Answers a routed request through the pipeline's phases as its route's
/// group requires: probes at once; public routes once admitted; the others
/// admitted, authenticated and scoped to their game (`crate::pipeline`).
async fn answer(
    shard: &Shard,
    health: &HealthBody,
    route: Route,
    params: Params<'_>,
    req: &Request<'_>,
    peer: IpAddr,
) -> Response {
    // The peer, or the address a trusted proxy forwarded for.
    let client = shard
        .trusted_proxies
        .client(peer, req.headers.forwarded_for);
    let result = match route {
        Route::Probe(p) => return answer_probe(shard, health, p, req).await,
        Route::Public(r) => match pipeline::admit(shard, client).await {
            Err(e) => Err(e),
            Ok(()) if r == Public::Console => Ok(super::console::file(params.get(0))),
            Ok(()) => public(shard, r, req, client).await,
        },
        Route::Authed(r) => authorized(shard, r, params, req, client).await,
    };
    result.unwrap_or_else(|e| Response::error(&e))
}

/// An authenticated route through the pipeline: admit, authenticate, scope,
/// call.
async fn authorized(
    shard: &Shard,
    route: Authed,
    params: Params<'_>,
    req: &Request<'_>,
    client: IpAddr,
) -> Result<Response, ApiError> {
    pipeline::admit(shard, client).await?;
    let mut caller = pipeline::authenticate(shard, Credentials::Bearer(req.headers.authorization))?;
    caller.to_mut().client = Some(client);
    let kind = match route {
        Authed::Logout => Scope::EndSession,
        _ => Scope::Game,
    };
    let game = pipeline::scope(shard, &caller, req.headers.game_id, kind)?;
    authed(shard, route, params, req, &caller, &game.id).await
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

async fn answer_probe(
    shard: &Shard,
    health: &HealthBody,
    probe: Probe,
    req: &Request<'_>,
) -> Response {
    match probe {
        Probe::Health => Response::raw(
            200,
            health.current(&shard.config.node.id, shard.id, shard.node.started),
        ),
        Probe::Ready => match req.query_param("scope") {
            None | Some("") | Some("backends") => {
                ready(shard.ops.readiness(&shard.node, shard.is_draining()).await)
            }
            Some("node") => ready(Operations::node_readiness(&shard.node, shard.is_draining())),
            Some(_) => Response::status(400, "scope must be node or backends"),
        },
    }
}

async fn public(
    shard: &Shard,
    route: Public,
    req: &Request<'_>,
    client: IpAddr,
) -> Result<Response, ApiError> {
    let services = &shard.services;
    let ok = |v: serde_json::Value| Ok(Response::ok(&v));
    match route {
        Public::Metrics => {
            let caller =
                pipeline::authenticate(shard, Credentials::Bearer(req.headers.authorization));
            shard.ops.may_read_metrics(caller.map(|c| c.into_owned()))?;
            Ok(metrics(shard).await)
        }
        Public::Register => {
            let game = services.anonymous_scope(req.headers.game_id)?;
            let body: RegisterRequest = parse_json(req.body)?;
            Ok(Response::ok_with(
                201,
                &services
                    .register(&game.id, body, services.anonymous_actor(Some(client)))
                    .await?,
            ))
        }
        Public::Login => {
            let game = services.anonymous_scope(req.headers.game_id)?;
            ok(services
                .login(
                    &game.id,
                    parse_json::<LoginRequest>(req.body)?,
                    Guesser::Client(client),
                )
                .await?)
        }
        Public::Refresh => ok(services
            .refresh(parse_json::<RefreshRequest>(req.body)?)
            .await?),
        Public::ServerAuth => ok(services
            .server_token(parse_json::<ServerAuthRequest>(req.body)?, client)
            .await?),
        Public::AdminAuth => ok(services
            .admin_login(parse_json::<LoginRequest>(req.body)?, client)
            .await?),
        Public::ListGames => ok(services.list_games()),
        Public::Console => Ok(super::console::file(None)),
    }
}

async fn authed(
    shard: &Shard,
    route: Authed,
    params: Params<'_>,
    req: &Request<'_>,
    c: &Caller,
    g: &str,
) -> Result<Response, ApiError> {
    let services = &shard.services;
    let ok = |v: serde_json::Value| Ok(Response::ok(&v));
    let text = |i: usize| params.get(i).unwrap_or("");
    match route {
        Authed::HealthDetailed => {
            let report = shard.ops.detailed_health(c, &shard.node, shard.id).await?;
            ok(serde_json::to_value(report).map_err(|_| ApiError::internal())?)
        }
        Authed::Logout => ok(services.logout(c).await?),
        Authed::FindPlayer => {
            let username = req.query_text("username").ok_or_else(|| {
                ApiError::bad_request("username is not a valid URL-encoded value")
            })?;
            ok(services.find_player(c, g, &username).await?)
        }
        Authed::GetPlayer => {
            let data = services.get_player(c, g, player_id(params.get(0))?).await?;
            Ok(Response::ok_data(200, &data))
        }
        Authed::UpdatePlayer => {
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
        Authed::Wallet => ok(services
            .change_wallet(c, g, player_id(params.get(0))?, parse_json(req.body)?)
            .await?),
        Authed::Inventory => ok(services.inventory(c, g, player_id(params.get(0))?).await?),
        Authed::UseItem => ok(services
            .use_item(
                c,
                g,
                player_id(params.get(0))?,
                text(1),
                parse_json(req.body)?,
            )
            .await?),
        Authed::TransferItem => ok(services
            .transfer_item(
                c,
                g,
                player_id(params.get(0))?,
                text(1),
                parse_json(req.body)?,
            )
            .await?),
        Authed::GrantItem => ok(services
            .grant_item(
                c,
                g,
                player_id(params.get(0))?,
                text(1),
                parse_json(req.body)?,
            )
            .await?),
        Authed::PlayerOrders => {
            let pid = player_id(params.get(0))?;
            ok(services.list_orders(c, g, Some(pid), page(req)?).await?)
        }
        Authed::Ledger => ok(services
            .ledger(c, g, player_id(params.get(0))?, page(req)?)
            .await?),
        Authed::Notifications => {
            let after = query_i64(req, "after")?.unwrap_or(0);
            let limit = query_i64(req, "limit")?;
            let pid = player_id(params.get(0))?;
            ok(services.notifications(c, g, pid, after, limit).await?)
        }
        Authed::SendMessage => Ok(Response::ok_with(
            201,
            &services
                .send_message(c, g, player_id(params.get(0))?, parse_json(req.body)?, true)
                .await?,
        )),
        Authed::Presence => ok(services.presence(c, g, player_id(params.get(0))?).await?),
        Authed::ListItems => ok(services.list_item_defs(c, g).await?),
        Authed::CreateItem => Ok(Response::ok_with(
            201,
            &services
                .create_item_def(c, g, parse_json(req.body)?)
                .await?,
        )),
        Authed::GetItem => ok(services.get_item_def(c, g, text(0)).await?),
        Authed::UpdateItem => ok(services
            .update_item_def(c, g, text(0), parse_json(req.body)?)
            .await?),
        Authed::DeleteItem => ok(services.delete_item_def(c, g, text(0)).await?),
        Authed::CreateOrder => {
            let (data, created) = services
                .create_order(c, g, parse_json(req.body)?, req.headers.idempotency_key)
                .await?;
            Ok(Response::ok_with(if created { 201 } else { 200 }, &data))
        }
        Authed::ListOrders => ok(services
            .list_orders(c, g, query_i64(req, "player_id")?, page(req)?)
            .await?),
        Authed::GetOrder => ok(services.get_order(c, g, text(0)).await?),
        Authed::CancelOrder => ok(services.cancel_order(c, g, text(0)).await?),
        Authed::PayOrder => ok(services.pay_order(c, g, text(0)).await?),
        Authed::OrderStatus => ok(services
            .change_order_status(c, g, text(0), parse_json(req.body)?)
            .await?),
        Authed::GameStats => ok(services.game_stats(c, text(0)).await?),
        Authed::GameAction => {
            let body: serde_json::Value = body_or_empty(req)?;
            ok(services.game_action(c, text(0), text(1), body).await?)
        }
        Authed::Broadcast => ok(services
            .broadcast(c, text(0), parse_json(req.body)?)
            .await?),
        Authed::ListBoards => ok(services.boards(c, g).await?),
        Authed::CreateBoard => Ok(Response::ok_with(
            201,
            &services.create_board(c, g, parse_json(req.body)?).await?,
        )),
        Authed::BoardTop => ok(services
            .board_top(
                c,
                g,
                text(0),
                query_i64(req, "limit")?,
                req.query_param("cursor"),
                req.query_param("period"),
            )
            .await?),
        Authed::DeleteBoard => ok(services.delete_board(c, g, text(0)).await?),
        Authed::WriteScore => ok(services
            .write_score(c, g, text(0), parse_json(req.body)?)
            .await?),
        Authed::BoardAround => ok(services
            .board_around(
                c,
                g,
                text(0),
                player_id(params.get(1))?,
                query_i64(req, "limit")?,
                req.query_param("period"),
            )
            .await?),
        Authed::BoardPlayer => ok(services
            .board_player(
                c,
                g,
                text(0),
                player_id(params.get(1))?,
                req.query_param("period"),
            )
            .await?),
        Authed::AuditLog => {
            let text = |name: &str| -> Result<Option<String>, ApiError> {
                match req.query_param(name) {
                    None => Ok(None),
                    Some(_) => req.query_text(name).map(Some).ok_or_else(|| {
                        ApiError::bad_request(format!("{name} is not a valid URL-encoded value"))
                    }),
                }
            };
            let game = text("game")?;
            let query = AuditQuery {
                actor: text("actor")?,
                subject: text("subject")?,
                action: text("action")?,
                after: text("after")?,
                limit: query_i64(req, "limit")?,
            };
            ok(services
                .audit_log(c, game.as_deref().unwrap_or(g), query)
                .await?)
        }
        Authed::AuditChains => {
            let game = req.query_param("game").unwrap_or(g);
            ok(services.audit_chains(c, game).await?)
        }
        Authed::CacheStats => ok(shard.ops.node_cache_stats(c, shard.id).await?),
        Authed::ClusterNodes => ok(shard.ops.cluster_nodes(c).await?),
        Authed::GetClusterConfig => ok(shard.ops.cluster_config(c).await?),
        Authed::PutClusterConfig => ok(shard
            .ops
            .put_cluster_config(c, req.headers.if_match, req.body)
            .await?),
        Authed::CacheInvalidate => ok(services
            .invalidate_on_request(c, parse_json(req.body)?)
            .await?),
    }
}

/// Prometheus text exposition of every shard's metrics.
async fn metrics(shard: &Shard) -> Response {
    let samples = shard.node_metric_samples().await;
    let mut r = Response::raw(200, crate::metrics::render(&samples).into_bytes());
    r.content_type = "text/plain; version=0.0.4";
    r
}

/// `/ready`'s answer: 200 with each component's state, or 503 naming what
/// is wrong.
fn ready(readiness: Readiness) -> Response {
    match readiness {
        Readiness::ShuttingDown => Response::status(503, "shutting down"),
        Readiness::Starting => Response::status(503, "starting: not every shard listens yet"),
        Readiness::Ready { degraded, checks } => {
            let status = if degraded { "degraded" } else { "ready" };
            Response::ok(&json!({ "status": status, "checks": checks }))
        }
        Readiness::NotReady(failed) => {
            let names: Vec<String> = failed.iter().map(|f| f.component()).collect();
            let body = json!({
                "code": 503,
                "message": format!("not ready: {} unavailable", names.join(", ")),
                "failed": failed
                    .iter()
                    .map(|f| json!({"component": f.component(), "error": f.error}))
                    .collect::<Vec<_>>(),
            });
            Response::raw(503, body.to_string().into_bytes())
        }
    }
}

fn player_id(raw: Option<&str>) -> Result<i64, ApiError> {
    raw.and_then(|s| s.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request("player id must be a positive integer"))
}

fn allowed_origin<'a>(shard: &Shard, req: &Request<'a>) -> Option<&'a str> {
    let origin = req.headers.origin?;
    shard.config.http.allows_origin(origin).then_some(origin)
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
