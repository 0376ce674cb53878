//! A blocking connection to DataMiddleware's TCP port: handshake, calls,
//! pipelining and reconnection, on `std::net::TcpStream`.
//!
//! Rules it follows (docs/protocol.md has the reasons):
//! - every request carries NeedResponse and a sequence id of its own
//!   (never 0), and the replies of one connection come back in request
//!   order, so a batch is written at once and read back in order;
//! - an Error frame with sequence 0 is the server speaking for the whole
//!   connection (0xE006 "server shutting down" or "server busy", 0xE007
//!   timeouts) just before it closes it: the requests not answered before it
//!   were not carried out, so they are sent again on a new connection;
//! - a connection that closes without such a notice may have carried out
//!   the request in flight: only requests that are safe to repeat
//!   ([`safe_to_resend`]) are sent again; the others end in
//!   [`Error::OutcomeUnknown`];
//! - a new connection handshakes again with the same credentials before
//!   anything else is sent;
//! - the server closes an authenticated connection that sends no Heartbeat
//!   or Ping for `tcp.heartbeat_timeout_s`, whatever else it sends, so a
//!   Heartbeat goes out in front of a batch when the interval the handshake
//!   announced has passed.

use crate::frame::{self, codes, flags, msg, Frame};
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How a connection says who it is in its Handshake.
#[derive(Clone)]
pub enum Auth {
    /// The game's server key from the server's configuration: the
    /// connection acts as the game's server (role `game_server`).
    ServerKey(String),
    /// A player's access token (from PlayerLogin or the HTTP login): the
    /// connection acts as that player only.
    Token(String),
    /// Development servers (`auth.mode = "dev"`) only: no secret, the
    /// header user id is trusted as a game server, as the original did.
    DevUser(String),
}

impl std::fmt::Debug for Auth {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::ServerKey(_) => write!(f, "ServerKey(..)"),
            Auth::Token(_) => write!(f, "Token(..)"),
            Auth::DevUser(user) => write!(f, "DevUser({user:?})"),
        }
    }
}

/// Where to connect, as whom, and the limits of waiting.
#[derive(Debug, Clone)]
pub struct Config {
    /// `host:port` of the TCP listener, resolved again at every connection
    /// (so a DNS name that moves to another node is followed).
    pub addr: String,
    /// The game every frame names in its header.
    pub game_id: String,
    /// Header user id of the Handshake with a server key: names this game
    /// server instance; the server echoes it in every reply. Ignored with a
    /// token (the player's id is used).
    pub user_id: String,
    /// The credentials of every Handshake.
    pub auth: Auth,
    /// Longest wait for one TCP connection to open.
    pub connect_timeout: Duration,
    /// Longest wait for a reply (then [`Error::Timeout`]).
    pub reply_timeout: Duration,
    /// How long a call keeps trying to reconnect (server restarting,
    /// shutting down, busy) before [`Error::Unreachable`].
    pub reconnect_for: Duration,
    /// Gzip request bodies longer than this many bytes (flag Compressed);
    /// `None` never compresses.
    pub compress_above: Option<usize>,
    /// The server's `tcp.max_body_bytes`: a longer body (before
    /// compression) is refused here rather than closing the connection.
    pub max_body_bytes: usize,
    /// Longest reply body accepted.
    pub max_reply_bytes: usize,
}

