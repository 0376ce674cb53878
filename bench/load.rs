//! The load loop: connections on glommio executors (one per load thread),
//! each sending requests in closed loop (a batch of `pipeline` requests, then
//! their answers) or open loop (requests due by a fixed schedule; latency is
//! measured from the intended send time, so a stalled server is not hidden
//! by a client that waited — no coordinated omission).

use crate::report::Tally;
use datamiddleware::buffer::ReadBuffer;
use datamiddleware::protocol::{decode, encode, Decoded, FrameRef};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a connection sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// HTTP `GET /health`.
    Health,
    /// HTTP cached `GET /api/v1/players/{id}` as a game server.
    Player,
    /// HTTP `POST /api/v1/auth/login` (argon2id per request).
    Login,
    /// HTTP logins with a wrong password: a guessing flood (answers 401,
    /// 429 or 503 are what it expects, and count as errors).
    BadLogin,
    /// HTTP `POST /api/v1/players/{id}/wallet` (+1 gold) as a game server:
    /// one database write transaction per request.
    Wallet,
    /// HTTP 7 player reads, 1 item use, 1 order create, 1 order pay per 10.
    Mixed,
    /// TCP Ping → Pong.
    Ping,
    /// TCP PlayerData get as a game server.
    TcpPlayer,
    /// TCP connections that connect and stay idle (for memory per connection).
    IdleTcp,
    /// WebSocket sockets of seeded players (`realtime.rs`); here: the HTTP
    /// connections that credit 1 gold to random players with a socket and
    /// hand each 200 answer to the matcher.
    Ws,
    /// Authenticated WebSocket sockets held idle (`realtime.rs`).
    IdleWs,
    /// HTTP `POST /api/v1/leaderboards/{board}/scores` as a game server:
    /// a random score (0 to 10^9) for a player of the board.
    LbWrite,
    /// HTTP leaderboard reads as a game server, per 20 requests: 9 of one
    /// player's rank (`/players/{id}`), 9 around a player
    /// (`/around/{id}?limit=11`), 2 of the top (`?limit=20`): 45/45/10.
    LbRead,
}

/// One `lb-read` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbRead {
    /// `GET /api/v1/leaderboards/{board}/players/{id}`.
    Rank,
    /// `GET /api/v1/leaderboards/{board}/around/{id}?limit=11`.
    Around,
    /// `GET /api/v1/leaderboards/{board}?limit=20`.
    Top,
}

impl LbRead {
    /// The `counter`th request of a connection: 45 % ranks, 45 % around,
    /// 10 % top.
    pub fn nth(counter: u64) -> LbRead {
        match counter % 20 {
            0..=8 => LbRead::Rank,
            9..=17 => LbRead::Around,
            _ => LbRead::Top,
        }
    }
}

impl Scenario {
    /// Whether it speaks the binary protocol.
    pub fn is_tcp(self) -> bool {
        matches!(
            self,
            Scenario::Ping | Scenario::TcpPlayer | Scenario::IdleTcp
        )
    }
}

/// Everything a connection needs, cloned into each load thread.
#[derive(Clone)]
pub struct Plan {
    /// What to send.
    pub scenario: Scenario,
    /// Server address for the scenario's protocol.
    pub addr: SocketAddr,
    /// Requests per batch in closed loop.
    pub pipeline: usize,
    /// Requests per second per connection in open loop.
    pub rate_per_conn: Option<f64>,
    /// Recording starts at this instant.
    pub measure_from: Instant,
    /// Sending stops at this instant.
    pub until: Instant,
    /// Set by SIGINT/SIGTERM: sending stops early and the report covers
    /// the time until then.
    pub stop: Arc<AtomicBool>,
    /// Open a connection the server ended again and resend what it did
    /// not answer (`--reconnect`).
    pub reconnect: bool,
    /// This load thread's running counts for the live line, when shown.
    pub live: Option<Arc<LiveCounts>>,
    /// `--zipf S`: the cumulative weights of the players (rank r weighs
    /// 1 / r^S), so a few players get most requests; `None`: every player
    /// in turn.
    pub zipf: Option<Arc<Vec<f64>>>,
    /// Game id.
    pub game: String,
    /// Game-server bearer token (HTTP) or server key (TCP handshake).
    pub token: String,
    /// Server key for the TCP handshake.
    pub server_key: String,
    /// Seeded players: (id, username).
    pub players: Arc<Vec<(i64, String)>>,
    /// Password of the seeded players.
    pub password: String,
    /// `ws`, `idle-ws`: the sockets' shared state.
    pub realtime: Option<Arc<crate::realtime::Shared>>,
    /// `lb-write`, `lb-read`: the leaderboard.
    pub board: String,
}

