//! The walking skeleton end to end, against the real broker, registry and PostgreSQL: a
//! DeviceSynced record produced to the topic is consumed by the processor and leaves its row.

mod common;

use std::time::Duration;

use common::{produce, spawn_processor};
use diesel::prelude::*;
use events::headers::connect_errors;
use events::EventEncoder;
use processor::schema::{partition_watermarks, sync_status, Outcome};
use rdkafka::config::ClientConfig;
use testkit::{eventually, sample_device_synced, unique, TestDatabase};

#[actix_web::test]
async fn a_produced_device_synced_leaves_its_sync_status_row() {
    let p = spawn_processor().await;
    let encoder =
        EventEncoder::new(&p.settings.schema_registry_url, &p.settings.topic, events::device_synced::SCHEMA_JSON)
            .expect("encoder");
    let event = sample_device_synced("user-1", "device-1");
    let payload = encoder.encode(&event).await.expect("encodes through the registry");
    let (partition, offset) = produce(&p.settings.topic, &event.user_id, &payload, &event.sync_id).await;

    let sync_id: uuid::Uuid = event.sync_id.parse().unwrap();
    let row = eventually(Duration::from_secs(30), "the processor's sync_status row", || {
        sync_status::table
            .filter(sync_status::sync_id.eq(sync_id))
            .select((
                sync_status::user_id,
                sync_status::device_id,
                sync_status::outcome,
                sync_status::heart_rate_samples,
                sync_status::rr_intervals,
                sync_status::step_epochs,
                sync_status::kafka_partition,
                sync_status::kafka_offset,
                sync_status::dropped_samples,
            ))
            .first::<(String, String, Outcome, i32, i32, i32, i32, i64, serde_json::Value)>(&mut p.conn())
            .ok()
    })
    .await;
    assert_eq!(row.0, "user-1");
    assert_eq!(row.1, "device-1");
    assert_eq!(row.2, Outcome::Processed);
    assert_eq!(row.3, event.heart_rate.bpm.len() as i32);
    assert_eq!(row.4, 5);
    assert_eq!(row.5, 3);
    assert_eq!((row.6, row.7), (partition, offset));
    assert_eq!(row.8, serde_json::json!({"hr_out_of_range": 1}));

    // The watermark of that partition covers the record, in the same database.
    let watermark: i64 = partition_watermarks::table
        .filter(partition_watermarks::topic.eq(&p.settings.topic))
        .filter(partition_watermarks::kafka_partition.eq(partition))
        .select(partition_watermarks::committed_offset)
        .first(&mut p.conn())
        .expect("watermark row");
    assert!(watermark >= offset);

    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", p.ops_port)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("processor_events_total{outcome=\"applied\"} 1"), "{metrics}");
    p.stop().await;
}

