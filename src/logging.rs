//! Log lines on standard output, text or JSON, each line of a request naming its ID.
//!
//! The request ID is not a tracing span. A span per request was registered, had its
//! fields formatted, was entered and left at every poll and was closed, whether or not a
//! line was logged: about 6 % of a proxied request's instructions (docs/benchmarks.md).
//! The ID is a task-local value instead, set around the request's future
//! ([`with_request_id`]); the formatters here read it only when they write a line. The
//! lines look as they did with the span: `request{id=…}:` in text, `span` and `spans`
//! in JSON.

use std::fmt;
use std::future::Future;
use std::io::IsTerminal;

use http::HeaderValue;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

tokio::task_local! {
    static REQUEST_ID: HeaderValue;
}

/// The target of the access log's lines (`[log] access`, `server::access_log`): on at
/// `info` whatever the log level, unless the level names it.
pub const ACCESS_TARGET: &str = "tokengate::access";

/// `request` with `id` as its request ID: every line it logs names it. Only its own
/// task: work it spawns logs without the ID. (Not an `async fn`: that would move the
/// request's future once more.)
pub fn with_request_id<F: Future>(id: HeaderValue, request: F) -> impl Future<Output = F::Output> {
    REQUEST_ID.scope(id, request)
}

/// The ID of the request this task is serving, if it is serving one.
fn request_id() -> Option<HeaderValue> {
    REQUEST_ID.try_with(HeaderValue::clone).ok()
}

/// Sets up logging for the process: `RUST_LOG` as a level and `target=level` directives
/// (a target filter: checking span or field filters would take a lock at every step of
/// every request), text unless `TOKENGATE_LOG_FORMAT=json`. [`set_level`] changes the
/// level later (`[log] level`, at start and on reload).
pub fn init() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let directives = std::env::var("RUST_LOG").unwrap_or_default();
    let filter = match directives.trim() {
        "" => Targets::new().with_default(Level::INFO),
        text => text.parse::<Targets>().unwrap_or_else(|e| {
            eprintln!("tokengate: RUST_LOG={text:?} is not understood ({e}); logging at info");
            Targets::new().with_default(Level::INFO)
        }),
    };
    let registry = tracing_subscriber::registry().with(level::install(filter));
    if std::env::var("TOKENGATE_LOG_FORMAT").is_ok_and(|v| v == "json") {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(Json)
                    .with_writer(output::Output),
            )
            .init();
    } else {
        // Colours only for a person at a terminal: a log file or collector gets no
        // escape codes.
        let ansi = std::io::stdout().is_terminal();
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .event_format(Text)
                    .with_writer(output::Output),
            )
            .init();
    }
}

/// Sets the log level from `directives`, as `RUST_LOG` reads them (`"info"`,
/// `"tokengate=debug,info"`; `[log] level`), for every line from now on; an empty string
/// restores the level the process started with (`RUST_LOG`, else `info`). The access log
/// (`tokengate::access`) stays at `info` unless the directives name it. Directives that
/// cannot be read are refused (`Err` says why) and the level stays as it was. Before
/// [`init`] (a gateway served in a test's process) the directives are only checked.
pub fn set_level(directives: &str) -> Result<(), String> {
    let targets = match directives.trim() {
        "" => None,
        text => Some(parse_level(text)?),
    };
    level::set(targets);
    Ok(())
}

/// `[log] level` read as [`set_level`] reads it: comma-separated `target=level`
/// directives and at most a bare level (a bare word that is no level is refused: as a
/// target of its own it would switch every other line off, and is most likely a typo).
pub fn parse_level(directives: &str) -> Result<Targets, String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let text = directives.trim();
    if text.is_empty() {
        return Err("must not be empty (leave it out to use RUST_LOG, else info)".into());
    }
    for directive in text.split(',').map(str::trim) {
        if !directive.contains('=') && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{directive:?} is not a level (trace, debug, info, warn, error, off); \
                 name a target as target=level"
            ));
        }
    }
    text.parse::<Targets>()
        .map_err(|e| format!("{text:?} is not a level or target=level list ({e})"))
}

mod json;
mod level;
mod output;
mod time;

/// Writes the access lines still gathered (see `output`): before the process ends.
pub fn flush() {
    output::flush();
}

/// Runs `f` (which logs a line) as part of the request `id`: the line names it as the
/// request's other lines do. For lines written after the request's own task let go of
/// it (the access log, when the response body ends).
pub(crate) fn in_request<R>(id: HeaderValue, f: impl FnOnce() -> R) -> R {
    REQUEST_ID.sync_scope(id, f)
}

