//! The service manager's notification protocol (`sd_notify(3)`): tells
//! systemd, when it runs the node as a `Type=notify` service, that the node
//! is ready (`READY=1`), that it drains (`STOPPING=1`), that it is alive
//! (`WATCHDOG=1`), and what it is doing (`STATUS=`).
//!
//! The protocol is one datagram of newline-separated `KEY=VALUE` lines sent
//! to the `AF_UNIX` socket named by `$NOTIFY_SOCKET`: a path, or with a
//! leading `@` a name in Linux's abstract namespace. It is written here on
//! `std` alone rather than with the `sd-notify` crate: its 0.5.0 opens and
//! connects a new blocking socket for every message and hands
//! `NOTIFY_SOCKET` to `UnixDatagram::connect` as a file path, so an `@name`
//! address fails.
//!
//! Without `$NOTIFY_SOCKET` every call is a no-op that logs nothing. The
//! socket is non-blocking, and only the main thread and the signal thread
//! send — never a shard.
//!
//! The watchdog ([`Watchdog`]) pings only while every shard proves it runs:
//! each shard's own executor bumps its `beats` gauge on a timer, and a ping
//! is sent only when every shard's count moved since the previous ping. A
//! wedged shard (a task that never yields, a blocking call on the executor)
//! therefore stops the pings, and systemd restarts the node within about
//! 1.5 × `WatchdogSec`.

use std::ffi::OsStr;
use std::io::ErrorKind;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a state message (READY, STOPPING, STATUS) is retried while the
/// manager's queue is full; it is sent from the main or the signal thread.
const STATE_RETRIES: u32 = 20;

/// Pause between those tries.
const STATE_RETRY_PAUSE: Duration = Duration::from_millis(5);

/// Where the node stands in the protocol: READY=1 is sent at most once, and
/// never after STOPPING=1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Ready,
    Stopping,
}

/// Sends notifications to the service manager; a no-op without
/// `$NOTIFY_SOCKET`. Shared by the main thread and the signal thread.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// Held while a state message is sent, so READY and STOPPING go out in
    /// the order the node reached them.
    phase: Mutex<Phase>,
    /// Whether a failed send has been logged at warn (later ones: debug).
    warned: AtomicBool,
}

impl Notifier {
    /// A notifier for `$NOTIFY_SOCKET`; disabled when it is unset. An
    /// address it cannot use is logged once and disables it.
    pub fn from_env() -> Notifier {
        Notifier::for_socket(std::env::var_os("NOTIFY_SOCKET").as_deref())
    }

    /// A notifier for the value of `NOTIFY_SOCKET` (`None`: unset).
    pub fn for_socket(value: Option<&OsStr>) -> Notifier {
        let Some(value) = value else {
            return Notifier::disabled();
        };
        let addr = match parse_address(value) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(notify_socket = ?value, error = %e, "NOTIFY_SOCKET not usable; service manager notifications off");
                return Notifier::disabled();
            }
        };
        let socket = match UnixDatagram::unbound().and_then(|s| {
            s.set_nonblocking(true)?;
            Ok(s)
        }) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a socket for NOTIFY_SOCKET; service manager notifications off");
                return Notifier::disabled();
            }
        };
        Notifier {
            target: Some(Target {
                socket,
                addr,
                phase: Mutex::new(Phase::Starting),
                warned: AtomicBool::new(false),
            }),
        }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier { target: None }
    }

    /// Whether a service manager listens (`$NOTIFY_SOCKET` was usable).
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// `STATUS=<text>`: what the node is doing, for `systemctl status`.
    pub fn status(&self, text: &str) {
        if let Some(t) = &self.target {
            let _phase = t.lock();
            t.send_state(&status_line(text));
        }
    }

    /// `READY=1` with a status line, once; not after [`Notifier::stopping`]
    /// (a node told to stop during start-up never reports ready).
    pub fn ready(&self, status: &str) {
        if let Some(t) = &self.target {
            let mut phase = t.lock();
            if *phase == Phase::Starting {
                *phase = Phase::Ready;
                t.send_state(&format!("READY=1\n{}", status_line(status)));
            }
        }
    }

    /// `STOPPING=1` with a status line, once: the node has begun to drain.
    pub fn stopping(&self, status: &str) {
        if let Some(t) = &self.target {
            let mut phase = t.lock();
            if *phase != Phase::Stopping {
                *phase = Phase::Stopping;
                t.send_state(&format!("STOPPING=1\n{}", status_line(status)));
            }
        }
    }

    /// `WATCHDOG=1`: the node is alive. Tried once: a ping the manager's
    /// full queue refuses is simply the next one's job.
    pub fn watchdog(&self) {
        if let Some(t) = &self.target {
            t.send("WATCHDOG=1", 1);
        }
    }
}

