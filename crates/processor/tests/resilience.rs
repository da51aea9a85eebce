//! Failures: the database going away, a crash in the middle of a batch, and sharing the
//! partitions between two instances. Nothing is lost and nothing is counted twice.

mod common;

use std::time::Duration;

use common::{produce_event, produce_events, spaced_syncs, spawn_processor_with, wait_processed, TestProcessor};
use diesel::prelude::*;
use events::DeviceSynced;
use processor::schema::{daily_metrics, rolling_metrics, sync_status};
use testkit::{eventually, unique, TcpProxy, TestDatabase};

/// `n` syncs for a few users over a few days: each in its own 3-hour slot.
fn workload(n: usize) -> Vec<DeviceSynced> {
    spaced_syncs(n, 3 * 3_600_000, |i| format!("user-{}", i % 5))
}

type DailyRow = (String, chrono::NaiveDate, f64, Option<f64>, f64, i32, i32, serde_json::Value);
type RollingRow = (String, chrono::NaiveDate, f64, f64, f64, f64, serde_json::Value);
/// Every daily and rolling row (values, counts and JSON), and the number of sync statuses.
type Snapshot = (Vec<DailyRow>, Vec<RollingRow>, i64);

fn snapshot(url: &str) -> Snapshot {
    let mut c = PgConnection::establish(url).unwrap();
    let daily = daily_metrics::table
        .order((daily_metrics::user_id, daily_metrics::local_date))
        .select((
            daily_metrics::user_id,
            daily_metrics::local_date,
            daily_metrics::steps,
            daily_metrics::resting_hr,
            daily_metrics::training_load,
            daily_metrics::samples_received,
            daily_metrics::duplicates_dropped,
            daily_metrics::summary,
        ))
        .load(&mut c)
        .unwrap();
    let rolling = rolling_metrics::table
        .order((rolling_metrics::user_id, rolling_metrics::local_date))
        .select((
            rolling_metrics::user_id,
            rolling_metrics::local_date,
            rolling_metrics::fitness,
            rolling_metrics::fatigue,
            rolling_metrics::ewma7,
            rolling_metrics::ewma28,
            rolling_metrics::metrics,
        ))
        .load(&mut c)
        .unwrap();
    let syncs = sync_status::table.count().get_result(&mut c).unwrap();
    (daily, rolling, syncs)
}

/// A from-scratch run over the same topic, in a fresh database and group.
async fn recompute_from_scratch(topic: &str, events: &[DeviceSynced]) -> Snapshot {
    let fresh = spawn_processor_with(|s| s.topic = topic.to_owned()).await;
    wait_processed(&fresh, events, Duration::from_secs(60)).await;
    let snap = snapshot(&fresh.db.url);
    fresh.stop().await;
    snap
}

#[actix_web::test]
async fn database_down_then_back_skips_no_event() {
    // The processor reaches its database through a proxy the test can cut; the test reads directly.
    let proxy = TcpProxy::start("127.0.0.1:5432").await;
    let p = spawn_processor_with(|s| {
        s.database_url = s.database_url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port))
    })
    .await;
    let events = workload(6);
    for e in &events[..3] {
        produce_event(&p.settings.topic, e).await;
    }
    wait_processed(&p, &events[..3], Duration::from_secs(30)).await;

    proxy.cut();
    for e in &events[3..] {
        produce_event(&p.settings.topic, e).await;
    }
    let ready = format!("http://127.0.0.1:{}/readyz", p.ops_port);
    eventually(Duration::from_secs(30), "readiness to turn false", || {
        let status = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &ready])
            .output()
            .ok()?;
        (String::from_utf8_lossy(&status.stdout) == "503").then_some(())
    })
    .await;
    proxy.restore();
    wait_processed(&p, &events, Duration::from_secs(60)).await;
    let n: i64 = sync_status::table.count().get_result(&mut p.conn()).unwrap();
    assert_eq!(n, 6);
    assert_eq!(snapshot(&p.db.url), recompute_from_scratch(&p.settings.topic, &events).await);
    p.stop().await;
}

