//! The read side: sync status, the health model's days and rolling outputs, with
//! read-your-writes through consistency tokens. Every answer says how fresh it is: the processor's
//! committed position (watermark) of the partition that holds the user's events.

pub mod queries;

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use events::ConsistencyToken;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Claims;
use crate::problem::ApiError;
use crate::watermark_feed::WaitRefused;
use crate::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/syncs/{sync_id}", web::get().to(sync_status))
        .route("/v1/users/{user_id}/days", web::get().to(days))
        .route("/v1/users/{user_id}/model", web::get().to(model))
        .route("/v1/users/{user_id}/syncs", web::get().to(recent_syncs));
}

#[derive(Debug, Deserialize)]
pub struct ReadQuery {
    pub(crate) consistency_token: Option<String>,
    /// Milliseconds to wait for the token's position to be processed.
    pub(crate) wait: Option<u64>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    limit: Option<i64>,
}

/// The query parameters of every read of a user's data (and of a sync's status): read-your-writes.
/// Documentation of [`ReadQuery`]'s members, which parses them.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyParams {
    /// From a 202 (or built by a downstream consumer from the record's partition and offset); also
    /// accepted as the X-Consistency-Token header. The answer reflects at least that position.
    #[param(nullable = false)]
    pub consistency_token: Option<String>,
    /// Milliseconds to wait for the token's position to be processed (capped by
    /// INGEST_READ_MAX_WAIT_MS). Past it: 409.
    #[param(nullable = false, minimum = 0)]
    pub wait: Option<u64>,
}

/// The consistency token as a header, when the query string is not the place for it.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct ConsistencyHeader {
    /// The consistency token, when it is not in the query (the query's wins).
    #[param(rename = "X-Consistency-Token", nullable = false)]
    pub consistency_token: Option<String>,
}

/// The page of `GET /v1/users/{user_id}/days`.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DaysParams {
    /// default: 29 days before `to`
    #[param(nullable = false)]
    pub from: Option<NaiveDate>,
    /// default: the latest date anywhere (today at UTC+14), so a user east of UTC sees their local today
    #[param(nullable = false)]
    pub to: Option<NaiveDate>,
    /// How many days (clamped to 1..1000).
    #[param(nullable = false, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<i64>,
}

/// The page of `GET /v1/users/{user_id}/syncs`.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecentSyncsParams {
    /// How many syncs (clamped to 1..200).
    #[param(nullable = false, minimum = 1, maximum = 200, default = 20)]
    pub limit: Option<i64>,
}

/// How fresh an answer is: the processor's committed position of the partition that holds the
/// user's events. Every read carries it (also as `X-Processed-Position: partition:committed_offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Freshness {
    pub partition: i32,
    /// the processor's committed position of the partition holding the user's events (-1: nothing yet)
    pub committed_offset: i64,
}

/// The caller, verified by the auth middleware before the handler ran.
pub(crate) fn claims(req: &HttpRequest, _state: &AppState) -> Result<Claims, ApiError> {
    Ok(crate::auth::request_claims(req)?)
}

/// Users read only their own data, with their token or one of their devices'.
pub(crate) fn authorize(claims: &Claims, user: &str) -> Result<(), ApiError> {
    crate::auth::authorize_owner(claims, user)
}

/// The token from `?consistency_token=` or the `X-Consistency-Token` header.
pub(crate) fn token(req: &HttpRequest, q: &ReadQuery) -> Result<Option<ConsistencyToken>, ApiError> {
    let raw = q
        .consistency_token
        .clone()
        .or_else(|| req.headers().get("X-Consistency-Token").and_then(|v| v.to_str().ok()).map(str::to_owned));
    raw.map(|t| t.parse().map_err(|e: events::token::InvalidToken| ApiError::BadQuery(e.to_string()))).transpose()
}

pub(crate) async fn db<T: Send + 'static>(
    state: &web::Data<AppState>,
    f: impl FnOnce(&mut diesel::PgConnection) -> diesel::QueryResult<T> + Send + 'static,
) -> Result<T, ApiError> {
    service_kit::db::blocking(&state.read_pool, move |c| f(c).map_err(|e| ApiError::ReadUnavailable(e.to_string())))
        .await
}