impl Target {
    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send_state(&self, message: &str) {
        self.send(message, STATE_RETRIES);
    }

    fn send(&self, message: &str, tries: u32) {
        let mut left = tries.max(1);
        loop {
            left -= 1;
            match self.socket.send_to_addr(message.as_bytes(), &self.addr) {
                Ok(_) => return,
                Err(e) if e.kind() == ErrorKind::WouldBlock && left > 0 => {
                    std::thread::sleep(STATE_RETRY_PAUSE);
                }
                Err(e) => {
                    let first = !self.warned.swap(true, Ordering::Relaxed);
                    let what = message.lines().next().unwrap_or("");
                    if first {
                        tracing::warn!(message = what, error = %e, "service manager notification not delivered");
                    } else {
                        tracing::debug!(message = what, error = %e, "service manager notification not delivered");
                    }
                    return;
                }
            }
        }
    }
}

/// A `STATUS=` line; line breaks in `text` would start new assignments, so
/// they become spaces.
fn status_line(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    format!("STATUS={text}")
}

/// The socket address `NOTIFY_SOCKET` names: an absolute path, or `@name`
/// in the abstract namespace.
fn parse_address(value: &OsStr) -> Result<SocketAddr, String> {
    let bytes = value.as_bytes();
    match bytes.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]).map_err(|e| e.to_string()),
        Some(b'/') => SocketAddr::from_pathname(value).map_err(|e| e.to_string()),
        _ => Err("expected an absolute path or @abstract-name".to_string()),
    }
}

/// The watchdog interval the manager asks for, as `sd_watchdog_enabled(3)`
/// reads it: `WATCHDOG_USEC` (> 0) applies when `WATCHDOG_PID` is unset or
/// names this process. `Err` for values that do not parse.
pub fn watchdog_interval(
    usec: Option<&OsStr>,
    pid: Option<&OsStr>,
    own_pid: u32,
) -> Result<Option<Duration>, String> {
    let Some(usec) = usec else {
        return Ok(None);
    };
    let usec: u64 = usec
        .to_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("WATCHDOG_USEC={usec:?} is not a number of microseconds"))?;
    if let Some(pid) = pid {
        let pid: u32 = pid
            .to_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("WATCHDOG_PID={pid:?} is not a process id"))?;
        if pid != own_pid {
            return Ok(None);
        }
    }
    Ok((usec > 0).then(|| Duration::from_micros(usec)))
}

/// [`watchdog_interval`] from this process's environment; `None` when the
/// notifier is disabled (nobody to ping) or the values do not parse (logged).
pub fn watchdog_from_env(notifier: &Notifier) -> Option<Watchdog> {
    if !notifier.is_enabled() {
        return None;
    }
    let usec = std::env::var_os("WATCHDOG_USEC");
    let pid = std::env::var_os("WATCHDOG_PID");
    match watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id()) {
        Ok(interval) => interval.map(Watchdog::new),
        Err(e) => {
            tracing::warn!(error = %e, "watchdog settings not usable; no watchdog pings");
            None
        }
    }
}

/// What [`Watchdog::check`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send `WATCHDOG=1` now.
    Ping,
    /// Not yet (too early, or a stall already reported).
    Wait,
    /// This shard has not run since the last ping: the ping is withheld
    /// (reported once per stall).
    Stalled(usize),
}

/// Decides when to ping: every half interval, and only when every shard's
/// beat count moved since the previous ping.
#[derive(Debug)]
pub struct Watchdog {
    period: Duration,
    last_ping: Option<Instant>,
    seen: Vec<u64>,
    stall_reported: bool,
}

impl Watchdog {
    /// A watchdog for the manager's interval (`WatchdogSec`); pings at half
    /// of it, as `sd_watchdog_enabled(3)` recommends.
    pub fn new(interval: Duration) -> Watchdog {
        Watchdog {
            period: interval / 2,
            last_ping: None,
            seen: Vec::new(),
            stall_reported: false,
        }
    }

    /// The time between pings (half the interval).
    pub fn period(&self) -> Duration {
        self.period
    }

