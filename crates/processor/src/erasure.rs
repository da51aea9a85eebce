//! A user's right to erasure (GDPR Article 17), through the log.
//!
//! ingest-api publishes `UserDataErasureRequested` on the sync topic with the user as key, so it
//! sits in the user's partition after every sync accepted before it. Applied in the partition's
//! transaction like any event, it deletes every row of the user, drops the user from the
//! in-memory model, and records a receipt (`erasure_receipts`: who, where in the log, when; no
//! health data).
//!
//! No resurrection: a sync of an erased user is skipped, counted and logged, never applied, when
//! it precedes an erasure of that user in the same partition (the receipt's offset; the watermark
//! alone would not stop a redelivery after the watermark row is lost or a new consumer group
//! replays the topic), or was accepted before the erasure was requested (its ingest time; this
//! also holds across a recreated topic, where offsets start again).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz};
use events::UserDataErasureRequested;
use log::{debug, info};
use uuid::Uuid;

use crate::apply::{ApplyError, ConsumedSync};
use crate::cache::ModelCache;
use crate::sync_outcome::Position;

/// A request to erase a user's data, at its place in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Erasure {
    pub erasure_id: Uuid,
    pub user_id: String,
    pub at: Position,
    pub requested_at: DateTime<Utc>,
}

impl Erasure {
    /// A decoded event's request; well-formed Avro that cannot be applied is an error.
    pub fn from_event(event: &UserDataErasureRequested, at: Position) -> Result<Self, String> {
        let erasure_id = event.erasure_id.parse().map_err(|e| format!("erasure_id {:?}: {e}", event.erasure_id))?;
        if event.user_id.is_empty() {
            return Err("user_id is empty".into());
        }
        let requested_at = DateTime::<Utc>::from_timestamp_millis(event.requested_at)
            .ok_or_else(|| format!("requested_at {} is out of range", event.requested_at))?;
        Ok(Self { erasure_id, user_id: event.user_id.clone(), at, requested_at })
    }
}

/// Per user, what erases their earlier syncs: the latest erasure offset in this partition (of
/// the current topic incarnation), and the latest request time anywhere.
#[derive(Debug, Clone, Copy, Default)]
struct ErasedBefore {
    offset: Option<i64>,
    requested_at: Option<DateTime<Utc>>,
}

impl ErasedBefore {
    fn covers(&self, item: &ConsumedSync) -> bool {
        self.offset.is_some_and(|o| item.outcome.kafka_offset < o)
            || self.requested_at.is_some_and(|t| item.outcome.ingested_at < t)
    }
}

#[derive(QueryableByName)]
struct StoredErasure {
    #[diesel(sql_type = Text)]
    user_id: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    kafka_offset: Option<i64>,
    #[diesel(sql_type = Timestamptz)]
    requested_at: DateTime<Utc>,
}

/// Splits a batch's syncs into those to apply and the number skipped because an erasure of
/// their user follows them (in `erasures` of this batch, or in a stored receipt). One statement
/// for the batch's users.
pub fn without_erased<'a>(
    conn: &mut PgConnection,
    topic: &str,
    partition: i32,
    erasures: &[&Erasure],
    syncs: Vec<&'a ConsumedSync>,
) -> Result<(Vec<&'a ConsumedSync>, usize), ApplyError> {
    if syncs.is_empty() {
        return Ok((syncs, 0));
    }
    let users: Vec<&str> =
        syncs.iter().map(|i| i.outcome.user_id.as_str()).collect::<HashSet<_>>().into_iter().collect();
    // A receipt's offset counts only within the topic incarnation it was written in: after
    // `adopt-topic` offsets start again, and only the request time still applies.
    let stored: Vec<StoredErasure> = diesel::sql_query(
        "SELECT r.user_id, \
         max(r.kafka_offset) FILTER (WHERE r.topic = $2 AND r.kafka_partition = $3 \
          AND r.completed_at >= COALESCE(i.recorded_at, '-infinity'::timestamptz)) AS kafka_offset, \
         max(r.requested_at) AS requested_at \
         FROM erasure_receipts r LEFT JOIN topic_incarnations i ON i.topic = $2 \
         WHERE r.user_id = ANY($1) GROUP BY r.user_id",
    )
    .bind::<Array<Text>, _>(&users)
    .bind::<Text, _>(topic)
    .bind::<Integer, _>(partition)
    .load(conn)?;
    let mut before: HashMap<&str, ErasedBefore> = HashMap::new();
    for s in &stored {
        before.insert(s.user_id.as_str(), ErasedBefore { offset: s.kafka_offset, requested_at: Some(s.requested_at) });
    }
    for e in erasures {
        let b = before.entry(e.user_id.as_str()).or_default();
        b.offset = b.offset.max(Some(e.at.offset));
        b.requested_at = b.requested_at.max(Some(e.requested_at));
    }
    if before.is_empty() {
        return Ok((syncs, 0));
    }
    let (kept, skipped): (Vec<&ConsumedSync>, Vec<&ConsumedSync>) =
        syncs.into_iter().partition(|i| !before.get(i.outcome.user_id.as_str()).is_some_and(|b| b.covers(i)));
    for i in &skipped {
        info!(
            "skipping sync {} of user {} at offset {partition}/{}: the user's data was erased after it",
            i.outcome.sync_id, i.outcome.user_id, i.outcome.kafka_offset
        );
    }
    Ok((kept, skipped.len()))
}

