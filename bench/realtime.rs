//! `--scenario ws` and `--scenario idle-ws`: WebSocket sockets on `GET /ws`
//! (SPEC §11), one per seeded player, authenticated with the player's
//! token on the upgrade (`Authorization: Bearer`).
//!
//! `ws`: while the sockets are open, `--ws-writers` HTTP connections
//! credit 1 gold to random players with sockets at `--rate` per second in
//! total (open loop, `load.rs`'s `Scenario::Ws`), and each credit's 200
//! answer is matched with the `wallet` notification its player's socket
//! receives, by (player, balance after the credit): the delivery latency is
//! the time from the answer being read to the notification arriving (0
//! when it came first). A credit whose notification has not come
//! [`LOSS_WINDOW`] after its answer is lost; a second notification of the
//! same credit is a duplicate.
//!
//! `idle-ws`: the sockets are opened, say `ready`, and are held for the run
//! (answering the server's pings) so that the server's memory per socket
//! can be read; with `--server-pid`, dm-bench reads the server's VmRSS
//! before opening them and once they are all open.

use crate::load::{Hangs, Plan};
use crate::report::Tally;
use crate::ws;
use datamiddleware::buffer::ReadBuffer;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long after its credit's answer a notification may come before it
/// counts as lost.
pub const LOSS_WINDOW: Duration = Duration::from_secs(5);

/// Largest server frame a bench socket takes.
const MAX_FRAME: usize = 1 << 20;

/// What every socket, the credit writers and the main thread share.
pub struct Shared {
    /// Where the sockets connect (`--ws-addr`, default `--http`).
    pub addr: SocketAddr,
    /// The access token of seeded player `i`, for socket `i`.
    pub tokens: Vec<String>,
    /// Sockets to open (socket `i` is player `i`'s).
    pub sockets: usize,
    /// `idle-ws`: no credits; the sockets are held until the run ends.
    pub idle: bool,
    /// Sockets that said `ready` or failed.
    pub settled: AtomicUsize,
    /// Sockets that said `ready`.
    pub ready: AtomicUsize,
    /// Credit writers still running.
    pub writers: AtomicUsize,
    /// Set by the main thread once it has read what it reads while the
    /// sockets are open (idle-ws: the server's RSS); the sockets close at
    /// the end of the run only after it.
    pub held: AtomicBool,
    /// `missed` messages the sockets got (ids the server could not replay).
    pub missed: AtomicU64,
    /// Notifications whose id was not the next one of their socket's player.
    pub gaps: AtomicU64,
    /// Credits and notifications, matched.
    pub matcher: Mutex<Matcher>,
}

impl Shared {
    /// For `sockets` sockets at `addr`.
    pub fn new(
        addr: SocketAddr,
        tokens: Vec<String>,
        sockets: usize,
        idle: bool,
        writers: usize,
        measure_from: Instant,
    ) -> Shared {
        Shared {
            addr,
            tokens,
            sockets,
            idle,
            settled: AtomicUsize::new(0),
            ready: AtomicUsize::new(0),
            writers: AtomicUsize::new(writers),
            held: AtomicBool::new(false),
            missed: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            matcher: Mutex::new(Matcher::new(measure_from)),
        }
    }

    fn matcher(&self) -> std::sync::MutexGuard<'_, Matcher> {
        self.matcher.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A credit to `player` sent at `sent` was answered 200 with
    /// `balance`, read at `at`.
    pub fn answered(&self, player: i64, balance: i64, sent: Instant, at: Instant) {
        self.matcher().answered((player, balance), sent, at);
    }

    /// Waits (polling) until every socket said `ready` or failed, or until
    /// `deadline`: the credits start once there is a socket to reach.
    pub async fn sockets_settled(&self, deadline: Instant) {
        while self.settled.load(Ordering::Relaxed) < self.sockets && Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A credit writer is done (its last answer read).
    pub fn writer_done(&self) {
        if self.writers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.matcher().writers_done_at = Some(Instant::now());
        }
    }

