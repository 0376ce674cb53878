//! The HTTP listener of one shard and the loop of each connection: read,
//! parse every complete (possibly pipelined) request, answer them in order
//! into one write buffer, flush once per batch.

use super::handlers;
use super::health::HealthBody;
use super::request::{self, Limits, Parsed, Request};
use super::response::Response;
use crate::buffer::ReadBuffer;
use crate::logging::{RequestId, Tagged};
use crate::node::ShardGauges;
use crate::shard::Shard;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

const READ_CHUNK: usize = 16 * 1024;

/// Longest `X-Request-Id` echoed and logged; a longer or non-printable one is
/// ignored rather than copied into logs.
const MAX_REQUEST_ID: usize = 128;

/// The request id a proxy (nginx's `$request_id`) or client sent, if usable.
fn request_id<'a>(req: &Request<'a>) -> Option<&'a str> {
    req.headers
        .request_id
        .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID)
        .filter(|id| id.bytes().all(|b| b.is_ascii_graphic()))
}

/// The access-log line of one answered request (`log.access`), under the
/// request's id like every other line it caused.
fn log_access(req: &Request<'_>, status: u16, took: Duration, peer: IpAddr, id: RequestId<'_>) {
    crate::logging::within(id, || {
        tracing::info!(
            target: "access",
            method = req.method,
            path = req.path,
            status,
            micros = took.as_micros() as u64,
            peer = %peer,
            "request"
        )
    });
}

/// Accepts connections on `listener` until the shard drains.
pub async fn serve(shard: Rc<Shard>, listener: TcpListener) {
    // One `/health` rendering per shard, shared by its connections.
    let health = Rc::new(HealthBody::default());
    crate::shard::accept_until_drained(shard, listener, "http", move |shard, stream| {
        connection(shard, health.clone(), stream)
    })
    .await
}

async fn connection(shard: Rc<Shard>, health: Rc<HealthBody>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let guard = shard.track(stream.as_raw_fd());
    let peer = stream
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let gauges = shard.gauges();
    ShardGauges::incr(&gauges.http_connections);
    let timeout = Duration::from_millis(shard.config.http.read_timeout_ms);
    let _ = stream.set_write_timeout(Some(timeout));
    let limits = Limits {
        max_header_bytes: shard.config.http.max_header_bytes,
        max_body_bytes: shard.config.http.max_body_bytes,
    };
    let mut buf = ReadBuffer::with_capacity(READ_CHUNK);
    // What the buffer holds beyond its base, out of the shard's budget.
    let mut reserved = shard.buffers.reservation();
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut deadline = Instant::now() + timeout;
    guard.set_deadline(deadline);
    let mut sent_continue = false;
    let mut overdue = false;
    let access_log = shard.config.log.access;
    'conn: loop {
        let mut pos = 0;
        let mut close = false;
        while pos < buf.len() {
            match request::parse(&buf.filled()[pos..], &limits) {
                Parsed::Complete { request, len } => {
                    let started = access_log.then(Instant::now);
                    let id = request_id(&request);
                    let handling = handlers::handle(&shard, &health, &request, peer);
                    // Everything the request logs carries its id.
                    let tag = match id {
                        Some(id) => RequestId::Given(id),
                        None => RequestId::next(),
                    };
                    let mut response = Box::pin(Tagged::new(tag, handling)).await;
                    if let Some(id) = id {
                        response.headers.push(("X-Request-Id", id.to_string()));
                    }
                    if let Some(t0) = started {
                        log_access(&request, response.status, t0.elapsed(), peer, tag);
                    }
                    let keep_alive = request.keep_alive && !shard.is_draining();
                    response.write_to(&mut out, keep_alive);
                    ShardGauges::incr(&gauges.http_requests);
                    pos += len;
                    sent_continue = false;
                    deadline = Instant::now() + timeout;
                    guard.set_deadline(deadline);
                    overdue = false;
                    if !keep_alive || response.close {
                        close = true;
                        break;
                    }
                }
                Parsed::Partial { expect_continue } => {
                    if expect_continue && !sent_continue {
                        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                        sent_continue = true;
                    }
                    break;
                }
                Parsed::Refused { status, message } => {
                    Response::status(status, message).write_to(&mut out, false);
                    close = true;
                    break;
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
        // Past the deadline, one more read takes what already arrived (a
        // shard that was busy must not drop a request sent in time); a
        // second one means the client is too slow, however it trickles.
        let now = Instant::now();
        if now >= deadline {
            if overdue {
                if !buf.is_empty() {
                    Response::status(408, "request not received in time").write_to(&mut out, false);
                    let _ = stream.write_all(&out).await;
                }
                break;
            }
            overdue = true;
        }
        // No timer per read: the shard's reaper ends a wait that outlives
        // the deadline (the read then returns end-of-stream).
        match stream.read(buf.spare(READ_CHUNK)).await {
            Ok(0) => {
                if guard.expired() && !buf.is_empty() {
                    out.clear();
                    Response::status(408, "request not received in time").write_to(&mut out, false);
                    let _ = stream.write_all(&out).await;
                }
                break 'conn;
            }
            Ok(n) => buf.advance(n),
            Err(_) => break,
        }
        if buf.capacity() > 4 * READ_CHUNK {
            buf.shrink_to(READ_CHUNK);
        }
        if !reserved.resize(buf.allocated().saturating_sub(READ_CHUNK)) {
            // The node's buffers are full of other requests: this one does
            // not fit. Refuse it and free its memory; everyone else goes on.
            out.clear();
            Response::status(503, "server busy: request buffers full")
                .with_header("Retry-After", "1")
                .write_to(&mut out, false);
            let _ = stream.write_all(&out).await;
            break;
        }
    }
    let _ = stream.close().await;
    ShardGauges::decr(&gauges.http_connections);
}
