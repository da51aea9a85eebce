//! Handing an event the processor can never apply to the dead-letter topic, with its own
//! headers plus Kafka Connect's error-context headers, so the usual DLQ tooling reads it.

use std::time::Duration;

use events::headers::{self, connect_errors};
use log::{error, warn};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::sync_outcome::{Position, SyncOutcome};
use service_kit::backoff::Backoff;

/// Why an event can never be applied, in the terms of Kafka Connect's error headers.
#[derive(Debug, Clone)]
pub struct Poison {
    /// `VALUE_CONVERTER` when the bytes do not decode, `TASK_PUT` when the event is unusable.
    pub stage: &'static str,
    pub class: &'static str,
    pub message: String,
}

impl Poison {
    pub fn undecodable(class: &'static str, message: impl Into<String>) -> Self {
        Self { stage: "VALUE_CONVERTER", class, message: message.into() }
    }

    pub fn unusable(class: &'static str, message: impl Into<String>) -> Self {
        Self { stage: "TASK_PUT", class, message: message.into() }
    }
}

pub fn producer(settings: &Settings) -> anyhow::Result<FutureProducer> {
    Ok(events::kafka::client_config(&settings.kafka_bootstrap_servers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create()?)
}

/// Produces the record to the DLQ and waits for the broker's ack, retrying until it lands.
/// Returns false when shutdown interrupted it.
pub async fn send(
    dlq: &FutureProducer,
    settings: &Settings,
    message: &OwnedMessage,
    poison: &Poison,
    shutdown: &CancellationToken,
) -> bool {
    let span = crate::event_trace::span_of(message);
    error!(
        trace_id = span.trace_id(), span_id = span.span_id();
        "dead-lettering {}: {} ({})", describe(message), poison.message, poison.class
    );
    // Every header of the record is kept, `traceparent` too: the DLQ record stays in its trace.
    let mut headers = OwnedHeaders::new();
    if let Some(h) = message.headers() {
        for header in h.iter() {
            headers = headers.insert(Header { key: header.key, value: header.value });
        }
    }
    let (partition, offset) = (message.partition().to_string(), message.offset().to_string());
    for (key, value) in [
        (connect_errors::TOPIC, message.topic()),
        (connect_errors::PARTITION, &partition),
        (connect_errors::OFFSET, &offset),
        (connect_errors::CONNECTOR_NAME, &settings.group_id),
        (connect_errors::STAGE, poison.stage),
        (connect_errors::CLASS_NAME, "processor.Worker"),
        (connect_errors::EXCEPTION_CLASS_NAME, poison.class),
        (connect_errors::EXCEPTION_MESSAGE, &poison.message),
    ] {
        headers = headers.insert(Header { key, value: Some(value) });
    }
    let mut backoff = Backoff::default();
    loop {
        let mut record = FutureRecord::to(&settings.dlq_topic).headers(headers.clone());
        if let Some(k) = message.key() {
            record = record.key(k);
        }
        if let Some(p) = message.payload() {
            record = record.payload(p);
        }
        match dlq.send(record, Duration::from_secs(10)).await {
            Ok(_) => return true,
            Err((e, _)) => warn!("producing to {}: {e}; retrying", settings.dlq_topic),
        }
        if !backoff.wait(shutdown).await {
            return false;
        }
    }
}

/// The failed sync status of a dead-lettered record, when its sync id is known: from the event
/// if it decoded, else from the record's `sync_id` header.
pub fn failed_outcome(message: &OwnedMessage, known: Option<&SyncOutcome>, reason: &str) -> Option<SyncOutcome> {
    let at = Position { partition: message.partition(), offset: message.offset() };
    if let Some(o) = known {
        return Some(SyncOutcome::failed(o.sync_id, Some(o.event_id), o.user_id.clone(), at, o.ingested_at, reason));
    }
    let sync_id = header(message, headers::SYNC_ID)?.parse().ok()?;
    let event_id = header(message, headers::EVENT_ID).and_then(|v| v.parse().ok());
    let user = message.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
    Some(SyncOutcome::failed(sync_id, event_id, user, at, record_time(message), reason))
}

/// When the record was written (its Kafka timestamp, which ingest-api's producer sets when it
/// accepts the sync): for a record that does not decode, the only ingest time there is. From the
/// log, so a rebuild records the same.
fn record_time(m: &OwnedMessage) -> chrono::DateTime<chrono::Utc> {
    m.timestamp().to_millis().and_then(chrono::DateTime::from_timestamp_millis).unwrap_or_default()
}

fn header<'a>(m: &'a OwnedMessage, key: &str) -> Option<&'a str> {
    m.headers()?.iter().find(|h| h.key == key).and_then(|h| std::str::from_utf8(h.value?).ok())
}

pub fn describe(m: &OwnedMessage) -> String {
    format!("{}[{}]@{}", m.topic(), m.partition(), m.offset())
}
