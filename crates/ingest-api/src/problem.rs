//! RFC 9457 problem details, and the service's errors mapped onto them.

use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthError;
use crate::command::Violations;
use crate::rate_limit::LimitKind;
use crate::reads::Freshness;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One thing wrong with a command, located by a JSON pointer (RFC 6901) into the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Violation {
    /// JSON pointer into the request body
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
    #[error("{max} live streams are already open{}; close one, or retry in a few seconds", if *.per_user { " for this user" } else { "" })]
    TooManyStreams { max: usize, per_user: bool },
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    RateLimited(crate::rate_limit::Refusal),
    #[error("no such route: {0}; the API is described at /openapi.json")]
    NotFound(String),
}

/// A read connection could not be had: the read side is unavailable, retry.
impl From<service_kit::db::DbUnavailable> for ApiError {
    fn from(e: service_kit::db::DbUnavailable) -> Self {
        ApiError::ReadUnavailable(e.to_string())
    }
}

/// An RFC 9457 problem, the body of every error (`application/problem+json`). `type` names the
/// kind of problem (`https://fitness.example/problems/<slug>`), `title` is its name for people and
/// `detail` what went wrong this time. Some kinds add members, listed below with when they appear.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// The violations found, at most 100 (422 only)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub violations: Option<Vec<Violation>>,
    /// All violations found (422 only)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub violation_count: Option<usize>,
    /// Violations found past the 100 listed (422 only)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub unlisted_violations: Option<usize>,
    /// How far the processor is in the partition of the token (409 only)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub freshness: Option<Freshness>,
    /// The offset the token needs processed (409 only)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub required_offset: Option<i64>,
    /// The rate limits exceeded (429 only), as draft-ietf-httpapi-ratelimit-headers names them
    #[serde(rename = "violated-policies", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, inline)]
    pub violated_policies: Option<Vec<RatePolicy>>,
    /// Seconds to wait before sending the same request again (429 only; also Retry-After)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub retry_after_s: Option<u64>,
}

/// A rate limit, by the name its problem and its `RateLimit` header give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RatePolicy {
    Device,
    User,
    Reads,
}

impl From<LimitKind> for RatePolicy {
    fn from(kind: LimitKind) -> Self {
        match kind {
            LimitKind::Device => RatePolicy::Device,
            LimitKind::User => RatePolicy::User,
            LimitKind::Reads => RatePolicy::Reads,
        }
    }
}