    /// Whether the sockets may close now.
    fn may_close(&self, plan: &Plan, safety: Duration) -> bool {
        let now = Instant::now();
        let ended = now >= plan.until || plan.stop.load(Ordering::Relaxed);
        if !ended {
            return false;
        }
        if now >= plan.until + safety {
            return true;
        }
        if self.idle {
            return self.held.load(Ordering::Acquire);
        }
        if self.writers.load(Ordering::Acquire) > 0 {
            return false;
        }
        let m = self.matcher();
        m.waiting == 0 || m.writers_done_at.is_some_and(|t| now >= t + LOSS_WINDOW)
    }
}

/// One credit as far as it is known.
enum Slot {
    /// Sent and answered at these instants (and whether within the
    /// measured window); its notification has not come.
    Answered {
        sent: Instant,
        at: Instant,
        measured: bool,
    },
    /// Its notification came at this instant; the answer has not been read.
    Arrived(Instant),
    /// Both seen.
    Done,
}

/// Credits matched with their notifications by (player, balance).
pub struct Matcher {
    measure_from: Instant,
    slots: HashMap<(i64, i64), Slot>,
    /// Credits answered whose notification has not come.
    waiting: usize,
    /// When the last credit writer finished.
    writers_done_at: Option<Instant>,
    /// Credits answered 200 in the measured window (by when the answer
    /// was read, as the latency is measured).
    pub credits: u64,
    /// Delivery latencies of the measured window (ok: delivered).
    pub tally: Tally,
    /// The same deliveries timed from the credit's send instead: an upper
    /// bound of the time from the change's commit (which happens between
    /// the send and the answer) to the notification.
    pub from_send: Tally,
    /// Notifications that came before their credit's answer was read.
    pub before_answer: u64,
    /// Notifications that came more than [`LOSS_WINDOW`] after the answer.
    pub late: u64,
    /// A notification of a credit already delivered.
    pub duplicates: u64,
}

impl Matcher {
    fn new(measure_from: Instant) -> Matcher {
        Matcher {
            measure_from,
            slots: HashMap::new(),
            waiting: 0,
            writers_done_at: None,
            credits: 0,
            tally: Tally::new(),
            from_send: Tally::new(),
            before_answer: 0,
            late: 0,
            duplicates: 0,
        }
    }

    /// A delivery `took` after the answer, `since_send` after the send.
    fn delivered(&mut self, took: Duration, since_send: Duration, measured: bool) {
        if !measured {
            return;
        }
        if took > LOSS_WINDOW {
            self.late += 1;
            self.tally.fail("lost");
        } else {
            self.tally.record(took, None);
            self.from_send.record(since_send, None);
        }
    }

    fn answered(&mut self, key: (i64, i64), sent: Instant, at: Instant) {
        let measured = at >= self.measure_from;
        self.credits += u64::from(measured);
        match self.slots.get(&key) {
            None => {
                self.slots
                    .insert(key, Slot::Answered { sent, at, measured });
                self.waiting += 1;
            }
            Some(Slot::Arrived(came)) => {
                let since_send = came.saturating_duration_since(sent);
                self.slots.insert(key, Slot::Done);
                if measured {
                    self.before_answer += 1;
                }
                // The notification was there first: no wait at all.
                self.delivered(Duration::ZERO, since_send, measured);
            }
            // The same balance answered twice cannot happen with +1 credits.
            Some(_) => {}
        }
    }

    /// A notification for `key` came at `at`.
    fn arrived(&mut self, key: (i64, i64), at: Instant) {
        match self.slots.get(&key) {
            None => {
                self.slots.insert(key, Slot::Arrived(at));
            }
            Some(&Slot::Answered {
                sent,
                at: answered,
                measured,
            }) => {
                self.slots.insert(key, Slot::Done);
                self.waiting -= 1;
                let since = |t: Instant| at.saturating_duration_since(t);
                self.delivered(since(answered), since(sent), measured);
            }
            Some(Slot::Arrived(_) | Slot::Done) => {
                self.duplicates += 1;
                self.tally.fail("duplicate");
            }
        }
    }

    /// After the run: credits of the measured window never delivered are
    /// lost; notifications no answered credit explains are counted.
    /// (lost, unmatched)
    pub fn finish(&mut self) -> (u64, u64) {
        let (mut lost, mut unmatched) = (0, 0);
        for slot in self.slots.values() {
            match slot {
                Slot::Answered { measured: true, .. } => lost += 1,
                Slot::Arrived(_) => unmatched += 1,
                _ => {}
            }
        }
        for _ in 0..lost {
            self.tally.fail("lost");
        }
        (lost + self.late, unmatched)
    }
}

