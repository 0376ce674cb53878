//! A Redis client on glommio sockets: one connection per shard for commands,
//! plus one subscriber per node for invalidation messages.
//!
//! Requests on a shard's connection take turns (one batch in flight; a batch
//! may pipeline several commands). Every exchange has a timeout; a failed or
//! timed-out connection is dropped and re-opened on a later request, no
//! sooner than an exponential backoff (50 ms doubling to 2 s) allows, so a
//! dead Redis costs callers a fast error, not a wait.

use super::resp::{self, Reply};
use crate::buffer::ReadBuffer;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::cell::{Cell, RefCell};
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

/// Longest wait for a command batch.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(50);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Why a Redis call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisError(pub String);

impl std::fmt::Display for RedisError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redis: {}", self.0)
    }
}

/// Where and how to connect: `redis://[[user]:password@]host[:port][/db]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or address.
    pub host: String,
    /// Port (default 6379).
    pub port: u16,
    /// ACL user, if any.
    pub username: Option<String>,
    /// Password for AUTH, if any.
    pub password: Option<String>,
    /// Database for SELECT.
    pub db: u32,
}

impl RedisUrl {
    /// Parses a `redis://` URL.
    pub fn parse(url: &str) -> Result<RedisUrl, String> {
        let rest = url
            .strip_prefix("redis://")
            .ok_or("must start with redis://")?;
        let (auth, hostpart) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (hostport, db) = match hostpart.split_once('/') {
            Some((h, d)) if !d.is_empty() => (
                h,
                d.parse::<u32>().map_err(|_| "database must be a number")?,
            ),
            Some((h, _)) => (h, 0),
            None => (hostpart, 0),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| "port must be a number")?),
            None => (hostport, 6379),
        };
        if host.is_empty() {
            return Err("host missing".into());
        }
        let (username, password) = match auth {
            None => (None, None),
            Some(a) => match a.split_once(':') {
                Some((u, p)) => ((!u.is_empty()).then(|| u.to_string()), Some(p.to_string())),
                None => (None, Some(a.to_string())),
            },
        };
        Ok(RedisUrl {
            host: host.to_string(),
            port,
            username,
            password,
            db,
        })
    }
}

/// Opens a connection and authenticates / selects the database.
async fn connect(url: &RedisUrl) -> Result<TcpStream, RedisError> {
    let addr = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| RedisError(format!("cannot resolve {}: {e}", url.host)))?
        .next()
        .ok_or_else(|| RedisError(format!("no address for {}", url.host)))?;
    let mut stream = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT)
        .await
        .map_err(|e| RedisError(format!("connect {addr}: {e}")))?;
    let _ = stream.set_nodelay(true);
    // Once per connection: every later read and write is bounded by it.
    let _ = stream.set_write_timeout(Some(COMMAND_TIMEOUT));
    let _ = stream.set_read_timeout(Some(COMMAND_TIMEOUT));
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    if let Some(p) = &url.password {
        match &url.username {
            Some(u) => cmds.push(vec![
                b"AUTH".to_vec(),
                u.as_bytes().to_vec(),
                p.as_bytes().to_vec(),
            ]),
            None => cmds.push(vec![b"AUTH".to_vec(), p.as_bytes().to_vec()]),
        }
    }
    if url.db != 0 {
        cmds.push(vec![b"SELECT".to_vec(), url.db.to_string().into_bytes()]);
    }
    if !cmds.is_empty() {
        let mut buf = ReadBuffer::with_capacity(512);
        for reply in exchange(&mut stream, &cmds, &mut buf).await? {
            if let Reply::Error(e) = reply {
                return Err(RedisError(format!("handshake refused: {e}")));
            }
        }
    }
    Ok(stream)
}

/// Writes `cmds` and reads one reply per command.
async fn exchange(
    stream: &mut TcpStream,
    cmds: &[Vec<Vec<u8>>],
    buf: &mut ReadBuffer,
) -> Result<Vec<Reply>, RedisError> {
    let mut out = Vec::new();
    for c in cmds {
        let args: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
        resp::encode(&mut out, &args);
    }
    stream
        .write_all(&out)
        .await
        .map_err(|e| RedisError(format!("write: {e}")))?;
    let mut replies = Vec::with_capacity(cmds.len());
    while replies.len() < cmds.len() {
        while let Some((reply, used)) =
            resp::parse(buf.filled()).map_err(|resp::ParseError::Protocol(e)| RedisError(e))?
        {
            buf.consume(used);
            replies.push(reply);
            if replies.len() == cmds.len() {
                return Ok(replies);
            }
        }
        let n = read_more(stream, buf)
            .await
            .map_err(|e| RedisError(format!("read: {e}")))?;
        if n == 0 {
            return Err(RedisError("connection closed".into()));
        }
    }
    Ok(replies)
}

/// Reads into the free tail of `buf` (kept on the heap: futures stay small).
async fn read_more(stream: &mut TcpStream, buf: &mut ReadBuffer) -> std::io::Result<usize> {
    let n = stream.read(buf.spare(4096)).await?;
    buf.advance(n);
    Ok(n)
}

/// A shard's command connection to Redis.
pub struct RedisClient {
    url: RedisUrl,
    /// The connection and its read buffer, taken out during an exchange.
    stream: RefCell<Option<(TcpStream, ReadBuffer)>>,
    turn: glommio::sync::Semaphore,
    next_attempt: Cell<Instant>,
    backoff: Cell<Duration>,
    up: Cell<bool>,
}

