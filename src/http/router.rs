//! Maps a method and path to a [`Route`]: unknown paths are 404 and known
//! paths with another method are 405 with the `Allow` list. Later features add
//! rows to [`TABLE`].

/// Every HTTP endpoint the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /health`.
    Health,
    /// `GET /ready`.
    Ready,
    /// `POST /api/v1/players`, `/api/v1/players/register`.
    Register,
    /// `POST /api/v1/auth/login`, `/api/v1/players/login`.
    Login,
    /// `GET /api/v1/players/{id}`.
    GetPlayer,
}

/// A path pattern: literal segments, `*` matching one parameter segment.
struct Pattern {
    segments: &'static [&'static str],
    methods: &'static [(&'static str, Route)],
    allow: &'static str,
}

const TABLE: &[Pattern] = &[
    Pattern {
        segments: &["health"],
        methods: &[("GET", Route::Health)],
        allow: "GET",
    },
    Pattern {
        segments: &["ready"],
        methods: &[("GET", Route::Ready)],
        allow: "GET",
    },
    Pattern {
        segments: &["api", "v1", "players"],
        methods: &[("POST", Route::Register)],
        allow: "POST",
    },
    Pattern {
        segments: &["api", "v1", "players", "register"],
        methods: &[("POST", Route::Register)],
        allow: "POST",
    },
    Pattern {
        segments: &["api", "v1", "auth", "login"],
        methods: &[("POST", Route::Login)],
        allow: "POST",
    },
    Pattern {
        segments: &["api", "v1", "players", "login"],
        methods: &[("POST", Route::Login)],
        allow: "POST",
    },
    Pattern {
        segments: &["api", "v1", "players", "*"],
        methods: &[("GET", Route::GetPlayer)],
        allow: "GET",
    },
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
    /// A route and its parameters.
    Found(Route, Params<'a>),
    /// The path exists but not for this method; the `Allow` value.
    MethodNotAllowed(&'static str),
    /// No such path.
    NotFound,
}

/// Routes `method` and `path`. Literal patterns win over parameter patterns.
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
    let mut best: Option<(&Pattern, Params<'a>, usize)> = None;
    for p in TABLE {
        if p.segments.len() != segs.len() {
            continue;
        }
        let mut params = Params::default();
        let mut literal = 0;
        let fits = p.segments.iter().zip(segs).all(|(want, got)| {
            if *want == "*" {
                if got.is_empty() || params.len == params.values.len() {
                    return false;
                }
                params.values[params.len] = got;
                params.len += 1;
                true
            } else {
                literal += 1;
                want == got
            }
        });
        if fits && best.as_ref().is_none_or(|(_, _, l)| literal > *l) {
            best = Some((p, params, literal));
        }
    }
    match best {
        None => Matched::NotFound,
        Some((p, params, _)) => match p.methods.iter().find(|(m, _)| *m == method) {
            Some((_, r)) => Matched::Found(*r, params),
            None => Matched::MethodNotAllowed(p.allow),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_literals_params_and_methods() {
        assert!(matches!(
            route("GET", "/health"),
            Matched::Found(Route::Health, _)
        ));
        assert_eq!(route("POST", "/health"), Matched::MethodNotAllowed("GET"));
        assert_eq!(route("GET", "/nope"), Matched::NotFound);
        assert_eq!(route("GET", "/health/"), Matched::NotFound);
        match route("GET", "/api/v1/players/42") {
            Matched::Found(Route::GetPlayer, p) => assert_eq!(p.get(0), Some("42")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            route("POST", "/api/v1/players/login"),
            Matched::Found(Route::Login, _)
        ));
        assert_eq!(
            route("GET", "/api/v1/players/register"),
            Matched::MethodNotAllowed("POST")
        );
        assert_eq!(route("GET", "/a/b/c/d/e/f/g/h/i"), Matched::NotFound);
    }
}