/// Cumulative Zipf weights of `n` ranks with exponent `s`, normalised to 1.
pub fn zipf_cdf(n: usize, s: f64) -> Vec<f64> {
    let weights: Vec<f64> = (1..=n.max(1)).map(|r| 1.0 / (r as f64).powf(s)).collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect()
}

/// One load thread's answers so far, read once a second by the live line
/// (its own cache line: threads do not share one).
#[repr(align(128))]
#[derive(Default)]
pub struct LiveCounts {
    /// Successful answers.
    pub ok: std::sync::atomic::AtomicU64,
    /// Error answers and lost connections.
    pub failed: std::sync::atomic::AtomicU64,
}

impl LiveCounts {
    pub fn count(&self, ok: bool) {
        let c = if ok { &self.ok } else { &self.failed };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// What dm-bench needs of a response head.
#[derive(Debug, PartialEq, Eq)]
struct ResponseHead {
    /// Bytes of the head, blank line included.
    len: usize,
    status: u16,
    /// `Content-Length` (0 when absent).
    body_len: usize,
    /// `Connection: close` (nginx says it after `keepalive_requests`).
    close: bool,
}

/// Parses a response head with httparse: `Ok(None)` until it is complete.
fn parse_head(bytes: &[u8]) -> Result<Option<ResponseHead>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("bad_response"),
    };
    let mut head = ResponseHead {
        len,
        status: response.code.unwrap_or(0),
        body_len: 0,
        close: false,
    };
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            head.body_len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or("bad_response")?;
        } else if h.name.eq_ignore_ascii_case("connection") {
            head.close = h.value.trim_ascii().eq_ignore_ascii_case(b"close");
        }
    }
    Ok(Some(head))
}

/// One load thread's open connections, so that a server that stops answering
/// cannot keep the run from ending: [`Hangs::fire_after`] shuts them all once
/// the run is over by `--answer-timeout`, and the waits end as "timeout".
/// (One watchdog per thread instead of a timer armed for every read.) The
/// WebSocket scenarios keep their sockets in a `Hangs` of their own, shut
/// by `realtime::close_when_done`.
#[derive(Default)]
pub struct Hangs {
    fds: RefCell<HashSet<RawFd>>,
    fired: Cell<bool>,
}

impl Hangs {
    /// Shuts every registered connection `answer_timeout` after the run
    /// ends: its planned end, or the interrupt that ended it early.
    pub async fn fire_after(&self, plan: &Plan, answer_timeout: Duration) {
        let mut deadline = plan.until + answer_timeout;
        loop {
            let now = Instant::now();
            if plan.stop.load(Ordering::Relaxed) {
                deadline = deadline.min(now + answer_timeout);
            }
            if now >= deadline {
                break;
            }
            glommio::timer::sleep((deadline - now).min(Duration::from_millis(100))).await;
        }
        self.shut_all();
    }

    /// Shuts every registered connection now: their reads end.
    pub fn shut_all(&self) {
        self.fired.set(true);
        for &fd in self.fds.borrow().iter() {
            // SAFETY: the fd belongs to a connection that is still open: it
            // leaves this set before its stream is dropped.
            unsafe {
                libc::shutdown(fd, libc::SHUT_RDWR);
            }
        }
    }
}

impl Hangs {
    /// Keeps `fd` (an open connection) in the set until the guard drops.
    pub fn watch(&self, fd: RawFd) -> Watched<'_> {
        self.fds.borrow_mut().insert(fd);
        Watched { hangs: self, fd }
    }

    /// Whether the connections were shut.
    pub fn fired(&self) -> bool {
        self.fired.get()
    }
}

/// Keeps a connection's fd in [`Hangs`] while it lives.
pub struct Watched<'a> {
    hangs: &'a Hangs,
    fd: RawFd,
}

impl Drop for Watched<'_> {
    fn drop(&mut self) {
        self.hangs.fds.borrow_mut().remove(&self.fd);
    }
}

