//! What one consumed record leaves in `sync_status`: processed with its counts, or failed with
//! the reason it was dead-lettered.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use events::DeviceSynced;

use crate::schema::sync_status;

/// The two outcomes a finished sync can have (the table's CHECK constraint).
pub use crate::schema::Outcome;

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = sync_status)]
pub struct SyncOutcome {
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
}

/// Where a record sits in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

impl SyncOutcome {
    /// A decoded event's outcome; an event that is well-formed Avro but unusable is an error.
    pub fn processed(event: &DeviceSynced, at: Position) -> Result<Self, String> {
        let sync_id = event.sync_id.parse().map_err(|e| format!("sync_id {:?}: {e}", event.sync_id))?;
        let event_id = event.event_id.parse().map_err(|e| format!("event_id {:?}: {e}", event.event_id))?;
        let ingested_at = DateTime::<Utc>::from_timestamp_millis(event.ingested_at)
            .ok_or_else(|| format!("ingested_at {} is out of range", event.ingested_at))?;
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(Self {
            sync_id,
            event_id,
            user_id: event.user_id.clone(),
            device_id: event.device_id.clone(),
            kafka_partition: at.partition,
            kafka_offset: at.offset,
            outcome: Outcome::Processed,
            failure_reason: None,
            heart_rate_samples: count(event.heart_rate.bpm.len()),
            rr_intervals: count(event.rr_blocks.iter().map(|b| b.intervals_ms.len()).sum()),
            step_epochs: count(event.steps.steps.len()),
            sleep_segments: count(event.sleep.len()),
            workouts: count(event.workouts.len()),
            dropped_samples: serde_json::to_value(&event.dropped_samples).unwrap_or_default(),
            ingested_at,
        })
    }

    /// The outcome of a dead-lettered record whose sync id is known (from the event, or from the
    /// record's headers when the event does not decode).
    pub fn failed(
        sync_id: uuid::Uuid,
        event_id: Option<uuid::Uuid>,
        user_id: String,
        at: Position,
        ingested_at: DateTime<Utc>,
        reason: &str,
    ) -> Self {
        Self {
            sync_id,
            event_id: event_id.unwrap_or_else(uuid::Uuid::nil),
            user_id,
            device_id: String::new(),
            kafka_partition: at.partition,
            kafka_offset: at.offset,
            outcome: Outcome::Failed,
            failure_reason: Some(format!("sent to the dead-letter topic: {reason}")),
            heart_rate_samples: 0,
            rr_intervals: 0,
            step_epochs: 0,
            sleep_segments: 0,
            workouts: 0,
            dropped_samples: serde_json::json!({}),
            ingested_at,
        }
    }
}
