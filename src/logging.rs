//! Log output: one line per event, text or JSON, with a level that SIGHUP can
//! change at run time. Every line names the node, the shard that wrote it
//! and, while a request or frame is being handled, its request id (the
//! client's or nginx's `X-Request-Id`, else one made here). Business events
//! (`log.events`) add the game and player ids. Nothing passwords, tokens or
//! keys is ever logged: the service layer logs ids only, and a test greps the
//! logs of a whole business run for the secrets it used.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
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

/// Installs the global subscriber writing to stderr; `node_id` goes on
/// every line.
pub fn init(level: &str, format: &str, node_id: &str) -> LogReload {
    let _ = NODE_ID.set(node_id.to_string());
    let (filter, handle) = reload::Layer::new(parse_level(level).unwrap_or(LevelFilter::INFO));
    let lines = LineFormat {
        json: format == "json",
        ansi: format != "json" && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .event_format(lines),
        )
        .try_init();
    LogReload { handle }
}

/// `node.id`, for every line.
static NODE_ID: OnceLock<String> = OnceLock::new();

thread_local! {
    /// The request being handled on this thread right now (set while its
    /// future is polled).
    static CURRENT: RefCell<CurrentRequest> = const { RefCell::new(CurrentRequest::None) };
    /// Numbers of the request ids this thread makes up.
    static NEXT_NUMBER: Cell<u64> = const { Cell::new(1) };
    /// The shard this thread runs, once the runtime said so.
    static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Marks this thread as shard `id`'s (every line it writes says so).
pub fn set_thread_shard(id: usize) {
    SHARD.with(|s| s.set(Some(id)));
}

/// Runs `f` with `id` as this thread's current request id: what [`Tagged`]
/// does around each poll, for work that is not a future (the access line
/// written after a request's future has finished).
pub fn within<T>(id: RequestId<'_>, f: impl FnOnce() -> T) -> T {
    CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        match (id, &mut *c) {
            (RequestId::Given(id), CurrentRequest::Given(buf)) => {
                buf.clear();
                buf.push_str(id);
            }
            (RequestId::Given(id), other) => *other = CurrentRequest::Given(id.to_string()),
            (RequestId::Numbered(n), other) => *other = CurrentRequest::Numbered(n),
        }
    });
    let out = f();
    CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        if let CurrentRequest::Given(buf) = &mut *c {
            buf.clear(); // keeps the buffer for the next request
        } else {
            *c = CurrentRequest::None;
        }
    });
    out
}

/// What [`CURRENT`] holds.
enum CurrentRequest {
    None,
    /// The id the client or proxy sent (a reused buffer).
    Given(String),
    /// A number made up here, shown as `<node>-<shard>-<n>`.
    Numbered(u64),
}

/// The request id of one request or frame, as [`Tagged`] carries it.
#[derive(Debug, Clone, Copy)]
pub enum RequestId<'a> {
    /// The client's or proxy's `X-Request-Id` (already checked printable).
    Given(&'a str),
    /// Made up by this thread: [`RequestId::next`].
    Numbered(u64),
}

impl RequestId<'_> {
    /// A new id made up by this thread (a counter: cheap, and with the node
    /// and shard it is unique in the cluster for the process's life).
    pub fn next() -> RequestId<'static> {
        RequestId::Numbered(NEXT_NUMBER.with(|n| {
            let v = n.get();
            n.set(v.wrapping_add(1));
            v
        }))
    }
}

pin_project_lite::pin_project! {
    /// A future whose log lines carry a request id: the id is put in place
    /// each time the future is polled and taken away when the poll returns,
    /// so the requests a shard interleaves each log their own.
    pub struct Tagged<'a, F> {
        id: RequestId<'a>,
        #[pin]
        inner: F,
    }
}

impl<'a, F: Future> Tagged<'a, F> {
    /// `inner`, tagged with `id`.
    pub fn new(id: RequestId<'a>, inner: F) -> Tagged<'a, F> {
        Tagged { id, inner }
    }
}

impl<F: Future> Future for Tagged<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        within(*this.id, || inner.poll(cx))
    }
}

