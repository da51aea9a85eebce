//! The Kafka consumer: cooperative-sticky group membership, offsets stored only after their
//! effects committed, and the cache of a revoked partition dropped.

use std::sync::{Arc, Mutex};

use log::{debug, info, warn};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::ClientContext;

use crate::cache::ModelCache;
use crate::config::Settings;
use crate::metrics::Metrics;

pub struct ProcessorContext {
    /// Consumer lag per partition, from librdkafka's statistics.
    lag: prometheus::IntGaugeVec,
    rebalances: prometheus::IntCounterVec,
    cache: Arc<Mutex<ModelCache>>,
}

impl ClientContext for ProcessorContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        for topic in statistics.topics.values() {
            for (partition, p) in &topic.partitions {
                // -1 is librdkafka's internal "unassigned" partition; lag -1 means unknown.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.lag.with_label_values(&[&topic.topic, &partition.to_string()]).set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for ProcessorContext {
    /// Commits stored offsets when partitions are taken away, so the next owner starts close to
    /// where this one stopped, and forgets their cached model: the next owner writes it now.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            info!("partitions revoked: {}", describe(partitions));
            self.rebalances.with_label_values(&["revoke"]).inc();
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                // Nothing stored yet is the usual reason; the database watermark covers the rest.
                debug!("commit on revoke: {e}");
            }
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            for p in partitions.elements() {
                cache.drop_partition(p.partition());
            }
        }
    }

    /// What is assigned starts resumed: a partition paused during a retry and revoked must not
    /// come back paused, never to be fetched again (the worker pauses it again if it is still
    /// retrying).
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            info!("partitions assigned: {}", describe(partitions));
            self.rebalances.with_label_values(&["assign"]).inc();
            if let Err(e) = consumer.resume(partitions) {
                warn!("resuming assigned partitions {}: {e}", describe(partitions));
            }
        }
    }
}

fn describe(tpl: &rdkafka::TopicPartitionList) -> String {
    let parts: Vec<String> = tpl.elements().iter().map(|e| format!("{}[{}]", e.topic(), e.partition())).collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

pub type ProcessorConsumer = StreamConsumer<ProcessorContext>;

pub fn consumer(
    settings: &Settings,
    metrics: &Metrics,
    cache: Arc<Mutex<ModelCache>>,
) -> anyhow::Result<ProcessorConsumer> {
    let mut config = events::kafka::client_config(&settings.kafka_bootstrap_servers);
    if let Some(instance) = &settings.group_instance_id {
        config.set("group.instance.id", instance);
    }
    let consumer: ProcessorConsumer = config
        .set("group.id", &settings.group_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.offset.store", "false")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // A member killed without leaving holds its partitions this long; 6 s is Kafka's floor
        // (group.min.session.timeout.ms), and heartbeats every second keep a live member in.
        .set("session.timeout.ms", "6000")
        .set("max.poll.interval.ms", settings.max_poll_interval.as_millis().to_string())
        // What may arrive while partitions are paused is held in memory: keep the prefetch small.
        .set("queued.max.messages.kbytes", "16384")
        .set("heartbeat.interval.ms", "1000")
        .set("statistics.interval.ms", "5000")
        // A fetch returns once data is there; this caps the wait on a quiet partition, which is
        // what a fresh event waits behind (librdkafka's default is 500 ms).
        .set("fetch.wait.max.ms", "50")
        .create_with_context(ProcessorContext {
            lag: metrics.consumer_lag.clone(),
            rebalances: metrics.rebalances.clone(),
            cache,
        })?;
    consumer.subscribe(&[&settings.topic])?;
    Ok(consumer)
}
