//! dm-bench: the load generator that ships with DataMiddleware (SPEC §10).
//!
//! One glommio executor per load thread drives its share of the
//! connections; each thread keeps its own hdrhistogram, merged at the end.
//! Before the run it seeds players (register, grant items, credit gold) and
//! gets a game-server token, so every scenario runs against real data.
//!
//! Examples:
//!   dm-bench --scenario health -c 64 --duration 10
//!   dm-bench --scenario ping --tcp 127.0.0.1:9090 -c 8 --pipeline 16
//!   dm-bench --scenario player --rate 20000 -c 64 --json
//!   dm-bench --scenario mixed --server-pid "$(pgrep -x datamiddleware)"
//!     (the server's CPU time and context switches per request as well)
//!   dm-bench --scenario tcp-player --tcp 127.0.0.1:19090 --reconnect --duration 600
//!     (through nginx during a rolling restart; SIGINT ends it early)
//!   dm-bench --scenario ws -c 1000 --rate 1000 --ws-addr 127.0.0.1:8081
//!     (1,000 player sockets on another node, credits through --http:
//!     notification delivery latency, lost and duplicate notifications)
//!   dm-bench --scenario idle-ws -c 10000 --server-pid "$(pgrep -x datamiddleware)"
//!     (10,000 idle sockets: the server's RSS per socket)
//!   dm-bench lb-load --db data/game1.db --lb-players 1000000 --board bench
//!     (the server stopped: players 1..=1,000,000 and a record each on board
//!     `bench`, straight into the game's SQLite file or mysql:// database)
//!   dm-bench --scenario lb-read --board bench --lb-players 1000000 -c 64
//!   dm-bench --scenario lb-write --board bench --lb-players 1000000 -c 64
//!     (scores and rank reads for players drawn by Zipf, --zipf 1 unless
//!     given; without --lb-players, the seeded players, each given a
//!     record first; see scripts/bench-leaderboards.sh)

mod direct;
mod direct_backend;
mod lb_load;
mod load;
mod realtime;
mod report;
mod server_cost;
mod ws;

