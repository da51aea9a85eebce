//! Shared helpers of the processor's integration tests.
#![allow(dead_code)]

use std::time::Duration;

use diesel::prelude::*;
use events::{DeviceSynced, EventEncoder, DEVICE_SYNCED_TOPIC};
use processor::config::Settings;
use processor::Application;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use testkit::{unique, TestDatabase};
use tokio_util::sync::CancellationToken;

pub struct TestProcessor {
    pub db: TestDatabase,
    pub settings: Settings,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub ops_port: u16,
}

/// Starts a processor on its own topic, group and database.
pub async fn spawn_processor() -> TestProcessor {
    spawn_processor_with(|_| {}).await
}

/// Like [`spawn_processor`], with settings changed by `adjust` (a topic it names must exist).
pub async fn spawn_processor_with(adjust: impl FnOnce(&mut Settings)) -> TestProcessor {
    testkit::init_logging();
    let db = TestDatabase::create();
    let topic = unique(DEVICE_SYNCED_TOPIC);
    testkit::create_topic(&topic, 3).await;
    testkit::create_topic(&format!("{topic}.dlq"), 1).await;
    let settings = Settings {
        kafka_bootstrap_servers: testkit::kafka_bootstrap(),
        schema_registry_url: testkit::schema_registry_url(),
        database_url: db.url.clone(),
        dlq_topic: format!("{topic}.dlq"),
        topic,
        group_id: unique("processor"),
        ops_addr: "127.0.0.1:0".into(),
        db_pool_size: 4,
        batch_max_events: 100,
        batch_max_wait: Duration::from_millis(20),
        cache_budget_bytes: 64 << 20,
        ..Default::default()
    };
    let mut settings = settings;
    adjust(&mut settings);
    let app = Application::build(settings.clone()).await.expect("processor starts");
    let ops_port = app.ops_port();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestProcessor { db, settings, shutdown, task, ops_port }
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
    let headers = OwnedHeaders::new().insert(Header { key: "sync_id", value: Some(sync_id) });
    producer()
        .send(FutureRecord::to(topic).key(key).payload(payload).headers(headers), Duration::from_secs(10))
        .await
        .map(|d| (d.partition, d.offset))
        .expect("broker acknowledged the record")
}

impl TestProcessor {
    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.db.url).expect("test database")
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(Duration::from_secs(20), self.task).await;
        result.expect("processor stops promptly").expect("task joins").expect("processor exits cleanly");
    }
}

/// Encodes through the registry and produces keyed by user, with the sync id header.
pub async fn produce_event(topic: &str, event: &DeviceSynced) -> (i32, i64) {
    let encoder =
        EventEncoder::new(&testkit::schema_registry_url(), topic, events::device_synced::SCHEMA_JSON).expect("encoder");
    let payload = encoder.encode(event).await.expect("encodes through the registry");
    produce(topic, &event.user_id, &payload, &event.sync_id).await
}

/// Waits until every one of `events` has a sync status (processed or failed) in `p`'s database.
pub async fn wait_processed<'a>(
    p: &TestProcessor,
    events: impl IntoIterator<Item = &'a DeviceSynced>,
    timeout: Duration,
) {
    let ids: Vec<uuid::Uuid> = events.into_iter().map(|e| e.sync_id.parse().unwrap()).collect();
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
