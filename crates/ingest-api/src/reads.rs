//! The read side: sync status, the health model's days and rolling outputs, with
//! read-your-writes through consistency tokens. Every answer says how fresh it is: the processor's
//! committed position (watermark) of the partition that holds the user's events.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use events::ConsistencyToken;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Claims;
use crate::problem::ApiError;
use crate::read_model;
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
    let pool = state.read_pool.clone();
    web::block(move || {
        let mut conn = pool.get().map_err(|e| ApiError::ReadUnavailable(e.to_string()))?;
        f(&mut conn).map_err(|e| ApiError::ReadUnavailable(e.to_string()))
    })
    .await
    .map_err(|e| ApiError::ReadUnavailable(e.to_string()))?
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
    db(state, move |c| read_model::watermark(c, &topic, partition)).await
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

pub(crate) fn fresh(body: serde_json::Value, partition: i32, committed: i64) -> HttpResponse {
    let mut body = body;
    body["freshness"] = json!({"partition": partition, "committed_offset": committed});
    HttpResponse::Ok().insert_header(("X-Processed-Position", format!("{partition}:{committed}"))).json(body)
}

/// The common start of a read of one user's data: who reads, whether they may, and only then
/// the query, so an unauthenticated caller makes the server do no work.
pub(crate) fn user_read(
    req: &HttpRequest,
    user: web::Path<String>,
    state: &AppState,
) -> Result<(String, ReadQuery), ApiError> {
    let claims = claims(req, state)?;
    state.rate_limits.check_read(&claims.sub)?;
    let user = user.into_inner();
    authorize(&claims, &user)?;
    Ok((user, query(req)?))
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
    crate::problem::parse_query(req.query_string(), READ_PARAMETERS)
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

/// `GET /v1/syncs/{sync_id}`: processed, failed, pending (provably, with the sync's token) or unknown.
async fn sync_status(
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
    let row = db(&state, move |c| read_model::sync(c, sync_id)).await?;
    match (row, token) {
        (Some(row), _) => {
            authorize(&claims, &row.user_id)?;
            let committed = match committed {
                Some(c) => c,
                None => watermark(&state, row.kafka_partition).await?,
            };
            let mut body = json!({
                "sync_id": row.sync_id,
                "status": row.outcome,
                "event_id": row.event_id,
                "device_id": row.device_id,
                "partition": row.kafka_partition,
                "offset": row.kafka_offset,
                "ingested_at": row.ingested_at,
                "processed_at": row.processed_at,
                "counts": {
                    "heart_rate_samples": row.heart_rate_samples,
                    "rr_intervals": row.rr_intervals,
                    "step_epochs": row.step_epochs,
                    "sleep_segments": row.sleep_segments,
                    "workouts": row.workouts,
                },
                "dropped_samples": row.dropped_samples,
            });
            if let Some(reason) = row.failure_reason {
                body["failure_reason"] = json!(reason);
            }
            Ok(fresh(body, row.kafka_partition, committed))
        }
        // The token's offset is above the watermark: provably not processed yet.
        (None, Some(t)) if committed.is_some_and(|c| c < t.offset) => {
            let c = committed.unwrap_or(-1);
            Ok(fresh(json!({"sync_id": sync_id, "status": "pending"}), t.partition, c))
        }
        (None, Some(t)) => {
            Ok(fresh(json!({"sync_id": sync_id, "status": "unknown"}), t.partition, committed.unwrap_or(-1)))
        }
        (None, None) => Ok(HttpResponse::Ok().json(json!({
            "sync_id": sync_id,
            "status": "unknown",
            "detail": "no such sync has been processed; pass its consistency_token to tell pending from unknown",
        }))),
    }
}

/// `GET /v1/users/{user_id}/days?from=&to=&limit=`: per-day outputs with data quality.
async fn days(req: HttpRequest, user: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (user, q) = user_read(&req, user, &state)?;
    // Days are the user's local dates: by default up to the latest date anywhere (UTC+14), so a
    // user east of UTC sees their today before UTC's midnight.
    let latest_local_today = || (chrono::Utc::now() + chrono::Duration::hours(14)).date_naive();
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
        Ok((read_model::days(c, &u, from, to, limit + 1)?, read_model::rolling_between(c, &u, from, to)?))
    })
    .await?;
    // One more than the page tells whether there is a next page.
    let next = (rows.len() as i64 > limit).then(|| rows.pop().map(|r| r.date)).flatten();
    let rolling: std::collections::HashMap<NaiveDate, &read_model::RollingRow> =
        rolling.iter().map(|r| (r.date, r)).collect();
    let days: Vec<serde_json::Value> = rows
        .iter()
        .map(|d| {
            let mut day = serde_json::to_value(d).unwrap_or_default();
            day["rolling"] = rolling.get(&d.date).map_or(serde_json::Value::Null, |r| rolling_json(r));
            day
        })
        .collect();
    Ok(fresh(json!({"user_id": user, "from": from, "to": to, "days": days, "next_from": next}), partition, committed))
}

/// `GET /v1/users/{user_id}/model`: the latest rolling outputs.
async fn model(
    req: HttpRequest,
    user: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, q) = user_read(&req, user, &state)?;
    let (partition, committed) = position(&state, &req, &q, &user).await?;
    let u = user.clone();
    let Some(r) = db(&state, move |c| read_model::latest_rolling(c, &u)).await? else {
        return Ok(fresh(json!({"user_id": user, "model": null}), partition, committed));
    };
    Ok(fresh(json!({"user_id": user, "as_of": r.date, "model": rolling_json(&r)}), partition, committed))
}

/// The rolling outputs of one day, as the read routes show them.
fn rolling_json(r: &read_model::RollingRow) -> serde_json::Value {
    let m = &r.metrics;
    json!({
        "fitness": r.fitness,
        "fatigue": r.fatigue,
        "form": r.form,
        "acwr": {"rolling": r.acwr_rolling, "ewma": r.acwr_ewma, "band": m["acwr_band"]},
        "resting_hr": m["resting_hr"],
        "hrv": m["hrv"],
        "vo2max": m["vo2max"],
        "hr_max": m["hr_max"],
        "has_data_on_day": r.has_data,
    })
}

/// `GET /v1/users/{user_id}/syncs?limit=`: the user's most recently processed syncs.
async fn recent_syncs(
    req: HttpRequest,
    user: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, q) = user_read(&req, user, &state)?;
    let limit = q.limit.unwrap_or(20).clamp(1, 200);
    let (partition, committed) = position(&state, &req, &q, &user).await?;
    let u = user.clone();
    let rows = db(&state, move |c| read_model::recent_syncs(c, &u, limit)).await?;
    let syncs: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "sync_id": r.sync_id,
                "device_id": r.device_id,
                "status": r.outcome,
                "failure_reason": r.failure_reason,
                "heart_rate_samples": r.heart_rate_samples,
                "dropped_samples": r.dropped_samples,
                "ingested_at": r.ingested_at,
                "processed_at": r.processed_at,
            })
        })
        .collect();
    Ok(fresh(json!({"user_id": user, "syncs": syncs}), partition, committed))
}