use clap::{Parser, Subcommand, ValueEnum};
use load::{Plan, Scenario};
use report::{Summary, Tally};
use std::io::{IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScenarioArg {
    Health,
    Player,
    Login,
    BadLogin,
    Wallet,
    Mixed,
    Ping,
    TcpPlayer,
    IdleTcp,
    SqlDirect,
    Ws,
    IdleWs,
    LbWrite,
    LbRead,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bulk-loads a leaderboard bench straight into the game's SQL
    /// database: players 1..=N (username lb_<id in 9 digits>, the seeded
    /// players' password) and a record each on --board (made when missing:
    /// sort desc, operator best, never resets), in large transactions.
    /// STOP THE SERVER FIRST: a SQLite file the server has open is refused;
    /// on MySQL, start the server after the load (it builds ranks at
    /// start). The server must have started once on the database (its
    /// migrations make the tables).
    LbLoad(lb_load::LoadArgs),
}

/// Load generator for DataMiddleware.
#[derive(Parser, Debug)]
#[command(
    name = "dm-bench",
    version,
    args_conflicts_with_subcommands = true,
    about = "Load generator for DataMiddleware: drives a running server over HTTP and the binary protocol \
             and reports throughput, latency percentiles and errors (see README \"Benchmarks\")"
)]
struct Args {
    /// `lb-load`: the leaderboard bench's bulk loader (no scenario runs).
    #[command(subcommand)]
    command: Option<Command>,
    /// What to send.
    #[arg(long, value_enum, default_value = "health")]
    scenario: ScenarioArg,
    /// HTTP address of the server.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// TCP (binary protocol) address of the server.
    #[arg(long, default_value = "127.0.0.1:9090")]
    tcp: SocketAddr,
    /// Connections (`ws`, `idle-ws`: WebSocket sockets, one per seeded
    /// player; as many players are seeded when `--players` is fewer).
    #[arg(short = 'c', long, default_value_t = 64)]
    connections: usize,
    /// Requests per batch in closed loop (mixed always uses 1).
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Open loop: requests per second in total (latency from intended send
    /// time); `ws`: wallet credits per second.
    #[arg(long)]
    rate: Option<f64>,
    /// `ws`, `idle-ws`: the HTTP address the sockets open `GET /ws` on
    /// (another node of the cluster; default: `--http`, where the credits
    /// go).
    #[arg(long, value_name = "HOST:PORT")]
    ws_addr: Option<SocketAddr>,
    /// `ws`: HTTP connections making the wallet credits (`--rate` is
    /// shared among them).
    #[arg(long, default_value_t = 8)]
    ws_writers: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds an unanswered request is waited for after the run; then it
    /// counts as a `timeout` error and the connection is closed.
    #[arg(long, default_value_t = 10.0)]
    answer_timeout: f64,
    /// Load threads (executors); default: available cores.
    #[arg(long)]
    threads: Option<usize>,
    /// Players to seed (register, log in, items, gold).
    #[arg(long, default_value_t = 100)]
    players: usize,
    /// Game id.
    #[arg(long, default_value = "game1")]
    game: String,
    /// The game's server key (the embedded default config's key by default).
    #[arg(long, default_value = "dev-server-key-game1")]
    server_key: String,
    /// Label in the report (default: the scenario).
    #[arg(long)]
    label: Option<String>,
    /// `sql-direct`: the game database's URL (`mysql://user:pass@host:port/db`);
    /// its players are seeded through the server at `--http` first.
    #[arg(long)]
    mysql: Option<String>,
    /// Choose players by a Zipf law of this exponent (1.0: the first of 100
    /// players gets ~19 % of the requests) instead of every player in turn
    /// (`lb-write`, `lb-read`: 1.0 unless given).
    #[arg(long)]
    zipf: Option<f64>,
    /// `lb-write`, `lb-read`: the leaderboard. When missing, the seeding
    /// step creates it as admin (`--admin-user`, `--admin-password`): sort
    /// desc, operator best, never resets.
    #[arg(long, default_value = "bench")]
    board: String,
    /// `lb-write`, `lb-read`: player ids 1..=N exist and have a record on
    /// the board (`dm-bench lb-load` makes them); the players are drawn
    /// from them and none is seeded. Without it, the seeded players
    /// (`--players`) are used, each given a record first.
    #[arg(long, value_name = "N")]
    lb_players: Option<u64>,
    /// Admin account that creates a missing `--board`.
    #[arg(long, default_value = "ops")]
    admin_user: String,
    /// Its password (only needed when the board is missing).
    #[arg(long)]
    admin_password: Option<String>,
    /// The server's process id: its CPU time (user + system, all threads)
    /// and its threads' context switches over the measured window are read
    /// from /proc and reported per answered request
    /// (`server_cpu_us_per_req`, `ctx_switches_per_req`). Left out, with a
    /// line on stderr, when /proc cannot be read. `idle-ws`: also its VmRSS
    /// before the sockets open and with them open (KiB per socket).
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Largest share of failed requests (error answers, lost connections)
    /// a run may have; beyond it dm-bench says so on stderr and exits 2
    /// (the report is printed all the same).
    #[arg(long, default_value_t = 0.01)]
    max_error_ratio: f64,
    /// When the server ends a connection (a node draining behind nginx:
    /// Error 0xE006, a close, `Connection: close`), connect again and send
    /// its unanswered requests again; reported under `reconnects`.
    #[arg(long)]
    reconnect: bool,
}

const PASSWORD: &str = "bench-password-1";

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::LbLoad(load)) = &args.command {
        return match lb_load::run(load, PASSWORD) {
            Ok(loaded) => {
                println!("{}", loaded.report(load.json));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("dm-bench lb-load: {e}");
                ExitCode::FAILURE
            }
        };
    }
    raise_open_files();
    match run(&args) {
        Ok(summary) => {
            if args.json {
                println!("{}", summary.to_json());
            } else {
                println!("{}\n{}", report::header(), summary.row());
                if let Some(cache) = summary.cache {
                    println!("{}", cache.line());
                }
                if let Some(line) = summary.server_line() {
                    println!("{line}");
                }
                if let Some(ws) = &summary.realtime {
                    println!("{}", ws.line());
                }
            }
            match summary.failure_warning(args.max_error_ratio) {
                Some(warning) => {
                    eprintln!("dm-bench: {warning}");
                    ExitCode::from(2)
                }
                None => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            eprintln!("dm-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<Summary, String> {
    // Written so that NaN fails too: every one of these becomes a Duration.
    let within = |v: f64, low_inclusive: bool, max: f64| {
        (v > 0.0 || (low_inclusive && v == 0.0)) && v <= max
    };
    if args.connections == 0
        || args.pipeline == 0
        || args.ws_writers == 0
        || !within(args.duration, false, 86_400.0)
        || !within(args.warmup, true, 3_600.0)
        || !within(args.answer_timeout, false, 600.0)
    {
        return Err(
            "connections, pipeline and ws-writers must be >= 1, duration in (0, 86400] s, \
                    warmup in [0, 3600] s, answer-timeout in (0, 600] s"
                .into(),
        );
    }
    if args.zipf.is_some_and(|s| !(0.0..=10.0).contains(&s)) {
        return Err("zipf must be within [0, 10]".into());
    }
    if !(0.0..=1.0).contains(&args.max_error_ratio) {
        return Err("max-error-ratio must be within [0, 1]".into());
    }
    if args.rate.is_some_and(|r| !within(r, false, 1e9)) {
        return Err("rate must be > 0 and at most 10^9 per second".into());
    }
    if matches!(args.scenario, ScenarioArg::SqlDirect) {
        return run_direct(args);
    }
    let scenario = match args.scenario {
        ScenarioArg::Health => Scenario::Health,
        ScenarioArg::Player => Scenario::Player,
        ScenarioArg::Login => Scenario::Login,
        ScenarioArg::BadLogin => Scenario::BadLogin,
        ScenarioArg::Wallet => Scenario::Wallet,
        ScenarioArg::Mixed => Scenario::Mixed,
        ScenarioArg::Ping => Scenario::Ping,
        ScenarioArg::TcpPlayer => Scenario::TcpPlayer,
        ScenarioArg::IdleTcp => Scenario::IdleTcp,
        ScenarioArg::Ws => Scenario::Ws,
        ScenarioArg::IdleWs => Scenario::IdleWs,
        ScenarioArg::LbWrite => Scenario::LbWrite,
        ScenarioArg::LbRead => Scenario::LbRead,
        ScenarioArg::SqlDirect => unreachable!("handled above"),
    };
    let leaderboard = matches!(scenario, Scenario::LbWrite | Scenario::LbRead);
    if leaderboard {
        datamiddleware::validate::item_id(&args.board)
            .map_err(|_| "--board must be 1 to 64 of letters, digits, _ - .".to_string())?;
    }
    if args
        .lb_players
        .is_some_and(|n| !(1..=1_000_000_000).contains(&n))
    {
        return Err("lb-players must be 1 to 10^9".into());
    }
    let sockets = matches!(scenario, Scenario::Ws | Scenario::IdleWs);
    let needs_seed = !matches!(
        scenario,
        Scenario::Health | Scenario::Ping | Scenario::IdleTcp
    );
    let token = if needs_seed || scenario == Scenario::TcpPlayer {
        server_token(args)?
    } else {
        String::new()
    };
    let (players, tokens) = if let (true, Some(n)) = (leaderboard, args.lb_players) {
        // Loaded by lb-load: nothing to register.
        ensure_board(args, &token)?;
        let players: Vec<(i64, String)> = (1..=n as i64).map(|id| (id, String::new())).collect();
        check_loaded(args, &token, n)?;
        (players, Vec::new())
    } else if leaderboard {
        ensure_board(args, &token)?;
        let seeded = seed(args, &token, args.players, false)?;
        give_records(args, &token, &seeded.0)?;
        seeded
    } else if needs_seed {
        // A socket per player: at least as many players as sockets.
        let count = if sockets {
            args.players.max(args.connections)
        } else {
            args.players
        };
        seed(args, &token, count, sockets)?
    } else {
        (vec![(1, String::new())], Vec::new())
    };
    // idle-ws: the server's memory before any socket opens.
    let rss_before = match (scenario, args.server_pid) {
        (Scenario::IdleWs, Some(pid)) => server_cost::rss_kib(pid),
        _ => None,
    };
    let threads = args
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .clamp(1, args.connections);
    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let until = measure_from + Duration::from_secs_f64(args.duration);
    let interrupt = stop_on_signal()?;
    let server = args
        .server_pid
        .and_then(|pid| server_cost::watch(pid, measure_from));
    let zipf = args
        .zipf
        .or(leaderboard.then_some(1.0))
        .map(|s| Arc::new(load::zipf_cdf(players.len(), s)));
    let writers = if scenario == Scenario::Ws {
        args.ws_writers
    } else {
        0
    };
    let shared = sockets.then(|| {
        Arc::new(realtime::Shared::new(
            args.ws_addr.unwrap_or(args.http),
            tokens,
            args.connections,
            scenario == Scenario::IdleWs,
            writers,
            measure_from,
        ))
    });
    let plan = Plan {
        scenario,
        addr: if scenario.is_tcp() {
            args.tcp
        } else {
            args.http
        },
        pipeline: args.pipeline,
        rate_per_conn: args.rate.map(|r| {
            r / if sockets {
                writers.max(1)
            } else {
                args.connections
            } as f64
        }),
        measure_from,
        until,
        stop: interrupt.flag.clone(),
        reconnect: args.reconnect,
        live: None,
        zipf,
        game: args.game.clone(),
        token,
        server_key: args.server_key.clone(),
        players: Arc::new(players),
        password: PASSWORD.to_string(),
        realtime: shared.clone(),
        board: args.board.clone(),
    };
    let answer_timeout = Duration::from_secs_f64(args.answer_timeout);
    let mut handles = Vec::new();
    // On a terminal, a line a second while the run lasts.
    let live: Vec<Arc<load::LiveCounts>> = if std::io::stderr().is_terminal() {
        (0..threads).map(|_| Arc::default()).collect()
    } else {
        Vec::new()
    };
    for t in 0..threads {
        let mut plan = plan.clone();
        plan.live = live.get(t).cloned();
        let mine: Vec<usize> = (0..args.connections).filter(|c| c % threads == t).collect();
        let my_writers: Vec<usize> = (0..writers).filter(|w| w % threads == t).collect();
        // The sockets' own watchdog: `ws` keeps them until every credit is
        // delivered or lost, `idle-ws` until the run's end.
        let sockets_safety = answer_timeout + realtime::LOSS_WINDOW + Duration::from_secs(1);
        let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .name(&format!("load-{t}"))
            .spawn(move || async move {
                let wait = start.saturating_duration_since(Instant::now());
                glommio::timer::sleep(wait).await;
                let hangs = std::rc::Rc::new(load::Hangs::default());
                let watchdog = hangs.clone();
                let watched = plan.clone();
                glommio::spawn_local(
                    async move { watchdog.fire_after(&watched, answer_timeout).await },
                )
                .detach();
                let socket_hangs = std::rc::Rc::new(load::Hangs::default());
                if let Some(shared) = plan.realtime.clone() {
                    let (hangs, plan) = (socket_hangs.clone(), plan.clone());
                    glommio::spawn_local(async move {
                        realtime::close_when_done(shared, plan, &hangs, sockets_safety).await
                    })
                    .detach();
                }
                let tasks: Vec<_> = mine
                    .into_iter()
                    .map(|c| {
                        let plan = plan.clone();
                        let hangs = hangs.clone();
                        let socket_hangs = socket_hangs.clone();
                        glommio::spawn_local(async move {
                            let mut tally = Tally::new();
                            if plan.realtime.is_some() {
                                realtime::socket(plan, c, &mut tally, &socket_hangs).await;
                            } else {
                                load::connection(plan, c, &mut tally, &hangs).await;
                            }
                            tally
                        })
                    })
                    .collect();
                // `ws`: the credits, once the sockets are ready.
                let writer_tasks: Vec<_> = my_writers
                    .into_iter()
                    .map(|w| {
                        let plan = plan.clone();
                        let hangs = hangs.clone();
                        glommio::spawn_local(async move {
                            let mut tally = Tally::new();
                            if let Some(shared) = &plan.realtime {
                                shared.sockets_settled(plan.measure_from).await;
                            }
                            load::connection(plan.clone(), w, &mut tally, &hangs).await;
                            if let Some(shared) = &plan.realtime {
                                shared.writer_done();
                            }
                            tally
                        })
                    })
                    .collect();
                let mut total = Tally::new();
                for t in tasks {
                    total.merge(&t.await);
                }
                let mut credits = Tally::new();
                for t in writer_tasks {
                    credits.merge(&t.await);
                }
                (parts(total), parts(credits))
            })
            .map_err(|e| format!("cannot start a load thread: {e}"))?;
        handles.push(handle);
    }
    // Scripts that run dm-bench beside something else wait for this line,
    // written when the load begins.
    std::thread::sleep(start.saturating_duration_since(Instant::now()));
    eprintln!("dm-bench: load starts");
    // The server's cache counters when measuring starts (and at the end).
    std::thread::sleep(measure_from.saturating_duration_since(Instant::now()));
    let cache_at_start = scrape_cache(args.http, answer_timeout);
    // idle-ws: the server's memory once every socket is open (then the
    // sockets may close at the end of the run).
    let rss_with = shared.as_ref().and_then(|shared| {
        let rss = shared.idle.then(|| {
            while shared.settled.load(Ordering::Acquire) < shared.sockets
                && Instant::now() < until
                && !plan.stop.load(Ordering::Relaxed)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            if shared.settled.load(Ordering::Acquire) < shared.sockets {
                eprintln!(
                    "dm-bench: {} of {} sockets were still opening at the end of the run \
                     (raise --warmup or --duration)",
                    shared.sockets - shared.settled.load(Ordering::Acquire),
                    shared.sockets
                );
            }
            // What opening them allocated, settled.
            std::thread::sleep(Duration::from_secs(1));
            args.server_pid.and_then(server_cost::rss_kib)
        });
        shared.held.store(true, Ordering::Release);
        rss.flatten()
    });
    let live_done = Arc::new(AtomicBool::new(false));
    let live_line = (!live.is_empty()).then(|| {
        let done = live_done.clone();
        let stop = plan.stop.clone();
        std::thread::spawn(move || show_live(&live, measure_from, until, &done, &stop))
    });
    let mut tally = Tally::new();
    let mut credits = Tally::new();
    let joined: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
    // Every answer of the window is in: the server's spending ends here
    // (before the /metrics scrape below).
    let server = server.and_then(server_cost::Watch::finish);
    live_done.store(true, Ordering::Relaxed);
    if let Some(line) = live_line {
        let _ = line.join();
    }
    for h in joined {
        let (mine, written) = h.map_err(|e| format!("load thread failed: {e}"))?;
        absorb(&mut tally, mine);
        absorb(&mut credits, written);
    }
    let realtime = shared.map(|shared| {
        let mut m = shared.matcher.lock().unwrap_or_else(|e| e.into_inner());
        let (lost, unmatched) = m.finish();
        tally.merge(&m.tally);
        // A failed credit is no delivery, but the run must show it.
        for (kind, n) in &credits.errors {
            *tally.errors.entry(format!("credit_{kind}")).or_insert(0) += n;
        }
        let ms = |q: f64| credits.latency.value_at_quantile(q) as f64 / 1000.0;
        realtime::Report {
            idle: shared.idle,
            sockets: shared.sockets,
            ready: shared.ready.load(Ordering::Acquire),
            credits: m.credits,
            credit_errors: credits.errors.values().sum(),
            credit_p50_ms: ms(0.5),
            credit_p99_ms: ms(0.99),
            delivered: m.tally.ok,
            from_send_ms: [0.5, 0.9, 0.99, 1.0]
                .map(|q| m.from_send.latency.value_at_quantile(q) as f64 / 1000.0),
            lost,
            duplicates: m.duplicates,
            before_answer: m.before_answer,
            unmatched,
            gaps: shared.gaps.load(Ordering::Acquire),
            missed: shared.missed.load(Ordering::Acquire),
            rss_before_kib: rss_before,
            rss_with_kib: rss_with,
        }
    });
    let elapsed = interrupt
        .end_of(until)
        .saturating_duration_since(measure_from);
    let cache =
        cache_at_start.and_then(|start| start.until(&scrape_cache(args.http, answer_timeout)?));
    Ok(Summary {
        label: args
            .label
            .clone()
            .or_else(|| {
                args.scenario
                    .to_possible_value()
                    .map(|v| v.get_name().to_string())
            })
            .unwrap_or_default(),
        elapsed,
        tally,
        connections: args.connections,
        pipeline: if scenario == Scenario::Mixed {
            1
        } else {
            args.pipeline
        },
        rate: args.rate,
        cache,
        server,
        realtime,
    })
}

/// A tally's counts as plain values (a load thread hands them back).
type Parts = (
    u64,
    std::collections::BTreeMap<String, u64>,
    std::collections::BTreeMap<String, u64>,
    Vec<(u64, u64)>,
);

/// Histograms are not Send: a thread's tally as its serialisable parts.
fn parts(t: Tally) -> Parts {
    let values = t
        .latency
        .iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect();
    (t.ok, t.errors, t.reconnects, values)
}

/// Adds what [`parts`] made of a tally to `tally`.
fn absorb(tally: &mut Tally, (ok, errors, reconnects, values): Parts) {
    tally.ok += ok;
    for (k, v) in errors {
        *tally.errors.entry(k).or_insert(0) += v;
    }
    for (k, v) in reconnects {
        *tally.reconnects.entry(k).or_insert(0) += v;
    }
    for (value, count) in values {
        let _ = tally.latency.record_n(value, count);
    }
}

/// Raises the soft limit of open files to the hard one: 10,000 sockets
/// need more than the usual 1,024 (the shell's `ulimit -n` is the limit
/// past that).
fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// `--scenario sql-direct`: seeds players through the server, then runs
/// `mixed`'s transactions straight against the database (`direct`).
fn run_direct(args: &Args) -> Result<Summary, String> {
    let url = args
        .mysql
        .clone()
        .ok_or("sql-direct needs --mysql URL (the game database the server at --http uses)")?;
    if !url.starts_with("mysql://") {
        return Err("--mysql takes a mysql://user:pass@host:port/db URL".into());
    }
    let token = server_token(args)?;
    let players: Vec<i64> = seed(args, &token, args.players, false)?
        .0
        .into_iter()
        .map(|p| p.0)
        .collect();
    let interrupt = stop_on_signal()?;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let until = measure_from + Duration::from_secs_f64(args.duration);
    let server = args
        .server_pid
        .and_then(|pid| server_cost::watch(pid, measure_from));
    eprintln!("dm-bench: load starts");
    let tally = direct::run(direct::DirectPlan {
        url,
        connections: args.connections,
        players,
        measure_from,
        until,
        stop: interrupt.flag.clone(),
        actor: datamiddleware::audit::Actor {
            role: "game_server".into(),
            id: "server:game1".into(),
            client: "127.0.0.1".into(),
            node: "dm-bench".into(),
        },
    })?;
    let server = server.and_then(server_cost::Watch::finish);
    Ok(Summary {
        label: args.label.clone().unwrap_or_else(|| "sql-direct".into()),
        elapsed: interrupt
            .end_of(until)
            .saturating_duration_since(measure_from),
        tally,
        connections: args.connections,
        pipeline: 1,
        rate: None,
        cache: None,
        server,
        realtime: None,
    })
}

/// The server's cache counters from its `/metrics` (`None` when it does not
/// answer them, e.g. `http.metrics_public = false`).
/// It waits at most `wait` for the page (the run's `--answer-timeout`, at
/// most 2 s): a server that does not answer must not stall the report.
fn scrape_cache(addr: SocketAddr, wait: Duration) -> Option<report::CacheWindow> {
    let request = b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    let text = exchange(addr, request, wait.min(Duration::from_secs(2))).ok()?;
    text.starts_with("HTTP/1.1 200")
        .then(|| report::CacheWindow::from_metrics(&text))
}

/// The live line on a terminal: every second, the seconds measured so far,
/// successful answers per second over that second, and failures so far.
fn show_live(
    live: &[Arc<load::LiveCounts>],
    measure_from: Instant,
    until: Instant,
    done: &AtomicBool,
    stop: &AtomicBool,
) {
    let sum = |f: fn(&load::LiveCounts) -> u64| live.iter().map(|c| f(c)).sum::<u64>();
    let mut last_ok = 0;
    let mut shown = false;
    while !done.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(1));
        let now = Instant::now();
        if now < measure_from || now > until {
            continue;
        }
        let ok = sum(|c| c.ok.load(Ordering::Relaxed));
        let failed = sum(|c| c.failed.load(Ordering::Relaxed));
        eprint!(
            "\r{:6.1} s  {:>9} ok/s  {:>9} failed   ",
            (now - measure_from).as_secs_f64(),
            ok - last_ok,
            failed
        );
        last_ok = ok;
        shown = true;
    }
    if shown {
        eprintln!();
    }
}

/// SIGINT or SIGTERM ends the run early (sending stops, answers are
/// awaited for at most `--answer-timeout`, the report covers the time until
/// the signal): a script can run dm-bench for as long as something else
/// takes. A second signal exits at once (status 130).
struct Interrupt {
    /// Checked by the load loops.
    flag: Arc<AtomicBool>,
    /// When the first signal came.
    at: Arc<Mutex<Option<Instant>>>,
}

impl Interrupt {
    /// When measuring ended: `until`, or the signal if it came first.
    fn end_of(&self, until: Instant) -> Instant {
        self.at
            .lock()
            .ok()
            .and_then(|t| *t)
            .map_or(until, |t| t.min(until))
    }
}

fn stop_on_signal() -> Result<Interrupt, String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let interrupt = Interrupt {
        flag: Arc::new(AtomicBool::new(false)),
        at: Arc::new(Mutex::new(None)),
    };
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let (flag, when) = (interrupt.flag.clone(), interrupt.at.clone());
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut signals = signals.forever();
            if signals.next().is_some() {
                if let Ok(mut t) = when.lock() {
                    *t = Some(Instant::now());
                }
                flag.store(true, Ordering::Relaxed);
            }
            // A second one means "now": no report.
            if signals.next().is_some() {
                std::process::exit(130);
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(interrupt)
}

/// One request on a new connection (`Connection: close`), waiting at most
/// `wait` for each step; the whole answer as text.
fn exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, wait).map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(wait));
    let _ = s.set_write_timeout(Some(wait));
    s.write_all(request).map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    Ok(String::from_utf8_lossy(&resp).into_owned())
}