impl ApiError {
    /// The problem this error answers with: its body, as [`ResponseError::error_response`] sends it.
    pub fn problem(&self) -> Problem {
        let (slug, title) = self.kind();
        let mut problem = Problem {
            problem_type: format!("https://fitness.example/problems/{slug}"),
            title,
            status: self.status_code().as_u16(),
            detail: self.to_string(),
            violations: None,
            violation_count: None,
            unlisted_violations: None,
            freshness: None,
            required_offset: None,
            violated_policies: None,
            retry_after_s: None,
        };
        match self {
            ApiError::Invalid(violations) => {
                problem.violations = Some(violations.listed.clone());
                problem.violation_count = Some(violations.total());
                problem.unlisted_violations = Some(violations.unlisted);
            }
            ApiError::NotYetProcessed { partition, offset, committed } => {
                problem.freshness = Some(Freshness { partition: *partition, committed_offset: *committed });
                problem.required_offset = Some(*offset);
            }
            // The member the IETF RateLimit draft defines for its quota-exceeded problem.
            ApiError::RateLimited(refusal) => {
                problem.violated_policies = Some(vec![refusal.kind.into()]);
                problem.retry_after_s = Some(refusal.retry_after_s);
            }
            _ => {}
        }
        problem
    }

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
            ApiError::TooManyStreams { .. } => ("too-many-streams", "Too many live streams"),
            ApiError::Busy(_) => ("busy", "Busy"),
            ApiError::RateLimited(_) => ("rate-limited", "Too many requests"),
            ApiError::BadQuery(_) => ("bad-query", "Bad query"),
            ApiError::NotYetProcessed { .. } => ("not-yet-processed", "Not yet processed"),
            ApiError::NotFound(_) => ("not-found", "Not found"),
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
            ApiError::RateLimited(_) | ApiError::TooManyStreams { per_user: true, .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::TooManyStreams { per_user: false, .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let body = serde_json::to_string(&self.problem()).expect("a problem serializes");
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
            ApiError::TooManyStreams { .. } => {
                res.insert_header((header::RETRY_AFTER, "5"));
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
        res.body(body)
    }
}

/// The longest detail a problem built from a framework error gets: that text can echo the
/// caller's input (a parameter's value, a piece of the body).
pub const MAX_EXTRACTOR_DETAIL: usize = 300;

/// The longest value of a parameter a detail quotes.
const MAX_QUOTED_VALUE: usize = 64;

/// The body limit of `web::Json` (actix's default, kept when its configuration is replaced).
const JSON_LIMIT: usize = 2 * 1024 * 1024;

/// Registers, for every route of the app it configures, error handlers for actix's extractors
/// (`web::Query`, `web::Path`, `web::Json`): without them their errors answer `text/plain`
/// ("Query deserialize error: ..."); with them, the service's problem+json, like every other
/// error. Registered from the root `App`'s `configure`, so its `app_data` is the whole app's.
pub fn extractor_configs(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(|e, req| query_error(&e, req).into()))
        .app_data(web::PathConfig::default().error_handler(|e, req| path_error(&e, req).into()))
        .app_data(web::JsonConfig::default().limit(JSON_LIMIT).error_handler(|e, req| json_error(&e, req).into()));
}

/// The answer to a path no route serves (the app's default service): a 404 problem, not actix's
/// empty body.
pub async fn no_route(req: HttpRequest) -> HttpResponse {
    let mut path = req.path().to_owned();
    if let Some((cut, _)) = path.char_indices().nth(MAX_QUOTED_VALUE) {
        path.truncate(cut);
        path.push_str("...");
    }
    ApiError::NotFound(format!("{} {path:?}", req.method())).error_response()
}

/// Parses a query string into `T`. A value that does not parse is a 400 `bad-query` naming the
/// parameter, its value, what went wrong and, if `expects` lists the parameter, what it takes.
pub fn parse_query<T: DeserializeOwned>(query: &str, expects: &[(&str, &str)]) -> Result<T, ApiError> {
    web::Query::<T>::from_query(query).map(web::Query::into_inner).map_err(|e| {
        let reason = query_reason(&e);
        // Which parameter: the first one that, alone, fails for another reason than a missing
        // field (serde checks those after every value parsed).
        let culprit = pairs(query).into_iter().zip(query.split('&').filter(|p| !p.is_empty())).find(|(_, raw)| {
            web::Query::<T>::from_query(raw).is_err_and(|e| !query_reason(&e).starts_with("missing field"))
        });
        let detail = match culprit {
            Some(((name, value), _)) => {
                let expected = expects
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, what)| format!("; {name} takes {what}"))
                    .unwrap_or_default();
                format!("query parameter {name}={}: {reason}{expected}", quoted(&value))
            }
            None => format!("the query string: {reason}"),
        };
        ApiError::BadQuery(bounded(detail))
    })
}

/// A `web::Query` that did not deserialize: `bad-query`, naming the parameter when the query has
/// only one (the handler does not know the target type: routes that want every parameter named
/// parse with [`parse_query`]).
fn query_error(err: &QueryPayloadError, req: &HttpRequest) -> ApiError {
    let reason = query_reason(err);
    let detail = match pairs(req.query_string()).as_slice() {
        [(name, value)] => format!("query parameter {name}={}: {reason}", quoted(value)),
        _ => format!("the query string: {reason}"),
    };
    ApiError::BadQuery(bounded(detail))
}

/// A `web::Path` that did not deserialize: `bad-query`, naming the route's path parameters.
fn path_error(err: &PathError, req: &HttpRequest) -> ApiError {
    let reason = match err {
        PathError::Deserialize(e) => e.to_string(),
        other => other.to_string(),
    };
    let params: Vec<String> =
        req.match_info().iter().map(|(name, value)| format!("{name}={}", quoted(value))).collect();
    let detail = match params.as_slice() {
        [] => format!("the path: {reason}"),
        [one] => format!("path parameter {one}: {reason}"),
        many => format!("the path parameters {}: {reason}", many.join(", ")),
    };
    ApiError::BadQuery(bounded(detail))
}

