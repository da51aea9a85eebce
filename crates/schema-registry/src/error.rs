//! Confluent's error bodies and codes: `{"error_code": N, "message": "..."}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::CONTENT_TYPE;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    #[error("Subject '{0}' was soft deleted. Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Subject '{0}' Version {1} was soft deleted. Set permanent=true to delete permanently")]
    VersionSoftDeleted(String, i32),
    #[error("Subject '{0}' Version {1} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String, i32),
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectConfigNotFound(String),
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]", .details.join(", "))]
    Incompatible { subject: String, details: Vec<String> },
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive; got {0:?}")]
    InvalidCompatibilityLevel(String),
    #[error("Unrecognized field or malformed request body: {0}")]
    BadRequest(String),
    #[error("Unsupported content type {0:?}; send application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json or application/json")]
    UnsupportedMediaType(String),
    #[error("Subject '{0}' does not have subject-level mode configured")]
    SubjectModeNotFound(String),
    #[error("Invalid mode. Valid values are READWRITE and READONLY; got {0:?}")]
    InvalidMode(String),
    #[error("{0}")]
    ReadOnly(String),
    /// Confluent Cloud answers `{"error_code":401,"message":"Unauthorized"}`.
    #[error("{0}")]
    Unauthenticated(String),
    /// Confluent's authorizer: `{"error_code":40301,"message":"User is denied operation ..."}`.
    #[error("{0}")]
    Forbidden(String),
    #[error("Error in the backend data store: {0}")]
    Store(String),
    #[error("Error while waiting for the backend data store: {0}")]
    StoreTimeout(String),
}

impl ApiError {
    pub fn error_code(&self) -> u32 {
        match self {
            ApiError::SubjectNotFound(_) => 40401,
            ApiError::VersionNotFound(_) => 40402,
            ApiError::SchemaNotFound(_) => 40403,
            ApiError::SubjectSoftDeleted(_) => 40404,
            ApiError::SubjectNotSoftDeleted(_) => 40405,
            ApiError::VersionSoftDeleted(..) => 40406,
            ApiError::VersionNotSoftDeleted(..) => 40407,
            ApiError::SubjectConfigNotFound(_) => 40408,
            ApiError::SubjectModeNotFound(_) => 40409,
            ApiError::InvalidMode(_) => 42204,
            ApiError::ReadOnly(_) => 42205,
            ApiError::Unauthenticated(_) => 401,
            ApiError::Forbidden(_) => 40301,
            ApiError::Incompatible { .. } => 409,
            ApiError::InvalidSchema(_) => 42201,
            ApiError::InvalidVersion(_) => 42202,
            ApiError::InvalidCompatibilityLevel(_) => 42203,
            ApiError::BadRequest(_) => 400,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Store(_) => 50001,
            ApiError::StoreTimeout(_) => 50002,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        let code = self.error_code();
        let status = if code >= 10_000 { code / 100 } else { code };
        StatusCode::from_u16(status as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        if self.status_code().is_server_error() {
            log::error!("{self}");
        }
        let mut res = HttpResponse::build(self.status_code());
        if let ApiError::Unauthenticated(_) = self {
            res.insert_header((
                actix_web::http::header::WWW_AUTHENTICATE,
                format!("Basic realm=\"{}\", charset=\"UTF-8\"", crate::auth::REALM),
            ));
        }
        res.content_type(CONTENT_TYPE)
            .json(serde_json::json!({"error_code": self.error_code(), "message": self.to_string()}))
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        ApiError::Store(e.to_string())
    }
}

impl From<r2d2::Error> for ApiError {
    fn from(e: r2d2::Error) -> Self {
        ApiError::StoreTimeout(e.to_string())
    }
}

impl From<service_kit::db::DbUnavailable> for ApiError {
    fn from(e: service_kit::db::DbUnavailable) -> Self {
        match e {
            service_kit::db::DbUnavailable::Pool(e) => e.into(),
            other => ApiError::Store(other.to_string()),
        }
    }
}

impl From<avro_compat::UnknownLevel> for ApiError {
    fn from(e: avro_compat::UnknownLevel) -> Self {
        ApiError::InvalidCompatibilityLevel(e.0)
    }
}
