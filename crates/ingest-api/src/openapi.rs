//! The OpenAPI 3.1 document, generated from the code: the handlers' `#[utoipa::path]` attributes,
//! the request and response types (`#[derive(ToSchema)]`), and this module. `openapi.json` in the
//! crate is this document as `make openapi` writes it (`ingest-api openapi`); a test fails when the
//! two differ, and `/openapi.json` serves the same text.
//!
//! - Who may call an operation is its `x-auth` extension, set on each handler (`public`, `device`,
//!   `owner`, `user`: docs/ingest-api.md, "Auth and identity"). [`Access`] derives the operation's
//!   `security` from it, so the two cannot disagree, and refuses an operation without one.
//! - The SyncDevice command's schema is [`SyncCommand`], a documentation type: the command is parsed
//!   by hand-written validators (`crate::command`), whose borrowed, wrapped structs and declining
//!   fast path do not say what the contract is. Its bounds and enum names are checked against the
//!   validators' constants by this module's tests, and tests/openapi.rs checks that it takes every
//!   command the validator takes (a property test) and refuses what breaks the bounds it states.
//! - Examples are made by the code they show: the request example is the standard sync
//!   (`crate::example`), the problems are [`ApiError::problem`](crate::problem::ApiError::problem)s,
//!   the 422 is what the validator answers to a broken standard sync.

use std::sync::OnceLock;

use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

use crate::problem::Problem;

/// The document's description of the service.
const DESCRIPTION: &str = "The command side of the fitness tracker backend. A valid sync becomes one DeviceSynced event in Kafka; 202 means the event is durable in Kafka, not that it was processed. A retried sync (same sync_id) is accepted again and the processor counts it once. Each operation's `x-auth` says who may call it: `public` (anyone), `device` (the token of the device in the path), `owner` (the user's token, or a token of one of the user's devices), `user` (the user's own token only). Every 403 problem's detail names the real reason.";

#[derive(OpenApi)]
#[openapi(
    info(title = "ingest-api", description = DESCRIPTION),
    servers((url = "http://127.0.0.1:8080")),
    paths(
        crate::routes::post_sync,
        crate::routes::healthz,
        crate::routes::readyz,
        crate::routes::metrics,
        crate::routes::openapi,
        crate::reads::sync_status,
        crate::reads::days,
        crate::reads::model,
        crate::reads::recent_syncs,
        crate::erasure::request_erasure,
        crate::erasure::erasure_status,
        crate::export::export,
        crate::live::events,
    ),
    components(
        schemas(crate::export::ExportLine, crate::live::ModelUpdated, crate::live::LiveSync),
        responses(BadQuery, Unauthorized, OtherUsersData, NotTheUsersToken, NotYetProcessed, RateLimited, ReadUnavailable),
    ),
    modifiers(&Access),
)]
pub struct ApiDoc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as `/openapi.json` serves it and `make openapi` writes it (pretty JSON), made once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_pretty_json().expect("the OpenAPI document serializes"))
}

/// The security schemes, and each operation's `security` from its `x-auth`.
struct Access;

/// The `x-auth` values and the security schemes each takes.
const ACCESS: [(&str, &[&str]); 4] =
    [("public", &[]), ("device", &["deviceToken"]), ("owner", &["userToken", "deviceToken"]), ("user", &["userToken"])];

impl Modify for Access {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "deviceToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT (HS256, `kid` names the secret in AUTH_TOKEN_SECRETS) with sub = user id and device = device id; mint with `ingest-api token --device D --user U`")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "userToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT: ours (HS256, sub = user id; mint with `ingest-api token --user U`) or the identity provider's (RS256, ES256 or EdDSA, checked against its JWKS, iss and aud; sub = user id). Where an operation's x-auth is `owner`, a device token of the same user works too.")
                    .build(),
            ),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
                &mut item.query,
            ];
            for op in operations.into_iter().flatten() {
                // utoipa tags operations by module path; the document has no tags.
                op.tags = None;
                let auth = op.extensions.as_ref().and_then(|e| e.get("x-auth")).and_then(|v| v.as_str());
                let schemes = ACCESS.iter().find(|(name, _)| Some(*name) == auth).map(|(_, s)| *s).unwrap_or_else(|| {
                    panic!(
                        "{path} ({:?}) has x-auth {auth:?}: give every handler extensions((\"x-auth\" = json!(...))) with one of public, device, owner, user",
                        op.operation_id
                    )
                });
                op.security = (!schemes.is_empty())
                    .then(|| schemes.iter().map(|s| SecurityRequirement::new(*s, Vec::<String>::new())).collect());
            }
        }
    }
}

