//! Maps a method and path to a [`Route`]: unknown paths are 404 and known
//! paths with another method are 405 with the `Allow` list. Literal segments
//! win over parameters (`/players/login` is not player `login`).

/// Every HTTP endpoint the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /health`.
    Health,
    /// `GET /ready`.
    Ready,
    /// `GET /metrics`.
    Metrics,
    /// `GET /health/detailed`, `/health/components` (admin).
    HealthDetailed,
    /// `POST /api/v1/players`, `/api/v1/players/register`.
    Register,
    /// `POST /api/v1/auth/login`, `/api/v1/players/login`.
    Login,
    /// `POST /api/v1/auth/refresh`.
    Refresh,
    /// `POST /api/v1/auth/logout`, `/api/v1/players/logout`.
    Logout,
    /// `POST /api/v1/auth/server`.
    ServerAuth,
    /// `POST /api/v1/auth/admin`.
    AdminAuth,
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
    /// `PUT /api/v1/orders/{order_id}/status`.
    OrderStatus,
    /// `GET /api/v1/games`.
    ListGames,
    /// `GET /api/v1/games/{game_id}/stats`.
    GameStats,
    /// `POST /api/v1/games/{game_id}/{action}`.
    GameAction,
    /// `GET /api/v1/cache/stats`.
    CacheStats,
    /// `POST /api/v1/cache/invalidate`.
    CacheInvalidate,
}

/// A path pattern: literal segments, `*` matching one parameter segment.
struct Pattern {
    label: &'static str,
    segments: &'static [&'static str],
    methods: &'static [(&'static str, Route)],
    allow: &'static str,
}

macro_rules! pat {
    ([$($seg:literal),*], $allow:literal, $($m:literal => $r:ident),+) => {
        Pattern {
            label: concat!($("/", $seg),*),
            segments: &[$($seg),*], methods: &[$(($m, Route::$r)),+], allow: $allow }
    };
}

const TABLE: &[Pattern] = &[
    pat!(["health"], "GET", "GET" => Health),
    pat!(["ready"], "GET", "GET" => Ready),
    pat!(["metrics"], "GET", "GET" => Metrics),
    pat!(["health", "detailed"], "GET", "GET" => HealthDetailed),
    pat!(["health", "components"], "GET", "GET" => HealthDetailed),
    pat!(["api", "v1", "players"], "POST", "POST" => Register),
    pat!(["api", "v1", "players", "register"], "POST", "POST" => Register),
    pat!(["api", "v1", "players", "login"], "POST", "POST" => Login),
    pat!(["api", "v1", "players", "logout"], "POST", "POST" => Logout),
    pat!(["api", "v1", "auth", "login"], "POST", "POST" => Login),
    pat!(["api", "v1", "auth", "refresh"], "POST", "POST" => Refresh),
    pat!(["api", "v1", "auth", "logout"], "POST", "POST" => Logout),
    pat!(["api", "v1", "auth", "server"], "POST", "POST" => ServerAuth),
    pat!(["api", "v1", "auth", "admin"], "POST", "POST" => AdminAuth),
    pat!(["api", "v1", "players", "*"], "GET, PUT", "GET" => GetPlayer, "PUT" => UpdatePlayer),
    pat!(["api", "v1", "players", "*", "wallet"], "POST", "POST" => Wallet),
    pat!(["api", "v1", "players", "*", "items"], "GET", "GET" => Inventory),
    pat!(["api", "v1", "players", "*", "items", "*", "use"], "POST", "POST" => UseItem),
    pat!(["api", "v1", "players", "*", "items", "*", "transfer"], "POST", "POST" => TransferItem),
    pat!(["api", "v1", "players", "*", "items", "*", "grant"], "POST", "POST" => GrantItem),
    pat!(["api", "v1", "players", "*", "orders"], "GET", "GET" => PlayerOrders),
    pat!(["api", "v1", "players", "*", "ledger"], "GET", "GET" => Ledger),
    pat!(["api", "v1", "items"], "GET, POST", "GET" => ListItems, "POST" => CreateItem),
    pat!(["api", "v1", "items", "*"], "GET, PUT, DELETE", "GET" => GetItem, "PUT" => UpdateItem, "DELETE" => DeleteItem),
    pat!(["api", "v1", "orders"], "GET, POST", "GET" => ListOrders, "POST" => CreateOrder),
    pat!(["api", "v1", "orders", "*"], "GET, DELETE", "GET" => GetOrder, "DELETE" => CancelOrder),
    pat!(["api", "v1", "orders", "*", "pay"], "POST", "POST" => PayOrder),
    pat!(["api", "v1", "orders", "*", "status"], "PUT", "PUT" => OrderStatus),
    pat!(["api", "v1", "games"], "GET", "GET" => ListGames),
    pat!(["api", "v1", "games", "*", "stats"], "GET", "GET" => GameStats),
    pat!(["api", "v1", "games", "*", "*"], "POST", "POST" => GameAction),
    pat!(["api", "v1", "cache", "stats"], "GET", "GET" => CacheStats),
    pat!(["api", "v1", "cache", "invalidate"], "POST", "POST" => CacheInvalidate),
];

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

    #[test]
    fn routes_literals_params_and_methods() {
        assert!(matches!(
            route("GET", "/health"),
            Matched::Found(Route::Health, ..)
        ));
        assert_eq!(route("POST", "/health"), Matched::MethodNotAllowed("GET"));
        assert_eq!(route("GET", "/nope"), Matched::NotFound);
        assert_eq!(route("GET", "/health/"), Matched::NotFound);
        match route("GET", "/api/v1/players/42") {
            Matched::Found(Route::GetPlayer, p, _) => assert_eq!(p.get(0), Some("42")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            route("PUT", "/api/v1/players/42"),
            Matched::Found(Route::UpdatePlayer, ..)
        ));
        assert!(matches!(
            route("POST", "/api/v1/players/login"),
            Matched::Found(Route::Login, ..)
        ));
        assert_eq!(
            route("DELETE", "/api/v1/players/42"),
            Matched::MethodNotAllowed("GET, PUT")
        );
        assert_eq!(route("GET", "/a/b/c/d/e/f/g/h/i"), Matched::NotFound);
        match route("POST", "/api/v1/players/7/items/sword/transfer") {
            Matched::Found(Route::TransferItem, p, _) => {
                assert_eq!((p.get(0), p.get(1)), (Some("7"), Some("sword")))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            route("GET", "/api/v1/games/g1/stats"),
            Matched::Found(Route::GameStats, ..)
        ));
        match route("POST", "/api/v1/games/g1/level_up") {
            Matched::Found(Route::GameAction, p, _) => assert_eq!(p.get(1), Some("level_up")),
            other => panic!("{other:?}"),
        }
        // POST to the stats path is the action pattern's business (unknown action later).
        assert!(matches!(
            route("POST", "/api/v1/games/g1/stats"),
            Matched::Found(Route::GameAction, ..)
        ));
        assert_eq!(
            route("GET", "/api/v1/games/g1/level_up"),
            Matched::MethodNotAllowed("POST")
        );
    }
}