impl RedisClient {
    /// A client for `url`; connects on first use.
    pub fn new(url: RedisUrl) -> RedisClient {
        RedisClient {
            url,
            stream: RefCell::new(None),
            turn: glommio::sync::Semaphore::new(1),
            next_attempt: Cell::new(Instant::now()),
            backoff: Cell::new(MIN_BACKOFF),
            up: Cell::new(false),
        }
    }

    /// Whether the last exchange succeeded.
    pub fn is_up(&self) -> bool {
        self.up.get()
    }

    /// Sends `cmds` as one pipeline and returns their replies.
    pub async fn pipeline(&self, cmds: &[Vec<Vec<u8>>]) -> Result<Vec<Reply>, RedisError> {
        let _turn = self
            .turn
            .acquire_permit(1)
            .await
            .map_err(|e| RedisError(e.to_string()))?;
        let taken = self.stream.borrow_mut().take();
        let (mut stream, mut buf) = match taken {
            Some(s) => s,
            None => {
                if Instant::now() < self.next_attempt.get() {
                    return Err(RedisError("down; waiting to reconnect".into()));
                }
                match connect(&self.url).await {
                    Ok(s) => (s, ReadBuffer::with_capacity(4096)),
                    Err(e) => return Err(self.failed(e)),
                }
            }
        };
        // Reads and writes are bounded by the socket timeouts set in `connect`.
        match exchange(&mut stream, cmds, &mut buf).await {
            Ok(replies) if buf.is_empty() => {
                *self.stream.borrow_mut() = Some((stream, buf));
                self.up.set(true);
                self.backoff.set(MIN_BACKOFF);
                Ok(replies)
            }
            Ok(replies) => {
                // Extra bytes: the stream is out of step; start afresh next time.
                self.up.set(true);
                Ok(replies)
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    fn failed(&self, e: RedisError) -> RedisError {
        if self.up.replace(false) {
            tracing::warn!(error = %e, "redis unavailable; serving from L1 and the database");
        }
        let backoff = self.backoff.get();
        self.next_attempt.set(Instant::now() + backoff);
        self.backoff.set((backoff * 2).min(MAX_BACKOFF));
        e
    }

    /// One command.
    pub async fn command(&self, args: Vec<Vec<u8>>) -> Result<Reply, RedisError> {
        self.pipeline(&[args])
            .await?
            .pop()
            .ok_or_else(|| RedisError("no reply".into()))
    }
}

/// Subscribes to `channel` on `url` until the connection fails, calling
/// `on_message` with each payload and `on_state(true)` once subscribed (the
/// loop that reconnects is `redis_link::subscribe_forever`).
pub(crate) async fn subscribe_once(
    url: &RedisUrl,
    channel: &str,
    on_message: &impl Fn(Vec<u8>),
    on_state: &impl Fn(bool),
) -> Result<(), RedisError> {
    let mut stream = connect(url).await?;
    let mut buf = ReadBuffer::with_capacity(4096);
    let replies = exchange(
        &mut stream,
        &[vec![b"SUBSCRIBE".to_vec(), channel.as_bytes().to_vec()]],
        &mut buf,
    )
    .await?;
    if !matches!(replies.first(), Some(Reply::Array(Some(_)))) {
        return Err(RedisError(format!("SUBSCRIBE refused: {replies:?}")));
    }
    on_state(true);
    // Liveness: PING every second; three silent seconds mean the link is dead.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut last_data = Instant::now();
    loop {
        while let Some((reply, used)) =
            resp::parse(buf.filled()).map_err(|resp::ParseError::Protocol(e)| RedisError(e))?
        {
            buf.consume(used);
            if let Reply::Array(Some(mut parts)) = reply {
                if parts.len() == 3 && parts[0] == Reply::Bulk(Some(b"message".to_vec())) {
                    if let Some(Reply::Bulk(Some(payload))) = parts.pop() {
                        on_message(payload);
                    }
                }
            }
        }
        match read_more(&mut stream, &mut buf).await {
            Ok(0) => return Err(RedisError("connection closed".into())),
            Ok(_) => last_data = Instant::now(),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                if last_data.elapsed() > Duration::from_secs(3) {
                    return Err(RedisError("subscriber link silent".into()));
                }
                let mut ping = Vec::new();
                resp::encode(&mut ping, &[b"PING"]);
                stream
                    .write_all(&ping)
                    .await
                    .map_err(|e| RedisError(format!("write: {e}")))?;
            }
            Err(e) => return Err(RedisError(format!("read: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            RedisUrl::parse("redis://127.0.0.1:16379/2").expect("ok"),
            RedisUrl {
                host: "127.0.0.1".into(),
                port: 16379,
                username: None,
                password: None,
                db: 2
            }
        );
        let u = RedisUrl::parse("redis://:secret@cache.internal").expect("ok");
        assert_eq!(
            (u.port, u.password.as_deref(), u.db),
            (6379, Some("secret"), 0)
        );
        let u = RedisUrl::parse("redis://app:pw@h:1/").expect("ok");
        assert_eq!(
            (u.username.as_deref(), u.password.as_deref()),
            (Some("app"), Some("pw"))
        );
        assert!(RedisUrl::parse("http://x").is_err());
        assert!(RedisUrl::parse("redis://h:notaport").is_err());
    }
}
