//! The set-based statements of a partition batch: each table is read or written with one
//! statement per batch (`UNNEST` of parallel arrays), whatever the number of events, so the cost
//! in round trips is per batch, not per sync.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Date, Double, Integer, Jsonb, Nullable, Text, Timestamptz};
use uuid::Uuid;

use crate::sync_outcome::SyncOutcome;

/// A partition's watermark row: the highest offset applied (-1 when nothing was) and how many
/// times its users were rewritten outside the log. A cached model is valid for one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct WatermarkRow {
    #[diesel(sql_type = BigInt)]
    pub committed_offset: i64,
    #[diesel(sql_type = BigInt)]
    pub model_epoch: i64,
}

/// Locks the partition's watermark row for this transaction and returns it. The no-op update
/// takes the row lock even for a new row, so two replicas briefly owning a partition during a
/// rebalance cannot both apply it, and a recompute of one of its users waits.
pub fn lock_watermark(conn: &mut PgConnection, topic: &str, partition: i32) -> QueryResult<WatermarkRow> {
    diesel::sql_query(
        "INSERT INTO partition_watermarks (topic, kafka_partition, committed_offset) VALUES ($1, $2, -1) \
         ON CONFLICT (topic, kafka_partition) DO UPDATE SET committed_offset = partition_watermarks.committed_offset \
         RETURNING committed_offset, model_epoch",
    )
    .bind::<Text, _>(topic)
    .bind::<Integer, _>(partition)
    .get_result(conn)
}

/// Locks the watermark rows of `partitions` (in partition order, as a batch never holds two)
/// and raises their model epoch: the rewrite about to happen outside the log invalidates every
/// cached model of theirs. A missing row is created (at -1, as a batch would), so the lock holds
/// also after `adopt-topic` cleared the rows. Returns each partition's row before and after.
pub fn lock_for_rewrite(
    conn: &mut PgConnection,
    topic: &str,
    partitions: &[i32],
) -> QueryResult<Vec<(i32, WatermarkRow, WatermarkRow)>> {
    let mut out = Vec::new();
    let mut sorted = partitions.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    for partition in sorted {
        let after: WatermarkRow = diesel::sql_query(
            "INSERT INTO partition_watermarks (topic, kafka_partition, committed_offset, model_epoch) \
             VALUES ($1, $2, -1, 1) \
             ON CONFLICT (topic, kafka_partition) DO UPDATE SET model_epoch = partition_watermarks.model_epoch + 1 \
             RETURNING committed_offset, model_epoch",
        )
        .bind::<Text, _>(topic)
        .bind::<Integer, _>(partition)
        .get_result(conn)?;
        let before = WatermarkRow { model_epoch: after.model_epoch - 1, ..after };
        out.push((partition, before, after));
    }
    Ok(out)
}

/// Highest applied offset per partition of `topic`.
pub fn watermarks(conn: &mut PgConnection, topic: &str) -> QueryResult<std::collections::BTreeMap<i32, i64>> {
    use crate::schema::partition_watermarks::dsl as w;
    Ok(w::partition_watermarks
        .filter(w::topic.eq(topic))
        .select((w::kafka_partition, w::committed_offset))
        .load::<(i32, i64)>(conn)?
        .into_iter()
        .collect())
}

/// Raises the watermark; with `notify`, in the same statement, queues a notification on
/// [`model_schema::WATERMARK_CHANNEL`] that PostgreSQL delivers only when the transaction commits (no extra
/// round trip on the hot path). Its `committed_at` is the clock at this, the transaction's
/// second-to-last statement: the commit's time within a few milliseconds, for live streams.
pub fn raise_watermark(
    conn: &mut PgConnection,
    topic: &str,
    partition: i32,
    offset: i64,
    notify: bool,
) -> QueryResult<()> {
    diesel::sql_query(
        "WITH raised AS (UPDATE partition_watermarks \
         SET committed_offset = GREATEST(committed_offset, $3), updated_at = now() \
         WHERE topic = $1 AND kafka_partition = $2 RETURNING topic, kafka_partition, committed_offset) \
         SELECT pg_notify($5, json_build_object('topic', topic, 'partition', kafka_partition, \
         'offset', committed_offset, 'committed_at', clock_timestamp())::text) FROM raised WHERE $4",
    )
    .bind::<Text, _>(topic)
    .bind::<Integer, _>(partition)
    .bind::<BigInt, _>(offset)
    .bind::<Bool, _>(notify)
    .bind::<Text, _>(model_schema::WATERMARK_CHANNEL)
    .execute(conn)?;
    Ok(())
}

