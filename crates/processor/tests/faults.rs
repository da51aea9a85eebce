//! Outages and redeliveries through real proxies and the real binary: a registry that errs, a
//! database gone for longer than `max.poll.interval.ms`, SIGTERM, a recreated topic, and poison
//! redelivered after a restart.

mod common;

use std::time::Duration;

use common::{produce, produce_event, spawn_processor_with, wait_processed, TestProcessor};
use diesel::prelude::*;
use events::DeviceSynced;
use processor::schema::{sync_status, Outcome};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::TopicPartitionList;
use testkit::{eventually, eventually_async, unique, TcpProxy, TestDatabase};

fn syncs(prefix: &str, n: usize) -> Vec<DeviceSynced> {
    (0..n).map(|i| testkit::sample_device_synced(&format!("{prefix}-{}", i % 3), &format!("{prefix}-band"))).collect()
}

async fn ops_text(p: &TestProcessor, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://127.0.0.1:{}{path}", p.ops_port)).await.expect("ops endpoint answers");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// A metric's value (summed over its label sets) from /metrics.
async fn metric(p: &TestProcessor, name: &str) -> f64 {
    let (_, text) = ops_text(p, "/metrics").await;
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn processed(p: &TestProcessor) -> i64 {
    sync_status::table.count().get_result(&mut p.conn()).unwrap_or(0)
}

/// How many of `events` have a sync status in the database at `url` (a restarted processor's
/// database is the first one's, not its own fresh one).
fn statuses_in(url: &str, events: &[DeviceSynced]) -> i64 {
    let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.sync_id.parse().unwrap()).collect();
    let Ok(mut conn) = PgConnection::establish(url) else { return -1 };
    sync_status::table.filter(sync_status::sync_id.eq_any(&ids)).count().get_result(&mut conn).unwrap_or(-1)
}

#[actix_web::test]
async fn a_registry_erring_before_the_first_decode_dead_letters_nothing() {
    let target = testkit::schema_registry_url().trim_start_matches("http://").to_owned();
    let registry = TcpProxy::start(&target).await;
    // Registered before the fault: the processor's cache is cold, the record fine.
    let events = syncs("reg", 4);
    registry.answer_http(500);
    let p = spawn_processor_with(|s| s.schema_registry_url = format!("http://127.0.0.1:{}", registry.port)).await;
    for e in &events {
        produce_event(&p.settings.topic, e).await;
    }
    eventually_async(Duration::from_secs(30), "retries while the registry answers 500", || async {
        (metric(&p, "processor_retries_total").await >= 2.0).then_some(())
    })
    .await;
    let (status, body) = ops_text(&p, "/readyz").await;
    assert_eq!(status, 503, "not ready while retrying: {body}");
    registry.answer_http(503);
    tokio::time::sleep(Duration::from_secs(1)).await;
    registry.restore();
    wait_processed(&p, &events, Duration::from_secs(60)).await;
    let failed: i64 =
        sync_status::table.filter(sync_status::outcome.eq(Outcome::Failed)).count().get_result(&mut p.conn()).unwrap();
    assert_eq!(failed, 0, "a transient registry error is never the record's fault");
    assert_eq!(testkit::topic_record_count(&p.settings.dlq_topic), 0, "nothing dead-lettered");
    eventually_async(Duration::from_secs(20), "ready again", || async {
        (ops_text(&p, "/readyz").await.0 == 200).then_some(())
    })
    .await;
    p.stop().await;
}

#[actix_web::test]
async fn a_database_outage_longer_than_the_poll_interval_keeps_the_member_in_its_group() {
    let database = TcpProxy::start("127.0.0.1:5432").await;
    let p = spawn_processor_with(|s| {
        s.database_url = s.database_url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", database.port));
        // At least session.timeout.ms (6 s); shorter than the outage below.
        s.max_poll_interval = Duration::from_secs(10);
    })
    .await;
    let events = syncs("poll", 6);
    produce_event(&p.settings.topic, &events[0]).await;
    wait_processed(&p, &events[..1], Duration::from_secs(30)).await;
    let revoked_before = metric(&p, "processor_rebalances_total").await;

    database.cut();
    for e in &events[1..] {
        produce_event(&p.settings.topic, e).await;
    }
    // Longer than max.poll.interval.ms: without polling, the member would be evicted and rejoin.
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert_eq!(metric(&p, "processor_paused").await, 1.0, "paused while the database is down");
    database.restore();
    wait_processed(&p, &events, Duration::from_secs(60)).await;
    assert_eq!(processed(&p), events.len() as i64);
    assert_eq!(
        metric(&p, "processor_rebalances_total").await,
        revoked_before,
        "no rebalance: the member never left its group"
    );
    assert_eq!(metric(&p, "processor_paused").await, 0.0, "resumed");
    p.stop().await;
}

#[actix_web::test]
async fn partitions_revoked_while_paused_are_fetched_again_when_they_come_back() {
    // The first instance reaches PostgreSQL through a proxy; the second directly.
    let database = TcpProxy::start("127.0.0.1:5432").await;
    let a = spawn_processor_with(|s| {
        s.database_url = s.database_url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", database.port));
    })
    .await;
    let shared_db = a.db.url.clone();
    let before = syncs("paused", 6);
    for e in &before[..3] {
        produce_event(&a.settings.topic, e).await;
    }
    wait_processed(&a, &before[..3], Duration::from_secs(30)).await;
    database.cut();
    for e in &before[3..] {
        produce_event(&a.settings.topic, e).await;
    }
    eventually_async(Duration::from_secs(20), "the first instance paused", || async {
        (metric(&a, "processor_paused").await == 1.0).then_some(())
    })
    .await;
    // A second member takes some partitions from the paused one, applies them, and leaves: they
    // go back to the first, which must fetch them again once its database is back.
    let settings = a.settings.clone();
    let b = spawn_processor_with(|s| {
        *s = settings.clone();
        s.database_url = shared_db.clone();
    })
    .await;
    eventually_async(Duration::from_secs(30), "the second member assigned", || async {
        (metric(&b, "processor_rebalances_total").await >= 1.0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.stop().await;
    database.restore();
    let after: Vec<DeviceSynced> =
        (0..9).map(|i| testkit::sample_device_synced(&format!("back-{i}"), &format!("back-band-{i}"))).collect();
    for e in &after {
        produce_event(&settings.topic, e).await;
    }
    let all: Vec<DeviceSynced> = before.iter().chain(&after).cloned().collect();
    eventually(Duration::from_secs(60), "every sync processed, on every partition", || {
        (statuses_in(&shared_db, &all) == all.len() as i64).then_some(())
    })
    .await;
    a.stop().await;
}

/// Starts the real binary on `topic` and `db`; its stderr is captured.
fn spawn_binary(topic: &str, db: &TestDatabase, group: &str) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_processor"))
        .env("KAFKA_BOOTSTRAP_SERVERS", testkit::kafka_bootstrap())
        .env("SCHEMA_REGISTRY_URL", testkit::schema_registry_url())
        .env("DATABASE_URL", &db.url)
        .env("PROCESSOR_TOPIC", topic)
        .env("PROCESSOR_DLQ_TOPIC", format!("{topic}.dlq"))
        .env("PROCESSOR_GROUP_ID", group)
        .env("PROCESSOR_OPS_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the processor binary starts")
}

#[actix_web::test]
async fn sigterm_finishes_the_batch_commits_its_offsets_leaves_the_group_and_exits_0() {
    let topic = unique("device-synced");
    testkit::create_topic(&topic, 3).await;
    testkit::create_topic(&format!("{topic}.dlq"), 1).await;
    let db = TestDatabase::create();
    let group = unique("processor");
    let events = syncs("term", 30);
    for e in &events {
        produce_event(&topic, e).await;
    }
    let mut child = spawn_binary(&topic, &db, &group);
    let count = || -> i64 {
        sync_status::table.count().get_result(&mut PgConnection::establish(&db.url).unwrap()).unwrap_or(0)
    };
    eventually(Duration::from_secs(60), "every event processed", || (count() == 30).then_some(())).await;

    let signalled = std::time::Instant::now();
    assert!(std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(signalled.elapsed() < Duration::from_secs(20), "the processor did not stop within 20 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    assert!(log.contains("leaving the group"), "log:\n{log}");

    // The group's committed offsets are the ends of the partitions: a successor starts there.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", testkit::kafka_bootstrap())
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    for p in 0..3 {
        partitions.add_partition(&topic, p);
    }
    let committed = consumer.committed_offsets(partitions, Duration::from_secs(10)).unwrap();
    let total: i64 = committed.elements().iter().map(|e| e.offset().to_raw().unwrap_or(0).max(0)).sum();
    assert_eq!(total, 30, "committed {committed:?}");
}

#[actix_web::test]
async fn a_recreated_topic_is_not_skipped_until_an_operator_adopts_it() {
    let p = spawn_processor_with(|_| {}).await;
    let first = syncs("inc-a", 5);
    for e in &first {
        produce_event(&p.settings.topic, e).await;
    }
    wait_processed(&p, &first, Duration::from_secs(30)).await;
    let settings = p.settings.clone();
    let db_url = p.db.url.clone();
    let _ = p.app.stop().await;

    // The topic is deleted and created again: its offsets restart at 0, below the watermarks.
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", testkit::kafka_bootstrap()).create().unwrap();
    admin.delete_topics(&[&settings.topic], &AdminOptions::new()).await.unwrap();
    eventually_async(Duration::from_secs(20), "the topic to be recreated", || async {
        let created = admin
            .create_topics(
                &[rdkafka::admin::NewTopic::new(&settings.topic, 3, rdkafka::admin::TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await
            .ok()?;
        created.into_iter().all(|r| r.is_ok()).then_some(())
    })
    .await;
    let second = syncs("inc-b", 5);
    for e in &second {
        produce_event(&settings.topic, e).await;
    }

    let again = spawn_processor_with(|s| {
        *s = settings.clone();
        s.database_url = db_url.clone();
    })
    .await;
    eventually_async(Duration::from_secs(30), "the mismatch reported", || async {
        (metric(&again, "processor_topic_incarnation_mismatch").await == 1.0).then_some(())
    })
    .await;
    let (status, body) = ops_text(&again, "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("adopt-topic"), "/readyz says what to do: {body}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(statuses_in(&db_url, &second), 0, "nothing of the new topic is applied, nor skipped as applied");

    // The operator adopts the new topic (`processor adopt-topic`) and restarts the processor (a
    // running one would see it at its next check, within 30 s).
    let mut adopting = settings.clone();
    adopting.database_url = db_url.clone();
    processor::adopt_live_topic(&adopting).await.expect("adopt-topic");
    let restarted = {
        let _ = again.app.stop().await;
        spawn_processor_with(|s| {
            *s = settings.clone();
            s.database_url = db_url.clone();
        })
        .await
    };
    eventually(Duration::from_secs(60), "the new topic's events processed", || {
        (statuses_in(&db_url, &second) == 5).then_some(())
    })
    .await;
    assert_eq!(statuses_in(&db_url, &first), 5, "the old topic's stay");
    restarted.stop().await;
}

#[actix_web::test]
async fn an_undecodable_record_redelivered_after_a_restart_is_dead_lettered_once() {
    let p = spawn_processor_with(|_| {}).await;
    produce(&p.settings.topic, "u-poison", b"not avro at all", &uuid::Uuid::new_v4().to_string()).await;
    let fine = syncs("after-poison", 2);
    for e in &fine {
        produce_event(&p.settings.topic, e).await;
    }
    wait_processed(&p, &fine, Duration::from_secs(30)).await;
    eventually(Duration::from_secs(10), "the DLQ record", || {
        (testkit::topic_record_count(&p.settings.dlq_topic) == 1).then_some(())
    })
    .await;
    let (settings, db_url) = (p.settings.clone(), p.db.url.clone());
    let _ = p.app.stop().await;
    // A new group reads everything again, the poison record included.
    let again = spawn_processor_with(|s| {
        *s = settings.clone();
        s.database_url = db_url.clone();
        s.group_id = unique("processor-again");
    })
    .await;
    let later = syncs("later", 1);
    produce_event(&settings.topic, &later[0]).await;
    eventually(Duration::from_secs(30), "the later sync processed", || {
        (statuses_in(&db_url, &later) == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(testkit::topic_record_count(&settings.dlq_topic), 1, "dead-lettered once, not once per delivery");
    again.stop().await;
    drop(p.db);
}