/// `2026-11-24T19:05:10.123456Z  WARN request{id=…}: target: message key=value`
pub struct Text;

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        time::write_now(&mut w)?;
        // Pieces written whole, not formatted: this runs for every line (and, with the
        // access log on, for every request).
        let level = *event.metadata().level();
        if w.has_ansi_escapes() {
            w.write_char(' ')?;
            w.write_str(colour(level))?;
            w.write_str(padded(level))?;
            w.write_str("\x1b[0m ")?;
        } else {
            w.write_char(' ')?;
            w.write_str(padded(level))?;
            w.write_char(' ')?;
        }
        let mut spans = 0;
        if let Some(id) = request_id() {
            // The ID is of `[A-Za-z0-9-_.:]` only (server::request): written as it is.
            w.write_str("request{id=")?;
            w.write_str(id.to_str().unwrap_or("-"))?;
            w.write_str("}:")?;
            spans += 1;
        }
        // As the default format shows them.
        for (name, fields) in open_spans(ctx) {
            w.write_str(name)?;
            if !fields.is_empty() {
                write!(w, "{{{fields}}}")?;
            }
            w.write_char(':')?;
            spans += 1;
        }
        if spans > 0 {
            w.write_char(' ')?;
        }
        let target = event.metadata().target();
        w.write_str(target)?;
        w.write_str(": ")?;
        if target == ACCESS_TARGET {
            // One per request: written plainly (see `PlainFields`).
            let mut fields = PlainFields {
                w: &mut w,
                first: true,
                result: Ok(()),
            };
            event.record(&mut fields);
            fields.result?;
        } else {
            ctx.format_fields(w.by_ref(), event)?;
        }
        writeln!(w)
    }
}

/// The fields of an access line, `name=value` each, as the default format writes them
/// without colours: the default's styling machinery costs more than the line's fields
/// themselves, even when it has no colour to add. Access lines hold numbers, methods,
/// paths and tags: nothing a colour or quotes would help with.
struct PlainFields<'a, 'w> {
    w: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl PlainFields<'_, '_> {
    /// ` name=`, then `value`, unless writing failed already.
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let separator = if std::mem::take(&mut self.first) {
            ""
        } else {
            " "
        };
        self.result = (self.w.write_str(separator))
            .and_then(|()| self.w.write_str(field.name()))
            .and_then(|()| self.w.write_char('='))
            .and_then(|()| value(self.w));
    }
}

impl Visit for PlainFields<'_, '_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| write_u64(w, value));
    }
    /// As it is, unquoted: an access line's strings are methods, paths, routes and tags,
    /// none with a space or a control character (the `http` crate refuses them in a
    /// request line), so a line stays one line of `name=value` pairs.
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |w| w.write_str(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |w| write!(w, "{value:?}"));
    }
}