/// Queues one notification per update on [`model_schema::MODEL_UPDATES_CHANNEL`], delivered
/// when the transaction commits.
pub fn notify_model_updates(conn: &mut PgConnection, updates: &[model_schema::ModelUpdate]) -> QueryResult<()> {
    if updates.is_empty() {
        return Ok(());
    }
    let payloads: Vec<String> =
        updates.iter().map(|u| serde_json::to_string(u).expect("a model update serializes")).collect();
    diesel::sql_query("SELECT pg_notify($1, p) FROM UNNEST($2::text[]) AS p")
        .bind::<Text, _>(model_schema::MODEL_UPDATES_CHANNEL)
        .bind::<Array<Text>, _>(payloads)
        .execute(conn)?;
    Ok(())
}

/// Records each sync's outcome; a retried sync (same sync id) keeps its first row.
pub fn insert_sync_status(conn: &mut PgConnection, rows: &[&SyncOutcome]) -> QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    let col = |f: &dyn Fn(&SyncOutcome) -> Uuid| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    diesel::sql_query(
        "INSERT INTO sync_status (sync_id, event_id, user_id, device_id, kafka_partition, kafka_offset, outcome, \
         failure_reason, heart_rate_samples, rr_intervals, step_epochs, sleep_segments, workouts, dropped_samples, \
         ingested_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int4[], $6::int8[], $7::text[], \
         $8::text[], $9::int4[], $10::int4[], $11::int4[], $12::int4[], $13::int4[], $14::jsonb[], $15::timestamptz[]) \
         ON CONFLICT (user_id, sync_id) DO NOTHING",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(col(&|r| r.sync_id))
    .bind::<Array<diesel::sql_types::Uuid>, _>(col(&|r| r.event_id))
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.user_id.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.device_id.as_str()).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.kafka_partition).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.kafka_offset).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.failure_reason.as_deref()).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.heart_rate_samples).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.rr_intervals).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.step_epochs).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.sleep_segments).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.workouts).collect::<Vec<_>>())
    .bind::<Array<Jsonb>, _>(rows.iter().map(|r| &r.dropped_samples).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.ingested_at).collect::<Vec<DateTime<Utc>>>())
    .execute(conn)
}

/// One sync's samples of one user-day, as stored.
#[derive(Debug, Clone, QueryableByName)]
pub struct StoredChunk {
    #[diesel(sql_type = Text)]
    pub user_id: String,
    #[diesel(sql_type = Date)]
    pub local_date: NaiveDate,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub sync_id: Uuid,
    #[diesel(sql_type = Text)]
    pub device_id: String,
    #[diesel(sql_type = Integer)]
    pub utc_offset_minutes: i32,
    #[diesel(sql_type = BigInt)]
    pub phone_time_ms: i64,
    #[diesel(sql_type = Bytea)]
    pub samples: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, QueryableByName)]
pub struct ChunkKey {
    #[diesel(sql_type = Text)]
    pub user_id: String,
    #[diesel(sql_type = Date)]
    pub local_date: NaiveDate,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub sync_id: Uuid,
}

/// Stores chunks and returns the keys of those that were really new: a redelivered or retried
/// sync's chunks are already there and change nothing.
pub fn insert_day_samples(conn: &mut PgConnection, rows: &[&StoredChunk]) -> QueryResult<Vec<ChunkKey>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    diesel::sql_query(
        "INSERT INTO day_samples (user_id, local_date, sync_id, device_id, utc_offset_minutes, phone_time_ms, samples) \
         SELECT * FROM UNNEST($1::text[], $2::date[], $3::uuid[], $4::text[], $5::int4[], $6::int8[], $7::bytea[]) \
         ON CONFLICT DO NOTHING RETURNING user_id, local_date, sync_id",
    )
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.user_id.as_str()).collect::<Vec<_>>())
    .bind::<Array<Date>, _>(rows.iter().map(|r| r.local_date).collect::<Vec<_>>())
    .bind::<Array<diesel::sql_types::Uuid>, _>(rows.iter().map(|r| r.sync_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.device_id.as_str()).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.utc_offset_minutes).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.phone_time_ms).collect::<Vec<_>>())
    .bind::<Array<Bytea>, _>(rows.iter().map(|r| r.samples.as_slice()).collect::<Vec<_>>())
    .load(conn)
}

