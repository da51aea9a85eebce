//! Erasure through the log, against the real broker, registry and PostgreSQL: a
//! UserDataErasureRequested deletes every row of its user in one transaction and leaves a receipt;
//! a later sync of the user is kept; a redelivery of the earlier syncs (watermark lost, new
//! consumer group on the same database) does not bring them back. And every commit that raises a
//! watermark is announced on `processor_watermarks`.

mod common;

use std::time::Duration;

use common::{produce, produce_event, spawn_processor, wait_processed};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use events::{user_data_erasure_requested, EventEncoder, UserDataErasureRequested};
use processor::schema::{erasure_receipts, partition_watermarks, sync_status};
use testkit::{eventually, sample_device_synced, unique};

/// Rows per table of one user, in every table keyed by user.
fn rows_of(conn: &mut PgConnection, user: &str) -> Vec<(String, i64)> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let counts: Vec<Count> = diesel::sql_query(
        "SELECT 'sync_status' AS table_name, count(*) AS n FROM sync_status WHERE user_id = $1 \
         UNION ALL SELECT 'user_profiles', count(*) FROM user_profiles WHERE user_id = $1 \
         UNION ALL SELECT 'day_samples', count(*) FROM day_samples WHERE user_id = $1 \
         UNION ALL SELECT 'daily_metrics', count(*) FROM daily_metrics WHERE user_id = $1 \
         UNION ALL SELECT 'rolling_metrics', count(*) FROM rolling_metrics WHERE user_id = $1",
    )
    .bind::<Text, _>(user)
    .load(conn)
    .expect("counts");
    counts.into_iter().map(|c| (c.table_name, c.n)).collect()
}

fn total(rows: &[(String, i64)]) -> i64 {
    rows.iter().map(|r| r.1).sum()
}

fn sync_ids_of(conn: &mut PgConnection, user: &str) -> Vec<uuid::Uuid> {
    let mut ids: Vec<uuid::Uuid> = sync_status::table
        .filter(sync_status::user_id.eq(user))
        .select(sync_status::sync_id)
        .load(conn)
        .expect("sync ids");
    ids.sort();
    ids
}

/// The `processor_watermarks` notifications received so far on a listening connection.
fn notifications(listener: &mut PgConnection) -> Vec<serde_json::Value> {
    // A round trip reads what the server has sent meanwhile.
    diesel::sql_query("SELECT 1").execute(listener).expect("listener answers");
    listener
        .notifications_iter()
        .map(|n| n.expect("notification"))
        .filter(|n| n.channel == "processor_watermarks")
        .map(|n| serde_json::from_str(&n.payload).expect("the payload is JSON"))
        .collect()
}

async fn metrics(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap()
}

