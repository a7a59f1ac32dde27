//! Log lines: JSON (default) or text, to stderr. A JSON line carries the event's fields flattened, and the
//! `trace_id` and `span_id` of the span it was written in, so a log search leads to the trace and back.
//!
//! Written straight into the line, once: a span's fields are kept as ready-made JSON members (`SpanFields`) when
//! the span records them, and every line splices them in, so a request's lines cost no parsing or re-encoding.

use std::fmt::{self, Write as _};

use opentelemetry::trace::TraceContextExt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, event fields flattened, with the trace and span ids (for log pipelines).
    Json,
    /// Human-readable lines (for a terminal).
    Text,
}

/// Formats an event as one JSON object: `timestamp`, `level`, `target`, the fields of the spans it happened in
/// (outermost first: a request's `switchyard.request.id`, `switchyard.tenant`, `switchyard.policy.version`), the
/// event's own fields, and `trace_id` / `span_id` when OpenTelemetry knows the span. Span fields must be formatted
/// with [`SpanFields`].
pub struct JsonLines;

impl<S> FormatEvent<S, SpanFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, SpanFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::with_capacity(512);
        line.push_str("{\"timestamp\":\"");
        SystemTime.format_time(&mut Writer::new(&mut line))?;
        line.push_str("\",\"level\":\"");
        line.push_str(event.metadata().level().as_str());
        line.push_str("\",\"target\":");
        push_json_str(&mut line, event.metadata().target());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<FormattedFields<SpanFields>>() {
                    line.push_str(&fields.fields);
                }
            }
        }
        event.record(&mut Members(&mut line));
        if let Some(span) = ctx.lookup_current() {
            let context = tracing::dispatcher::get_default(|dispatch| {
                tracing_opentelemetry::get_otel_context(&span.id(), dispatch)
            });
            if let Some(context) = context {
                let span = context.span();
                let span_context = span.span_context();
                if span_context.is_valid() {
                    write!(
                        line,
                        ",\"trace_id\":\"{}\",\"span_id\":\"{}\"",
                        span_context.trace_id(),
                        span_context.span_id()
                    )?;
                }
            }
        }
        line.push('}');
        writeln!(writer, "{line}")
    }
}

/// Formats span fields as JSON members, each written `,"key":value`, ready to splice into a line. `otel.*` fields
/// steer the OpenTelemetry layer (span name, kind) and say nothing to a reader, so they are left out.
#[derive(Debug, Default)]
pub struct SpanFields;

impl<'writer> FormatFields<'writer> for SpanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut members = String::new();
        fields.record(&mut Members(&mut members));
        writer.write_str(&members)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        // Members carry their own leading comma: a later record appends, no separator needed.
        fields.record(&mut Members(&mut current.fields));
        Ok(())
    }
}

/// Appends each field as `,"key":value`, keeping numbers and booleans typed.
struct Members<'a>(&'a mut String);

impl Members<'_> {
    fn key(&mut self, field: &Field) -> bool {
        if field.name().starts_with("otel.") {
            return false;
        }
        self.0.push(',');
        push_json_str(self.0, field.name());
        self.0.push(':');
        true
    }
}

impl Visit for Members<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.key(field) {
            if value.is_finite() {
                let _ = write!(self.0, "{value}");
            } else {
                self.0.push_str("null");
            }
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.key(field) {
            let _ = write!(self.0, "{value}");
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.key(field) {
            let _ = write!(self.0, "{value}");
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.key(field) {
            self.0.push_str(if value { "true" } else { "false" });
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            push_json_str(self.0, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.key(field) {
            // Escaped as it is formatted: no intermediate string (every line's `message` comes this way).
            self.0.push('"');
            let _ = write!(Escaping(self.0), "{value:?}");
            self.0.push('"');
        }
    }
}

/// Appends `value` as a JSON string literal (RFC 8259 escapes).
fn push_json_str(out: &mut String, value: &str) {
    out.push('"');
    let _ = Escaping(out).write_str(value);
    out.push('"');
}

/// Writes what it is given into the string with JSON string escapes (the quotes are the caller's).
struct Escaping<'a>(&'a mut String);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, value: &str) -> fmt::Result {
        for c in value.chars() {
            match c {
                '"' => self.0.push_str("\\\""),
                '\\' => self.0.push_str("\\\\"),
                '\n' => self.0.push_str("\\n"),
                '\r' => self.0.push_str("\\r"),
                '\t' => self.0.push_str("\\t"),
                c if u32::from(c) < 0x20 => write!(self.0, "\\u{:04x}", u32::from(c))?,
                c => self.0.push(c),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::fmt::Write as _;

    use super::{Escaping, push_json_str};

    #[test]
    fn strings_are_escaped_as_json_parses_them() {
        let nasty = "quote \" backslash \\ newline \n tab \t bell \u{7} nul \u{0} café 🚀 </script>";
        let mut out = String::new();
        push_json_str(&mut out, nasty);
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, nasty);

        // Debug values are escaped as they are formatted.
        let mut debug = String::from("\"");
        write!(Escaping(&mut debug), "{nasty:?}").unwrap();
        debug.push('"');
        let parsed: String = serde_json::from_str(&debug).unwrap();
        assert_eq!(parsed, format!("{nasty:?}"));
    }
}
