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
    if config.audit.signing_key.is_empty() {
        // Dev mode only (validation refuses it in prod): a key made once and
        // kept beside the data, so earlier checkpoints still verify.
        let file = crate::ops::audit::key_file_of(&config);
        let key = crate::audit::keys::load("", &file, true).map_err(StartError)?;
        config.audit.signing_key = key.to_hex();
    }
    if config.admins.is_empty() {
        tracing::warn!(
            "no admin account is configured: admin sign-in (the console, POST /api/v1/auth/admin) \
             refuses every name; add [admins.<name>] password_hash to the config or set \
             DM_ADMINS_<NAME>_PASSWORD_HASH (datamiddleware hash-password makes one)"
        );
    }
    if config.node.sched_batch {
        // Before any thread starts: they all inherit the class.
        match crate::host::use_batch_scheduling() {
            Ok(()) => tracing::info!("scheduling: SCHED_BATCH (node.sched_batch = true)"),
            Err(e) => tracing::warn!(
                "node.sched_batch: the kernel refused SCHED_BATCH ({e}); running as a normal process"
            ),
        }
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
            .blocking_thread_pool_placement(PoolPlacement::Unbound(blocking_threads(&config)))
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
    let failure = match wait_for_shards(&ready_rx, shards, &node, config.node.shutdown_grace_ms) {
        StartWait::Ready => None,
        StartWait::Failed(e) => Some(e),
        // Shards still starting are left behind: leaving `serve` ends the
        // process, which is what SIGTERM asked for.
        StartWait::Interrupted(e) => return Err(StartError(e)),
    };
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

/// How the wait for the shards' start-up ended.
enum StartWait {
    /// Every shard listens.
    Ready,
    /// A shard could not start (the first error).
    Failed(String),
    /// SIGTERM/SIGINT came during start-up and the shards named in the
    /// message were still starting after `node.shutdown_grace_ms`.
    Interrupted(String),
}

/// How often the start-up wait looks at the shutdown flag, and after how
/// long (then every as long again) it logs the shards still starting.
const START_POLL: Duration = Duration::from_millis(100);
const START_REPORT: Duration = Duration::from_secs(10);

/// Waits for every shard's ready report. A shard that takes long (a
/// database that answers slowly, a file on a stalled disk) is named in the
/// log every [`START_REPORT`]; a shutdown requested meanwhile is honoured —
/// the shards get `grace_ms` to finish starting and stop, then the start
/// is given up — instead of waiting for ever.
fn wait_for_shards(
    ready_rx: &mpsc::Receiver<Result<usize, String>>,
    shards: usize,
    node: &NodeState,
    grace_ms: u64,
) -> StartWait {
    let started = Instant::now();
    let mut ready = vec![false; shards];
    let mut reported = 0;
    let mut failure = None;
    let mut next_report = START_REPORT;
    let mut stop_asked: Option<Instant> = None;
    let waiting = |ready: &[bool]| -> String {
        let ids: Vec<String> = (0..shards)
            .filter(|i| !ready[*i])
            .map(|i| i.to_string())
            .collect();
        ids.join(", ")
    };
    while reported < shards {
        match ready_rx.recv_timeout(START_POLL) {
            Ok(Ok(id)) => {
                reported += 1;
                if let Some(slot) = ready.get_mut(id) {
                    *slot = true;
                }
            }
            Ok(Err(e)) => {
                reported += 1;
                failure.get_or_insert(e);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return StartWait::Failed(
                    failure.unwrap_or_else(|| "a shard exited during start-up".to_string()),
                );
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if node.is_shutting_down() {
                    let asked = *stop_asked.get_or_insert_with(Instant::now);
                    if asked.elapsed() >= Duration::from_millis(grace_ms) {
                        return StartWait::Interrupted(format!(
                            "shutdown requested during start-up; shard(s) {} had not finished \
                             starting {} ms later",
                            waiting(&ready),
                            grace_ms
                        ));
                    }
                }
                if started.elapsed() >= next_report {
                    tracing::warn!(
                        "start-up: shard(s) {} still starting after {} s (opening databases, \
                         joining the other shards, claiming the node id in the registry)",
                        waiting(&ready),
                        started.elapsed().as_secs()
                    );
                    next_report += START_REPORT;
                }
            }
        }
    }
    match failure {
        Some(e) => StartWait::Failed(e),
        None => StartWait::Ready,
    }
}

/// Threads of a shard's blocking pool: `node.blocking_threads` when a game
/// has a SQLite database (its calls run there), else one that stays idle
/// (glommio keeps at least one) — MySQL runs on the shard's own io_uring.
fn blocking_threads(config: &Config) -> usize {
    let sqlite = config.games.values().any(|g| {
        std::iter::once(&g.url)
            .chain(&g.replicas)
            .any(|url| url.starts_with("sqlite://"))
    });
    if sqlite {
        config.node.blocking_threads
    } else {
        1
    }
}

/// Migrates every game's database, seeds its catalogue, and returns the
/// sessions revoked recently enough that their access tokens still live.
/// Runs on an executor of its own before the shards start, since a MySQL
/// store talks on an executor's io_uring.
fn prepare_databases(config: &Config) -> Result<Vec<String>, StartError> {
    let config = config.clone();
    LocalExecutorBuilder::new(Placement::Unbound)
        .name("prepare-databases")
        .spawn(move || async move { prepare_each_game(&config).await })
        .and_then(|executor| executor.join())
        .map_err(|e| StartError(format!("cannot prepare the databases: {e}")))?
}

/// For each game in turn: migrations, the durability check, the catalogue
/// seed, and the sessions revoked lately (the shards start knowing them).
async fn prepare_each_game(config: &Config) -> Result<Vec<String>, StartError> {
    let since = crate::clock::now_ms() - (config.auth.access_ttl_s as i64 + 1) * 1000;
    let mut revoked = Vec::new();
    for (id, game) in &config.games {
        let db = store::open(&game.url, 1, game.durability, false).map_err(|e| {
            let url = crate::config::redact(&game.url);
            StartError(format!("game {id}: cannot open {url}: {e}"))
        })?;
        let seed: Vec<_> = config
            .item_seed(id)
            .map_err(|e| StartError(e.to_string()))?
            .iter()
            .map(items::seed_def)
            .collect();
        let game_id = id.clone();
        let failed =
            |what: &str, e: store::StoreError| store::StoreError::Internal(format!("{what}: {e}"));
        let (version, seeded, found) = db
            .call(async move |s| {
                let version = s
                    .migrate()
                    .await
                    .map_err(|e| failed("migration failed", e))?;
                let durability = format!("key `games.{game_id}.durability`");
                s.check_durability()
                    .await
                    .map_err(|e| failed(&durability, e))?;
                let seeded = s
                    .seed_item_defs(&seed)
                    .await
                    .map_err(|e| failed("catalogue seed failed", e))?;
                let found = s.revoked_sessions_since(since).await?;
                Ok((version, seeded, found))
            })
            .await
            .map_err(|e| match e {
                // The context is in the message already.
                store::StoreError::Internal(m) => StartError(format!("game {id}: {m}")),
                other => StartError(format!("game {id}: {other}")),
            })?;
        revoked.extend(found);
        tracing::info!(game = %id, schema_version = version, items_seeded = seeded, "database ready");
    }
    Ok(revoked)
}

use mesh::ShardMesh;

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
    glommio::spawn_local(shard.clone().publish_totals_forever()).detach();
    crate::ops::tasks::start(&crate::ops::tasks::TaskContext {
        ops: shard.ops.clone(),
        log,
    });
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