/// Like [`db`], for a response built from several statements: they read one snapshot (a
/// `REPEATABLE READ READ ONLY` transaction), so a processor commit between them cannot tear it.
pub(crate) async fn db_snapshot<T: Send + 'static>(
    state: &web::Data<AppState>,
    f: impl FnOnce(&mut diesel::PgConnection) -> diesel::QueryResult<T> + Send + 'static,
) -> Result<T, ApiError> {
    db(state, move |c| c.build_transaction().repeatable_read().read_only().run(f)).await
}

pub(crate) async fn watermark(state: &web::Data<AppState>, partition: i32) -> Result<i64, ApiError> {
    let topic = state.settings.topic.clone();
    db(state, move |c| queries::watermark(c, &topic, partition)).await
}

/// Waits (at most `wait`, capped by configuration) until the token's partition is processed up
/// to its offset. Returns the watermark, or `NotYetProcessed`: never data older than the token.
/// One read of the database; then the wait, if any, is on the watermark feed (woken by the
/// processor's commits), holding no connection, among a bounded number of waiters (in all, and
/// per `user`).
pub(crate) async fn covered(
    state: &web::Data<AppState>,
    user: &str,
    token: ConsistencyToken,
    wait: Option<u64>,
) -> Result<i64, ApiError> {
    let committed = watermark(state, token.partition).await?;
    if committed >= token.offset {
        return Ok(committed);
    }
    let wait = Duration::from_millis(wait.unwrap_or(0)).min(state.settings.read_max_wait);
    let not_yet = |committed| ApiError::NotYetProcessed { partition: token.partition, offset: token.offset, committed };
    if wait.is_zero() {
        return Err(not_yet(committed));
    }
    let permit = state.watermarks.admit(user).map_err(|refused| match refused {
        WaitRefused::Saturated { max } => ApiError::TooManyWaiters { max, per_user: false },
        WaitRefused::UserSaturated { max } => ApiError::TooManyWaiters { max, per_user: true },
    })?;
    let seen = state.watermarks.wait_for(&permit, token.partition, token.offset, committed, wait).await;
    if seen < token.offset {
        return Err(not_yet(seen));
    }
    // The database confirms: the feed only moves forward, and after `processor adopt-topic`
    // (offsets start again) it may be ahead of the truth until its listener reloads.
    let committed = watermark(state, token.partition).await?;
    if committed >= token.offset {
        Ok(committed)
    } else {
        Err(not_yet(committed))
    }
}

/// The partition holding a user's events (murmur2 of the key, as the producer places it).
pub(crate) async fn user_partition(state: &web::Data<AppState>, user: &str) -> Result<i32, ApiError> {
    let partitions = state.publisher.partition_count().await.map_err(ApiError::ReadUnavailable)?;
    Ok(events::partitioner::partition_for(user.as_bytes(), partitions))
}

/// A 200 with `body`, whose `freshness` is `freshness`, and the same as `X-Processed-Position`.
pub(crate) fn fresh(body: impl Serialize, freshness: Freshness) -> HttpResponse {
    let Freshness { partition, committed_offset } = freshness;
    HttpResponse::Ok().insert_header(("X-Processed-Position", format!("{partition}:{committed_offset}"))).json(body)
}

/// The common start of a read of one user's data: who reads, whether they may, and only then
/// the query, so an unauthenticated caller makes the server do no work.
pub(crate) fn user_read(
    req: &HttpRequest,
    user: web::Path<String>,
    state: &AppState,
) -> Result<(String, ReadQuery), ApiError> {
    let user = owner_reads(req, user, state)?;
    Ok((user, query(req)?))
}

/// Who reads, within their read rate, and whether they may read `user`'s data (their token or one
/// of their devices'); the user, when they may.
pub(crate) fn owner_reads(req: &HttpRequest, user: web::Path<String>, state: &AppState) -> Result<String, ApiError> {
    let claims = claims(req, state)?;
    state.rate_limits.check_read(&claims.sub)?;
    let user = user.into_inner();
    authorize(&claims, &user)?;
    Ok(user)
}

