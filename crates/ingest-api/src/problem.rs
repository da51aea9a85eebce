//! RFC 9457 problem details, and the service's errors mapped onto them.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::auth::AuthError;
use crate::command::Violations;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One thing wrong with a command, located by a JSON pointer (RFC 6901) into the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub pointer: String,
    pub detail: String,
}

impl Violation {
    pub fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { pointer: pointer.into(), detail: detail.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the command has {} violation(s){}", .0.total(), if .0.unlisted > 0 { format!("; the first {} are listed", .0.listed.len()) } else { String::new() })]
    Invalid(Violations),
    #[error("the body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the sync becomes an event of {size} bytes, more than the {limit} bytes Kafka takes; retrying cannot help: split it into smaller syncs (a shorter window)")]
    EventTooLarge { size: usize, limit: usize },
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("the gzip body could not be decompressed: {0}")]
    BadEncoding(String),
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    #[error("this token is for device {token_device:?}, not {path_device:?}")]
    WrongDevice { token_device: String, path_device: String },
    /// The detail is the real reason (crate::auth's authorize functions write it).
    #[error("{0}")]
    Forbidden(String),
    #[error("the event could not be made durable in Kafka ({0}); nothing was accepted, retry with the same sync_id")]
    Unavailable(String),
    #[error("{0}")]
    BadQuery(String),
    #[error("not yet processed: partition {partition} is processed up to offset {committed}, the token needs {offset}; retry, or pass a longer wait")]
    NotYetProcessed { partition: i32, offset: i64, committed: i64 },
    #[error("the health-model database cannot be read right now ({0}); retry")]
    ReadUnavailable(String),
    #[error("{} reads are already waiting for the processor{}; retry in a second, or read without a wait", .max, if *.per_user { " for this user" } else { "" })]
    TooManyWaiters { max: usize, per_user: bool },
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    RateLimited(crate::rate_limit::Refusal),
}

impl ApiError {
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::MalformedJson(_) => ("malformed-json", "Malformed JSON"),
            ApiError::Invalid(_) => ("invalid-command", "The sync command is not valid"),
            ApiError::TooLarge { .. } => ("too-large", "Request too large"),
            ApiError::EventTooLarge { .. } => ("event-too-large", "Sync too large for one event"),
            ApiError::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            ApiError::BadEncoding(_) => ("bad-encoding", "Bad content encoding"),
            ApiError::Unauthorized(_) => ("unauthorized", "Unauthorized"),
            ApiError::WrongDevice { .. } | ApiError::Forbidden(_) => ("forbidden", "Forbidden"),
            ApiError::Unavailable(_) | ApiError::ReadUnavailable(_) => ("unavailable", "Temporarily unavailable"),
            ApiError::TooManyWaiters { .. } => ("too-many-waiters", "Too many waiting reads"),
            ApiError::Busy(_) => ("busy", "Busy"),
            ApiError::RateLimited(_) => ("rate-limited", "Too many requests"),
            ApiError::BadQuery(_) => ("bad-query", "Bad query"),
            ApiError::NotYetProcessed { .. } => ("not-yet-processed", "Not yet processed"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::BadEncoding(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge { .. } | ApiError::EventTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::WrongDevice { .. } | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unavailable(_)
            | ApiError::ReadUnavailable(_)
            | ApiError::TooManyWaiters { .. }
            | ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::NotYetProcessed { .. } => StatusCode::CONFLICT,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (slug, title) = self.kind();
        let status = self.status_code();
        let mut body = serde_json::json!({
            "type": format!("https://fitness.example/problems/{slug}"),
            "title": title,
            "status": status.as_u16(),
            "detail": self.to_string(),
        });
        if let ApiError::Invalid(violations) = self {
            body["violations"] = serde_json::to_value(&violations.listed).unwrap_or_default();
            body["violation_count"] = violations.total().into();
            body["unlisted_violations"] = violations.unlisted.into();
        }
        if let ApiError::NotYetProcessed { partition, offset, committed } = self {
            body["freshness"] = serde_json::json!({"partition": partition, "committed_offset": committed});
            body["required_offset"] = serde_json::json!(offset);
        }
        if let ApiError::RateLimited(refusal) = self {
            // The member the IETF RateLimit draft defines for its quota-exceeded problem.
            body["violated-policies"] = serde_json::json!([refusal.policy_name()]);
            body["retry_after_s"] = refusal.retry_after_s.into();
        }
        let mut res = HttpResponse::build(status);
        res.content_type(PROBLEM_JSON);
        match self {
            ApiError::Unauthorized(e) => {
                res.insert_header((header::WWW_AUTHENTICATE, e.challenge()));
            }
            ApiError::Unavailable(_) | ApiError::ReadUnavailable(_) => {
                res.insert_header((header::RETRY_AFTER, "5"));
            }
            ApiError::TooManyWaiters { .. } => {
                res.insert_header((header::RETRY_AFTER, "1"));
            }
            ApiError::Busy(_) => {
                res.insert_header((header::RETRY_AFTER, "30"));
            }
            ApiError::RateLimited(refusal) => {
                for (name, value) in refusal.headers() {
                    res.insert_header((name, value));
                }
            }
            ApiError::NotYetProcessed { partition, committed, .. } => {
                res.insert_header((header::RETRY_AFTER, "1"));
                res.insert_header(("X-Processed-Position", format!("{partition}:{committed}")));
            }
            _ => {}
        }
        res.body(body.to_string())
    }
}
