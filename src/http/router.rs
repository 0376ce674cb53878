//! Maps a method and path to a [`Route`]: unknown paths are 404 and known
//! paths with another method are 405 with the `Allow` list. Literal segments
//! win over parameters (`/players/login` is not player `login`).

/// Every HTTP endpoint the server answers, grouped by who may call it: the
/// group decides whether a token is checked before the handler runs, so a
/// handler that needs a caller cannot be reached without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Load-balancer probes: anyone, never rate-limited.
    Probe(Probe),
    /// Anyone, rate-limited (a route that may need a caller authenticates
    /// it itself, as `/metrics` does when it is not public).
    Public(Public),
    /// A valid bearer token first, then the handler with its caller.
    Authed(Authed),
}

/// Routes that load balancers poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `GET /health`.
    Health,
    /// `GET /ready`.
    Ready,
}

/// Routes that need no token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Public {
    /// `GET /metrics` (anyone when `http.metrics_public`, else admins).
    Metrics,
    /// `POST /api/v1/players`, `/api/v1/players/register`.
    Register,
    /// `POST /api/v1/auth/login`, `/api/v1/players/login`.
    Login,
    /// `POST /api/v1/auth/refresh`.
    Refresh,
    /// `POST /api/v1/auth/server`.
    ServerAuth,
    /// `POST /api/v1/auth/admin`.
    AdminAuth,
    /// `GET /api/v1/games`.
    ListGames,
    /// `GET /console`, `/console/{file}`: the operator console's static
    /// files (it logs in through the API like any client).
    Console,
}

/// Routes that need a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authed {
    /// `GET /health/detailed`, `/health/components` (admin).
    HealthDetailed,
    /// `POST /api/v1/auth/logout`, `/api/v1/players/logout`.
    Logout,
    /// `GET /api/v1/players?username=` (game server, admin).
    FindPlayer,
    /// `GET /api/v1/players/{id}`.
    GetPlayer,
    /// `PUT /api/v1/players/{id}`.
    UpdatePlayer,
    /// `POST /api/v1/players/{id}/wallet`.
    Wallet,
    /// `GET /api/v1/players/{id}/items`.
    Inventory,
    /// `POST /api/v1/players/{id}/items/{item_id}/use`.
    UseItem,
    /// `POST /api/v1/players/{id}/items/{item_id}/transfer`.
    TransferItem,
    /// `POST /api/v1/players/{id}/items/{item_id}/grant`.
    GrantItem,
    /// `GET /api/v1/players/{id}/orders`.
    PlayerOrders,
    /// `GET /api/v1/players/{id}/ledger`.
    Ledger,
    /// `GET /api/v1/players/{id}/notifications?after=ID`.
    Notifications,
    /// `POST /api/v1/players/{id}/notifications` (game server, admin).
    SendMessage,
    /// `GET /api/v1/players/{id}/presence`.
    Presence,
    /// `GET /api/v1/items`.
    ListItems,
    /// `POST /api/v1/items`.
    CreateItem,
    /// `GET /api/v1/items/{item_id}`.
    GetItem,
    /// `PUT /api/v1/items/{item_id}`.
    UpdateItem,
    /// `DELETE /api/v1/items/{item_id}`.
    DeleteItem,
    /// `POST /api/v1/orders`.
    CreateOrder,
    /// `GET /api/v1/orders`.
    ListOrders,
    /// `GET /api/v1/orders/{order_id}`.
    GetOrder,
    /// `DELETE /api/v1/orders/{order_id}`.
    CancelOrder,
    /// `POST /api/v1/orders/{order_id}/pay`.
    PayOrder,
    /// `PUT /api/v1/orders/{order_id}/status`: cancel or refund (never pay).
    OrderStatus,
    /// `GET /api/v1/games/{game_id}/stats`.
    GameStats,
    /// `POST /api/v1/games/{game_id}/{action}`.
    GameAction,
    /// `POST /api/v1/games/{game_id}/broadcast` (admin).
    Broadcast,
    /// `GET /api/v1/leaderboards`.
    ListBoards,
    /// `POST /api/v1/leaderboards` (admin).
    CreateBoard,
    /// `GET /api/v1/leaderboards/{id}`: the top records.
    BoardTop,
    /// `DELETE /api/v1/leaderboards/{id}` (admin).
    DeleteBoard,
    /// `POST /api/v1/leaderboards/{id}/scores`.
    WriteScore,
    /// `GET /api/v1/leaderboards/{id}/around/{player_id}`.
    BoardAround,
    /// `GET /api/v1/leaderboards/{id}/players/{player_id}`.
    BoardPlayer,
    /// `GET /api/v1/audit` (admin).
    AuditLog,
    /// `GET /api/v1/audit/chains` (admin).
    AuditChains,
    /// `GET /api/v1/cache/stats`.
    CacheStats,
    /// `POST /api/v1/cache/invalidate`.
    CacheInvalidate,
    /// `GET /api/v1/cluster/nodes`.
    ClusterNodes,
    /// `GET /api/v1/cluster/config`.
    GetClusterConfig,
    /// `PUT /api/v1/cluster/config`.
    PutClusterConfig,
}