/// What each parameter of [`ReadQuery`] takes, for the detail of a 400 that names it.
const READ_PARAMETERS: &[(&str, &str)] = &[
    ("wait", "milliseconds to wait, a whole number from 0 (capped by the server)"),
    ("from", "a date, YYYY-MM-DD"),
    ("to", "a date, YYYY-MM-DD"),
    ("limit", "a whole number (clamped to the route's range)"),
];

/// The query string, read after authentication.
pub(crate) fn query(req: &HttpRequest) -> Result<ReadQuery, ApiError> {
    parse_read_query(req.query_string())
}

/// A read's query string: a 400 `bad-query` names the parameter that does not parse.
pub(crate) fn parse_read_query(query: &str) -> Result<ReadQuery, ApiError> {
    crate::problem::parse_query(query, READ_PARAMETERS)
}

/// Dates a read may name: the database's range is wider, but nothing outside this is a real day.
const DATE_RANGE: std::ops::RangeInclusive<NaiveDate> =
    NaiveDate::from_ymd_opt(1900, 1, 1).unwrap()..=NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();

fn check_date(name: &str, date: NaiveDate) -> Result<NaiveDate, ApiError> {
    if DATE_RANGE.contains(&date) {
        Ok(date)
    } else {
        Err(ApiError::BadQuery(format!("{name}={date} is out of range: use a date between 1900-01-01 and 9999-12-31")))
    }
}

/// The freshness of a user's data: with a token, after waiting for it; without, as it is.
pub(crate) async fn position(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    q: &ReadQuery,
    user: &str,
) -> Result<(i32, i64), ApiError> {
    let partition = user_partition(state, user).await?;
    match token(req, q)? {
        Some(t) => {
            if t.partition != partition {
                return Err(ApiError::BadQuery(format!(
                    "the consistency token names partition {}, but user {user:?}'s events are in partition {partition}",
                    t.partition
                )));
            }
            Ok((partition, covered(state, user, t, q.wait).await?))
        }
        None => Ok((partition, watermark(state, partition).await?)),
    }
}

/// A sync as the processor recorded it: `processed` or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncOutcome {
    Processed,
    Failed,
}

impl From<model_schema::Outcome> for SyncOutcome {
    fn from(outcome: model_schema::Outcome) -> Self {
        match outcome {
            model_schema::Outcome::Processed => SyncOutcome::Processed,
            model_schema::Outcome::Failed => SyncOutcome::Failed,
        }
    }
}

/// A sync's status: as the processor recorded it (`processed`, or `failed` with the reason), or
/// not recorded (yet): `pending` (provably, with the sync's consistency token) or `unknown`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SyncStatus {
    Recorded(RecordedSync),
    NotRecorded(UnrecordedSync),
}

/// A sync the processor recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordedSync {
    pub sync_id: uuid::Uuid,
    #[schema(inline)]
    pub status: SyncOutcome,
    /// The DeviceSynced event that carried it (the last one, for a retried sync)
    pub event_id: uuid::Uuid,
    pub device_id: String,
    /// Where its event is in Kafka
    pub partition: i32,
    pub offset: i64,
    pub ingested_at: DateTime<Utc>,
    pub processed_at: DateTime<Utc>,
    pub counts: SyncCounts,
    /// Samples ingest-api dropped from the sync, by reason (impossible values, "no reading"
    /// sentinels, duplicates, times out of range)
    #[schema(value_type = HashMap<String, i64>)]
    pub dropped_samples: serde_json::Value,
    /// Why it could not be applied (`failed` only: it went to the dead-letter topic)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub failure_reason: Option<String>,
    pub freshness: Freshness,
}

