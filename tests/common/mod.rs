//! Test harness: starts the real `datamiddleware` binary on free loopback
//! ports with a temporary config and data directory, and speaks to it over
//! real sockets (a minimal HTTP/1.1 client and a frame client).
//!
//! - a server: `Server::start(shards)`, or [`ServerConfig`] for one with
//!   overrides (`ServerConfig::new().shards(2).set("auth", "mode", "dev")
//!   .start()`); [`node`] for a cluster node on [`redis`];
//! - a request: `server.call(method, path)` (a new connection) or
//!   `client.call(method, path)` (a kept one), then `.token(..)`,
//!   `.game(..)`, `.header(..)`, `.json(..)`, `.send()` ([`Call`], [`Answer`]);
//! - the database behind the server's back: [`rows`].
#![allow(dead_code)]

use datamiddleware::protocol::{decode, encode, Decoded, FrameRef};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod call;
mod config;
mod db;
pub mod ws;

// Each test crate uses some of these.
#[allow(unused_imports)]
pub use call::{Answer, Call};
#[allow(unused_imports)]
pub use config::{node, redis, ServerConfig};
#[allow(unused_imports)]
pub use db::{column_i64, rows};

/// A command for `program` with an environment the harness controls: every
/// `DM_*` variable of the caller's shell is removed, so a stray override (or
/// a script's own variable) never reaches a test server as configuration.
/// Tests pass the `DM_*` variables they mean with `.env`/`.envs`; the
/// caller's backends reach the tests through `DMTEST_*` variables instead.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DM_") {
            command.env_remove(&name);
        }
    }
    command
}

/// The server binary as [`clean_command`] starts it.
pub fn server_command() -> Command {
    clean_command(env!("CARGO_BIN_EXE_datamiddleware"))
}

/// A running server process; killed and cleaned up on drop.
pub struct Server {
    pub child: Option<Child>,
    pub http: SocketAddr,
    pub tcp: SocketAddr,
    pub dir: PathBuf,
    /// The MySQL databases this server uses (`common::rows` queries the
    /// first).
    pub databases: Vec<String>,
    /// Whether `databases` were created for this server and are dropped
    /// with it (a peer only shares its first node's).
    pub owns_databases: bool,
}

/// Extra ways to start a server, for [`Server::start_with_options`]; the
/// default is what [`Server::start_with`] does.
#[derive(Default)]
pub struct StartOptions<'a> {
    /// Environment variables for the server process (e.g. `NOTIFY_SOCKET`),
    /// on top of the test's own; for this start only — `restart` and
    /// `start_peer` do not carry them.
    pub env: &'a [(&'a str, &'a str)],
    /// Return once the process is spawned instead of waiting for `/health`
    /// to answer (the caller then waits in its own way).
    pub no_wait: bool,
}

/// The backend the suite runs against: `DMTEST_BACKEND=mysql` (with the
/// variables `scripts/backends.sh env` prints) or the embedded SQLite.
pub enum TestBackend {
    Sqlite,
    Mysql {
        admin: String,
        primary: String,
        replica: String,
        redis: String,
    },
}

pub fn backend() -> TestBackend {
    if std::env::var("DMTEST_BACKEND").as_deref() != Ok("mysql") {
        return TestBackend::Sqlite;
    }
    let var = |k: &str| {
        std::env::var(k)
            .unwrap_or_else(|_| panic!("DMTEST_BACKEND=mysql needs {k} (scripts/backends.sh env)"))
    };
    TestBackend::Mysql {
        admin: var("DMTEST_MYSQL_ADMIN"),
        primary: var("DMTEST_MYSQL_PRIMARY"),
        replica: var("DMTEST_MYSQL_REPLICA"),
        redis: var("DMTEST_REDIS"),
    }
}