/// The stored chunks of the given user-days.
pub fn load_day_samples(conn: &mut PgConnection, days: &[(&str, NaiveDate)]) -> QueryResult<Vec<StoredChunk>> {
    if days.is_empty() {
        return Ok(Vec::new());
    }
    diesel::sql_query(
        "SELECT s.user_id, s.local_date, s.sync_id, s.device_id, s.utc_offset_minutes, s.phone_time_ms, s.samples \
         FROM UNNEST($1::text[], $2::date[]) AS k(user_id, local_date) \
         JOIN day_samples s ON s.user_id = k.user_id AND s.local_date = k.local_date",
    )
    .bind::<Array<Text>, _>(days.iter().map(|d| d.0).collect::<Vec<_>>())
    .bind::<Array<Date>, _>(days.iter().map(|d| d.1).collect::<Vec<_>>())
    .load(conn)
}

/// Every stored chunk of the given users (a profile change recomputes all their days).
pub fn load_all_day_samples(conn: &mut PgConnection, users: &[&str]) -> QueryResult<Vec<StoredChunk>> {
    diesel::sql_query(
        "SELECT user_id, local_date, sync_id, device_id, utc_offset_minutes, phone_time_ms, samples \
         FROM day_samples WHERE user_id = ANY($1)",
    )
    .bind::<Array<Text>, _>(users)
    .load(conn)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct ProfileRow {
    #[diesel(sql_type = Text)]
    pub user_id: String,
    #[diesel(sql_type = Integer)]
    pub birth_year: i32,
    #[diesel(sql_type = Text)]
    pub sex: String,
    #[diesel(sql_type = Double)]
    pub weight_kg: f64,
    #[diesel(sql_type = Double)]
    pub height_cm: f64,
    #[diesel(sql_type = Nullable<Integer>)]
    pub hr_max: Option<i32>,
    #[diesel(sql_type = BigInt)]
    pub as_of_ms: i64,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub as_of_sync_id: Uuid,
}

pub fn load_profiles(conn: &mut PgConnection, users: &[&str]) -> QueryResult<Vec<ProfileRow>> {
    diesel::sql_query(
        "SELECT user_id, birth_year, sex, weight_kg, height_cm, hr_max, as_of_ms, as_of_sync_id \
         FROM user_profiles WHERE user_id = ANY($1)",
    )
    .bind::<Array<Text>, _>(users)
    .load(conn)
}

pub fn upsert_profiles(conn: &mut PgConnection, rows: &[ProfileRow]) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "INSERT INTO user_profiles (user_id, birth_year, sex, weight_kg, height_cm, hr_max, as_of_ms, as_of_sync_id) \
         SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::float8[], $5::float8[], $6::int4[], $7::int8[], \
         $8::uuid[]) \
         ON CONFLICT (user_id) DO UPDATE SET birth_year = excluded.birth_year, sex = excluded.sex, \
         weight_kg = excluded.weight_kg, height_cm = excluded.height_cm, hr_max = excluded.hr_max, \
         as_of_ms = excluded.as_of_ms, as_of_sync_id = excluded.as_of_sync_id",
    )
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.user_id.as_str()).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.birth_year).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.sex.as_str()).collect::<Vec<_>>())
    .bind::<Array<Double>, _>(rows.iter().map(|r| r.weight_kg).collect::<Vec<_>>())
    .bind::<Array<Double>, _>(rows.iter().map(|r| r.height_cm).collect::<Vec<_>>())
    .bind::<Array<Nullable<Integer>>, _>(rows.iter().map(|r| r.hr_max).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.as_of_ms).collect::<Vec<_>>())
    .bind::<Array<diesel::sql_types::Uuid>, _>(rows.iter().map(|r| r.as_of_sync_id).collect::<Vec<_>>())
    .execute(conn)?;
    Ok(())
}

