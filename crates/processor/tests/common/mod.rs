//! Shared helpers of the processor's integration tests.
#![allow(dead_code)]

use std::time::Duration;

use chrono::NaiveDate;
use diesel::prelude::*;
use events::device_synced::*;
use events::{headers, DeviceSynced, EventEncoder, DEVICE_SYNCED_TOPIC};
use processor::config::Settings;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use testkit::apps::{self, RunningApp};
use testkit::{unique, TestDatabase};

pub struct TestProcessor {
    pub db: TestDatabase,
    pub settings: Settings,
    pub app: RunningApp,
    pub ops_port: u16,
}

/// Starts a processor on its own topic, group and database.
pub async fn spawn_processor() -> TestProcessor {
    spawn_processor_with(|_| {}).await
}

/// Like [`spawn_processor`], with settings changed by `adjust` (a topic it names must exist).
pub async fn spawn_processor_with(adjust: impl FnOnce(&mut Settings)) -> TestProcessor {
    let db = TestDatabase::create();
    let topic = unique(DEVICE_SYNCED_TOPIC);
    testkit::create_topic(&topic, 3).await;
    testkit::create_topic(&format!("{topic}.dlq"), 1).await;
    let mut settings = apps::processor_settings(&topic, &db.url);
    adjust(&mut settings);
    let app = apps::spawn_processor(settings.clone()).await;
    TestProcessor { db, settings, ops_port: app.port, app }
}

pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", testkit::kafka_bootstrap())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("producer")
}

pub async fn produce(topic: &str, key: &str, payload: &[u8], sync_id: &str) -> (i32, i64) {
    let headers = OwnedHeaders::new()
        .insert(Header { key: headers::SYNC_ID, value: Some(sync_id) })
        .insert(Header { key: headers::TRACEPARENT, value: Some(TRACEPARENT) });
    producer()
        .send(FutureRecord::to(topic).key(key).payload(payload).headers(headers), Duration::from_secs(10))
        .await
        .map(|d| (d.partition, d.offset))
        .expect("broker acknowledged the record")
}

/// The `traceparent` [`produce`] puts on its records, as ingest-api would.
pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

impl TestProcessor {
    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.db.url).expect("test database")
    }

    pub async fn stop(self) {
        self.app.stop().await.expect("the processor stops cleanly and promptly");
    }
}

/// Encodes through the registry and produces keyed by user, with the sync id header.
pub async fn produce_event(topic: &str, event: &DeviceSynced) -> (i32, i64) {
    let encoder = EventEncoder::new(&testkit::schema_registry_url(), topic, SCHEMA_JSON).expect("encoder");
    let payload = encoder.encode(event).await.expect("encodes through the registry");
    produce(topic, &event.user_id, &payload, &event.sync_id).await
}

/// Like [`produce_event`] for many events, with one encoder and one producer (making a producer
/// costs a connection and an idempotent-producer handshake each time).
pub async fn produce_events<'a>(topic: &str, events: impl IntoIterator<Item = &'a DeviceSynced>) -> Vec<(i32, i64)> {
    let encoder = EventEncoder::new(&testkit::schema_registry_url(), topic, SCHEMA_JSON).expect("encoder");
    let producer = producer();
    let mut positions = Vec::new();
    for event in events {
        let payload = encoder.encode(event).await.expect("encodes through the registry");
        let headers = OwnedHeaders::new().insert(Header { key: headers::SYNC_ID, value: Some(&event.sync_id) });
        let record = FutureRecord::to(topic).key(&event.user_id).payload(&payload).headers(headers);
        let delivered = producer.send(record, Duration::from_secs(10)).await.expect("broker acknowledged the record");
        positions.push((delivered.partition, delivered.offset));
    }
    positions
}

