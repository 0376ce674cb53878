//! One WebSocket connection after `GET /ws` switched it (SPEC §11): frames
//! in and out on the shard that accepted it, the first-message
//! authentication, the notifications of the players it follows (in id
//! order, without gaps or duplicates), resume, subscriptions, pings, and
//! the close codes.
//!
//! The loop waits for whichever comes first: bytes from the client, its
//! mailbox in the shard's hub (notifications, or a request to close), or
//! its next deadline (authentication, ping, a notification held back for
//! order). A glommio read is only a wait for readiness until the bytes are
//! taken, so leaving it for something else loses nothing. The connection is
//! tracked by the shard like any other, so a draining shard ends it (close
//! 1001) and a write that a client never reads ends at the shard's reaper.
//!
//! Client messages are JSON text:
//! - `{"type":"auth","token":"..."}` within [`AUTH_WITHIN`] when the
//!   upgrade carried no `Authorization` header; answered
//!   `{"type":"ready","game","role","player_id","last_id"}`.
//! - `{"type":"resume","after":ID}` (and `"player_id"` for a subscribed
//!   player): the stored notifications after `ID`, in order, then
//!   `{"type":"resumed",...}`; ids that are not stored (kinds other than
//!   `message` without `realtime.persist`) are reported as
//!   `{"type":"missed","player_id","from","to"}` so the client re-reads.
//! - `{"type":"subscribe","player_id":N}` (game servers, admins):
//!   answered `{"type":"subscribed","player_id","last_id"}`.
//!
//! Ids increase per player in commit order, but notifications of one player
//! made on different shards or nodes can arrive out of order: one that
//! comes ahead of a missing id is held for up to [`REORDER_WAIT`], then the
//! gap is filled from the stored notifications (or reported missed).

use super::delivery::Delivery;
use super::frame::{self, close, Decoded, Decoder, Message};
use super::hub::{Closing, Mail, Membership};
use super::upgrade::Upgrade;
use crate::buffer::ReadBuffer;
use crate::pipeline::{self, Credentials, Scope};
use crate::service::auth::{Caller, Role};
use crate::shard::Shard;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
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
/// How long a notification that came ahead of a missing id is held back.
pub const REORDER_WAIT: Duration = Duration::from_millis(200);
/// Stored notifications read per query while resuming or filling a gap.
const PAGE: i64 = 200;
/// Most notifications one resume (or gap) sends; older ones are reported
/// missed — the inbox (`GET .../notifications?after=ID`) pages them.
pub const MAX_REPLAY: i64 = 200;
/// Resumes and subscriptions one socket may ask for per minute (each reads
/// the database).
pub const MAX_JOBS_PER_MIN: u32 = 30;
/// Bytes asked of one read while part of a message is buffered.
const READ: usize = 1024;
/// Bytes an idle socket keeps for its next read: a client's messages are
/// rare and short, and ten thousand idle sockets should not hold 1 KiB each.
const IDLE_READ: usize = 128;

/// What ended a socket's wait.
enum Wake {
    /// The client sent bytes (or closed: 0, or failed).
    Read(std::io::Result<usize>),
    /// A deadline came.
    Due,
    /// The hub has something for it.
    Mail(Mail),
}

/// What a handled message leaves the connection to do.
enum Next {
    Go,
    Close(u16, String),
}

/// Work a message asks for that needs the database.
enum Job {
    /// The caller is known: join the hub, follow its player, say `ready`.
    Ready(Caller),
    /// Follow another player (game servers, admins; an admin may name
    /// another game than its socket's).
    Subscribe {
        player_id: i64,
        game: Option<String>,
    },
    /// Send what a player's stream missed after an id.
    Resume {
        player_id: i64,
        after: i64,
        game: Option<String>,
    },
}

/// One followed player's notifications as this socket sends them.
struct Stream {
    game: String,
    player_id: i64,
    /// The newest id sent (or known to the client).
    last: i64,
    /// Notifications that came ahead of `last + 1`.
    held: BTreeMap<i64, Arc<Delivery>>,
    /// When the oldest of them came.
    held_since: Option<Instant>,
}

