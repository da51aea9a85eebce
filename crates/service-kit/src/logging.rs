//! Logging through env_logger for every service: `RUST_LOG` filters (default `info`), and
//! `LOG_FORMAT` chooses text (the default) or one JSON object per line for log collectors.
//!
//! A log line's key-values (`log::info!(trace_id = t.trace_id(), span_id = t.span_id(); "...")`,
//! see [`crate::trace`]) become fields of the JSON object, and `key=value` pairs after the text.

use std::io::Write;

use crate::env::{self, EnvError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    /// From `LOG_FORMAT`: `text` or `json`.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::parse(env::optional("LOG_FORMAT").as_deref())
    }

    fn parse(raw: Option<&str>) -> Result<Self, EnvError> {
        match raw.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("text") => Ok(Self::Text),
            Some("json") => Ok(Self::Json),
            Some(_) => Err(EnvError::invalid("LOG_FORMAT", raw.unwrap_or_default(), "text (the default) or json")),
        }
    }
}

/// Installs the logger; call once, first thing in `main`. A second call (tests) is ignored.
pub fn init(format: LogFormat) {
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|buf, record| writeln!(buf, "{}", json_line(record)));
    }
    let _ = builder.try_init();
}

/// [`init`] with the format of `LOG_FORMAT`; a bad value is reported once logging works, and
/// text is used.
pub fn init_from_env() {
    match LogFormat::from_env() {
        Ok(format) => init(format),
        Err(e) => {
            init(LogFormat::Text);
            log::warn!("{e}; logging as text");
        }
    }
}

fn json_line(record: &log::Record<'_>) -> serde_json::Value {
    let mut line = serde_json::json!({
        "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "level": record.level().as_str(),
        "target": record.target(),
        "message": record.args().to_string(),
    });
    if let Some(fields) = line.as_object_mut() {
        // A key-value never replaces the four fields above.
        let _ = record.key_values().visit(&mut JsonFields(fields));
    }
    line
}

/// Copies a record's key-values into the JSON object: numbers and booleans as such, the rest as
/// text.
struct JsonFields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl<'kvs> log::kv::VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(&mut self, key: log::kv::Key<'kvs>, value: log::kv::Value<'kvs>) -> Result<(), log::kv::Error> {
        let json = if let Some(b) = value.to_bool() {
            serde_json::Value::from(b)
        } else if let Some(n) = value.to_i64() {
            serde_json::Value::from(n)
        } else if let Some(n) = value.to_u64() {
            serde_json::Value::from(n)
        } else if let Some(n) = value.to_f64().filter(|n| n.is_finite()) {
            serde_json::Value::from(n)
        } else {
            serde_json::Value::from(value.to_string())
        };
        self.0.entry(key.as_str().to_owned()).or_insert(json);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_text_unless_json_is_asked_for() {
        assert_eq!(LogFormat::parse(None), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("JSON")), Ok(LogFormat::Json));
        assert!(LogFormat::parse(Some("xml")).unwrap_err().to_string().contains("LOG_FORMAT=\"xml\""));
    }

    #[test]
    fn a_json_line_carries_level_target_and_message() {
        let line = json_line(
            &log::Record::builder()
                .args(format_args!("stopped; producer flushed"))
                .level(log::Level::Info)
                .target("ingest_api")
                .build(),
        );
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], "ingest_api");
        assert_eq!(line["message"], "stopped; producer flushed");
        assert!(line["ts"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn key_values_become_fields_without_replacing_the_message() {
        let trace = crate::trace::TraceContext::new_root();
        let kvs: [(&str, log::kv::Value<'_>); 4] = [
            ("trace_id", trace.trace_id().into()),
            ("span_id", trace.span_id().into()),
            ("partition", 3i64.into()),
            ("message", "not the message".into()),
        ];
        let line = json_line(
            &log::Record::builder()
                .args(format_args!("applied"))
                .level(log::Level::Info)
                .target("processor")
                .key_values(&kvs)
                .build(),
        );
        assert_eq!(line["trace_id"], trace.trace_id());
        assert_eq!(line["span_id"], trace.span_id());
        assert_eq!(line["partition"], 3);
        assert_eq!(line["message"], "applied");
    }
}