/// A `web::Json` body that could not be read: the problems `POST .../syncs` answers for the same.
fn json_error(err: &JsonPayloadError, req: &HttpRequest) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { limit, .. } | JsonPayloadError::Overflow { limit } => {
            ApiError::TooLarge { limit: *limit }
        }
        JsonPayloadError::Payload(PayloadError::Overflow) => ApiError::TooLarge { limit: JSON_LIMIT },
        JsonPayloadError::ContentType => {
            let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            ApiError::UnsupportedMediaType(bounded(format!("{}: send application/json", quoted(ct))))
        }
        JsonPayloadError::Deserialize(e) => ApiError::MalformedJson(bounded(e.to_string())),
        JsonPayloadError::Payload(e) => ApiError::MalformedJson(bounded(format!("reading the body: {e}"))),
        other => ApiError::MalformedJson(bounded(other.to_string())),
    }
}

/// serde's reason, without actix's "Query deserialize error: " before it.
fn query_reason(err: &QueryPayloadError) -> String {
    match err {
        QueryPayloadError::Deserialize(e) => e.to_string(),
        other => other.to_string(),
    }
}

/// The decoded `name=value` pairs of a query string, in order (empty pieces skipped).
fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            web::Query::<Vec<(String, String)>>::from_query(p)
                .ok()
                .and_then(|q| q.into_inner().into_iter().next())
                .unwrap_or_else(|| (p.to_owned(), String::new()))
        })
        .collect()
}

/// A caller's value in a detail: quoted, at most [`MAX_QUOTED_VALUE`] characters of it.
fn quoted(value: &str) -> String {
    match value.char_indices().nth(MAX_QUOTED_VALUE) {
        Some(_) => format!("{:?}…", cut(value, MAX_QUOTED_VALUE - 1)),
        None => format!("{value:?}"),
    }
}

/// `detail`, cut to at most [`MAX_EXTRACTOR_DETAIL`] characters (an ellipsis ends a cut one).
fn bounded(detail: String) -> String {
    match detail.char_indices().nth(MAX_EXTRACTOR_DETAIL) {
        Some(_) => format!("{}…", cut(&detail, MAX_EXTRACTOR_DETAIL - 1)),
        None => detail,
    }
}

