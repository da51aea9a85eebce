//! Confluent Schema Registry REST v1 handlers.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use diesel::pg::PgConnection;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use crate::audit::{self, Action};
use crate::compat::{Level, DEFAULT_LEVEL};
use crate::error::ApiError;
use crate::mode::{self, Mode};
use crate::registry::{self, SchemaRequest, VersionSel};
use crate::store::{self, VersionRow, GLOBAL};
use crate::{AppState, CONTENT_TYPE};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(root))
        .route("/schemas/types", web::get().to(schema_types))
        .route("/schemas/ids/{id}", web::get().to(schema_by_id))
        .route("/schemas/ids/{id}/schema", web::get().to(raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", web::get().to(schema_versions))
        .route("/subjects", web::get().to(list_subjects))
        .route("/subjects/{subject}", web::post().to(lookup_schema))
        .route("/subjects/{subject}", web::delete().to(delete_subject))
        .route("/subjects/{subject}/versions", web::get().to(list_versions))
        .route("/subjects/{subject}/versions", web::post().to(register))
        .route("/subjects/{subject}/versions/{version}", web::get().to(get_version))
        .route("/subjects/{subject}/versions/{version}", web::delete().to(delete_version))
        .route("/subjects/{subject}/versions/{version}/schema", web::get().to(get_version_schema))
        .route("/compatibility/subjects/{subject}/versions", web::post().to(check_against_all))
        .route("/compatibility/subjects/{subject}/versions/{version}", web::post().to(check_against_version))
        .route("/config", web::get().to(get_global_config))
        .route("/config", web::put().to(put_global_config))
        .route("/config", web::delete().to(delete_global_config))
        .route("/config/{subject}", web::get().to(get_subject_config))
        .route("/config/{subject}", web::put().to(put_subject_config))
        .route("/config/{subject}", web::delete().to(delete_subject_config))
        .route("/mode", web::get().to(get_global_mode))
        .route("/mode", web::put().to(put_global_mode))
        .route("/mode/{subject}", web::get().to(get_subject_mode))
        .route("/mode/{subject}", web::put().to(put_subject_mode))
        .route("/mode/{subject}", web::delete().to(delete_subject_mode));
}

fn ok(body: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok().content_type(CONTENT_TYPE).json(body)
}

/// Runs blocking store work on the blocking pool, with a pooled connection taken inside.
async fn db<T: Send + 'static>(
    state: &web::Data<AppState>,
    f: impl FnOnce(&mut PgConnection) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    service_kit::db::blocking(&state.pool, f).await
}

/// Accepts the registry's content types and plain JSON; parses the body.
fn json_body<T: DeserializeOwned>(req: &HttpRequest, body: &[u8]) -> Result<T, ApiError> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let accepted = [
            "application/vnd.schemaregistry.v1+json",
            "application/vnd.schemaregistry+json",
            "application/json",
            "application/octet-stream",
            "",
        ];
        if !accepted.contains(&ct.as_str()) {
            return Err(ApiError::UnsupportedMediaType(ct));
        }
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(e.to_string()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Flags {
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    permanent: bool,
    #[serde(default)]
    verbose: bool,
    #[serde(default)]
    default_to_global: bool,
    #[serde(default)]
    subject: Option<String>,
}

fn schema_body(schema: &store::StoredSchema) -> serde_json::Value {
    let mut body = json!({"schema": schema.schema_text});
    if schema.refs.as_array().is_some_and(|r| !r.is_empty()) {
        body["references"] = schema.refs.clone();
    }
    body
}

fn version_body(row: &VersionRow) -> serde_json::Value {
    let mut body = json!({
        "subject": row.subject,
        "version": row.version,
        "id": row.schema.id,
        "schema": row.schema.schema_text,
    });
    if row.schema.refs.as_array().is_some_and(|r| !r.is_empty()) {
        body["references"] = row.schema.refs.clone();
    }
    body
}

fn parse_id(raw: &str) -> Result<i32, ApiError> {
    raw.parse().map_err(|_| ApiError::SchemaNotFound(raw.to_owned()))
}

async fn root() -> HttpResponse {
    ok(json!({}))
}

async fn schema_types() -> HttpResponse {
    ok(json!(["AVRO"]))
}

async fn schema_by_id(
    state: web::Data<AppState>,
    id: web::Path<String>,
    flags: web::Query<Flags>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let subject = flags.subject.clone();
    let schema = db(&state, move |c| {
        let schema = store::schema_by_id(c, id)?.ok_or_else(|| ApiError::SchemaNotFound(id.to_string()))?;
        // With ?subject=, the schema must be registered under that subject.
        if let Some(subject) = subject {
            if !store::usages(c, id)?.iter().any(|(s, _, _)| *s == subject) {
                return Err(ApiError::SchemaNotFound(id.to_string()));
            }
        }
        Ok(schema)
    })
    .await?;
    Ok(ok(schema_body(&schema)))
}

async fn raw_schema_by_id(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let schema =
        db(&state, move |c| store::schema_by_id(c, id)?.ok_or_else(|| ApiError::SchemaNotFound(id.to_string())))
            .await?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(schema.schema_text))
}

