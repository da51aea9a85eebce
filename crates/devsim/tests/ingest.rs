//! devsim against a real ingest-api, spawned in-process on the test broker and registry that
//! `make test` starts (TEST_KAFKA_BOOTSTRAP_SERVERS, TEST_SCHEMA_REGISTRY_URL).

use std::time::Duration;

use devsim::fleet::FleetConfig;
use devsim::load::{LoadConfig, Rate};
use devsim::phone::{Imperfections, SimConfig};
use devsim::run::RunConfig;
use ingest_api::config::{RateLimit, RateLimits, Secret, Settings};
use testkit::apps::RunningApp;
use testkit::unique;
use tokio_util::sync::CancellationToken;

const SECRET: &str = testkit::apps::TOKEN_SECRET;

struct TestApp {
    base: String,
    topic: String,
    _app: RunningApp,
}

/// ingest-api with its default rate limits: the loads and the fleet below must pass them.
async fn spawn_app() -> TestApp {
    spawn_app_with(RateLimits::default()).await
}

async fn spawn_app_with(rate_limits: RateLimits) -> TestApp {
    testkit::init_logging();
    let topic = unique("device-synced");
    testkit::create_topic(&topic, 3).await;
    let app = testkit::apps::spawn_ingest(Settings { rate_limits, ..testkit::apps::ingest_settings(&topic) }).await;
    TestApp { base: app.url.clone(), topic, _app: app }
}

fn load_config(base: &str, rate: Rate, count: u64) -> LoadConfig {
    LoadConfig {
        url: base.to_owned(),
        secret: Secret::new(SECRET),
        rate,
        concurrency: 4,
        duration: None,
        count: Some(count),
        devices: 5,
        sleep_every: 8,
        gzip: false,
        timeout: Duration::from_secs(10),
        progress_every: None,
        seed: 1,
        retries: 0,
        ledger: None,
    }
}

async fn records_reach(topic: &str, n: i64) {
    testkit::eventually(Duration::from_secs(10), &format!("{n} records on {topic}"), || {
        let count = testkit::topic_record_count(topic);
        assert!(count <= n, "{count} records on {topic}, expected {n}");
        (count == n).then_some(())
    })
    .await;
}

#[tokio::test]
async fn load_count_20_is_accepted_and_every_sync_is_on_the_topic() {
    let app = spawn_app().await;
    let report = devsim::load::run(load_config(&app.base, Rate::Max, 20), CancellationToken::new()).await.unwrap();
    assert_eq!((report.requests, report.completed, report.accepted), (20, 20, 20), "{}", report.render());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.latency_ms.count, 20);
    assert!(report.latency_ms.max_ms > 0.0 && report.latency_ms.p50_ms <= report.latency_ms.max_ms);
    assert!(report.bytes_sent > 20 * 10_000);
    records_reach(&app.topic, 20).await;
}

#[tokio::test]
async fn fixed_rate_gzip_load_is_accepted_and_reports_service_time() {
    let app = spawn_app().await;
    let mut config = load_config(&app.base, Rate::PerSecond(50.0), 20);
    config.gzip = true;
    let report = devsim::load::run(config, CancellationToken::new()).await.unwrap();
    assert_eq!(report.accepted, 20, "{}", report.render());
    assert_eq!(report.service_time_ms.map(|s| s.count), Some(20));
    // 20 requests at 50/s take about 0.4 s.
    assert!(report.elapsed_s >= 0.35, "{}", report.elapsed_s);
    // Compressed, a standard sync is a few KB.
    assert!(report.bytes_sent < 20 * 10_000, "{}", report.bytes_sent);
    records_reach(&app.topic, 20).await;
}

