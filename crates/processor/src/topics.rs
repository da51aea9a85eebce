//! `processor create-topics`: creates the event topic and its DLQ when they are missing.
//!
//! Partitions are set with headroom at creation: the embedded broker cannot add partitions, and
//! adding them on Kafka remaps keys (and so users) to other partitions.
//!
//! Replication and `min.insync.replicas` come from the settings: with acks=all, a 202 means the
//! record is on `min.insync.replicas` brokers, so on a real cluster they must be above 1 (the
//! Helm values default to 3 and 2; the embedded broker has one node, so 1 and 1).
//!
//! Both topics get `retention.ms` (`PROCESSOR_TOPIC_RETENTION_MS`, default 7 days): raw events
//! are health data, and an erasure is complete once the events before it have aged out of Kafka.
//! Kafka deletes closed segments only, and rolls the active one after `segment.ms`; so
//! `segment.ms` is set to a day at most (or the retention, when shorter), bounding how long an
//! event outlives its retention. A topic that exists already keeps its configuration.

use events::kafka::TopicSpec;

use crate::config::Settings;

/// The most a segment stays open: a day, or the retention when shorter. An event leaves Kafka at
/// most `retention.ms + segment.ms` after it was written.
pub fn segment_ms(retention_ms: i64) -> i64 {
    retention_ms.min(86_400_000)
}

/// Creates the topics; returns, per topic, whether it was created now (false: it existed).
pub async fn create_topics(settings: &Settings) -> anyhow::Result<Vec<(String, bool)>> {
    let (partitions, replication) = (settings.topic_partitions, settings.topic_replication);
    let min_insync = settings.topic_min_insync_replicas;
    anyhow::ensure!(partitions >= 1, "PROCESSOR_TOPIC_PARTITIONS={partitions}: a topic needs at least 1 partition");
    anyhow::ensure!(
        (1..=replication).contains(&min_insync),
        "PROCESSOR_TOPIC_MIN_INSYNC_REPLICAS={min_insync} must be between 1 and PROCESSOR_TOPIC_REPLICATION={replication}"
    );
    anyhow::ensure!(
        settings.topic_retention_ms > 0,
        "PROCESSOR_TOPIC_RETENTION_MS={} must be positive: raw events must age out for an erasure to complete",
        settings.topic_retention_ms
    );
    let retention = settings.topic_retention_ms;
    let segment = segment_ms(retention);
    let topics =
        [TopicSpec::new(&settings.topic, partitions, replication), TopicSpec::new(&settings.dlq_topic, 1, replication)]
            .map(|t| {
                t.set("min.insync.replicas", min_insync).set("retention.ms", retention).set("segment.ms", segment)
            });
    events::kafka::create_topics(&settings.kafka_bootstrap_servers, &topics).await.map_err(anyhow::Error::msg)
}