impl Config {
    /// A configuration with the defaults: 5 s to connect, 30 s for a reply,
    /// 30 s of reconnection attempts, bodies above 8 KiB compressed, the
    /// server's default 64 KiB body limit, replies up to 16 MiB.
    pub fn new(addr: impl Into<String>, game_id: impl Into<String>, auth: Auth) -> Config {
        Config {
            addr: addr.into(),
            game_id: game_id.into(),
            user_id: "game-server".to_string(),
            auth,
            connect_timeout: Duration::from_secs(5),
            reply_timeout: Duration::from_secs(30),
            reconnect_for: Duration::from_secs(30),
            compress_above: Some(8 * 1024),
            max_body_bytes: frame::DEFAULT_MAX_BODY,
            max_reply_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The `data` of a successful Handshake.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HandshakeInfo {
    /// The game the connection acts in.
    pub game_id: String,
    /// The user id replies carry: the header user id with a server key,
    /// the player's id with a token.
    pub user_id: String,
    /// `game_server` or `player`.
    pub role: String,
    /// The session the connection belongs to.
    pub session_id: String,
    /// How often the server expects a Heartbeat or Ping, in seconds.
    pub heartbeat_interval_s: u64,
}

/// A player profile as the server sends it (fields this client does not
/// name are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Player {
    /// Player id, unique within the game.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Display name.
    #[serde(default)]
    pub nickname: String,
    /// Level.
    pub level: i64,
    /// Experience.
    pub exp: i64,
    /// Gold balance.
    pub gold: i64,
    /// Diamond balance.
    pub diamonds: i64,
    /// `active`, `banned` or `deleted`.
    pub status: String,
    /// Changes with every update (optimistic concurrency).
    pub version: i64,
}

/// The `data` of a wallet change.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WalletBalance {
    /// The player.
    pub player_id: i64,
    /// `gold` or `diamonds`.
    pub currency: String,
    /// The new balance of that currency.
    pub balance: i64,
    /// Gold after the change.
    pub gold: i64,
    /// Diamonds after the change.
    pub diamonds: i64,
}

/// The `data` of a PlayerLogin.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Login {
    /// The player's profile.
    pub player: Player,
    /// Access token (a [`Auth::Token`] for a connection of the player's own).
    pub token: String,
    /// Refresh token (HTTP `POST /api/v1/auth/refresh`).
    pub refresh_token: String,
    /// When the access token expires, Unix seconds.
    pub expires_at: i64,
}

/// The body of an Error frame: why the server refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// A protocol code (0xE001…0xE008), a business code (1001…3003), 409 or
    /// 429.
    pub code: u32,
    /// A reason safe to log.
    pub message: String,
    /// With 429: seconds until the budget has room again.
    pub retry_after_s: Option<u64>,
}

impl ServerError {
    fn from_body(body: &[u8]) -> ServerError {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        ServerError {
            code: v
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u32::try_from(c).ok())
                .unwrap_or(codes::INTERNAL),
            message: v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("unreadable error body")
                .to_string(),
            retry_after_s: v.get("retry_after_s").and_then(Value::as_u64),
        }
    }
}