/// The value of `Retry-After`: whole seconds, at least 1.
pub struct RetrySeconds;

impl utoipa::PartialSchema for RetrySeconds {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).into()
    }
}

impl ToSchema for RetrySeconds {}

// The responses several operations share (components.responses).

/// bad query (dates, range, token)
#[derive(ToResponse)]
#[response(
    description = "bad query (dates, range, token)",
    content_type = "application/problem+json",
    example = json!(examples::bad_query())
)]
pub struct BadQuery(pub Problem);

/// missing or invalid token
#[derive(ToResponse)]
#[response(
    description = "missing or invalid token: WWW-Authenticate says which",
    content_type = "application/problem+json",
    headers(("WWW-Authenticate" = String, description = "Bearer, with error=\"invalid_token\" when a token was sent")),
    example = json!(examples::expired_token())
)]
pub struct Unauthorized(pub Problem);

/// another user's data
#[derive(ToResponse)]
#[response(
    description = "another user's data",
    content_type = "application/problem+json",
    example = json!(examples::another_users_data())
)]
pub struct OtherUsersData(pub Problem);

/// a device token, or another user's token
#[derive(ToResponse)]
#[response(
    description = "a device token, or another user's token; the detail says which",
    content_type = "application/problem+json",
    example = json!(examples::device_token_for_the_account())
)]
pub struct NotTheUsersToken(pub Problem);

/// The token's position is not processed yet
#[derive(ToResponse)]
#[response(
    description = "The token's position is not processed yet (after the wait). Never stale data.",
    content_type = "application/problem+json",
    headers(
        ("Retry-After" = inline(RetrySeconds), description = "Seconds to wait (1)"),
        ("X-Processed-Position" = String, description = "partition:committed_offset"),
    ),
    example = json!(examples::not_yet_processed())
)]
pub struct NotYetProcessed(pub Problem);

/// Over a rate limit
#[derive(ToResponse)]
#[response(
    description = "Over a rate limit (docs/ingest-api.md, \"Rate limits\"): nothing was done. Send the same request again (a sync with the same sync_id) after Retry-After seconds. The problem's detail names the limit (device, user or reads) and the wait; violated-policies lists it.",
    content_type = "application/problem+json",
    headers(
        ("Retry-After" = inline(RetrySeconds), description = "Seconds to wait, rounded up (at least 1)."),
        ("RateLimit" = String, description = "draft-ietf-httpapi-ratelimit-headers: nothing left under the named policy for t seconds, e.g. \"device\";r=0;t=3."),
        ("RateLimit-Policy" = String, description = "draft-ietf-httpapi-ratelimit-headers: the policy's quota q per window w seconds, e.g. \"device\";q=60;w=60."),
    )
)]
pub struct RateLimited(pub Problem);

/// The read side cannot answer right now
#[derive(ToResponse)]
#[response(
    description = "the database cannot be read right now (unavailable, Retry-After: 5); or too many reads are waiting already (in all, or of this user) (too-many-waiters, Retry-After: 1)",
    content_type = "application/problem+json",
    headers(("Retry-After" = inline(RetrySeconds), description = "Seconds to wait")),
    examples(
        ("database" = (value = json!(examples::database_unavailable()))),
        ("waiters" = (value = json!(examples::too_many_waiters()))),
    )
)]
pub struct ReadUnavailable(pub Problem);

/// The errors every read of a user's model answers (days, model, recent syncs), one list so the
/// operations cannot drift apart: each a `$ref` to the shared response above.
pub struct ModelReadErrors;