/// Closes this load thread's sockets (through `hangs`) once the run is
/// over: `idle-ws` at its end (after the main thread's reading), `ws` when
/// every credit was answered and delivered or [`LOSS_WINDOW`] after the
/// last answer; in any case `safety` after the end.
pub async fn close_when_done(shared: Arc<Shared>, plan: Plan, hangs: &Hangs, safety: Duration) {
    while !shared.may_close(&plan, safety) {
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
    hangs.shut_all();
}

/// Counts a socket as settled once, when it is ready or gives up.
struct Settled<'a>(&'a Shared, bool);

impl Settled<'_> {
    fn now(&mut self) {
        if !self.1 {
            self.1 = true;
            self.0.settled.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Settled<'_> {
    fn drop(&mut self) {
        self.now();
    }
}

/// One socket: opens it for player `index`, waits for `ready`, then reads
/// until [`close_when_done`] shuts it, answering pings and handing every
/// `wallet` notification to the matcher. Failures go to `tally`; for
/// `idle-ws` the time from connecting to `ready` is its latency.
pub async fn socket(plan: Plan, index: usize, tally: &mut Tally, hangs: &Hangs) {
    let Some(shared) = plan.realtime.clone() else {
        return;
    };
    let mut settled = Settled(&shared, false);
    let t0 = Instant::now();
    let Ok(mut stream) = TcpStream::connect(shared.addr).await else {
        return tally.fail("ws_connect");
    };
    let _ = stream.set_nodelay(true);
    let _watched = hangs.watch(stream.as_raw_fd());
    let key = ws::new_key();
    let request = ws::upgrade_request(&key, &shared.tokens[index]);
    if stream.write_all(request.as_bytes()).await.is_err() {
        return tally.fail("ws_write");
    }
    let mut buf = ReadBuffer::with_capacity(2048);
    loop {
        match ws::upgraded(buf.filled(), &key) {
            ws::Upgraded::Partial => {}
            ws::Upgraded::Switched { len } => {
                buf.consume(len);
                break;
            }
            ws::Upgraded::Refused(status) => return tally.fail(&format!("ws_upgrade_{status}")),
        }
        if let Err(kind) = fill(&mut stream, &mut buf, hangs).await {
            return tally.fail(kind);
        }
    }
    let mut ready = false;
    // The newest notification id of this socket's player.
    let mut last_id: Option<i64> = None;
    let mut out = Vec::new();
    let mut came = Instant::now();
    loop {
        let (opcode, payload, len) = match ws::decode(buf.filled(), MAX_FRAME) {
            ws::Frame::Incomplete => {
                if let Err(kind) = fill(&mut stream, &mut buf, hangs).await {
                    // Shut at the end of the run: not a failure.
                    if !(hangs.fired() && ready) {
                        tally.fail(kind);
                    }
                    return;
                }
                came = Instant::now();
                continue;
            }
            ws::Frame::Bad => return tally.fail("ws_bad_frame"),
            ws::Frame::Whole {
                opcode,
                payload,
                len,
            } => (opcode, payload, len),
        };
        match opcode {
            ws::TEXT => {
                let v: Value = serde_json::from_slice(payload).unwrap_or_default();
                match v["type"].as_str() {
                    Some("ready") if !ready => {
                        ready = true;
                        last_id = v["last_id"].as_i64();
                        shared.ready.fetch_add(1, Ordering::Relaxed);
                        settled.now();
                        if shared.idle {
                            tally.record(came - t0, None);
                        }
                    }
                    Some("notification") if ready => {
                        let id = v["id"].as_i64().unwrap_or(0);
                        if last_id.is_some_and(|last| id != last + 1) {
                            shared.gaps.fetch_add(1, Ordering::Relaxed);
                        }
                        last_id = Some(last_id.map_or(id, |last| last.max(id)));
                        let player = v["player_id"].as_i64();
                        let balance = v["data"]["balance"].as_i64();
                        if let (Some("wallet"), Some(p), Some(b)) =
                            (v["kind"].as_str(), player, balance)
                        {
                            shared.matcher().arrived((p, b), came);
                        }
                    }
                    Some("missed") => {
                        shared.missed.fetch_add(1, Ordering::Relaxed);
                    }
                    Some("error") => tally.fail("ws_error_message"),
                    _ if !ready => return tally.fail("ws_not_ready"),
                    _ => {}
                }
            }
            ws::PING => {
                out.clear();
                ws::encode(ws::PONG, payload, rand::random(), &mut out);
                buf.consume(len);
                if stream.write_all(&out).await.is_err() {
                    return tally.fail("ws_write");
                }
                continue;
            }
            ws::CLOSE => {
                if !hangs.fired() {
                    tally.fail(&format!("ws_close_{}", ws::close_code(payload)));
                }
                return;
            }
            ws::PONG => {}
            _ => return tally.fail("ws_bad_frame"),
        }
        buf.consume(len);
    }
}

async fn fill(
    stream: &mut TcpStream,
    buf: &mut ReadBuffer,
    hangs: &Hangs,
) -> Result<(), &'static str> {
    match stream.read(buf.spare(1024)).await {
        Ok(0) if hangs.fired() => Err("timeout"),
        Ok(0) => Err("ws_closed"),
        Ok(n) => {
            buf.advance(n);
            Ok(())
        }
        Err(_) if hangs.fired() => Err("timeout"),
        Err(_) => Err("ws_read"),
    }
}

