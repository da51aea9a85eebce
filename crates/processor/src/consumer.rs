//! The poll loop: batch, decode, apply in one transaction, then store offsets.
//!
//! Offsets are stored only after the transaction holding their effects has committed
//! (`enable.auto.offset.store=false`), and committed on revoke and at shutdown. The database
//! watermark, not Kafka's committed offset, decides what was applied: a redelivered event is
//! skipped, so effects happen at most once while events are delivered at least once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use events::{DeviceSynced, EventDecoder};
use log::{debug, error, info, warn};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientContext;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::db::PgPool;
use crate::metrics::Metrics;
use crate::store::{self, Item, SyncOutcome};

/// Commits stored offsets when partitions are taken away, so the next owner starts close to
/// where this one stopped.
pub struct ProcessorContext {
    /// Consumer lag per partition, from librdkafka's statistics.
    lag: prometheus::IntGaugeVec,
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
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            info!("partitions revoked: {}", describe(partitions));
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                // Nothing stored yet is the usual reason; the database watermark covers the rest.
                debug!("commit on revoke: {e}");
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            info!("partitions assigned: {}", describe(partitions));
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

pub fn consumer(settings: &Settings, metrics: &Metrics) -> anyhow::Result<ProcessorConsumer> {
    let consumer: ProcessorConsumer = events::kafka::client_config(&settings.kafka_bootstrap_servers)
        .set("group.id", &settings.group_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.offset.store", "false")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("statistics.interval.ms", "5000")
        .create_with_context(ProcessorContext { lag: metrics.consumer_lag.clone() })?;
    consumer.subscribe(&[&settings.topic])?;
    Ok(consumer)
}

pub fn dlq_producer(settings: &Settings) -> anyhow::Result<FutureProducer> {
    Ok(events::kafka::client_config(&settings.kafka_bootstrap_servers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create()?)
}

pub struct Worker {
    pub settings: Settings,
    pub consumer: Arc<ProcessorConsumer>,
    pub decoder: EventDecoder,
    pub dlq: FutureProducer,
    pub pool: PgPool,
    pub metrics: Metrics,
    /// False while transient failures (database, registry) are being retried; `/readyz` says so.
    pub healthy: Arc<AtomicBool>,
}

/// One partition's items of a batch, and the position they bring it to.
type PartitionWork = (Arc<Vec<Item>>, BTreeMap<i32, i64>);

/// One event's fate once decoded.
enum Decoded {
    Apply(Box<Item>),
    /// Cannot be applied, ever; handed to the DLQ.
    Poison(Poison),
}

/// Why an event can never be applied, in the terms of Kafka Connect's error headers.
struct Poison {
    /// `VALUE_CONVERTER` when the bytes do not decode, `TASK_PUT` when the event is unusable.
    stage: &'static str,
    class: &'static str,
    message: String,
}

impl Poison {
    fn undecodable(class: &'static str, message: impl Into<String>) -> Self {
        Self { stage: "VALUE_CONVERTER", class, message: message.into() }
    }
}

impl Worker {
    /// Runs until `shutdown` fires, then commits what is stored and leaves the group.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        info!("consuming {} as group {}", self.settings.topic, self.settings.group_id);
        loop {
            let Some(batch) = self.next_batch(&shutdown).await else { break };
            if !self.process(batch, &shutdown).await {
                break;
            }
        }
        info!("stopping: committing stored offsets and leaving the group");
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            debug!("final commit: {e}");
        }
        self.consumer.unsubscribe();
        Ok(())
    }

    /// Waits for one message, then gathers more until the batch is full or its wait is over.
    async fn next_batch(&self, shutdown: &CancellationToken) -> Option<Vec<OwnedMessage>> {
        let first = loop {
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                m = self.consumer.recv() => match m {
                    Ok(m) => break m.detach(),
                    Err(e) => { warn!("consumer: {e}"); tokio::time::sleep(Duration::from_millis(200)).await }
                }
            }
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + self.settings.batch_max_wait;
        while batch.len() < self.settings.batch_max_events {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(m)) => batch.push(m.detach()),
                Ok(Err(e)) => warn!("consumer: {e}"),
                Err(_) => break,
            }
        }
        Some(batch)
    }

    /// Decodes and applies a batch, retrying transient failures until done or shut down.
    /// Returns false when shutdown interrupted it (nothing of the batch was stored then).
    async fn process(&self, batch: Vec<OwnedMessage>, shutdown: &CancellationToken) -> bool {
        let started = Instant::now();
        let mut backoff = Backoff::default();
        let mut items = Vec::with_capacity(batch.len());
        for message in &batch {
            let decoded = loop {
                match self.decode(message).await {
                    Ok(d) => break d,
                    Err(e) => {
                        warn!("decoding {}: {e}; retrying", position(message));
                        self.metrics.retries.inc();
                        self.healthy.store(false, Ordering::Relaxed);
                        if !backoff.wait(shutdown).await {
                            return false;
                        }
                    }
                }
            };
            match decoded {
                Decoded::Apply(item) => items.push(*item),
                Decoded::Poison(poison) => match self.dead_letter(message, &poison, shutdown).await {
                    Some(outcome) => items.extend(outcome.map(|outcome| Item { outcome, event: None })),
                    None => return false,
                },
            }
        }
        let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
        for m in &batch {
            let e = positions.entry(m.partition()).or_insert(m.offset());
            *e = (*e).max(m.offset());
        }
        // Partitions are independent (a user lives in one), so each is applied in its own
        // transaction, in parallel; a partition that fails is retried, one that committed is
        // skipped on the retry by its watermark.
        let mut by_partition: BTreeMap<i32, Vec<Item>> = BTreeMap::new();
        for item in items {
            by_partition.entry(item.outcome.kafka_partition).or_default().push(item);
        }
        let groups: Vec<PartitionWork> = positions
            .iter()
            .map(|(&p, &o)| (Arc::new(by_partition.remove(&p).unwrap_or_default()), BTreeMap::from([(p, o)])))
            .collect();
        let mut applied = 0;
        let mut pending: Vec<usize> = (0..groups.len()).collect();
        loop {
            let runs = pending.iter().map(|&g| {
                let (pool, topic) = (self.pool.clone(), self.settings.topic.clone());
                let (rows, pos) = (groups[g].0.clone(), groups[g].1.clone());
                tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
                    let mut conn = pool.get()?;
                    Ok(store::apply_batch(&mut conn, &topic, &rows, &pos)?)
                })
            });
            let results = futures::future::join_all(runs).await;
            let mut failed = Vec::new();
            for (&g, result) in pending.iter().zip(results) {
                match result {
                    Ok(Ok(n)) => applied += n,
                    Ok(Err(e)) => {
                        warn!("writing partition {:?}: {e:#}; retrying", groups[g].1.keys());
                        failed.push(g);
                    }
                    Err(e) => {
                        error!("writing partition {:?} panicked: {e}; retrying", groups[g].1.keys());
                        failed.push(g);
                    }
                }
            }
            if failed.is_empty() {
                break;
            }
            pending = failed;
            self.metrics.retries.inc();
            self.healthy.store(false, Ordering::Relaxed);
            if !backoff.wait(shutdown).await {
                return false;
            }
        }
        self.healthy.store(true, Ordering::Relaxed);
        let items: Vec<&Item> = groups.iter().flat_map(|g| g.0.iter()).collect();
        for (partition, offset) in &positions {
            if let Err(e) = self.consumer.store_offset(&self.settings.topic, *partition, offset + 1) {
                // The partition moved to another member; its new owner skips what we applied.
                debug!("storing offset {offset} of partition {partition}: {e}");
            }
        }
        let now = Utc::now();
        for o in items.iter().map(|i| &i.outcome) {
            let lag = (now - o.ingested_at).num_milliseconds().max(0) as f64 / 1000.0;
            self.metrics.end_to_end_lag_seconds.observe(lag);
        }
        self.metrics.events.with_label_values(&["applied"]).inc_by(applied as u64);
        self.metrics.events.with_label_values(&["skipped_duplicate"]).inc_by((items.len() - applied) as u64);
        self.metrics.batch_size.observe(batch.len() as f64);
        self.metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
        info!(
            "applied a batch of {} event(s), {} new, partitions {:?}",
            batch.len(),
            applied,
            positions.keys().collect::<Vec<_>>()
        );
        true
    }

    async fn decode(&self, message: &OwnedMessage) -> Result<Decoded, events::CodecError> {
        let Some(payload) = message.payload() else {
            return Ok(Decoded::Poison(Poison::undecodable("processor.EmptyPayload", "the record has no value")));
        };
        match self.decoder.decode::<DeviceSynced>(payload).await {
            Ok(event) => Ok(match outcome_of(&event, message) {
                Ok(outcome) => Decoded::Apply(Box::new(Item { outcome, event: Some(event) })),
                Err(reason) => {
                    Decoded::Poison(Poison { stage: "TASK_PUT", class: "processor.InvalidEvent", message: reason })
                }
            }),
            Err(e) if e.is_retryable() => Err(e),
            Err(e) => {
                let class = match &e {
                    events::CodecError::Registry(_) => "events.codec.UnknownSchema",
                    events::CodecError::Framing(_) => "events.codec.NotConfluentAvro",
                    events::CodecError::Avro(_) => "events.codec.AvroDecodeError",
                };
                Ok(Decoded::Poison(Poison::undecodable(class, e.to_string())))
            }
        }
    }

    /// Hands an unusable event to the DLQ with its own headers plus Kafka Connect's error-context
    /// headers, and waits for the broker's ack; the sync, when its id is known, is recorded as
    /// failed. The partition then keeps flowing.
    async fn dead_letter(
        &self,
        message: &OwnedMessage,
        poison: &Poison,
        shutdown: &CancellationToken,
    ) -> Option<Option<SyncOutcome>> {
        error!("dead-lettering {}: {} ({})", position(message), poison.message, poison.class);
        let mut headers = OwnedHeaders::new();
        if let Some(h) = message.headers() {
            for header in h.iter() {
                headers = headers.insert(Header { key: header.key, value: header.value });
            }
        }
        let (partition, offset) = (message.partition().to_string(), message.offset().to_string());
        for (key, value) in [
            ("__connect.errors.topic", message.topic()),
            ("__connect.errors.partition", &partition),
            ("__connect.errors.offset", &offset),
            ("__connect.errors.connector.name", &self.settings.group_id),
            ("__connect.errors.stage", poison.stage),
            ("__connect.errors.class.name", "processor.Worker"),
            ("__connect.errors.exception.class.name", poison.class),
            ("__connect.errors.exception.message", &poison.message),
        ] {
            headers = headers.insert(Header { key, value: Some(value) });
        }
        let mut backoff = Backoff::default();
        loop {
            let mut record = FutureRecord::to(&self.settings.dlq_topic).headers(headers.clone());
            if let Some(k) = message.key() {
                record = record.key(k);
            }
            if let Some(p) = message.payload() {
                record = record.payload(p);
            }
            match self.dlq.send(record, Duration::from_secs(10)).await {
                Ok(_) => break,
                Err((e, _)) => warn!("producing to {}: {e}; retrying", self.settings.dlq_topic),
            }
            if !backoff.wait(shutdown).await {
                return None;
            }
        }
        self.metrics.events.with_label_values(&["dead_lettered"]).inc();
        Some(failed_outcome(message, &poison.message))
    }
}

