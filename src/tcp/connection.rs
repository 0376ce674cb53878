//! The TCP listener of one shard and the loop of each connection.
//!
//! A connection reads into one reusable buffer, decodes every complete frame
//! in place, dispatches them one after another (so replies keep request order
//! even when the client pipelines), and writes the batch's replies at once.

use super::dispatch::{dispatch, Session};
use super::reply::{self, ReplyTo};
use crate::buffer::ReadBuffer;
use crate::node::ShardGauges;
use crate::protocol::{codes, decode, Decoded, FrameError};
use crate::shard::Shard;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const READ_CHUNK: usize = 16 * 1024;
/// Read size of a connection with nothing buffered: keeps idle connections small.
const IDLE_CHUNK: usize = 2 * 1024;

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
    run(&shard, stream).await;
    ShardGauges::decr(&gauges.tcp_connections);
    count.fetch_sub(1, Ordering::Relaxed);
}

async fn run(shard: &Rc<Shard>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let guard = shard.track(stream.as_raw_fd());
    let cfg = &shard.config.tcp;
    let idle = Duration::from_secs(cfg.idle_timeout_s);
    let heartbeat = Duration::from_secs(cfg.heartbeat_timeout_s);
    let _ = stream.set_write_timeout(Some(idle.min(Duration::from_secs(30))));
    let gauges = shard.gauges();
    let peer = stream
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let mut session = Session::new(peer, shard.tcp_roles.clone());
    let mut buf = ReadBuffer::with_capacity(IDLE_CHUNK);
    // What the buffer holds beyond a read chunk, out of the shard's budget.
    let mut reserved = shard.buffers.reservation();
    let mut busy = false;
    let mut out: Vec<u8> = Vec::with_capacity(256);
    let mut last_read = Instant::now();
    loop {
        let mut pos = 0;
        let mut close = false;
        while !close {
            match decode(&buf.filled()[pos..], cfg.max_body_bytes) {
                Decoded::Incomplete => break,
                Decoded::Frame { frame, len } => {
                    // Boxed on purpose: the dispatch future holds the state of
                    // the deepest service call. Inline, it would sit in every
                    // connection's task for the connection's whole life, idle
                    // or not; boxed, it exists only while a frame is handled.
                    Box::pin(dispatch(shard, &mut session, &frame, &mut out)).await;
                    ShardGauges::incr(&gauges.tcp_frames);
                    pos += len;
                    // Too many failed handshakes: answer, then hang up.
                    close = session.close;
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
                        user_id: session.user_id.as_bytes(),
                    };
                    reply::error_code(&mut out, &to, code, &msg);
                    pos += len;
                }
                Decoded::Fatal { sequence, .. } => {
                    let msg = format!(
                        "frame too large: body at most {} bytes, ids at most {} bytes",
                        cfg.max_body_bytes,
                        crate::protocol::MAX_ID_LEN
                    );
                    let to = ReplyTo {
                        sequence,
                        game_id: b"",
                        user_id: session.user_id.as_bytes(),
                    };
                    reply::error_code(&mut out, &to, codes::TOO_LARGE, &msg);
                    close = true;
                }
            }
        }
        buf.consume(pos);
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
        if close {
            break;
        }
        // The next read must come before the idle deadline and, once
        // authenticated, before the heartbeat deadline. No timer per read:
        // the shard's reaper ends a wait that outlives it (the read then
        // returns end-of-stream and the guard says it expired).
        let mut deadline = last_read + idle;
        let mut reason = "idle timeout";
        if session.caller().is_some() && session.last_heartbeat + heartbeat < deadline {
            deadline = session.last_heartbeat + heartbeat;
            reason = "heartbeat timeout";
        }
        // Traffic that is not a heartbeat keeps arriving: check here too.
        if Instant::now() >= deadline {
            reply::error_code(
                &mut out,
                &ReplyTo::connection(session.user_id.as_bytes()),
                codes::TIMEOUT,
                reason,
            );
            let _ = stream.write_all(&out).await;
            break;
        }
        guard.set_deadline(deadline);
        // An idle connection waits with a small buffer; one whose last read
        // filled the buffer gets a big one.
        let spare = buf.spare(if busy { READ_CHUNK } else { 512 });
        let offered = spare.len();
        match stream.read(spare).await {
            Ok(0) => {
                if guard.expired() {
                    reply::error_code(
                        &mut out,
                        &ReplyTo::connection(session.user_id.as_bytes()),
                        codes::TIMEOUT,
                        reason,
                    );
                    let _ = stream.write_all(&out).await;
                } else if shard.is_draining() {
                    reply::error_code(
                        &mut out,
                        &ReplyTo::connection(session.user_id.as_bytes()),
                        codes::INTERNAL,
                        "server shutting down",
                    );
                    let _ = stream.write_all(&out).await;
                }
                break;
            }
            Ok(n) => {
                buf.advance(n);
                busy = n == offered;
                last_read = Instant::now();
            }
            Err(_) => break,
        }
        if buf.capacity() > 4 * READ_CHUNK {
            buf.shrink_to(IDLE_CHUNK);
        }
        if !reserved.resize(buf.allocated().saturating_sub(READ_CHUNK)) {
            // Partial frames of other connections fill the node's buffers.
            reply::error_code(
                &mut out,
                &ReplyTo::connection(session.user_id.as_bytes()),
                codes::INTERNAL,
                "server busy: request buffers full",
            );
            let _ = stream.write_all(&out).await;
            break;
        }
    }
    let _ = stream.close().await;
}