/// One socket's state.
struct Socket {
    shard: Rc<Shard>,
    caller: Option<Caller>,
    /// Its place in the shard's hub once authenticated (a revoked session
    /// closes it from there; notifications come through it).
    membership: Option<Membership>,
    streams: Vec<Stream>,
    jobs: VecDeque<Job>,
    /// Jobs asked for in the current minute, and when it began.
    jobs_asked: (u32, Instant),
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
        streams: Vec::new(),
        jobs: VecDeque::new(),
        jobs_asked: (0, now),
        opened: now,
        next_ping: now + PING_EVERY,
        unanswered: 0,
        out: Vec::new(),
    };
    if let Some(caller) = up.caller {
        socket.jobs.push_back(Job::Ready(caller));
    }
    let mut decoder = Decoder::new(MAX_MESSAGE);
    let mut buf = ReadBuffer::holding(rest);
    let ended = loop {
        if let Some(next) = socket.take_frames(&mut decoder, &mut buf) {
            break next;
        }
        // Boxed: what these await (the database) is not held in every idle
        // socket's state, only while they run.
        while let Some(job) = socket.jobs.pop_front() {
            Box::pin(socket.run_job(job)).await;
        }
        if socket.gaps_due(Instant::now()) {
            Box::pin(socket.fill_gaps(Instant::now())).await;
        }
        if let Some(next) = socket.tick(Instant::now()) {
            break next;
        }
        guard.set_deadline(socket.next_deadline() + PING_EVERY);
        if !socket.out.is_empty() {
            match socket.flush(&mut stream).await {
                Ok(()) => {}
                // A write cut short: no close frame can follow it.
                Err(None) => break Next::Close(0, String::new()),
                Err(Some((code, reason))) => break Next::Close(code, reason.into()),
            }
        }
        let at = socket.next_deadline();
        let spare = buf.spare(if buf.is_empty() { IDLE_READ } else { READ });
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
                        Some(m) => Wake::Mail(m.next().await),
                        None => std::future::pending().await,
                    }
                },
            ),
        )
        .await;
        match woke {
            Wake::Due => {}
            Wake::Mail(Mail::Ready) => socket.take_mail(),
            Wake::Mail(Mail::Closing((code, reason))) => {
                if code == close::REVOKED {
                    // What was queued before the revocation goes first.
                    socket.take_mail();
                    socket.send(&json!({"type": "session_revoked"}));
                }
                break Next::Close(code, reason.to_string());
            }
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
        // A message's room is given back once it has been read: an idle
        // socket keeps IDLE_READ bytes.
        if buf.capacity() > IDLE_READ {
            buf.shrink_to(IDLE_READ);
        }
    };
    if let Next::Close(code, reason) = ended {
        if code != 0 {
            frame::encode_close(code, &reason, &mut socket.out);
            let _ = stream.write_all(&socket.out).await;
        }
    }
    let _ = stream.close().await;
    Box::pin(socket.leave()).await;
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
        let authenticated = self.caller.is_some() || !self.jobs.is_empty();
        match (msg["type"].as_str(), authenticated) {
            (Some("auth"), false) => match msg["token"].as_str() {
                Some(token) => self.authenticate(token),
                None => Next::Close(close::POLICY, "auth needs a \"token\"".into()),
            },
            (Some("auth"), true) => self.error("already authenticated"),
            (_, false) => Next::Close(close::POLICY, "authenticate first".into()),
            (Some("resume" | "subscribe"), true) if !self.may_ask() => self.error(&format!(
                "at most {MAX_JOBS_PER_MIN} resumes and subscriptions a minute"
            )),
            (Some("resume"), true) => {
                let Some(after) = msg["after"].as_i64().filter(|a| *a >= 0) else {
                    return self.error("resume needs \"after\": the last id received (0: all)");
                };
                let own = self.caller.as_ref().and_then(|c| c.player_id);
                let game = msg["game"].as_str().map(str::to_string);
                match msg["player_id"].as_i64().or(own) {
                    Some(player_id) => {
                        self.jobs.push_back(Job::Resume {
                            player_id,
                            after,
                            game,
                        });
                        Next::Go
                    }
                    None => self.error("resume needs \"player_id\" (a subscribed player)"),
                }
            }
            (Some("subscribe"), true) => match msg["player_id"].as_i64() {
                Some(player_id) => {
                    let game = msg["game"].as_str().map(str::to_string);
                    self.jobs.push_back(Job::Subscribe { player_id, game });
                    Next::Go
                }
                None => self.error("subscribe needs \"player_id\""),
            },
            (Some(other), true) => {
                let other = other.chars().take(32).collect::<String>();
                self.error(&format!("unknown message type {other:?}"))
            }
            (None, true) => self.error("a message is a JSON object with a \"type\""),
        }
    }

    /// Counts a resume or subscription against [`MAX_JOBS_PER_MIN`].
    fn may_ask(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.jobs_asked.1 + Duration::from_secs(60) {
            self.jobs_asked = (0, now);
        }
        self.jobs_asked.0 += 1;
        self.jobs_asked.0 <= MAX_JOBS_PER_MIN
    }

    fn authenticate(&mut self, token: &str) -> Next {
        let shard = self.shard.clone();
        let caller = pipeline::authenticate(&shard, Credentials::Token(token))
            .and_then(|c| pipeline::scope(&shard, &c, None, Scope::Game).map(|_| c));
        match caller {
            Ok(caller) => {
                self.jobs.push_back(Job::Ready(caller.into_owned()));
                Next::Go
            }
            Err(e) => Next::Close(
                close::POLICY,
                format!("authentication failed: {}", e.message),
            ),
        }
    }

    async fn run_job(&mut self, job: Job) {
        match job {
            Job::Ready(caller) => self.ready(caller).await,
            Job::Subscribe { player_id, game } => self.subscribe(player_id, game).await,
            Job::Resume {
                player_id,
                after,
                game,
            } => self.resume(player_id, after, game).await,
        }
    }

    /// The caller is known: join the hub, follow its own player, say so.
    async fn ready(&mut self, caller: Caller) {
        let services = self.shard.services.clone();
        let membership = services
            .sockets()
            .join(&caller.session_id, self.shard.buffers.reservation());
        let mut last_id = None;
        if let Some(player_id) = caller.player_id {
            membership.watch(&caller.game_id, player_id, true);
            // Read after joining: what commits later reaches the mailbox.
            match services.last_notice_id(&caller.game_id, player_id).await {
                Ok(last) => {
                    last_id = Some(last);
                    self.streams
                        .push(Stream::new(&caller.game_id, player_id, last));
                }
                Err(e) => self.error_now(&format!("notifications unavailable: {}", e.message)),
            }
            let game = caller.game_id.clone();
            glommio::spawn_local(async move { services.went_online(&game, player_id).await })
                .detach();
        }
        self.send(&json!({
            "type": "ready",
            "game": caller.game_id,
            "role": caller.role.as_str(),
            "player_id": caller.player_id,
            "last_id": last_id,
        }));
        self.membership = Some(membership);
        self.caller = Some(caller);
    }

    /// A game server or an admin follows a player of its game (an admin:
    /// of `game`, when named).
    async fn subscribe(&mut self, player_id: i64, game: Option<String>) {
        let Some(caller) = &self.caller else { return };
        let game = game.unwrap_or_else(|| caller.game_id.clone());
        if self.shard.services.game(&game).is_err() {
            return self.error_now("no such game");
        }
        if !matches!(caller.role, Role::GameServer | Role::Admin)
            || !caller.may_access_player(&game, player_id)
        {
            return self.error_now("subscribe is for game servers and admins of the game");
        }
        if self.stream_of(&game, player_id).is_some() {
            return self.error_now("already following this player");
        }
        let Some(membership) = &self.membership else {
            return;
        };
        if !membership.watch(&game, player_id, false) {
            return self.error_now(&format!(
                "a socket follows at most {} players",
                super::hub::MAX_WATCHED
            ));
        }
        match self.shard.services.last_notice_id(&game, player_id).await {
            Ok(last) => {
                self.streams.push(Stream::new(&game, player_id, last));
                self.send(&json!({"type": "subscribed", "player_id": player_id, "last_id": last}));
            }
            Err(e) => self.error_now(&e.message),
        }
    }

    /// Sends what a stream missed after `after`: the stored notifications
    /// in order, the ids that are not stored reported as missed.
    async fn resume(&mut self, player_id: i64, after: i64, game: Option<String>) {
        let Some(caller) = &self.caller else { return };
        let game = game.unwrap_or_else(|| caller.game_id.clone());
        let Some(i) = self.stream_of(&game, player_id) else {
            return self.error_now("resume a player this socket follows (subscribe first)");
        };
        let newest = self.streams[i].last;
        if after > newest {
            return self.error_now(&format!("after {after} is past the newest id {newest}"));
        }
        self.streams[i].last = after;
        let (replayed, missed) = self.catch_up(i, newest).await;
        let last = self.streams[i].last;
        self.send(&json!({
            "type": "resumed",
            "player_id": player_id,
            "after": after,
            "last_id": last,
            "replayed": replayed,
            "missed": missed,
        }));
        self.release(i);
    }

    /// Sends stream `i`'s stored notifications after its `last` up to
    /// `upto` (the newest [`MAX_REPLAY`] of them), reporting the ids
    /// between them that are not stored; the
    /// stream then stands at `upto` (or further, when live ones it held
    /// follow). How many were sent and how many missed.
    async fn catch_up(&mut self, i: usize, upto: i64) -> (i64, i64) {
        let (mut replayed, mut missed) = (0, 0);
        // Bounded: what one socket writes at once stays small.
        missed += self.skip_to(i, upto - MAX_REPLAY);
        let (game, player_id) = (self.streams[i].game.clone(), self.streams[i].player_id);
        while self.streams[i].last < upto {
            let after = self.streams[i].last;
            let services = self.shard.services.clone();
            let page = match services.stored_notices(&game, player_id, after, PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    self.error_now(&format!("stored notifications unavailable: {}", e.message));
                    break;
                }
            };
            let full = page.len() as i64 == PAGE;
            for n in page.iter().filter(|n| n.id <= upto) {
                missed += self.skip_to(i, n.id - 1);
                let d = Delivery::of(&game, n);
                frame::encode_text(&d.text, &mut self.out);
                self.streams[i].last = n.id;
                replayed += 1;
            }
            if !full || page.last().is_none_or(|n| n.id >= upto) {
                break;
            }
        }
        missed += self.skip_to(i, upto);
        (replayed, missed)
    }

    /// Moves stream `i` to `to` over ids that are neither stored nor held,
    /// telling the client which; how many.
    fn skip_to(&mut self, i: usize, to: i64) -> i64 {
        let s = &mut self.streams[i];
        if to <= s.last {
            return 0;
        }
        let (from, player_id) = (s.last + 1, s.player_id);
        s.last = to;
        s.held.retain(|id, _| *id > to);
        self.send(&json!({"type": "missed", "player_id": player_id, "from": from, "to": to}));
        to - from + 1
    }

    /// Takes every notification waiting in the mailbox into its stream.
    fn take_mail(&mut self) {
        let Some(membership) = &self.membership else {
            return;
        };
        let mut arrived = Vec::new();
        while let Some(d) = membership.mailbox().take() {
            arrived.push(d);
        }
        for d in arrived {
            let Some(i) = self.stream_of(&d.game, d.player_id) else {
                continue;
            };
            let s = &mut self.streams[i];
            if d.id > s.last {
                s.held.insert(d.id, d);
                self.release(i);
            }
        }
    }

    /// Sends stream `i`'s held notifications that follow its last one.
    fn release(&mut self, i: usize) {
        let s = &mut self.streams[i];
        while let Some(entry) = s.held.first_entry() {
            if *entry.key() > s.last + 1 {
                break;
            }
            let (id, d) = entry.remove_entry();
            if id == s.last + 1 {
                frame::encode_text(&d.text, &mut self.out);
                s.last = id;
            }
        }
        s.held_since = match s.held.is_empty() {
            true => None,
            false => s.held_since.or(Some(Instant::now())),
        };
    }

    /// Whether a stream holds notifications past [`REORDER_WAIT`].
    fn gaps_due(&self, now: Instant) -> bool {
        let limit = self.shard.config.realtime.max_queued;
        self.streams.iter().any(|s| s.gap_due(now, limit))
    }

    /// Fills the gaps held back past [`REORDER_WAIT`] (or past
    /// `realtime.max_queued` held) from the stored notifications.
    async fn fill_gaps(&mut self, now: Instant) {
        let limit = self.shard.config.realtime.max_queued;
        for i in 0..self.streams.len() {
            let s = &self.streams[i];
            if !s.gap_due(now, limit) {
                continue;
            }
            let Some(first) = s.held.keys().next().copied() else {
                continue;
            };
            self.catch_up(i, first - 1).await;
            self.release(i);
        }
    }

    fn stream_of(&self, game: &str, player_id: i64) -> Option<usize> {
        self.streams
            .iter()
            .position(|s| s.player_id == player_id && s.game == game)
    }

    /// Writes `out`, unless the hub asks the socket to close first: then
    /// the close, or `None` when the write was cut short mid-frame.
    async fn flush(&mut self, stream: &mut TcpStream) -> Result<(), Option<Closing>> {
        let out = std::mem::take(&mut self.out);
        let mailbox = self.membership.as_ref().map(Membership::mailbox);
        let written = futures_lite::future::or(
            async { stream.write_all(&out).await.map_err(|_| None) },
            async {
                match mailbox {
                    Some(m) => {
                        let why = m.closed().await;
                        // Revoked: let the write finish and close politely.
                        if why.0 == close::REVOKED {
                            std::future::pending::<()>().await;
                        }
                        Err(None)
                    }
                    None => std::future::pending().await,
                }
            },
        )
        .await;
        // An idle socket keeps no write buffer: a few notifications a
        // minute cost one allocation each, ten thousand idle sockets none.
        self.out = if out.capacity() > READ {
            Vec::new()
        } else {
            let mut out = out;
            out.clear();
            out
        };
        written
    }

    /// Leaves the hub (and says so for presence).
    async fn leave(&mut self) {
        let Some(membership) = self.membership.take() else {
            return;
        };
        drop(membership);
        if let Some(c) = &self.caller {
            if let Some(player_id) = c.player_id {
                self.shard
                    .services
                    .went_offline(&c.game_id, player_id)
                    .await;
            }
        }
    }

    fn send(&mut self, message: &Value) {
        frame::encode_text(&message.to_string(), &mut self.out);
    }

    /// A message the server could not act on: said, and the socket stays.
    fn error(&mut self, message: &str) -> Next {
        self.error_now(message);
        Next::Go
    }

    fn error_now(&mut self, message: &str) {
        self.send(&json!({"type": "error", "message": message}));
    }

    /// The next time something is due: the end of the authentication
    /// window, the next ping, or a held notification's wait.
    fn next_deadline(&self) -> Instant {
        let mut at = match self.caller {
            None => self.next_ping.min(self.opened + AUTH_WITHIN),
            Some(_) => self.next_ping,
        };
        for s in &self.streams {
            if let Some(t) = s.held_since {
                at = at.min(t + REORDER_WAIT);
            }
        }
        at
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

impl Stream {
    /// Whether its held notifications waited past [`REORDER_WAIT`], or
    /// more than `limit` are held: the gap before them is filled now.
    fn gap_due(&self, now: Instant, limit: usize) -> bool {
        self.held_since.is_some_and(|t| now >= t + REORDER_WAIT) || self.held.len() > limit
    }

    fn new(game: &str, player_id: i64, last: i64) -> Stream {
        Stream {
            game: game.to_string(),
            player_id,
            last,
            held: BTreeMap::new(),
            held_since: None,
        }
    }
}