impl RecordedSync {
    /// A sync status row, with how far the processor is in its partition (`committed`).
    pub(crate) fn from_row(row: queries::SyncRow, committed: i64) -> Self {
        Self {
            sync_id: row.sync_id,
            status: row.outcome.into(),
            event_id: row.event_id,
            device_id: row.device_id,
            partition: row.kafka_partition,
            offset: row.kafka_offset,
            ingested_at: row.ingested_at,
            processed_at: row.processed_at,
            counts: SyncCounts {
                heart_rate_samples: row.heart_rate_samples,
                rr_intervals: row.rr_intervals,
                step_epochs: row.step_epochs,
                sleep_segments: row.sleep_segments,
                workouts: row.workouts,
            },
            dropped_samples: row.dropped_samples,
            failure_reason: row.failure_reason,
            freshness: Freshness { partition: row.kafka_partition, committed_offset: committed },
        }
    }
}

/// What a processed sync brought, by kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncCounts {
    pub heart_rate_samples: i32,
    pub rr_intervals: i32,
    pub step_epochs: i32,
    pub sleep_segments: i32,
    pub workouts: i32,
}

/// A sync the processor has not recorded: `pending` when its consistency token's position is not
/// processed yet, else `unknown`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnrecordedSync {
    pub sync_id: uuid::Uuid,
    #[schema(inline)]
    pub status: UnrecordedState,
    /// With a consistency token: how far the processor is in the token's partition
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub freshness: Option<Freshness>,
    /// Without a token: why nothing more can be said
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UnrecordedState {
    Pending,
    Unknown,
}

/// A sync's status: processed, failed, pending (provable with its token) or unknown
#[utoipa::path(
    get,
    path = "/v1/syncs/{sync_id}",
    operation_id = "getSync",
    extensions(("x-auth" = json!("owner"))),
    params(
        ("sync_id" = uuid::Uuid, Path, description = "The sync's id (the body's sync_id, or its Idempotency-Key)"),
        ConsistencyParams,
        ConsistencyHeader,
    ),
    responses(
        (status = 200, description = "the status, counts, dropped samples by reason, and freshness", body = SyncStatus,
            headers(("X-Processed-Position" = String, description = "partition:committed_offset (absent when there is no freshness to tell: an unknown sync without a token)")),
            examples(
                ("processed" = (value = json!(crate::openapi::examples::processed_sync()))),
                ("pending" = (value = json!(crate::openapi::examples::pending_sync()))),
            )),
        (status = 400, response = crate::openapi::BadQuery),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, description = "another user's sync, or a token of another user's partition; the detail says which", body = crate::problem::Problem, content_type = "application/problem+json",
            example = json!(crate::openapi::examples::another_users_sync())),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::ReadUnavailable),
    )
)]
pub(crate) async fn sync_status(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let claims = claims(&req, &state)?;
    state.rate_limits.check_read(&claims.sub)?;
    let q = query(&req)?;
    let sync_id: uuid::Uuid =
        id.parse().map_err(|_| ApiError::BadQuery(format!("{id:?} is not a sync id (a UUID)")))?;
    let token = token(&req, &q)?;
    // With a token and a wait, give the processor that long to reach the sync. Only on the
    // caller's own partition: another's would make the server wait for, and tell, a position
    // that is none of the caller's business.
    let mut committed = None;
    if let Some(t) = token {
        let own = user_partition(&state, &claims.sub).await?;
        if t.partition != own {
            return Err(ApiError::Forbidden(format!(
                "this consistency token names partition {}, but the syncs of user {:?} are in partition {own}: it is not a token of this user's sync",
                t.partition, claims.sub
            )));
        }
        committed = Some(match covered(&state, &claims.sub, t, q.wait).await {
            Ok(c) => c,
            Err(ApiError::NotYetProcessed { committed, .. }) => committed,
            Err(e) => return Err(e),
        });
    }
    let reader = claims.sub.clone();
    let row = db(&state, move |c| queries::sync(c, &reader, sync_id)).await?;
    let unrecorded =
        |status, freshness, detail| SyncStatus::NotRecorded(UnrecordedSync { sync_id, status, freshness, detail });
    match (row, token) {
        (Some(row), _) => {
            authorize(&claims, &row.user_id)?;
            let committed = match committed {
                Some(c) => c,
                None => watermark(&state, row.kafka_partition).await?,
            };
            let freshness = Freshness { partition: row.kafka_partition, committed_offset: committed };
            let body = SyncStatus::Recorded(RecordedSync::from_row(row, committed));
            Ok(fresh(body, freshness))
        }
        // The token's offset is above the watermark: provably not processed yet.
        (None, Some(t)) => {
            let state = match committed {
                Some(c) if c < t.offset => UnrecordedState::Pending,
                _ => UnrecordedState::Unknown,
            };
            let freshness = Freshness { partition: t.partition, committed_offset: committed.unwrap_or(-1) };
            Ok(fresh(unrecorded(state, Some(freshness), None), freshness))
        }
        (None, None) => Ok(HttpResponse::Ok().json(unrecorded(
            UnrecordedState::Unknown,
            None,
            Some("no such sync has been processed; pass its consistency_token to tell pending from unknown".into()),
        ))),
    }
}

