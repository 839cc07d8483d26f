//! `--log.format=logfmt|json`: log lines as Prometheus (go-kit) writes
//! them, `ts=… caller=file.rs:12 level=info msg="…" key=value`, or one
//! JSON object per line with the same keys, so that tools reading
//! Prometheus's logs read raymon's. Knows the line formats, not the events.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::prom_flags::LogFormat;

/// The event formatter for [`LogFormat`].
pub struct PromFormat(pub LogFormat);

/// An event's message and fields, as text.
#[derive(Default)]
struct Fields {
    msg: String,
    rest: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.msg = value;
        } else {
            self.rest.push((field.name().to_string(), value));
        }
    }
}

/// Prometheus's timestamp: UTC with milliseconds (`2006-01-02T15:04:05.000Z`).
fn timestamp(now: SystemTime) -> String {
    let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let whole = UNIX_EPOCH + Duration::from_secs(d.as_secs());
    let s = crate::web::params::format_rfc3339_nano(Some(whole));
    format!("{}.{:03}Z", s.trim_end_matches('Z'), d.subsec_millis())
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        _ => "debug",
    }
}

/// go-logfmt's value: bare unless it holds a space, `=`, `"` or a control
/// character, then quoted with Go's escapes.
fn logfmt_value(out: &mut String, v: &str) {
    let bare = !v.is_empty()
        && !v
            .chars()
            .any(|c| c <= ' ' || c == '=' || c == '"' || c.is_control());
    if bare {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One line for `pairs` (already in output order) in `format`.
fn render(format: LogFormat, pairs: &[(String, String)]) -> String {
    let mut out = String::with_capacity(128);
    match format {
        LogFormat::Logfmt => {
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push('=');
                logfmt_value(&mut out, v);
            }
        }
        LogFormat::Json => {
            // go-kit's JSON logger marshals a map: keys come out sorted.
            let map: std::collections::BTreeMap<&str, &str> = pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            out = serde_json::to_string(&map).unwrap_or_default();
        }
    }
    out
}

impl<S, N> FormatEvent<S, N> for PromFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let file = meta
            .file()
            .map(|f| f.rsplit('/').next().unwrap_or(f))
            .unwrap_or("?");
        let mut pairs = vec![
            ("ts".to_string(), timestamp(SystemTime::now())),
            (
                "caller".to_string(),
                format!("{file}:{}", meta.line().unwrap_or(0)),
            ),
            ("level".to_string(), level_name(meta.level()).to_string()),
            ("msg".to_string(), fields.msg),
        ];
        pairs.extend(fields.rest);
        writeln!(w, "{}", render(self.0, &pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn logfmt_quotes_like_go_logfmt() {
        let p = pairs(&[
            ("level", "info"),
            ("msg", "serving the \"API\""),
            ("address", "127.0.0.1:9090"),
            ("err", ""),
        ]);
        assert_eq!(
            render(LogFormat::Logfmt, &p),
            r#"level=info msg="serving the \"API\"" address=127.0.0.1:9090 err="""#
        );
    }

    #[test]
    fn json_has_sorted_keys() {
        let p = pairs(&[("ts", "t"), ("level", "warn"), ("msg", "a b")]);
        assert_eq!(
            render(LogFormat::Json, &p),
            r#"{"level":"warn","msg":"a b","ts":"t"}"#
        );
    }

    #[test]
    fn timestamp_has_milliseconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_007);
        assert_eq!(timestamp(t), "2023-11-14T22:13:20.007Z");
    }
}