/// Why a call has no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The server refused the request with an Error frame.
    Server(ServerError),
    /// The server refused the Handshake (wrong key, expired or revoked
    /// token, unknown game, 429): trying again with the same credentials
    /// would not help.
    Handshake(ServerError),
    /// No connection could be opened and authenticated within
    /// [`Config::reconnect_for`]; the last reason.
    Unreachable(String),
    /// The request was sent, then the connection closed before its reply:
    /// it may or may not have been carried out, and it is not safe to send
    /// blindly again ([`safe_to_resend`]). Look (e.g. read the player)
    /// before retrying. The next call reconnects.
    OutcomeUnknown,
    /// No reply within [`Config::reply_timeout`]; the connection was
    /// dropped (the next call reconnects) and the outcome is unknown.
    Timeout,
    /// The request was not sent: its body is not JSON the server can take,
    /// or it or an id is too long.
    Request(String),
    /// The server sent something this client does not understand; the
    /// connection was dropped.
    Protocol(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Server(e) => {
                write!(f, "server error {} (0x{:X}): {}", e.code, e.code, e.message)
            }
            Error::Handshake(e) => write!(f, "handshake refused ({}): {}", e.code, e.message),
            Error::Unreachable(why) => write!(f, "server unreachable: {why}"),
            Error::OutcomeUnknown => write!(f, "connection lost before the reply; outcome unknown"),
            Error::Timeout => write!(f, "no reply in time; outcome unknown"),
            Error::Request(why) => write!(f, "request not sent: {why}"),
            Error::Protocol(why) => write!(f, "protocol error: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// Whether `msg_type` with `body` may be sent again after the connection
/// closed with the request in flight: it changes nothing, or doing it twice
/// does what doing it once does (paying or cancelling an order again answers
/// the order as it is, an order creation with an `idempotency_key` answers the
/// same order, a logout). Wallet changes, item operations, updates,
/// registrations, logins and orders without a key are not.
pub fn safe_to_resend(msg_type: u16, body: &Value) -> bool {
    let action = body.get("action").and_then(Value::as_str).unwrap_or("");
    match msg_type {
        msg::HEARTBEAT | msg::PING | msg::HANDSHAKE | msg::PLAYER_LOGOUT => true,
        msg::PLAYER_DATA => matches!(action, "get" | "ledger"),
        msg::ITEM_OPERATION => action == "list",
        msg::ORDER_OPERATION => match action {
            "get" | "list" | "pay" | "cancel" => true,
            "create" => body.get("idempotency_key").is_some_and(|k| !k.is_null()),
            _ => false,
        },
        _ => false,
    }
}

/// One open socket and what has been read from it but not decoded.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Why reading a reply stopped.
enum ReadFailure {
    /// The connection closed or broke.
    Closed,
    /// Nothing arrived within the reply timeout.
    Timeout,
    /// The bytes are not a frame.
    Bad(String),
}

/// How one write-then-read round over a connection ended.
enum Round {
    /// Every request of the round is answered.
    Done,
    /// A sequence-0 notice came: the unanswered requests were not carried
    /// out and may all be sent again.
    NotCarriedOut,
    /// The connection closed without a notice: unanswered requests may have
    /// been carried out.
    Lost,
    /// The round cannot go on; unanswered requests end with this error.
    Failed(Error),
}

/// Why one connection attempt failed.
enum Attempt {
    /// Worth trying again (refused, closed, busy, shutting down).
    Transient(String),
    /// The handshake was refused.
    Refused(ServerError),
}

/// A blocking client of one server address: one connection at a time,
/// opened and authenticated again whenever it is lost.
pub struct Client {
    config: Config,
    conn: Option<Conn>,
    next_sequence: u32,
    handshake: Option<HandshakeInfo>,
    last_keepalive: Instant,
    connections: u64,
    last_notice: Option<ServerError>,
}

impl Client {
    /// Connects and handshakes (retrying for [`Config::reconnect_for`] while
    /// the server cannot be reached).
    pub fn connect(config: Config) -> Result<Client, Error> {
        let mut client = Client {
            config,
            conn: None,
            next_sequence: 1,
            handshake: None,
            last_keepalive: Instant::now(),
            connections: 0,
            last_notice: None,
        };
        let deadline = Instant::now() + client.config.reconnect_for;
        client.ensure_connected(deadline)?;
        Ok(client)
    }

    /// What the last successful Handshake answered.
    pub fn handshake_info(&self) -> Option<&HandshakeInfo> {
        self.handshake.as_ref()
    }

    /// How many times the client connected again after its first
    /// connection (for logs, metrics and tests).
    pub fn reconnects(&self) -> u64 {
        self.connections.saturating_sub(1)
    }

    /// The last notice the server sent for a whole connection (sequence 0:
    /// 0xE006 "server shutting down" / "server busy", 0xE007 timeouts).
    pub fn last_notice(&self) -> Option<&ServerError> {
        self.last_notice.as_ref()
    }

    /// Closes the connection; the next call opens a new one.
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Sends one request and returns the `data` of its reply (`null` for
    /// Heartbeat and Ping). `body` is the JSON body; `null` sends none.
    pub fn call(&mut self, msg_type: u16, body: &Value) -> Result<Value, Error> {
        self.exchange(&[(msg_type, body)])
            .pop()
            .unwrap_or_else(|| Err(Error::Protocol("no result".to_string())))
    }

    /// Sends every request in one write and reads the replies, which come
    /// back in request order and are matched by sequence id; one result per
    /// request, in the same order. A connection lost on the way is opened
    /// again and the requests it did not answer are sent again as
    /// [`Client`] describes.
    pub fn pipeline(&mut self, requests: &[(u16, Value)]) -> Vec<Result<Value, Error>> {
        let borrowed: Vec<(u16, &Value)> = requests.iter().map(|(t, b)| (*t, b)).collect();
        self.exchange(&borrowed)
    }

    /// A Ping; returns the round-trip time. Keeps the connection alive like
    /// a Heartbeat.
    pub fn ping(&mut self) -> Result<Duration, Error> {
        let started = Instant::now();
        self.call(msg::PING, &Value::Null)?;
        Ok(started.elapsed())
    }

    /// A Heartbeat. Call it every `heartbeat_interval_s` on a connection
    /// that may sit idle; otherwise the server closes it and the next call
    /// reconnects.
    pub fn heartbeat(&mut self) -> Result<(), Error> {
        self.call(msg::HEARTBEAT, &Value::Null).map(|_| ())
    }

    /// PlayerLogin: checks a player's password and opens a session for them.
    pub fn login(&mut self, username: &str, password: &str) -> Result<Login, Error> {
        let data = self.call(
            msg::PLAYER_LOGIN,
            &json!({"username": username, "password": password}),
        )?;
        typed(data)
    }

    /// PlayerData `create`: registers a player (game servers).
    pub fn create_player(&mut self, username: &str, password: &str) -> Result<Player, Error> {
        let data = self.call(
            msg::PLAYER_DATA,
            &json!({"action": "create", "username": username, "password": password}),
        )?;
        typed(data.get("player").cloned().unwrap_or(Value::Null))
    }

    /// PlayerData `get`: a player's profile.
    pub fn get_player(&mut self, player_id: i64) -> Result<Player, Error> {
        let data = self.call(
            msg::PLAYER_DATA,
            &json!({"action": "get", "player_id": player_id}),
        )?;
        typed(data.get("player").cloned().unwrap_or(Value::Null))
    }

    /// PlayerData `wallet`: credits (`delta` > 0) or debits a balance,
    /// `currency` `gold` or `diamonds`; never below zero (3001).
    pub fn change_wallet(
        &mut self,
        player_id: i64,
        currency: &str,
        delta: i64,
        reason: &str,
    ) -> Result<WalletBalance, Error> {
        let data = self.call(
            msg::PLAYER_DATA,
            &json!({"action": "wallet", "player_id": player_id,
                    "currency": currency, "delta": delta, "reason": reason}),
        )?;
        typed(data)
    }

    fn sequence(&mut self) -> u32 {
        // 0 is never used: the server's notices for a whole connection
        // carry it.
        let s = self.next_sequence;
        self.next_sequence = self.next_sequence.checked_add(1).unwrap_or(1);
        s
    }

    fn frame(&mut self, msg_type: u16, frame_flags: u8, user_id: &str, body: Vec<u8>) -> Frame {
        Frame {
            version: frame::VERSION,
            msg_type,
            flags: frame_flags,
            sequence: self.sequence(),
            timestamp: now_s(),
            game_id: self.config.game_id.clone(),
            user_id: user_id.to_string(),
            body,
        }
    }

    /// The body bytes and flags of a request body.
    fn body(&self, body: &Value) -> Result<(Vec<u8>, u8), Error> {
        if body.is_null() {
            return Ok((Vec::new(), flags::NEED_RESPONSE));
        }
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Request(e.to_string()))?;
        if bytes.len() > self.config.max_body_bytes {
            return Err(Error::Request(format!(
                "body of {} bytes exceeds {}",
                bytes.len(),
                self.config.max_body_bytes
            )));
        }
        match self.config.compress_above {
            Some(limit) if bytes.len() > limit => {
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&bytes)
                    .and_then(|_| gz.finish())
                    .map(|zipped| (zipped, flags::NEED_RESPONSE | flags::COMPRESSED))
                    .map_err(|e| Error::Request(format!("gzip: {e}")))
            }
            _ => Ok((bytes, flags::NEED_RESPONSE)),
        }
    }

    fn exchange(&mut self, requests: &[(u16, &Value)]) -> Vec<Result<Value, Error>> {
        let mut results: Vec<Option<Result<Value, Error>>> = vec![None; requests.len()];
        let mut bodies = Vec::with_capacity(requests.len());
        for (i, (_, body)) in requests.iter().enumerate() {
            match self.body(body) {
                Ok(b) => bodies.push(b),
                Err(e) => {
                    results[i] = Some(Err(e));
                    bodies.push((Vec::new(), 0));
                }
            }
        }
        let deadline = Instant::now() + self.config.reconnect_for;
        let mut rounds = 0u32;
        loop {
            let pending: Vec<usize> = (0..requests.len())
                .filter(|i| results[*i].is_none())
                .collect();
            if pending.is_empty() {
                break;
            }
            if rounds > 0 && Instant::now() >= deadline {
                let why = "the connection kept closing".to_string();
                for i in pending {
                    results[i] = Some(Err(Error::Unreachable(why.clone())));
                }
                break;
            }
            rounds += 1;
            if let Err(e) = self.ensure_connected(deadline) {
                for i in pending {
                    results[i] = Some(Err(e.clone()));
                }
                break;
            }
            match self.round(requests, &bodies, &pending, &mut results) {
                Round::Done => {}
                Round::NotCarriedOut => self.conn = None,
                Round::Lost => {
                    self.conn = None;
                    for i in pending {
                        let (msg_type, body) = requests[i];
                        if results[i].is_none() && !safe_to_resend(msg_type, body) {
                            results[i] = Some(Err(Error::OutcomeUnknown));
                        }
                    }
                }
                Round::Failed(e) => {
                    self.conn = None;
                    for i in pending {
                        if results[i].is_none() {
                            results[i] = Some(Err(e.clone()));
                        }
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::Protocol("no result".to_string()))))
            .collect()
    }

    /// Writes the pending requests (after a Heartbeat when one is due) and
    /// reads their replies in order.
    fn round(
        &mut self,
        requests: &[(u16, &Value)],
        bodies: &[(Vec<u8>, u8)],
        pending: &[usize],
        results: &mut [Option<Result<Value, Error>>],
    ) -> Round {
        let mut out = Vec::new();
        // (sequence, index of the request; None for our own Heartbeat)
        let mut expected: Vec<(u32, Option<usize>)> = Vec::with_capacity(pending.len() + 1);
        let interval = self
            .handshake
            .as_ref()
            .map_or(30, |h| h.heartbeat_interval_s.max(1));
        if self.last_keepalive.elapsed() >= Duration::from_secs(interval) {
            let f = self.frame(msg::HEARTBEAT, flags::NEED_RESPONSE, "", Vec::new());
            if let Err(e) = frame::encode(&f, &mut out) {
                return Round::Failed(Error::Request(e.to_string()));
            }
            expected.push((f.sequence, None));
        }
        for &i in pending {
            let (body, frame_flags) = &bodies[i];
            let f = self.frame(requests[i].0, *frame_flags, "", body.clone());
            match frame::encode(&f, &mut out) {
                Ok(()) => expected.push((f.sequence, Some(i))),
                Err(e) => results[i] = Some(Err(Error::Request(e.to_string()))),
            }
        }
        let max_reply = self.config.max_reply_bytes;
        let Some(conn) = self.conn.as_mut() else {
            return Round::Lost;
        };
        if conn.stream.write_all(&out).is_err() {
            return Round::Lost;
        }
        for (sequence, index) in expected {
            let reply = match read_frame(conn, max_reply) {
                Ok(f) => f,
                Err(ReadFailure::Closed) => return Round::Lost,
                Err(ReadFailure::Timeout) => return Round::Failed(Error::Timeout),
                Err(ReadFailure::Bad(why)) => return Round::Failed(Error::Protocol(why)),
            };
            if reply.sequence == 0 && reply.msg_type == msg::ERROR {
                self.last_notice = Some(ServerError::from_body(&reply.body));
                return Round::NotCarriedOut;
            }
            if reply.sequence != sequence {
                return Round::Failed(Error::Protocol(format!(
                    "reply with sequence {} where {sequence} was due",
                    reply.sequence
                )));
            }
            if matches!(reply.msg_type, msg::HEARTBEAT | msg::PONG) {
                self.last_keepalive = Instant::now();
            }
            if let Some(i) = index {
                results[i] = Some(outcome(requests[i].0, &reply, max_reply));
            }
        }
        Round::Done
    }

    /// Makes sure an authenticated connection is open: the current one if
    /// the server has not closed it, else a new one, tried until `deadline`.
    fn ensure_connected(&mut self, deadline: Instant) -> Result<(), Error> {
        if let Some(conn) = self.conn.as_mut() {
            match still_open(conn) {
                Ok(()) => return Ok(()),
                Err(notice) => {
                    if notice.is_some() {
                        self.last_notice = notice;
                    }
                    self.conn = None;
                }
            }
        }
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.open() {
                Ok(()) => return Ok(()),
                Err(Attempt::Refused(e)) => return Err(Error::Handshake(e)),
                Err(Attempt::Transient(why)) => {
                    if Instant::now() + backoff > deadline {
                        return Err(Error::Unreachable(why));
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// One connection attempt: connect, then handshake.
    fn open(&mut self) -> Result<(), Attempt> {
        let target = self.config.addr.clone();
        let transient = |what: &str, e: &dyn std::fmt::Display| {
            Attempt::Transient(format!("{what} {target}: {e}"))
        };
        let addrs = target
            .as_str()
            .to_socket_addrs()
            .map_err(|e| transient("resolve", &e))?;
        let mut last = Attempt::Transient(format!("{target} resolves to nothing"));
        let mut opened = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.config.connect_timeout) {
                Ok(s) => {
                    opened = Some(s);
                    break;
                }
                Err(e) => last = transient("connect", &e),
            }
        }
        let stream = opened.ok_or(last)?;
        let setup = stream
            .set_nodelay(true)
            .and_then(|_| stream.set_read_timeout(Some(self.config.reply_timeout)))
            .and_then(|_| stream.set_write_timeout(Some(self.config.reply_timeout)));
        setup.map_err(|e| transient("set up", &e))?;
        let mut conn = Conn {
            stream,
            buf: Vec::new(),
        };
        let (body, user) = match &self.config.auth {
            Auth::ServerKey(key) => (json!({"server_key": key}), self.config.user_id.clone()),
            Auth::Token(token) => (json!({"token": token}), String::new()),
            Auth::DevUser(user) => (Value::Null, user.clone()),
        };
        let body = match body {
            Value::Null => Vec::new(),
            v => v.to_string().into_bytes(),
        };
        let hello = self.frame(msg::HANDSHAKE, flags::NEED_RESPONSE, &user, body);
        let mut out = Vec::new();
        frame::encode(&hello, &mut out).map_err(|e| {
            Attempt::Refused(ServerError {
                code: codes::TOO_LARGE,
                message: format!("handshake not sent: {e}"),
                retry_after_s: None,
            })
        })?;
        conn.stream
            .write_all(&out)
            .map_err(|e| transient("handshake with", &e))?;
        let reply = match read_frame(&mut conn, self.config.max_reply_bytes) {
            Ok(f) => f,
            Err(ReadFailure::Closed) => {
                return Err(Attempt::Transient("closed during the handshake".into()))
            }
            Err(ReadFailure::Timeout) => {
                return Err(Attempt::Transient("no handshake reply in time".into()))
            }
            Err(ReadFailure::Bad(why)) => return Err(Attempt::Transient(why)),
        };
        if reply.msg_type == msg::ERROR {
            let e = ServerError::from_body(&reply.body);
            if reply.sequence == 0 {
                // "server busy" or "shutting down": another try may work.
                let why = format!("{} (0x{:X})", e.message, e.code);
                self.last_notice = Some(e);
                return Err(Attempt::Transient(why));
            }
            return Err(Attempt::Refused(e));
        }
        let data = outcome(msg::HANDSHAKE, &reply, self.config.max_reply_bytes);
        let info: HandshakeInfo = data
            .and_then(typed)
            .map_err(|e| Attempt::Transient(format!("handshake reply: {e}")))?;
        self.handshake = Some(info);
        self.last_keepalive = Instant::now();
        self.conn = Some(conn);
        self.connections += 1;
        Ok(())
    }
}

/// Checks, without waiting, that the server has not closed an idle
/// connection. The server sends nothing unasked except a notice before it
/// closes a connection, so any byte waiting means the connection is ending;
/// the notice, if one came whole, is returned.
fn still_open(conn: &mut Conn) -> Result<(), Option<ServerError>> {
    if conn.stream.set_nonblocking(true).is_err() {
        return Err(None);
    }
    let mut chunk = [0u8; 4096];
    let open = loop {
        match conn.stream.read(&mut chunk) {
            Ok(0) => break false,
            Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break false,
        }
    };
    if conn.stream.set_nonblocking(false).is_err() {
        return Err(None);
    }
    if conn.buf.is_empty() && open {
        return Ok(());
    }
    let notice = match frame::decode(&conn.buf, frame::DEFAULT_MAX_BODY) {
        Ok(Some((f, _))) if f.msg_type == msg::ERROR => Some(ServerError::from_body(&f.body)),
        _ => None,
    };
    Err(notice)
}

/// Reads one whole frame (blocking up to the reply timeout).
fn read_frame(conn: &mut Conn, max_reply: usize) -> Result<Frame, ReadFailure> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match frame::decode(&conn.buf, max_reply) {
            Ok(Some((f, len))) => {
                conn.buf.drain(..len);
                return Ok(f);
            }
            Ok(None) => {}
            Err(e) => return Err(ReadFailure::Bad(format!("bad frame from the server: {e}"))),
        }
        match conn.stream.read(&mut chunk) {
            Ok(0) => return Err(ReadFailure::Closed),
            Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(ReadFailure::Timeout)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err(ReadFailure::Closed),
        }
    }
}

/// The result of a request of `msg_type` from its reply: the envelope's
/// `data`, or the Error frame's reason.
fn outcome(msg_type: u16, reply: &Frame, max_reply: usize) -> Result<Value, Error> {
    let body = if reply.flags & flags::COMPRESSED != 0 {
        let mut inflated = Vec::new();
        flate2::read::GzDecoder::new(&reply.body[..])
            .take(max_reply as u64)
            .read_to_end(&mut inflated)
            .map_err(|e| Error::Protocol(format!("reply body is not gzip: {e}")))?;
        inflated
    } else {
        reply.body.clone()
    };
    if reply.msg_type == msg::ERROR {
        return Err(Error::Server(ServerError::from_body(&body)));
    }
    let due = if msg_type == msg::PING {
        msg::PONG
    } else {
        msg_type
    };
    if reply.msg_type != due {
        return Err(Error::Protocol(format!(
            "reply of type 0x{:04x} to a request of type 0x{msg_type:04x}",
            reply.msg_type
        )));
    }
    if body.is_empty() {
        return Ok(Value::Null);
    }
    match serde_json::from_slice(&body) {
        Ok(Value::Object(mut envelope)) => Ok(envelope.remove("data").unwrap_or(Value::Null)),
        Ok(_) => Err(Error::Protocol("reply body is not an envelope".to_string())),
        Err(e) => Err(Error::Protocol(format!("reply body is not JSON: {e}"))),
    }
}

/// `data` as a typed value.
fn typed<T: serde::de::DeserializeOwned>(data: Value) -> Result<T, Error> {
    serde_json::from_value(data).map_err(|e| Error::Protocol(format!("unexpected data: {e}")))
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_repeatable_requests_are_resent() {
        assert!(safe_to_resend(msg::PING, &Value::Null));
        assert!(safe_to_resend(msg::PLAYER_DATA, &json!({"action": "get"})));
        assert!(!safe_to_resend(
            msg::PLAYER_DATA,
            &json!({"action": "wallet", "delta": 5})
        ));
        assert!(!safe_to_resend(
            msg::ITEM_OPERATION,
            &json!({"action": "grant"})
        ));
        assert!(safe_to_resend(
            msg::ORDER_OPERATION,
            &json!({"action": "create", "idempotency_key": "k1"})
        ));
        assert!(!safe_to_resend(
            msg::ORDER_OPERATION,
            &json!({"action": "create"})
        ));
        assert!(safe_to_resend(
            msg::ORDER_OPERATION,
            &json!({"action": "cancel"})
        ));
        assert!(!safe_to_resend(
            msg::PLAYER_LOGIN,
            &json!({"username": "a"})
        ));
    }

    #[test]
    fn error_bodies_are_read_whatever_they_hold() {
        let e = ServerError::from_body(br#"{"code":429,"message":"slow down","retry_after_s":7}"#);
        assert_eq!(
            e,
            ServerError {
                code: 429,
                message: "slow down".into(),
                retry_after_s: Some(7)
            }
        );
        assert_eq!(ServerError::from_body(b"garbage").code, codes::INTERNAL);
    }

    #[test]
    fn sequence_ids_skip_zero_when_they_wrap() {
        let mut c = Client {
            config: Config::new("127.0.0.1:1", "game1", Auth::DevUser("u".into())),
            conn: None,
            next_sequence: u32::MAX,
            handshake: None,
            last_keepalive: Instant::now(),
            connections: 0,
            last_notice: None,
        };
        assert_eq!(c.sequence(), u32::MAX);
        assert_eq!(c.sequence(), 1);
    }
}
