//! The audit trail: every delete, compatibility change and mode change, with who did it and
//! how it ended, as one log line on the `schema_registry::audit` target and one `audit_log` row.

use actix_web::{web, HttpRequest};

use crate::auth;
use crate::error::ApiError;
use crate::store::{self, AuditRow};
use crate::AppState;

/// The log target of audit lines.
pub const TARGET: &str = "schema_registry::audit";

/// What was attempted.
pub struct Action {
    pub name: &'static str,
    pub subject: Option<String>,
    pub version: Option<String>,
    /// E.g. the new level or mode, or `permanent=true`.
    pub detail: String,
}

impl Action {
    pub fn new(name: &'static str, subject: Option<&str>) -> Self {
        Self { name, subject: subject.map(str::to_owned), version: None, detail: String::new() }
    }

    pub fn version(mut self, version: impl ToString) -> Self {
        self.version = Some(version.to_string());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

/// Logs the action and its outcome and stores it. Storing is best effort: the action already
/// happened, and the log line carries the same facts.
pub async fn record<T>(state: &web::Data<AppState>, req: &HttpRequest, action: Action, outcome: &Result<T, ApiError>) {
    let user = auth::principal(req).user;
    let result = match outcome {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("error {}", e.error_code()),
    };
    log::info!(
        target: TARGET,
        "user={user:?} action={} subject={:?} version={} detail={:?} result={result}",
        action.name,
        action.subject.as_deref().unwrap_or(""),
        action.version.as_deref().unwrap_or("-"),
        action.detail,
    );
    let pool = state.pool.clone();
    let stored = web::block(move || -> Result<(), String> {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        let row = AuditRow {
            username: &user,
            action: action.name,
            subject: action.subject.as_deref(),
            version: action.version.as_deref(),
            detail: &action.detail,
            result: &result,
        };
        store::insert_audit(&mut conn, &row).map_err(|e| e.to_string())
    })
    .await;
    if let Err(e) = stored.map_err(|e| e.to_string()).and_then(|r| r) {
        log::error!(target: TARGET, "storing the audit row failed: {e}");
    }
}