#[actix_web::test]
async fn an_erasure_deletes_every_row_of_its_user_and_nothing_brings_them_back() {
    let p = spawn_processor().await;
    let topic = p.settings.topic.clone();
    let url = p.db.url.clone();
    let db = || PgConnection::establish(&url).expect("test database");
    let mut listener = p.conn();
    diesel::sql_query("LISTEN processor_watermarks").execute(&mut listener).unwrap();

    // Two users' syncs, processed.
    let (alice, bob) = (unique("alice"), unique("bob"));
    let a1 = sample_device_synced(&alice, "band-a");
    let mut a2 = sample_device_synced(&alice, "band-a");
    a2.window_start_ms += 3_600_000;
    let b1 = sample_device_synced(&bob, "band-b");
    let mut positions = Vec::new();
    for e in [&a1, &a2, &b1] {
        positions.push(produce_event(&topic, e).await);
    }
    wait_processed(&p, [&a1, &a2, &b1], Duration::from_secs(30)).await;
    let alice_partition = positions[0].0;
    let alice_before = rows_of(&mut p.conn(), &alice);
    let bob_before = rows_of(&mut p.conn(), &bob);
    assert!(alice_before.iter().all(|(_, n)| *n > 0), "alice has rows in every table: {alice_before:?}");
    assert!(total(&bob_before) > 0);

    // The commit that covered alice's syncs was announced with the partition and its new watermark.
    let watermark: i64 = partition_watermarks::table
        .filter(partition_watermarks::topic.eq(&topic))
        .filter(partition_watermarks::kafka_partition.eq(alice_partition))
        .select(partition_watermarks::committed_offset)
        .first(&mut p.conn())
        .unwrap();
    assert!(watermark >= positions[1].1);
    let expected = serde_json::json!({"topic": topic, "partition": alice_partition, "offset": watermark});
    let mut seen = Vec::new();
    let announced = eventually(Duration::from_secs(10), "the watermark notification", || {
        seen.extend(notifications(&mut listener));
        // Position and topic as expected; `committed_at` is the processor's clock at the commit.
        seen.iter().find(|n| ["topic", "partition", "offset"].iter().all(|k| n[*k] == expected[*k])).cloned()
    })
    .await;
    let committed_at: chrono::DateTime<chrono::Utc> =
        announced["committed_at"].as_str().expect("the commit's time").parse().expect("a timestamp");
    assert!((chrono::Utc::now() - committed_at).num_seconds().abs() < 60, "{announced}");

    // One more sync of alice, then her erasure, then a sync after it, back to back (possibly one
    // batch). The erasure's request time is earlier than every sync's ingest time here, so only
    // the log order decides what is erased.
    let a_pre = sample_device_synced(&alice, "band-a");
    let erasure = UserDataErasureRequested {
        event_id: uuid::Uuid::new_v4().to_string(),
        erasure_id: uuid::Uuid::new_v4().to_string(),
        user_id: alice.clone(),
        requested_at: a1.ingested_at - 60_000,
    };
    let mut a_post = sample_device_synced(&alice, "band-a");
    a_post.ingested_at += 60_000;
    let subject = format!("{topic}-{}", user_data_erasure_requested::FULL_NAME);
    let encoder =
        EventEncoder::with_subject(&p.settings.schema_registry_url, &subject, user_data_erasure_requested::SCHEMA_JSON)
            .expect("encoder");
    let payload = encoder.encode(&erasure).await.expect("encodes through the registry");
    produce_event(&topic, &a_pre).await;
    let erased_at = produce(&topic, &alice, &payload, &erasure.erasure_id).await;
    let post_at = produce_event(&topic, &a_post).await;
    assert_eq!(erased_at.0, alice_partition, "keyed by the user, the erasure is in her partition");

    wait_processed(&p, [&a_post], Duration::from_secs(30)).await;
    let erasure_id: uuid::Uuid = erasure.erasure_id.parse().unwrap();
    let receipt = erasure_receipts::table
        .filter(erasure_receipts::erasure_id.eq(erasure_id))
        .select((
            erasure_receipts::user_id,
            erasure_receipts::topic,
            erasure_receipts::kafka_partition,
            erasure_receipts::kafka_offset,
            erasure_receipts::rows_deleted,
        ))
        .first::<(String, String, i32, i64, i64)>(&mut p.conn())
        .expect("one receipt");
    assert_eq!(
        (receipt.0.as_str(), receipt.1.as_str(), receipt.2, receipt.3),
        (alice.as_str(), topic.as_str(), erased_at.0, erased_at.1)
    );
    assert!(receipt.4 >= total(&alice_before), "rows_deleted {} counts alice's rows {alice_before:?}", receipt.4);
    let receipts: i64 = erasure_receipts::table.count().get_result(&mut p.conn()).unwrap();
    assert_eq!(receipts, 1);

    // Only the sync after the erasure is left of alice; bob is untouched.
    let a_post_id: uuid::Uuid = a_post.sync_id.parse().unwrap();
    assert_eq!(sync_ids_of(&mut p.conn(), &alice), vec![a_post_id]);
    let alice_after = rows_of(&mut p.conn(), &alice);
    assert!(alice_after.iter().all(|(_, n)| *n > 0), "the sync after the erasure is applied: {alice_after:?}");
    assert_eq!(rows_of(&mut p.conn(), &bob), bob_before);
    let m = metrics(p.ops_port).await;
    assert!(m.contains("processor_erasures_total 1"), "{m}");

    // Redelivery: the watermark row is lost and a new consumer group replays the topic from its
    // start into the same database. Alice's earlier syncs must stay erased.
    p.app.stop().await.expect("stops");
    diesel::delete(partition_watermarks::table).execute(&mut db()).unwrap();
    let mut settings = p.settings.clone();
    settings.group_id = unique("processor-replay");
    let replay = testkit::apps::spawn_processor(settings).await;
    eventually(Duration::from_secs(30), "the replay reaches the sync after the erasure", || {
        partition_watermarks::table
            .filter(partition_watermarks::kafka_partition.eq(post_at.0))
            .select(partition_watermarks::committed_offset)
            .first::<i64>(&mut db())
            .ok()
            .filter(|&w| w >= post_at.1)
    })
    .await;
    assert_eq!(sync_ids_of(&mut db(), &alice), vec![a_post_id], "nothing of alice came back");
    assert_eq!(rows_of(&mut db(), &alice), alice_after);
    assert_eq!(rows_of(&mut db(), &bob), bob_before);
    let receipts: i64 = erasure_receipts::table.count().get_result(&mut db()).unwrap();
    assert_eq!(receipts, 1, "a redelivered erasure is not carried out twice");
    let m = metrics(replay.port).await;
    assert!(m.contains("processor_events_total{outcome=\"skipped_erased\"} 3"), "a1, a2 and a_pre skipped: {m}");
    replay.stop().await.expect("stops");
}

/// `create-topics` gives both topics the configured `retention.ms`, read back from the broker:
/// raw events, erased users' included, age out of Kafka. A retention of 0 or less is refused.
#[tokio::test]
async fn create_topics_sets_the_retention_that_completes_an_erasure() {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;

    let p = spawn_processor().await;
    let mut settings = p.settings.clone();
    settings.topic = unique("retained");
    settings.dlq_topic = format!("{}.dlq", settings.topic);
    settings.topic_retention_ms = 3_600_000;
    let created = processor::topics::create_topics(&settings).await.expect("topics created");
    assert!(created.iter().all(|(_, new)| *new), "{created:?}");

    let admin: AdminClient<DefaultClientContext> =
        events::kafka::client_config(&settings.kafka_bootstrap_servers).create().unwrap();
    for topic in [&settings.topic, &settings.dlq_topic] {
        let described = admin
            .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
            .await
            .expect("describe configs");
        let resource = described.into_iter().next().unwrap().expect("the topic's configuration");
        let retention = resource.get("retention.ms").and_then(|e| e.value.clone());
        assert_eq!(retention.as_deref(), Some("3600000"), "{topic}");
        // The active segment rolls within the retention, so nothing outlives it by more.
        let segment = resource.get("segment.ms").and_then(|e| e.value.clone());
        assert_eq!(segment.as_deref(), Some("3600000"), "{topic}");
    }

    settings.topic = unique("forever");
    settings.topic_retention_ms = -1;
    let refused = processor::topics::create_topics(&settings).await.expect_err("unbounded retention refused");
    assert!(refused.to_string().contains("PROCESSOR_TOPIC_RETENTION_MS"), "{refused}");
    p.stop().await;
}