impl utoipa::IntoResponses for ModelReadErrors {
    fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
        [
            ("400", "BadQuery"),
            ("401", "Unauthorized"),
            ("403", "OtherUsersData"),
            ("409", "NotYetProcessed"),
            ("429", "RateLimited"),
            ("503", "ReadUnavailable"),
        ]
        .into_iter()
        .map(|(status, name)| (status.to_owned(), RefOr::Ref(utoipa::openapi::Ref::from_response_name(name))))
        .collect()
    }
}

// The bodies of service_kit's answers (`/healthz`, `/readyz`), as ingest-api gives them.

/// `/healthz`: the process answers.
#[derive(Serialize, ToSchema)]
pub struct Alive {
    #[schema(inline)]
    pub status: AliveStatus,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AliveStatus {
    Ok,
}

/// `/readyz`: `status`, and each check (`ok`, or why not) and note by name.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    #[schema(inline)]
    pub status: ReadyStatus,
    /// `ok` when the broker knows the topic, else why not (a check)
    pub broker: String,
    /// `ok` when the DeviceSynced schema is registered, else why not (a check; registration retries)
    pub schema: String,
    #[schema(inline)]
    pub watermark_listener: ListenerStatus,
}

#[derive(Serialize, ToSchema)]
pub enum ReadyStatus {
    #[serde(rename = "ready")]
    Ready,
    #[serde(rename = "not ready")]
    NotReady,
}

/// The read side's wake-ups (a note: reported, not required)
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListenerStatus {
    Connected,
    Connecting,
}

// The SyncDevice command (`crate::command` validates it). Field names, optionality, bounds and
// enum names are the validators'; the tests below hold them to `crate::command`'s constants.

/// A tracker's SyncDevice command. Unknown members are ignored. Strings are non-blank and at most
/// 256 bytes. Each kind of sample holds at most INGEST_MAX_SAMPLES_PER_KIND (50,000) items. What
/// breaks these rules rejects the whole command (422); a sample that is only implausible (a
/// sentinel, an impossible value, a time out of range) is dropped and counted instead.
#[derive(ToSchema)]
pub struct SyncCommand {
    /// Client-generated id of the batch; a retry sends the same one. May also come as the
    /// Idempotency-Key header.
    pub sync_id: Option<uuid::Uuid>,
    #[schema(inline)]
    pub device: CommandDevice,
    #[schema(inline)]
    pub app: CommandApp,
    #[schema(inline)]
    pub clock: CommandClock,
    #[schema(inline)]
    pub time_zone: CommandTimeZone,
    #[schema(inline)]
    pub sequence: CommandSequence,
    #[schema(inline)]
    pub window: CommandWindow,
    #[schema(inline)]
    pub heart_rate: Option<Vec<HeartRateSample>>,
    #[schema(inline)]
    pub rr: Option<CommandRr>,
    #[schema(inline)]
    pub steps: Option<Vec<StepEpoch>>,
    #[schema(inline)]
    pub sleep: Option<Vec<SleepSegment>>,
    #[schema(inline)]
    pub workouts: Option<Vec<CommandWorkout>>,
    /// Blood-oxygen readings
    #[schema(inline)]
    pub spo2: Option<Vec<Spo2Sample>>,
    /// Nightly skin-temperature deviations from the wearer's baseline
    #[schema(inline)]
    pub skin_temperature: Option<Vec<SkinTemperatureNight>>,
    /// On-wrist and off-wrist transitions
    #[schema(inline)]
    pub wear: Option<Vec<WearEvent>>,
    #[schema(inline)]
    pub profile: Option<CommandProfile>,
}

