//! The `datamiddleware` command: `serve` (the default), `check-config`, `version`.

use clap::{Parser, Subcommand};
use datamiddleware::config::Config;
use datamiddleware::{logging, runtime};
use std::process::ExitCode;

/// Thread-per-core data-access server for game backends.
#[derive(Parser)]
#[command(name = "datamiddleware", version, about)]
struct Cli {
    /// Configuration file (TOML); the embedded default when absent.
    #[arg(long, global = true)]
    config: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Validate a configuration file and exit (0 valid, 1 invalid).
    CheckConfig {
        /// The file to check; `--config` or the embedded default when absent.
        path: Option<String>,
    },
    /// Print the version.
    Version,
    /// Read a password from standard input and print its argon2id hash (for
    /// `[admins.<name>] password_hash`).
    HashPassword,
    /// The audit log (SPEC §13): `verify`, `public-key`, `new-key`.
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
    /// GET a URL and exit 0 on a 2xx answer, 1 otherwise: the container
    /// image's health check, which has no curl (e.g. `probe
    /// http://127.0.0.1:8080/ready`).
    Probe {
        /// `http://host:port/path`.
        url: String,
        /// Give up after this long (connect, send, read each).
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Re-compute every audit chain and checkpoint of each game's database
    /// (`--config` names them): exit 0 with the counts and the newest
    /// checkpoint, 1 naming the first bad record and what is wrong, 2 when
    /// it cannot run (configuration, database, key).
    Verify {
        /// Only this game.
        #[arg(long)]
        game: Option<String>,
        /// Trust checkpoints signed by this public key (hex; repeat for
        /// several): then no private key is needed. Default: the
        /// configuration's key and `audit.trusted_keys`.
        #[arg(long = "public-key")]
        public_keys: Vec<String>,
    },
    /// Print the public key checkpoints are signed with (from
    /// `audit.signing_key`, or the key dev mode made).
    PublicKey,
    /// Print a new random signing key (for `DM_AUDIT_SIGNING_KEY`).
    NewKey,
}

/// Keeps large allocations (argon2id's 19 MiB per hash) out of glibc's
/// per-thread arenas: without a fixed mmap threshold glibc raises it after
/// the first free and then keeps every hash's memory in each blocking
/// thread's arena, growing the resident size by hundreds of MiB.
fn bound_allocator_retention() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() -> ExitCode {
    bound_allocator_retention();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Version => {
            println!("datamiddleware {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::HashPassword => {
            let mut password = String::new();
            if std::io::stdin().read_line(&mut password).is_err() {
                eprintln!("cannot read a password from standard input");
                return ExitCode::FAILURE;
            }
            let password = password.trim_end_matches(['\r', '\n']);
            if password.len() < 8 {
                eprintln!("admin passwords need at least 8 bytes");
                return ExitCode::FAILURE;
            }
            match datamiddleware::service::auth::hash_password(password) {
                Ok(h) => {
                    println!("{h}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("hashing failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Probe { url, timeout_ms } => {
            match datamiddleware::probe::get(&url, std::time::Duration::from_millis(timeout_ms)) {
                Ok(status) if (200..300).contains(&status) => ExitCode::SUCCESS,
                Ok(status) => {
                    eprintln!("probe {url}: HTTP {status}");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("probe {url}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Audit { action } => audit(action, cli.config.as_deref()),
        Command::CheckConfig { path } => {
            let path = path.or(cli.config);
            match Config::load(path.as_deref(), std::env::vars()) {
                Ok(c) => {
                    println!(
                        "configuration OK: node {}, {} game(s), http {}, tcp {}, auth mode {:?}",
                        c.node.id,
                        c.games.len(),
                        c.http.listen,
                        c.tcp.listen,
                        c.auth.mode
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("configuration invalid: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve => {
            let config = match Config::load(cli.config.as_deref(), std::env::vars()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("configuration invalid: {e}");
                    return ExitCode::FAILURE;
                }
            };
            // Before anything starts: without io_uring glommio would panic
            // deep in start-up; say why in one line instead (SPEC §1).
            if let Err(why) =
                datamiddleware::host::check_io_uring().and(datamiddleware::host::raise_memlock())
            {
                eprintln!("datamiddleware: {why}");
                return ExitCode::FAILURE;
            }
            let log = logging::init(&config.log.level, &config.log.format, &config.node.id);
            match runtime::run(config, cli.config, log) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "start-up failed");
                    eprintln!("datamiddleware: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `datamiddleware audit ...`.
fn audit(action: AuditCommand, config_path: Option<&str>) -> ExitCode {
    if let AuditCommand::NewKey = action {
        println!("{}", datamiddleware::audit::AuditKey::generate().to_hex());
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(config_path, std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration invalid: {e}");
            // Exit 1 means tampering: a command that could not run is 2.
            return ExitCode::from(2);
        }
    };
    match action {
        AuditCommand::NewKey => ExitCode::SUCCESS,
        AuditCommand::PublicKey => match datamiddleware::ops::audit::signing_key_of(&config) {
            Ok(key) => {
                println!("{}", key.public_hex());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("no audit signing key: {e}");
                ExitCode::FAILURE
            }
        },
        AuditCommand::Verify { game, public_keys } => {
            match datamiddleware::ops::audit::verify_databases(
                &config,
                game.as_deref(),
                &public_keys,
            ) {
                Err(e) => {
                    eprintln!("audit verify: {e}");
                    ExitCode::from(2)
                }
                Ok(games) => {
                    let mut bad = false;
                    for (id, report) in games {
                        let last = match report.last_checkpoint() {
                            Some((chain, seq, at)) => format!(
                                "newest checkpoint: chain {chain} record {seq}, signed {}",
                                datamiddleware::clock::rfc3339_ms(at)
                            ),
                            None => "no checkpoint yet".to_string(),
                        };
                        match report.first_problem() {
                            None => println!(
                                "game {id}: OK — {} records in {} chain{}; {last}",
                                report.records(),
                                report.chains.len(),
                                if report.chains.len() == 1 { "" } else { "s" }
                            ),
                            Some(p) => {
                                bad = true;
                                println!("game {id}: TAMPERED — {p}");
                            }
                        }
                    }
                    if bad {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    }
                }
            }
        }
    }
}