#[actix_web::test]
async fn a_retried_sync_is_recorded_once_and_poison_goes_to_the_dlq() {
    let p = spawn_processor().await;
    let encoder =
        EventEncoder::new(&p.settings.schema_registry_url, &p.settings.topic, events::device_synced::SCHEMA_JSON)
            .expect("encoder");
    let first = sample_device_synced("user-2", "device-2");
    // The phone retried: same sync id, new event id.
    let mut retry = first.clone();
    retry.event_id = uuid::Uuid::new_v4().to_string();
    for e in [&first, &retry] {
        let payload = encoder.encode(e).await.unwrap();
        produce(&p.settings.topic, &e.user_id, &payload, &e.sync_id).await;
    }
    // Not Confluent-framed Avro: it can never be applied.
    let poison_sync = uuid::Uuid::new_v4();
    let (poison_partition, poison_offset) =
        produce(&p.settings.topic, "user-2", b"{\"not\":\"avro\"}", &poison_sync.to_string()).await;
    let after = sample_device_synced("user-2", "device-2");
    let payload = encoder.encode(&after).await.unwrap();
    let (partition, offset) = produce(&p.settings.topic, &after.user_id, &payload, &after.sync_id).await;
    assert_eq!(partition, poison_partition, "one user's events share a partition");
    assert!(offset > poison_offset);

    let after_id: uuid::Uuid = after.sync_id.parse().unwrap();
    eventually(Duration::from_secs(30), "the event after the poison one", || {
        sync_status::table
            .filter(sync_status::sync_id.eq(after_id))
            .select(sync_status::outcome)
            .first::<Outcome>(&mut p.conn())
            .ok()
    })
    .await;
    let rows: Vec<(uuid::Uuid, Outcome)> = sync_status::table
        .filter(sync_status::user_id.eq("user-2"))
        .select((sync_status::sync_id, sync_status::outcome))
        .order(sync_status::kafka_offset.asc())
        .load(&mut p.conn())
        .unwrap();
    let first_id: uuid::Uuid = first.sync_id.parse().unwrap();
    assert_eq!(
        rows,
        vec![(first_id, Outcome::Processed), (poison_sync, Outcome::Failed), (after_id, Outcome::Processed)]
    );

    // The poison record sits in the DLQ with its original headers and the reason.
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::{Headers, Message};
    let dlq: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", testkit::kafka_bootstrap())
        .set("group.id", unique("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    dlq.subscribe(&[&p.settings.dlq_topic]).unwrap();
    let m = tokio::time::timeout(Duration::from_secs(20), dlq.recv()).await.expect("a DLQ record").unwrap();
    assert_eq!(m.payload(), Some(&b"{\"not\":\"avro\"}"[..]));
    let headers: Vec<(String, String)> = m
        .headers()
        .unwrap()
        .iter()
        .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
        .collect();
    assert!(headers.contains(&(events::headers::SYNC_ID.into(), poison_sync.to_string())), "{headers:?}");
    assert!(headers.contains(&(events::headers::TRACEPARENT.into(), common::TRACEPARENT.into())), "{headers:?}");
    assert!(headers.contains(&(connect_errors::TOPIC.into(), p.settings.topic.clone())), "{headers:?}");
    assert!(headers.contains(&(connect_errors::PARTITION.into(), poison_partition.to_string())), "{headers:?}");
    assert!(headers.contains(&(connect_errors::OFFSET.into(), poison_offset.to_string())), "{headers:?}");
    assert!(
        headers.contains(&(connect_errors::EXCEPTION_CLASS_NAME.into(), "events.codec.NotConfluentAvro".into())),
        "{headers:?}"
    );
    assert!(
        headers.iter().any(|(k, v)| k == connect_errors::EXCEPTION_MESSAGE && v.contains("magic byte")),
        "{headers:?}"
    );
    p.stop().await;
}

#[actix_web::test]
async fn migrate_subcommand_applies_the_embedded_migrations() {
    let db = TestDatabase::create();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_processor"))
        .arg("migrate")
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).unwrap().count();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("applied {migrations} migration")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let tables: Vec<String> = diesel::dsl::sql::<diesel::sql_types::Text>(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .load(&mut PgConnection::establish(&db.url).unwrap())
    .unwrap();
    assert!(
        tables.contains(&"sync_status".to_string()) && tables.contains(&"partition_watermarks".to_string()),
        "{tables:?}"
    );

    // A bad database URL is a message and a non-zero exit, not a panic.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_processor"))
        .arg("migrate")
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nothing")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"));
}

#[tokio::test]
async fn recompute_and_rebuild_refuse_bad_arguments_and_recompute_runs_as_a_command() {
    let db = TestDatabase::create();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_processor"))
            .args(args)
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap()
    };
    for (args, says) in [
        (&["recompute", "--jobs", "0"][..], "--jobs takes a whole number from 1 to 64"),
        (&["recompute", "--user"][..], "recompute takes --all or --user USER_ID"),
        (&["recompute", "--everyone"][..], "recompute takes --all or --user USER_ID"),
        (&["rebuild", "--database", "postgres://x/y"][..], "rebuild takes --database URL --group GROUP"),
    ] {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(says) && stderr.contains("usage: processor"), "{args:?}: {stderr}");
    }
    // On a database with nothing to recompute, one user is done at once, and the command says so.
    let out = run(&["recompute", "--user", "nobody", "--jobs", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains(&format!(
            "recomputed 1 user(s), 0 user-day(s), at model version {}",
            health_model::MODEL_VERSION
        )),
        "{stdout}"
    );
}
