//! Starts the node: one glommio executor per shard — pinned to its own core
//! with `node.pin = true`, else placed by the OS — each binding
//! its own SO_REUSEPORT listeners for HTTP and TCP. The
//! main thread only waits for signals and for the shards to finish.
//!
//! Shutdown (SIGTERM/SIGINT): the signal thread sets the node's shutdown flag;
//! every shard notices it within 20 ms (`POLL`), makes `/ready` answer 503, closes
//! its listeners, shuts the read side of its connections (TCP clients get an
//! Error 0xE006 frame), lets in-flight requests finish for at most
//! `node.shutdown_grace_ms`, and returns. SIGHUP re-reads the configuration
//! file and applies its hot settings (log level, per-IP rate limit); a file
//! that does not validate is refused and logged, and the old settings stay.
//!
//! Under systemd (`Type=notify`, the notify module): READY=1 once every shard
//! has bound its listeners (the databases were migrated before the shards
//! started), STOPPING=1 from the signal thread as the drain begins, and, when
//! the unit sets `WatchdogSec`, WATCHDOG=1 from the main thread — which
//! otherwise only waits — each half interval, only while every shard's
//! executor keeps beating.

use crate::cluster::registry::ClaimError;
use crate::config::Config;
use crate::logging::LogReload;
use crate::mesh::{self, Peers};
use crate::node::{FileSettings, NodeState};
use crate::notify::{self, Notifier, Verdict, Watchdog};
use crate::service::hashing::PasswordHasher;
use crate::service::revocations::RevocationList;
use crate::service::{auth, items, Services, ShardLinks};
use crate::shard::Shard;
use crate::{http, store, tcp};
use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How often a shard looks at the node's shutdown flag.
const POLL: Duration = Duration::from_millis(20);

/// A failure to start, with a message for the operator.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Runs the node until a shutdown signal; returns when every shard stopped.
pub fn run(config: Config, config_path: Option<String>, log: LogReload) -> Result<(), StartError> {
    let notifier = Arc::new(Notifier::from_env());
    let result = serve(config, config_path, log, &notifier);
    match &result {
        Ok(()) => notifier.status("stopped"),
        Err(e) => notifier.status(&format!("start-up failed: {e}")),
    }
    result
}

