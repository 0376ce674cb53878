//! Log output: one line per event, text or JSON, with a level that SIGHUP can
//! change at run time. Nothing passwords, tokens or keys is ever logged: the
//! service layer logs ids only.

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Registry;

/// Changes the log level of a running process.
#[derive(Clone)]
pub struct LogReload {
    handle: reload::Handle<LevelFilter, Registry>,
}

impl LogReload {
    /// Sets the level (`error` … `trace`); unknown names are ignored. The
    /// config centre calls this every half second: an unchanged level is
    /// left alone, since every change rebuilds tracing's callsite cache
    /// under a process-wide lock.
    pub fn set_level(&self, level: &str) {
        if let Some(filter) = parse_level(level) {
            if self.handle.with_current(|f| *f != filter).unwrap_or(true) {
                let _ = self.handle.modify(|f| *f = filter);
            }
        }
    }
}

fn parse_level(level: &str) -> Option<LevelFilter> {
    Some(match level {
        "error" => LevelFilter::ERROR,
        "warn" => LevelFilter::WARN,
        "info" => LevelFilter::INFO,
        "debug" => LevelFilter::DEBUG,
        "trace" => LevelFilter::TRACE,
        _ => return None,
    })
}

/// Installs the global subscriber writing to stderr.
pub fn init(level: &str, format: &str) -> LogReload {
    let (filter, handle) = reload::Layer::new(parse_level(level).unwrap_or(LevelFilter::INFO));
    let registry = tracing_subscriber::registry().with(filter);
    if format == "json" {
        let _ = registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_ansi(false)
                    .with_writer(std::io::stderr)
                    .with_thread_names(true),
            )
            .try_init();
    } else {
        let _ = registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr)
                    .with_thread_names(true),
            )
            .try_init();
    }
    LogReload { handle }
}