/// A path pattern: literal segments, `*` matching one parameter segment
/// (written `{name}` in [`TABLE`], which names it in the template).
struct Pattern {
    /// The metrics label: the path with `*` for each parameter.
    label: &'static str,
    /// The path template with each parameter named, `/api/v1/players/{id}`:
    /// what [`templates`] lists and `docs/openapi.yaml` must describe.
    template: &'static str,
    segments: &'static [&'static str],
    methods: &'static [(&'static str, Route)],
    allow: &'static str,
}

/// A pattern segment as the matcher sees it: a literal, or `*` for a
/// named parameter `{name}`.
macro_rules! seg {
    ($s:literal) => {
        $s
    };
    ({ $p:ident }) => {
        "*"
    };
}

/// A pattern segment as the path template names it: a literal, or `{name}`.
macro_rules! tmpl {
    ($s:literal) => {
        $s
    };
    ({ $p:ident }) => {
        concat!("{", stringify!($p), "}")
    };
}

macro_rules! pat {
    ([$($seg:tt),*], $allow:literal, $($m:literal => $kind:ident :: $r:ident),+) => {
        Pattern {
            label: concat!($("/", seg!($seg)),*),
            template: concat!($("/", tmpl!($seg)),*),
            segments: &[$(seg!($seg)),*], methods: &[$(($m, Route::$kind($kind::$r))),+], allow: $allow }
    };
}

const TABLE: &[Pattern] = &[
    pat!(["health"], "GET", "GET" => Probe::Health),
    pat!(["ready"], "GET", "GET" => Probe::Ready),
    pat!(["metrics"], "GET", "GET" => Public::Metrics),
    pat!(["console"], "GET", "GET" => Public::Console),
    // `/console/`: the page too (an empty segment matches no parameter).
    pat!(["console", ""], "GET", "GET" => Public::Console),
    pat!(["console", {file}], "GET", "GET" => Public::Console),
    pat!(["health", "detailed"], "GET", "GET" => Authed::HealthDetailed),
    pat!(["health", "components"], "GET", "GET" => Authed::HealthDetailed),
    pat!(["api", "v1", "players"], "GET, POST", "GET" => Authed::FindPlayer, "POST" => Public::Register),
    pat!(["api", "v1", "players", "register"], "POST", "POST" => Public::Register),
    pat!(["api", "v1", "players", "login"], "POST", "POST" => Public::Login),
    pat!(["api", "v1", "players", "logout"], "POST", "POST" => Authed::Logout),
    pat!(["api", "v1", "auth", "login"], "POST", "POST" => Public::Login),
    pat!(["api", "v1", "auth", "refresh"], "POST", "POST" => Public::Refresh),
    pat!(["api", "v1", "auth", "logout"], "POST", "POST" => Authed::Logout),
    pat!(["api", "v1", "auth", "server"], "POST", "POST" => Public::ServerAuth),
    pat!(["api", "v1", "auth", "admin"], "POST", "POST" => Public::AdminAuth),
    pat!(["api", "v1", "players", {id}], "GET, PUT", "GET" => Authed::GetPlayer, "PUT" => Authed::UpdatePlayer),
    pat!(["api", "v1", "players", {id}, "wallet"], "POST", "POST" => Authed::Wallet),
    pat!(["api", "v1", "players", {id}, "items"], "GET", "GET" => Authed::Inventory),
    pat!(["api", "v1", "players", {id}, "items", {item_id}, "use"], "POST", "POST" => Authed::UseItem),
    pat!(["api", "v1", "players", {id}, "items", {item_id}, "transfer"], "POST", "POST" => Authed::TransferItem),
    pat!(["api", "v1", "players", {id}, "items", {item_id}, "grant"], "POST", "POST" => Authed::GrantItem),
    pat!(["api", "v1", "players", {id}, "orders"], "GET", "GET" => Authed::PlayerOrders),
    pat!(["api", "v1", "players", {id}, "ledger"], "GET", "GET" => Authed::Ledger),
    pat!(["api", "v1", "players", {id}, "notifications"], "GET, POST", "GET" => Authed::Notifications, "POST" => Authed::SendMessage),
    pat!(["api", "v1", "players", {id}, "presence"], "GET", "GET" => Authed::Presence),
    pat!(["api", "v1", "items"], "GET, POST", "GET" => Authed::ListItems, "POST" => Authed::CreateItem),
    pat!(["api", "v1", "items", {item_id}], "GET, PUT, DELETE", "GET" => Authed::GetItem, "PUT" => Authed::UpdateItem, "DELETE" => Authed::DeleteItem),
    pat!(["api", "v1", "orders"], "GET, POST", "GET" => Authed::ListOrders, "POST" => Authed::CreateOrder),
    pat!(["api", "v1", "orders", {order_id}], "GET, DELETE", "GET" => Authed::GetOrder, "DELETE" => Authed::CancelOrder),
    pat!(["api", "v1", "orders", {order_id}, "pay"], "POST", "POST" => Authed::PayOrder),
    pat!(["api", "v1", "orders", {order_id}, "status"], "PUT", "PUT" => Authed::OrderStatus),
    pat!(["api", "v1", "games"], "GET", "GET" => Public::ListGames),
    pat!(["api", "v1", "games", {game_id}, "stats"], "GET", "GET" => Authed::GameStats),
    pat!(["api", "v1", "games", {game_id}, "broadcast"], "POST", "POST" => Authed::Broadcast),
    pat!(["api", "v1", "games", {game_id}, {action}], "POST", "POST" => Authed::GameAction),
    pat!(["api", "v1", "leaderboards"], "GET, POST", "GET" => Authed::ListBoards, "POST" => Authed::CreateBoard),
    pat!(["api", "v1", "leaderboards", {id}], "GET, DELETE", "GET" => Authed::BoardTop, "DELETE" => Authed::DeleteBoard),
    pat!(["api", "v1", "leaderboards", {id}, "scores"], "POST", "POST" => Authed::WriteScore),
    pat!(["api", "v1", "leaderboards", {id}, "around", {player_id}], "GET", "GET" => Authed::BoardAround),
    pat!(["api", "v1", "leaderboards", {id}, "players", {player_id}], "GET", "GET" => Authed::BoardPlayer),
    pat!(["api", "v1", "audit"], "GET", "GET" => Authed::AuditLog),
    pat!(["api", "v1", "audit", "chains"], "GET", "GET" => Authed::AuditChains),
    pat!(["api", "v1", "cache", "stats"], "GET", "GET" => Authed::CacheStats),
    pat!(["api", "v1", "cache", "invalidate"], "POST", "POST" => Authed::CacheInvalidate),
    pat!(["api", "v1", "cluster", "nodes"], "GET", "GET" => Authed::ClusterNodes),
    pat!(["api", "v1", "cluster", "config"], "GET, PUT", "GET" => Authed::GetClusterConfig, "PUT" => Authed::PutClusterConfig),
];

