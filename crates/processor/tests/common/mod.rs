//! Shared helpers of the processor's integration tests.
#![allow(dead_code)]

use std::time::Duration;

use diesel::prelude::*;
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
    let headers = OwnedHeaders::new().insert(Header { key: headers::SYNC_ID, value: Some(sync_id) });
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
        self.app.stop().await.expect("the processor stops cleanly and promptly");
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