async fn schema_versions(
    state: web::Data<AppState>,
    id: web::Path<String>,
    flags: web::Query<Flags>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let deleted = flags.deleted;
    let usages = db(&state, move |c| {
        store::schema_by_id(c, id)?.ok_or_else(|| ApiError::SchemaNotFound(id.to_string()))?;
        Ok(store::usages(c, id)?)
    })
    .await?;
    let list: Vec<_> = usages
        .into_iter()
        .filter(|(_, _, d)| deleted || !d)
        .map(|(subject, version, _)| json!({"subject": subject, "version": version}))
        .collect();
    Ok(ok(json!(list)))
}

async fn list_subjects(state: web::Data<AppState>, flags: web::Query<Flags>) -> Result<HttpResponse, ApiError> {
    let deleted = flags.deleted;
    let subjects = db(&state, move |c| Ok(store::subjects(c, deleted)?)).await?;
    Ok(ok(json!(subjects)))
}

async fn list_versions(
    state: web::Data<AppState>,
    subject: web::Path<String>,
    flags: web::Query<Flags>,
) -> Result<HttpResponse, ApiError> {
    let (subject, deleted) = (subject.into_inner(), flags.deleted);
    let rows = db(&state, move |c| registry::subject_versions(c, &subject, deleted)).await?;
    Ok(ok(json!(rows.iter().map(|r| r.version).collect::<Vec<_>>())))
}

async fn get_version(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    flags: web::Query<Flags>,
) -> Result<HttpResponse, ApiError> {
    let (subject, version) = path.into_inner();
    let sel: VersionSel = version.parse()?;
    let deleted = flags.deleted;
    let row = db(&state, move |c| registry::find_version(c, &subject, sel, deleted)).await?;
    Ok(ok(version_body(&row)))
}

async fn get_version_schema(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    flags: web::Query<Flags>,
) -> Result<HttpResponse, ApiError> {
    let (subject, version) = path.into_inner();
    let sel: VersionSel = version.parse()?;
    let deleted = flags.deleted;
    let row = db(&state, move |c| registry::find_version(c, &subject, sel, deleted)).await?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(row.schema.schema_text))
}

async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    subject: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: SchemaRequest = json_body(&req, &body)?;
    let subject = subject.into_inner();
    let id = db(&state, move |c| registry::register(c, &subject, &request)).await?;
    Ok(ok(json!({"id": id})))
}

async fn lookup_schema(
    state: web::Data<AppState>,
    req: HttpRequest,
    subject: web::Path<String>,
    flags: web::Query<Flags>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: SchemaRequest = json_body(&req, &body)?;
    let (subject, deleted) = (subject.into_inner(), flags.deleted);
    let row = db(&state, move |c| registry::lookup(c, &subject, &request, deleted)).await?;
    Ok(ok(version_body(&row)))
}

async fn delete_subject(
    state: web::Data<AppState>,
    req: HttpRequest,
    subject: web::Path<String>,
    flags: web::Query<Flags>,
) -> Result<HttpResponse, ApiError> {
    let (subject, permanent) = (subject.into_inner(), flags.permanent);
    let action = Action::new("delete_subject", Some(&subject)).detail(format!("permanent={permanent}"));
    let versions = db(&state, move |c| registry::delete_subject(c, &subject, permanent)).await;
    audit::record(&state, &req, action, &versions).await;
    Ok(ok(json!(versions?)))
}

