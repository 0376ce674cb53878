//! The HTTP listener of one shard and its connections' codec: the shared
//! connection loop (`crate::connection`) reads; `Requests` parses every
//! complete (possibly pipelined) request and answers them in order into one
//! write buffer, which the loop flushes once per batch.

use super::handlers;
use super::health::HealthBody;
use super::request::{self, Limits, Parsed, Request};
use super::response::Response;
use crate::connection::{self, Batch, Buffers, Codec, Refusal, READ_CHUNK};
use crate::logging::{RequestId, Tagged};
use crate::node::ShardGauges;
use crate::realtime::{self, upgrade, upgrade::Upgrade};
use crate::shard::Shard;
use glommio::net::{TcpListener, TcpStream};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

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

async fn connection(shard: Rc<Shard>, health: Rc<HealthBody>, stream: TcpStream) {
    let gauges = shard.gauges();
    ShardGauges::incr(&gauges.http_connections);
    let buffers = Buffers {
        first: READ_CHUNK,
        idle_read: READ_CHUNK,
    };
    let open = |stream: &TcpStream| Requests::open(&shard, health, stream);
    if let Some(switched) = connection::run(shard.clone(), stream, open, buffers).await {
        if let Some(upgrade) = switched.codec.upgrade {
            // A task of its own, sized to the WebSocket loop: this one's
            // room (the HTTP loop's state) is freed while the socket lives.
            let (stream, rest) = (switched.stream, switched.rest);
            glommio::spawn_local(async move {
                realtime::socket::run(shard.clone(), stream, rest, upgrade).await;
                ShardGauges::decr(&shard.gauges().http_connections);
            })
            .detach();
            return;
        }
    }
    ShardGauges::decr(&gauges.http_connections);
}

/// HTTP/1.1 as the connection loop sees it: pipelined requests in,
/// responses out in order, a read deadline that starts again with every
/// answered request, and status lines as refusals.
struct Requests {
    shard: Rc<Shard>,
    health: Rc<HealthBody>,
    peer: IpAddr,
    limits: Limits,
    timeout: Duration,
    deadline: Instant,
    /// A `100 Continue` went out for the request being received.
    sent_continue: bool,
    /// `GET /ws` switched the connection to WebSocket.
    upgrade: Option<Upgrade>,
}

impl Requests {
    /// The codec of a new connection on `stream`.
    fn open(shard: &Rc<Shard>, health: Rc<HealthBody>, stream: &TcpStream) -> Requests {
        let timeout = Duration::from_millis(shard.config.http.read_timeout_ms);
        let _ = stream.set_write_timeout(Some(timeout));
        let peer = stream
            .peer_addr()
            .map(|a| a.ip())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        Requests {
            limits: Limits {
                max_header_bytes: shard.config.http.max_header_bytes,
                max_body_bytes: shard.config.http.max_body_bytes,
            },
            shard: shard.clone(),
            health,
            peer,
            timeout,
            deadline: Instant::now() + timeout,
            sent_continue: false,
            upgrade: None,
        }
    }
}

impl Codec for Requests {
    async fn answer(&mut self, input: &[u8], out: &mut Vec<u8>) -> Batch {
        let shard = self.shard.clone();
        let access_log = shard.config.log.access;
        let mut pos = 0;
        while pos < input.len() {
            match request::parse(&input[pos..], &self.limits) {
                Parsed::Complete { request, len } if request.path == upgrade::PATH => {
                    pos += len;
                    match upgrade::accept(&shard, &request, self.peer, out).await {
                        Ok(up) => {
                            self.upgrade = Some(up);
                            return Batch {
                                used: pos,
                                close: true,
                            };
                        }
                        Err(refused) => {
                            refused.write_to(out, false);
                            return Batch {
                                used: pos,
                                close: true,
                            };
                        }
                    }
                }
                Parsed::Complete { request, len } => {
                    let started = access_log.then(Instant::now);
                    let id = request_id(&request);
                    let handling = handlers::handle(&shard, &self.health, &request, self.peer);
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
                        log_access(&request, response.status, t0.elapsed(), self.peer, tag);
                    }
                    let keep_alive = request.keep_alive && !shard.is_draining();
                    response.write_to(out, keep_alive);
                    ShardGauges::incr(&shard.gauges().http_requests);
                    pos += len;
                    self.sent_continue = false;
                    self.deadline = Instant::now() + self.timeout;
                    if !keep_alive || response.close {
                        return Batch {
                            used: pos,
                            close: true,
                        };
                    }
                }
                Parsed::Partial { expect_continue } => {
                    if expect_continue && !self.sent_continue {
                        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                        self.sent_continue = true;
                    }
                    break;
                }
                Parsed::Refused { status, message } => {
                    Response::status(status, message).write_to(out, false);
                    return Batch {
                        used: pos,
                        close: true,
                    };
                }
            }
        }
        Batch {
            used: pos,
            close: false,
        }
    }

    fn deadline(&self) -> Instant {
        self.deadline
    }

    fn on_read(&mut self) {}

    fn hands_over(&self) -> bool {
        self.upgrade.is_some()
    }

    fn refuse(&self, why: Refusal, pending: bool, out: &mut Vec<u8>) {
        match why {
            // A connection idle between requests just closes.
            Refusal::Timeout if pending => {
                Response::status(408, "request not received in time").write_to(out, false)
            }
            Refusal::Timeout | Refusal::Draining => {}
            Refusal::Busy => Response::status(503, "server busy: request buffers full")
                .with_header("Retry-After", "1")
                .write_to(out, false),
        }
    }
}