fn serve(
    mut config: Config,
    config_path: Option<String>,
    log: LogReload,
    notifier: &Arc<Notifier>,
) -> Result<(), StartError> {
    if config.auth.jwt_secret.is_empty() {
        // Dev mode only (validation refuses it in prod): one secret per start,
        // shared by every shard so any shard verifies any shard's token.
        config.auth.jwt_secret = auth::random_hex(32);
    }
    if config.admins.is_empty() {
        tracing::warn!(
            "no admin account is configured: admin sign-in (the console, POST /api/v1/auth/admin) \
             refuses every name; add [admins.<name>] password_hash to the config or set \
             DM_ADMINS_<NAME>_PASSWORD_HASH (datamiddleware hash-password makes one)"
        );
    }
    notifier.status("starting: preparing databases");
    let revoked = prepare_databases(&config)?;
    let cores: Vec<usize> = core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![0]);
    // The CPUs this process may really use (affinity and cgroup quota):
    // shards and the hashing pool follow it, not the host's core count.
    let usable = crate::host::usable_cpus();
    let shards = if config.node.shards == 0 {
        usable.count
    } else {
        config.node.shards
    };
    tracing::info!(
        shards,
        usable_cpus = usable.count,
        from = %usable.source,
        configured = config.node.shards,
        "shards: {} ({})",
        shards,
        if config.node.shards == 0 { format!("node.shards = 0: one per usable CPU, from the {}", usable.source) } else { "node.shards".to_string() }
    );
    let node = Arc::new(NodeState::new(shards, FileSettings::of(&config)));
    let dummy_hash: Arc<str> = auth::hash_password("dummy-password-for-timing")
        .map_err(|e| StartError(format!("cannot hash: {e}")))?
        .into();
    let hash_threads = match config.auth.hash_threads {
        0 => usable.count,
        n => n,
    };
    let hasher = PasswordHasher::start(hash_threads, config.auth.hash_queue).map_err(StartError)?;
    let watchdog = notify::watchdog_from_env(notifier);
    let beat = watchdog.as_ref().map(Watchdog::beat);
    let centre_log = log.clone();
    let signals = spawn_signal_thread(
        node.clone(),
        config_path,
        log,
        notifier.clone(),
        config.node.shutdown_grace_ms,
    )?;
    let meshes = mesh::builder(shards);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<usize, String>>();
    let mut handles = Vec::new();
    for id in 0..shards {
        let cfg = config.clone();
        let node = node.clone();
        let ready = ready_tx.clone();
        let dummy = dummy_hash.clone();
        let revoked = revoked.clone();
        let mesh = meshes.clone();
        let hasher = hasher.clone();
        let log = centre_log.clone();
        let placement = if config.node.pin {
            Placement::Fixed(cores[id % cores.len()])
        } else {
            Placement::Unbound
        };
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{id}"))
            .blocking_thread_pool_placement(PoolPlacement::Unbound(config.node.blocking_threads))
            .spawn(move || async move {
                crate::logging::set_thread_shard(id);
                let start = ShardStart {
                    id,
                    config: cfg,
                    node,
                    ready,
                    dummy_hash: dummy,
                    revoked,
                    mesh,
                    hasher,
                    beat,
                    log,
                };
                shard_main(start).await
            })
            .map_err(|e| StartError(format!("cannot start shard {id}: {e}")))?;
        handles.push(handle);
    }
    drop(ready_tx);
    let mut failure = None;
    for _ in 0..shards {
        match ready_rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(_) => {
                failure.get_or_insert("a shard exited during start-up".to_string());
            }
        }
    }
    if let Some(e) = failure {
        node.shutting_down.store(true, Ordering::Relaxed);
        for h in handles {
            let _ = h.join();
        }
        return Err(StartError(e));
    }
    // Only now does `/ready` say so: every shard listens, so a balancer
    // (or a test) that waits for it spreads connections over all of them.
    node.serving.store(true, Ordering::Relaxed);
    tracing::info!(
        shards,
        http = %config.http.listen,
        tcp = %config.tcp.listen,
        node = %config.node.id,
        "datamiddleware ready"
    );
    notifier.ready(&format!(
        "serving: {shards} shards, http {}, tcp {}, node {}",
        config.http.listen, config.tcp.listen, config.node.id
    ));
    if let Some(dog) = watchdog {
        // Each shard drops its ready sender when it finishes, so the channel
        // disconnects once every shard has stopped.
        keep_watchdog(dog, notifier, &node, &ready_rx);
    }
    for h in handles {
        let _ = h.join();
    }
    signals.close();
    tracing::info!("datamiddleware stopped");
    Ok(())
}

/// Migrates every game's database, seeds its catalogue, and returns the
/// sessions revoked recently enough that their access tokens still live.
fn prepare_databases(config: &Config) -> Result<Vec<String>, StartError> {
    let since = crate::clock::now_ms() - (config.auth.access_ttl_s as i64 + 1) * 1000;
    let mut revoked = Vec::new();
    for (id, game) in &config.games {
        let s = store::open(&game.url, 1, game.durability)
            .map_err(|e| StartError(format!("game {id}: cannot open {}: {e}", game.url)))?;
        let version = s
            .migrate()
            .map_err(|e| StartError(format!("game {id}: migration failed: {e}")))?;
        s.check_durability()
            .map_err(|e| StartError(format!("game {id}: key `games.{id}.durability`: {e}")))?;
        let seed: Vec<_> = config
            .item_seed(id)
            .map_err(|e| StartError(e.to_string()))?
            .iter()
            .map(items::seed_def)
            .collect();
        let seeded = s
            .seed_item_defs(&seed)
            .map_err(|e| StartError(format!("game {id}: catalogue seed failed: {e}")))?;
        revoked.extend(
            s.revoked_sessions_since(since)
                .map_err(|e| StartError(format!("game {id}: {e}")))?,
        );
        tracing::info!(game = %id, schema_version = version, items_seeded = seeded, "database ready");
    }
    Ok(revoked)
}

use mesh::ShardMesh;