async fn delete_version(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    flags: web::Query<Flags>,
) -> Result<HttpResponse, ApiError> {
    let (subject, version) = path.into_inner();
    let permanent = flags.permanent;
    let action =
        Action::new("delete_version", Some(&subject)).version(&version).detail(format!("permanent={permanent}"));
    let deleted = match version.parse::<VersionSel>() {
        Ok(sel) => db(&state, move |c| registry::delete_version(c, &subject, sel, permanent)).await,
        Err(e) => Err(e),
    };
    audit::record(&state, &req, action, &deleted).await;
    Ok(ok(json!(deleted?)))
}

fn compatibility_body(reasons: Vec<String>, verbose: bool) -> HttpResponse {
    let mut body = json!({"is_compatible": reasons.is_empty()});
    if verbose {
        body["messages"] = json!(reasons);
    }
    ok(body)
}

/// Checks against what registering would check against: the subject's level and live versions.
async fn check_against_all(
    state: web::Data<AppState>,
    req: HttpRequest,
    subject: web::Path<String>,
    flags: web::Query<Flags>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: SchemaRequest = json_body(&req, &body)?;
    let subject = subject.into_inner();
    let reasons = db(&state, move |c| {
        let candidate = registry::parse_candidate(c, &request)?;
        let level = registry::level(c, &subject)?;
        registry::incompatibilities(c, &subject, &candidate.parsed, level)
    })
    .await?;
    Ok(compatibility_body(reasons, flags.verbose))
}

/// Checks against one version, in the direction(s) of the subject's level.
async fn check_against_version(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    flags: web::Query<Flags>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: SchemaRequest = json_body(&req, &body)?;
    let (subject, version) = path.into_inner();
    let sel: VersionSel = version.parse()?;
    let reasons = db(&state, move |c| {
        let row = registry::find_version(c, &subject, sel, false)?;
        let candidate = registry::parse_candidate(c, &request)?;
        let level = registry::level(c, &subject)?;
        let old = registry::parse_stored(c, &row.schema)?;
        Ok(level.check(&candidate.parsed, &[(row.version, old)]))
    })
    .await?;
    Ok(compatibility_body(reasons, flags.verbose))
}

#[derive(Deserialize)]
struct ConfigUpdate {
    compatibility: String,
}

async fn get_global_config(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let level = db(&state, |c| registry::level(c, GLOBAL)).await?;
    Ok(ok(json!({"compatibilityLevel": level.as_str()})))
}

async fn put_global_config(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let level = json_body::<ConfigUpdate>(&req, &body).and_then(|u| Ok(u.compatibility.parse::<Level>()?));
    let action = Action::new("set_config", None).detail(level.as_ref().map(|l| l.as_str()).unwrap_or("invalid"));
    let outcome = match level {
        Ok(level) => db(&state, move |c| {
            store::write(c, |c| {
                mode::ensure_writable(c, GLOBAL)?;
                Ok(store::set_config(c, GLOBAL, level.as_str())?)
            })
        })
        .await
        .map(|_| level),
        Err(e) => Err(e),
    };
    audit::record(&state, &req, action, &outcome).await;
    Ok(ok(json!({"compatibility": outcome?.as_str()})))
}

async fn delete_global_config(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let previous = db(&state, |c| {
        store::write(c, |c| {
            mode::ensure_writable(c, GLOBAL)?;
            Ok(store::delete_config(c, GLOBAL)?)
        })
    })
    .await;
    audit::record(&state, &req, Action::new("delete_config", None), &previous).await;
    let level = previous?.map(|l| l.parse()).transpose()?.unwrap_or(DEFAULT_LEVEL);
    Ok(ok(json!({"compatibilityLevel": level.as_str()})))
}

async fn get_subject_config(
    state: web::Data<AppState>,
    subject: web::Path<String>,
    flags: web::Query<Flags>,
) -> Result<HttpResponse, ApiError> {
    let (subject, to_global) = (subject.into_inner(), flags.default_to_global);
    let level = db(&state, move |c| match store::config(c, &subject)? {
        Some(l) => Ok(l.parse::<Level>()?),
        None if to_global => registry::level(c, GLOBAL),
        None => Err(ApiError::SubjectConfigNotFound(subject)),
    })
    .await?;
    Ok(ok(json!({"compatibilityLevel": level.as_str()})))
}