/// A minimal blocking HTTP call for setup; returns (status, JSON body).
fn setup_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, serde_json::Value), String> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let text = exchange(addr, req.as_bytes(), Duration::from_secs(30))?;
    let status = text.get(9..12).and_then(|v| v.parse().ok()).unwrap_or(0);
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(serde_json::Value::Null);
    Ok((status, json))
}

fn server_token(args: &Args) -> Result<String, String> {
    let body = serde_json::json!({"game_id": args.game, "server_key": args.server_key}).to_string();
    let (status, j) = setup_call(args.http, "POST", "/api/v1/auth/server", &[], &body)?;
    j["data"]["token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| {
            format!("game-server authentication failed ({status}): {j}; pass --server-key")
        })
}

/// Parallel setup calls while seeding: registrations and logins are an
/// argon2id hash each, done by the server's hashing pool (one thread a
/// core, `auth.hash_queue` waiting).
const SEED_WORKERS: usize = 8;

/// Seeded players (id, username) and, when asked for, their access tokens
/// (else empty strings), in the same order.
type Seeded = (Vec<(i64, String)>, Vec<String>);

/// Registers (or finds) `count` players `bench_0`, `bench_1`, ..., gives
/// each new one potions and gold; with `want_tokens`, also each one's
/// access token (a login). In player order.
fn seed(args: &Args, token: &str, count: usize, want_tokens: bool) -> Result<Seeded, String> {
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("X-Game-Id", args.game.as_str()),
    ];
    // Half the stack limit: room both to use potions and to buy them.
    let (_, item) = setup_call(args.http, "GET", "/api/v1/items/potion", &headers, "")?;
    let potions = (item["data"]["item"]["max_stack"].as_i64().unwrap_or(2) / 2).max(1);
    let grant = format!(r#"{{"quantity":{potions}}}"#);
    let count = count.max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let one = |i: usize| -> Result<(i64, String, String), String> {
        let username = format!("bench_{i}");
        let body = serde_json::json!({"username": username, "password": PASSWORD}).to_string();
        let login = || {
            setup_call(
                args.http,
                "POST",
                "/api/v1/auth/login",
                &[("X-Game-Id", &args.game)],
                &body,
            )
        };
        let (status, j) = setup_call(
            args.http,
            "POST",
            "/api/v1/players",
            &[("X-Game-Id", &args.game)],
            &body,
        )?;
        let (id, new, mut player_token) = match status {
            201 => (j["data"]["player"]["id"].as_i64(), true, None),
            409 => {
                let (_, j) = login()?;
                let token = j["data"]["token"].as_str().map(str::to_string);
                (j["data"]["player"]["id"].as_i64(), false, token)
            }
            _ => return Err(format!("seeding player {username} failed ({status}): {j}")),
        };
        let id = id.ok_or_else(|| format!("no id for {username}"))?;
        if new {
            // The mixed load uses one potion and buys one back per ten requests.
            let _ = setup_call(
                args.http,
                "POST",
                &format!("/api/v1/players/{id}/items/potion/grant"),
                &headers,
                &grant,
            )?;
            let _ = setup_call(
                args.http,
                "POST",
                &format!("/api/v1/players/{id}/wallet"),
                &headers,
                r#"{"currency":"gold","delta":100000000,"reason":"bench"}"#,
            )?;
        }
        if want_tokens && player_token.is_none() {
            let (status, j) = login()?;
            player_token = j["data"]["token"].as_str().map(str::to_string);
            if player_token.is_none() {
                return Err(format!("login of {username} failed ({status}): {j}"));
            }
        }
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        if count >= 1000 && n.is_multiple_of(1000) {
            eprintln!("dm-bench: {n} of {count} players seeded");
        }
        Ok((id, username, player_token.unwrap_or_default()))
    };
    let mut seeded: Vec<(usize, (i64, String, String))> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..SEED_WORKERS.min(count))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            break;
                        }
                        match one(i) {
                            Ok(p) => mine.push((i, p)),
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                    }
                    Ok(mine)
                })
            })
            .collect();
        let mut all = Vec::with_capacity(count);
        let mut first_error = None;
        for w in workers {
            match w.join() {
                Ok(Ok(mine)) => all.extend(mine),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert("a seeding thread panicked".to_string());
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(all),
        }
    })?;
    seeded.sort_unstable_by_key(|(i, _)| *i);
    Ok(seeded
        .into_iter()
        .map(|(_, (id, name, token))| ((id, name), token))
        .unzip())
}

