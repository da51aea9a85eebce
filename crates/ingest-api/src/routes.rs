//! HTTP routes: the sync command, operations endpoints and the OpenAPI document.

use std::io::Read;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures::StreamExt;
use serde_json::json;
use service_kit::readiness::{self, Readiness};

use crate::command::Rejection;
use crate::problem::ApiError;
use crate::publisher::PublishError;
use crate::{command, event, AppState, CorrelationId};

/// The OpenAPI 3.1 document, as committed in the repository.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Extractor errors as problem+json, for every route of the app (the root App's app_data).
    cfg.configure(crate::problem::extractor_configs);
    cfg.route("/v1/devices/{device_id}/syncs", web::post().to(post_sync))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/openapi.json", web::get().to(openapi));
}

/// `POST /v1/devices/{device_id}/syncs`: validate, publish one DeviceSynced, answer 202 once
/// the broker acknowledged it. Never touches the database.
async fn post_sync(
    req: HttpRequest,
    device_id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let claims = crate::auth::request_claims(&req)?;
    let device_id = device_id.into_inner();
    crate::auth::authorize_device(&claims, &device_id)?;
    state.rate_limits.check_post(&claims.sub, &device_id)?;
    check_content_type(&req)?;
    let body = read_body(&req, payload, state.settings.limits.max_body_bytes).await?;
    let idempotency_key = req.headers().get("Idempotency-Key").and_then(|v| v.to_str().ok());
    let now_ms = chrono::Utc::now().timestamp_millis();
    let sync = command::parse(&body, idempotency_key, &state.settings.limits, now_ms).map_err(|r| match r {
        Rejection::Malformed(e) => ApiError::MalformedJson(e),
        Rejection::Invalid(violations) => ApiError::Invalid(violations),
    })?;

    let sync_id = sync.sync_id;
    let event_id = uuid::Uuid::new_v4();
    let event = event::device_synced(sync, &claims.sub, &device_id, event_id, now_ms);
    let correlation = req.extensions().get::<CorrelationId>().map(|c| c.0.clone()).unwrap_or_default();
    let delivery = state.publisher.publish(&event, &correlation, body.len() / 4).await.map_err(|e| {
        log::warn!("sync {sync_id} not accepted: {e}");
        match e {
            PublishError::TooLarge { size, limit } => ApiError::EventTooLarge { size, limit },
            PublishError::QueueFull => ApiError::Unavailable("the producer queue is full".into()),
            other => ApiError::Unavailable(other.to_string()),
        }
    })?;
    let token = events::ConsistencyToken { partition: delivery.partition, offset: delivery.offset }.to_string();
    let status_url = format!("/v1/syncs/{sync_id}?consistency_token={token}");
    Ok(HttpResponse::Accepted().insert_header((header::LOCATION, status_url.clone())).json(json!({
        "sync_id": sync_id,
        "event_id": event_id,
        "partition": delivery.partition,
        "offset": delivery.offset,
        "consistency_token": token,
        "status_url": status_url,
    })))
}

fn check_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!("{ct:?}: send the command as application/json")))
    }
}

/// Reads the body up to `limit` bytes, decompressing `Content-Encoding: gzip` (also bounded).
async fn read_body(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    let mut raw = Vec::with_capacity(declared.unwrap_or(16 * 1024));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::MalformedJson(format!("reading the body: {e}")))?;
        if raw.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge { limit });
        }
        raw.extend_from_slice(&chunk);
    }
    let encoding = req.headers().get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity");
    match encoding.trim().to_ascii_lowercase().as_str() {
        "identity" | "" => Ok(raw),
        "gzip" | "x-gzip" => {
            let mut out = Vec::with_capacity(raw.len() * 4);
            let mut decoder = flate2::read::GzDecoder::new(raw.as_slice()).take(limit as u64 + 1);
            decoder.read_to_end(&mut out).map_err(|e| ApiError::BadEncoding(e.to_string()))?;
            if out.len() > limit {
                return Err(ApiError::TooLarge { limit });
            }
            Ok(out)
        }
        other => Err(ApiError::UnsupportedMediaType(format!("Content-Encoding {other:?}: only gzip is accepted"))),
    }
}

/// The process is up and serving HTTP.
async fn healthz() -> HttpResponse {
    readiness::alive()
}

/// Ready when the broker knows the topic and the schema is registered.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let publisher = state.publisher.clone();
    let broker = web::block(move || publisher.broker_reachable()).await.unwrap_or_else(|e| Err(e.to_string()));
    let schema = if state.publisher.schema_registered() {
        Ok(())
    } else {
        Err(match state.publisher.registration_error() {
            Some(e) => format!("not registered yet (retrying): {e}"),
            None => "not registered yet".to_owned(),
        })
    };
    // The read side's listener is reported, not required: the command path never needs the database.
    let listener = if state.watermarks.is_connected() { "connected" } else { "connecting" };
    Readiness::new()
        .check("broker", broker)
        .check("schema", schema)
        .note("watermark_listener", listener)
        .into_response()
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.metrics.queue_depth.set(i64::from(state.publisher.queue_depth()));
    service_kit::metrics::response(&state.metrics.registry)
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(OPENAPI_JSON)
}

/// How long `run_until_stopped` waits for the producer to drain at shutdown.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