/// Keeps this shard's Redis link honest: checks it with a PING at start and
/// once a heartbeat (so `dm_backend_up` and `/ready` speak for a shard that
/// has had no request touching Redis yet, or none for a while), and every
/// 100 ms sends again the invalidations Redis did not take (see
/// `Cache::resend_unsent`), until the shard drains.
async fn watch_l2_forever(shard: Rc<Shard>) {
    let check_every = Duration::from_millis(shard.config.cluster.heartbeat_ms.max(100));
    let mut last_check: Option<std::time::Instant> = None;
    while !shard.is_draining() {
        if last_check.is_none_or(|t| t.elapsed() >= check_every) {
            last_check = Some(std::time::Instant::now());
            // The outcome is kept by the link itself (`is_up`); a failure is
            // logged there once, when the link goes down.
            let _ = shard.services.cache().l2_ping().await;
        }
        if shard.services.cache().has_unsent() {
            let sent = shard.services.cache().resend_unsent().await;
            if sent > 0 {
                tracing::info!(sent, "invalidations sent to Redis after it came back");
            }
        }
        glommio::timer::sleep(Duration::from_millis(100)).await;
    }
}

/// Shard 0's subscription to the invalidation channel: applies other nodes'
/// invalidations on every shard, and tells every shard whether the channel
/// is up (while it is down, L1 entries are trusted only briefly).
async fn invalidation_subscriber(shard: Rc<Shard>) {
    let Ok(target) = crate::redis::link::RedisTarget::parse(&shard.config.cache.redis) else {
        return;
    };
    let node_id = shard.config.node.id.clone();
    let (events_tx, events_rx) = futures_channel::mpsc::unbounded::<crate::cache::Change>();
    let on_message = move |payload: Vec<u8>| {
        if let Some((from, change)) = crate::cache::decode_message(&payload) {
            if from != node_id {
                let _ = events_tx.unbounded_send(change);
            }
        }
    };
    let state_shard = shard.clone();
    let on_state = move |up: bool| {
        state_shard.services.cache().set_bus_healthy(up);
        let s = state_shard.clone();
        glommio::spawn_local(async move {
            s.services
                .peers()
                .broadcast(false, |_| mesh::ShardMessage::BusState(up))
                .await;
        })
        .detach();
    };
    let apply_shard = shard.clone();
    glommio::spawn_local(async move {
        use futures_lite::StreamExt;
        let mut rx = events_rx;
        while let Some(change) = rx.next().await {
            apply_shard.services.apply_change(&change);
            apply_shard
                .services
                .peers()
                .broadcast(false, |ack| mesh::ShardMessage::Invalidate {
                    change: change.clone(),
                    ack,
                })
                .await;
        }
    })
    .detach();
    crate::redis::link::subscribe_forever(
        target,
        crate::cache::CHANNEL.to_string(),
        on_message,
        on_state,
    )
    .await;
}

/// How often shard 0 looks for sessions revoked on other nodes.
const REVOCATION_POLL: Duration = Duration::from_millis(500);

/// How far before the last successful look each look reaches back: covers
/// clock differences between nodes and replication delay. Sessions already
/// refused here are skipped, so the overlap costs nothing but the query.
const REVOCATION_LOOKBACK_MS: i64 = 5_000;

/// Shard 0 of every node: picks up revocations written to the databases by
/// any node, so a logout on one node is refused on every node within about
/// [`REVOCATION_POLL`] — with or without Redis, and across Redis outages.
async fn follow_revocations(shard: Rc<Shard>) {
    // Older revocations concern tokens that have expired anyway.
    let token_life_ms = shard.config.auth.access_ttl_s as i64 * 1000;
    let mut last_ok = crate::clock::now_ms();
    while !shard.is_draining() {
        glommio::timer::sleep(REVOCATION_POLL).await;
        let started = crate::clock::now_ms();
        let since = (last_ok - REVOCATION_LOOKBACK_MS).max(started - token_life_ms);
        match shard.services.adopt_revocations(since).await {
            Ok(n) => {
                last_ok = started;
                if n > 0 {
                    tracing::debug!(sessions = n, "revocations adopted from the databases");
                }
            }
            Err(e) => tracing::debug!(error = %e.message, "revocations not read; will retry"),
        }
    }
}

/// Everything a shard starts from.
struct ShardStart {
    id: usize,
    config: Config,
    node: Arc<NodeState>,
    ready: mpsc::Sender<Result<usize, String>>,
    dummy_hash: Arc<str>,
    revoked: Vec<String>,
    mesh: Option<ShardMesh>,
    hasher: PasswordHasher,
    /// How often to bump the shard's watchdog beat; `None`: no watchdog.
    beat: Option<Duration>,
    /// The log level handle the config centre sets (shard 0).
    log: LogReload,
}

