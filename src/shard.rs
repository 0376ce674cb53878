//! The per-core state a shard owns.
//!
//! A [`Shard`] lives on one pinned executor behind an `Rc`: its services (and
//! through them its database pools), its configuration copy, its connection
//! registry, and the inbox through which the node's other shards reach it.
//! The only state shared across cores is [`NodeState`] ([`crate::node`]).

use crate::buffer::BufferBudget;
use crate::client_ip::TrustedProxies;
use crate::config::Config;
use crate::mesh::{Inbox, ShardMessage};
use crate::node::{NodeState, ShardGauges};
use crate::ops::Operations;
use crate::service::Services;
use futures_lite::StreamExt;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One core's share of the server.
pub struct Shard {
    /// Shard index, 0-based.
    pub id: usize,
    /// This shard's copy of the configuration.
    pub config: Rc<Config>,
    /// The service layer with this shard's stores (the business rules).
    pub services: Rc<Services>,
    /// What operators and the cluster ask of this shard, and its
    /// background tasks.
    pub ops: Rc<Operations>,
    /// State shared with the other shards.
    pub node: Arc<NodeState>,
    /// `http.trusted_proxies`, parsed once (validated when the file loaded).
    pub trusted_proxies: TrustedProxies,
    /// This shard's share of `node.max_buffered_bytes`.
    pub buffers: Rc<BufferBudget>,
    /// What the shard's multishot receive ring holds of `buffers`.
    _recv_ring: Option<crate::buffer::Reservation>,
    /// This shard's request counters and latency histograms.
    pub metrics: crate::metrics::Metrics,
    /// This shard's open TCP connections by role.
    pub tcp_roles: Rc<crate::service::connection_roles::TcpRoles>,
    stop: glommio::sync::Semaphore,
    connections: RefCell<HashMap<u64, Tracked>>,
    next_connection: Cell<u64>,
}

/// How often a shard looks for connections past their read deadline.
pub const REAP_EVERY: Duration = Duration::from_millis(50);

/// An open connection as the shard's registry sees it.
struct Tracked {
    fd: RawFd,
    deadline: Rc<Cell<Option<Instant>>>,
    expired: Rc<Cell<bool>>,
}

impl Shard {
    /// A shard with its services; not yet serving.
    pub fn new(id: usize, config: Rc<Config>, services: Services, node: Arc<NodeState>) -> Shard {
        let services = Rc::new(services);
        let ops = Rc::new(Operations::new(
            services.clone(),
            config.clone(),
            node.clone(),
            id,
        ));
        let trusted_proxies =
            TrustedProxies::parse(&config.http.trusted_proxies).unwrap_or_default();
        let shards = node.gauges.len().max(1);
        let buffers = BufferBudget::new(config.node.max_buffered_bytes / shards);
        let recv_ring = crate::recv_ring::configure(&config.node, &buffers);
        Shard {
            buffers,
            _recv_ring: recv_ring,
            trusted_proxies,
            id,
            config,
            services,
            ops,
            node,
            metrics: crate::metrics::Metrics::new(),
            tcp_roles: Rc::default(),
            stop: glommio::sync::Semaphore::new(0),
            connections: RefCell::new(HashMap::new()),
            next_connection: Cell::new(0),
        }
    }

    /// This shard's gauges.
    pub fn gauges(&self) -> &ShardGauges {
        &self.node.gauges[self.id]
    }

    /// Whether the shard is shutting down (listeners closed, draining).
    pub fn is_draining(&self) -> bool {
        self.ops.is_draining()
    }

    /// Resolves once draining has begun; accept loops race it.
    pub async fn stopped(&self) {
        let _ = self.stop.acquire(1).await;
    }

    /// Starts the drain: closes accept loops and shuts the read side of every
    /// open connection, so each finishes what it has read and then ends.
    pub fn begin_drain(&self) {
        if !self.ops.set_draining() {
            return;
        }
        self.stop.close();
        for t in self.connections.borrow().values() {
            // SAFETY: the fd belongs to a live connection registered below and
            // is removed from the map before that connection closes it.
            unsafe {
                libc::shutdown(t.fd, libc::SHUT_RD);
            }
        }
    }

    /// Publishes this shard's running totals (latency buckets, cache
    /// lookups) into its gauges once a heartbeat, for shard 0's node
    /// figures, until the shard drains.
    pub async fn publish_totals_forever(self: Rc<Self>) {
        let every = Duration::from_millis(self.config.cluster.heartbeat_ms.max(1));
        while !self.ops.stopping() {
            self.gauges().publish(&self.ops.totals(&self.metrics));
            glommio::timer::sleep(every).await;
        }
    }