/// One day of a user's series as stored: its rolling row, and its daily values if it has a row.
#[derive(Debug, Clone, QueryableByName)]
pub struct SeriesRow {
    #[diesel(sql_type = Text)]
    pub user_id: String,
    #[diesel(sql_type = Date)]
    pub local_date: NaiveDate,
    #[diesel(sql_type = Integer)]
    pub day_index: i32,
    #[diesel(sql_type = Double)]
    pub training_load: f64,
    #[diesel(sql_type = Double)]
    pub fitness: f64,
    #[diesel(sql_type = Double)]
    pub fatigue: f64,
    #[diesel(sql_type = Double)]
    pub form: f64,
    #[diesel(sql_type = Nullable<Double>)]
    pub acwr_rolling: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub acwr_ewma: Option<f64>,
    #[diesel(sql_type = Double)]
    pub ewma7: f64,
    #[diesel(sql_type = Double)]
    pub ewma28: f64,
    #[diesel(sql_type = Bool)]
    pub has_daily: bool,
    #[diesel(sql_type = Nullable<Double>)]
    pub resting_hr: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub ln_rmssd: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub hr_max: Option<f64>,
}

/// Each user's series from `from` on, widened so that it always reaches `history_days` days
/// before the user's last stored day (a new day long after the last one resumes from there).
pub fn load_series(
    conn: &mut PgConnection,
    users: &[(&str, NaiveDate)],
    history_days: i32,
) -> QueryResult<Vec<SeriesRow>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    diesel::sql_query(
        "SELECT r.user_id, r.local_date, r.day_index, r.training_load, r.ctl AS fitness, r.atl AS fatigue, r.tsb AS form, r.acwr_rolling, \
         r.acwr_ewma, r.ewma7, r.ewma28, d.user_id IS NOT NULL AS has_daily, d.resting_hr, d.ln_rmssd, d.hr_max \
         FROM UNNEST($1::text[], $2::date[]) AS k(user_id, from_date) \
         CROSS JOIN LATERAL (SELECT max(local_date) AS last FROM rolling_metrics m WHERE m.user_id = k.user_id) l \
         JOIN rolling_metrics r ON r.user_id = k.user_id \
          AND r.local_date >= LEAST(k.from_date, l.last - $3) \
         LEFT JOIN daily_metrics d ON d.user_id = r.user_id AND d.local_date = r.local_date",
    )
    .bind::<Array<Text>, _>(users.iter().map(|u| u.0).collect::<Vec<_>>())
    .bind::<Array<Date>, _>(users.iter().map(|u| u.1).collect::<Vec<_>>())
    .bind::<Integer, _>(history_days)
    .load(conn)
}

/// A daily_metrics row as written.
#[derive(Debug, Clone)]
pub struct DailyRow {
    pub user_id: String,
    pub local_date: NaiveDate,
    pub steps: f64,
    pub resting_hr: Option<f64>,
    pub hr_max: Option<f64>,
    pub ln_rmssd: Option<f64>,
    pub training_load: f64,
    pub low_coverage: bool,
    pub samples_received: i32,
    pub duplicates_dropped: i32,
    pub summary: serde_json::Value,
}

pub fn upsert_daily(conn: &mut PgConnection, rows: &[DailyRow]) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "INSERT INTO daily_metrics (user_id, local_date, steps, resting_hr, hr_max, ln_rmssd, training_load, \
         low_coverage, samples_received, duplicates_dropped, summary, model_version) \
         SELECT *, $12::int4 FROM UNNEST($1::text[], $2::date[], $3::float8[], $4::float8[], $5::float8[], \
         $6::float8[], $7::float8[], $8::bool[], $9::int4[], $10::int4[], $11::jsonb[]) \
         ON CONFLICT (user_id, local_date) DO UPDATE SET steps = excluded.steps, resting_hr = excluded.resting_hr, \
         hr_max = excluded.hr_max, ln_rmssd = excluded.ln_rmssd, training_load = excluded.training_load, \
         low_coverage = excluded.low_coverage, samples_received = excluded.samples_received, \
         duplicates_dropped = excluded.duplicates_dropped, summary = excluded.summary, updated_at = now(), \
         model_version = excluded.model_version",
    )
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.user_id.as_str()).collect::<Vec<_>>())
    .bind::<Array<Date>, _>(rows.iter().map(|r| r.local_date).collect::<Vec<_>>())
    .bind::<Array<Double>, _>(rows.iter().map(|r| r.steps).collect::<Vec<_>>())
    .bind::<Array<Nullable<Double>>, _>(rows.iter().map(|r| r.resting_hr).collect::<Vec<_>>())
    .bind::<Array<Nullable<Double>>, _>(rows.iter().map(|r| r.hr_max).collect::<Vec<_>>())
    .bind::<Array<Nullable<Double>>, _>(rows.iter().map(|r| r.ln_rmssd).collect::<Vec<_>>())
    .bind::<Array<Double>, _>(rows.iter().map(|r| r.training_load).collect::<Vec<_>>())
    .bind::<Array<Bool>, _>(rows.iter().map(|r| r.low_coverage).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.samples_received).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.duplicates_dropped).collect::<Vec<_>>())
    .bind::<Array<Jsonb>, _>(rows.iter().map(|r| &r.summary).collect::<Vec<_>>())
    .bind::<Integer, _>(health_model::MODEL_VERSION)
    .execute(conn)?;
    Ok(())
}

