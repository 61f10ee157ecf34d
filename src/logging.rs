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
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

tokio::task_local! {
    static REQUEST_ID: HeaderValue;
}

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
/// (a static filter: checking span or field filters would take a lock at every step of
/// every request), text unless `TOKENGATE_LOG_FORMAT=json`.
pub fn init() {
    use tracing_subscriber::filter::Targets;
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
    let registry = tracing_subscriber::registry().with(filter);
    if std::env::var("TOKENGATE_LOG_FORMAT").is_ok_and(|v| v == "json") {
        registry
            .with(tracing_subscriber::fmt::layer().event_format(Json))
            .init();
    } else {
        // Colours only for a person at a terminal: a log file or collector gets no
        // escape codes.
        let ansi = std::io::stdout().is_terminal();
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .event_format(Text),
            )
            .init();
    }
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
        SystemTime.format_time(&mut w)?;
        let level = *event.metadata().level();
        if w.has_ansi_escapes() {
            write!(w, " {}{level:>5}\x1b[0m ", colour(level))?;
        } else {
            write!(w, " {level:>5} ")?;
        }
        let mut spans = 0;
        if let Some(id) = request_id() {
            // The ID is of `[A-Za-z0-9-_.:]` only (server::dispatch): written as it is.
            write!(w, "request{{id={}}}:", id.to_str().unwrap_or("-"))?;
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
        write!(w, "{}: ", event.metadata().target())?;
        ctx.format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
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
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut fields = JsonFields(Map::new());
        event.record(&mut fields);
        let mut spans = Vec::new();
        if let Some(id) = request_id() {
            spans.push(serde_json::json!({ "name": "request", "id": id.to_str().unwrap_or("-") }));
        }
        for (name, fields) in open_spans(ctx) {
            let mut entry = Map::new();
            entry.insert("name".into(), name.into());
            if !fields.is_empty() {
                entry.insert("fields".into(), fields.into());
            }
            spans.push(Value::Object(entry));
        }
        let mut line = Map::new();
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert("target".into(), event.metadata().target().into());
        line.insert("fields".into(), Value::Object(fields.0));
        if let Some(innermost) = spans.last() {
            line.insert("span".into(), innermost.clone());
            line.insert("spans".into(), Value::Array(spans));
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(w, "{text}")
    }
}

/// An event's fields as JSON values: numbers and booleans as such, the rest as text.
struct JsonFields(Map<String, Value>);

impl Visit for JsonFields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