#[derive(ToSchema)]
pub struct CommandDevice {
    #[schema(min_length = 1)]
    pub manufacturer: String,
    #[schema(min_length = 1)]
    pub model: String,
    #[schema(min_length = 1)]
    pub hardware_version: String,
    #[schema(min_length = 1)]
    pub firmware_version: String,
    /// 0..100; 255 or -1 mean no reading
    pub battery_percent: Option<i64>,
    #[schema(inline)]
    pub hr_sensor: HrSensor,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum HrSensor {
    Optical,
    Strap,
}

#[derive(ToSchema)]
pub struct CommandApp {
    #[schema(min_length = 1)]
    pub version: String,
    #[schema(min_length = 1)]
    pub os: String,
}

#[derive(ToSchema)]
pub struct CommandClock {
    /// device clock at sync
    #[schema(minimum = 0)]
    pub device_time_ms: i64,
    /// phone clock at sync; phone - device is the skew added to every sample time. At most
    /// INGEST_MAX_CLOCK_SKEW_SECONDS (24 h) from the server's clock.
    #[schema(minimum = 0)]
    pub phone_time_ms: i64,
}

#[derive(ToSchema)]
pub struct CommandTimeZone {
    /// e.g. Europe/Berlin
    #[schema(min_length = 1)]
    pub iana: String,
    /// The UTC offsets in force, in increasing time order
    #[schema(inline, min_items = 1)]
    pub offsets: Vec<UtcOffset>,
}

#[derive(ToSchema)]
pub struct UtcOffset {
    /// UTC epoch ms from which the offset is in force
    pub from_ms: i64,
    #[schema(minimum = -840, maximum = 840)]
    pub offset_minutes: i64,
}

/// device record sequence numbers in the batch; last >= first
#[derive(ToSchema)]
pub struct CommandSequence {
    #[schema(minimum = 0, maximum = 4294967295_i64)]
    pub first: i64,
    #[schema(minimum = 0, maximum = 4294967295_i64)]
    pub last: i64,
}

/// every sample (and sleep segment start) must lie inside it
#[derive(ToSchema)]
pub struct CommandWindow {
    /// UTC epoch milliseconds on the device's clock
    #[schema(minimum = 0)]
    pub start_ms: i64,
    /// UTC epoch milliseconds on the device's clock; not before start_ms
    #[schema(minimum = 0)]
    pub end_ms: i64,
}

#[derive(ToSchema)]
pub struct HeartRateSample {
    /// UTC epoch milliseconds on the device's clock
    pub t: i64,
    /// 25..250; 0, 255 and -1 mean no reading
    pub bpm: i64,
    #[schema(inline)]
    pub quality: HrQuality,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum HrQuality {
    Locked,
    Unlocked,
    Strap,
}

#[derive(ToSchema)]
pub struct CommandRr {
    #[schema(inline)]
    pub unit: Option<RrUnit>,
    #[schema(inline)]
    pub blocks: Option<Vec<RrBlock>>,
}

#[derive(ToSchema)]
#[schema(default = "ms")]
pub enum RrUnit {
    #[schema(rename = "ms")]
    Milliseconds,
    #[schema(rename = "1/1024s")]
    Per1024Seconds,
}

#[derive(ToSchema)]
pub struct RrBlock {
    /// UTC epoch milliseconds on the device's clock
    pub first_beat_ms: i64,
    /// Consecutive beat-to-beat intervals in `unit`; 270..2000 ms are plausible, others are dropped
    pub intervals: Option<Vec<i64>>,
}

#[derive(ToSchema)]
pub struct StepEpoch {
    /// UTC epoch milliseconds on the device's clock
    pub start_ms: i64,
    #[schema(minimum = 1, maximum = 3600, default = 60)]
    pub duration_s: Option<i64>,
    /// 0..300 per minute
    pub steps: i64,
    #[schema(minimum = 0, maximum = 100000)]
    pub distance_m: Option<f64>,
}

#[derive(ToSchema)]
pub struct SleepSegment {
    /// UTC epoch milliseconds on the device's clock
    pub start_ms: i64,
    /// UTC epoch milliseconds on the device's clock
    #[schema(minimum = 0)]
    pub end_ms: i64,
    #[schema(inline)]
    pub stage: SleepStage,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum SleepStage {
    Awake,
    Light,
    Deep,
    Rem,
}

#[derive(ToSchema)]
pub struct CommandWorkout {
    #[schema(min_length = 1)]
    pub id: String,
    /// a higher version replaces a lower one
    #[schema(minimum = 0, maximum = 2147483647)]
    pub version: i64,
    #[schema(min_length = 1)]
    pub sport: String,
    /// UTC epoch milliseconds on the device's clock
    #[schema(minimum = 0)]
    pub start_ms: i64,
    /// UTC epoch milliseconds on the device's clock
    #[schema(minimum = 0)]
    pub end_ms: i64,
}

#[derive(ToSchema)]
pub struct Spo2Sample {
    /// UTC epoch milliseconds on the device's clock
    pub t: i64,
    /// 70..100; others (sentinels, impossible values) are dropped
    pub percent: i64,
}

#[derive(ToSchema)]
pub struct SkinTemperatureNight {
    /// End of the night, UTC epoch milliseconds on the device's clock
    pub night_end_ms: i64,
    /// Degrees Celsius from the wearer's baseline; -5..5 is plausible, others are dropped
    #[schema(minimum = -1000, maximum = 1000)]
    pub deviation_c: f64,
}

#[derive(ToSchema)]
pub struct WearEvent {
    /// UTC epoch milliseconds on the device's clock
    pub t: i64,
    #[schema(inline)]
    pub state: WearState,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum WearState {
    OnWrist,
    OffWrist,
}

#[derive(ToSchema)]
pub struct CommandProfile {
    #[schema(minimum = 1900, maximum = 2100)]
    pub birth_year: i64,
    #[schema(inline)]
    pub sex: Sex,
    #[schema(minimum = 20, maximum = 400)]
    pub weight_kg: f64,
    #[schema(minimum = 50, maximum = 272)]
    pub height_cm: f64,
    #[schema(minimum = 100, maximum = 250)]
    pub hr_max: Option<i64>,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Sex {
    Male,
    Female,
}

/// The document's examples, made by the code whose answers they show.
pub mod examples {
    use events::ConsistencyToken;
    use serde_json::Value;