pub fn delete_daily(conn: &mut PgConnection, days: &[(&str, NaiveDate)]) -> QueryResult<()> {
    if days.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "DELETE FROM daily_metrics d USING UNNEST($1::text[], $2::date[]) AS k(user_id, local_date) \
         WHERE d.user_id = k.user_id AND d.local_date = k.local_date",
    )
    .bind::<Array<Text>, _>(days.iter().map(|d| d.0).collect::<Vec<_>>())
    .bind::<Array<Date>, _>(days.iter().map(|d| d.1).collect::<Vec<_>>())
    .execute(conn)?;
    Ok(())
}

/// A rolling_metrics row as written.
#[derive(Debug, Clone)]
pub struct RollingRow {
    pub user_id: String,
    pub local_date: NaiveDate,
    pub day_index: i32,
    pub has_data: bool,
    pub training_load: f64,
    pub fitness: f64,
    pub fatigue: f64,
    pub form: f64,
    pub acwr_rolling: Option<f64>,
    pub acwr_ewma: Option<f64>,
    pub ewma7: f64,
    pub ewma28: f64,
    pub rhr_z: Option<f64>,
    pub rhr_flag: bool,
    pub night_signal: bool,
    pub metrics: serde_json::Value,
}

pub fn upsert_rolling(conn: &mut PgConnection, rows: &[RollingRow]) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "INSERT INTO rolling_metrics (user_id, local_date, day_index, has_data, training_load, ctl, atl, tsb, \
         acwr_rolling, acwr_ewma, ewma7, ewma28, rhr_z, rhr_flag, night_signal, metrics, model_version) \
         SELECT *, $17::int4 FROM UNNEST($1::text[], $2::date[], $3::int4[], $4::bool[], $5::float8[], $6::float8[], \
         $7::float8[], $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::float8[], $13::float8[], \
         $14::bool[], $15::bool[], $16::jsonb[]) \
         ON CONFLICT (user_id, local_date) DO UPDATE SET day_index = excluded.day_index, \
         has_data = excluded.has_data, training_load = excluded.training_load, ctl = excluded.ctl, \
         atl = excluded.atl, tsb = excluded.tsb, acwr_rolling = excluded.acwr_rolling, \
         acwr_ewma = excluded.acwr_ewma, ewma7 = excluded.ewma7, ewma28 = excluded.ewma28, rhr_z = excluded.rhr_z, \
         rhr_flag = excluded.rhr_flag, night_signal = excluded.night_signal, metrics = excluded.metrics, \
         model_version = excluded.model_version",
    )
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.user_id.as_str()).collect::<Vec<_>>())
    .bind::<Array<Date>, _>(rows.iter().map(|r| r.local_date).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.day_index).collect::<Vec<_>>())
    .bind::<Array<Bool>, _>(rows.iter().map(|r| r.has_data).collect::<Vec<_>>())
    .bind::<Array<Double>, _>(rows.iter().map(|r| r.training_load).collect::<Vec<_>>())
    .bind::<Array<Double>, _>(rows.iter().map(|r| r.fitness).collect::<Vec<_>>())
    .bind::<Array<Double>, _>(rows.iter().map(|r| r.fatigue).collect::<Vec<_>>())
    .bind::<Array<Double>, _>(rows.iter().map(|r| r.form).collect::<Vec<_>>())
    .bind::<Array<Nullable<Double>>, _>(rows.iter().map(|r| r.acwr_rolling).collect::<Vec<_>>())
    .bind::<Array<Nullable<Double>>, _>(rows.iter().map(|r| r.acwr_ewma).collect::<Vec<_>>())
    .bind::<Array<Double>, _>(rows.iter().map(|r| r.ewma7).collect::<Vec<_>>())
    .bind::<Array<Double>, _>(rows.iter().map(|r| r.ewma28).collect::<Vec<_>>())
    .bind::<Array<Nullable<Double>>, _>(rows.iter().map(|r| r.rhr_z).collect::<Vec<_>>())
    .bind::<Array<Bool>, _>(rows.iter().map(|r| r.rhr_flag).collect::<Vec<_>>())
    .bind::<Array<Bool>, _>(rows.iter().map(|r| r.night_signal).collect::<Vec<_>>())
    .bind::<Array<Jsonb>, _>(rows.iter().map(|r| &r.metrics).collect::<Vec<_>>())
    .bind::<Integer, _>(health_model::MODEL_VERSION)
    .execute(conn)?;
    Ok(())
}

