//! One HTTP request, built up and sent: `server.call(method, path)` on a new
//! connection or `client.call(method, path)` on a kept one, then
//! `.token(..)`, `.game(..)`, `.header(..)`, `.json(..)` or `.body(..)`, and
//! `.send()`.
//!
//! ```ignore
//! let (status, j) = server
//!     .call("POST", "/api/v1/orders")
//!     .token(&gs)
//!     .json(json!({"player_id": p, "item_id": "potion", "quantity": 1}))
//!     .send()
//!     .parts();
//! ```

use super::{HttpClient, HttpResponse, Server};
use serde_json::Value;

/// Where a [`Call`] is sent.
enum Connection<'c> {
    /// A new connection to this server, made when the call is sent.
    New(&'c Server),
    /// A connection the test keeps (keep-alive, a chosen shard, ...).
    Kept(&'c mut HttpClient),
}

/// A request being built; nothing is sent before [`Call::send`].
#[must_use = "a call is sent by .send()"]
pub struct Call<'c> {
    connection: Connection<'c>,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    lenient: bool,
}

/// What a [`Call`] got back: the response, and its body as JSON.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status (0 for a [`Call::lenient`] call that got no answer).
    pub status: u16,
    /// The body as JSON: `Null` when the body is empty (or, for a
    /// [`Call::lenient`] call, not JSON).
    pub json: Value,
    /// The whole response (headers, raw body).
    pub response: HttpResponse,
}

impl Answer {
    /// The body as text.
    pub fn text(&self) -> String {
        self.response.text()
    }

    /// A response header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response.header(name)
    }

    /// `(status, json)`, for `let (s, j) = ...`.
    pub fn parts(self) -> (u16, Value) {
        (self.status, self.json)
    }
}

impl<'c> Call<'c> {
    fn new(connection: Connection<'c>, method: &str, path: &str) -> Call<'c> {
        Call {
            connection,
            method: method.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            lenient: false,
        }
    }

    /// `Authorization: Bearer <token>`.
    pub fn token(self, token: &str) -> Self {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    /// `X-Game-Id: <game>`.
    pub fn game(self, game: &str) -> Self {
        self.header("X-Game-Id", game)
    }

    /// Any header, sent in the order given (after the ones added before).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// `body` as the request body, serialised (compact).
    pub fn json(self, body: Value) -> Self {
        self.body(body.to_string())
    }

    /// A raw request body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// For tests that count failures under faults: a connection error
    /// answers status 0 with a `Null` body instead of failing the test, and a
    /// body that is not JSON reads as `Null`.
    pub fn lenient(mut self) -> Self {
        self.lenient = true;
        self
    }

    /// Sends the request and reads its answer; fails the test on a
    /// connection error (unless [`Call::lenient`]) or a non-empty body that
    /// is not JSON (likewise).
    pub fn send(self) -> Answer {
        let Call {
            connection,
            method,
            path,
            headers,
            body,
            lenient,
        } = self;
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut new;
        let client = match connection {
            Connection::New(server) => {
                new = server.http();
                &mut new
            }
            Connection::Kept(client) => client,
        };
        let response = match client.try_request(&method, &path, &headers, &body) {
            Ok(r) => r,
            Err(_) if lenient => HttpResponse {
                status: 0,
                headers: Vec::new(),
                body: Vec::new(),
            },
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let json = if response.body.is_empty() {
            Value::Null
        } else if lenient {
            serde_json::from_slice(&response.body).unwrap_or(Value::Null)
        } else {
            response.json()
        };
        Answer {
            status: response.status,
            json,
            response,
        }
    }
}

impl Server {
    /// A request to this server on a new connection; see [`Call`].
    pub fn call(&self, method: &str, path: &str) -> Call<'_> {
        Call::new(Connection::New(self), method, path)
    }
}

impl HttpClient {
    /// A request on this connection; see [`Call`].
    pub fn call(&mut self, method: &str, path: &str) -> Call<'_> {
        Call::new(Connection::Kept(self), method, path)
    }
}
