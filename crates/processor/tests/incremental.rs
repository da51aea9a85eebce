//! The incremental model: whatever the arrival order, batch boundaries or cache state, the rows
//! are bit-identical; unusable events go to the DLQ once and their partition goes on.

mod common;

use std::time::Duration;

use chrono::NaiveDate;
use common::{
    day0, produce_event, produce_events, spaced_syncs, spawn_processor, spawn_processor_with, story, synced,
    wait_processed, TestProcessor, DAY, HOUR,
};
use diesel::prelude::*;
use events::device_synced::*;
use events::{headers, DeviceSynced};
use processor::schema::{daily_metrics, rolling_metrics, sync_status, Outcome};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use testkit::{eventually, unique};

type DailyRow = (NaiveDate, f64, Option<f64>, Option<f64>, Option<f64>, f64, bool, i32, i32, serde_json::Value);
type RollingRow = (NaiveDate, i32, bool, f64, f64, f64, f64, Option<f64>, Option<f64>, f64, f64, serde_json::Value);

/// Every column of every row of the user, but the write time.
fn rows(p: &TestProcessor, user: &str) -> (Vec<DailyRow>, Vec<RollingRow>) {
    use daily_metrics as d;
    use rolling_metrics as r;
    let mut c = p.conn();
    let daily = d::table
        .filter(d::user_id.eq(user))
        .order(d::local_date)
        .select((
            d::local_date,
            d::steps,
            d::resting_hr,
            d::hr_max,
            d::ln_rmssd,
            d::training_load,
            d::low_coverage,
            d::samples_received,
            d::duplicates_dropped,
            d::summary,
        ))
        .load(&mut c)
        .unwrap();
    let rolling = r::table
        .filter(r::user_id.eq(user))
        .order(r::local_date)
        .select((
            r::local_date,
            r::day_index,
            r::has_data,
            r::training_load,
            r::fitness,
            r::fatigue,
            r::form,
            r::acwr_rolling,
            r::acwr_ewma,
            r::ewma7,
            r::ewma28,
            r::metrics,
        ))
        .load(&mut c)
        .unwrap();
    (daily, rolling)
}

/// Produces `events` in `order`, waiting after each group so that groups land in separate batches.
async fn feed(p: &TestProcessor, events: &[DeviceSynced], groups: &[&[usize]]) {
    let mut sent = Vec::new();
    for group in groups {
        for &i in *group {
            produce_event(&p.settings.topic, &events[i]).await;
            sent.push(events[i].clone());
        }
        wait_processed(p, &sent, Duration::from_secs(90)).await;
    }
}

#[actix_web::test]
async fn arrival_order_batches_and_cache_state_never_change_a_bit() {
    let user = "u-story";
    let events = story(user);
    let n = events.len();
    let in_order: Vec<usize> = (0..n).collect();
    let reversed: Vec<usize> = (0..n).rev().collect();
    // Day 0 late, the re-send before what it revises, the profile change early.
    let shuffled: Vec<usize> = vec![18, 3, 4, 5, 16, 9, 10, 11, 6, 7, 8, 15, 12, 13, 14, 17, 0, 1, 2];
    assert_eq!(shuffled.len(), n);

    // One event a batch, in order.
    let a = spawn_processor().await;
    let singles: Vec<Vec<usize>> = in_order.iter().map(|&i| vec![i]).collect();
    feed(&a, &events, &singles.iter().map(Vec::as_slice).collect::<Vec<_>>()).await;
    // Reversed, all in one batch (on the topic before the processor starts), with every event
    // sent twice in it (the same sync id): a re-send is nothing new, within a batch as across.
    let reversed_resent: Vec<usize> = reversed.iter().flat_map(|&i| [i, i]).collect();
    let backlog = unique("device-synced");
    testkit::create_topic(&backlog, 1).await;
    produce_events(&backlog, reversed_resent.iter().map(|&i| &events[i])).await;
    let b = spawn_processor_with(|s| {
        s.topic = backlog.clone();
        // Long enough for the first batch to take the whole topic.
        s.batch_max_wait = Duration::from_secs(2);
    })
    .await;
    wait_processed(&b, &events, Duration::from_secs(90)).await;
    // Shuffled, in uneven batches.
    let c = spawn_processor().await;
    feed(&c, &events, &[&shuffled[..3], &shuffled[3..4], &shuffled[4..11], &shuffled[11..]]).await;
    // Shuffled again with no cache at all: every batch loads its users from the database.
    let d = spawn_processor_with(|s| s.cache_budget_bytes = 0).await;
    feed(&d, &events, &[&shuffled[..3], &shuffled[3..4], &shuffled[4..11], &shuffled[11..]]).await;

    let expected = rows(&a, user);
    // Nights end on days 0..=4, the evening before day 0 has data of its own.
    assert_eq!(expected.0.len(), 6, "{:?}", expected.0.iter().map(|r| r.0).collect::<Vec<_>>());
    assert_eq!(expected.1.len(), 6);
    assert!(expected.0.iter().any(|r| r.8 > 0), "the identical retry shows as duplicates");
    for (name, p) in [("reversed", &b), ("shuffled", &c), ("uncached", &d)] {
        let got = rows(p, user);
        assert_eq!(got.0, expected.0, "daily rows, {name}");
        assert_eq!(got.1, expected.1, "rolling rows, {name}");
    }
    for p in [a, b, c, d] {
        p.stop().await;
    }
}