/// An open connection to the server, watched by [`Hangs`]. (Field order:
/// the fd leaves the watch list before the stream closes it.)
struct Link<'a> {
    _watched: Watched<'a>,
    stream: TcpStream,
}

/// Whether sending should stop: the run's end passed or it was interrupted.
fn over(plan: &Plan) -> bool {
    Instant::now() >= plan.until || plan.stop.load(Ordering::Relaxed)
}

/// Runs one connection until `plan.until` (or an interrupt), recording into
/// `tally`. With `plan.reconnect`, a connection the server ends (a drain's
/// Error 0xE006, a close, `Connection: close`) is opened again and its
/// unanswered requests are sent again; otherwise the connection stops there.
pub async fn connection(plan: Plan, index: usize, tally: &mut Tally, hangs: &Hangs) {
    let idle = plan.scenario == Scenario::IdleTcp;
    let mut conn = Conn {
        plan: &plan,
        hangs,
        index,
        counter: 0,
        pending_order: None,
        buf: ReadBuffer::with_capacity(if idle { 1024 } else { 64 * 1024 }),
        out: Vec::with_capacity(if idle { 64 } else { 16 * 1024 }),
        starts: Vec::new(),
        ending: None,
        sent_at: Instant::now(),
    };
    let mut link = match conn.open().await {
        Ok(link) => link,
        Err(kind) => {
            tally.fail(kind);
            return;
        }
    };
    if idle {
        // One Ping proves the connection is served, then it stays silent.
        conn.out.clear();
        conn.frame(0x2002, b"");
        let t0 = Instant::now();
        if link.stream.write_all(&conn.out).await.is_err() {
            tally.fail("write");
            return;
        }
        match conn.read_answer(&mut link.stream).await {
            Ok(error) => tally.record(t0.elapsed(), error),
            Err(kind) => tally.fail(kind),
        }
        glommio::timer::sleep(plan.until.saturating_duration_since(Instant::now())).await;
        return;
    }
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut intended: Vec<Instant> = Vec::new();
    while !over(&plan) {
        intended.clear();
        // `mixed` sends one request at a time: an order is paid for with the
        // id its creation answered.
        let mixed = plan.scenario == Scenario::Mixed;
        match plan.rate_per_conn {
            None => intended.extend(std::iter::repeat_n(
                Instant::now(),
                if mixed { 1 } else { plan.pipeline },
            )),
            Some(rate) => {
                let next = start + Duration::from_secs_f64(sent as f64 / rate);
                let now = Instant::now();
                if next > now {
                    glommio::timer::sleep(next - now).await;
                }
                let now = Instant::now();
                // Everything due by now goes out together (at most 64).
                while intended.len() < 64 {
                    let t = start
                        + Duration::from_secs_f64((sent + intended.len() as u64) as f64 / rate);
                    if t > now && !intended.is_empty() {
                        break;
                    }
                    intended.push(t);
                }
            }
        }
        sent += intended.len() as u64;
        // Open loop, `mixed`: the requests that fell due while an answer was
        // awaited go out one after another, each timed from its own due
        // time, so a server that falls behind is still offered the rate.
        let batch = if mixed { 1 } else { intended.len().max(1) };
        for due in intended.chunks(batch) {
            conn.out.clear();
            conn.starts.clear();
            for _ in due {
                conn.starts.push(conn.out.len());
                conn.push_request();
            }
            let mut answered = 0;
            while answered < due.len() {
                let Some(ended) = conn
                    .send_and_read(&mut link.stream, due, &mut answered, tally)
                    .await
                else {
                    break;
                };
                if !plan.reconnect || hangs.fired.get() {
                    tally.fail(ended);
                    return;
                }
                tally.reconnected(ended);
                drop(link);
                link = match conn.reopen().await {
                    Some(link) => link,
                    // Interrupted meanwhile: what was not answered was never
                    // sent to a server that kept it, and the run is over.
                    None if plan.stop.load(Ordering::Relaxed) => return,
                    None => {
                        tally.fail("connect");
                        return;
                    }
                };
            }
        }
    }
}