/// The first `chars` characters of `s`.
fn cut(s: &str, chars: usize) -> &str {
    s.char_indices().nth(chars).map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod tests {
    use actix_web::{test as web_test, App};
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Waiting {
        wait: Option<u64>,
    }

    #[derive(Debug, Deserialize)]
    struct Body {
        n: u32,
    }

    async fn waiting(q: web::Query<Waiting>) -> HttpResponse {
        HttpResponse::Ok().body(format!("{:?}", q.wait))
    }

    async fn sync(id: web::Path<uuid::Uuid>) -> HttpResponse {
        HttpResponse::Ok().body(id.to_string())
    }

    async fn json(body: web::Json<Body>) -> HttpResponse {
        HttpResponse::Ok().body(body.n.to_string())
    }

    /// The configs registered by one `configure`, the routes by others: as `Application::build`
    /// assembles the service.
    fn app() -> App<
        impl actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
            InitError = (),
        >,
    > {
        App::new()
            .configure(|cfg| {
                cfg.configure(extractor_configs);
            })
            .configure(|cfg| {
                cfg.route("/wait", web::get().to(waiting))
                    .route("/v1/syncs/{sync_id}", web::get().to(sync))
                    .route("/json", web::post().to(json));
            })
    }

    /// Sends `req` to the app; the answer's status, Content-Type and body (JSON, or Null).
    async fn call(req: web_test::TestRequest) -> (StatusCode, String, serde_json::Value) {
        let app = web_test::init_service(app()).await;
        let res = web_test::call_service(&app, req.to_request()).await;
        let status = res.status();
        let ct = res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let body = web_test::read_body(res).await;
        (status, ct, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
    }

    async fn bad_request(req: web_test::TestRequest, slug: &str) -> String {
        let (status, ct, body) = call(req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(ct, PROBLEM_JSON);
        assert_eq!(body["type"], format!("https://fitness.example/problems/{slug}"), "{body}");
        assert!(body["title"].is_string(), "{body}");
        assert_eq!(body["status"], 400, "{body}");
        let detail = body["detail"].as_str().expect("a detail").to_owned();
        assert!(detail.chars().count() <= MAX_EXTRACTOR_DETAIL + 40, "{detail}");
        detail
    }

    #[actix_web::test]
    async fn a_query_that_does_not_deserialize_is_a_problem_naming_the_parameter() {
        for uri in ["/wait?wait=abc", "/wait?wait=99999999999999999999", "/wait?wait=", "/wait?wait=-1"] {
            let detail = bad_request(web_test::TestRequest::get().uri(uri), "bad-query").await;
            assert!(detail.starts_with("query parameter wait="), "{uri}: {detail}");
            assert!(!detail.contains("Query deserialize error"), "{detail}");
        }
        let (status, _, _) = call(web_test::TestRequest::get().uri("/wait?wait=5")).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[actix_web::test]
    async fn a_path_that_does_not_deserialize_is_a_problem_naming_the_parameter() {
        let detail = bad_request(web_test::TestRequest::get().uri("/v1/syncs/not-a-uuid"), "bad-query").await;
        assert!(detail.starts_with("path parameter sync_id=\"not-a-uuid\": "), "{detail}");
        let ok = format!("/v1/syncs/{}", uuid::Uuid::new_v4());
        assert_eq!(call(web_test::TestRequest::get().uri(&ok)).await.0, StatusCode::OK);
    }

    #[actix_web::test]
    async fn a_json_body_that_does_not_deserialize_is_a_problem() {
        let req = web_test::TestRequest::post().uri("/json").set_payload(r#"{"n": "x"}"#);
        let detail = bad_request(req.insert_header((header::CONTENT_TYPE, "application/json")), "malformed-json").await;
        assert!(detail.contains("invalid type"), "{detail}");
        let req = web_test::TestRequest::post().uri("/json").insert_header((header::CONTENT_TYPE, "text/plain"));
        let (status, ct, body) = call(req.set_payload(r#"{"n": 1}"#)).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
        assert_eq!(ct, PROBLEM_JSON);
        assert_eq!(body["status"], 415);
    }

    #[actix_web::test]
    async fn a_caller_s_long_value_is_cut() {
        let long = "9".repeat(5000);
        let detail = bad_request(web_test::TestRequest::get().uri(&format!("/wait?wait={long}")), "bad-query").await;
        assert!(detail.chars().count() <= MAX_EXTRACTOR_DETAIL, "{}", detail.len());
        let detail = bad_request(web_test::TestRequest::get().uri(&format!("/v1/syncs/{long}")), "bad-query").await;
        assert!(detail.chars().count() <= MAX_EXTRACTOR_DETAIL, "{}", detail.len());
    }

    #[test]
    fn a_rate_limited_problem_names_its_policy_as_the_ratelimit_header_does() {
        for kind in [LimitKind::Device, LimitKind::User, LimitKind::Reads] {
            assert_eq!(serde_json::to_value(RatePolicy::from(kind)).unwrap(), kind.name());
        }
    }

    #[test]
    fn a_problem_has_only_the_members_of_its_kind() {
        let body = serde_json::to_value(ApiError::BadQuery("x".into()).problem()).unwrap();
        let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["detail", "status", "title", "type"]);
        let conflict = ApiError::NotYetProcessed { partition: 1, offset: 9, committed: 4 }.problem();
        let body = serde_json::to_value(&conflict).unwrap();
        assert_eq!(body["freshness"], serde_json::json!({"partition": 1, "committed_offset": 4}));
        assert_eq!(body["required_offset"], 9);
    }

    #[test]
    fn the_read_routes_query_names_the_parameter_and_what_it_takes() {
        let read = |q: &str| {
            let req = web_test::TestRequest::get().uri(&format!("/v1/users/u/days?{q}")).to_http_request();
            crate::reads::query(&req)
        };
        let detail = |q: &str| match read(q) {
            Err(e @ ApiError::BadQuery(_)) => {
                assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
                e.to_string()
            }
            other => panic!("{q}: {other:?}"),
        };
        let d = detail("consistency_token=0:1&from=notadate&wait=5");
        assert!(d.starts_with("query parameter from=\"notadate\": "), "{d}");
        assert!(d.ends_with("from takes a date, YYYY-MM-DD"), "{d}");
        for q in ["wait=abc", "limit=3&wait=99999999999999999999", "wait="] {
            let d = detail(q);
            assert!(d.starts_with("query parameter wait="), "{q}: {d}");
            assert!(d.contains("wait takes milliseconds to wait"), "{q}: {d}");
        }
        let d = detail("limit=ten");
        assert!(d.starts_with("query parameter limit=\"ten\""), "{d}");
        // A repeated parameter: serde names it.
        let d = detail("wait=1&wait=2");
        assert!(d.contains("duplicate field `wait`"), "{d}");
        let q = read("consistency_token=0:1&from=2024-01-02&to=2024-01-03&wait=5&limit=7&other=x").expect("parses");
        assert_eq!(q.wait, Some(5));
        assert!(read("").is_ok());
    }
}