/// Runs SQL on the test MariaDB primary (database administration).
pub fn mysql_admin(sql: &str) {
    use mysql::prelude::Queryable;
    if let TestBackend::Mysql { admin, .. } = backend() {
        let mut c = mysql::Conn::new(mysql::Opts::from_url(&admin).expect("admin url"))
            .expect("connect admin");
        c.query_drop(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Admin account of the test configs.
pub const ADMIN_USER: &str = "ops";
/// Its password.
pub const ADMIN_PASSWORD: &str = "admin-password-1";
/// The audit checkpoint signing key (Ed25519 seed, hex) of test servers.
pub const AUDIT_SIGNING_KEY: &str =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

fn admin_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| datamiddleware::service::auth::hash_password(ADMIN_PASSWORD).expect("hash"))
        .clone()
}

/// Game server key used by the test configs.
pub const SERVER_KEY: &str = "test-server-key-0123456789";

/// Polls `f` every 50 ms until it holds; fails the test after `limit`,
/// naming `what`.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// A loopback address for a test server, reserved for the rest of this test
/// process.
///
/// The port is held by a bound (never listening) socket with SO_REUSEPORT,
/// which the server's own SO_REUSEPORT listeners may join but no other
/// `bind` can take. Picking a free port and letting it go (what this did
/// before) left a window in which a concurrent test picked the same port: both
/// servers then listened on it through SO_REUSEPORT, the kernel spread one
/// test's connections over both, and the other server's shutdown closed them
/// unanswered ("connection closed", with nothing in this test's server log).
pub fn loopback_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], reserved_port()))
}

/// A loopback address whose port was free a moment ago, for a program that
/// binds without SO_REUSEPORT (nginx), which a reservation would refuse.
pub fn unreserved_loopback_addr() -> SocketAddr {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port");
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Binds a SO_REUSEPORT socket to a free loopback port and keeps it open
/// (deliberately leaked) until the test process exits.
fn reserved_port() -> u16 {
    // SAFETY: plain socket calls on a descriptor this function owns; the
    // structures passed are initialised and of the sizes given.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let one: libc::c_int = 1;
        let set = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(set, 0, "SO_REUSEPORT: {}", std::io::Error::last_os_error());
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let bound = libc::bind(fd, (&addr as *const libc::sockaddr_in).cast(), len);
        assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
        let mut out_len = len;
        let named = libc::getsockname(
            fd,
            (&mut addr as *mut libc::sockaddr_in).cast(),
            &mut out_len,
        );
        assert_eq!(named, 0, "getsockname: {}", std::io::Error::last_os_error());
        u16::from_be(addr.sin_port)
    }
}

impl Server {
    /// Starts a server with `shards` shards and the standard test config.
    pub fn start(shards: usize) -> Server {
        Server::start_with(shards, &[])
    }

    /// Starts a server whose config gets extra `key = value` lines in the
    /// named sections (`node`, `http`, `tcp`, `auth`, `log`, `cache` — which then
    /// replaces the backend's cache settings), and raw TOML at the
    /// end (`tail`).
    pub fn start_with(shards: usize, lines: &[(&str, &str)]) -> Server {
        Server::start_with_options(shards, lines, StartOptions::default())
    }

