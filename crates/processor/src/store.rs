//! The processor's one write: a batch of events and the partition watermarks, in one transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::schema::{partition_watermarks, sync_status};

/// What one event contributes to the database.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = sync_status)]
pub struct SyncOutcome {
    pub sync_id: uuid::Uuid,
    pub event_id: uuid::Uuid,
    pub user_id: String,
    pub device_id: String,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
    pub outcome: String,
    pub failure_reason: Option<String>,
    pub heart_rate_samples: i32,
    pub rr_intervals: i32,
    pub step_epochs: i32,
    pub sleep_segments: i32,
    pub workouts: i32,
    pub dropped_samples: serde_json::Value,
    pub ingested_at: DateTime<Utc>,
}

/// Highest stored offset per partition of `topic`.
pub fn watermarks(conn: &mut PgConnection, topic: &str) -> QueryResult<BTreeMap<i32, i64>> {
    use partition_watermarks::dsl as w;
    Ok(w::partition_watermarks
        .filter(w::topic.eq(topic))
        .select((w::kafka_partition, w::committed_offset))
        .load::<(i32, i64)>(conn)?
        .into_iter()
        .collect())
}

/// One consumed record: its sync status, and the event when it could be decoded.
#[derive(Debug, Clone)]
pub struct Item {
    pub outcome: SyncOutcome,
    pub event: Option<events::DeviceSynced>,
}

/// Applies the items whose offsets lie above their partition's watermark (their sync status,
/// samples and profile, and the recomputed days and rolling series), and raises the watermarks
/// to `positions`, atomically. Returns how many items were new.
///
/// Redelivered events (at or below the watermark) are skipped, so effects happen at most once.
pub fn apply_batch(
    conn: &mut PgConnection,
    topic: &str,
    items: &[Item],
    positions: &BTreeMap<i32, i64>,
) -> QueryResult<usize> {
    conn.transaction(|conn| {
        use partition_watermarks::dsl as w;
        // Lock these partitions' watermark rows so two replicas briefly owning one partition
        // during a rebalance cannot both apply the same offsets.
        let current: BTreeMap<i32, i64> = w::partition_watermarks
            .filter(w::topic.eq(topic))
            .filter(w::kafka_partition.eq_any(positions.keys().copied().collect::<Vec<_>>()))
            .select((w::kafka_partition, w::committed_offset))
            .for_update()
            .load::<(i32, i64)>(conn)?
            .into_iter()
            .collect();
        let fresh: Vec<&Item> = items
            .iter()
            .filter(|i| current.get(&i.outcome.kafka_partition).is_none_or(|&wm| i.outcome.kafka_offset > wm))
            .collect();
        for chunk in fresh.chunks(1000) {
            // A retried sync (same sync id, new event) was already accounted for by its first event.
            diesel::insert_into(sync_status::table)
                .values(chunk.iter().map(|i| i.outcome.clone()).collect::<Vec<_>>())
                .on_conflict(sync_status::sync_id)
                .do_nothing()
                .execute(conn)?;
        }
        let mut affected = crate::recompute::Affected::default();
        for item in &fresh {
            if let Some(event) = &item.event {
                crate::recompute::store_event(conn, event, item.outcome.sync_id, &mut affected)?;
            }
        }
        crate::recompute::recompute(conn, &affected)?;
        let rows: Vec<_> = positions
            .iter()
            .map(|(&partition, &offset)| {
                (w::topic.eq(topic), w::kafka_partition.eq(partition), w::committed_offset.eq(offset))
            })
            .collect();
        diesel::insert_into(w::partition_watermarks)
            .values(rows)
            .on_conflict((w::topic, w::kafka_partition))
            .do_update()
            .set((
                w::committed_offset.eq(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                    "GREATEST(partition_watermarks.committed_offset, excluded.committed_offset)",
                )),
                w::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)?;
        Ok(fresh.len())
    })
}
