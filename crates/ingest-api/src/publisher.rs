//! The command path's one write: a DeviceSynced record to Kafka, acknowledged with acks=all.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use events::{headers, DeviceSynced, EventEncoder};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::RequestContext;

/// Where the broker put the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the DeviceSynced schema is not registered yet")]
    NotRegistered,
    #[error("the event is {size} bytes, more than the {limit} bytes a record may have")]
    TooLarge { size: usize, limit: usize },
    #[error("the producer queue is full")]
    QueueFull,
    #[error("the broker did not acknowledge the record: {0}")]
    NotAcknowledged(String),
    #[error("the event could not be encoded: {0}")]
    Encoding(String),
}

pub struct Publisher {
    producer: FutureProducer,
    /// Registers the schema at start.
    encoder: EventEncoder,
    /// UserDataErasureRequested, on the same topic under its TopicRecordNameStrategy subject;
    /// registered on first use (erasures are rare).
    erasure_encoder: EventEncoder,
    max_event_bytes: usize,
    topic: String,
    /// Schema id once registered; 0 before.
    schema_id: AtomicU32,
    /// Why the last registration attempt failed, for /readyz.
    registration_error: std::sync::Mutex<Option<String>>,
    /// Partition count of the topic, 0 until known.
    partitions: AtomicU32,
    metrics: Metrics,
}

impl Publisher {
    pub fn new(settings: &Settings, metrics: Metrics) -> anyhow::Result<Self> {
        let timeout = settings.delivery_timeout.as_millis().to_string();
        let producer: FutureProducer = events::kafka::client_config(&settings.kafka_bootstrap_servers)
            // A 202 means durable: every in-sync replica has it, written exactly once per send.
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", &settings.producer.compression)
            // Java clients' partitioner, so every producer of a user's key agrees on the partition.
            .set("partitioner", "murmur2_random")
            .set("linger.ms", settings.producer.linger_ms.to_string())
            .set("batch.size", settings.producer.batch_bytes.to_string())
            // Small records, answered one by one: waiting to fill a segment only adds latency.
            .set("socket.nagle.disable", "true")
            // Room for the key, the headers and the record batch around the largest event.
            .set("message.max.bytes", (settings.max_event_bytes + 64 * 1024).to_string())
            // Bounded memory: past this, sends fail at once and the caller gets 503.
            .set("queue.buffering.max.messages", settings.producer_queue_max_messages.to_string())
            .set("queue.buffering.max.kbytes", "262144")
            .set("message.timeout.ms", &timeout)
            .set("request.timeout.ms", &timeout)
            .create()
            .context("creating the Kafka producer")?;
        // Events are encoded from the latest version's types by the generated encoder, so the
        // registered (producer) schema must be that version; schemas/manifest.json sets it.
        let latest = events::device_synced::VERSIONS.last().map(|v| v.0);
        anyhow::ensure!(
            latest == Some(events::device_synced::PRODUCER_VERSION),
            "schemas/manifest.json: producer_version {} is not the latest DeviceSynced version {latest:?}; ingest-api writes the latest",
            events::device_synced::PRODUCER_VERSION
        );
        let encoder =
            EventEncoder::new(&settings.schema_registry_url, &settings.topic, events::device_synced::SCHEMA_JSON)?;
        let erasure_encoder = EventEncoder::with_subject(
            &settings.schema_registry_url,
            &format!("{}-{}", settings.topic, events::user_data_erasure_requested::FULL_NAME),
            events::user_data_erasure_requested::SCHEMA_JSON,
        )?;
        Ok(Self {
            producer,
            encoder,
            erasure_encoder,
            max_event_bytes: settings.max_event_bytes,
            topic: settings.topic.clone(),
            schema_id: AtomicU32::new(0),
            registration_error: std::sync::Mutex::new(None),
            partitions: AtomicU32::new(0),
            metrics,
        })
    }

