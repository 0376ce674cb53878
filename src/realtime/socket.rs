//! One WebSocket connection after `GET /ws` switched it (SPEC §11): frames
//! in and out on the shard that accepted it, the first-message
//! authentication, pings, and the close codes.
//!
//! The loop waits for whichever comes first: bytes from the client or its
//! next deadline (authentication, ping). A glommio read is only a wait for
//! readiness until the bytes are taken, so leaving it for a deadline loses
//! nothing. The connection is tracked by the shard like any other, so a
//! draining shard ends it (close 1001).
//!
//! Client messages are JSON text: `{"type":"auth","token":"..."}` within
//! [`AUTH_WITHIN`] when the upgrade carried no `Authorization` header; the
//! server answers `{"type":"ready","game","role","player_id"}`. Pings get
//! pongs; the server pings every [`PING_EVERY`] and closes a client that
//! left [`MISSED_PONGS`] of them unanswered. An authenticated socket is in
//! its shard's hub (`realtime/hub.rs`): when its session is revoked — a
//! logout, a ban, a revocation another shard or node made — it closes at
//! once with 4001.

use super::frame::{self, close, Decoded, Decoder, Message};
use super::hub::{Closing, Membership};
use super::upgrade::Upgrade;
use crate::buffer::ReadBuffer;
use crate::pipeline::{self, Credentials, Scope};
use crate::service::auth::Caller;
use crate::shard::Shard;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use serde_json::{json, Value};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Largest client message, fragments joined (SPEC §11; close 1009 past it).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// How long a client without an `Authorization` header has to send its
/// `auth` message.
pub const AUTH_WITHIN: Duration = Duration::from_secs(5);
/// How often the server pings.
pub const PING_EVERY: Duration = Duration::from_secs(30);
/// Pings left unanswered before the server closes.
pub const MISSED_PONGS: u32 = 2;
/// Bytes asked of one read: small, so idle sockets stay small.
const READ: usize = 1024;

/// What ended a socket's wait.
enum Wake {
    /// The client sent bytes (or closed: 0, or failed).
    Read(std::io::Result<usize>),
    /// A deadline came.
    Due,
    /// The hub asks it to close (a revoked session).
    Closing(Closing),
}

/// What a handled message leaves the connection to do.
enum Next {
    Go,
    Close(u16, String),
}

/// One socket's state.
struct Socket {
    shard: Rc<Shard>,
    caller: Option<Caller>,
    /// Its place in the shard's hub once authenticated (a revoked session
    /// closes it from there).
    membership: Option<Membership>,
    opened: Instant,
    next_ping: Instant,
    unanswered: u32,
    out: Vec<u8>,
}

/// Serves one switched connection until either side closes it.
pub async fn run(shard: Rc<Shard>, mut stream: TcpStream, rest: Vec<u8>, up: Upgrade) {
    let guard = shard.track(stream.as_raw_fd());
    let now = Instant::now();
    let mut socket = Socket {
        shard: shard.clone(),
        caller: None,
        membership: None,
        opened: now,
        next_ping: now + PING_EVERY,
        unanswered: 0,
        out: Vec::new(),
    };
    if let Some(caller) = up.caller {
        socket.ready(caller);
    }
    let mut decoder = Decoder::new(MAX_MESSAGE);
    let mut buf = ReadBuffer::holding(rest);
    let ended = loop {
        if let Some(next) = socket.take_frames(&mut decoder, &mut buf) {
            break next;
        }
        if let Some(next) = socket.tick(Instant::now()) {
            break next;
        }
        if !socket.out.is_empty() {
            if stream.write_all(&socket.out).await.is_err() {
                break Next::Close(close::GOING_AWAY, String::new());
            }
            socket.out.clear();
        }
        guard.set_deadline(socket.next_deadline() + PING_EVERY);
        let at = socket.next_deadline();
        let spare = buf.spare(READ);
        let mailbox = socket.membership.as_ref().map(Membership::mailbox);
        let woke = futures_lite::future::or(
            async { Wake::Read(stream.read(spare).await) },
            futures_lite::future::or(
                async {
                    glommio::timer::sleep(at.saturating_duration_since(Instant::now())).await;
                    Wake::Due
                },
                async {
                    match mailbox {
                        Some(m) => Wake::Closing(m.closed().await),
                        None => std::future::pending().await,
                    }
                },
            ),
        )
        .await;
        match woke {
            Wake::Due => {}
            Wake::Closing((code, reason)) => break Next::Close(code, reason.to_string()),
            Wake::Read(Ok(n)) if n > 0 => buf.advance(n),
            Wake::Read(_) => {
                let code = if shard.is_draining() {
                    close::GOING_AWAY
                } else {
                    close::NORMAL
                };
                break Next::Close(code, String::new());
            }
        }
        // A large message's room is given back once it has been read (at
        // most a few reads' worth stays: idle sockets stay small).
        if buf.capacity() > 4 * READ {
            buf.shrink_to(READ);
        }
    };
    if let Next::Close(code, reason) = ended {
        frame::encode_close(code, &reason, &mut socket.out);
        let _ = stream.write_all(&socket.out).await;
    }
    let _ = stream.close().await;
}

