//! systemd's notify protocol, end to end: the real binary runs under a fake
//! service manager — a Unix datagram socket that `NOTIFY_SOCKET` names — and
//! must report READY=1 only once it serves on every shard, WATCHDOG=1 while
//! it runs, STOPPING=1 when a signal starts the drain, and then exit 0.
//! Waits are bounded; nothing asserts how long anything took.

mod common;

use common::{HttpClient, Server, StartOptions};
use std::collections::BTreeSet;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A fake service manager: the socket the server sends its notifications to,
/// and every message received so far, in order.
struct Manager {
    socket: UnixDatagram,
    dir: Option<PathBuf>,
    messages: Vec<String>,
}

impl Manager {
    /// Binds a socket file in a fresh temporary directory; returns the
    /// manager and the value for `NOTIFY_SOCKET`.
    fn bind_path() -> (Manager, String) {
        let dir =
            std::env::temp_dir().join(format!("dm-notify-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        let value = path.to_str().expect("a UTF-8 temp path").to_string();
        (Manager::new(socket, Some(dir)), value)
    }

    /// Binds a socket in Linux's abstract namespace; `NOTIFY_SOCKET` is then
    /// `@name`.
    fn bind_abstract() -> (Manager, String) {
        let name = format!("dm-notify-test-{}-{}", std::process::id(), unique());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
        let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract socket");
        (Manager::new(socket, None), format!("@{name}"))
    }

    fn new(socket: UnixDatagram, dir: Option<PathBuf>) -> Manager {
        Manager {
            socket,
            dir,
            messages: Vec::new(),
        }
    }

    /// The next message, if one comes within `limit`.
    fn receive(&mut self, limit: Duration) -> Option<String> {
        self.socket
            .set_read_timeout(Some(limit))
            .expect("read timeout");
        let mut buf = [0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => {
                let m = String::from_utf8(buf[..n].to_vec()).expect("UTF-8 notification");
                self.messages.push(m.clone());
                Some(m)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("notify socket: {e}"),
        }
    }

    /// Reads messages until one has the line `line`, which it returns; fails
    /// after `limit` or when the server exits first.
    fn wait_for(&mut self, line: &str, limit: Duration, server: &mut Server) -> String {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Some(m) = self.receive(Duration::from_millis(100)) {
                if m.lines().any(|l| l == line) {
                    return m;
                }
            } else if let Some(c) = server.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "server exited ({status}) before {line}; got {:?}: {}",
                        self.messages,
                        server.log()
                    );
                }
            }
        }
        panic!(
            "no {line} within {limit:?}; got {:?}: {}",
            self.messages,
            server.log()
        );
    }

    /// Everything still queued (the sender has exited).
    fn drain(&mut self) {
        while self.receive(Duration::from_millis(200)).is_some() {}
    }

    /// Index of the first message with the line `line`.
    fn first(&self, line: &str) -> Option<usize> {
        self.messages
            .iter()
            .position(|m| m.lines().any(|l| l == line))
    }

    /// How many messages have the line `line`.
    fn count(&self, line: &str) -> usize {
        self.messages
            .iter()
            .filter(|m| m.lines().any(|l| l == line))
            .count()
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The `STATUS=` text of a message.
fn status(message: &str) -> &str {
    message
        .lines()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("no STATUS= line in {message:?}"))
}

#[test]
fn ready_only_when_every_shard_serves_then_watchdog_then_stopping_and_exit_0() {
    let (mut manager, socket) = Manager::bind_path();
    let mut server = Server::start_with_options(
        2,
        &[],
        StartOptions {
            env: &[
                ("NOTIFY_SOCKET", socket.as_str()),
                ("WATCHDOG_USEC", "400000"),
            ],
            no_wait: true,
        },
    );

    let ready = manager.wait_for("READY=1", Duration::from_secs(30), &mut server);
    // READY=1 means serving: /health answers at once, and connections reach
    // both shards' listeners.
    let mut c = HttpClient::connect(server.http).expect("connect when READY=1 came");
    let r = c.request("GET", "/health", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let shards: BTreeSet<u64> = (0..24)
        .map(|_| {
            server.http().request("GET", "/health", &[], b"").json()["shard"]
                .as_u64()
                .expect("shard")
        })
        .collect();
    assert_eq!(
        shards,
        BTreeSet::from([0, 1]),
        "both shards listen at READY=1"
    );
    let text = status(&ready);
    assert!(
        text.starts_with("serving: 2 shards")
            && text.contains(&server.http.to_string())
            && text.contains(&server.tcp.to_string()),
        "{text}"
    );

    // The watchdog is pinged while the node runs (WATCHDOG_PID unset: ours).
    manager.wait_for("WATCHDOG=1", Duration::from_secs(20), &mut server);

    server.signal(libc::SIGTERM);
    let stopping = manager.wait_for("STOPPING=1", Duration::from_secs(20), &mut server);
    assert!(status(&stopping).starts_with("draining"), "{stopping}");
    assert_eq!(
        server.wait_exit(Duration::from_secs(20)),
        Some(0),
        "log: {}",
        server.log()
    );
    manager.drain();

    // The whole conversation, in order: status while starting, one READY=1,
    // pings only after it, STOPPING=1 after them, and a last status.
    let m = &manager.messages;
    let ready_at = manager.first("READY=1").expect("READY=1");
    let ping_at = manager.first("WATCHDOG=1").expect("WATCHDOG=1");
    let stopping_at = manager.first("STOPPING=1").expect("STOPPING=1");
    assert!(ready_at < ping_at && ping_at < stopping_at, "{m:?}");
    assert_eq!(manager.count("READY=1"), 1, "{m:?}");
    assert_eq!(manager.count("STOPPING=1"), 1, "{m:?}");
    assert!(
        m[..ready_at]
            .iter()
            .all(|x| status(x).starts_with("starting")),
        "{m:?}"
    );
    assert_eq!(
        m.last().map(String::as_str),
        Some("STATUS=stopped"),
        "{m:?}"
    );
}

#[test]
fn abstract_socket_without_watchdog_and_sigint() {
    let (mut manager, socket) = Manager::bind_abstract();
    let mut server = Server::start_with_options(
        1,
        &[],
        StartOptions {
            env: &[("NOTIFY_SOCKET", socket.as_str())],
            no_wait: true,
        },
    );
    let ready = manager.wait_for("READY=1", Duration::from_secs(30), &mut server);
    assert!(status(&ready).starts_with("serving: 1 shards"), "{ready}");
    assert_eq!(
        server.http().request("GET", "/health", &[], b"").status,
        200
    );
    server.signal(libc::SIGINT);
    manager.wait_for("STOPPING=1", Duration::from_secs(20), &mut server);
    assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0));
    manager.drain();
    // WatchdogSec unset: no pings.
    assert_eq!(manager.count("WATCHDOG=1"), 0, "{:?}", manager.messages);
}

#[test]
fn without_notify_socket_nothing_is_sent_or_logged() {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        eprintln!("skipped: this test process itself runs under NOTIFY_SOCKET");
        return;
    }
    let mut server = Server::start_with_options(
        1,
        &[("log", "level = \"debug\"")],
        StartOptions {
            env: &[("WATCHDOG_USEC", "400000")],
            no_wait: false,
        },
    );
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0));
    let log = server.log().to_lowercase();
    for word in ["notif", "watchdog"] {
        assert!(!log.contains(word), "{word:?} in the log:\n{log}");
    }
}