    use crate::auth::{AuthError, Claims};
    use crate::command::Rejection;
    use crate::config::Limits;
    use crate::problem::{ApiError, Problem};
    use crate::reads::{Freshness, RecordedSync, SyncCounts, SyncOutcome, SyncStatus, UnrecordedState, UnrecordedSync};
    use crate::routes::Accepted;

    /// The example sync's id.
    pub const SYNC_ID: uuid::Uuid = uuid::uuid!("3f1c9a52-6f0e-4d8e-9a43-1b2c3d4e5f60");
    /// The example sync's device clock at its end.
    pub const END_MS: i64 = 1_795_761_716_978;
    /// Where its event is.
    const PARTITION: i32 = 3;
    const OFFSET: i64 = 1042;

    /// The request example: the standard sync (`ingest-api example-sync`), with fixed times.
    pub fn standard_sync() -> Value {
        crate::example::standard_sync(SYNC_ID, END_MS, 1, false)
    }

    pub fn accepted() -> Accepted {
        let token = ConsistencyToken { partition: PARTITION, offset: OFFSET }.to_string();
        Accepted {
            sync_id: SYNC_ID,
            event_id: uuid::uuid!("a8d0c6b2-0f6e-4a53-8f0e-2d7c1b9e4f31"),
            partition: PARTITION,
            offset: OFFSET,
            status_url: format!("/v1/syncs/{SYNC_ID}?consistency_token={token}"),
            consistency_token: token,
        }
    }

    pub fn processed_sync() -> SyncStatus {
        let at = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).expect("a time in range");
        let freshness = Freshness { partition: PARTITION, committed_offset: OFFSET };
        SyncStatus::Recorded(RecordedSync {
            sync_id: SYNC_ID,
            status: SyncOutcome::Processed,
            event_id: accepted().event_id,
            device_id: "band-1".into(),
            partition: PARTITION,
            offset: OFFSET,
            ingested_at: at(END_MS + 1_300),
            processed_at: at(END_MS + 1_650),
            counts: SyncCounts {
                heart_rate_samples: 180,
                rr_intervals: 900,
                step_epochs: 15,
                sleep_segments: 0,
                workouts: 0,
            },
            dropped_samples: serde_json::json!({}),
            failure_reason: None,
            freshness,
        })
    }

