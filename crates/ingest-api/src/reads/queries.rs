//! Queries of the read routes, over a read-only pool. The processor owns these tables.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::CustomizeConnection;
use model_schema::{daily_metrics, partition_watermarks, rolling_metrics, sync_status, Outcome};
use service_kit::db::{PoolBuilder, PoolMetrics};

pub type ReadPool = service_kit::db::PgPool;

/// Every connection of the pool refuses writes: the command side never writes the database, and
/// the read side cannot by mistake.
#[derive(Debug)]
struct ReadOnly;

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for ReadOnly {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute("SET default_transaction_read_only = on").map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Built without connecting: the command path must not depend on the database being up.
pub fn pool(url: &str, size: u32, metrics: &PoolMetrics) -> ReadPool {
    PoolBuilder::new(url, size)
        .connection_timeout(Duration::from_secs(3))
        .customize(ReadOnly)
        .observed(metrics, "read")
        .build()
}

#[derive(Debug, Clone, Queryable)]
pub struct SyncRow {
    pub sync_id: uuid::Uuid,
    pub event_id: uuid::Uuid,
    pub user_id: String,
    pub device_id: String,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
    pub outcome: Outcome,
    pub failure_reason: Option<String>,
    pub heart_rate_samples: i32,
    pub rr_intervals: i32,
    pub step_epochs: i32,
    pub sleep_segments: i32,
    pub workouts: i32,
    pub dropped_samples: serde_json::Value,
    pub ingested_at: DateTime<Utc>,
    pub processed_at: DateTime<Utc>,
}

/// The status of sync `id`: the reader's own row when there is one, else another user's (which
/// the caller refuses with a 403). Sync ids come from devices, so two users' syncs may share one;
/// the key is (user_id, sync_id), and the lookup by id alone uses `sync_status_by_sync_id`.
pub fn sync(conn: &mut PgConnection, reader: &str, id: uuid::Uuid) -> QueryResult<Option<SyncRow>> {
    if let Some(own) = sync_status::table.find((reader, id)).first(conn).optional()? {
        return Ok(Some(own));
    }
    sync_status::table.filter(sync_status::sync_id.eq(id)).first(conn).optional()
}

/// The processor's committed position of a partition (-1 before anything was applied).
pub fn watermark(conn: &mut PgConnection, topic: &str, partition: i32) -> QueryResult<i64> {
    Ok(partition_watermarks::table
        .filter(partition_watermarks::topic.eq(topic))
        .filter(partition_watermarks::kafka_partition.eq(partition))
        .select(partition_watermarks::committed_offset)
        .first::<i64>(conn)
        .optional()?
        .unwrap_or(-1))
}

/// Every partition's committed position of a topic.
pub fn watermarks(conn: &mut PgConnection, topic: &str) -> QueryResult<Vec<(i32, i64)>> {
    partition_watermarks::table
        .filter(partition_watermarks::topic.eq(topic))
        .select((partition_watermarks::kafka_partition, partition_watermarks::committed_offset))
        .load(conn)
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = daily_metrics, check_for_backend(diesel::pg::Pg))]
pub struct DayRow {
    #[diesel(column_name = local_date)]
    pub date: NaiveDate,
    pub steps: f64,
    pub resting_hr: Option<f64>,
    pub training_load: f64,
    pub low_coverage: bool,
    pub samples_received: i32,
    pub duplicates_dropped: i32,
    pub summary: serde_json::Value,
    pub model_version: i32,
}

/// Days of `user` in [from, to], at most `limit`, in date order.
pub fn days(
    conn: &mut PgConnection,
    user: &str,
    from: NaiveDate,
    to: NaiveDate,
    limit: i64,
) -> QueryResult<Vec<DayRow>> {
    daily_metrics::table
        .filter(daily_metrics::user_id.eq(user))
        .filter(daily_metrics::local_date.between(from, to))
        .order(daily_metrics::local_date.asc())
        .limit(limit)
        .select(DayRow::as_select())
        .load(conn)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = rolling_metrics, check_for_backend(diesel::pg::Pg))]
pub struct RollingRow {
    #[diesel(column_name = local_date)]
    pub date: NaiveDate,
    pub has_data: bool,
    pub fitness: f64,
    pub fatigue: f64,
    pub form: f64,
    pub acwr_rolling: Option<f64>,
    pub acwr_ewma: Option<f64>,
    pub metrics: serde_json::Value,
    pub model_version: i32,
}

/// The latest day of the user's rolling series.
pub fn latest_rolling(conn: &mut PgConnection, user: &str) -> QueryResult<Option<RollingRow>> {
    rolling_metrics::table
        .filter(rolling_metrics::user_id.eq(user))
        .order(rolling_metrics::local_date.desc())
        .select(RollingRow::as_select())
        .first(conn)
        .optional()
}

/// The rolling series of `user` in [from, to].
pub fn rolling_between(
    conn: &mut PgConnection,
    user: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> QueryResult<Vec<RollingRow>> {
    rolling_metrics::table
        .filter(rolling_metrics::user_id.eq(user))
        .filter(rolling_metrics::local_date.between(from, to))
        .order(rolling_metrics::local_date.asc())
        .select(RollingRow::as_select())
        .load(conn)
}

/// The user's most recently processed syncs: the last in log order, which is the order the
/// processor applies them in (a user's syncs share a partition). Served backwards from the index
/// on (user_id, kafka_partition, kafka_offset).
pub fn recent_syncs(conn: &mut PgConnection, user: &str, limit: i64) -> QueryResult<Vec<SyncRow>> {
    sync_status::table
        .filter(sync_status::user_id.eq(user))
        .order((sync_status::kafka_partition.desc(), sync_status::kafka_offset.desc()))
        .limit(limit)
        .load(conn)
}

/// The sync statuses of `users` in `partition` at offsets `after < offset <= through`, in
/// offset order (what a commit added, for the users with a live stream).
pub fn syncs_between(
    conn: &mut PgConnection,
    partition: i32,
    after: i64,
    through: i64,
    users: &[String],
) -> QueryResult<Vec<SyncRow>> {
    sync_status::table
        .filter(sync_status::kafka_partition.eq(partition))
        .filter(sync_status::kafka_offset.gt(after))
        .filter(sync_status::kafka_offset.le(through))
        .filter(sync_status::user_id.eq_any(users))
        .order(sync_status::kafka_offset.asc())
        .load(conn)
}

/// The user's sync statuses after the log position (partition, offset), in log order, at most
/// `limit` (a live stream's replay on reconnect).
pub fn user_syncs_after(
    conn: &mut PgConnection,
    user: &str,
    partition: i32,
    offset: i64,
    limit: i64,
) -> QueryResult<Vec<SyncRow>> {
    sync_status::table
        .filter(sync_status::user_id.eq(user))
        .filter(
            sync_status::kafka_partition
                .gt(partition)
                .or(sync_status::kafka_partition.eq(partition).and(sync_status::kafka_offset.gt(offset))),
        )
        .order((sync_status::kafka_partition.asc(), sync_status::kafka_offset.asc()))
        .limit(limit)
        .load(conn)
}