/// The shard of this thread ([`set_thread_shard`]); `None` on the main and
/// helper threads.
fn shard_of_thread() -> Option<usize> {
    SHARD.with(Cell::get)
}

/// The request id being handled on this thread, if any.
fn current_request_id(shard: Option<usize>) -> Option<String> {
    CURRENT.with(|c| match &*c.borrow() {
        CurrentRequest::Given(id) if !id.is_empty() => Some(id.clone()),
        CurrentRequest::Numbered(n) => Some(format!(
            "{}-{}-{n}",
            NODE_ID.get().map_or("-", String::as_str),
            shard.map_or_else(|| "main".to_string(), |s| s.to_string())
        )),
        _ => None,
    })
}

/// Formats lines: `json` one object per line (`timestamp`, `level`,
/// `target`, `node`, `shard`, `request_id`, `message`, then the event's
/// fields), else text with the same parts.
struct LineFormat {
    json: bool,
    ansi: bool,
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let shard = shard_of_thread();
        let request_id = current_request_id(shard);
        let node = NODE_ID.get().map_or("-", String::as_str);
        let mut fields = FieldsToJson::default();
        event.record(&mut fields);
        let timestamp = crate::clock::rfc3339_ms(crate::clock::now_ms());
        if self.json {
            let mut line = serde_json::Map::new();
            line.insert("timestamp".into(), timestamp.into());
            line.insert("level".into(), meta.level().as_str().into());
            line.insert("target".into(), meta.target().into());
            line.insert("node".into(), node.into());
            line.insert(
                "shard".into(),
                shard.map_or(serde_json::Value::Null, Into::into),
            );
            line.insert(
                "request_id".into(),
                request_id.map_or(serde_json::Value::Null, Into::into),
            );
            line.insert("message".into(), fields.message.unwrap_or_default().into());
            for (k, v) in fields.fields {
                // The context's fields win, but an event's own `request_id`
                // fills the place when no request is being handled.
                match line.get_mut(&k) {
                    Some(slot) if slot.is_null() => *slot = v,
                    Some(_) => {}
                    None => {
                        line.insert(k, v);
                    }
                }
            }
            let text = serde_json::to_string(&line).map_err(|_| std::fmt::Error)?;
            writeln!(writer, "{text}")
        } else {
            let (dim, bold, reset) = if self.ansi {
                ("\x1b[2m", "\x1b[1m", "\x1b[0m")
            } else {
                ("", "", "")
            };
            write!(
                writer,
                "{dim}{timestamp}{reset} {bold}{:>5}{reset} {node} {}",
                meta.level().as_str(),
                shard.map_or_else(|| "main".to_string(), |s| format!("shard-{s}")),
            )?;
            if let Some(id) = request_id {
                write!(writer, " request_id={id:?}")?;
            }
            write!(
                writer,
                " {dim}{}:{reset} {}",
                meta.target(),
                fields.message.unwrap_or_default()
            )?;
            for (k, v) in &fields.fields {
                match v {
                    serde_json::Value::String(s) if fields.formatted.contains(k) => {
                        write!(writer, " {k}={s}")?
                    }
                    serde_json::Value::String(s) => write!(writer, " {k}={s:?}")?,
                    other => write!(writer, " {k}={other}")?,
                }
            }
            writeln!(writer)
        }
    }
}

/// An event's fields as JSON values (`message` kept apart).
#[derive(Default)]
struct FieldsToJson {
    message: Option<String>,
    fields: Vec<(String, serde_json::Value)>,
    /// Fields recorded through `Debug` or `Display` (`?x`, `%x`): text lines
    /// show them as they format themselves, unquoted, as tracing's own
    /// formatter does; string fields are quoted.
    formatted: Vec<String>,
}

impl FieldsToJson {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.fields.push((field.name().to_string(), value));
        }
    }
}

impl Visit for FieldsToJson {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        if field.name() != "message" {
            self.formatted.push(field.name().to_string());
        }
        self.put(field, text.into());
    }
}