    /// [`Server::start_with`] with [`StartOptions`].
    pub fn start_with_options(
        shards: usize,
        lines: &[(&str, &str)],
        options: StartOptions<'_>,
    ) -> Server {
        let section = |name: &str| -> String {
            lines
                .iter()
                .filter(|(s, _)| *s == name)
                .map(|(_, l)| format!("{l}\n"))
                .collect()
        };
        let mut http_lines = section("http");
        if !http_lines.contains("read_timeout_ms") {
            // Generous: a loaded 2-core CI machine can starve a shard for a while.
            http_lines.push_str("read_timeout_ms = 5000\n");
        }
        let (node_keys, _, tcp_keys, auth_keys) = (
            section("node"),
            section("http"),
            section("tcp"),
            section("auth"),
        );
        let mut mode_line = String::new();
        if !auth_keys.contains("mode") {
            mode_line.push_str("mode = \"prod\"\n");
        }
        if !auth_keys.contains("rate_limit_per_ip_per_min") {
            // Every test client is 127.0.0.1: only the rate-limit test limits.
            mode_line.push_str("rate_limit_per_ip_per_min = 100000000\n");
        }
        let tail = section("tail");
        let mut audit_keys = section("audit");
        if !audit_keys.contains("signing_key") {
            // Prod mode needs a checkpoint signing key; every test server
            // of the suite signs with this one.
            audit_keys.push_str(&format!("signing_key = \"{AUDIT_SIGNING_KEY}\"\n"));
        }
        let mut log_keys = section("log");
        if !log_keys.contains("level") {
            log_keys.push_str("level = \"warn\"\n");
        }
        let admin_hash = admin_hash();
        let mut databases = Vec::new();
        let (game1, game2, cache_keys) = match backend() {
            TestBackend::Sqlite => (
                "url = \"sqlite://{dir}/game1.db\"".to_string(),
                "url = \"sqlite://{dir}/game2.db\"".to_string(),
                String::new(),
            ),
            TestBackend::Mysql {
                primary,
                replica,
                redis,
                ..
            } => {
                let base = format!(
                    "dmt_{}_{}",
                    std::process::id(),
                    rand_suffix() % 1_000_000_000
                );
                let mut urls = Vec::new();
                for g in ["g1", "g2"] {
                    let db = format!("{base}_{g}");
                    mysql_admin(&format!("CREATE DATABASE {db}"));
                    urls.push(format!("url = \"{primary}/{db}\"\nreplicas = [\"{replica}/{db}\"]\nmax_replica_lag_ms = 500"));
                    databases.push(db);
                }
                (
                    urls[0].clone(),
                    urls[1].clone(),
                    format!("redis = \"{redis}\"\n"),
                )
            }
        };

        let cache_section = if section("cache").is_empty() {
            cache_keys
        } else {
            section("cache")
        };
        let dir =
            std::env::temp_dir().join(format!("dm-test-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let http = loopback_addr();
        let tcp = loopback_addr();
        let config = format!(
            r#"default_game = "game1"
[node]
{default_id}shards = {shards}
shutdown_grace_ms = 5000
{node_keys}
[http]
listen = "{http}"
{http_lines}
[tcp]
listen = "{tcp}"
{tcp_keys}
[auth]
{mode_line}
jwt_secret = "test-jwt-secret-0123456789abcdef0123456789"
{auth_keys}
[cache]
{cache_section}
[audit]
{audit_keys}
[log]
{log_keys}
[games.game1]
name = "Game 1"
{game1}
server_key = "{SERVER_KEY}"
[games.game2]
name = "Game 2"
{game2}
server_key = "{SERVER_KEY}-2"

[admins.ops]
password_hash = "{admin_hash}"

[[games.game1.items]]
item_id = "sword"
name = "Sword"
type = "weapon"
price_gold = 100
max_stack = 5

[[games.game1.items]]
item_id = "potion"
name = "Potion"
type = "consumable"
price_gold = 10
price_diamonds = 1
max_stack = 1000

[[games.game1.items]]
item_id = "gem"
name = "Gem"
price_diamonds = 50
max_stack = 99

[[games.game2.items]]
item_id = "shield"
name = "Shield"
price_gold = 30
max_stack = 3
{tail}
"#,
            default_id = if node_keys.contains("id =") {
                ""
            } else {
                "id = \"test-node\"\n"
            },
            game1 = game1.replace("{dir}", &dir.display().to_string()),
            game2 = game2.replace("{dir}", &dir.display().to_string()),
        );
        let path = dir.join("config.toml");
        std::fs::write(&path, config).expect("write config");
        let log = std::fs::File::create(dir.join("server.log")).expect("log file");
        let child = server_command()
            .arg("--config")
            .arg(&path)
            .envs(options.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start server");
        let mut server = Server {
            child: Some(child),
            http,
            tcp,
            dir,
            databases,
            owns_databases: true,
        };
        if !options.no_wait {
            server.wait_ready();
        }
        server
    }

    /// A second node sharing this one's databases (and Redis, if any), on
    /// its own ports and with its own node id.
    pub fn start_peer(&self, node_id: &str) -> Server {
        self.start_peer_edited(node_id, |text| text)
    }

    /// [`Server::start_peer`] with its config text passed through `edit`.
    pub fn start_peer_edited(&self, node_id: &str, edit: impl FnOnce(String) -> String) -> Server {
        let text = edit(std::fs::read_to_string(self.dir.join("config.toml")).expect("config"));
        let http = loopback_addr();
        let tcp = loopback_addr();
        let text = text
            .replace(&self.http.to_string(), &http.to_string())
            .replace(&self.tcp.to_string(), &tcp.to_string())
            .lines()
            .map(|l| {
                // The node's own id (the only key named `id` at line start).
                if l.starts_with("id = \"") {
                    format!("id = \"{node_id}\"")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let dir =
            std::env::temp_dir().join(format!("dm-peer-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("config.toml"), text).expect("write");
        std::fs::File::create(dir.join("server.log")).expect("log");
        let mut peer = Server {
            child: None,
            http,
            tcp,
            dir,
            databases: self.databases.clone(),
            owns_databases: false,
        };
        peer.restart();
        peer
    }

    /// Kills the process and starts it again on the same config and data.
    pub fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("log");
        self.child = Some(
            server_command()
                .arg("--config")
                .arg(self.dir.join("config.toml"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("restart server"),
        );
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("server exited during start-up ({status}): {}", self.log());
                }
            }
            // `/ready`, not `/health`: one shard answers `/health` while the
            // others may still be binding their listeners, and connections
            // made then all land on the first (seen under a CPU hog).
            if let Ok(mut c) = HttpClient::connect(self.http) {
                if let Ok(r) = c.try_request("GET", "/ready", &[], b"") {
                    if r.status == 200 {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not become ready: {}", self.log());
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Waits (at most 10 s) until the server log contains `needle`; returns
    /// the log.
    pub fn wait_for_log(&self, needle: &str) -> String {
        wait_for(
            &format!("the log to say {needle:?}"),
            Duration::from_secs(10),
            || self.log().contains(needle),
        );
        self.log()
    }

    /// A new HTTP client connection.
    pub fn http(&self) -> HttpClient {
        HttpClient::connect(self.http).expect("connect http")
    }

    /// A new frame client connection.
    pub fn tcp(&self) -> FrameClient {
        FrameClient::connect(self.tcp)
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let until = Instant::now() + within;
        let child = self.child.as_mut()?;
        while Instant::now() < until {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// An admin access token.
    pub fn admin_token(&self) -> String {
        self.token(
            "/api/v1/auth/admin",
            &format!(r#"{{"username":"{ADMIN_USER}","password":"{ADMIN_PASSWORD}"}}"#),
        )
    }

    /// A game-server access token for `game`.
    pub fn server_token(&self, game: &str) -> String {
        let key = if game == "game1" {
            SERVER_KEY.to_string()
        } else {
            format!("{SERVER_KEY}-2")
        };
        self.token(
            "/api/v1/auth/server",
            &format!(r#"{{"game_id":"{game}","server_key":"{key}"}}"#),
        )
    }

    /// POSTs `body` to an authentication route and returns the token.
    fn token(&self, path: &str, body: &str) -> String {
        let r = self.http().request("POST", path, &[], body.as_bytes());
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()["data"]["token"]
            .as_str()
            .expect("token")
            .to_string()
    }

    /// Registers a player over HTTP and logs in; returns (id, access token).
    pub fn player(&self, game: &str, username: &str) -> (i64, String) {
        let mut c = self.http();
        let body = format!(r#"{{"username":"{username}","password":"password1"}}"#);
        let r = c.request(
            "POST",
            "/api/v1/players",
            &[("X-Game-Id", game)],
            body.as_bytes(),
        );
        assert_eq!(r.status, 201, "register: {}", r.text());
        let r = c.request(
            "POST",
            "/api/v1/auth/login",
            &[("X-Game-Id", game)],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "login: {}", r.text());
        let j = r.json();
        (
            j["data"]["player"]["id"].as_i64().expect("id"),
            j["data"]["token"].as_str().expect("token").to_string(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- server log ({}) ---", self.dir.display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for db in self.databases.iter().filter(|_| self.owns_databases) {
            mysql_admin(&format!("DROP DATABASE IF EXISTS {db}"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One request on a new connection: (status, JSON body or `Null`).
pub fn request_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, serde_json::Value) {
    let mut c = HttpClient::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let r = c.request(method, path, headers, body.as_bytes());
    let j = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
    (r.status, j)
}

/// A blocking HTTP/1.1 client over one keep-alive connection.
pub struct HttpClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl HttpClient {
    pub fn connect(addr: SocketAddr) -> std::io::Result<HttpClient> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        stream.set_nodelay(true)?;
        Ok(HttpClient {
            stream,
            buf: Vec::new(),
        })
    }

    /// Formats a request.
    pub fn format(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" || method == "PUT" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    pub fn try_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<HttpResponse> {
        self.stream
            .write_all(&HttpClient::format(method, path, headers, body))?;
        self.read_response()
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads one response.
    pub fn read_response(&mut self) -> std::io::Result<HttpResponse> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let mut lines = head.split("\r\n");
                let status_line = lines.next().unwrap_or("");
                let status: u16 = status_line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        std::io::Error::other(format!("bad status line {status_line:?}"))
                    })?;
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                if status == 100 {
                    self.buf.drain(..end + 4);
                    continue;
                }
                if self.buf.len() >= end + 4 + len {
                    let body = self.buf[end + 4..end + 4 + len].to_vec();
                    self.buf.drain(..end + 4 + len);
                    return Ok(HttpResponse {
                        status,
                        headers,
                        body,
                    });
                }
            }
            let mut chunk = [0u8; 16384];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// True when the server has closed the connection (EOF within `wait`).
    pub fn is_closed(&mut self, wait: Duration) -> bool {
        closed_within(&mut self.stream, wait)
    }
}

/// True when the peer closes `stream` within `wait` (data before the close
/// is skipped).
pub fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let _ = stream.set_read_timeout(Some(wait));
    let mut b = [0u8; 1024];
    loop {
        match stream.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A decoded reply frame, owned.
#[derive(Debug, Clone)]
pub struct Reply {
    pub msg_type: u16,
    pub flags: u8,
    pub sequence: u32,
    pub timestamp: i64,
    pub game_id: String,
    pub user_id: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "reply body not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `code` of an Error frame.
    pub fn error_code(&self) -> u64 {
        assert_eq!(
            self.msg_type, 0x2001,
            "expected an Error frame, got {self:?}"
        );
        self.json()["code"].as_u64().expect("code")
    }
}

/// Builds a frame with the original's layout.
pub fn frame(
    msg_type: u16,
    flags: u8,
    sequence: u32,
    game: &str,
    user: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    encode(
        &mut out,
        &FrameRef {
            version: 1,
            msg_type,
            flags,
            sequence,
            timestamp: 1_700_000_000,
            game_id: game.as_bytes(),
            user_id: user.as_bytes(),
            body,
        },
    );
    out
}

/// A blocking binary-protocol client.
pub struct FrameClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl FrameClient {
    pub fn connect(addr: SocketAddr) -> FrameClient {
        let stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect tcp");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        FrameClient {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send frame");
    }

    /// Sends a frame with NeedResponse and reads one reply.
    pub fn call(&mut self, msg_type: u16, sequence: u32, game: &str, body: &str) -> Reply {
        self.send(&frame(msg_type, 0x04, sequence, game, "", body.as_bytes()));
        self.read().expect("reply")
    }

    /// Handshakes with the game's server key.
    pub fn handshake_server(&mut self, game: &str, key: &str) -> Reply {
        let body = format!(r#"{{"server_key":"{key}"}}"#);
        self.send(&frame(0x0002, 0x04, 1, game, "gs-1", body.as_bytes()));
        self.read().expect("handshake reply")
    }

    /// Reads one reply frame; `None` on EOF.
    pub fn read(&mut self) -> Option<Reply> {
        loop {
            match decode(&self.buf, 1 << 24) {
                Decoded::Frame { frame, len } => {
                    let r = Reply {
                        msg_type: frame.msg_type,
                        flags: frame.flags,
                        sequence: frame.sequence,
                        timestamp: frame.timestamp,
                        game_id: String::from_utf8_lossy(frame.game_id).into_owned(),
                        user_id: String::from_utf8_lossy(frame.user_id).into_owned(),
                        body: frame.body.to_vec(),
                    };
                    self.buf.drain(..len);
                    return Some(r);
                }
                Decoded::Incomplete => {}
                other => panic!("server sent an invalid frame: {other:?}"),
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read reply: {e}"),
            }
        }
    }

    /// True when the server closed the connection within `wait`.
    pub fn is_closed(&mut self, wait: Duration) -> bool {
        closed_within(&mut self.stream, wait)
    }
}

/// Runs promtool with `args` (and `stdin`); `None` when it is not installed
/// (and not required).
pub fn promtool_with(args: &[&str], stdin: &str) -> Option<std::process::Output> {
    let spawned = std::process::Command::new("promtool")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            if let Some(mut input) = child.stdin.take() {
                std::io::Write::write_all(&mut input, stdin.as_bytes())?;
            }
            child.wait_with_output()
        });
    match spawned {
        Ok(out) => Some(out),
        Err(e) => {
            assert!(
                std::env::var("DMTEST_REQUIRE_PROMTOOL").as_deref() != Ok("1"),
                "promtool: {e}"
            );
            eprintln!("promtool not installed: skipped");
            None
        }
    }
}

/// The Redis value at `key` (`--raw`), through `redis-cli`; `-c` follows a
/// Redis Cluster's redirections when the suite runs on one.
pub fn redis_get(redis: &str, key: &str) -> Option<String> {
    let value = redis_cli(redis, &["GET", key]);
    (!value.is_empty()).then_some(value)
}

/// Runs one Redis command through `redis-cli` (`--raw`) on the Redis of
/// `redis` (a URL as in `DMTEST_REDIS`), following a Cluster's
/// redirections; its output, trimmed.
pub fn redis_cli(redis: &str, command: &[&str]) -> String {
    let cluster = redis.starts_with("redis+cluster://");
    let rest = redis
        .trim_start_matches("redis+cluster://")
        .trim_start_matches("redis://");
    let (first, db) = rest.split_once('/').unwrap_or((rest, "0"));
    let (host, port) = first
        .split(',')
        .next()
        .and_then(|a| a.rsplit_once(':'))
        .expect("host:port in DMTEST_REDIS");
    let mut args = vec!["-h", host, "-p", port];
    if cluster {
        args.push("-c");
    } else {
        args.extend(["-n", db]);
    }
    args.push("--raw");
    args.extend(command);
    let out = clean_command("redis-cli")
        .args(&args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Raises this process's open-file limit to `want` (or the hard limit), so
/// a test holding many sockets — and the server it starts, which inherits
/// it — does not run out of descriptors.
pub fn raise_open_files(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_cur.max(want.min(lim.rlim_max));
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
