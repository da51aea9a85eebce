//! Confluent's `/mode`: READWRITE (the default) or READONLY, globally or per subject. A subject
//! in READONLY mode refuses registrations, deletes and compatibility changes with 42205; reads,
//! look-ups and compatibility checks still work, and mode changes are always allowed (or a
//! registry could never leave READONLY).

use diesel::pg::PgConnection;

use crate::error::ApiError;
use crate::store::{self, GLOBAL};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    ReadWrite,
    ReadOnly,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = ApiError;

    fn from_str(s: &str) -> Result<Self, ApiError> {
        match s.to_ascii_uppercase().as_str() {
            "READWRITE" => Ok(Mode::ReadWrite),
            "READONLY" => Ok(Mode::ReadOnly),
            _ => Err(ApiError::InvalidMode(s.to_owned())),
        }
    }
}

/// The subject's own mode if set, else the global one, else READWRITE.
pub fn effective(conn: &mut PgConnection, subject: &str) -> Result<Mode, ApiError> {
    let configured = match store::mode(conn, subject)? {
        Some(m) => Some(m),
        None if subject != GLOBAL => store::mode(conn, GLOBAL)?,
        None => None,
    };
    configured.map(|m| m.parse()).transpose().map(|m| m.unwrap_or(Mode::ReadWrite))
}

/// 42205 unless `subject` (GLOBAL for global settings) may be changed. Call inside the write
/// transaction, so a concurrent switch to READONLY is either before or after the change.
pub fn ensure_writable(conn: &mut PgConnection, subject: &str) -> Result<(), ApiError> {
    match effective(conn, subject)? {
        Mode::ReadWrite => Ok(()),
        Mode::ReadOnly if subject == GLOBAL => Err(ApiError::ReadOnly("The registry is in read-only mode".into())),
        Mode::ReadOnly => Err(ApiError::ReadOnly(format!("Subject {subject} is in read-only mode"))),
    }
}