/// Waits until every one of `events` has a sync status (processed or failed) in `p`'s database.
pub async fn wait_processed<'a>(
    p: &TestProcessor,
    events: impl IntoIterator<Item = &'a DeviceSynced>,
    timeout: Duration,
) {
    // A re-sent sync is one id, and one row.
    let ids: std::collections::BTreeSet<uuid::Uuid> = events.into_iter().map(|e| e.sync_id.parse().unwrap()).collect();
    let ids: Vec<uuid::Uuid> = ids.into_iter().collect();
    testkit::eventually(timeout, "every sync processed", || {
        let n: i64 = processor::schema::sync_status::table
            .filter(processor::schema::sync_status::sync_id.eq_any(&ids))
            .count()
            .get_result(&mut p.conn())
            .ok()?;
        (n == ids.len() as i64).then_some(())
    })
    .await;
}

pub const MIN: i64 = 60_000;
pub const HOUR: i64 = 60 * MIN;
pub const DAY: i64 = 24 * HOUR;

pub fn day0() -> i64 {
    processor::local_midnight_ms(NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(), 0)
}

/// Heart rate every `step_ms` at `bpm` over [from, to) from `device`, with steps per minute and
/// optional sleep; the sync's phone time is `to` unless changed.
pub fn synced(
    user: &str,
    device: &str,
    quality: HrQuality,
    (from, to, step_ms): (i64, i64, i64),
    bpm: i32,
    sleep: Vec<SleepSegment>,
) -> DeviceSynced {
    let mut e = testkit::sample_device_synced(user, device);
    let n = ((to - from) / step_ms) as usize;
    e.window_start_ms = from;
    e.window_end_ms = to;
    e.ingested_at = to + MIN;
    e.clock = ClockInfo { device_time_ms: to, phone_time_ms: to, skew_ms: 0 };
    e.time_zone =
        TimeZoneInfo { iana: "UTC".into(), offsets: vec![UtcOffsetSegment { start_ms: 0, offset_minutes: 0 }] };
    e.heart_rate = HeartRateSeries {
        time_deltas_ms: std::iter::once(0).chain(std::iter::repeat_n(step_ms, n.saturating_sub(1))).collect(),
        bpm: (0..n).map(|i| bpm + (i % 7) as i32).collect(),
        quality: vec![quality; n],
    };
    let minutes = ((to - from) / MIN) as usize;
    e.steps = StepSeries {
        start_deltas_ms: std::iter::once(0).chain(std::iter::repeat_n(MIN, minutes.saturating_sub(1))).collect(),
        duration_s: vec![60; minutes],
        steps: (0..minutes).map(|i| if bpm > 100 { 120 + (i % 30) as i32 } else { (i % 3) as i32 }).collect(),
        distance_m: vec![50.0; minutes],
    };
    // RR over the window, in blocks of 120 beats with gaps between them.
    e.rr_blocks = (0..(to - from) / (3 * MIN))
        .map(|b| RrBlock {
            first_beat_ms: from + b * 3 * MIN,
            intervals_ms: (0..120).map(|i| 60_000 / bpm.max(30) + ((i * 37 + b) % 40) as i32 - 20).collect(),
        })
        .collect();
    e.sleep = sleep;
    e.dropped_samples = Default::default();
    e
}

/// `n` copies of the test sync, each with its own sync id, the i-th for `user(i)` and moved
/// `i × step_ms` later (samples, clock and window together).
pub fn spaced_syncs(n: usize, step_ms: i64, user: impl Fn(usize) -> String) -> Vec<DeviceSynced> {
    (0..n)
        .map(|i| {
            let mut e = testkit::sample_device_synced(&user(i), "band");
            let shift = i as i64 * step_ms;
            e.window_start_ms += shift;
            e.window_end_ms += shift;
            e.clock.phone_time_ms += shift;
            e.clock.device_time_ms += shift;
            e.rr_blocks.iter_mut().for_each(|b| b.first_beat_ms += shift);
            e
        })
        .collect()
}

