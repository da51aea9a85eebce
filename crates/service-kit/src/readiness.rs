//! `/healthz` (the process is alive) and `/readyz` (it can do its work now), the same in every
//! service: a JSON object with `status` and one member per named check, `"ok"` or why not.

use std::sync::{Arc, Mutex};

use actix_web::HttpResponse;
use serde::Serialize;

/// The body of `/healthz`: always `{"status": "ok"}` while the process answers.
pub fn alive() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// A condition a background part of a service keeps up to date and `/readyz` reports: ok, or
/// the reason it is not (a retried outage, a topic that changed). Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct Condition(Arc<Mutex<Option<String>>>);

impl Condition {
    /// A condition that holds until [`fail`](Self::fail) says otherwise.
    pub fn ok() -> Self {
        Self::default()
    }

    /// A condition that does not hold yet, for `why`.
    pub fn failing(why: impl Into<String>) -> Self {
        Self(Arc::new(Mutex::new(Some(why.into()))))
    }

    pub fn fail(&self, why: impl Into<String>) {
        *self.lock() = Some(why.into());
    }

    pub fn recover(&self) {
        *self.lock() = None;
    }

    /// Ok, or why not.
    pub fn check(&self) -> Result<(), String> {
        self.lock().clone().map_or(Ok(()), Err)
    }

    pub fn holds(&self) -> bool {
        self.lock().is_none()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The `/readyz` report: 200 when every check passes, else 503.
#[derive(Debug, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Result<(), String>)>,
    notes: Vec<(&'static str, String)>,
}

/// The JSON of a report, `{"status": "ready", "database": "ok", ...}`.
#[derive(Debug, Serialize)]
pub struct ReadinessReport {
    /// `ready` or `not ready`.
    pub status: &'static str,
    /// Each check by name: `ok`, or why it failed.
    #[serde(flatten)]
    pub checks: serde_json::Map<String, serde_json::Value>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn check(mut self, name: &'static str, result: Result<(), String>) -> Self {
        self.checks.push((name, result));
        self
    }

    /// A fact shown in the report that readiness does not depend on.
    pub fn note(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.notes.push((name, value.into()));
        self
    }

    pub fn is_ready(&self) -> bool {
        self.checks.iter().all(|(_, r)| r.is_ok())
    }

    pub fn report(&self) -> ReadinessReport {
        let checks = self
            .checks
            .iter()
            .map(|(name, r)| (name.to_string(), r.as_ref().err().map_or("ok", String::as_str).into()))
            .chain(self.notes.iter().map(|(name, value)| (name.to_string(), value.as_str().into())))
            .collect();
        ReadinessReport { status: if self.is_ready() { "ready" } else { "not ready" }, checks }
    }

    pub fn into_response(self) -> HttpResponse {
        let report = self.report();
        if self.is_ready() {
            HttpResponse::Ok().json(report)
        } else {
            HttpResponse::ServiceUnavailable().json(report)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passes() {
        let ok = Readiness::new().check("database", Ok(())).check("broker", Ok(()));
        assert!(ok.is_ready());
        assert_eq!(serde_json::to_value(ok.report()).unwrap()["database"], "ok");
        let down = Readiness::new()
            .check("database", Ok(()))
            .check("broker", Err("topic t not found".into()))
            .note("watermark_listener", "connecting");
        assert!(!down.is_ready());
        let report = serde_json::to_value(down.report()).unwrap();
        assert_eq!(report["status"], "not ready");
        assert_eq!(report["broker"], "topic t not found");
        assert_eq!(report["watermark_listener"], "connecting");
        assert!(Readiness::new().note("listener", "connecting").is_ready(), "a note is not a check");
        assert_eq!(down.into_response().status(), 503);
    }

    #[test]
    fn a_condition_is_shared_by_its_clones() {
        let processing = Condition::ok();
        let seen_by_readyz = processing.clone();
        processing.fail("retrying a database outage");
        assert_eq!(seen_by_readyz.check(), Err("retrying a database outage".into()));
        processing.recover();
        assert!(seen_by_readyz.holds());
        assert!(!Condition::failing("not checked yet").holds());
    }
}