/// What a `ws` or `idle-ws` run adds to the report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// `idle-ws`.
    pub idle: bool,
    /// Sockets asked for.
    pub sockets: usize,
    /// Sockets that said `ready`.
    pub ready: usize,
    /// Credits answered 200 in the measured window (`ws`; by when the
    /// answer was read).
    pub credits: u64,
    /// Credits that failed (error answers, lost connections).
    pub credit_errors: u64,
    /// The credits' API latency (from each one's intended send time), p50
    /// and p99 in ms.
    pub credit_p50_ms: f64,
    pub credit_p99_ms: f64,
    /// Notifications of measured credits delivered within the window.
    pub delivered: u64,
    /// Their time from the credit's send, p50/p90/p99/max in ms.
    pub from_send_ms: [f64; 4],
    /// Measured credits whose notification did not come within
    /// [`LOSS_WINDOW`].
    pub lost: u64,
    /// Second notifications of a credit.
    pub duplicates: u64,
    /// Notifications that came before their credit's answer was read.
    pub before_answer: u64,
    /// Notifications that match no answered credit.
    pub unmatched: u64,
    /// Notifications whose id did not follow the socket's previous one.
    pub gaps: u64,
    /// `missed` messages.
    pub missed: u64,
    /// idle-ws with `--server-pid`: the server's VmRSS (KiB) before the
    /// sockets opened and once they were all open.
    pub rss_before_kib: Option<u64>,
    pub rss_with_kib: Option<u64>,
}

impl Report {
    /// The server's memory per ready socket, in KiB.
    pub fn rss_per_socket_kib(&self) -> Option<f64> {
        let (before, with) = (self.rss_before_kib?, self.rss_with_kib?);
        (self.ready > 0).then(|| (with as f64 - before as f64) / self.ready as f64)
    }

    /// As JSON (`ws` in the report).
    pub fn to_json(&self) -> Value {
        json!({
            "sockets": self.sockets,
            "ready": self.ready,
            "credits": self.credits,
            "credit_errors": self.credit_errors,
            "credit_latency_ms": {"p50": self.credit_p50_ms, "p99": self.credit_p99_ms},
            "delivered": self.delivered,
            "from_send_ms": {
                "p50": self.from_send_ms[0],
                "p90": self.from_send_ms[1],
                "p99": self.from_send_ms[2],
                "max": self.from_send_ms[3],
            },
            "lost": self.lost,
            "duplicates": self.duplicates,
            "before_answer": self.before_answer,
            "unmatched": self.unmatched,
            "gaps": self.gaps,
            "missed": self.missed,
            "loss_window_s": LOSS_WINDOW.as_secs_f64(),
            "server_rss_kib": {
                "before": self.rss_before_kib,
                "with_sockets": self.rss_with_kib,
                "per_socket": self.rss_per_socket_kib(),
            },
        })
    }