#[actix_web::test]
async fn a_sync_sent_twice_within_one_batch_counts_once() {
    let user = "u-twice";
    // Three hours apart: one local day, no overlap.
    let events = spaced_syncs(3, 3 * HOUR, |_| user.to_owned());
    // Each once, one a batch.
    let once = spawn_processor().await;
    feed(&once, &events, &[&[0], &[1], &[2]]).await;
    // The first alone, so that the user's profile is stored: a user's first profile rebuilds
    // every day from the stored chunks, which would hide a chunk merged twice. Then the other
    // two twice each, in one batch.
    let twice = spawn_processor_with(|s| s.batch_max_wait = Duration::from_secs(2)).await;
    feed(&twice, &events, &[&[0]]).await;
    produce_events(&twice.settings.topic, [&events[1], &events[1], &events[2], &events[2]]).await;
    wait_processed(&twice, &events, Duration::from_secs(60)).await;
    let expected = rows(&once, user);
    assert!(expected.0.iter().all(|r| r.8 == 0), "three syncs without overlap: no duplicates");
    assert_eq!(rows(&twice, user), expected);
    for p in [once, twice] {
        p.stop().await;
    }
}

#[actix_web::test]
async fn the_strap_and_the_later_resend_win() {
    let user = "u-sources";
    let events = story(user);
    let p = spawn_processor().await;
    feed(&p, &events, &[&(0..events.len()).collect::<Vec<_>>()]).await;
    let with_all = rows(&p, user);
    // Without the strap and the re-send, days 1 and 2 differ; with them, their values are used.
    let q = spawn_processor().await;
    let without: Vec<usize> = (0..15).chain(17..events.len()).collect();
    feed(&q, &events, &[&without]).await;
    let without_rows = rows(&q, user);
    let zones_of = |rows: &[DailyRow], day: u64| {
        let date = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap() + chrono::Days::new(day);
        rows.iter().find(|r| r.0 == date).map(|r| r.9["zone_minutes"].clone())
    };
    assert_ne!(zones_of(&with_all.0, 1), zones_of(&without_rows.0, 1), "the strap changed day 1's zones");
    assert_ne!(zones_of(&with_all.0, 2), zones_of(&without_rows.0, 2), "the re-send changed day 2's zones");
    assert_eq!(zones_of(&with_all.0, 3), zones_of(&without_rows.0, 3), "day 3 saw neither");
    p.stop().await;
    q.stop().await;
}