    pub fn pending_sync() -> SyncStatus {
        SyncStatus::NotRecorded(UnrecordedSync {
            sync_id: SYNC_ID,
            status: UnrecordedState::Pending,
            freshness: Some(Freshness { partition: PARTITION, committed_offset: OFFSET - 5 }),
            detail: None,
        })
    }

    /// What the validator answers to `body` (sent at the example's phone time).
    fn rejection(body: &[u8]) -> ApiError {
        let now = END_MS + 1_200;
        match crate::command::parse(body, None, &Limits::default(), now) {
            Err(Rejection::Malformed(e)) => ApiError::MalformedJson(e),
            Err(Rejection::Invalid(violations)) => ApiError::Invalid(violations),
            Ok(_) => panic!("the example body is valid"),
        }
    }

    pub fn malformed_json() -> Problem {
        rejection(b"{").problem()
    }

    /// The standard sync with a decreasing sequence range and an unknown heart-rate quality.
    pub fn invalid_command() -> Problem {
        let mut body = standard_sync();
        body["sequence"] = serde_json::json!({"first": 10, "last": 9});
        body["heart_rate"][3]["quality"] = "good".into();
        rejection(&serde_json::to_vec(&body).expect("JSON")).problem()
    }

    pub fn expired_token() -> Problem {
        ApiError::Unauthorized(AuthError::Expired).problem()
    }

    pub fn wrong_device() -> Problem {
        ApiError::WrongDevice { token_device: "band-1".into(), path_device: "band-2".into() }.problem()
    }

    fn claims(user: &str, device: Option<&str>) -> Claims {
        Claims { sub: user.into(), device: device.map(Into::into), exp: 0, iat: 0 }
    }

    pub fn another_users_data() -> Problem {
        let refused = crate::auth::authorize_owner(&claims("mallory", None), "alice");
        refused.expect_err("another user's token is refused").problem()
    }

    pub fn device_token_for_the_account() -> Problem {
        let refused = crate::auth::authorize_user_token(&claims("alice", Some("band-1")), "alice");
        refused.expect_err("a device token is refused").problem()
    }

    pub fn another_users_sync() -> Problem {
        let refused = crate::auth::authorize_owner(&claims("mallory", Some("band-9")), "alice");
        refused.expect_err("another user's token is refused").problem()
    }

    pub fn body_too_large() -> Problem {
        ApiError::TooLarge { limit: Limits::default().max_body_bytes }.problem()
    }

    pub fn event_too_large() -> Problem {
        ApiError::EventTooLarge { size: 1_203_311, limit: 1_000_000 }.problem()
    }

    pub fn unsupported_media_type() -> Problem {
        ApiError::UnsupportedMediaType(format!("{:?}: send the command as application/json", "text/plain")).problem()
    }

    pub fn kafka_unavailable() -> Problem {
        ApiError::Unavailable("the producer queue is full".into()).problem()
    }

    pub fn bad_query() -> Problem {
        crate::reads::parse_read_query("wait=soon").expect_err("not a number of milliseconds").problem()
    }

    pub fn not_yet_processed() -> Problem {
        ApiError::NotYetProcessed { partition: PARTITION, offset: OFFSET, committed: OFFSET - 5 }.problem()
    }

    pub fn database_unavailable() -> Problem {
        ApiError::ReadUnavailable("timed out waiting for connection".into()).problem()
    }

    pub fn too_many_waiters() -> Problem {
        ApiError::TooManyWaiters { max: 20, per_user: true }.problem()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::command::*;

    fn doc() -> Value {
        serde_json::from_str(json()).expect("the document is JSON")
    }

    /// The first place where two JSON values differ, as a JSON pointer.
    fn first_difference(a: &Value, b: &Value, at: String) -> Option<String> {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => x.keys().chain(y.keys()).find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => first_difference(p, q, format!("{at}/{k}")),
                _ => Some(format!("{at}/{k}")),
            }),
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                x.iter().zip(y).enumerate().find_map(|(i, (p, q))| first_difference(p, q, format!("{at}/{i}")))
            }
            _ => (a != b).then_some(at),
        }
    }