/// `lb-write`, `lb-read`: makes sure `--board` exists, creating it as
/// admin when it does not (sort desc, operator best, never resets).
fn ensure_board(args: &Args, token: &str) -> Result<(), String> {
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("X-Game-Id", args.game.as_str()),
    ];
    let (status, j) = setup_call(args.http, "GET", "/api/v1/leaderboards", &headers, "")?;
    if status != 200 {
        return Err(format!("listing the leaderboards failed ({status}): {j}"));
    }
    let found = j["data"]["boards"]
        .as_array()
        .and_then(|boards| boards.iter().find(|b| b["id"] == args.board.as_str()));
    if let Some(board) = found {
        if board["reset"] != "never" {
            eprintln!(
                "dm-bench: note: leaderboard `{}` resets ({}): reads see the current period only",
                args.board, board["reset"]
            );
        }
        return Ok(());
    }
    let password = args.admin_password.as_deref().ok_or_else(|| {
        format!(
            "leaderboard `{}` does not exist: pass --admin-password (and --admin-user) to \
             create it, or make it with `dm-bench lb-load`",
            args.board
        )
    })?;
    let body = serde_json::json!({"username": args.admin_user, "password": password}).to_string();
    let (status, j) = setup_call(args.http, "POST", "/api/v1/auth/admin", &[], &body)?;
    let admin = j["data"]["token"].as_str().ok_or_else(|| {
        format!(
            "admin sign-in of `{}` failed ({status}): {j}",
            args.admin_user
        )
    })?;
    let auth = format!("Bearer {admin}");
    let body = serde_json::json!({
        "id": args.board, "sort": "desc", "operator": "best", "reset": "never"
    })
    .to_string();
    let headers = [
        ("Authorization", auth.as_str()),
        ("X-Game-Id", args.game.as_str()),
    ];
    match setup_call(args.http, "POST", "/api/v1/leaderboards", &headers, &body)? {
        (201, _) => {
            eprintln!("dm-bench: created leaderboard `{}`", args.board);
            Ok(())
        }
        // Made meanwhile by another dm-bench.
        (409, _) => Ok(()),
        (status, j) => Err(format!(
            "creating leaderboard `{}` failed ({status}): {j}",
            args.board
        )),
    }
}