/// A page of a user's days: per-day outputs of the health model, in date order.
#[derive(Debug, Serialize, ToSchema)]
pub struct DaysPage {
    pub user_id: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub days: Vec<Day>,
    /// The `from` of the next page; null on the last one
    #[schema(required = true)]
    pub next_from: Option<NaiveDate>,
    pub freshness: Freshness,
}

/// One local day of a user: the health model's outputs and the data quality behind them.
#[derive(Debug, Serialize, ToSchema)]
pub struct Day {
    /// The user's local date
    pub date: NaiveDate,
    pub steps: f64,
    /// Resting heart rate, bpm; null without enough data
    #[schema(required = true)]
    pub resting_hr: Option<f64>,
    pub training_load: f64,
    /// Too little wear for the day's values to be trusted
    pub low_coverage: bool,
    pub samples_received: i32,
    /// Samples received again (retried syncs, overlapping windows), counted once
    pub duplicates_dropped: i32,
    /// The day's summary from the health model; its data quality is under `quality`
    #[schema(value_type = Object)]
    pub summary: serde_json::Value,
    /// The health model version that computed the day (health_model::MODEL_VERSION); rows of an
    /// older version are being recomputed
    pub model_version: i32,
    /// The rolling outputs as of this day; null when the series has none for it
    #[schema(required = true)]
    pub rolling: Option<Rolling>,
}

impl Day {
    fn new(d: queries::DayRow, rolling: Option<Rolling>) -> Self {
        Self {
            date: d.date,
            steps: d.steps,
            resting_hr: d.resting_hr,
            training_load: d.training_load,
            low_coverage: d.low_coverage,
            samples_received: d.samples_received,
            duplicates_dropped: d.duplicates_dropped,
            summary: d.summary,
            model_version: d.model_version,
            rolling,
        }
    }
}