/// The records of a topic's DLQ so far: (sync id header, Connect stage header).
async fn dead_letters(topic: &str) -> Vec<(String, String)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", testkit::kafka_bootstrap())
        .set("group.id", unique("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&format!("{topic}.dlq")]).unwrap();
    let mut out = Vec::new();
    while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(3), consumer.recv()).await {
        let header = |key: &str| {
            m.headers()
                .and_then(|h| h.iter().find(|x| x.key == key).and_then(|x| x.value))
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        out.push((header(headers::SYNC_ID), header(headers::connect_errors::STAGE)));
    }
    out
}

fn status_of(p: &TestProcessor, sync_id: &str) -> Option<Outcome> {
    sync_status::table
        .filter(sync_status::sync_id.eq(sync_id.parse::<uuid::Uuid>().unwrap()))
        .select(sync_status::outcome)
        .first(&mut p.conn())
        .ok()
}

#[actix_web::test]
async fn an_apply_stage_poison_is_dead_lettered_once_and_its_partition_goes_on() {
    let group = unique("processor");
    let p = spawn_processor_with(|s| {
        s.group_id = group.clone();
        s.max_series_days = 400;
    })
    .await;
    let user = "u-poison";
    let night = |d: i64| {
        let from = day0() + d * DAY;
        synced(user, "band-1", HrQuality::Locked, (from, from + HOUR, 5_000), 60, vec![])
    };
    let before = night(0);
    // Its own times are sane (within 400 days of its ingest time), but it would stretch the
    // user's series to 500 days: only the apply stage can tell.
    let poison = night(500);
    let after = night(1);
    let also_after = night(2);
    let batch = [before.clone(), poison.clone(), after.clone(), also_after.clone()];
    for e in &batch {
        produce_event(&p.settings.topic, e).await;
    }
    wait_processed(&p, &batch, Duration::from_secs(90)).await;
    assert_eq!(status_of(&p, &poison.sync_id), Some(Outcome::Failed));
    for e in [&before, &after, &also_after] {
        assert_eq!(status_of(&p, &e.sync_id), Some(Outcome::Processed));
    }
    let days: i64 =
        daily_metrics::table.filter(daily_metrics::user_id.eq(user)).count().get_result(&mut p.conn()).unwrap();
    assert_eq!(days, 3, "days 0, 1 and 2 are modelled, day 500 is not");

    // A restart in a new group gets every record again: what was applied, poison included, is
    // skipped by the watermark, and nothing is dead-lettered twice.
    let topic = p.settings.topic.clone();
    let db_url = p.db.url.clone();
    let settings = p.settings.clone();
    let _ = p.app.stop().await;
    let again = spawn_processor_with(|s| {
        *s = settings.clone();
        s.database_url = db_url.clone();
        s.group_id = unique("processor-again");
    })
    .await;
    let later = night(3);
    produce_event(&topic, &later).await;
    let later_id: uuid::Uuid = later.sync_id.parse().unwrap();
    eventually(Duration::from_secs(60), "the later sync processed", || {
        let mut c = PgConnection::establish(&db_url).ok()?;
        sync_status::table
            .filter(sync_status::sync_id.eq(later_id))
            .select(sync_status::outcome)
            .first::<Outcome>(&mut c)
            .ok()
    })
    .await;
    let dlq = dead_letters(&topic).await;
    assert_eq!(dlq, vec![(poison.sync_id.clone(), "TASK_PUT".to_owned())], "exactly one DLQ record");
    again.stop().await;
    drop(p.db);
}

#[actix_web::test]
async fn an_event_in_the_year_200000_is_dead_lettered_and_the_processor_stays_up() {
    let p = spawn_processor().await;
    let mut absurd = synced("u-far", "band-1", HrQuality::Locked, (day0(), day0() + HOUR, 5_000), 60, vec![]);
    // The phone's clock says year 200,000; ingest time is now-ish.
    let far = 6_249_223_680_000_000;
    absurd.window_start_ms = far;
    absurd.window_end_ms = far + HOUR;
    absurd.rr_blocks.iter_mut().for_each(|b| b.first_beat_ms += far - day0());
    let fine = synced("u-far", "band-1", HrQuality::Locked, (day0(), day0() + HOUR, 5_000), 60, vec![]);
    produce_event(&p.settings.topic, &absurd).await;
    produce_event(&p.settings.topic, &fine).await;
    wait_processed(&p, [&absurd, &fine], Duration::from_secs(90)).await;
    assert_eq!(status_of(&p, &absurd.sync_id), Some(Outcome::Failed));
    assert_eq!(status_of(&p, &fine.sync_id), Some(Outcome::Processed));
    let health = reqwest::get(format!("http://127.0.0.1:{}/healthz", p.ops_port)).await.unwrap();
    assert!(health.status().is_success());
    let dlq = dead_letters(&p.settings.topic).await;
    assert_eq!(dlq, vec![(absurd.sync_id.clone(), "TASK_PUT".to_owned())]);
    p.stop().await;
}
