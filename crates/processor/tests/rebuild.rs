//! Rebuilding from the log (`processor rebuild`): a new group reads the topic from its start into
//! a new database, and the rows are bit-identical to the live model's, erasures, conflicting
//! re-sends, profile changes and poison records included.

mod common;

use std::time::Duration;

use common::{model_dump, produce, produce_event, produce_events, spawn_processor, story, wait_processed};
use diesel::prelude::*;
use events::{user_data_erasure_requested, EventEncoder, UserDataErasureRequested};
use processor::schema::{erasure_receipts, sync_status};
use testkit::{eventually, unique, TestDatabase};

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_from_the_log_equals_the_live_model() {
    testkit::init_logging();
    let live = spawn_processor().await;
    let topic = live.settings.topic.clone();
    let users: Vec<String> = (0..3).map(|i| unique(&format!("rebuild-{i}"))).collect();
    let mut events = Vec::new();
    for user in &users {
        events.extend(story(user));
    }
    produce_events(&topic, &events).await;
    // A record that never decodes: the live processor dead-letters it and marks its sync failed.
    let poison_sync = uuid::Uuid::new_v4();
    produce(&topic, &users[0], b"not avro", &poison_sync.to_string()).await;
    // The last user asks for erasure, then syncs again: only the later sync survives.
    let erasure = UserDataErasureRequested {
        event_id: uuid::Uuid::new_v4().to_string(),
        erasure_id: uuid::Uuid::new_v4().to_string(),
        user_id: users[2].clone(),
        requested_at: chrono::Utc::now().timestamp_millis(),
    };
    let subject = format!("{topic}-{}", user_data_erasure_requested::FULL_NAME);
    let encoder =
        EventEncoder::with_subject(&testkit::schema_registry_url(), &subject, user_data_erasure_requested::SCHEMA_JSON)
            .expect("encoder");
    let payload = encoder.encode(&erasure).await.expect("encodes");
    produce(&topic, &users[2], &payload, &erasure.erasure_id).await;
    let mut after = story(&users[2]).remove(0);
    after.ingested_at = chrono::Utc::now().timestamp_millis() + 1_000;
    produce_event(&topic, &after).await;
    wait_processed(&live, events.iter().filter(|e| e.user_id != users[2]).chain([&after]), Duration::from_secs(60))
        .await;
    eventually(Duration::from_secs(30), "the erasure and the poison record done", || {
        let mut c = live.conn();
        let receipts: i64 = erasure_receipts::table.count().get_result(&mut c).ok()?;
        let poison: i64 =
            sync_status::table.filter(sync_status::sync_id.eq(poison_sync)).count().get_result(&mut c).ok()?;
        (receipts == 1 && poison == 1).then_some(())
    })
    .await;
    let dlq = format!("{topic}.dlq");
    let dead_lettered = testkit::topic_record_count(&dlq);
    assert_eq!(dead_lettered, 1, "the live processor dead-lettered the poison record once");

    // Rebuilt beside the running processor, into a new database with a new group.
    let fresh = TestDatabase::create();
    let mut settings = live.settings.clone();
    settings.database_url = fresh.url.clone();
    settings.group_id = unique("rebuild");
    let mut progress = Vec::new();
    let summary = processor::rebuild(settings, tokio_util::sync::CancellationToken::new(), |done, total| {
        progress.push((done, total))
    })
    .await
    .expect("the rebuild reaches the end of the log");
    let records = (events.len() + 3) as i64;
    assert_eq!(summary.records, records, "every record of the topic");
    assert_eq!(progress.last(), Some(&(records, records)), "progress ends at the whole log: {progress:?}");

    let rebuilt = model_dump(&mut PgConnection::establish(&fresh.url).unwrap());
    let original = model_dump(&mut live.conn());
    for ((table, want), (_, got)) in original.iter().zip(&rebuilt) {
        assert!(!want.is_empty(), "{table} has rows to compare");
        assert_eq!(got.len(), want.len(), "{table}: as many rows rebuilt as live");
        for (w, g) in want.iter().zip(got) {
            assert_eq!(g, w, "{table}: a rebuilt row differs from the live one");
        }
    }
    assert_eq!(testkit::topic_record_count(&dlq), dead_lettered, "the rebuild dead-letters nothing again");

    // A database that already holds a model is refused: a rebuild only fills a new one.
    let mut again = live.settings.clone();
    again.database_url = fresh.url.clone();
    again.group_id = unique("rebuild");
    let refused = processor::rebuild(again, tokio_util::sync::CancellationToken::new(), |_, _| {}).await;
    let message = format!("{:#}", refused.expect_err("a used database is refused"));
    assert!(message.contains("new, empty database"), "{message}");
    live.stop().await;
}