/// `--lb-players N`: the first and the last player have a record, or the
/// load was not made (every read would be a 404).
fn check_loaded(args: &Args, token: &str, n: u64) -> Result<(), String> {
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("X-Game-Id", args.game.as_str()),
    ];
    for id in [1, n] {
        let path = format!("/api/v1/leaderboards/{}/players/{id}", args.board);
        let (status, j) = setup_call(args.http, "GET", &path, &headers, "")?;
        if status != 200 {
            return Err(format!(
                "player {id} has no record on `{}` ({status}: {j}): load players 1..={n} with \
                 `dm-bench lb-load --lb-players {n}` (server stopped) first",
                args.board
            ));
        }
    }
    Ok(())
}

/// `lb-write`, `lb-read` on seeded players: a record each (the loader's
/// score for its id), so that every read finds one.
fn give_records(args: &Args, token: &str, players: &[(i64, String)]) -> Result<(), String> {
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("X-Game-Id", args.game.as_str()),
    ];
    let path = format!("/api/v1/leaderboards/{}/scores", args.board);
    let per_worker = players.len().div_ceil(SEED_WORKERS).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = players
            .chunks(per_worker)
            .map(|mine| {
                let (path, headers) = (&path, &headers);
                scope.spawn(move || {
                    for (id, _) in mine {
                        let score = lb_load::score(*id as u64);
                        let body = format!(r#"{{"player_id":{id},"score":{score}}}"#);
                        match setup_call(args.http, "POST", path, headers, &body)? {
                            (200, _) => {}
                            (status, j) => {
                                return Err(format!(
                                "writing a score for player {id} on `{}` failed ({status}): {j}",
                                args.board
                            ))
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a seeding thread panicked".into()))
            })
            .collect::<Result<Vec<()>, String>>()
            .map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    use super::{Args, Command};
    use clap::Parser;

    #[test]
    fn lb_load_is_a_subcommand_and_the_scenarios_take_a_board() {
        let a = Args::try_parse_from([
            "dm-bench",
            "lb-load",
            "--db",
            "data/game1.db",
            "--lb-players",
            "1000",
        ])
        .expect("parses");
        let Some(Command::LbLoad(load)) = a.command else {
            panic!("lb-load expected");
        };
        assert_eq!(
            (load.db.as_str(), load.lb_players, load.board.as_str()),
            ("data/game1.db", 1000, "bench")
        );
        // A scenario's options belong to a run, not to the loader.
        assert!(Args::try_parse_from([
            "dm-bench",
            "--scenario",
            "lb-read",
            "lb-load",
            "--db",
            "x",
            "--lb-players",
            "1"
        ])
        .is_err());
        assert!(Args::try_parse_from(["dm-bench", "lb-load", "--lb-players", "1"]).is_err());
        let a = Args::try_parse_from([
            "dm-bench",
            "--scenario",
            "lb-read",
            "--board",
            "weekly",
            "--lb-players",
            "5",
        ])
        .expect("parses");
        assert!(a.command.is_none());
        assert_eq!((a.board.as_str(), a.lb_players), ("weekly", Some(5)));
    }
}