#[tokio::test]
async fn a_simulated_fleet_with_every_imperfection_is_accepted() {
    let app = spawn_app().await;
    let fleet = FleetConfig { seed: 42, users: 2, strap_share: 0.5, user_prefix: "it-user".into() };
    let mut sim = SimConfig::new(fleet, chrono::Utc::now().timestamp_millis());
    sim.imperfections =
        Imperfections { resend: 0.1, overlap: 0.1, late: 0.05, clock_skew: 0.2, travel: 0.3, impossible: 0.01 };
    sim.backfill_ms = 8 * 3_600_000;
    let config = RunConfig {
        url: app.base.clone(),
        secret: Secret::new(SECRET),
        sim,
        speed: 1.0,
        concurrency: 4,
        max_retries: 3,
        timeout: Duration::from_secs(10),
        progress_every: None,
        duration: Some(Duration::from_secs(120)),
        backfill_only: true,
        gzip: false,
        watch: false,
    };
    let report = devsim::run::run(config, CancellationToken::new()).await.unwrap();
    assert!(report.syncs >= 50, "{report:?}");
    assert_eq!(report.accepted, report.requests, "{report:?}");
    assert_eq!(report.by_status.keys().copied().collect::<Vec<_>>(), vec![202], "{report:?}");
    assert_eq!(report.transport_errors, 0);
    assert!(report.impossible_samples > 0);
    assert!(report.per_user.values().all(|&n| n > 0), "{:?}", report.per_user);
    records_reach(&app.topic, report.accepted as i64).await;
}

#[tokio::test]
async fn run_watch_sees_every_accepted_sync_processed_on_the_live_streams() {
    testkit::init_logging();
    let topic = unique("device-synced");
    testkit::create_topic(&topic, 3).await;
    testkit::create_topic(&format!("{topic}.dlq"), 1).await;
    let db = testkit::TestDatabase::create();
    // Built, the processor has migrated the database ingest-api's listener reads.
    let processor = testkit::apps::spawn_processor(testkit::apps::processor_settings(&topic, &db.url)).await;
    let ingest = testkit::apps::spawn_ingest(Settings {
        read_database_url: db.url.clone(),
        ..testkit::apps::ingest_settings(&topic)
    })
    .await;
    let fleet = FleetConfig { seed: 7, users: 2, strap_share: 0.0, user_prefix: "watch-user".into() };
    let mut sim = SimConfig::new(fleet, chrono::Utc::now().timestamp_millis());
    sim.imperfections = Imperfections::none();
    sim.backfill_ms = 2 * 3_600_000;
    let config = RunConfig {
        url: ingest.url.clone(),
        secret: Secret::new(SECRET),
        sim,
        speed: 1.0,
        concurrency: 4,
        max_retries: 3,
        timeout: Duration::from_secs(10),
        progress_every: None,
        duration: Some(Duration::from_secs(60)),
        backfill_only: true,
        gzip: false,
        watch: true,
    };
    let report = devsim::run::run(config, CancellationToken::new()).await.unwrap();
    let watched = report.watched.expect("--watch reports what it saw");
    assert!(report.accepted >= 8, "{report:?}");
    // Each accepted sync's processing arrived on its user's stream (a resent sync id would count
    // once; this fleet resends nothing).
    assert_eq!(watched.processed + watched.failed, report.accepted, "{report:?}");
    assert_eq!(watched.failed, 0);
    assert!(watched.model_updates > 0);
    ingest.stop().await.unwrap();
    processor.stop().await.unwrap();
}

#[tokio::test]
async fn load_over_a_rate_limit_waits_out_its_429s_and_every_sync_lands_once() {
    let limits = RateLimits {
        device_post: RateLimit { per_second: 2.0, burst: 2 },
        user_post: RateLimit::OFF,
        user_reads: RateLimit::OFF,
        ..RateLimits::default()
    };
    let app = spawn_app_with(limits).await;
    let mut config = load_config(&app.base, Rate::Max, 12);
    config.devices = 2;
    let report = devsim::load::run(config, CancellationToken::new()).await.unwrap();
    assert_eq!((report.requests, report.completed, report.accepted), (12, 12, 12), "{}", report.render());
    assert!(report.rate_limited > 0, "{}", report.render());
    assert!(report.errors.is_empty(), "a 429 is not an error: {:?}", report.errors);
    assert_eq!((report.retries, report.rate_limited_at_stop), (0, 0));
    // Six syncs per device at 2/s after a burst of 2: about two seconds of waiting.
    assert!(report.elapsed_s >= 1.5, "{}", report.elapsed_s);
    // A 429 published nothing: one record per accepted sync.
    records_reach(&app.topic, 12).await;
}