    /// The line under the table.
    pub fn line(&self) -> String {
        let mut line = format!("{} of {} sockets ready", self.ready, self.sockets);
        if !self.idle {
            line.push_str(&format!(
                "; {} credits answered (API p50 {:.2} ms, p99 {:.2} ms, {} failed): {} delivered \
                 (from the credit's send: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms), \
                 {} lost (not within {} s), {} duplicates, {} before the API's answer was read \
                 (latency 0), {} unmatched, {} id gaps, {} missed",
                self.credits,
                self.credit_p50_ms,
                self.credit_p99_ms,
                self.credit_errors,
                self.delivered,
                self.from_send_ms[0],
                self.from_send_ms[2],
                self.from_send_ms[3],
                self.lost,
                LOSS_WINDOW.as_secs(),
                self.duplicates,
                self.before_answer,
                self.unmatched,
                self.gaps,
                self.missed
            ));
        }
        if let (Some(before), Some(with), Some(per)) = (
            self.rss_before_kib,
            self.rss_with_kib,
            self.rss_per_socket_kib(),
        ) {
            line.push_str(&format!(
                "; server RSS {:.1} MiB before, {:.1} MiB with the sockets open = {per:.2} KiB per socket",
                before as f64 / 1024.0,
                with as f64 / 1024.0
            ));
        }
        format!("ws: {line}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_and_notifications_are_matched_in_either_order() {
        let t0 = Instant::now();
        let mut m = Matcher::new(t0);
        let ms = Duration::from_millis;
        // Answer first, then the notification 3 ms later.
        m.answered((1, 10), t0, t0 + ms(1));
        assert_eq!(m.waiting, 1);
        m.arrived((1, 10), t0 + ms(4));
        assert_eq!(m.waiting, 0);
        // The notification before the answer: latency 0 (2 ms from the send).
        m.arrived((2, 10), t0 + ms(5));
        m.answered((2, 10), t0 + ms(3), t0 + ms(6));
        // A second copy of a delivered one.
        m.arrived((1, 10), t0 + ms(7));
        // Late (past the window), never delivered, and one nobody credited.
        m.answered((3, 10), t0, t0 + ms(8));
        m.arrived((3, 10), t0 + ms(8) + LOSS_WINDOW + ms(1));
        m.answered((4, 10), t0, t0 + ms(9));
        m.arrived((5, 10), t0 + ms(10));
        // Answered before the measured window: not counted at all.
        let mut early = Matcher::new(t0 + ms(100));
        early.answered((6, 1), t0, t0);
        assert_eq!(early.finish(), (0, 0));
        assert_eq!(early.tally.total(), 0);
        let (lost, unmatched) = m.finish();
        assert_eq!((lost, unmatched), (2, 1));
        assert_eq!((m.duplicates, m.before_answer, m.late), (1, 1, 1));
        assert_eq!(m.tally.ok, 2);
        assert_eq!(m.credits, 4);
        assert_eq!(m.tally.errors["lost"], 2);
        assert_eq!(m.tally.errors["duplicate"], 1);
        let max_ms = m.tally.latency.max() as f64 / 1000.0;
        assert!((2.9..=3.1).contains(&max_ms), "{max_ms}");
        // From the send: 4 ms and 2 ms.
        let from_send = &m.from_send.latency;
        assert_eq!(from_send.len(), 2);
        assert!((3.9..=4.1).contains(&(from_send.max() as f64 / 1000.0)));
        assert!((1.9..=2.1).contains(&(from_send.min() as f64 / 1000.0)));
    }

    #[test]
    fn the_report_says_rss_per_socket() {
        let r = Report {
            idle: true,
            sockets: 10,
            ready: 10,
            rss_before_kib: Some(40_000),
            rss_with_kib: Some(40_080),
            ..Report::default()
        };
        assert_eq!(r.rss_per_socket_kib(), Some(8.0));
        assert_eq!(r.to_json()["server_rss_kib"]["per_socket"], 8.0);
        assert!(r.line().contains("8.00 KiB per socket"), "{}", r.line());
        assert!(Report::default().to_json()["server_rss_kib"]["per_socket"].is_null());
    }
}