/// One method and path the router serves, as an API description names it:
/// the path with each parameter in braces (`/api/v1/players/{id}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteTemplate {
    /// `GET`, `POST`, `PUT` or `DELETE`.
    pub method: &'static str,
    /// The path template, parameters named as in `docs/openapi.yaml`.
    pub path: &'static str,
    /// What the router answers it with.
    pub route: Route,
}

/// Every method and path template the router serves, read from the table
/// [`route`] matches with, so that a description of the API
/// (`docs/openapi.yaml`, checked by `tests/openapi.rs`) can be compared with
/// what is served and cannot drift from it. `OPTIONS` (CORS pre-flight) is
/// answered before routing, for any path, and is not listed.
pub fn templates() -> impl Iterator<Item = RouteTemplate> {
    TABLE.iter().flat_map(|p| {
        p.methods.iter().map(move |(method, route)| RouteTemplate {
            method,
            path: p.template,
            route: *route,
        })
    })
}

/// Path parameters captured by `*` segments, in order.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Params<'a> {
    values: [&'a str; 3],
    len: usize,
}

impl<'a> Params<'a> {
    /// The `i`-th captured segment.
    pub fn get(&self, i: usize) -> Option<&'a str> {
        (i < self.len).then(|| self.values[i])
    }
}

/// Result of routing.
#[derive(Debug, PartialEq, Eq)]
pub enum Matched<'a> {
    /// A route, its parameters, and its path pattern (a metrics label).
    Found(Route, Params<'a>, &'static str),
    /// The path exists but not for this method; the `Allow` value.
    MethodNotAllowed(&'static str),
    /// No such path.
    NotFound,
}

fn capture<'a>(p: &Pattern, segs: &[&'a str]) -> Option<(Params<'a>, usize)> {
    if p.segments.len() != segs.len() {
        return None;
    }
    let mut params = Params::default();
    let mut literal = 0;
    for (want, got) in p.segments.iter().zip(segs) {
        if *want == "*" {
            if got.is_empty() || params.len == params.values.len() {
                return None;
            }
            params.values[params.len] = got;
            params.len += 1;
        } else if want == got {
            literal += 1;
        } else {
            return None;
        }
    }
    Some((params, literal))
}