fn position(m: &OwnedMessage) -> String {
    format!("{}[{}]@{}", m.topic(), m.partition(), m.offset())
}

fn header<'a>(m: &'a OwnedMessage, key: &str) -> Option<&'a str> {
    m.headers()?.iter().find(|h| h.key == key).and_then(|h| std::str::from_utf8(h.value?).ok())
}

fn failed_outcome(message: &OwnedMessage, reason: &str) -> Option<SyncOutcome> {
    let sync_id = header(message, "sync_id")?.parse().ok()?;
    let event_id = header(message, "event_id").and_then(|v| v.parse().ok()).unwrap_or_else(uuid::Uuid::nil);
    Some(SyncOutcome {
        sync_id,
        event_id,
        user_id: message.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
        device_id: String::new(),
        kafka_partition: message.partition(),
        kafka_offset: message.offset(),
        outcome: "failed".into(),
        failure_reason: Some(format!("sent to the dead-letter topic: {reason}")),
        heart_rate_samples: 0,
        rr_intervals: 0,
        step_epochs: 0,
        sleep_segments: 0,
        workouts: 0,
        dropped_samples: serde_json::json!({}),
        ingested_at: Utc::now(),
    })
}

/// What a decoded event writes; an event that is well-formed Avro but not usable is poison.
fn outcome_of(event: &DeviceSynced, message: &OwnedMessage) -> Result<SyncOutcome, String> {
    let sync_id = event.sync_id.parse().map_err(|e| format!("sync_id {:?}: {e}", event.sync_id))?;
    let event_id = event.event_id.parse().map_err(|e| format!("event_id {:?}: {e}", event.event_id))?;
    let ingested_at = DateTime::<Utc>::from_timestamp_millis(event.ingested_at)
        .ok_or_else(|| format!("ingested_at {} is out of range", event.ingested_at))?;
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    Ok(SyncOutcome {
        sync_id,
        event_id,
        user_id: event.user_id.clone(),
        device_id: event.device_id.clone(),
        kafka_partition: message.partition(),
        kafka_offset: message.offset(),
        outcome: "processed".into(),
        failure_reason: None,
        heart_rate_samples: count(event.heart_rate.bpm.len()),
        rr_intervals: count(event.rr_blocks.iter().map(|b| b.intervals_ms.len()).sum()),
        step_epochs: count(event.steps.steps.len()),
        sleep_segments: count(event.sleep.len()),
        workouts: count(event.workouts.len()),
        dropped_samples: serde_json::to_value(&event.dropped_samples).unwrap_or_default(),
        ingested_at,
    })
}

/// Exponential backoff from 100 ms to 5 s that gives up when shutdown is requested.
#[derive(Default)]
struct Backoff {
    attempt: u32,
}

impl Backoff {
    async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = Duration::from_millis(100 * 2u64.pow(self.attempt.min(6))).min(Duration::from_secs(5));
        self.attempt += 1;
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}