/// `n` in decimal, without the formatting machinery (a line's numbers are many).
fn write_u64(w: &mut impl fmt::Write, mut n: u64) -> fmt::Result {
    let mut text = [0u8; 20];
    let mut start = text.len();
    loop {
        start -= 1;
        text[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Digits only.
    w.write_str(std::str::from_utf8(&text[start..]).map_err(|_| fmt::Error)?)
}

/// The spans other code opened around an event (tokengate opens none), outermost first:
/// each one's name and formatted fields.
fn open_spans<S, N>(ctx: &FmtContext<'_, S, N>) -> Vec<(&'static str, String)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    ctx.event_scope()
        .into_iter()
        .flat_map(|scope| scope.from_root())
        .map(|span| {
            let fields = span
                .extensions()
                .get::<FormattedFields<N>>()
                .map(|f| f.fields.clone())
                .unwrap_or_default();
            (span.name(), fields)
        })
        .collect()
}

/// The level right-aligned in five columns, as `{level:>5}` writes it.
fn padded(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => " WARN",
        Level::INFO => " INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

fn colour(level: Level) -> &'static str {
    match level {
        Level::ERROR => "\x1b[31m",
        Level::WARN => "\x1b[33m",
        Level::INFO => "\x1b[32m",
        Level::DEBUG => "\x1b[34m",
        Level::TRACE => "\x1b[35m",
    }
}

/// One JSON object per line: `timestamp`, `level`, `target`, `fields` (the message under
/// `message`), and in a request `span` (`{"name":"request","id":…}`) and `spans` (the
/// request's, then any other code opened, outermost first).
pub struct Json;

impl<S, N> FormatEvent<S, N> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    /// Written member by member, in the order a map sorted by key had them before
    /// (`fields`, `level`, `span`, `spans`, `target`, `timestamp`); the fields in the
    /// order the event has them.
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        w.write_str("{\"fields\":{")?;
        let mut fields = json::Fields::new(&mut w);
        event.record(&mut fields);
        fields.finish()?;
        w.write_str("},\"level\":\"")?;
        w.write_str(event.metadata().level().as_str())?;
        w.write_char('"')?;
        let id = request_id();
        let open = open_spans(ctx);
        // A span entry: the request's (`{"id":…,"name":"request"}`) or another's.
        let entry = |w: &mut Writer<'_>, i: usize| -> fmt::Result {
            match (&id, i) {
                (Some(id), 0) => {
                    w.write_str("{\"id\":")?;
                    json::string(w, id.to_str().unwrap_or("-"))?;
                    w.write_str(",\"name\":\"request\"}")
                }
                _ => {
                    let (name, fields) = &open[i - usize::from(id.is_some())];
                    w.write_char('{')?;
                    if !fields.is_empty() {
                        w.write_str("\"fields\":")?;
                        json::string(w, fields)?;
                        w.write_char(',')?;
                    }
                    w.write_str("\"name\":")?;
                    json::string(w, name)?;
                    w.write_char('}')
                }
            }
        };
        let spans = usize::from(id.is_some()) + open.len();
        if spans > 0 {
            w.write_str(",\"span\":")?;
            entry(&mut w, spans - 1)?;
            w.write_str(",\"spans\":[")?;
            for i in 0..spans {
                if i > 0 {
                    w.write_char(',')?;
                }
                entry(&mut w, i)?;
            }
            w.write_char(']')?;
        }
        w.write_str(",\"target\":")?;
        json::string(&mut w, event.metadata().target())?;
        w.write_str(",\"timestamp\":\"")?;
        time::write_now(&mut w)?;
        w.write_str("\"}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::sync::{Arc, Mutex};

    /// Lines written under a subscriber with `format`, while `body` runs on a runtime.
    fn capture<E>(format: E, body: impl Future<Output = ()>) -> String
    where
        E: FormatEvent<
                tracing_subscriber::Registry,
                tracing_subscriber::fmt::format::DefaultFields,
            > + Send
            + Sync
            + 'static,
    {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .event_format(format)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        tracing::subscriber::with_default(subscriber, || runtime.block_on(body));
        let bytes = out.lock().expect("capture").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("capture").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn a_request_and_after() {
        let id = HeaderValue::from_static("0123abcd-7");
        with_request_id(id, async {
            tokio::task::yield_now().await;
            tracing::warn!(attempt = 2, reason = "gone", "upstream request failed");
        })
        .await;
        tracing::info!("outside any request");
    }

    #[test]
    fn text_lines_of_a_request_name_its_id() {
        let out = capture(Text, a_request_and_after());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(
            lines[0].ends_with(
                " WARN request{id=0123abcd-7}: tokengate::logging::tests: \
                 upstream request failed attempt=2 reason=\"gone\""
            ),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with("  INFO tokengate::logging::tests: outside any request"),
            "{}",
            lines[1]
        );
    }

    async fn inside_another_span() {
        let id = HeaderValue::from_static("0123abcd-8");
        with_request_id(id, async {
            let _outer = tracing::info_span!("outer", k = 1).entered();
            tracing::info!("in both");
        })
        .await;
    }

    #[test]
    fn spans_other_code_opens_follow_the_request() {
        let text = capture(Text, inside_another_span());
        assert!(
            text.trim_end().ends_with(
                " INFO request{id=0123abcd-8}:outer{k=1}: tokengate::logging::tests: in both"
            ),
            "{text}"
        );
        let json = capture(Json, inside_another_span());
        let line: Value = serde_json::from_str(json.trim_end()).expect("a JSON line");
        assert_eq!(line["spans"][0]["id"], "0123abcd-8");
        assert_eq!(line["spans"][1]["name"], "outer");
        assert_eq!(line["spans"][1]["fields"], "k=1");
        assert_eq!(line["span"]["name"], "outer");
    }

    /// The one test that installs the live level (it is process-wide): the level changes
    /// for lines from then on, a bad one is refused and changes nothing, an empty one
    /// restores the start, and the access log's lines stay whatever the level.
    #[test]
    fn the_level_changes_live_and_the_access_log_stays_on() {
        use tracing_subscriber::layer::SubscriberExt;
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::registry()
            .with(level::install(Targets::new().with_default(Level::INFO)))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .event_format(Text)
                    .with_writer(move || Sink(sink.clone())),
            );
        let lines = || {
            let text = String::from_utf8(std::mem::take(&mut *out.lock().expect("capture")));
            text.expect("utf-8")
        };
        tracing::subscriber::with_default(subscriber, || {
            let log_all = || {
                tracing::debug!("debug line");
                tracing::info!("info line");
                tracing::warn!("warn line");
                tracing::info!(target: "tokengate::access", status = 200);
            };
            log_all();
            let at_start = lines();
            assert!(!at_start.contains("debug line") && at_start.contains("info line"));

            set_level("tokengate=debug,warn").expect("a valid level");
            log_all();
            let debug = lines();
            assert!(
                debug.contains("debug line") && debug.contains("warn line"),
                "{debug}"
            );

            set_level("error").expect("a valid level");
            log_all();
            let quiet = lines();
            assert!(!quiet.contains("warn line"), "{quiet}");
            assert!(quiet.contains("tokengate::access: status=200"), "{quiet}");

            assert!(set_level("eror").is_err());
            set_level("tokengate::access=off,info").expect("a valid level");
            log_all();
            let no_access = lines();
            assert!(no_access.contains("info line") && !no_access.contains("status=200"));

            set_level("").expect("the start-up level");
            log_all();
            let again = lines();
            assert!(
                !again.contains("debug line") && again.contains("info line"),
                "{again}"
            );
        });
    }

    async fn awkward_values() {
        tracing::warn!(
            ratio = 0.25,
            nothing = f64::NAN,
            below = -42i64,
            most = u64::MAX,
            none = 0u64,
            on = true,
            text = "a \"quoted\"\nline",
            "said \"no\"\tthen left"
        );
    }

    #[test]
    fn access_lines_are_written_plainly() {
        let out = capture(Text, async {
            tracing::info!(
                target: "tokengate::access",
                method = %http::Method::GET,
                path = "/api/x",
                status = 200u16,
                bytes = 0u64,
                most = u64::MAX,
                session = Some(tracing::field::display("0123456789ab")),
                absent = None::<u64>,
            );
        });
        assert!(
            out.trim_end().ends_with(
                " INFO tokengate::access: method=GET path=/api/x status=200 bytes=0 \
                 most=18446744073709551615 session=0123456789ab"
            ),
            "{out}"
        );
    }

    #[test]
    fn json_lines_hold_any_value_as_json() {
        let out = capture(Json, awkward_values());
        let line: Value = serde_json::from_str(out.trim_end()).expect("a JSON line");
        assert_eq!(line["fields"]["message"], "said \"no\"\tthen left");
        assert_eq!(line["fields"]["ratio"], 0.25);
        assert_eq!(line["fields"]["nothing"], Value::Null);
        assert_eq!(line["fields"]["on"], true);
        assert_eq!(line["fields"]["below"], -42);
        assert_eq!(line["fields"]["most"], u64::MAX);
        assert_eq!(line["fields"]["none"], 0);
        assert_eq!(line["fields"]["text"], "a \"quoted\"\nline");
        assert_eq!(line["level"], "WARN");
        assert!(line.get("span").is_none(), "{line}");
    }

    #[test]
    fn json_lines_of_a_request_name_its_id() {
        let out = capture(Json, a_request_and_after());
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(lines.len(), 2, "{out}");
        let warn = &lines[0];
        assert_eq!(warn["level"], "WARN");
        assert_eq!(warn["target"], "tokengate::logging::tests");
        assert_eq!(warn["fields"]["message"], "upstream request failed");
        assert_eq!(warn["fields"]["attempt"], 2);
        assert_eq!(warn["fields"]["reason"], "gone");
        assert_eq!(warn["span"]["name"], "request");
        assert_eq!(warn["span"]["id"], "0123abcd-7");
        assert_eq!(warn["spans"][0]["id"], "0123abcd-7");
        assert!(warn["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(lines[1].get("span").is_none(), "{}", lines[1]);
        assert_eq!(lines[1]["fields"]["message"], "outside any request");
    }
}