/// Per-day outputs of the health model with data quality, paginated
///
/// Days in date order, with each day's rolling outputs; `next_from` starts the next page. At most
/// INGEST_READ_MAX_DAYS days a request.
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/days",
    operation_id = "getDays",
    extensions(("x-auth" = json!("owner"))),
    params(
        ("user_id" = String, Path, description = "The user"),
        DaysParams,
        ConsistencyParams,
        ConsistencyHeader,
    ),
    responses(
        (status = 200, description = "days in date order; `next_from` starts the next page", body = DaysPage,
            headers(("X-Processed-Position" = String, description = "partition:committed_offset"))),
        crate::openapi::ModelReadErrors,
    )
)]
pub(crate) async fn days(
    req: HttpRequest,
    user: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, q) = user_read(&req, user, &state)?;
    // Days are the user's local dates: by default up to the latest date anywhere (UTC+14), so a
    // user east of UTC sees their today before UTC's midnight.
    let latest_local_today = || (Utc::now() + chrono::Duration::hours(14)).date_naive();
    let to = check_date("to", q.to.unwrap_or_else(latest_local_today))?;
    let from = match q.from {
        Some(from) => check_date("from", from)?,
        None => {
            to.checked_sub_days(chrono::Days::new(29)).filter(|d| DATE_RANGE.contains(d)).unwrap_or(*DATE_RANGE.start())
        }
    };
    if from > to {
        return Err(ApiError::BadQuery(format!("from {from} is after to {to}")));
    }
    let max = state.settings.read_max_days;
    if (to - from).num_days() >= i64::from(max) {
        return Err(ApiError::BadQuery(format!("at most {max} days per request; page with from/to")));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let (partition, committed) = position(&state, &req, &q, &user).await?;
    let u = user.clone();
    let (mut rows, rolling) = db_snapshot(&state, move |c| {
        Ok((queries::days(c, &u, from, to, limit + 1)?, queries::rolling_between(c, &u, from, to)?))
    })
    .await?;
    // One more than the page tells whether there is a next page.
    let next_from = (rows.len() as i64 > limit).then(|| rows.pop().map(|r| r.date)).flatten();
    let rolling: std::collections::HashMap<NaiveDate, &queries::RollingRow> =
        rolling.iter().map(|r| (r.date, r)).collect();
    let days = rows
        .into_iter()
        .map(|d| {
            let r = rolling.get(&d.date).map(|r| Rolling::new(r));
            Day::new(d, r)
        })
        .collect();
    let freshness = Freshness { partition, committed_offset: committed };
    Ok(fresh(DaysPage { user_id: user, from, to, days, next_from, freshness }, freshness))
}

/// The latest rolling outputs of a user.
#[derive(Debug, Serialize, ToSchema)]
pub struct Model {
    pub user_id: String,
    /// The day the model is as of (absent when there is no model yet)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub as_of: Option<NaiveDate>,
    /// null before the user's first processed day
    #[schema(required = true)]
    pub model: Option<Rolling>,
    pub freshness: Freshness,
}

/// The rolling outputs of the health model as of one day.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rolling {
    /// Chronic training load (CTL): the 42-day exponentially weighted load
    pub fitness: f64,
    /// Acute training load (ATL): the 7-day exponentially weighted load
    pub fatigue: f64,
    /// Training stress balance (TSB): yesterday's fitness minus fatigue
    pub form: f64,
    pub acwr: Acwr,
    /// Resting-HR baseline and anomaly flags; null without data
    #[schema(value_type = Option<Object>, required = true)]
    pub resting_hr: serde_json::Value,
    /// HRV baseline (ln RMSSD, 7-day mean against the 60-day normal range); null without data
    #[schema(value_type = Option<Object>, required = true)]
    pub hrv: serde_json::Value,
    /// VO2max estimate, ml/kg/min; null without the heart rates it needs
    #[schema(value_type = Option<f64>, required = true)]
    pub vo2max: serde_json::Value,
    /// HRmax, bpm; null when unknown
    #[schema(value_type = Option<f64>, required = true)]
    pub hr_max: serde_json::Value,
    /// Whether the user has data on this day (the series runs on through days without)
    pub has_data_on_day: bool,
    /// The health model version that computed these outputs
    pub model_version: i32,
}

/// Acute:chronic workload ratio.
#[derive(Debug, Serialize, ToSchema)]
pub struct Acwr {
    /// 7-day over 28-day rolling average load; null before there is enough history
    #[schema(required = true)]
    pub rolling: Option<f64>,
    /// The same from exponentially weighted averages; null before there is enough history
    #[schema(required = true)]
    pub ewma: Option<f64>,
    /// The injury-risk band of the rolling ratio: low (< 0.8), optimal (0.8 to 1.3), high (to 1.5), very_high
    #[schema(value_type = Option<AcwrBand>, required = true)]
    pub band: serde_json::Value,
}

/// The band of an ACWR.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AcwrBand {
    Low,
    Optimal,
    High,
    VeryHigh,
}

