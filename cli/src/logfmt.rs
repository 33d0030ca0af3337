//! The log line formatter of the binary: the proxy's JSON access log lines go out bare,
//! one JSON object per line, whatever the format of the other lines.
use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The target of the proxy's access log events.
const ACCESS_TARGET: &str = "ringleader::access";

/// Formats events with the inner formatter, except the JSON access log lines
/// (`access_log = "json"`: an event on `ringleader::access` whose only field is a
/// message holding a JSON object), which it writes as they are, so that a log
/// shipper reads one JSON object per line under `--log-format text` and `json` alike.
#[derive(Debug, Clone, Default)]
pub struct RawAccessLines<F>(pub F);

/// Finds an event's message, and whether it has any other field.
#[derive(Default)]
struct MessageOnly {
    message: Option<String>,
    others: bool,
}

impl Visit for MessageOnly {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_string());
        } else {
            self.others = true;
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            // A format string's arguments: Debug writes them as Display does.
            self.message = Some(format!("{value:?}"));
        } else {
            self.others = true;
        }
    }
}

impl<S, N, F> FormatEvent<S, N> for RawAccessLines<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if event.metadata().target() == ACCESS_TARGET {
            let mut v = MessageOnly::default();
            event.record(&mut v);
            if let (Some(m), false) = (&v.message, v.others) {
                if m.starts_with('{') {
                    return writeln!(writer, "{m}");
                }
            }
        }
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Log `f`'s events through the formatter (JSON or text) and return the output.
    fn logged(json: bool, f: impl FnOnce()) -> String {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = buf.clone();
        let make = move || Sink(w.clone());
        let builder = tracing_subscriber::fmt().with_writer(make).with_ansi(false);
        if json {
            let s = builder
                .json()
                .event_format(RawAccessLines(tracing_subscriber::fmt::format().json()))
                .finish();
            tracing::subscriber::with_default(s, f);
        } else {
            let s = builder
                .event_format(RawAccessLines(tracing_subscriber::fmt::format()))
                .finish();
            tracing::subscriber::with_default(s, f);
        }
        let out = buf.lock().unwrap().clone();
        String::from_utf8(out).unwrap()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_access_lines_are_bare_in_both_formats_and_others_are_not() {
        let line = r#"{"status":200,"path":"/a b"}"#;
        for json in [false, true] {
            let out = logged(json, || {
                tracing::info!(target: "ringleader::access", "{}", line);
                tracing::info!(target: "ringleader::access", status = 200, "text form");
                tracing::info!(target: "other", "{}", line);
            });
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines.len(), 3, "{out}");
            assert_eq!(lines[0], line, "json = {json}");
            assert!(lines[1].contains("status") && lines[1] != line, "{out}");
            assert!(lines[2].contains("other"), "{out}");
        }
    }
}