    /// Registers the compiled-in schema, retrying with capped backoff until it works (a failure
    /// is never remembered as final), so the first request does not pay for it.
    pub async fn warm_up(self: Arc<Self>) {
        let mut delay = Duration::from_millis(200);
        loop {
            match self.encoder.warm_up().await {
                Ok(id) => {
                    self.schema_id.store(id, Ordering::Relaxed);
                    *self.registration_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    log::info!("DeviceSynced schema registered as id {id}");
                    return;
                }
                Err(e) => {
                    log::warn!("registering the DeviceSynced schema: {e}; retrying in {delay:?}");
                    *self.registration_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                    tokio::time::sleep(delay).await;
                    // Capped low: the cap bounds how long after the registry's recovery this
                    // instance stays unready.
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    pub fn schema_registered(&self) -> bool {
        self.schema_id.load(Ordering::Relaxed) != 0
    }

    /// Why the schema is not registered yet, when an attempt failed.
    pub fn registration_error(&self) -> Option<String> {
        self.registration_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Is the topic known to the broker? Blocking: call from a blocking thread.
    pub fn broker_reachable(&self) -> Result<(), String> {
        events::kafka::topic_partitions(self.producer.client(), &self.topic, Duration::from_secs(2)).map(|_| ())
    }

    /// The topic's partition count (cached: the embedded broker cannot add partitions, and on
    /// Kafka adding them remaps keys, which needs a restart anyway).
    pub async fn partition_count(self: &Arc<Self>) -> Result<i32, String> {
        let cached = self.partitions.load(Ordering::Relaxed);
        if cached > 0 {
            return Ok(cached as i32);
        }
        let me = self.clone();
        let n = tokio::task::spawn_blocking(move || {
            events::kafka::topic_partitions(me.producer.client(), &me.topic, Duration::from_secs(2)).map(|n| n as i32)
        })
        .await
        .map_err(|e| e.to_string())??;
        self.partitions.store(n as u32, Ordering::Relaxed);
        Ok(n)
    }

    /// Records waiting for the broker.
    pub fn queue_depth(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Encodes and produces; returns once the broker acknowledged the record. `size_hint` sizes
    /// the encoding buffer (the Avro form of a sync is about a fifth of its JSON).
    pub async fn publish(
        &self,
        event: &DeviceSynced,
        context: &RequestContext,
        size_hint: usize,
    ) -> Result<Delivery, PublishError> {
        let id = self.schema_id.load(Ordering::Relaxed);
        if id == 0 {
            return Err(PublishError::NotRegistered);
        }
        // The encoder generated from the schema, with the id the registration gave.
        let payload = events::avro::framed(id, event, size_hint);
        if payload.len() > self.max_event_bytes {
            return Err(PublishError::TooLarge { size: payload.len(), limit: self.max_event_bytes });
        }
        let headers = OwnedHeaders::new()
            .insert(Header { key: headers::EVENT_ID, value: Some(&event.event_id) })
            .insert(Header { key: headers::SYNC_ID, value: Some(&event.sync_id) })
            .insert(Header { key: headers::CORRELATION_ID, value: Some(&context.correlation_id) })
            .insert(Header { key: headers::TRACEPARENT, value: Some(context.trace.header()) })
            .insert(Header { key: headers::CONTENT_TYPE, value: Some(headers::AVRO_CONTENT_TYPE) });
        self.produce(&event.user_id, &payload, headers).await
    }

    /// Publishes a user's erasure request on the user's key, after every earlier event of theirs
    /// in the partition; returns once the broker acknowledged it.
    pub async fn publish_erasure(
        &self,
        user_id: &str,
        erasure_id: uuid::Uuid,
        context: &RequestContext,
    ) -> Result<Delivery, PublishError> {
        let event_id = uuid::Uuid::new_v4().to_string();
        let event = events::UserDataErasureRequested {
            event_id: event_id.clone(),
            erasure_id: erasure_id.to_string(),
            user_id: user_id.to_owned(),
            requested_at: chrono::Utc::now().timestamp_millis(),
        };
        // Through apache-avro's Value: four fields, rare; the registration is cached after the first.
        let payload = self.erasure_encoder.encode(&event).await.map_err(|e| PublishError::Encoding(e.to_string()))?;
        let headers = OwnedHeaders::new()
            .insert(Header { key: headers::EVENT_ID, value: Some(&event_id) })
            .insert(Header { key: headers::CORRELATION_ID, value: Some(&context.correlation_id) })
            .insert(Header { key: headers::TRACEPARENT, value: Some(context.trace.header()) })
            .insert(Header { key: headers::CONTENT_TYPE, value: Some(headers::AVRO_CONTENT_TYPE) });
        self.produce(user_id, &payload, headers).await
    }

    /// Produces one record keyed by its user (so it lands in the user's partition, after the
    /// user's earlier events) and waits for the broker's acknowledgement.
    async fn produce(&self, user_id: &str, payload: &[u8], headers: OwnedHeaders) -> Result<Delivery, PublishError> {
        let record = FutureRecord::to(&self.topic).key(user_id).payload(payload).headers(headers);
        let future = match self.producer.send_result(record) {
            Ok(f) => f,
            Err((e, _)) => return Err(self.failed(&e, payload.len())),
        };
        self.metrics.records.with_label_values(&["produced"]).inc();
        match future.await {
            Ok(Ok(d)) => {
                self.metrics.records.with_label_values(&["delivered"]).inc();
                Ok(Delivery { partition: d.partition, offset: d.offset })
            }
            Ok(Err((e, _))) => Err(self.failed(&e, payload.len())),
            Err(_) => {
                self.metrics.records.with_label_values(&["failed"]).inc();
                Err(PublishError::NotAcknowledged("the producer was dropped".into()))
            }
        }
    }

    /// A send or a delivery that failed, counted and classified. A record over the size limit is
    /// refused by the producer or, when the topic's `max.message.bytes` is below ours, by the broker.
    fn failed(&self, e: &KafkaError, size: usize) -> PublishError {
        self.metrics.records.with_label_values(&["failed"]).inc();
        match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::QueueFull) => PublishError::QueueFull,
            Some(RDKafkaErrorCode::MessageSizeTooLarge) => PublishError::TooLarge { size, limit: self.max_event_bytes },
            _ => PublishError::NotAcknowledged(e.to_string()),
        }
    }

    /// Waits for everything queued to be acknowledged (at shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), String> {
        self.producer.flush(timeout).map_err(|e| e.to_string())
    }
}
