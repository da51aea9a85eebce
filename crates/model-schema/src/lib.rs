//! The health-model database's tables. The processor owns them (its migrations/ create them;
//! keep the two in step); ingest-api's read routes only read them.
//!
//! Also the stored form of `day_samples.samples` ([`chunk_codec`], over the types of
//! [`samples`]), so that a reader such as ingest-api's export can turn it into JSON, and the
//! values of `sync_status.outcome` ([`Outcome`]).

pub mod chunk_codec;
pub mod outcome;
pub mod samples;

pub use outcome::{Outcome, UnknownOutcome};

diesel::table! {
    partition_watermarks (topic, kafka_partition) {
        topic -> Text,
        kafka_partition -> Int4,
        committed_offset -> Int8,
        updated_at -> Timestamptz,
        /// Raised by each rewrite of the partition's users outside the log (a recompute).
        model_epoch -> Int8,
    }
}

diesel::table! {
    topic_incarnations (topic) {
        topic -> Text,
        cluster_id -> Nullable<Text>,
        topic_id -> Nullable<Text>,
        recorded_at -> Timestamptz,
    }
}

diesel::table! {
    sync_status (user_id, sync_id) {
        sync_id -> Uuid,
        event_id -> Uuid,
        user_id -> Text,
        device_id -> Text,
        kafka_partition -> Int4,
        kafka_offset -> Int8,
        /// An [`Outcome`](crate::Outcome).
        outcome -> Text,
        failure_reason -> Nullable<Text>,
        heart_rate_samples -> Int4,
        rr_intervals -> Int4,
        step_epochs -> Int4,
        sleep_segments -> Int4,
        workouts -> Int4,
        dropped_samples -> Jsonb,
        ingested_at -> Timestamptz,
        processed_at -> Timestamptz,
    }
}

diesel::table! {
    user_profiles (user_id) {
        user_id -> Text,
        birth_year -> Int4,
        sex -> Text,
        weight_kg -> Float8,
        height_cm -> Float8,
        hr_max -> Nullable<Int4>,
        as_of_ms -> Int8,
        as_of_sync_id -> Uuid,
    }
}

diesel::table! {
    day_samples (user_id, local_date, sync_id) {
        user_id -> Text,
        local_date -> Date,
        sync_id -> Uuid,
        device_id -> Text,
        utc_offset_minutes -> Int4,
        phone_time_ms -> Int8,
        samples -> Bytea,
    }
}

diesel::table! {
    daily_metrics (user_id, local_date) {
        user_id -> Text,
        local_date -> Date,
        steps -> Float8,
        resting_hr -> Nullable<Float8>,
        hr_max -> Nullable<Float8>,
        ln_rmssd -> Nullable<Float8>,
        training_load -> Float8,
        low_coverage -> Bool,
        samples_received -> Int4,
        duplicates_dropped -> Int4,
        summary -> Jsonb,
        updated_at -> Timestamptz,
        /// The `health_model::MODEL_VERSION` that computed the row.
        model_version -> Int4,
    }
}

diesel::table! {
    rolling_metrics (user_id, local_date) {
        user_id -> Text,
        local_date -> Date,
        has_data -> Bool,
        training_load -> Float8,
        /// Chronic training load (CTL), 42-day.
        #[sql_name = "ctl"]
        fitness -> Float8,
        /// Acute training load (ATL), 7-day.
        #[sql_name = "atl"]
        fatigue -> Float8,
        /// Training stress balance (TSB): yesterday's fitness minus fatigue.
        #[sql_name = "tsb"]
        form -> Float8,
        acwr_rolling -> Nullable<Float8>,
        acwr_ewma -> Nullable<Float8>,
        rhr_z -> Nullable<Float8>,
        rhr_flag -> Bool,
        night_signal -> Bool,
        metrics -> Jsonb,
        day_index -> Int4,
        ewma7 -> Float8,
        ewma28 -> Float8,
        /// The `health_model::MODEL_VERSION` that computed the row.
        model_version -> Int4,
    }
}

diesel::table! {
    erasure_receipts (user_id, erasure_id) {
        erasure_id -> Uuid,
        user_id -> Text,
        topic -> Text,
        kafka_partition -> Int4,
        kafka_offset -> Int8,
        requested_at -> Timestamptz,
        completed_at -> Timestamptz,
        rows_deleted -> Int8,
    }
}

/// The PostgreSQL channel on which the processor announces each raised watermark, as JSON
/// `{"topic", "partition", "offset", "committed_at"}`, when its transaction commits; readers
/// `LISTEN` on it. `committed_at` is the clock just before the commit.
pub const WATERMARK_CHANNEL: &str = "processor_watermarks";

/// The PostgreSQL channel on which the processor announces, when its transaction commits, each
/// user whose model rows it changed, as JSON [`ModelUpdate`].
pub const MODEL_UPDATES_CHANNEL: &str = "processor_model_updates";

/// One user's changed days, as announced on [`MODEL_UPDATES_CHANNEL`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelUpdate {
    pub user_id: String,
    /// The log position of the change: the partition, and the highest offset of the user's
    /// events in the transaction (absent for a recompute, which is outside the log).
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    /// The first and last changed day.
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
    /// The changed days, when there are at most [`ModelUpdate::MAX_DAYS_LISTED`] (a payload
    /// must stay under PostgreSQL's 8,000 bytes); otherwise only `from` and `to` say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<chrono::NaiveDate>,
    /// The health model version that computed the rows.
    pub model_version: i32,
}

impl ModelUpdate {
    pub const MAX_DAYS_LISTED: usize = 100;
}

diesel::allow_tables_to_appear_in_same_query!(
    partition_watermarks,
    topic_incarnations,
    sync_status,
    user_profiles,
    day_samples,
    daily_metrics,
    rolling_metrics,
    erasure_receipts
);