/// Deletes every row of the erasures' users, drops them from the in-memory model and records
/// one receipt per erasure, in the caller's transaction. An erasure whose receipt exists (a
/// redelivery) is done already and is skipped. Returns the number carried out.
pub fn carry_out(
    conn: &mut PgConnection,
    topic: &str,
    cache: &Mutex<ModelCache>,
    erasures: &[&Erasure],
) -> Result<usize, ApplyError> {
    let ids: Vec<Uuid> = erasures.iter().map(|e| e.erasure_id).collect();
    let done: HashSet<Uuid> = diesel::sql_query("SELECT erasure_id FROM erasure_receipts WHERE erasure_id = ANY($1)")
        .bind::<Array<diesel::sql_types::Uuid>, _>(&ids)
        .load::<ReceiptId>(conn)?
        .into_iter()
        .map(|r| r.erasure_id)
        .collect();
    let mut seen = HashSet::new();
    let todo: Vec<&Erasure> =
        erasures.iter().copied().filter(|e| !done.contains(&e.erasure_id) && seen.insert(e.erasure_id)).collect();
    for e in erasures.iter().filter(|e| done.contains(&e.erasure_id)) {
        debug!("erasure {} at {}/{} was carried out already", e.erasure_id, e.at.partition, e.at.offset);
    }
    if todo.is_empty() {
        return Ok(0);
    }
    let users: Vec<&str> = todo.iter().map(|e| e.user_id.as_str()).collect::<HashSet<_>>().into_iter().collect();
    let mut deleted: BTreeMap<String, i64> = delete_user_rows(conn, &users)?.into_iter().collect();
    // Nothing stale may be written back: the users' next syncs start from the (empty) database.
    cache.lock().unwrap_or_else(|p| p.into_inner()).evict(&users);
    // The rows are counted on the user's first erasure of the batch; a later one found nothing.
    let rows: Vec<i64> = todo.iter().map(|e| deleted.remove(&e.user_id).unwrap_or(0)).collect();
    diesel::sql_query(
        "INSERT INTO erasure_receipts (erasure_id, user_id, topic, kafka_partition, kafka_offset, requested_at, \
         completed_at, rows_deleted) \
         SELECT k.erasure_id, k.user_id, $3, k.kafka_partition, k.kafka_offset, k.requested_at, now(), k.rows_deleted \
         FROM UNNEST($1::uuid[], $2::text[], $4::int4[], $5::int8[], $6::timestamptz[], $7::int8[]) \
         AS k(erasure_id, user_id, kafka_partition, kafka_offset, requested_at, rows_deleted) \
         ON CONFLICT (user_id, erasure_id) DO NOTHING",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(todo.iter().map(|e| e.erasure_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(todo.iter().map(|e| e.user_id.as_str()).collect::<Vec<_>>())
    .bind::<Text, _>(topic)
    .bind::<Array<Integer>, _>(todo.iter().map(|e| e.at.partition).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(todo.iter().map(|e| e.at.offset).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(todo.iter().map(|e| e.requested_at).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(&rows)
    .execute(conn)?;
    for (e, n) in todo.iter().zip(&rows) {
        info!(
            "erased the data of user {} (erasure {}, offset {}/{}): {n} row(s) deleted",
            e.user_id, e.erasure_id, e.at.partition, e.at.offset
        );
    }
    Ok(todo.len())
}

#[derive(QueryableByName)]
struct ReceiptId {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    erasure_id: Uuid,
}

#[derive(QueryableByName)]
struct Deleted {
    #[diesel(sql_type = Text)]
    user_id: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Deletes the users' rows from every table keyed by user, in one statement; returns the rows
/// deleted per user. Keep in step with the migrations: a new table keyed by user belongs here.
fn delete_user_rows(conn: &mut PgConnection, users: &[&str]) -> QueryResult<Vec<(String, i64)>> {
    let rows: Vec<Deleted> = diesel::sql_query(
        "WITH s AS (DELETE FROM sync_status WHERE user_id = ANY($1) RETURNING user_id), \
         p AS (DELETE FROM user_profiles WHERE user_id = ANY($1) RETURNING user_id), \
         d AS (DELETE FROM day_samples WHERE user_id = ANY($1) RETURNING user_id), \
         m AS (DELETE FROM daily_metrics WHERE user_id = ANY($1) RETURNING user_id), \
         r AS (DELETE FROM rolling_metrics WHERE user_id = ANY($1) RETURNING user_id) \
         SELECT user_id, count(*)::int8 AS n FROM (SELECT user_id FROM s UNION ALL SELECT user_id FROM p \
         UNION ALL SELECT user_id FROM d UNION ALL SELECT user_id FROM m UNION ALL SELECT user_id FROM r) x \
         GROUP BY user_id",
    )
    .bind::<Array<Text>, _>(users)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| (r.user_id, r.n)).collect())
}