impl Rolling {
    /// The rolling outputs of one day, as the read routes show them.
    fn new(r: &queries::RollingRow) -> Self {
        let m = &r.metrics;
        Self {
            fitness: r.fitness,
            fatigue: r.fatigue,
            form: r.form,
            acwr: Acwr { rolling: r.acwr_rolling, ewma: r.acwr_ewma, band: m["acwr_band"].clone() },
            resting_hr: m["resting_hr"].clone(),
            hrv: m["hrv"].clone(),
            vo2max: m["vo2max"].clone(),
            hr_max: m["hr_max"].clone(),
            has_data_on_day: r.has_data,
            model_version: r.model_version,
        }
    }
}

/// The latest rolling outputs: fitness, fatigue, form, ACWR, resting-HR baseline and anomaly flags, HRV baseline, VO2max, HRmax
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/model",
    operation_id = "getModel",
    extensions(("x-auth" = json!("owner"))),
    params(
        ("user_id" = String, Path, description = "The user"),
        ConsistencyParams,
        ConsistencyHeader,
    ),
    responses(
        (status = 200, description = "the model as of its latest day, with freshness", body = Model,
            headers(("X-Processed-Position" = String, description = "partition:committed_offset"))),
        crate::openapi::ModelReadErrors,
    )
)]
pub(crate) async fn model(
    req: HttpRequest,
    user: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, q) = user_read(&req, user, &state)?;
    let (partition, committed) = position(&state, &req, &q, &user).await?;
    let u = user.clone();
    let latest = db(&state, move |c| queries::latest_rolling(c, &u)).await?;
    let freshness = Freshness { partition, committed_offset: committed };
    let body = Model {
        user_id: user,
        as_of: latest.as_ref().map(|r| r.date),
        model: latest.as_ref().map(Rolling::new),
        freshness,
    };
    Ok(fresh(body, freshness))
}

/// A user's most recently processed syncs.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecentSyncs {
    pub user_id: String,
    /// Newest first
    pub syncs: Vec<RecentSync>,
    pub freshness: Freshness,
}

/// A processed sync, in brief.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecentSync {
    pub sync_id: uuid::Uuid,
    pub device_id: String,
    #[schema(inline)]
    pub status: SyncOutcome,
    /// Why it could not be applied; null unless `failed`
    #[schema(required = true)]
    pub failure_reason: Option<String>,
    pub heart_rate_samples: i32,
    /// Samples dropped from the sync, by reason
    #[schema(value_type = HashMap<String, i64>)]
    pub dropped_samples: serde_json::Value,
    pub ingested_at: DateTime<Utc>,
    pub processed_at: DateTime<Utc>,
}

/// The user's most recently processed syncs, newest first
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/syncs",
    operation_id = "listSyncs",
    extensions(("x-auth" = json!("owner"))),
    params(
        ("user_id" = String, Path, description = "The user"),
        RecentSyncsParams,
        ConsistencyParams,
        ConsistencyHeader,
    ),
    responses(
        (status = 200, description = "the syncs (id, device, status, failure reason, counts, times), with freshness", body = RecentSyncs,
            headers(("X-Processed-Position" = String, description = "partition:committed_offset"))),
        crate::openapi::ModelReadErrors,
    )
)]
pub(crate) async fn recent_syncs(
    req: HttpRequest,
    user: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, q) = user_read(&req, user, &state)?;
    let limit = q.limit.unwrap_or(20).clamp(1, 200);
    let (partition, committed) = position(&state, &req, &q, &user).await?;
    let u = user.clone();
    let rows = db(&state, move |c| queries::recent_syncs(c, &u, limit)).await?;
    let syncs = rows
        .into_iter()
        .map(|r| RecentSync {
            sync_id: r.sync_id,
            device_id: r.device_id,
            status: r.outcome.into(),
            failure_reason: r.failure_reason,
            heart_rate_samples: r.heart_rate_samples,
            dropped_samples: r.dropped_samples,
            ingested_at: r.ingested_at,
            processed_at: r.processed_at,
        })
        .collect();
    let freshness = Freshness { partition, committed_offset: committed };
    Ok(fresh(RecentSyncs { user_id: user, syncs, freshness }, freshness))
}