/// One user's week-like story in 19 events: nights and runs on a band, a strap worn over the band
/// for one run, a conflicting re-send, a profile change, and a day that arrives late.
pub fn story(user: &str) -> Vec<DeviceSynced> {
    let mut events = Vec::new();
    for d in 0..5 {
        let night_from = day0() + d * DAY - HOUR;
        let night_to = day0() + d * DAY + 7 * HOUR;
        let sleep = vec![
            SleepSegment { start_ms: night_from, end_ms: night_from + 3 * HOUR, stage: SleepStage::Light },
            SleepSegment { start_ms: night_from + 3 * HOUR, end_ms: night_from + 5 * HOUR, stage: SleepStage::Deep },
            SleepSegment { start_ms: night_from + 5 * HOUR, end_ms: night_to, stage: SleepStage::Rem },
        ];
        events.push(synced(user, "band-1", HrQuality::Locked, (night_from, night_to, 5_000), 52 + d as i32, sleep));
        let run = day0() + d * DAY + 10 * HOUR;
        events.push(synced(user, "band-1", HrQuality::Locked, (run, run + 40 * MIN, 5_000), 140, vec![]));
        let evening = day0() + d * DAY + 18 * HOUR;
        events.push(synced(user, "band-1", HrQuality::Unlocked, (evening, evening + 2 * HOUR, 10_000), 75, vec![]));
    }
    // A chest strap during day 1's run: it wins over the band for the time it covers.
    let run1 = day0() + DAY + 10 * HOUR;
    events.push(synced(user, "strap-9", HrQuality::Strap, (run1 + 5 * MIN, run1 + 35 * MIN, 1_000), 150, vec![]));
    // Day 2's run re-sent by the phone with different values (a firmware fix) and a later phone
    // time: it wins for every sample it carries, whatever arrives first.
    let mut resend = events[7].clone();
    resend.sync_id = uuid::Uuid::new_v4().to_string();
    resend.event_id = uuid::Uuid::new_v4().to_string();
    resend.clock.phone_time_ms += HOUR;
    resend.heart_rate.bpm.iter_mut().for_each(|b| *b += 3);
    events.push(resend);
    // An identical retry of day 3's night (same samples, new sync id): counts once.
    let mut retry = events[9].clone();
    retry.sync_id = uuid::Uuid::new_v4().to_string();
    events.push(retry);
    // A new weight from day 3 on: every day depends on the profile.
    let mut profile_change = events[10].clone();
    profile_change.sync_id = uuid::Uuid::new_v4().to_string();
    profile_change.clock.phone_time_ms += 2 * HOUR;
    if let Some(p) = profile_change.profile.as_mut() {
        p.weight_kg += 4.0;
    }
    events.push(profile_change);
    events
}

/// Every row of `table` as JSON text, without `except` columns (write times), in key order:
/// equal lists mean bit-identical rows (PostgreSQL prints doubles exactly).
pub fn dump(conn: &mut PgConnection, table: &str, except: &[&str], order: &str) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        row: String,
    }
    let except = except.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", ");
    let query = format!("SELECT (to_jsonb(t) - ARRAY[{except}]::text[])::text AS row FROM {table} t ORDER BY {order}");
    diesel::sql_query(query).load::<Row>(conn).unwrap().into_iter().map(|r| r.row).collect()
}

/// The whole health model of a database: every derived table, write times (and the count of
/// rows an erasure deleted) left out.
pub fn model_dump(conn: &mut PgConnection) -> Vec<(&'static str, Vec<String>)> {
    vec![
        ("daily_metrics", dump(conn, "daily_metrics", &["updated_at"], "user_id, local_date")),
        ("rolling_metrics", dump(conn, "rolling_metrics", &[], "user_id, local_date")),
        ("user_profiles", dump(conn, "user_profiles", &[], "user_id")),
        ("day_samples", dump(conn, "day_samples", &[], "user_id, local_date, sync_id")),
        ("sync_status", dump(conn, "sync_status", &["processed_at"], "sync_id")),
        // How many rows an erasure deleted depends on what was applied before it: a rebuild never
        // applies the syncs an erasure precedes, so it deletes none. The rest is the log's.
        ("erasure_receipts", dump(conn, "erasure_receipts", &["completed_at", "rows_deleted"], "erasure_id")),
    ]
}

/// Scrapes one counter or gauge of the processor's `/metrics`.
pub async fn metric(port: u16, name: &str) -> Option<f64> {
    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.ok()?.text().await.ok()?;
    body.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}
