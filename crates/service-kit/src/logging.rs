//! Logging through env_logger for every service: `RUST_LOG` filters (default `info`), and
//! `LOG_FORMAT` chooses text (the default) or one JSON object per line for log collectors.

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
    serde_json::json!({
        "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "level": record.level().as_str(),
        "target": record.target(),
        "message": record.args().to_string(),
    })
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
}