#[actix_web::test]
async fn a_second_instance_joining_and_leaving_mid_run_changes_nothing() {
    let topic = unique("device-synced");
    testkit::create_topic(&topic, 4).await;
    let group = unique("processor");
    let a = spawn_processor_with(|s| {
        s.topic = topic.clone();
        s.group_id = group.clone();
        s.batch_max_events = 5;
    })
    .await;
    let shared_db = a.db.url.clone();
    let events = workload(60);
    for e in &events[..20] {
        produce_event(&topic, e).await;
    }
    wait_processed(&a, &events[..20], Duration::from_secs(60)).await;
    // B joins: the partitions are shared, and each owner's cache must notice the other's writes.
    let b = spawn_processor_with(|s| {
        s.topic = topic.clone();
        s.group_id = group.clone();
        s.database_url = shared_db.clone();
        s.batch_max_events = 5;
    })
    .await;
    for e in &events[20..40] {
        produce_event(&topic, e).await;
    }
    wait_processed(&a, &events[..40], Duration::from_secs(60)).await;
    let applied_by_b = applied(&b).await;
    // B leaves: A takes its partitions back, with what B wrote meanwhile.
    b.stop().await;
    for e in &events[40..] {
        produce_event(&topic, e).await;
    }
    wait_processed(&a, &events, Duration::from_secs(60)).await;
    assert!(applied_by_b > 0.0, "the second instance got no work");
    assert!(applied(&a).await > 0.0);
    assert_eq!(snapshot(&shared_db), recompute_from_scratch(&topic, &events).await);
    a.stop().await;
}

async fn applied(p: &TestProcessor) -> f64 {
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", p.ops_port)).await.unwrap().text().await.unwrap();
    metrics
        .lines()
        .find(|l| l.starts_with("processor_events_total{outcome=\"applied\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[actix_web::test]
async fn kill_9_mid_batch_loses_nothing_and_counts_nothing_twice() {
    let topic = unique("device-synced");
    testkit::create_topic(&topic, 3).await;
    testkit::create_topic(&format!("{topic}.dlq"), 1).await;
    let db = TestDatabase::create();
    // A new group each start: a killed member would hold its partitions for the session timeout;
    // a new group reads everything again, and the watermark skips what was applied.
    let spawn = || {
        let group = unique("processor");
        std::process::Command::new(env!("CARGO_BIN_EXE_processor"))
            .env("KAFKA_BOOTSTRAP_SERVERS", testkit::kafka_bootstrap())
            .env("SCHEMA_REGISTRY_URL", testkit::schema_registry_url())
            .env("DATABASE_URL", &db.url)
            .env("PROCESSOR_TOPIC", &topic)
            .env("PROCESSOR_DLQ_TOPIC", format!("{topic}.dlq"))
            .env("PROCESSOR_GROUP_ID", &group)
            .env("PROCESSOR_OPS_ADDR", "127.0.0.1:0")
            .env("PROCESSOR_BATCH_MAX_EVENTS", "5")
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap()
    };
    // Ten slices, one produced before each start, so that every one of the ten starts has new
    // work to be killed in; every seventh sync of a slice is sent again (a phone's retry).
    let events = workload(240);
    let distinct = events.len() as i64;
    let count = || -> i64 {
        sync_status::table.count().get_result(&mut PgConnection::establish(&db.url).unwrap()).unwrap_or(0)
    };
    // Ten kills at pseudo-random points (seeded, so a failure can be replayed).
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut sent = Vec::new();
    for (kill, slice) in events.chunks(events.len() / 10).enumerate() {
        let resent = slice.iter().step_by(7);
        let batch: Vec<&DeviceSynced> = slice.iter().chain(resent).collect();
        produce_events(&topic, batch.iter().copied()).await;
        sent.extend(batch.into_iter().cloned());
        let before = count();
        let mut child = spawn();
        eventually(Duration::from_secs(60), "progress after a restart", || (count() > before).then_some(())).await;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(seed % 400)).await;
        child.kill().unwrap(); // SIGKILL, wherever it is
        child.wait().unwrap();
        log::info!("kill {kill}: {} of {distinct} syncs recorded", count());
    }
    let events = sent;
    let mut child = spawn();
    eventually(Duration::from_secs(90), "all events processed after the restarts", || {
        (count() == distinct).then_some(())
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(snapshot(&db.url), recompute_from_scratch(&topic, &events).await);
}