struct Conn<'a> {
    plan: &'a Plan,
    hangs: &'a Hangs,
    index: usize,
    counter: u64,
    pending_order: Option<String>,
    buf: ReadBuffer,
    out: Vec<u8>,
    /// Where each request of the batch in `out` starts.
    starts: Vec<usize>,
    /// Set when the last answer said the connection ends after it: an
    /// HTTP `Connection: close` or a draining server's Error 0xE006.
    ending: Option<&'static str>,
    /// When the batch being answered was written (`ws`: a credit's send).
    sent_at: Instant,
}

impl<'a> Conn<'a> {
    /// Connects (and shakes hands over TCP).
    async fn open(&mut self) -> Result<Link<'a>, &'static str> {
        let stream = TcpStream::connect(self.plan.addr)
            .await
            .map_err(|_| "connect")?;
        let _ = stream.set_nodelay(true);
        let mut link = Link {
            _watched: self.hangs.watch(stream.as_raw_fd()),
            stream,
        };
        self.buf.consume(self.buf.len());
        self.ending = None;
        if self.plan.scenario.is_tcp() && !self.handshake(&mut link.stream).await {
            return Err("handshake");
        }
        Ok(link)
    }

    /// Sends the batch's requests from the first unanswered one and reads
    /// their answers, recording each. `None` once all are answered; else
    /// what ended the connection (a failed write or read, or — with
    /// `--reconnect` — an answer saying the connection ends).
    async fn send_and_read(
        &mut self,
        stream: &mut TcpStream,
        intended: &[Instant],
        answered: &mut usize,
        tally: &mut Tally,
    ) -> Option<&'static str> {
        let plan = self.plan;
        self.sent_at = Instant::now();
        if stream
            .write_all(&self.out[self.starts[*answered]..])
            .await
            .is_err()
        {
            return Some("write");
        }
        while *answered < self.starts.len() {
            let error = match self.read_answer(stream).await {
                Err(kind) => return Some(kind),
                // The drain's notice is no answer to a request.
                Ok(_) if self.ending == Some("tcp_0xe006") && plan.reconnect => {
                    return Some("tcp_0xe006")
                }
                Ok(error) => error,
            };
            let t0 = intended[(*answered).min(intended.len() - 1)];
            if t0 >= plan.measure_from {
                if let Some(live) = &plan.live {
                    live.count(error.is_none());
                }
                tally.record(Instant::now() - t0, error);
            }
            *answered += 1;
            if let Some(kind) = self.ending.filter(|_| plan.reconnect) {
                return Some(kind);
            }
        }
        None
    }

    /// Opens the connection again, retrying every 50 ms while the run lasts
    /// (a node restarting behind a proxy refuses for a moment).
    async fn reopen(&mut self) -> Option<Link<'a>> {
        let until = self.plan.until + Duration::from_secs(1);
        loop {
            if let Ok(link) = self.open().await {
                return Some(link);
            }
            if Instant::now() >= until
                || self.hangs.fired.get()
                || self.plan.stop.load(Ordering::Relaxed)
            {
                return None;
            }
            glommio::timer::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The player of the current request: every player in turn, or one
    /// drawn by its Zipf weight; `ws`: a random one of those with a socket.
    fn player(&self) -> &(i64, String) {
        let n = self.plan.players.len().max(1);
        let i = match (&self.plan.zipf, &self.plan.realtime) {
            (_, Some(shared)) => (self.draw() >> 11) as usize % shared.sockets.clamp(1, n),
            (None, None) => (self.index + self.counter as usize * 7) % n,
            (Some(cdf), None) => {
                let u = (self.draw() >> 11) as f64 / (1u64 << 53) as f64;
                cdf.partition_point(|&c| c < u).min(n - 1)
            }
        };
        &self.plan.players[i]
    }

    /// splitmix64 of (connection, request): reproducible, no state.
    fn draw(&self) -> u64 {
        let mut z = (self.index as u64) << 40 ^ self.counter;
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn http(&mut self, method: &str, path: &str, body: &str) {
        use std::io::Write;
        let _ = write!(
            self.out,
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {}\r\nX-Game-Id: {}\r\nContent-Length: {}\r\n\r\n{body}",
            self.plan.token,
            self.plan.game,
            body.len()
        );
    }

    fn frame(&mut self, msg_type: u16, body: &[u8]) {
        encode(
            &mut self.out,
            &FrameRef {
                version: 1,
                msg_type,
                flags: 0x04,
                sequence: self.counter as u32,
                timestamp: 0,
                game_id: self.plan.game.as_bytes(),
                user_id: b"",
                body,
            },
        );
    }

    fn push_request(&mut self) {
        self.counter += 1;
        let id = self.player().0;
        match self.plan.scenario {
            Scenario::Health => self
                .out
                .extend_from_slice(b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n"),
            Scenario::Player => self.http("GET", &format!("/api/v1/players/{id}"), ""),
            Scenario::Login => {
                let username = &self.player().1;
                let body = format!(
                    r#"{{"username":"{username}","password":"{}"}}"#,
                    self.plan.password
                );
                self.http("POST", "/api/v1/auth/login", &body);
            }
            Scenario::BadLogin => {
                let username = &self.player().1;
                let body = format!(r#"{{"username":"{username}","password":"not-the-password"}}"#);
                self.http("POST", "/api/v1/auth/login", &body);
            }
            Scenario::Wallet | Scenario::Ws => self.http(
                "POST",
                &format!("/api/v1/players/{id}/wallet"),
                r#"{"currency":"gold","delta":1,"reason":"bench"}"#,
            ),
            Scenario::Mixed => match (self.counter % 10, self.pending_order.take()) {
                (_, Some(order)) => self.http("POST", &format!("/api/v1/orders/{order}/pay"), ""),
                (7, None) => self.http(
                    "POST",
                    &format!("/api/v1/players/{id}/items/potion/use"),
                    r#"{"quantity":1}"#,
                ),
                (8, None) => self.http(
                    "POST",
                    "/api/v1/orders",
                    &format!(
                        r#"{{"player_id":{id},"item_id":"potion","quantity":1,"currency":"gold"}}"#
                    ),
                ),
                _ => self.http("GET", &format!("/api/v1/players/{id}"), ""),
            },
            Scenario::Ping | Scenario::IdleTcp => self.frame(0x2002, b""),
            // Its sockets are not connections of this loop.
            Scenario::IdleWs => {}
            Scenario::TcpPlayer => {
                let body = format!(r#"{{"action":"get","player_id":{id}}}"#);
                self.frame(0x1003, body.as_bytes());
            }
            Scenario::LbWrite => {
                // Not the draw that chose the player: a score of its own.
                let score = crate::lb_load::mix(self.draw() ^ 0x5c03e) % 1_000_000_000;
                let path = format!("/api/v1/leaderboards/{}/scores", self.plan.board);
                let body = format!(r#"{{"player_id":{id},"score":{score}}}"#);
                self.http("POST", &path, &body);
            }
            Scenario::LbRead => {
                let board = &self.plan.board;
                let path = match LbRead::nth(self.counter) {
                    LbRead::Rank => format!("/api/v1/leaderboards/{board}/players/{id}"),
                    LbRead::Around => {
                        format!("/api/v1/leaderboards/{board}/around/{id}?limit=11")
                    }
                    LbRead::Top => format!("/api/v1/leaderboards/{board}?limit=20"),
                };
                self.http("GET", &path, "");
            }
        }
    }

    /// Sends the Handshake and reads its answer; a batch waiting in `out`
    /// (to be sent again after a reconnect) is kept.
    async fn handshake(&mut self, stream: &mut TcpStream) -> bool {
        let batch = std::mem::take(&mut self.out);
        let body = format!(r#"{{"server_key":"{}"}}"#, self.plan.server_key);
        self.frame(0x0002, body.as_bytes());
        let shaken = stream.write_all(&self.out).await.is_ok()
            && matches!(self.read_answer(stream).await, Ok(None));
        self.out = batch;
        shaken
    }

    async fn fill(&mut self, stream: &mut TcpStream) -> Result<(), &'static str> {
        match stream.read(self.buf.spare(16 * 1024)).await {
            Ok(0) if self.hangs.fired.get() => Err("timeout"),
            Ok(0) => Err("closed"),
            Ok(n) => {
                self.buf.advance(n);
                Ok(())
            }
            Err(_) if self.hangs.fired.get() => Err("timeout"),
            Err(_) => Err("read"),
        }
    }

    /// Reads one answer; `Ok(None)` success, `Ok(Some(kind))` an error answer.
    async fn read_answer(
        &mut self,
        stream: &mut TcpStream,
    ) -> Result<Option<String>, &'static str> {
        loop {
            if self.plan.scenario.is_tcp() {
                match decode(self.buf.filled(), 1 << 24) {
                    Decoded::Frame { frame, len } => {
                        let error = if frame.msg_type == 0x2001 {
                            let body = serde_json::from_slice::<serde_json::Value>(frame.body)
                                .unwrap_or_default();
                            let code = body["code"].as_u64().unwrap_or(0);
                            // A draining server's last frame (SPEC §2): the
                            // connection ends after it.
                            if code == 0xE006
                                && body["message"]
                                    .as_str()
                                    .is_some_and(|m| m.contains("shutting down"))
                            {
                                self.ending = Some("tcp_0xe006");
                            }
                            Some(format!("tcp_{code:#x}"))
                        } else {
                            None
                        };
                        self.buf.consume(len);
                        return Ok(error);
                    }
                    Decoded::Incomplete => {}
                    _ => return Err("bad_frame"),
                }
            } else if let Some(head) = parse_head(self.buf.filled())? {
                let end = head.len + head.body_len;
                if self.buf.len() >= end {
                    if head.close {
                        self.ending = Some("connection_close");
                    }
                    if let (Some(shared), 200) = (&self.plan.realtime, head.status) {
                        // A credit: its player and the balance it left,
                        // for the notification to be matched with.
                        let at = Instant::now();
                        let body = &self.buf.filled()[head.len..end];
                        let v =
                            serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default();
                        if let (Some(p), Some(b)) = (
                            v["data"]["player_id"].as_i64(),
                            v["data"]["balance"].as_i64(),
                        ) {
                            shared.answered(p, b, self.sent_at, at);
                        }
                    }
                    if self.plan.scenario == Scenario::Mixed && head.status == 201 {
                        let body = &self.buf.filled()[head.len..end];
                        self.pending_order = serde_json::from_slice::<serde_json::Value>(body)
                            .ok()
                            .and_then(|v| {
                                v["data"]["order"]["order_id"].as_str().map(str::to_string)
                            });
                    }
                    self.buf.consume(end);
                    return Ok((head.status >= 300).then(|| format!("http_{}", head.status)));
                }
            }
            self.fill(stream).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_head, zipf_cdf, LbRead, ResponseHead};

    #[test]
    fn lb_read_mixes_45_45_10() {
        let count = |kind| (1..=1000).filter(|&c| LbRead::nth(c) == kind).count();
        assert_eq!(
            (
                count(LbRead::Rank),
                count(LbRead::Around),
                count(LbRead::Top)
            ),
            (450, 450, 100)
        );
    }

    #[test]
    fn zipf_weights_favour_the_first_ranks_and_add_up_to_1() {
        let cdf = zipf_cdf(100, 1.0);
        assert_eq!(cdf.len(), 100);
        assert!((cdf[99] - 1.0).abs() < 1e-9);
        // Rank 1 of 100 with s = 1 has 1 / H(100) ≈ 19 % of the requests.
        assert!((cdf[0] - 0.1928).abs() < 0.001, "{}", cdf[0]);
        assert!(cdf.windows(2).all(|w| w[0] < w[1]));
        // s = 0 is uniform.
        assert!((zipf_cdf(4, 0.0)[1] - 0.5).abs() < 1e-9);
    }

    fn head(raw: &[u8]) -> ResponseHead {
        parse_head(raw).expect("parses").expect("complete")
    }

    #[test]
    fn response_heads_are_read_in_any_case() {
        let h = head(b"HTTP/1.1 201 Created\r\nServer: x\r\nContent-Length: 123\r\nX: y\r\n\r\n");
        assert_eq!((h.status, h.body_len, h.close), (201, 123, false));
        assert_eq!(
            head(b"HTTP/1.1 200 OK\r\ncontent-length:7\r\n\r\n").body_len,
            7
        );
        assert_eq!(head(b"HTTP/1.1 204 No Content\r\n\r\n").body_len, 0);
        assert!(head(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").close);
        assert!(head(b"HTTP/1.1 200 OK\r\nconnection:Close\r\n\r\n").close);
        assert!(!head(b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n").close);
        assert!(!head(b"HTTP/1.1 200 OK\r\nX-Connection: close\r\n\r\n").close);
        assert_eq!(head(b"HTTP/1.1 200 OK\r\n\r\nbody").len, 19);
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nServer"), Ok(None));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n").is_err());
        assert!(parse_head(b"NOT HTTP\r\n\r\n").is_err());
    }
}
