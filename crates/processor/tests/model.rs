//! The health model end to end: events in, the expected rows out, checked against the formulas;
//! and the model is a function of the data, not of arrival order.

mod common;

use std::time::Duration;

use chrono::NaiveDate;
use common::{produce_event, spawn_processor, wait_processed, TestProcessor};
use diesel::prelude::*;
use events::device_synced::v1;
use events::device_synced::*;
use events::DeviceSynced;
use processor::schema::{daily_metrics, rolling_metrics, sync_status, Outcome};
use testkit::eventually;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

/// UTC midnight of 2026-03-02 (the user's zone is UTC here).
fn day0() -> i64 {
    processor::local_midnight_ms(NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(), 0)
}

/// An event with heart rate every 5 s at `bpm` over [from, to), steps per minute over the same
/// span, and optional sleep; the profile is a 38-year-old woman (born 1988) on 2026 dates.
fn synced(user: &str, from: i64, to: i64, bpm: i32, steps_per_min: i32, sleep: Vec<SleepSegment>) -> DeviceSynced {
    let mut e = testkit::sample_device_synced(user, "band-1");
    let n = ((to - from) / 5_000) as usize;
    e.window_start_ms = from;
    e.window_end_ms = to;
    e.clock = ClockInfo { device_time_ms: to, phone_time_ms: to, skew_ms: 0 };
    e.time_zone =
        TimeZoneInfo { iana: "UTC".into(), offsets: vec![UtcOffsetSegment { start_ms: 0, offset_minutes: 0 }] };
    e.heart_rate = HeartRateSeries {
        time_deltas_ms: std::iter::once(0).chain(std::iter::repeat_n(5_000, n.saturating_sub(1))).collect(),
        bpm: vec![bpm; n],
        quality: vec![HrQuality::Locked; n],
    };
    let minutes = ((to - from) / MIN) as usize;
    e.steps = StepSeries {
        start_deltas_ms: std::iter::once(0).chain(std::iter::repeat_n(MIN, minutes.saturating_sub(1))).collect(),
        duration_s: vec![60; minutes],
        steps: vec![steps_per_min; minutes],
        distance_m: vec![steps_per_min as f32 * 0.7; minutes],
    };
    e.rr_blocks = vec![];
    e.sleep = sleep;
    e.dropped_samples = Default::default();
    e
}

/// A night 23:00 to 07:00 ending on day `d`, at 50 bpm, all light sleep.
fn night(user: &str, d: i64) -> DeviceSynced {
    let (from, to) = (day0() + d * 24 * HOUR - HOUR, day0() + d * 24 * HOUR + 7 * HOUR);
    synced(user, from, to, 50, 0, vec![SleepSegment { start_ms: from, end_ms: to, stage: SleepStage::Light }])
}

/// 30 minutes at 150 bpm and 140 steps a minute, at 10:00 on day `d`.
fn run(user: &str, d: i64) -> DeviceSynced {
    let from = day0() + d * 24 * HOUR + 10 * HOUR;
    synced(user, from, from + 30 * MIN, 150, 140, vec![])
}

#[derive(Debug, PartialEq)]
struct Tables {
    daily: Vec<(NaiveDate, f64, Option<f64>, f64, serde_json::Value)>,
    rolling: Vec<(NaiveDate, f64, f64, f64, serde_json::Value)>,
}

fn tables(p: &TestProcessor, user: &str) -> Tables {
    let mut c = p.conn();
    Tables {
        daily: daily_metrics::table
            .filter(daily_metrics::user_id.eq(user))
            .order(daily_metrics::local_date)
            .select((
                daily_metrics::local_date,
                daily_metrics::steps,
                daily_metrics::resting_hr,
                daily_metrics::training_load,
                daily_metrics::summary,
            ))
            .load(&mut c)
            .unwrap(),
        rolling: rolling_metrics::table
            .filter(rolling_metrics::user_id.eq(user))
            .order(rolling_metrics::local_date)
            .select((
                rolling_metrics::local_date,
                rolling_metrics::fitness,
                rolling_metrics::fatigue,
                rolling_metrics::form,
                rolling_metrics::metrics,
            ))
            .load(&mut c)
            .unwrap(),
    }
}