    /// How often each shard bumps its beat count, and how often
    /// [`Watchdog::check`] should run: a quarter of the period, between
    /// 10 ms and 1 s.
    pub fn beat(&self) -> Duration {
        (self.period / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// Starts the clock: the node just reported READY=1, with these beats.
    pub fn start(&mut self, now: Instant, beats: &[u64]) {
        self.last_ping = Some(now);
        self.seen = beats.to_vec();
        self.stall_reported = false;
    }

    /// Whether to ping at `now`, given every shard's beat count.
    pub fn check(&mut self, now: Instant, beats: &[u64]) -> Verdict {
        let Some(last) = self.last_ping else {
            self.start(now, beats);
            return Verdict::Wait;
        };
        if now.duration_since(last) < self.period {
            return Verdict::Wait;
        }
        let stalled = (0..beats.len()).find(|&i| self.seen.get(i) == Some(&beats[i]));
        match stalled {
            None => {
                self.start(now, beats);
                Verdict::Ping
            }
            Some(_) if self.stall_reported => Verdict::Wait,
            Some(shard) => {
                self.stall_reported = true;
                Verdict::Stalled(shard)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn receive(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn without_notify_socket_nothing_is_sent() {
        let n = Notifier::for_socket(None);
        assert!(!n.is_enabled());
        n.ready("x");
        n.stopping("y");
        n.watchdog();
        assert!(watchdog_from_env(&n).is_none());
    }

    #[test]
    fn unusable_addresses_disable_it() {
        for bad in ["", "relative/path", "vsock:2:1234"] {
            assert!(
                !Notifier::for_socket(Some(OsStr::new(bad))).is_enabled(),
                "{bad}"
            );
        }
    }

    #[test]
    fn messages_reach_a_path_socket_in_order() {
        let dir = std::env::temp_dir().join(format!("dm-notify-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let manager = UnixDatagram::bind(&path).expect("bind");
        let n = Notifier::for_socket(Some(path.as_os_str()));
        n.status("starting");
        n.ready("serving:\nnow");
        n.ready("twice");
        n.watchdog();
        n.stopping("draining");
        n.ready("after stopping");
        n.stopping("again");
        n.status("stopped");
        assert_eq!(receive(&manager), "STATUS=starting");
        assert_eq!(receive(&manager), "READY=1\nSTATUS=serving: now");
        assert_eq!(receive(&manager), "WATCHDOG=1");
        assert_eq!(receive(&manager), "STOPPING=1\nSTATUS=draining");
        assert_eq!(receive(&manager), "STATUS=stopped");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn abstract_sockets_are_named_with_an_at_sign() {
        let name = format!("dm-notify-unit-{}-{}", std::process::id(), line!());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let manager = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        let n = Notifier::for_socket(Some(OsStr::new(&format!("@{name}"))));
        n.ready("up");
        assert_eq!(receive(&manager), "READY=1\nSTATUS=up");
    }

    #[test]
    fn a_manager_that_went_away_costs_a_log_line_not_an_error() {
        let n = Notifier::for_socket(Some(OsStr::new("/nonexistent/dm-notify.sock")));
        assert!(n.is_enabled());
        n.ready("up");
        n.watchdog();
    }

    #[test]
    fn watchdog_interval_follows_sd_watchdog_enabled() {
        let os = |s: &str| OsString::from(s);
        let iv = |u: Option<&str>, p: Option<&str>| {
            watchdog_interval(u.map(os).as_deref(), p.map(os).as_deref(), 42)
        };
        assert_eq!(iv(None, None), Ok(None));
        assert_eq!(
            iv(Some("400000"), None),
            Ok(Some(Duration::from_millis(400)))
        );
        assert_eq!(
            iv(Some("400000"), Some("42")),
            Ok(Some(Duration::from_millis(400)))
        );
        assert_eq!(iv(Some("400000"), Some("7")), Ok(None), "another process's");
        assert_eq!(iv(Some("0"), None), Ok(None));
        assert!(iv(Some("ten"), None).is_err());
        assert!(iv(Some("400000"), Some("me")).is_err());
    }

    #[test]
    fn pings_every_half_interval_only_while_every_shard_beats() {
        let mut w = Watchdog::new(Duration::from_secs(10));
        assert_eq!(w.period(), Duration::from_secs(5));
        assert_eq!(w.beat(), Duration::from_secs(1));
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        w.start(t0, &[0, 0]);
        assert_eq!(w.check(t0 + 4 * s, &[4, 4]), Verdict::Wait, "too early");
        assert_eq!(w.check(t0 + 5 * s, &[5, 5]), Verdict::Ping);
        // Shard 1 stops: the ping is withheld, and the stall reported once.
        assert_eq!(w.check(t0 + 10 * s, &[10, 5]), Verdict::Stalled(1));
        assert_eq!(w.check(t0 + 11 * s, &[11, 5]), Verdict::Wait);
        // It runs again: the ping goes out at once.
        assert_eq!(w.check(t0 + 12 * s, &[12, 6]), Verdict::Ping);
        assert_eq!(w.check(t0 + 13 * s, &[13, 7]), Verdict::Wait);
        assert_eq!(w.check(t0 + 17 * s, &[17, 7]), Verdict::Ping);
        // Short intervals beat no faster than every 10 ms.
        assert_eq!(
            Watchdog::new(Duration::from_millis(20)).beat(),
            Duration::from_millis(10)
        );
    }
}