/// Routes `method` and `path`: the most literal pattern that has the method
/// wins; when none has it, 405 with the most literal pattern's methods.
pub fn route<'a>(method: &str, path: &'a str) -> Matched<'a> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let mut segs: [&'a str; 8] = [""; 8];
    let mut n = 0;
    for s in trimmed.split('/') {
        if n == segs.len() {
            return Matched::NotFound;
        }
        segs[n] = s;
        n += 1;
    }
    let segs = &segs[..n];
    let mut found: Option<(Route, Params<'a>, usize, &'static str)> = None;
    let mut allow: Option<(&'static str, usize)> = None;
    for p in TABLE {
        let Some((params, literal)) = capture(p, segs) else {
            continue;
        };
        match p.methods.iter().find(|(m, _)| *m == method) {
            Some((_, r)) if found.as_ref().is_none_or(|(_, _, l, _)| literal > *l) => {
                found = Some((*r, params, literal, p.label))
            }
            Some(_) => {}
            None if allow.is_none_or(|(_, l)| literal > l) => allow = Some((p.allow, literal)),
            None => {}
        }
    }
    match (found, allow) {
        (Some((r, params, _, label)), _) => Matched::Found(r, params, label),
        (None, Some((allow, _))) => Matched::MethodNotAllowed(allow),
        (None, None) => Matched::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path for `template` with every parameter filled in.
    fn filled(template: &str) -> String {
        template
            .split('/')
            .map(|s| if s.starts_with('{') { "x1" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }

    #[test]
    fn every_template_routes_to_its_own_route() {
        let all: Vec<RouteTemplate> = templates().collect();
        assert!(!all.is_empty());
        for t in &all {
            match route(t.method, &filled(t.path)) {
                Matched::Found(r, _, label) => {
                    assert_eq!(r, t.route, "{} {}", t.method, t.path);
                    assert_eq!(label, filled(t.path).replace("x1", "*"));
                }
                other => panic!("{} {}: {other:?}", t.method, t.path),
            }
            let same = all
                .iter()
                .filter(|o| o.method == t.method && o.path == t.path);
            assert_eq!(same.count(), 1, "{} {} listed twice", t.method, t.path);
        }
        for p in TABLE {
            let methods: Vec<&str> = p.methods.iter().map(|(m, _)| *m).collect();
            assert_eq!(p.allow, methods.join(", "), "Allow of {}", p.template);
        }
    }

    #[test]
    fn routes_literals_params_and_methods() {
        assert!(matches!(
            route("GET", "/health"),
            Matched::Found(Route::Probe(Probe::Health), ..)
        ));
        assert_eq!(route("POST", "/health"), Matched::MethodNotAllowed("GET"));
        assert_eq!(route("GET", "/nope"), Matched::NotFound);
        assert_eq!(route("GET", "/health/"), Matched::NotFound);
        match route("GET", "/api/v1/players/42") {
            Matched::Found(Route::Authed(Authed::GetPlayer), p, _) => {
                assert_eq!(p.get(0), Some("42"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            route("PUT", "/api/v1/players/42"),
            Matched::Found(Route::Authed(Authed::UpdatePlayer), ..)
        ));
        assert!(matches!(
            route("POST", "/api/v1/players/login"),
            Matched::Found(Route::Public(Public::Login), ..)
        ));
        assert_eq!(
            route("DELETE", "/api/v1/players/42"),
            Matched::MethodNotAllowed("GET, PUT")
        );
        assert_eq!(route("GET", "/a/b/c/d/e/f/g/h/i"), Matched::NotFound);
        match route("POST", "/api/v1/players/7/items/sword/transfer") {
            Matched::Found(Route::Authed(Authed::TransferItem), p, _) => {
                assert_eq!((p.get(0), p.get(1)), (Some("7"), Some("sword")))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            route("GET", "/api/v1/games/g1/stats"),
            Matched::Found(Route::Authed(Authed::GameStats), ..)
        ));
        match route("POST", "/api/v1/games/g1/level_up") {
            Matched::Found(Route::Authed(Authed::GameAction), p, _) => {
                assert_eq!(p.get(1), Some("level_up"))
            }
            other => panic!("{other:?}"),
        }
        // POST to the stats path is the action pattern's business (unknown action later).
        assert!(matches!(
            route("POST", "/api/v1/games/g1/stats"),
            Matched::Found(Route::Authed(Authed::GameAction), ..)
        ));
        assert_eq!(
            route("GET", "/api/v1/games/g1/level_up"),
            Matched::MethodNotAllowed("POST")
        );
    }
}
