//! The Kafka side of the chaos suite (deploy/chaos.py), where the suite needs what ingest-api
//! never does: records it must not be able to make, and a read of the dead-letter topic.
//!
//! ```text
//! chaos_kafka poison --bootstrap HOST:PORT --registry URL --topic T --run ID [--sets N]
//!     produces N sets of poison straight to T and prints one tab-separated line per record:
//!     kind, sync id, partition, offset. Kinds:
//!       anchor          a valid event of a user of its own (it must be processed);
//!       apply           a valid event of the same user whose day lies 1,100 days after the
//!                       anchor's: each decodes, but the user's series would span more than
//!                       PROCESSOR_MAX_SERIES_DAYS (1,096), which only the apply stage can tell;
//!       undecodable     bytes that are not registry-framed Avro;
//!       unknown_schema  a registry frame naming a schema id the registry does not have.
//!     Every record carries the sync_id and event_id headers, as ingest-api's do.
//! chaos_kafka dlq --bootstrap HOST:PORT --topic T.dlq
//!     reads the topic from its start to its end and prints one line per record: DLQ partition,
//!     DLQ offset, source partition, source offset (the __connect.errors.* headers), sync id,
//!     stage, exception class.
//! ```

use std::time::Duration;

use anyhow::{bail, Context};
use events::device_synced::SCHEMA_JSON;
use events::headers::{self, connect_errors};
use events::{DeviceSynced, EventEncoder};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const DAY_MS: i64 = 86_400_000;
/// Past the processor's default PROCESSOR_MAX_SERIES_DAYS (1,096).
const APPLY_POISON_SHIFT_DAYS: i64 = 1_100;
/// A schema id no registry of this suite hands out.
const UNKNOWN_SCHEMA_ID: u32 = 0x7fff_fff0;

fn usage() -> ! {
    eprintln!(
        "usage: chaos_kafka poison --bootstrap HOST:PORT --registry URL --topic T --run ID [--sets N]\n       \
         chaos_kafka dlq --bootstrap HOST:PORT --topic T"
    );
    std::process::exit(2)
}

/// `--name value` pairs after the subcommand.
fn option(args: &[String], name: &str) -> Option<String> {
    args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone())
}

fn required(args: &[String], name: &str) -> String {
    option(args, name).unwrap_or_else(|| {
        eprintln!("chaos_kafka: {name} is required");
        usage()
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("poison") => {
            let sets: u32 = option(&args, "--sets").map_or(Ok(1), |s| s.parse()).context("--sets takes a number")?;
            poison(
                &required(&args, "--bootstrap"),
                &required(&args, "--registry"),
                &required(&args, "--topic"),
                &required(&args, "--run"),
                sets,
            )
            .await
        }
        Some("dlq") => dlq(&required(&args, "--bootstrap"), &required(&args, "--topic")),
        _ => usage(),
    }
}

/// An event of `user` moved `shift_ms` later, ingest time included, with fresh ids.
fn event(user: &str, shift_ms: i64) -> DeviceSynced {
    let mut e = testkit::sample_device_synced(user, "chaos-band");
    e.window_start_ms += shift_ms;
    e.window_end_ms += shift_ms;
    e.ingested_at += shift_ms;
    e.clock.device_time_ms += shift_ms;
    e.clock.phone_time_ms += shift_ms;
    e.rr_blocks.iter_mut().for_each(|b| b.first_beat_ms += shift_ms);
    e.time_zone.offsets.iter_mut().for_each(|o| o.start_ms += shift_ms);
    e
}

async fn poison(bootstrap: &str, registry: &str, topic: &str, run: &str, sets: u32) -> anyhow::Result<()> {
    let producer: FutureProducer = events::kafka::client_config(bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // As ingest-api: the Java clients' partitioner, so the user's records share a partition.
        .set("partitioner", "murmur2_random")
        .create()
        .context("creating the producer")?;
    let encoder = EventEncoder::new(registry, topic, SCHEMA_JSON).context("creating the encoder")?;
    for set in 0..sets {
        let user = format!("chaos-poison-{run}-{set}");
        let anchor = event(&user, 0);
        let apply = event(&user, APPLY_POISON_SHIFT_DAYS * DAY_MS);
        let mut unknown = vec![0u8];
        unknown.extend_from_slice(&UNKNOWN_SCHEMA_ID.to_be_bytes());
        unknown.extend_from_slice(b"\x02\x04chaos");
        let records: [(&str, Vec<u8>); 4] = [
            ("anchor", encoder.encode(&anchor).await.context("encoding through the registry")?),
            ("apply", encoder.encode(&apply).await.context("encoding through the registry")?),
            ("undecodable", b"chaos: these bytes are not Avro".to_vec()),
            ("unknown_schema", unknown),
        ];
        for (kind, payload) in records {
            let (sync_id, event_id) = match kind {
                "anchor" => (anchor.sync_id.clone(), anchor.event_id.clone()),
                "apply" => (apply.sync_id.clone(), apply.event_id.clone()),
                _ => (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string()),
            };
            let headers = OwnedHeaders::new()
                .insert(Header { key: headers::EVENT_ID, value: Some(&event_id) })
                .insert(Header { key: headers::SYNC_ID, value: Some(&sync_id) });
            let record = FutureRecord::to(topic).key(&user).payload(&payload).headers(headers);
            let delivery = producer.send(record, Duration::from_secs(30)).await;
            let (partition, offset) = match delivery {
                Ok(d) => (d.partition, d.offset),
                Err((e, _)) => bail!("producing the {kind} record to {topic}: {e}"),
            };
            println!("{kind}\t{sync_id}\t{partition}\t{offset}");
        }
    }
    Ok(())
}

fn dlq(bootstrap: &str, topic: &str) -> anyhow::Result<()> {
    let consumer: BaseConsumer = events::kafka::client_config(bootstrap)
        .set("group.id", format!("chaos-dlq-reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the consumer")?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).with_context(|| format!("metadata of {topic}"))?;
    let partitions: Vec<i32> =
        metadata.topics().first().map(|t| t.partitions().iter().map(|p| p.id()).collect()).unwrap_or_default();
    if partitions.is_empty() {
        bail!("the broker knows no partition of {topic}");
    }
    // Read each partition from its start to the end it has now.
    let mut ends = std::collections::BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for &p in &partitions {
        let (low, high) =
            consumer.fetch_watermarks(topic, p, timeout).with_context(|| format!("offsets of {topic}"))?;
        if high > low {
            ends.insert(p, high);
            assignment.add_partition_offset(topic, p, Offset::Offset(low))?;
        }
    }
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            bail!("reading {topic} to its end took over 60 s; {} partition(s) unfinished", ends.len());
        }
        let Some(message) = consumer.poll(Duration::from_millis(500)) else { continue };
        let m = message.with_context(|| format!("reading {topic}"))?;
        let header = |key: &str| {
            m.headers()
                .and_then(|h| h.iter().find(|x| x.key == key).and_then(|x| x.value))
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            m.partition(),
            m.offset(),
            header(connect_errors::PARTITION),
            header(connect_errors::OFFSET),
            header(headers::SYNC_ID),
            header(connect_errors::STAGE),
            header(connect_errors::EXCEPTION_CLASS_NAME),
        );
        if ends.get(&m.partition()).is_some_and(|&end| m.offset() + 1 >= end) {
            ends.remove(&m.partition());
        }
    }
    Ok(())
}
