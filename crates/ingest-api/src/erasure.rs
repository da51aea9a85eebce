//! A user's right to erasure (GDPR Article 17), through the log like every other write.
//!
//! `DELETE /v1/users/{user_id}/data` publishes one `UserDataErasureRequested` on the user's key,
//! so it lands in the user's partition after every earlier sync, and answers 202 with a
//! consistency token. The processor deletes the user's rows and records a receipt in one
//! transaction; `GET /v1/users/{user_id}/erasure` reports it. Raw events in Kafka age out with
//! the topic's retention (docs/security.md).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use model_schema::erasure_receipts;
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::ApiError;
use crate::publisher::PublishError;
use crate::reads::{self, ConsistencyHeader, ConsistencyParams, Freshness};
use crate::{AppState, RequestContext};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/users/{user_id}/data", web::delete().to(request_erasure))
        .route("/v1/users/{user_id}/erasure", web::get().to(erasure_status));
}

/// The answer to an erasure request: where it is in Kafka, and where to follow it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureAccepted {
    pub erasure_id: uuid::Uuid,
    #[schema(inline)]
    pub status: ErasurePending,
    pub partition: i32,
    pub offset: i64,
    /// opaque; pass it to the erasure status for read-your-writes
    pub consistency_token: String,
    /// The erasure's status route, with the consistency token (also the Location header)
    pub status_url: String,
}

/// An accepted erasure is `pending` until the processor carries it out.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ErasurePending {
    Pending,
}

/// Erase everything stored about the user (GDPR Article 17), through the log
///
/// Publishes one UserDataErasureRequested event on the user's key, so it follows every earlier
/// sync of the user in their partition, and answers 202 once Kafka acknowledged it. The processor
/// deletes every row of the user and records a receipt (no health data) in one transaction;
/// earlier syncs redelivered later do not bring data back. Raw events leave Kafka with the topic's
/// retention (retention.ms, 7 days by default): erasure is complete when that has passed after the
/// receipt. Only the user's own token; a device token is 403.
#[utoipa::path(
    delete,
    path = "/v1/users/{user_id}/data",
    operation_id = "requestErasure",
    extensions(("x-auth" = json!("user"))),
    params(("user_id" = String, Path, description = "The user; only their own token")),
    responses(
        (status = 202, description = "accepted: durable in Kafka, not yet processed", body = ErasureAccepted,
            headers(("Location" = String, description = "the status URL with the consistency token"))),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::NotTheUsersToken),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, description = "Kafka could not take the event; nothing was accepted. Retry after Retry-After seconds.",
            body = crate::problem::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = inline(crate::openapi::RetrySeconds), description = "Seconds to wait"))),
    )
)]
pub(crate) async fn request_erasure(
    req: HttpRequest,
    user: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let claims = reads::claims(&req, &state)?;
    let user = user.into_inner();
    crate::auth::authorize_user_token(&claims, &user)?;
    state.rate_limits.check_read(&claims.sub)?;
    let context = RequestContext::of(&req);
    let erasure_id = uuid::Uuid::new_v4();
    let delivery = state.publisher.publish_erasure(&user, erasure_id, &context).await.map_err(|e| {
        log::warn!("erasure {erasure_id} not accepted: {e}");
        ApiError::Unavailable(match e {
            PublishError::QueueFull => "the producer queue is full".into(),
            other => other.to_string(),
        })
    })?;
    let token = events::ConsistencyToken { partition: delivery.partition, offset: delivery.offset }.to_string();
    let status_url = format!("/v1/users/{user}/erasure?consistency_token={token}");
    log::info!(target: "ingest_api::audit", "erasure {erasure_id} requested for a user at {}:{}", delivery.partition, delivery.offset);
    Ok(HttpResponse::Accepted().insert_header((header::LOCATION, status_url.clone())).json(ErasureAccepted {
        erasure_id,
        status: ErasurePending::Pending,
        partition: delivery.partition,
        offset: delivery.offset,
        consistency_token: token,
        status_url,
    }))
}

/// The receipt of a carried-out erasure: when, where its request was in Kafka, and how many rows
/// went. It holds no health data.
#[derive(Debug, Queryable, Serialize, ToSchema)]
pub struct Receipt {
    erasure_id: uuid::Uuid,
    #[serde(skip)]
    _user_id: String,
    #[serde(skip)]
    _topic: String,
    /// Where the request was in Kafka: its consistency token names the same position
    #[serde(rename = "partition")]
    kafka_partition: i32,
    #[serde(rename = "offset")]
    kafka_offset: i64,
    requested_at: DateTime<Utc>,
    completed_at: DateTime<Utc>,
    /// Rows deleted in all, over every table of the user
    rows_deleted: i64,
}

/// The state of a user's erasure requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureStatus {
    pub user_id: String,
    #[schema(inline)]
    pub status: ErasureState,
    /// Every erasure carried out for the user, oldest first
    pub erasures: Vec<Receipt>,
    /// Why a request `failed`, and what to do (`failed` only)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail: Option<String>,
    pub freshness: Freshness,
}

/// `pending` while the token's position is not processed (after the wait); with a request's token
/// `completed` when its receipt exists, else `failed` (processed without a receipt:
/// dead-lettered; send DELETE again); without a token `completed` when any receipt exists, else
/// `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ErasureState {
    Pending,
    Completed,
    Failed,
    None,
}

/// The status of the user's erasure requests: pending, completed (with receipts) or none
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/erasure",
    operation_id = "getErasure",
    extensions(("x-auth" = json!("owner"))),
    params(
        ("user_id" = String, Path, description = "The user"),
        ConsistencyParams,
        ConsistencyHeader,
    ),
    responses(
        (status = 200, description = "`pending` while the token's position is not processed (after the wait); with a request's token `completed` when its receipt exists, else `failed` (processed without a receipt: dead-lettered; send DELETE again); without a token `completed` when any receipt exists, else `none`. `erasures`: erasure_id, partition, offset, requested_at, completed_at, rows_deleted. With freshness.",
            body = ErasureStatus,
            headers(("X-Processed-Position" = String, description = "partition:committed_offset"))),
        (status = 400, response = crate::openapi::BadQuery),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::OtherUsersData),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::ReadUnavailable),
    )
)]
pub(crate) async fn erasure_status(
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
        (true, _) => ErasureState::Pending,
        (false, Some(t)) if receipts.iter().any(|r| r.kafka_partition == t.partition && r.kafka_offset == t.offset) => {
            ErasureState::Completed
        }
        (false, Some(_)) => ErasureState::Failed,
        (false, None) if receipts.is_empty() => ErasureState::None,
        (false, None) => ErasureState::Completed,
    };
    let detail = (status == ErasureState::Failed).then(|| "the request at this consistency token was processed but no erasure was carried out there (it went to the dead-letter topic, or the token is not an erasure's); send DELETE again".to_owned());
    let freshness = Freshness { partition, committed_offset: committed };
    Ok(reads::fresh(ErasureStatus { user_id: user, status, erasures: receipts, detail, freshness }, freshness))
}
