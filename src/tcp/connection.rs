//! The TCP listener of one shard and its connections' codec: the shared
//! connection loop (`crate::connection`) reads; `Frames` decodes every
//! complete frame in place and dispatches them one after another (so replies
//! keep request order even when the client pipelines); the loop writes the
//! batch's replies at once.

use super::dispatch::{dispatch, Session};
use super::reply::{self, ReplyTo};
use crate::connection::{self, Batch, Buffers, Codec, Refusal};
use crate::node::ShardGauges;
use crate::protocol::{codes, decode, Decoded, FrameError};
use crate::shard::Shard;
use futures_lite::AsyncWriteExt;
use glommio::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The read buffer a connection starts with: keeps idle connections small.
const IDLE_CHUNK: usize = 2 * 1024;
/// Bytes asked of a read while the peer is not sending fast.
const IDLE_READ: usize = 512;

/// Accepts connections on `listener` until the shard drains.
pub async fn serve(shard: Rc<Shard>, listener: TcpListener) {
    crate::shard::accept_until_drained(shard, listener, "tcp", admit).await
}

async fn admit(shard: Rc<Shard>, mut stream: TcpStream) {
    let max = shard.config.tcp.max_connections;
    let count = &shard.node.tcp_connections;
    if count.fetch_add(1, Ordering::Relaxed) >= max {
        count.fetch_sub(1, Ordering::Relaxed);
        let mut out = Vec::new();
        reply::error_code(
            &mut out,
            &ReplyTo::connection(b""),
            codes::INTERNAL,
            "server busy",
        );
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        let _ = stream.write_all(&out).await;
        let _ = stream.close().await;
        return;
    }
    let gauges = shard.gauges();
    ShardGauges::incr(&gauges.tcp_connections);
    let _ = run(&shard, stream).await;
    ShardGauges::decr(&gauges.tcp_connections);
    count.fetch_sub(1, Ordering::Relaxed);
}

/// The connection's loop with the binary protocol's codec (returned, not
/// awaited in an `async fn` of its own: that state would hold the stream a
/// second time in every idle connection's task).
/// The binary protocol never hands a connection over: its output is `None`.
fn run(
    shard: &Rc<Shard>,
    stream: TcpStream,
) -> impl std::future::Future<Output = Option<connection::Handover<Frames>>> {
    let buffers = Buffers {
        first: IDLE_CHUNK,
        idle_read: IDLE_READ,
    };
    let for_codec = shard.clone();
    let open = move |stream: &TcpStream| Frames::open(&for_codec, stream);
    connection::run(shard.clone(), stream, open, buffers)
}

/// The binary protocol as the connection loop sees it: frames in, reply
/// frames out, the idle and heartbeat deadlines, and Error frames as
/// refusals.
struct Frames {
    shard: Rc<Shard>,
    session: Session,
    idle: Duration,
    heartbeat: Duration,
    last_read: Instant,
}

impl Frames {
    /// The codec of a new connection on `stream`.
    fn open(shard: &Rc<Shard>, stream: &TcpStream) -> Frames {
        let cfg = &shard.config.tcp;
        let idle = Duration::from_secs(cfg.idle_timeout_s);
        let _ = stream.set_write_timeout(Some(idle.min(Duration::from_secs(30))));
        let peer = stream
            .peer_addr()
            .map(|a| a.ip())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        Frames {
            shard: shard.clone(),
            session: Session::new(peer, shard.tcp_roles.clone()),
            idle,
            heartbeat: Duration::from_secs(cfg.heartbeat_timeout_s),
            last_read: Instant::now(),
        }
    }

    /// The deadline in force and the reason a connection past it is given.
    fn deadline_and_reason(&self) -> (Instant, &'static str) {
        let idle = self.last_read + self.idle;
        let heartbeat = self.session.last_heartbeat + self.heartbeat;
        // Once authenticated, a connection must also send heartbeats.
        if self.session.caller().is_some() && heartbeat < idle {
            (heartbeat, "heartbeat timeout")
        } else {
            (idle, "idle timeout")
        }
    }

    /// An Error frame about the connection itself (no request to answer).
    fn connection_error(&self, out: &mut Vec<u8>, code: u32, message: &str) {
        let to = ReplyTo::connection(self.session.user_id.as_bytes());
        reply::error_code(out, &to, code, message);
    }
}

impl Codec for Frames {
    async fn answer(&mut self, input: &[u8], out: &mut Vec<u8>) -> Batch {
        let shard = self.shard.clone();
        let max_body = shard.config.tcp.max_body_bytes;
        let mut pos = 0;
        let mut close = false;
        while !close {
            match decode(&input[pos..], max_body) {
                Decoded::Incomplete => break,
                Decoded::Frame { frame, len } => {
                    // Boxed on purpose: the dispatch future holds the state of
                    // the deepest service call. Inline, it would sit in every
                    // connection's task for the connection's whole life, idle
                    // or not; boxed, it exists only while a frame is handled.
                    Box::pin(dispatch(&shard, &mut self.session, &frame, out)).await;
                    ShardGauges::incr(&shard.gauges().tcp_frames);
                    pos += len;
                    // Too many failed handshakes: answer, then hang up.
                    close = self.session.close;
                }
                Decoded::Invalid {
                    error,
                    sequence,
                    len,
                } => {
                    let (code, msg) = match error {
                        FrameError::BadChecksum => {
                            (codes::MALFORMED, "checksum mismatch".to_string())
                        }
                        FrameError::UnsupportedVersion(v) => (
                            codes::UNSUPPORTED_VERSION,
                            format!("unsupported protocol version {v}"),
                        ),
                        FrameError::TooLarge => (codes::TOO_LARGE, "frame too large".to_string()),
                    };
                    let to = ReplyTo {
                        sequence,
                        game_id: b"",
                        user_id: self.session.user_id.as_bytes(),
                    };
                    reply::error_code(out, &to, code, &msg);
                    pos += len;
                }
                Decoded::Fatal { sequence, .. } => {
                    let msg = format!(
                        "frame too large: body at most {max_body} bytes, ids at most {} bytes",
                        crate::protocol::MAX_ID_LEN
                    );
                    let to = ReplyTo {
                        sequence,
                        game_id: b"",
                        user_id: self.session.user_id.as_bytes(),
                    };
                    reply::error_code(out, &to, codes::TOO_LARGE, &msg);
                    close = true;
                }
            }
        }
        Batch { used: pos, close }
    }

    fn deadline(&self) -> Instant {
        self.deadline_and_reason().0
    }

    fn on_read(&mut self) {
        self.last_read = Instant::now();
    }

    fn refuse(&self, why: Refusal, _pending: bool, out: &mut Vec<u8>) {
        match why {
            Refusal::Timeout => {
                self.connection_error(out, codes::TIMEOUT, self.deadline_and_reason().1)
            }
            Refusal::Busy => {
                self.connection_error(out, codes::INTERNAL, "server busy: request buffers full")
            }
            Refusal::Draining => {
                self.connection_error(out, codes::INTERNAL, "server shutting down")
            }
        }
    }
}