async fn put_subject_config(
    state: web::Data<AppState>,
    req: HttpRequest,
    subject: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let subject = subject.into_inner();
    let level = json_body::<ConfigUpdate>(&req, &body).and_then(|u| Ok(u.compatibility.parse::<Level>()?));
    let action =
        Action::new("set_config", Some(&subject)).detail(level.as_ref().map(|l| l.as_str()).unwrap_or("invalid"));
    let outcome = match level {
        Ok(level) => db(&state, move |c| {
            store::write(c, |c| {
                mode::ensure_writable(c, &subject)?;
                Ok(store::set_config(c, &subject, level.as_str())?)
            })
        })
        .await
        .map(|_| level),
        Err(e) => Err(e),
    };
    audit::record(&state, &req, action, &outcome).await;
    Ok(ok(json!({"compatibility": outcome?.as_str()})))
}

async fn delete_subject_config(
    state: web::Data<AppState>,
    req: HttpRequest,
    subject: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let subject = subject.into_inner();
    let action = Action::new("delete_config", Some(&subject));
    let previous = db(&state, move |c| {
        store::write(c, |c| {
            mode::ensure_writable(c, &subject)?;
            store::delete_config(c, &subject)?.ok_or_else(|| {
                if store::versions(c, &subject).map(|v| v.is_empty()).unwrap_or(true) {
                    ApiError::SubjectNotFound(subject.clone())
                } else {
                    ApiError::SubjectConfigNotFound(subject.clone())
                }
            })
        })
    })
    .await;
    audit::record(&state, &req, action, &previous).await;
    let level: Level = previous?.parse()?;
    Ok(ok(json!({"compatibilityLevel": level.as_str()})))
}

#[derive(Deserialize)]
struct ModeUpdate {
    mode: String,
}

async fn get_global_mode(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mode = db(&state, |c| mode::effective(c, GLOBAL)).await?;
    Ok(ok(json!({"mode": mode.as_str()})))
}

async fn get_subject_mode(
    state: web::Data<AppState>,
    subject: web::Path<String>,
    flags: web::Query<Flags>,
) -> Result<HttpResponse, ApiError> {
    let (subject, to_global) = (subject.into_inner(), flags.default_to_global);
    let mode = db(&state, move |c| match store::mode(c, &subject)? {
        Some(m) => m.parse::<Mode>(),
        None if to_global => mode::effective(c, GLOBAL),
        None => Err(ApiError::SubjectModeNotFound(subject)),
    })
    .await?;
    Ok(ok(json!({"mode": mode.as_str()})))
}

/// Sets the mode of `subject` (GLOBAL for the registry's), audited.
async fn set_mode(
    state: web::Data<AppState>,
    req: HttpRequest,
    subject: String,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let mode = json_body::<ModeUpdate>(&req, &body).and_then(|u| u.mode.parse::<Mode>());
    let action = Action::new("set_mode", Some(&subject).filter(|s| !s.is_empty()).map(|s| s.as_str()))
        .detail(mode.as_ref().map(|m| m.as_str()).unwrap_or("invalid"));
    let outcome = match mode {
        Ok(mode) => db(&state, move |c| store::write(c, |c| Ok(store::set_mode(c, &subject, mode.as_str())?)))
            .await
            .map(|_| mode),
        Err(e) => Err(e),
    };
    audit::record(&state, &req, action, &outcome).await;
    Ok(ok(json!({"mode": outcome?.as_str()})))
}

async fn put_global_mode(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    set_mode(state, req, GLOBAL.to_owned(), body).await
}

async fn put_subject_mode(
    state: web::Data<AppState>,
    req: HttpRequest,
    subject: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    set_mode(state, req, subject.into_inner(), body).await
}

async fn delete_subject_mode(
    state: web::Data<AppState>,
    req: HttpRequest,
    subject: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let subject = subject.into_inner();
    let action = Action::new("delete_mode", Some(&subject));
    let previous = db(&state, move |c| {
        store::write(c, |c| store::delete_mode(c, &subject)?.ok_or(ApiError::SubjectModeNotFound(subject.clone())))
    })
    .await;
    audit::record(&state, &req, action, &previous).await;
    let mode: Mode = previous?.parse()?;
    Ok(ok(json!({"mode": mode.as_str()})))
}
