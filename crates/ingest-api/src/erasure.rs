//! A user's right to erasure (GDPR Article 17), through the log like every other write.
//!
//! `DELETE /v1/users/{user_id}/data` publishes one `UserDataErasureRequested` on the user's key,
//! so it lands in the user's partition after every earlier sync, and answers 202 with a
//! consistency token. The processor deletes the user's rows and records a receipt in one
//! transaction; `GET /v1/users/{user_id}/erasure` reports it. Raw events in Kafka age out with
//! the topic's retention (docs/security.md).

use actix_web::http::header;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use model_schema::erasure_receipts;
use serde_json::json;

use crate::problem::ApiError;
use crate::publisher::PublishError;
use crate::reads;
use crate::{AppState, CorrelationId};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/users/{user_id}/data", web::delete().to(request_erasure))
        .route("/v1/users/{user_id}/erasure", web::get().to(erasure_status));
}

/// `DELETE /v1/users/{user_id}/data`: only the user's own token (a device's may not erase its
/// owner's history).
async fn request_erasure(
    req: HttpRequest,
    user: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let claims = reads::claims(&req, &state)?;
    let user = user.into_inner();
    crate::auth::authorize_user_token(&claims, &user)?;
    state.rate_limits.check_read(&claims.sub)?;
    let correlation = req.extensions().get::<CorrelationId>().map(|c| c.0.clone()).unwrap_or_default();
    let erasure_id = uuid::Uuid::new_v4();
    let delivery = state.publisher.publish_erasure(&user, erasure_id, &correlation).await.map_err(|e| {
        log::warn!("erasure {erasure_id} not accepted: {e}");
        ApiError::Unavailable(match e {
            PublishError::QueueFull => "the producer queue is full".into(),
            other => other.to_string(),
        })
    })?;
    let token = events::ConsistencyToken { partition: delivery.partition, offset: delivery.offset }.to_string();
    let status_url = format!("/v1/users/{user}/erasure?consistency_token={token}");
    log::info!(target: "ingest_api::audit", "erasure {erasure_id} requested for a user at {}:{}", delivery.partition, delivery.offset);
    Ok(HttpResponse::Accepted().insert_header((header::LOCATION, status_url.clone())).json(json!({
        "erasure_id": erasure_id,
        "status": "pending",
        "partition": delivery.partition,
        "offset": delivery.offset,
        "consistency_token": token,
        "status_url": status_url,
    })))
}

#[derive(Debug, Queryable, serde::Serialize)]
struct Receipt {
    erasure_id: uuid::Uuid,
    #[serde(skip)]
    _user_id: String,
    #[serde(skip)]
    _topic: String,
    #[serde(rename = "partition")]
    kafka_partition: i32,
    #[serde(rename = "offset")]
    kafka_offset: i64,
    requested_at: DateTime<Utc>,
    completed_at: DateTime<Utc>,
    rows_deleted: i64,
}

/// `GET /v1/users/{user_id}/erasure[?consistency_token=&wait=]`: `pending` while the token's
/// request is not processed yet; with a token, `completed` when its receipt exists, else
/// `failed`; without one, `completed` when any receipt exists, else `none`.
async fn erasure_status(
    req: HttpRequest,
    user: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, q) = reads::user_read(&req, user, &state)?;
    let (partition, committed, pending) = match reads::position(&state, &req, &q, &user).await {
        Ok((partition, committed)) => (partition, committed, false),
        Err(ApiError::NotYetProcessed { partition, committed, .. }) => (partition, committed, true),
        Err(e) => return Err(e),
    };
    let u = user.clone();
    let receipts: Vec<Receipt> = reads::db(&state, move |c| {
        erasure_receipts::table
            .filter(erasure_receipts::user_id.eq(&u))
            .order((erasure_receipts::kafka_partition, erasure_receipts::kafka_offset))
            .load(c)
    })
    .await?;
    // With the token of a request, its own receipt decides: processed without one means the
    // processor could not carry it out (it went to the dead-letter topic).
    let requested = reads::token(&req, &q)?;
    let status = match (pending, requested) {
        (true, _) => "pending",
        (false, Some(t)) if receipts.iter().any(|r| r.kafka_partition == t.partition && r.kafka_offset == t.offset) => {
            "completed"
        }
        (false, Some(_)) => "failed",
        (false, None) if receipts.is_empty() => "none",
        (false, None) => "completed",
    };
    let mut body = json!({"user_id": user, "status": status, "erasures": receipts});
    if status == "failed" {
        body["detail"] = json!("the request at this consistency token was processed but no erasure was carried out there (it went to the dead-letter topic, or the token is not an erasure's); send DELETE again");
    }
    Ok(reads::fresh(body, partition, committed))
}