    #[test]
    fn the_committed_openapi_json_is_the_generated_document() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        if committed.trim_end() == json() {
            return;
        }
        let where_ = match serde_json::from_str::<Value>(&committed) {
            Ok(c) => first_difference(&c, &doc(), String::new())
                .map_or_else(|| "only in formatting".to_owned(), |p| format!("first at {p:?}")),
            Err(e) => format!("it is not JSON: {e}"),
        };
        panic!(
            "crates/ingest-api/openapi.json is not the document the code generates ({where_}): run `make openapi` and commit the result"
        );
    }

    /// The schema of a value that is not null, of `schema` (which may allow null).
    fn non_null(schema: Value) -> Value {
        match schema.get("oneOf").and_then(Value::as_array) {
            Some(alternatives) => {
                alternatives.iter().find(|a| a["type"] != "null").expect("a non-null alternative").clone()
            }
            None => schema,
        }
    }

    /// A member of the SyncCommand schema (not null), by a path of property names through its
    /// objects, arrays and nullable alternatives.
    fn command_member(path: &[&str]) -> Value {
        let doc = doc();
        let mut at = doc["components"]["schemas"]["SyncCommand"].clone();
        for name in path {
            at = non_null(at);
            if let Some(items) = at.get("items") {
                at = non_null(items.clone());
            }
            at = non_null(at["properties"][name].clone());
            assert!(!at.is_null(), "SyncCommand has no {path:?}");
        }
        at
    }

    fn bounds(path: &[&str]) -> (f64, f64) {
        let m = command_member(path);
        let n = |k: &str| m[k].as_f64().unwrap_or_else(|| panic!("{path:?} has no {k}: {m}"));
        (n("minimum"), n("maximum"))
    }

    fn names(path: &[&str]) -> Vec<String> {
        let m = command_member(path);
        let values = m["enum"].as_array().unwrap_or_else(|| panic!("{path:?} is not an enum: {m}"));
        values.iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    }

    fn table<T>(t: &[(&str, T)]) -> Vec<String> {
        t.iter().map(|(n, _)| (*n).to_owned()).collect()
    }

    /// The schema states the validators' rules: a bound or a name changed in `crate::command`
    /// must change here too.
    #[test]
    fn the_sync_command_schema_has_the_validators_bounds_and_names() {
        let int = |r: &std::ops::RangeInclusive<i64>| (*r.start() as f64, *r.end() as f64);
        let float = |r: &std::ops::RangeInclusive<f64>| (*r.start(), *r.end());
        assert_eq!(bounds(&["time_zone", "offsets", "offset_minutes"]), int(&OFFSET_MINUTES_RANGE));
        assert_eq!(bounds(&["sequence", "first"]), int(&SEQUENCE_RANGE));
        assert_eq!(bounds(&["sequence", "last"]), int(&SEQUENCE_RANGE));
        assert_eq!(bounds(&["profile", "birth_year"]), int(&BIRTH_YEAR_RANGE));
        assert_eq!(bounds(&["profile", "weight_kg"]), float(&WEIGHT_KG_RANGE));
        assert_eq!(bounds(&["profile", "height_cm"]), float(&HEIGHT_CM_RANGE));
        assert_eq!(bounds(&["profile", "hr_max"]), int(&HR_MAX_RANGE));
        assert_eq!(bounds(&["steps", "duration_s"]), int(&STEP_DURATION_S_RANGE));
        assert_eq!(bounds(&["steps", "distance_m"]), float(&DISTANCE_M_RANGE));
        assert_eq!(bounds(&["workouts", "version"]), int(&WORKOUT_VERSION_RANGE));
        assert_eq!(bounds(&["skin_temperature", "deviation_c"]), float(&SKIN_DEVIATION_RANGE));
        assert_eq!(command_member(&["steps", "duration_s"])["default"], DEFAULT_STEP_DURATION_S);
        assert_eq!(command_member(&["clock", "device_time_ms"])["minimum"], *TIME_RANGE.start());
        assert_eq!(names(&["device", "hr_sensor"]), table(&HR_SENSORS));
        assert_eq!(names(&["heart_rate", "quality"]), table(&HR_QUALITIES));
        assert_eq!(names(&["sleep", "stage"]), table(&SLEEP_STAGES));
        assert_eq!(names(&["wear", "state"]), table(&WEAR_STATES));
        assert_eq!(names(&["profile", "sex"]), table(&SEXES));
        assert_eq!(names(&["rr", "unit"]), table(&RR_UNITS));
        assert_eq!(command_member(&["rr", "unit"])["default"], RR_UNITS[0].0);
    }