    /// Ends connections that waited past their read deadline with nothing
    /// to read, forever, every [`REAP_EVERY`]: their pending read returns
    /// end-of-stream and [`ConnectionGuard::expired`] tells them why. One
    /// sweep per shard replaces a timer per read on the request path.
    pub async fn reap_expired_forever(self: Rc<Self>) {
        let mut probe = [0u8; 1];
        loop {
            glommio::timer::sleep(REAP_EVERY).await;
            let now = Instant::now();
            for t in self.connections.borrow().values() {
                if t.expired.get() || t.deadline.get().is_none_or(|d| d > now) {
                    continue;
                }
                // SAFETY: as in `begin_drain`; the probe is a non-blocking peek
                // into a local byte, which consumes nothing.
                let pending = unsafe {
                    libc::recv(
                        t.fd,
                        probe.as_mut_ptr().cast(),
                        1,
                        libc::MSG_PEEK | libc::MSG_DONTWAIT,
                    )
                };
                if pending > 0 {
                    // Data arrived: the connection's own deadline check decides.
                    continue;
                }
                t.expired.set(true);
                // SAFETY: as in `begin_drain`.
                unsafe {
                    libc::shutdown(t.fd, libc::SHUT_RD);
                }
            }
        }
    }

    /// Registers an open connection until the guard drops.
    pub fn track(self: &Rc<Self>, fd: RawFd) -> ConnectionGuard {
        let key = self.next_connection.get();
        self.next_connection.set(key + 1);
        let deadline = Rc::new(Cell::new(None));
        let expired = Rc::new(Cell::new(false));
        self.connections.borrow_mut().insert(
            key,
            Tracked {
                fd,
                deadline: deadline.clone(),
                expired: expired.clone(),
            },
        );
        if self.is_draining() {
            // SAFETY: as in `begin_drain`.
            unsafe {
                libc::shutdown(fd, libc::SHUT_RD);
            }
        }
        ConnectionGuard {
            shard: self.clone(),
            key,
            deadline,
            expired,
        }
    }

    /// This shard's metric samples: requests, connections, and the
    /// service layer's cache and backend figures.
    pub fn metric_samples(&self) -> Vec<crate::metrics::Sample> {
        use crate::metrics::Sample;
        use std::sync::atomic::Ordering::Relaxed;
        let mut out = self.metrics.samples(self.id);
        let g = self.gauges();
        for (protocol, open) in [("http", &g.http_connections), ("tcp", &g.tcp_connections)] {
            out.push(Sample {
                name: "dm_open_connections",
                labels: format!("shard=\"{}\",protocol=\"{protocol}\"", self.id),
                value: open.load(Relaxed) as f64,
            });
        }
        out.extend(self.tcp_roles.samples(self.id));
        out.extend(self.ops.backend_samples(self.id));
        out
    }

    /// Every shard's metric samples, asking the others over the mesh.
    pub async fn node_metric_samples(&self) -> Vec<crate::metrics::Sample> {
        let mut samples = self.metric_samples();
        samples.extend(self.services.peers().metric_samples().await);
        samples
    }