async fn shard_main(start: ShardStart) {
    let ShardStart {
        id,
        config,
        node,
        ready,
        dummy_hash,
        revoked,
        mesh,
        hasher,
        beat,
        log,
    } = start;
    let config = Rc::new(config);
    let until = crate::clock::now_s() + config.auth.access_ttl_s as i64 + 1;
    let revocations = Rc::new(RevocationList::new(revoked, until));
    let (peers, inbox) = match Peers::join(mesh).await {
        Ok(p) => p,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let links = ShardLinks {
        jwt_secret: config.auth.jwt_secret.as_bytes().to_vec(),
        dummy_hash: Rc::from(&*dummy_hash),
        revocations,
        peers,
        hasher,
        shard: id,
        node: node.clone(),
    };
    let setup = (|| {
        let services =
            Services::open(config.clone(), links).map_err(|e| format!("shard {id}: {e}"))?;
        let http_addr = config.http_addr().map_err(|e| e.to_string())?;
        let tcp_addr = config.tcp_addr().map_err(|e| e.to_string())?;
        let http = glommio::net::TcpListener::bind(http_addr)
            .map_err(|e| format!("cannot listen on http.listen {http_addr}: {e}"))?;
        let tcp = glommio::net::TcpListener::bind(tcp_addr)
            .map_err(|e| format!("cannot listen on tcp.listen {tcp_addr}: {e}"))?;
        Ok::<_, String>((services, http, tcp))
    })();
    let (services, http_listener, tcp_listener) = match setup {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let shard = Rc::new(Shard::new(id, config.clone(), services, node.clone()));
    if id == 0 {
        if let Some(registry) = shard.services.registry() {
            let me = crate::cluster::announcement(&config, &node, 0);
            match registry.claim(&me).await {
                Ok(()) => {}
                Err(ClaimError::Taken(e)) => {
                    let _ = ready.send(Err(e));
                    return;
                }
                Err(ClaimError::Unreachable(e)) => tracing::warn!(
                    error = %e,
                    "cluster registry unreachable: starting without the duplicate node id check"
                ),
            }
        }
    }
    shard.serve_inbox(inbox);
    if let Some(every) = beat {
        glommio::spawn_local(beat_forever(node.clone(), id, every)).detach();
    }
    glommio::spawn_local(shard.clone().reap_expired_forever()).detach();
    glommio::spawn_local(publish_totals_forever(shard.clone())).detach();
    if id == 0 {
        glommio::spawn_local(follow_revocations(shard.clone())).detach();
        glommio::spawn_local(announce_forever(shard.clone())).detach();
        glommio::spawn_local(run_singleton_jobs(shard.clone())).detach();
        glommio::spawn_local(follow_config_centre(shard.clone(), log)).detach();
    }
    if id == 0 && !config.cache.redis.is_empty() {
        glommio::spawn_local(invalidation_subscriber(shard.clone())).detach();
    }
    if !config.cache.redis.is_empty() {
        glommio::spawn_local(watch_l2_forever(shard.clone())).detach();
    }
    if id == 0 && !config.cluster.redis.is_empty() {
        glommio::spawn_local(revocation_subscriber(shard.clone())).detach();
    }
    for game in shard.services.games() {
        if game.store.has_replicas() {
            glommio::spawn_local(game.store.clone().probe_forever()).detach();
            if id == 0 {
                glommio::spawn_local(game.store.clone().beat_forever()).detach();
            }
        }
    }
    let http_task = glommio::spawn_local(http::server::serve(shard.clone(), http_listener));
    let tcp_task = glommio::spawn_local(tcp::connection::serve(shard.clone(), tcp_listener));
    let _ = ready.send(Ok(id));
    while !node.is_shutting_down() {
        glommio::timer::sleep(POLL).await;
    }
    shard.begin_drain();
    if id == 0 {
        // A draining node leaves the registry at once.
        if let Some(registry) = shard.services.registry() {
            if let Err(e) = registry.withdraw(&node.instance).await {
                tracing::warn!(error = %e, "could not leave the cluster registry");
            }
        }
    }
    http_task.await;
    tcp_task.await;
    let grace = Instant::now() + Duration::from_millis(config.node.shutdown_grace_ms);
    while shard.live_connections() > 0 && Instant::now() < grace {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    // Stay up for the peers: their in-flight requests may still message us.
    node.shards_draining.fetch_sub(1, Ordering::Relaxed);
    while node.shards_draining.load(Ordering::Relaxed) > 0 && Instant::now() < grace {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    if shard.live_connections() > 0 {
        tracing::warn!(
            shard = id,
            open = shard.live_connections(),
            "grace period over; closing remaining connections"
        );
    }
    // Tells the main thread (its watchdog loop) that this shard is done.
    drop(ready);
}

/// While the systemd watchdog is on: counts this shard's timer ticks, run by
/// its own executor, so the main thread pings only while the shard runs.
/// Ends with the shard's executor.
async fn beat_forever(node: Arc<NodeState>, id: usize, every: Duration) {
    loop {
        if let Some(g) = node.gauges.get(id) {
            g.beats.fetch_add(1, Ordering::Relaxed);
        }
        glommio::timer::sleep(every).await;
    }
}

/// The main thread from READY=1 until every shard has stopped (draining
/// included): sends WATCHDOG=1 every half interval while every shard's
/// beat count moves, and withholds it — saying so once per stall — while
/// one does not, so systemd restarts a node with a wedged shard.
fn keep_watchdog(
    mut dog: Watchdog,
    notifier: &Notifier,
    node: &NodeState,
    shards_running: &mpsc::Receiver<Result<usize, String>>,
) {
    let beats = || -> Vec<u64> {
        node.gauges
            .iter()
            .map(|g| g.beats.load(Ordering::Relaxed))
            .collect()
    };
    dog.start(Instant::now(), &beats());
    loop {
        match shards_running.recv_timeout(dog.beat()) {
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        match dog.check(Instant::now(), &beats()) {
            Verdict::Ping => notifier.watchdog(),
            Verdict::Wait => {}
            Verdict::Stalled(shard) => tracing::warn!(
                shard,
                period_ms = dog.period().as_millis() as u64,
                "shard made no progress for a watchdog period; withholding WATCHDOG=1"
            ),
        }
    }
}

/// Shard 0's subscription to the revocations other nodes push: each is
/// applied on every shard of this node as it arrives.
async fn revocation_subscriber(shard: Rc<Shard>) {
    use crate::cluster::registry::{PushedRevocation, REVOCATIONS};
    let Ok(target) = crate::redis::link::RedisTarget::parse(&shard.config.cluster.redis) else {
        return;
    };
    let node_id = shard.config.node.id.clone();
    let (tx, rx) = futures_channel::mpsc::unbounded::<PushedRevocation>();
    let on_message = move |payload: Vec<u8>| {
        if let Ok(r) = serde_json::from_slice::<PushedRevocation>(&payload) {
            if r.node != node_id {
                let _ = tx.unbounded_send(r);
            }
        }
    };
    let apply = shard.clone();
    glommio::spawn_local(async move {
        use futures_lite::StreamExt;
        let mut rx = rx;
        while let Some(r) = rx.next().await {
            apply
                .services
                .refuse_on_this_node(&r.sessions, r.until_s, false)
                .await;
        }
    })
    .detach();
    crate::redis::link::subscribe_forever(target, REVOCATIONS.to_string(), on_message, |_| {})
        .await;
}

/// Shard 0's reading of the config centre (with `cluster.redis`): every
/// half second, the hot settings in force become the centre's value where
/// it sets one and the file's otherwise, on every shard, until the node
/// drains.
async fn follow_config_centre(shard: Rc<Shard>, log: LogReload) {
    use crate::cluster::settings::POLL;
    let Some(registry) = shard.services.registry() else {
        return;
    };
    let node = &shard.node;
    let mut maintenance = None;
    let mut failing = false;
    while !shard.is_draining() && !node.is_shutting_down() {
        match registry.read_settings().await {
            Ok(doc) => {
                failing = false;
                let s = doc.settings;
                let file = match node.file.lock() {
                    Ok(f) => f.clone(),
                    Err(_) => return,
                };
                let effective = FileSettings {
                    requests_per_ip: s.rate_limit_per_ip_per_min.unwrap_or(file.requests_per_ip),
                    failures_per_ip: s
                        .failed_logins_per_ip_per_min
                        .unwrap_or(file.failures_per_ip),
                    failures_per_user: s
                        .failed_logins_per_user_per_min
                        .unwrap_or(file.failures_per_user),
                    log_level: s.log_level.clone().unwrap_or(file.log_level),
                };
                node.limits.set(&effective);
                // Every time: SIGHUP may have put the file's level back.
                log.set_level(&effective.log_level);
                if maintenance.as_ref() != Some(&s.maintenance) {
                    shard.services.set_maintenance(s.maintenance.clone());
                    let games = s.maintenance.clone();
                    shard
                        .services
                        .peers()
                        .broadcast(false, |_| mesh::ShardMessage::Maintenance(games.clone()))
                        .await;
                    tracing::info!(version = doc.version, games = ?s.maintenance.keys().collect::<Vec<_>>(), "cluster settings applied");
                    maintenance = Some(s.maintenance);
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "config centre unreadable; keeping the settings in force");
            }
            Err(_) => {}
        }
        glommio::timer::sleep(POLL).await;
    }
}

/// Shard 0's singleton jobs (SPEC §7): every `cluster.job_interval_ms`,
/// for each job, takes or renews its lease in Redis (with `cluster.redis`)
/// and, while this node holds it, runs the job on every game's database
/// under the lease's fencing token. The database refuses the write once a
/// newer holder has written with a newer token, so a holder paused past its
/// lease (GC, SIGSTOP) cannot act after its successor: no clock is trusted.
/// A refused holder raises the token counter past the database's and gives
/// up its lease (`Registry::yield_stale_lease`), so jobs resume when Redis
/// lost its counter. A stand-alone node runs the jobs itself without a lease,
/// unless a cluster's holder ran them on the same database within a minute.
async fn run_singleton_jobs(shard: Rc<Shard>) {
    use crate::store::{FencedJob, FencedRun};
    let cfg = shard.config.clone();
    let every = Duration::from_millis(cfg.cluster.job_interval_ms);
    let lease = Duration::from_millis(cfg.cluster.job_lease_ms);
    let delay = Duration::from_millis(cfg.cluster.job_write_delay_ms);
    let holder = format!("{}/{}", cfg.node.id, shard.node.instance);
    let pending_ttl_ms = (cfg.orders.pending_ttl_s as i64).saturating_mul(1000);
    let token_life_ms = (cfg.auth.access_ttl_s as i64 + 60).saturating_mul(1000);
    let mut failing = false;
    loop {
        glommio::timer::sleep(every).await;
        if shard.is_draining() || shard.node.is_shutting_down() {
            return;
        }
        let now = crate::clock::now_ms();
        let jobs = [
            FencedJob::ExpireOrders {
                created_before_ms: now.saturating_sub(pending_ttl_ms),
            },
            FencedJob::PurgeSessions {
                expired_before_ms: now,
                revoked_before_ms: now.saturating_sub(token_life_ms),
            },
        ];
        for job in jobs {
            let registry = shard.services.registry();
            let token = match registry {
                None => None,
                Some(registry) => match registry.lease(job.name(), &holder, lease).await {
                    Ok(Some(token)) => {
                        failing = false;
                        Some(token)
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        if !failing {
                            tracing::warn!(error = %e, "cannot take singleton job leases; jobs wait for Redis");
                        }
                        failing = true;
                        continue;
                    }
                },
            };
            if !delay.is_zero() {
                glommio::timer::sleep(delay).await;
            }
            for game in shard.services.games() {
                let (who, at) = (holder.clone(), crate::clock::now_ms());
                let ran = game
                    .store
                    .run(move |s| s.run_fenced(job, token, &who, at))
                    .await;
                match ran {
                    Ok(FencedRun::Ran(0)) | Ok(FencedRun::ClusterActive) => {}
                    Ok(FencedRun::Ran(affected)) => {
                        tracing::info!(job = job.name(), game = %game.id, token, affected, "singleton job ran")
                    }
                    Ok(FencedRun::Stale { newer }) => {
                        tracing::warn!(
                            job = job.name(),
                            game = %game.id,
                            token,
                            newer,
                            "fencing token stale: a newer holder runs this job; write refused"
                        );
                        if let Some(registry) = registry {
                            if let Err(e) =
                                registry.yield_stale_lease(job.name(), &holder, newer).await
                            {
                                tracing::warn!(job = job.name(), error = %e, "cannot give up a stale job lease");
                            }
                        }
                        // The other games wait for the next lease and token.
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(job = job.name(), game = %game.id, error = %e, "singleton job failed")
                    }
                }
            }
        }
    }
}

/// Publishes this shard's running totals (latency buckets, cache lookups)
/// into its gauges once a heartbeat, for shard 0's node figures.
async fn publish_totals_forever(shard: Rc<Shard>) {
    let every = Duration::from_millis(shard.config.cluster.heartbeat_ms.max(1));
    while !shard.is_draining() && !shard.node.is_shutting_down() {
        shard
            .gauges()
            .publish(&shard.services.totals(&shard.metrics));
        glommio::timer::sleep(every).await;
    }
}

/// Shard 0's heartbeat: measures the node's requests per second and, with
/// `cluster.redis`, refreshes its announcement in the registry, until the
/// node drains.
async fn announce_forever(shard: Rc<Shard>) {
    let every = Duration::from_millis(shard.config.cluster.heartbeat_ms.max(1));
    let node = &shard.node;
    let answered = || -> u64 {
        node.gauges
            .iter()
            .map(|g| g.http_requests.load(Ordering::Relaxed) + g.tcp_frames.load(Ordering::Relaxed))
            .sum()
    };
    let (mut last, mut last_at) = (answered(), Instant::now());
    let mut tracker = crate::figures::FiguresTracker::default();
    let mut failing = false;
    for beat in 1.. {
        glommio::timer::sleep(every).await;
        if shard.is_draining() || node.is_shutting_down() {
            return;
        }
        let (now, now_at) = (answered(), Instant::now());
        let rate = (now - last) as f64 / now_at.duration_since(last_at).as_secs_f64().max(1e-3);
        node.requests_per_s.store(rate.to_bits(), Ordering::Relaxed);
        (last, last_at) = (now, now_at);
        let figures = tracker.next(node.totals(), shard.services.backend_states().await);
        if let Ok(mut f) = node.figures.lock() {
            *f = figures;
        }
        let Some(registry) = shard.services.registry() else {
            continue;
        };
        let me = crate::cluster::announcement(&shard.config, node, beat);
        match registry.announce(&me).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("cluster registry reachable again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot announce this node in the cluster registry");
            }
            Err(_) => {}
        }
    }
}

/// Handle to the signal thread.
struct SignalThread {
    handle: signal_hook::iterator::Handle,
}

impl SignalThread {
    fn close(self) {
        self.handle.close();
    }
}

fn spawn_signal_thread(
    node: Arc<NodeState>,
    config_path: Option<String>,
    log: LogReload,
    notifier: Arc<Notifier>,
    grace_ms: u64,
) -> Result<SignalThread, StartError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| StartError(format!("cannot install signal handlers: {e}")))?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                match sig {
                    SIGHUP => reload(config_path.as_deref(), &log, &node),
                    _ => {
                        tracing::info!(signal = sig, "shutdown requested; draining");
                        node.shutting_down.store(true, Ordering::Relaxed);
                        notifier.stopping(&format!(
                            "draining: finishing in-flight requests (at most {grace_ms} ms)"
                        ));
                    }
                }
            }
        })
        .map_err(|e| StartError(format!("cannot start signal thread: {e}")))?;
    Ok(SignalThread { handle })
}

/// SIGHUP: re-reads the configuration and applies its hot settings.
fn reload(path: Option<&str>, log: &LogReload, node: &NodeState) {
    match Config::load(path, std::env::vars()) {
        Ok(c) => {
            log.set_level(&c.log.level);
            let file = FileSettings::of(&c);
            // The config centre, when it sets a value, wins again at its
            // next read (within half a second).
            node.limits.set(&file);
            if let Ok(mut f) = node.file.lock() {
                *f = file;
            }
            tracing::info!(level = %c.log.level, rate_limit = c.auth.rate_limit_per_ip_per_min, "configuration reloaded");
        }
        Err(e) => tracing::error!(error = %e, "configuration reload refused; keeping the old one"),
    }
}