#[actix_web::test]
async fn a_day_of_events_gives_the_values_of_the_formulas() {
    let p = spawn_processor().await;
    let (sleep, exercise) = (night("u-f", 0), run("u-f", 0));
    produce_event(&p.settings.topic, &sleep).await;
    produce_event(&p.settings.topic, &exercise).await;
    wait_processed(&p, [&sleep, &exercise], Duration::from_secs(60)).await;
    let t = tables(&p, "u-f");
    let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let (date, steps, rhr, load, summary) = t.daily.iter().find(|r| r.0 == day).cloned().expect("a row for the day");
    assert_eq!(date, day);
    assert_eq!(steps, 30.0 * 140.0);
    // Resting HR: minimum 5-minute mean over the main sleep (constant 50 bpm).
    assert_eq!(rhr, Some(50.0));
    assert_eq!(summary["resting_hr_method"], "sleep");
    // HRmax: Tanaka 208 - 0.7 * 38 = 181.4 (above the 150 bpm sustained).
    let hr_max = 208.0 - 0.7 * 38.0;
    assert!((summary["hr_max"].as_f64().unwrap() - hr_max).abs() < 1e-9);
    // Banister TRIMP (female a = 0.86, b = 1.67) over 30 minutes at x = (150-50)/(181.4-50).
    let x: f64 = (150.0 - 50.0) / (hr_max - 50.0);
    let banister = 30.0 * x * 0.86 * (1.67 * x).exp();
    assert!((load - banister).abs() < 1e-6, "{load} vs {banister}");
    // Edwards: 150/181.4 = 0.83 of HRmax, zone weight 4, for 30 minutes.
    assert!((summary["edwards_trimp"].as_f64().unwrap() - 120.0).abs() < 1e-6);
    // Tudor-Locke: 140 steps/min is vigorous.
    assert_eq!(summary["vigorous_minutes"], 30);
    assert_eq!(summary["sleep"]["total_sleep_min"], 480.0);
    // Rolling: day 0 of the series, no history before it.
    let rolling = t.rolling.iter().find(|r| r.0 == day).expect("a rolling row");
    assert!((rolling.1 - (1.0 - (-1.0f64 / 42.0).exp()) * banister).abs() < 1e-6, "CTL");
    assert!((rolling.2 - (1.0 - (-1.0f64 / 7.0).exp()) * banister).abs() < 1e-6, "ATL");
    assert_eq!(rolling.3, 0.0, "TSB on day 0");
    // VO2max (Uth 2004) from HRmax and resting HR.
    assert!((rolling.4["vo2max"].as_f64().unwrap() - 15.3 * hr_max / 50.0).abs() < 1e-9);
    p.stop().await;
}

#[actix_web::test]
async fn late_and_re_sent_data_give_the_same_model_as_in_order_data() {
    let user = "u-order";
    let mut events = Vec::new();
    for d in 0..4 {
        events.push(night(user, d));
        events.push(run(user, d));
    }
    // In order, once.
    let in_order = spawn_processor().await;
    for e in &events {
        produce_event(&in_order.settings.topic, e).await;
    }
    wait_processed(&in_order, &events, Duration::from_secs(60)).await;

    // Out of order: the newest day first, an old day's batch late, and an overlapping re-sync
    // of day 1's run (new sync id, same samples) that must count once.
    let shuffled = spawn_processor().await;
    let mut resync = run(user, 1);
    resync.sync_id = uuid::Uuid::new_v4().to_string();
    let order = [7, 6, 5, 4, 2, 3, 0, 1];
    for &i in &order {
        produce_event(&shuffled.settings.topic, &events[i]).await;
    }
    produce_event(&shuffled.settings.topic, &resync).await;
    let mut all: Vec<&DeviceSynced> = events.iter().collect();
    all.push(&resync);
    wait_processed(&shuffled, all.iter().copied(), Duration::from_secs(60)).await;

    let (a, b) = (tables(&in_order, user), tables(&shuffled, user));
    // Days 0..=3, and the evening before day 0 (the first night starts at 23:00).
    assert_eq!(a.daily.len(), 5);
    assert_eq!(a.rolling.len(), 5);
    // Same values: only the duplicate count may differ (the re-sync was dropped as duplicates).
    let strip = |t: &Tables| -> Vec<(NaiveDate, f64, Option<f64>, f64)> {
        t.daily.iter().map(|r| (r.0, r.1, r.2, r.3)).collect()
    };
    assert_eq!(strip(&a), strip(&b));
    assert_eq!(a.rolling, b.rolling);
    let dup: i32 = daily_metrics::table
        .filter(daily_metrics::user_id.eq(user))
        .select(diesel::dsl::sum(daily_metrics::duplicates_dropped))
        .first::<Option<i64>>(&mut shuffled.conn())
        .unwrap()
        .unwrap_or(0) as i32;
    assert_eq!(dup, 360 + 30, "the re-sync's 360 HR samples and 30 step epochs were dropped as duplicates");
    in_order.stop().await;
    shuffled.stop().await;
}