/// The users with a daily or rolling row computed by a model version older than `version`.
pub fn users_behind(conn: &mut PgConnection, version: i32) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        user_id: String,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT user_id FROM daily_metrics WHERE model_version < $1 \
         UNION SELECT user_id FROM rolling_metrics WHERE model_version < $1 ORDER BY 1",
    )
    .bind::<Integer, _>(version)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| r.user_id).collect())
}

/// Every user with stored samples.
pub fn users_with_samples(conn: &mut PgConnection) -> QueryResult<Vec<String>> {
    use crate::schema::day_samples::dsl as s;
    s::day_samples.select(s::user_id).distinct().order(s::user_id).load(conn)
}

/// Whether the user has a row older than `version`.
pub fn user_behind(conn: &mut PgConnection, user: &str, version: i32) -> QueryResult<bool> {
    use crate::schema::{daily_metrics::dsl as d, rolling_metrics::dsl as r};
    let daily = diesel::select(diesel::dsl::exists(
        d::daily_metrics.filter(d::user_id.eq(user)).filter(d::model_version.lt(version)),
    ));
    let rolling = diesel::select(diesel::dsl::exists(
        r::rolling_metrics.filter(r::user_id.eq(user)).filter(r::model_version.lt(version)),
    ));
    Ok(daily.get_result(conn)? || rolling.get_result(conn)?)
}

/// The partitions that carried the user's syncs.
pub fn partitions_of_user(conn: &mut PgConnection, user: &str) -> QueryResult<Vec<i32>> {
    use crate::schema::sync_status::dsl as s;
    s::sync_status.filter(s::user_id.eq(user)).select(s::kafka_partition).distinct().load(conn)
}

/// The user's stored chunks dated `from..=to`.
pub fn load_user_day_samples(
    conn: &mut PgConnection,
    user: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> QueryResult<Vec<StoredChunk>> {
    diesel::sql_query(
        "SELECT user_id, local_date, sync_id, device_id, utc_offset_minutes, phone_time_ms, samples \
         FROM day_samples WHERE user_id = $1 AND local_date BETWEEN $2 AND $3",
    )
    .bind::<Text, _>(user)
    .bind::<Date, _>(from)
    .bind::<Date, _>(to)
    .load(conn)
}

/// The first and last date of the user's stored samples.
pub fn sample_span(conn: &mut PgConnection, user: &str) -> QueryResult<Option<(NaiveDate, NaiveDate)>> {
    use crate::schema::day_samples::dsl as s;
    use diesel::dsl::{max, min};
    let (lo, hi): (Option<NaiveDate>, Option<NaiveDate>) =
        s::day_samples.filter(s::user_id.eq(user)).select((min(s::local_date), max(s::local_date))).first(conn)?;
    Ok(lo.zip(hi))
}

/// Deletes the user's daily and rolling rows (a recompute writes them all again).
pub fn delete_user_model(conn: &mut PgConnection, user: &str) -> QueryResult<()> {
    use crate::schema::{daily_metrics::dsl as d, rolling_metrics::dsl as r};
    diesel::delete(d::daily_metrics.filter(d::user_id.eq(user))).execute(conn)?;
    diesel::delete(r::rolling_metrics.filter(r::user_id.eq(user))).execute(conn)?;
    Ok(())
}
