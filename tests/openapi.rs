//! `docs/openapi.yaml` against the router and the real server: the document
//! names exactly the (method, path template) pairs `src/http/router.rs`
//! serves, both ways; each operation's security and error answers agree with
//! the router's group of the route (probe, public, token); every example fits
//! its schema; and the GET routes anyone may call answer a real server's
//! request with the documented status, content type and body shape.
//! (`scripts/check-openapi.sh` validates the document against the OpenAPI 3.1
//! specification itself.)

mod common;

use common::ws::Ws;
use common::Server;
use datamiddleware::http::router::{self, Route};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use yaml_rust2::{Yaml, YamlLoader};

const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml");
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The document as JSON.
fn spec() -> Value {
    let text = std::fs::read_to_string(SPEC).expect("docs/openapi.yaml");
    let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{SPEC}: {e}"));
    assert_eq!(docs.len(), 1, "one YAML document");
    to_json(&docs[0])
}

fn to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Real(s) => {
            let f: f64 = s.parse().unwrap_or_else(|_| panic!("number {s}"));
            serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
        }
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) | Yaml::Real(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => panic!("mapping key {other:?}"),
                };
                m.insert(key, to_json(v));
            }
            Value::Object(m)
        }
        Yaml::Null => Value::Null,
        Yaml::Alias(_) | Yaml::BadValue => panic!("unsupported YAML node {y:?}"),
    }
}

/// Follows `$ref`s (local ones: `#/components/...`) to the object named.
fn resolve<'a>(spec: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match v.get("$ref").and_then(Value::as_str) {
            None => return v,
            Some(r) => {
                let pointer = r
                    .strip_prefix('#')
                    .unwrap_or_else(|| panic!("only local references: {r}"));
                v = spec
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling reference {r}"));
            }
        }
    }
    panic!("reference loop")
}

/// One documented operation.
struct Operation<'a> {
    method: String,
    path: &'a str,
    op: &'a Value,
    item: &'a Value,
}

impl Operation<'_> {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Parameters of the path item and of the operation, resolved.
    fn parameters<'s>(&'s self, spec: &'s Value) -> Vec<&'s Value> {
        [self.item, self.op]
            .iter()
            .filter_map(|v| v.get("parameters").and_then(Value::as_array))
            .flatten()
            .map(|p| resolve(spec, p))
            .collect()
    }

    fn security(&self) -> &[Value] {
        self.op
            .get("security")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{}: no `security`", self.name()))
    }

    /// Whether a call without a token is documented (no requirement, or an
    /// empty one among the alternatives).
    fn anonymous(&self) -> bool {
        let s = self.security();
        s.is_empty() || s.iter().any(|r| r.as_object().is_some_and(Map::is_empty))
    }

    fn responses(&self) -> &Map<String, Value> {
        self.op
            .get("responses")
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("{}: no responses", self.name()))
    }
}

fn operations(spec: &Value) -> Vec<Operation<'_>> {
    let paths = spec["paths"].as_object().expect("paths");
    let mut out = Vec::new();
    for (path, item) in paths {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                out.push(Operation {
                    method: m.to_ascii_uppercase(),
                    path,
                    op,
                    item,
                });
            }
        }
    }
    out
}

#[test]
fn the_document_describes_every_route_the_router_serves_and_no_other() {
    let spec = spec();
    let documented: BTreeSet<(String, String)> = operations(&spec)
        .iter()
        .map(|o| (o.method.clone(), o.path.to_string()))
        .collect();
    let served: BTreeSet<(String, String)> = router::templates()
        .map(|t| (t.method.to_string(), t.path.to_string()))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "served but not in docs/openapi.yaml: {undocumented:?}; \
         in docs/openapi.yaml but not served: {not_served:?}"
    );
}

#[test]
fn security_and_error_answers_follow_the_router_groups() {
    let spec = spec();
    let schemes = spec["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    for name in ["player", "game_server", "admin"] {
        let s = &schemes[name];
        assert_eq!(
            (
                s["type"].as_str(),
                s["scheme"].as_str(),
                s["bearerFormat"].as_str()
            ),
            (Some("http"), Some("bearer"), Some("JWT")),
            "scheme {name}"
        );
    }
    let ops = operations(&spec);
    let mut ids = BTreeSet::new();
    for t in router::templates() {
        let o = ops
            .iter()
            .find(|o| o.method == t.method && o.path == t.path)
            .unwrap_or_else(|| panic!("{} {} undocumented", t.method, t.path));
        let name = o.name();
        let id = o.op["operationId"].as_str().expect("operationId");
        assert!(ids.insert(id.to_string()), "{name}: operationId {id} twice");
        let description = o.op["description"].as_str().unwrap_or("");
        assert!(
            description.contains("**Who:**"),
            "{name}: the description says who may call it"
        );
        for requirement in o.security() {
            for scheme in requirement.as_object().expect("requirement").keys() {
                assert!(schemes.contains_key(scheme), "{name}: scheme {scheme}");
            }
        }
        let answers = o.responses();
        assert!(
            answers.keys().any(|k| k.starts_with('2')),
            "{name}: a success answer"
        );
        match t.route {
            Route::Probe(_) => {
                assert!(o.anonymous(), "{name}: probes need no token");
                assert!(
                    !answers.contains_key("429"),
                    "{name}: probes are never rate-limited"
                );
            }
            Route::Public(_) => {
                assert!(o.anonymous(), "{name}: a public route needs no token");
                assert!(answers.contains_key("429"), "{name}: documents 429");
            }
            Route::Authed(_) => {
                assert!(
                    !o.anonymous(),
                    "{name}: the router checks a token before the handler"
                );
                for code in ["401", "403", "429"] {
                    assert!(answers.contains_key(code), "{name}: documents {code}");
                }
            }
        }
    }
}