impl Socket {
    /// Handles every whole frame at the start of `buf`; what ends the
    /// connection, if something does.
    fn take_frames(&mut self, decoder: &mut Decoder, buf: &mut ReadBuffer) -> Option<Next> {
        loop {
            match decoder.decode(buf.filled_mut()) {
                Err(v) => return Some(Next::Close(v.code, v.reason.to_string())),
                Ok(Decoded { used: 0, .. }) => return None,
                Ok(Decoded { used, message }) => {
                    buf.consume(used);
                    if let Some(Next::Close(code, reason)) = message.map(|m| self.handle(m)) {
                        return Some(Next::Close(code, reason));
                    }
                }
            }
        }
    }

    fn handle(&mut self, message: Message) -> Next {
        match message {
            Message::Ping(payload) => {
                frame::encode_pong(&payload, &mut self.out);
                Next::Go
            }
            Message::Pong => {
                self.unanswered = 0;
                Next::Go
            }
            Message::Close(_) => Next::Close(close::NORMAL, String::new()),
            Message::Binary(_) => Next::Close(close::PROTOCOL, "messages are JSON text".into()),
            Message::Text(text) => self.text(&text),
        }
    }

    fn text(&mut self, text: &str) -> Next {
        let Ok(msg) = serde_json::from_str::<Value>(text) else {
            return self.error("a message is a JSON object with a \"type\"");
        };
        match (msg["type"].as_str(), &self.caller) {
            (Some("auth"), None) => match msg["token"].as_str() {
                Some(token) => self.authenticate(token),
                None => Next::Close(close::POLICY, "auth needs a \"token\"".into()),
            },
            (Some("auth"), Some(_)) => self.error("already authenticated"),
            (_, None) => Next::Close(close::POLICY, "authenticate first".into()),
            (Some(other), Some(_)) => {
                let other = other.chars().take(32).collect::<String>();
                self.error(&format!("unknown message type {other:?}"))
            }
            (None, Some(_)) => self.error("a message is a JSON object with a \"type\""),
        }
    }

    fn authenticate(&mut self, token: &str) -> Next {
        let shard = self.shard.clone();
        let caller = pipeline::authenticate(&shard, Credentials::Token(token))
            .and_then(|c| pipeline::scope(&shard, &c, None, Scope::Game).map(|_| c));
        match caller {
            Ok(caller) => {
                self.ready(caller.into_owned());
                Next::Go
            }
            Err(e) => Next::Close(
                close::POLICY,
                format!("authentication failed: {}", e.message),
            ),
        }
    }

    /// The caller is known: say so.
    fn ready(&mut self, caller: Caller) {
        let answer = json!({
            "type": "ready",
            "game": caller.game_id,
            "role": caller.role.as_str(),
            "player_id": caller.player_id,
        });
        frame::encode_text(&answer.to_string(), &mut self.out);
        self.membership = Some(self.shard.services.sockets().join(&caller.session_id));
        self.caller = Some(caller);
    }

    /// A message the server could not act on: said, and the socket stays.
    fn error(&mut self, message: &str) -> Next {
        let answer = json!({"type": "error", "message": message});
        frame::encode_text(&answer.to_string(), &mut self.out);
        Next::Go
    }

    /// The next time something is due: the end of the authentication
    /// window, or the next ping.
    fn next_deadline(&self) -> Instant {
        match self.caller {
            None => self.next_ping.min(self.opened + AUTH_WITHIN),
            Some(_) => self.next_ping,
        }
    }

    /// Does what is due at `now`; what ends the connection, if something does.
    fn tick(&mut self, now: Instant) -> Option<Next> {
        if self.caller.is_none() && now >= self.opened + AUTH_WITHIN {
            return Some(Next::Close(
                close::POLICY,
                "authenticate within 5 s: {\"type\":\"auth\",\"token\":...}".into(),
            ));
        }
        if now >= self.next_ping {
            if self.unanswered >= MISSED_PONGS {
                return Some(Next::Close(close::POLICY, "pings left unanswered".into()));
            }
            frame::encode_ping(b"", &mut self.out);
            self.unanswered += 1;
            self.next_ping = now + PING_EVERY;
        }
        None
    }
}