    /// Applies messages from the node's other shards for as long as the node runs.
    pub fn serve_inbox(self: &Rc<Self>, inbox: Inbox) {
        for mut stream in inbox.into_streams() {
            let shard = self.clone();
            glommio::spawn_local(async move {
                while let Some(msg) = stream.next().await {
                    match msg {
                        ShardMessage::Revoke {
                            sessions,
                            until_s,
                            ack,
                        } => {
                            shard.services.apply_revocation(sessions, until_s);
                            if let Some(a) = ack {
                                let _ = a.send(());
                            }
                        }
                        ShardMessage::Invalidate { change, ack } => {
                            shard.services.apply_change(&change);
                            if let Some(a) = ack {
                                let _ = a.send(());
                            }
                        }
                        ShardMessage::BusState(up) => shard.services.cache().set_bus_healthy(up),
                        ShardMessage::Maintenance(games) => shard.services.set_maintenance(games),
                        ShardMessage::Lease {
                            key,
                            want,
                            per_min,
                            reply,
                        } => {
                            let grant =
                                shard
                                    .services
                                    .limiter()
                                    .grant(&key, want, per_min, Instant::now());
                            let _ = reply.send(grant);
                        }
                        ShardMessage::Failure {
                            key,
                            per_min,
                            op,
                            reply,
                        } => {
                            let _ =
                                reply.send(shard.services.failure_budget_here(&key, per_min, op));
                        }
                        ShardMessage::KnownAddress {
                            account,
                            client,
                            remember,
                            reply,
                        } => {
                            let _ = reply.send(
                                shard
                                    .services
                                    .known_address_here(&account, client, remember),
                            );
                        }
                        ShardMessage::Deliver(deliveries) => {
                            shard.services.deliver_here(&deliveries)
                        }
                        ShardMessage::Presence {
                            game,
                            player_id,
                            reply,
                        } => {
                            let hub = shard.services.sockets();
                            let _ = reply.send((
                                hub.is_online(&game, player_id),
                                hub.last_seen(&game, player_id),
                            ));
                        }
                        ShardMessage::OnlinePlayers { game, reply } => {
                            let _ = reply.send(shard.services.sockets().online_players(&game));
                        }
                        ShardMessage::BoardView {
                            key,
                            sort,
                            op,
                            reply,
                        } => {
                            // A view may be loading: answer from a task of
                            // its own, not from the inbox.
                            let services = shard.services.clone();
                            glommio::spawn_local(async move {
                                let _ = reply.send(services.ask_local_view(key, sort, op).await);
                            })
                            .detach();
                        }
                        ShardMessage::ForgetBoardViews {
                            game,
                            board,
                            first_kept,
                            ack,
                        } => {
                            shard
                                .services
                                .forget_board_views_here(&game, &board, first_kept);
                            if let Some(a) = ack {
                                let _ = a.send(());
                            }
                        }
                        ShardMessage::CacheStats(reply) => {
                            let _ = reply.send(shard.ops.cache_stats(shard.id));
                        }
                        ShardMessage::Metrics(reply) => {
                            let _ = reply.send(shard.metric_samples());
                        }
                    }
                }
            })
            .detach();
        }
    }

    /// Connections still open on this shard.
    pub fn live_connections(&self) -> usize {
        self.connections.borrow().len()
    }
}

/// Accepts connections on `listener` until the shard drains, running
/// `serve` for each on this shard. `name` labels accept errors in the log.
pub async fn accept_until_drained<F, Fut>(
    shard: Rc<Shard>,
    listener: glommio::net::TcpListener,
    name: &'static str,
    serve: F,
) where
    F: Fn(Rc<Shard>, glommio::net::TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            shard.stopped().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok(stream)) => {
                glommio::spawn_local(serve(shard.clone(), stream)).detach();
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, listener = name, "accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
    // Connections the kernel has already accepted into the backlog would be
    // reset when the listener closes. Take them; `track` shuts their read
    // side (the shard drains), so each answers what it sent and ends like
    // every other connection: HTTP with `Connection: close`, TCP with Error
    // 0xE006.
    for fd in backlog(&listener) {
        // SAFETY: `fd` is a connected socket accept4 just returned to us;
        // the stream takes sole ownership of it.
        let stream =
            unsafe { <glommio::net::TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        glommio::spawn_local(serve(shard.clone(), stream)).detach();
    }
}

/// The connections waiting in `listener`'s backlog, accepted without
/// waiting (the listener is switched to non-blocking: it is about to close).
/// At most 4096, the backlog nginx and the config ask for.
fn backlog(listener: &glommio::net::TcpListener) -> Vec<RawFd> {
    use std::os::fd::AsRawFd;
    let fd = listener.as_raw_fd();
    let mut taken = Vec::new();
    // SAFETY: fcntl and accept4 on the listener's own open fd; null address
    // pointers ask for no peer address.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return taken;
        }
        while taken.len() < 4096 {
            let c = libc::accept4(
                fd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            );
            if c < 0 {
                break;
            }
            taken.push(c);
        }
    }
    taken
}

/// Keeps a connection in its shard's registry while alive.
pub struct ConnectionGuard {
    shard: Rc<Shard>,
    key: u64,
    deadline: Rc<Cell<Option<Instant>>>,
    expired: Rc<Cell<bool>>,
}

impl ConnectionGuard {
    /// The connection must have read something by `at`.
    pub fn set_deadline(&self, at: Instant) {
        self.deadline.set(Some(at));
    }

    /// Whether the shard ended the connection's wait because the deadline passed.
    pub fn expired(&self) -> bool {
        self.expired.get()
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.shard.connections.borrow_mut().remove(&self.key);
    }
}