#[test]
fn path_parameters_are_declared_and_named_as_in_the_template() {
    let spec = spec();
    for o in operations(&spec) {
        let in_template: BTreeSet<&str> = o
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        let declared: BTreeSet<&str> = o
            .parameters(&spec)
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().expect("name"))
            .collect();
        assert_eq!(in_template, declared, "{}", o.name());
    }
}

/// Checks `v` against the parts of JSON Schema the document uses: `$ref`,
/// `allOf`, `not`, `type` (one or a list), `const`, `enum`, `required`,
/// `properties`, `additionalProperties`, `items`, numeric and length bounds.
fn check(spec: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    for part in schema["allOf"].as_array().into_iter().flatten() {
        check(spec, part, v, at, errors);
    }
    if let Some(not) = schema.get("not") {
        let mut inner = Vec::new();
        check(spec, not, v, at, &mut inner);
        if inner.is_empty() {
            errors.push(format!("{at}: {v} matches `not`"));
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            other => panic!("type {other}"),
        };
        let fits = |t: &str| match t {
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            "object" => v.is_object(),
            "array" => v.is_array(),
            other => panic!("type {other}"),
        };
        if !types.iter().any(|t| fits(t)) {
            errors.push(format!("{at}: {v} is not {types:?}"));
            return;
        }
    }
    if let Some(c) = schema.get("const") {
        if c != v {
            errors.push(format!("{at}: {v} is not {c}"));
        }
    }
    if let Some(e) = schema["enum"].as_array() {
        if !e.contains(v) {
            errors.push(format!("{at}: {v} is not one of {e:?}"));
        }
    }
    if let Some(n) = v.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|m| n < m)
            || schema["maximum"].as_f64().is_some_and(|m| n > m)
        {
            errors.push(format!("{at}: {n} out of range"));
        }
    }
    if let Some(s) = v.as_str() {
        let len = s.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|m| len < m)
            || schema["maxLength"].as_u64().is_some_and(|m| len > m)
        {
            errors.push(format!("{at}: {s:?} of a length out of range"));
        }
    }
    if let Value::Object(obj) = v {
        for r in schema["required"].as_array().into_iter().flatten() {
            let r = r.as_str().expect("required names");
            if !obj.contains_key(r) {
                errors.push(format!("{at}: `{r}` missing"));
            }
        }
        let props = schema["properties"].as_object();
        for (k, x) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(sub) => check(spec, sub, x, &format!("{at}.{k}"), errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        errors.push(format!("{at}: `{k}` is not a property"))
                    }
                    Some(extra @ Value::Object(_)) => {
                        check(spec, extra, x, &format!("{at}.{k}"), errors)
                    }
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(sub)) = (v, schema.get("items")) {
        for (i, x) in items.iter().enumerate() {
            check(spec, sub, x, &format!("{at}[{i}]"), errors);
        }
    }
}

/// Every example of a media type map (`content`), with where it is.
fn media_examples<'a>(
    spec: &'a Value,
    content: &'a Value,
    at: &str,
) -> Vec<(String, &'a Value, &'a Value)> {
    let mut out = Vec::new();
    for (media, m) in content.as_object().into_iter().flatten() {
        let schema = &m["schema"];
        if let Some(e) = m.get("example") {
            out.push((format!("{at} {media}"), schema, e));
        }
        for (name, e) in m["examples"].as_object().into_iter().flatten() {
            let e = resolve(spec, e);
            out.push((format!("{at} {media} {name}"), schema, &e["value"]));
        }
    }
    out
}

