//! HTTP routes: the sync command, operations endpoints and the OpenAPI document.

use std::io::Read;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use serde::Serialize;
use service_kit::readiness::{self, Readiness};
use utoipa::ToSchema;

use crate::command::Rejection;
use crate::problem::{ApiError, Problem};
use crate::publisher::PublishError;
use crate::{command, AppState, RequestContext};

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Extractor errors as problem+json, for every route of the app (the root App's app_data).
    cfg.configure(crate::problem::extractor_configs);
    // The OpenAPI document is generated here, once, at start-up, rather than on the first request.
    crate::openapi::json();
    cfg.route("/v1/devices/{device_id}/syncs", web::post().to(post_sync))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/openapi.json", web::get().to(openapi));
}

/// The headers `POST /v1/devices/{device_id}/syncs` reads.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct SyncHeaders {
    /// The sync id, if not in the body.
    #[param(rename = "Idempotency-Key", nullable = false)]
    pub idempotency_key: Option<uuid::Uuid>,
    /// Correlation id, echoed and put on the Kafka record.
    #[param(rename = "X-Request-Id", nullable = false)]
    pub request_id: Option<String>,
    /// A gzip body is decompressed, within the same size limit.
    #[param(rename = "Content-Encoding", nullable = false, inline)]
    pub content_encoding: Option<ContentEncoding>,
}

/// The encodings a sync's body may have.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ContentEncoding {
    Gzip,
    Identity,
}

/// The answer to an accepted sync: where its event is in Kafka, and how to read it back.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub sync_id: uuid::Uuid,
    /// The DeviceSynced event (new on every send, retries included)
    pub event_id: uuid::Uuid,
    pub partition: i32,
    pub offset: i64,
    /// opaque; pass it to the read routes for read-your-writes
    pub consistency_token: String,
    /// The sync's status route, with the consistency token (also the Location header)
    pub status_url: String,
}

/// Push a tracker's sync
///
/// Validates the SyncDevice command while the device waits (no database), publishes it as one
/// DeviceSynced event keyed by the user, and answers 202 once Kafka acknowledged it with acks=all.
#[utoipa::path(
    post,
    path = "/v1/devices/{device_id}/syncs",
    operation_id = "postSync",
    extensions(("x-auth" = json!("device"))),
    params(("device_id" = String, Path, description = "The device; its token must name it"), SyncHeaders),
    request_body(
        content = crate::openapi::SyncCommand,
        content_type = "application/json",
        examples(("standard" = (
            summary = "A standard sync: 15 minutes of wear",
            value = json!(crate::openapi::examples::standard_sync())
        )))
    ),
    responses(
        (status = 202, description = "Durable in Kafka (acks=all). Location points at the sync's status.", body = Accepted,
            headers(("Location" = String, description = "the status URL with the consistency token")),
            example = json!(crate::openapi::examples::accepted())),
        (status = 400, description = "Malformed JSON, or a gzip body that does not decompress", body = Problem,
            content_type = "application/problem+json", example = json!(crate::openapi::examples::malformed_json())),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, description = "a user token, or the token of another device; the detail says which", body = Problem,
            content_type = "application/problem+json", example = json!(crate::openapi::examples::wrong_device())),
        (status = 413, description = "Request too large: the body (as sent or decompressed) is over INGEST_MAX_BODY_BYTES, or its event would be over INGEST_MAX_EVENT_BYTES. Do not retry the same body: split the sync.",
            body = Problem, content_type = "application/problem+json",
            examples(
                ("body" = (value = json!(crate::openapi::examples::body_too_large()))),
                ("event" = (value = json!(crate::openapi::examples::event_too_large()))),
            )),
        (status = 415, description = "Unsupported media type: the body is not JSON, or its Content-Encoding is not gzip", body = Problem,
            content_type = "application/problem+json", example = json!(crate::openapi::examples::unsupported_media_type())),
        (status = 422, description = "The sync command is not valid: every violation with a JSON pointer, at most 100 listed (violation_count says how many were found, unlisted_violations how many are not listed; samples past the per-kind limit are counted in the limit's violation, not checked one by one). Includes a phone clock more than INGEST_MAX_CLOCK_SKEW_SECONDS (24 h) from the server's.",
            body = Problem, content_type = "application/problem+json", example = json!(crate::openapi::examples::invalid_command())),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, description = "Kafka could not take the event; nothing was accepted. Retry with the same sync_id after Retry-After seconds.",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = inline(crate::openapi::RetrySeconds), description = "Seconds to wait")),
            example = json!(crate::openapi::examples::kafka_unavailable())),
    )
)]
pub(crate) async fn post_sync(
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
    let event = sync.into_event(&claims.sub, &device_id, event_id, now_ms);
    let context = RequestContext::of(&req);
    let delivery = state.publisher.publish(&event, &context, body.len() / 4).await.map_err(|e| {
        let trace = &context.trace;
        log::warn!(trace_id = trace.trace_id(), span_id = trace.span_id(); "sync {sync_id} not accepted: {e}");
        match e {
            PublishError::TooLarge { size, limit } => ApiError::EventTooLarge { size, limit },
            PublishError::QueueFull => ApiError::Unavailable("the producer queue is full".into()),
            other => ApiError::Unavailable(other.to_string()),
        }
    })?;
    let token = events::ConsistencyToken { partition: delivery.partition, offset: delivery.offset }.to_string();
    let status_url = format!("/v1/syncs/{sync_id}?consistency_token={token}");
    Ok(HttpResponse::Accepted().insert_header((header::LOCATION, status_url.clone())).json(Accepted {
        sync_id,
        event_id,
        partition: delivery.partition,
        offset: delivery.offset,
        consistency_token: token,
        status_url,
    }))
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

/// The process is alive
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    extensions(("x-auth" = json!("public"))),
    responses((status = 200, description = "alive", body = inline(crate::openapi::Alive))),
)]
pub(crate) async fn healthz() -> HttpResponse {
    readiness::alive()
}

/// The broker knows the topic and the schema is registered
///
/// The watermark listener (the read side's wake-ups) is reported but not required: the command
/// path never needs the database.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    extensions(("x-auth" = json!("public"))),
    responses(
        (status = 200, description = "ready", body = inline(crate::openapi::Readiness)),
        (status = 503, description = "not ready, with the reason", body = inline(crate::openapi::Readiness)),
    ),
)]
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
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

/// Prometheus metrics
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    extensions(("x-auth" = json!("public"))),
    responses((status = 200, description = "text exposition format", body = String, content_type = "text/plain")),
)]
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.metrics.queue_depth.set(i64::from(state.publisher.queue_depth()));
    service_kit::metrics::response(&state.metrics.registry)
}

/// This document
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    extensions(("x-auth" = json!("public"))),
    responses((status = 200, description = "OpenAPI 3.1", body = Object, content_type = "application/json")),
)]
pub(crate) async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(crate::openapi::json())
}

/// How long `run_until_stopped` waits for the producer to drain at shutdown.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