#[actix_web::test]
async fn v1_and_v2_events_in_one_partition_are_both_processed() {
    let p = spawn_processor().await;
    let registry = testkit::schema_registry_url();
    // An old producer, with the v1 schema registered as version 1 of the subject.
    let v1_schema = VERSIONS[0].1;
    let old_encoder = events::EventEncoder::new(&registry, &p.settings.topic, v1_schema).unwrap();
    let mut as_json = serde_json::to_value(run("u-mixed", 0)).unwrap();
    for field in ["spo2", "skin_temperature", "wear_events"] {
        as_json.as_object_mut().unwrap().remove(field);
    }
    let old: v1::DeviceSynced = serde_json::from_value(as_json).unwrap();
    let payload = old_encoder.encode(&old).await.unwrap();
    let (p1, _) = common::produce(&p.settings.topic, &old.user_id, &payload, &old.sync_id).await;

    // The current producer writes v2, with SpO2 over the night and an hour off the wrist.
    let mut new = night("u-mixed", 0);
    let night_start = new.window_start_ms;
    let percents: Vec<i32> = (0..480).map(|m| [96, 95, 88, 97][m % 4]).collect();
    new.spo2 = Some(Spo2Series {
        time_deltas_ms: std::iter::once(0).chain(std::iter::repeat_n(MIN, 479)).collect(),
        percent: percents.clone(),
    });
    let noon = day0() + 12 * HOUR;
    new.wear_events = vec![
        WearEvent { time_ms: noon, state: WearState::OffWrist },
        WearEvent { time_ms: noon + HOUR, state: WearState::OnWrist },
    ];
    let (p2, _) = produce_event(&p.settings.topic, &new).await;
    assert_eq!(p1, p2, "one user, one partition");
    wait_processed(&p, [&new], Duration::from_secs(60)).await;
    let old_id: uuid::Uuid = old.sync_id.parse().unwrap();
    eventually(Duration::from_secs(30), "the v1 event processed", || {
        sync_status::table
            .filter(sync_status::sync_id.eq(old_id))
            .select(sync_status::outcome)
            .first::<Outcome>(&mut p.conn())
            .ok()
            .filter(|&o| o == Outcome::Processed)
    })
    .await;

    let mut request = reqwest::Client::new().get(format!("{registry}/subjects/{}-value/versions", p.settings.topic));
    if let Some(auth) = testkit::registry_basic_auth() {
        request = request.basic_auth(auth.user, Some(auth.password));
    }
    let versions: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
    assert_eq!(versions, serde_json::json!([1, 2]), "v1 then v2 registered under the subject");

    let t = tables(&p, "u-mixed");
    let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let summary = &t.daily.iter().find(|r| r.0 == day).expect("the day").4;
    // The v1 run counts; the v2 night's SpO2 gives the night mean and minimum.
    assert_eq!(summary["steps"], 30.0 * 140.0);
    let in_sleep: Vec<f64> = percents.iter().map(|&v| f64::from(v)).collect();
    let mean = in_sleep.iter().sum::<f64>() / in_sleep.len() as f64;
    assert!((summary["spo2_night"]["mean"].as_f64().unwrap() - mean).abs() < 1e-9, "{summary}");
    assert_eq!(summary["spo2_night"]["min"], 88.0);
    assert_eq!(summary["quality"]["off_wrist_minutes"], 60);
    assert!(night_start < noon);
    p.stop().await;
}

#[actix_web::test]
async fn without_v2_data_the_model_degrades_cleanly() {
    let p = spawn_processor().await;
    let e = night("u-v1only", 0);
    produce_event(&p.settings.topic, &e).await;
    wait_processed(&p, [&e], Duration::from_secs(60)).await;
    let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let summary = tables(&p, "u-v1only").daily.into_iter().find(|r| r.0 == day).expect("the day").4;
    assert!(summary["spo2_night"].is_null());
    assert!(summary["skin_temperature_deviation_c"].is_null());
    assert_eq!(summary["quality"]["off_wrist_minutes"], 0);
    assert_eq!(summary["resting_hr"], 50.0);
    p.stop().await;
}