#[test]
fn every_example_fits_its_schema() {
    let spec = spec();
    let mut checked = 0;
    let mut errors = Vec::new();
    for o in operations(&spec) {
        let name = o.name();
        let mut examples = Vec::new();
        if let Some(body) = o.op.get("requestBody") {
            let body = resolve(&spec, body);
            examples.extend(media_examples(
                &spec,
                &body["content"],
                &format!("{name} request"),
            ));
        }
        for (status, r) in o.responses() {
            let r = resolve(&spec, r);
            if let Some(content) = r.get("content") {
                examples.extend(media_examples(&spec, content, &format!("{name} {status}")));
            }
        }
        for p in o.parameters(&spec) {
            if let Some(e) = p.get("example") {
                let at = format!("{name} parameter {}", p["name"]);
                examples.push((at, &p["schema"], e));
            }
        }
        for (at, schema, example) in examples {
            assert!(!schema.is_null(), "{at}: an example without a schema");
            check(&spec, schema, example, &at, &mut errors);
            checked += 1;
        }
    }
    assert!(
        errors.is_empty(),
        "examples that do not fit:\n{}",
        errors.join("\n")
    );
    assert!(checked > 50, "only {checked} examples");
}

#[test]
fn get_routes_anyone_may_call_answer_as_documented() {
    let spec = spec();
    let server = Server::start(1);
    let mut called = Vec::new();
    for o in operations(&spec) {
        if o.method != "GET" || o.path.contains('{') || !o.anonymous() {
            continue;
        }
        // Without a query, and once with each value of a query parameter
        // that has a fixed set of them (`/ready?scope=node`).
        let mut queries = vec![String::new()];
        for p in o.parameters(&spec) {
            if p["in"] == "query" {
                for value in p["schema"]["enum"].as_array().into_iter().flatten() {
                    let value = value.as_str().expect("enum of strings");
                    queries.push(format!("?{}={value}", p["name"].as_str().expect("name")));
                }
            }
        }
        let answers = o.responses();
        let expected = answers
            .keys()
            .filter(|k| k.starts_with('2'))
            .min()
            .unwrap_or_else(|| panic!("{}: no success answer", o.name()));
        let documented = resolve(&spec, &answers[expected]);
        for query in queries {
            let target = format!("{}{query}", o.path);
            let r = server.http().request("GET", &target, &[], b"");
            assert_eq!(
                r.status.to_string(),
                *expected,
                "GET {target}: {}",
                r.text()
            );
            let content_type = r.header("content-type").unwrap_or("");
            let media = content_type.split(';').next().unwrap_or("").trim();
            let m = documented["content"].get(media).unwrap_or_else(|| {
                panic!("GET {target}: content type {content_type} is not documented")
            });
            if media == "application/json" {
                let mut errors = Vec::new();
                check(
                    &spec,
                    &m["schema"],
                    &r.json(),
                    &format!("GET {target}"),
                    &mut errors,
                );
                assert!(errors.is_empty(), "{}\n{}", errors.join("\n"), r.text());
            }
            called.push(target);
        }
    }
    for must in [
        "/health",
        "/ready",
        "/ready?scope=node",
        "/metrics",
        "/api/v1/games",
    ] {
        assert!(
            called.iter().any(|c| c == must),
            "{must} not called: {called:?}"
        );
    }
}

#[test]
fn the_prose_reference_lists_every_route_and_no_other() {
    // docs/http-api.md's route table: `| METHOD | `path` | who | success |`.
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/http-api.md"))
        .expect("docs/http-api.md");
    let listed: BTreeSet<(String, String)> = text
        .lines()
        .filter_map(|line| {
            let mut cells = line.strip_prefix("| ")?.split(" | ");
            let method = cells.next()?;
            let path = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            METHODS
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method))
                .then(|| (method.to_string(), path.to_string()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = router::templates()
        .map(|t| (t.method.to_string(), t.path.to_string()))
        .collect();
    let missing: Vec<_> = served.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&served).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/http-api.md route table: missing {missing:?}, not served {extra:?}"
    );
}

/// Calls a real server and checks each answer against the document: the
/// status is one the operation documents, its content type is documented
/// for that status, and a JSON body fits the documented schema.
struct Contract {
    spec: Value,
    server: Server,
    called: BTreeSet<(String, String)>,
    problems: Vec<String>,
}

