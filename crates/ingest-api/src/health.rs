//! Liveness.

use actix_web::{get, HttpResponse};

/// The process is up and serving HTTP.
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}