    #[test]
    fn every_operation_has_an_x_auth_and_the_security_it_implies() {
        let doc = doc();
        let mut seen = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let auth = op["x-auth"].as_str().unwrap_or_else(|| panic!("{method} {path}: no x-auth"));
                let (_, schemes) = ACCESS.iter().find(|(a, _)| *a == auth).expect("a known x-auth");
                let security: Vec<&str> = op["security"]
                    .as_array()
                    .map(|s| s.iter().flat_map(|r| r.as_object().unwrap().keys().map(String::as_str)).collect())
                    .unwrap_or_default();
                assert_eq!(&security, schemes, "{method} {path}");
                seen += 1;
            }
        }
        assert_eq!(seen, 13);
    }

    /// Each documented query parameter is one the handlers' query parser takes.
    #[test]
    fn every_documented_query_parameter_is_parsed() {
        let doc = doc();
        let mut seen = std::collections::BTreeSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for p in op["parameters"].as_array().into_iter().flatten().filter(|p| p["in"] == "query") {
                    let name = p["name"].as_str().unwrap();
                    let value = match (p["schema"]["type"].as_str(), p["schema"]["format"].as_str()) {
                        (Some("integer"), _) => "5",
                        (Some("string"), Some("date")) => "2026-01-02",
                        _ => "djE6MzoxMDQy",
                    };
                    if name == "last_event_id" {
                        // The live stream's own parameter, with its own parser.
                        let parsed = crate::live::parse_events_query("last_event_id=3:41");
                        assert_eq!(parsed.ok(), Some(Some((3, 41))), "{name}");
                        seen.insert(name.to_owned());
                        continue;
                    }
                    let parsed = crate::reads::parse_read_query(&format!("{name}={value}"));
                    assert!(parsed.is_ok(), "{name}={value}: {parsed:?}");
                    seen.insert(name.to_owned());
                }
            }
        }
        assert_eq!(
            seen,
            ["consistency_token", "from", "last_event_id", "limit", "to", "wait"].map(String::from).into()
        );
    }

    #[test]
    fn the_examples_are_what_the_service_answers() {
        let problem = examples::invalid_command();
        assert_eq!(problem.status, 422);
        let pointers: Vec<&str> = problem.violations.iter().flatten().map(|v| v.pointer.as_str()).collect();
        assert_eq!(pointers, ["/sequence/last", "/heart_rate/3/quality"], "{problem:?}");
        assert_eq!(examples::malformed_json().status, 400);
        assert_eq!(examples::bad_query().status, 400);
        assert!(examples::bad_query().detail.starts_with("query parameter wait="), "{:?}", examples::bad_query());
        assert_eq!(examples::another_users_data().status, 403);
        assert_eq!(examples::device_token_for_the_account().status, 403);
        // The example request is valid, and a standard sync.
        let body = serde_json::to_vec(&examples::standard_sync()).unwrap();
        let sync = parse(&body, None, &crate::config::Limits::default(), examples::END_MS + 1_200)
            .expect("the example sync is valid");
        assert_eq!(sync.heart_rate.len(), 180);
    }
}