impl Contract {
    /// `method` on `target` (an instance of `template`); the answer's JSON.
    fn call(
        &mut self,
        method: &str,
        template: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Value {
        let r = self
            .server
            .http()
            .request(method, target, headers, body.as_bytes());
        self.called
            .insert((method.to_string(), template.to_string()));
        let at = format!("{method} {target} → {}", r.status);
        let op = &self.spec["paths"][template][method.to_ascii_lowercase()];
        let Some(documented) = op["responses"].get(r.status.to_string()) else {
            self.problems
                .push(format!("{at}: status not documented ({})", r.text()));
            return Value::Null;
        };
        let documented = resolve(&self.spec, documented);
        let content_type = r.header("content-type").unwrap_or("");
        let media = content_type.split(';').next().unwrap_or("").trim();
        let Some(m) = documented["content"].get(media) else {
            self.problems
                .push(format!("{at}: content type {content_type} not documented"));
            return Value::Null;
        };
        if media != "application/json" {
            return Value::Null;
        }
        let json = r.json();
        let mut errors = Vec::new();
        check(&self.spec, &m["schema"], &json, &at, &mut errors);
        if !errors.is_empty() {
            self.problems
                .push(format!("{}\n  body: {}", errors.join("\n"), r.text()));
        }
        json
    }
}

#[test]
fn every_route_answers_as_documented() {
    let mut c = Contract {
        spec: spec(),
        server: Server::start(1),
        called: BTreeSet::new(),
        problems: Vec::new(),
    };
    let admin = c.server.admin_token();
    let gs = c.server.server_token("game1");
    let bearer = |t: &str| format!("Bearer {t}");
    let (a, g) = (bearer(&admin), bearer(&gs));
    let (admin, server) = (
        [("Authorization", a.as_str())],
        [("Authorization", g.as_str())],
    );

    // Accounts and sessions.
    let alice = r#"{"username":"alice","password":"secret12","email":"alice@example.com"}"#;
    let j = c.call(
        "POST",
        "/api/v1/players",
        "/api/v1/players",
        &[("X-Game-Id", "game1")],
        alice,
    );
    let id = j["data"]["player"]["id"].as_i64().expect("alice's id");
    c.call("POST", "/api/v1/players", "/api/v1/players", &[], alice);
    let bob = r#"{"username":"bob","password":"secret12"}"#;
    let j = c.call(
        "POST",
        "/api/v1/players/register",
        "/api/v1/players/register",
        &[],
        bob,
    );
    let bob_id = j["data"]["player"]["id"].as_i64().expect("bob's id");
    let login = r#"{"username":"alice","password":"secret12"}"#;
    let j = c.call(
        "POST",
        "/api/v1/auth/login",
        "/api/v1/auth/login",
        &[],
        login,
    );
    let refresh = j["data"]["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    c.call(
        "POST",
        "/api/v1/auth/login",
        "/api/v1/auth/login",
        &[],
        r#"{"username":"alice","password":"wrong1"}"#,
    );
    let j = c.call(
        "POST",
        "/api/v1/players/login",
        "/api/v1/players/login",
        &[],
        bob,
    );
    let t2 = bearer(j["data"]["token"].as_str().expect("bob's token"));
    let j = c.call(
        "POST",
        "/api/v1/auth/refresh",
        "/api/v1/auth/refresh",
        &[],
        &format!(r#"{{"refresh_token":"{refresh}"}}"#),
    );
    assert!(j["data"]["token"].is_string(), "a refreshed pair");
    c.call(
        "POST",
        "/api/v1/auth/refresh",
        "/api/v1/auth/refresh",
        &[],
        &format!(r#"{{"refresh_token":"{refresh}"}}"#),
    );
    c.call(
        "POST",
        "/api/v1/auth/server",
        "/api/v1/auth/server",
        &[],
        r#"{"game_id":"game1","server_key":"not-the-key-0123"}"#,
    );
    c.call(
        "POST",
        "/api/v1/auth/admin",
        "/api/v1/auth/admin",
        &[],
        r#"{"username":"ops","password":"wrong-password"}"#,
    );
    // Presenting the used refresh token again revoked that session: a new
    // one.
    let j = c.call(
        "POST",
        "/api/v1/auth/login",
        "/api/v1/auth/login",
        &[],
        login,
    );
    let t = bearer(j["data"]["token"].as_str().expect("token"));
    let player_headers = [("Authorization", t.as_str())];
    let player = &player_headers[..];

    // Players.
    let me = format!("/api/v1/players/{id}");
    c.call(
        "GET",
        "/api/v1/players",
        "/api/v1/players?username=bob",
        &server,
        "",
    );
    c.call(
        "GET",
        "/api/v1/players",
        "/api/v1/players?username=bob",
        player,
        "",
    );
    c.call("GET", "/api/v1/players/{id}", &me, player, "");
    c.call(
        "GET",
        "/api/v1/players/{id}",
        &format!("/api/v1/players/{bob_id}"),
        player,
        "",
    );
    c.call(
        "GET",
        "/api/v1/players/{id}",
        "/api/v1/players/999999",
        &server,
        "",
    );
    let if_match = [player[0], ("If-Match", "\"1\"")];
    c.call(
        "PUT",
        "/api/v1/players/{id}",
        &me,
        &if_match,
        r#"{"nickname":"Ally"}"#,
    );
    c.call(
        "PUT",
        "/api/v1/players/{id}",
        &me,
        &if_match,
        r#"{"nickname":"Ally2"}"#,
    );
    c.call("PUT", "/api/v1/players/{id}", &me, player, r#"{"level":3}"#);
    c.call(
        "PUT",
        "/api/v1/players/{id}",
        &me,
        player,
        r#"{"nick":"x"}"#,
    );
    let wallet = format!("{me}/wallet");
    c.call(
        "POST",
        "/api/v1/players/{id}/wallet",
        &wallet,
        &server,
        r#"{"currency":"gold","delta":500,"reason":"quest"}"#,
    );
    c.call(
        "POST",
        "/api/v1/players/{id}/wallet",
        &wallet,
        &server,
        r#"{"currency":"gold","delta":-100000000,"reason":"x"}"#,
    );
    c.call(
        "GET",
        "/api/v1/players/{id}/ledger",
        &format!("{me}/ledger?page=1&page_size=2"),
        player,
        "",
    );
    c.call(
        "GET",
        "/api/v1/players/{id}/ledger",
        &format!("{me}/ledger?page_size=101"),
        player,
        "",
    );

    // Inventory.
    let item = |verb: &str| format!("{me}/items/potion/{verb}");
    c.call(
        "POST",
        "/api/v1/players/{id}/items/{item_id}/grant",
        &item("grant"),
        &server,
        r#"{"quantity":5}"#,
    );
    c.call(
        "POST",
        "/api/v1/players/{id}/items/{item_id}/grant",
        &format!("{me}/items/sword/grant"),
        &server,
        r#"{"quantity":6}"#,
    );
    c.call(
        "GET",
        "/api/v1/players/{id}/items",
        &format!("{me}/items"),
        player,
        "",
    );
    c.call(
        "POST",
        "/api/v1/players/{id}/items/{item_id}/use",
        &item("use"),
        player,
        r#"{"quantity":1}"#,
    );
    c.call(
        "POST",
        "/api/v1/players/{id}/items/{item_id}/use",
        &item("use"),
        player,
        r#"{"quantity":1000}"#,
    );
    c.call(
        "POST",
        "/api/v1/players/{id}/items/{item_id}/use",
        &format!("{me}/items/nothing/use"),
        player,
        r#"{"quantity":1}"#,
    );
    c.call(
        "POST",
        "/api/v1/players/{id}/items/{item_id}/transfer",
        &item("transfer"),
        player,
        &format!(r#"{{"target_player_id":{bob_id},"quantity":1}}"#),
    );

    // Catalogue.
    c.call("GET", "/api/v1/items", "/api/v1/items", player, "");
    c.call("GET", "/api/v1/items", "/api/v1/items", &[], "");
    let bow = r#"{"item_id":"bow","name":"Bow","type":"weapon","price_gold":50,"max_stack":2}"#;
    c.call("POST", "/api/v1/items", "/api/v1/items", &admin, bow);
    c.call("POST", "/api/v1/items", "/api/v1/items", &admin, bow);
    c.call("POST", "/api/v1/items", "/api/v1/items", player, bow);
    c.call(
        "GET",
        "/api/v1/items/{item_id}",
        "/api/v1/items/bow",
        player,
        "",
    );
    c.call(
        "GET",
        "/api/v1/items/{item_id}",
        "/api/v1/items/nope",
        player,
        "",
    );
    c.call(
        "PUT",
        "/api/v1/items/{item_id}",
        "/api/v1/items/bow",
        &admin,
        r#"{"price_gold":60}"#,
    );
    c.call(
        "DELETE",
        "/api/v1/items/{item_id}",
        "/api/v1/items/bow",
        &admin,
        "",
    );

    // Orders.
    let buy = r#"{"item_id":"potion","quantity":2,"currency":"gold"}"#;
    let keyed = [player[0], ("Idempotency-Key", "buy-1")];
    let j = c.call("POST", "/api/v1/orders", "/api/v1/orders", &keyed, buy);
    let order = j["data"]["order"]["order_id"]
        .as_str()
        .expect("order id")
        .to_string();
    c.call("POST", "/api/v1/orders", "/api/v1/orders", &keyed, buy);
    c.call(
        "POST",
        "/api/v1/orders",
        "/api/v1/orders",
        &keyed,
        r#"{"item_id":"potion","quantity":3,"currency":"gold"}"#,
    );
    c.call("POST", "/api/v1/orders", "/api/v1/orders", &server, buy);
    c.call(
        "GET",
        "/api/v1/orders",
        "/api/v1/orders?page=1&page_size=5",
        player,
        "",
    );
    c.call(
        "GET",
        "/api/v1/orders",
        &format!("/api/v1/orders?player_id={bob_id}"),
        player,
        "",
    );
    c.call(
        "GET",
        "/api/v1/players/{id}/orders",
        &format!("{me}/orders"),
        player,
        "",
    );
    let this = format!("/api/v1/orders/{order}");
    c.call("GET", "/api/v1/orders/{order_id}", &this, player, "");
    c.call(
        "GET",
        "/api/v1/orders/{order_id}",
        "/api/v1/orders/o123",
        player,
        "",
    );
    c.call(
        "POST",
        "/api/v1/orders/{order_id}/pay",
        &format!("{this}/pay"),
        player,
        "",
    );
    c.call(
        "POST",
        "/api/v1/orders/{order_id}/pay",
        &format!("{this}/pay"),
        player,
        "",
    );
    c.call("DELETE", "/api/v1/orders/{order_id}", &this, player, "");
    let status = format!("{this}/status");
    c.call(
        "PUT",
        "/api/v1/orders/{order_id}/status",
        &status,
        &admin,
        r#"{"status":"paid"}"#,
    );
    c.call(
        "PUT",
        "/api/v1/orders/{order_id}/status",
        &status,
        &server,
        r#"{"status":"refunded"}"#,
    );
    c.call(
        "PUT",
        "/api/v1/orders/{order_id}/status",
        &status,
        &admin,
        r#"{"status":"refunded"}"#,
    );
    let j = c.call("POST", "/api/v1/orders", "/api/v1/orders", player, buy);
    let other = j["data"]["order"]["order_id"]
        .as_str()
        .expect("order id")
        .to_string();
    c.call(
        "DELETE",
        "/api/v1/orders/{order_id}",
        &format!("/api/v1/orders/{other}"),
        player,
        "",
    );

    // Games.
    c.call("GET", "/api/v1/games", "/api/v1/games", &[], "");
    c.call(
        "GET",
        "/api/v1/games/{game_id}/stats",
        "/api/v1/games/game1/stats",
        &admin,
        "",
    );
    c.call(
        "GET",
        "/api/v1/games/{game_id}/stats",
        "/api/v1/games/game9/stats",
        &admin,
        "",
    );
    let action = format!(r#"{{"player_id":{id},"amount":250}}"#);
    c.call(
        "POST",
        "/api/v1/games/{game_id}/{action}",
        "/api/v1/games/game1/add_exp",
        &server,
        &action,
    );
    c.call(
        "POST",
        "/api/v1/games/{game_id}/{action}",
        "/api/v1/games/game1/fly",
        &server,
        &action,
    );
    c.call(
        "POST",
        "/api/v1/games/{game_id}/{action}",
        "/api/v1/games/game1/level_up",
        player,
        &action,
    );
    c.call(
        "POST",
        "/api/v1/games/{game_id}/{action}",
        "/api/v1/games/game1/level_up",
        &server,
        "",
    );

    // Notifications and presence: alice's inbox, then a socket of hers that
    // makes her online and the one player a broadcast reaches.
    let inbox = format!("{me}/notifications");
    let message = r#"{"subject":"Events","body":"Double gold this weekend"}"#;
    let notifications = "/api/v1/players/{id}/notifications";
    let j = c.call("POST", notifications, &inbox, &server, message);
    assert_eq!(j["data"]["notification"]["kind"], "message", "{j}");
    c.call(
        "POST",
        notifications,
        &inbox,
        &admin,
        r#"{"body":"x","sender":"spoof"}"#,
    );
    c.call("POST", notifications, &inbox, &admin, r#"{"body":"  "}"#);
    c.call("POST", notifications, &inbox, player, message);
    c.call(
        "POST",
        notifications,
        "/api/v1/players/999999/notifications",
        &server,
        message,
    );
    let j = c.call(
        "GET",
        notifications,
        &format!("{inbox}?after=0&limit=10"),
        player,
        "",
    );
    assert_eq!(
        j["data"]["notifications"][0]["data"]["body"], "Double gold this weekend",
        "{j}"
    );
    c.call(
        "GET",
        notifications,
        &format!("{inbox}?limit=201"),
        player,
        "",
    );
    c.call(
        "GET",
        notifications,
        &format!("{inbox}?after=-1"),
        player,
        "",
    );
    c.call(
        "GET",
        notifications,
        &format!("/api/v1/players/{bob_id}/notifications"),
        player,
        "",
    );
    c.call(
        "GET",
        notifications,
        "/api/v1/players/999999/notifications",
        &server,
        "",
    );
    let presence = "/api/v1/players/{id}/presence";
    let here = format!("{me}/presence");
    let j = c.call("GET", presence, &here, player, "");
    assert_eq!(j["data"]["online"], false, "{j}");
    let mut ws = Ws::open(c.server.http, &player_headers);
    assert_eq!(ws.json()["type"], "ready");
    let j = c.call("GET", presence, &here, &server, "");
    assert_eq!(j["data"]["online"], true, "{j}");
    c.call(
        "GET",
        presence,
        &format!("/api/v1/players/{bob_id}/presence"),
        player,
        "",
    );
    let broadcast = "/api/v1/games/{game_id}/broadcast";
    let j = c.call(
        "POST",
        broadcast,
        "/api/v1/games/game1/broadcast",
        &admin,
        message,
    );
    assert_eq!(j["data"]["delivered"], 1, "{j}");
    // The socket's copy is the documented notification with its `type`.
    let mut pushed = ws.json();
    let kind = pushed.as_object_mut().and_then(|o| o.remove("type"));
    assert_eq!(kind, Some(json!("notification")), "{pushed}");
    let mut errors = Vec::new();
    let schema = json!({"$ref": "#/components/schemas/Notification"});
    check(
        &c.spec,
        &schema,
        &pushed,
        "the broadcast on /ws",
        &mut errors,
    );
    c.problems.extend(errors);
    drop(ws);
    c.call(
        "POST",
        broadcast,
        "/api/v1/games/game1/broadcast",
        &server,
        message,
    );
    c.call(
        "POST",
        broadcast,
        "/api/v1/games/game9/broadcast",
        &admin,
        message,
    );
    c.call(
        "POST",
        broadcast,
        "/api/v1/games/game1/broadcast",
        &admin,
        r#"{"subject":"no body"}"#,
    );

    // Leaderboards: a board of each kind, scores of alice and bob, every
    // read, then the boards withdrawn.
    let boards = "/api/v1/leaderboards";
    let j = c.call("POST", boards, boards, &admin, r#"{"id":"high_scores"}"#);
    assert_eq!(j["data"]["board"]["operator"], "best", "{j}");
    c.call("POST", boards, boards, &admin, r#"{"id":"high_scores"}"#);
    c.call(
        "POST",
        boards,
        boards,
        &admin,
        r#"{"id":"weekly_kills","operator":"incr","reset":"weekly","player_writable":true}"#,
    );
    c.call(
        "POST",
        boards,
        boards,
        &admin,
        r#"{"id":"x","operator":"max"}"#,
    );
    c.call("POST", boards, boards, &server, r#"{"id":"mine"}"#);
    let j = c.call("GET", boards, boards, player, "");
    assert_eq!(j["data"]["boards"].as_array().map(Vec::len), Some(2), "{j}");
    let scores = "/api/v1/leaderboards/{id}/scores";
    let high = "/api/v1/leaderboards/high_scores/scores";
    let weekly = "/api/v1/leaderboards/weekly_kills/scores";
    let j = c.call(
        "POST",
        scores,
        high,
        &server,
        &format!(r#"{{"player_id":{id},"score":1200,"subscore":3}}"#),
    );
    assert_eq!(j["data"]["record"]["rank"], 1, "{j}");
    c.call(
        "POST",
        scores,
        high,
        &server,
        &format!(r#"{{"player_id":{bob_id},"score":1200,"subscore":1}}"#),
    );
    c.call(
        "POST",
        scores,
        high,
        player,
        &format!(r#"{{"player_id":{id},"score":9999}}"#),
    );
    let incr = format!(r#"{{"player_id":{id},"score":5,"write_id":"match-7731-p1"}}"#);
    c.call("POST", scores, weekly, player, &incr);
    let j = c.call("POST", scores, weekly, player, &incr);
    assert_eq!(j["data"]["record"]["score"], 5, "a retry adds nothing: {j}");
    c.call(
        "POST",
        scores,
        weekly,
        player,
        &format!(r#"{{"player_id":{bob_id},"score":1}}"#),
    );
    c.call(
        "POST",
        scores,
        "/api/v1/leaderboards/nope/scores",
        &server,
        &format!(r#"{{"player_id":{id},"score":1}}"#),
    );
    c.call(
        "POST",
        scores,
        high,
        &server,
        r#"{"player_id":999999,"score":1}"#,
    );
    c.call(
        "POST",
        scores,
        high,
        &server,
        &format!(r#"{{"player_id":{id},"score":1152921504606846976}}"#),
    );
    let top = "/api/v1/leaderboards/{id}";
    let j = c.call(
        "GET",
        top,
        "/api/v1/leaderboards/high_scores?limit=1",
        player,
        "",
    );
    let cursor = j["data"]["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let j = c.call(
        "GET",
        top,
        &format!("/api/v1/leaderboards/high_scores?limit=1&cursor={cursor}"),
        &server,
        "",
    );
    assert_eq!(j["data"]["records"][0]["rank"], 2, "{j}");
    assert!(j["data"]["next_cursor"].is_null(), "{j}");
    let j = c.call("GET", top, "/api/v1/leaderboards/weekly_kills", &admin, "");
    let period = j["data"]["period"].as_str().expect("period").to_string();
    c.call(
        "GET",
        top,
        &format!("/api/v1/leaderboards/weekly_kills?period={period}"),
        player,
        "",
    );
    c.call(
        "GET",
        top,
        "/api/v1/leaderboards/weekly_kills?period=all",
        player,
        "",
    );
    c.call(
        "GET",
        top,
        "/api/v1/leaderboards/high_scores?limit=0",
        player,
        "",
    );
    c.call("GET", top, "/api/v1/leaderboards/nope", player, "");
    let around = "/api/v1/leaderboards/{id}/around/{player_id}";
    let j = c.call(
        "GET",
        around,
        &format!("/api/v1/leaderboards/high_scores/around/{bob_id}?limit=3"),
        player,
        "",
    );
    assert!(j["data"]["next_cursor"].is_null(), "{j}");
    c.call(
        "GET",
        around,
        "/api/v1/leaderboards/high_scores/around/999999",
        player,
        "",
    );
    c.call(
        "GET",
        around,
        "/api/v1/leaderboards/high_scores/around/x",
        player,
        "",
    );
    let one = "/api/v1/leaderboards/{id}/players/{player_id}";
    let j = c.call(
        "GET",
        one,
        &format!("/api/v1/leaderboards/high_scores/players/{id}"),
        &server,
        "",
    );
    assert_eq!(j["data"]["rank"], 1, "{j}");
    c.call(
        "GET",
        one,
        &format!("/api/v1/leaderboards/weekly_kills/players/{bob_id}"),
        player,
        "",
    );
    c.call(
        "GET",
        one,
        &format!("/api/v1/leaderboards/weekly_kills/players/{id}?period=1970-01-01"),
        player,
        "",
    );
    c.call(
        "DELETE",
        top,
        "/api/v1/leaderboards/weekly_kills",
        player,
        "",
    );
    c.call(
        "DELETE",
        top,
        "/api/v1/leaderboards/weekly_kills",
        &admin,
        "",
    );
    c.call(
        "DELETE",
        top,
        "/api/v1/leaderboards/weekly_kills",
        &admin,
        "",
    );

    // Operations and probes.
    c.call(
        "GET",
        "/api/v1/cache/stats",
        "/api/v1/cache/stats",
        &admin,
        "",
    );
    c.call(
        "POST",
        "/api/v1/cache/invalidate",
        "/api/v1/cache/invalidate",
        &admin,
        r#"{"keys":["game1:p:1"],"prefix":"game1:inv:"}"#,
    );
    c.call(
        "POST",
        "/api/v1/cache/invalidate",
        "/api/v1/cache/invalidate",
        &admin,
        r#"{"prefix":"dm:"}"#,
    );
    c.call(
        "GET",
        "/api/v1/cluster/nodes",
        "/api/v1/cluster/nodes",
        &admin,
        "",
    );
    // No cluster.redis in the test configuration: the config centre is 503.
    c.call(
        "GET",
        "/api/v1/cluster/config",
        "/api/v1/cluster/config",
        &admin,
        "",
    );
    let put = [admin[0], ("If-Match", "0")];
    c.call(
        "PUT",
        "/api/v1/cluster/config",
        "/api/v1/cluster/config",
        &put,
        "{}",
    );
    // The audit log: the changes above, a page and the next one, its
    // refusals, and every chain verified.
    let log = "/api/v1/audit";
    let j = c.call(
        "GET",
        log,
        &format!("{log}?subject=player:{id}&limit=2"),
        &admin,
        "",
    );
    let after = j["data"]["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    c.call(
        "GET",
        log,
        &format!("{log}?subject=player:{id}&limit=2&after={after}"),
        &admin,
        "",
    );
    c.call(
        "GET",
        log,
        &format!("{log}?actor=admin:ops&action=player.status&game=game1"),
        &admin,
        "",
    );
    c.call("GET", log, &format!("{log}?after=nope"), &admin, "");
    c.call("GET", log, &format!("{log}?limit=201"), &admin, "");
    c.call("GET", log, &format!("{log}?game=game9"), &admin, "");
    c.call("GET", log, log, &server, "");
    let chains = "/api/v1/audit/chains";
    let j = c.call("GET", chains, chains, &admin, "");
    assert_eq!(j["data"]["ok"], true, "{j}");
    c.call("GET", chains, &format!("{chains}?game=game9"), &admin, "");
    c.call("GET", chains, chains, player, "");
    c.call("GET", "/health/detailed", "/health/detailed", &admin, "");
    c.call(
        "GET",
        "/health/components",
        "/health/components",
        player,
        "",
    );
    c.call("GET", "/health", "/health", &[], "");
    c.call("GET", "/ready", "/ready?scope=x", &[], "");
    c.call("GET", "/metrics", "/metrics", &[], "");
    c.call("GET", "/console", "/console", &[], "");
    c.call("GET", "/console/", "/console/", &[], "");
    c.call("GET", "/console/{file}", "/console/console.js", &[], "");
    c.call("GET", "/console/{file}", "/console/nope.js", &[], "");

    // Logging out, last.
    c.call(
        "POST",
        "/api/v1/players/logout",
        "/api/v1/players/logout",
        &[("Authorization", t2.as_str())],
        "",
    );
    c.call(
        "POST",
        "/api/v1/auth/logout",
        "/api/v1/auth/logout",
        player,
        "",
    );
    c.call("GET", "/api/v1/players/{id}", &me, player, "");

    let served: BTreeSet<(String, String)> = router::templates()
        .map(|t| (t.method.to_string(), t.path.to_string()))
        .collect();
    let uncalled: Vec<_> = served.difference(&c.called).collect();
    assert!(
        uncalled.is_empty(),
        "routes this test does not call: {uncalled:?}"
    );
    assert!(c.problems.is_empty(), "{}", c.problems.join("\n"));
}
