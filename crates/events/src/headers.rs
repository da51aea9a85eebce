//! Names of the Kafka record headers the system writes and reads, so a producer and its readers
//! (the processor, the dead-letter tooling, the tests) cannot drift apart on a spelling.
//!
//! The payload alone is authoritative; headers repeat what a reader needs without decoding it
//! (a record that does not decode is still traceable to its sync).

/// The event's own id (a UUID): written on every DeviceSynced and UserDataErasureRequested
/// record; the processor reads it back from a record it cannot decode.
pub const EVENT_ID: &str = "event_id";

/// The sync the event carries (a UUID): written on DeviceSynced records; the processor records a
/// `failed` sync status under it when the payload does not decode.
pub const SYNC_ID: &str = "sync_id";

/// The id of the HTTP request that produced the record (its `X-Request-Id`, or one ingest-api
/// made up), to trace a record back to its line in ingest-api's access log.
pub const CORRELATION_ID: &str = "correlation_id";

/// The W3C trace context (`00-<trace id>-<span id>-<flags>`) of the request that produced the
/// record: ingest-api writes its span, the processor logs a child span of it with every line
/// about the event, and a dead-lettered record keeps it.
pub const TRACEPARENT: &str = "traceparent";

/// The payload's media type; its value is [`AVRO_CONTENT_TYPE`].
pub const CONTENT_TYPE: &str = "content-type";

/// The [`CONTENT_TYPE`] of a Confluent-framed Avro payload (magic byte, schema id, Avro body).
pub const AVRO_CONTENT_TYPE: &str = "application/vnd.confluent.avro";

/// Kafka Connect's error-context headers, which the processor adds to a dead-lettered record
/// (next to the record's own headers) so that the usual DLQ tooling can read it.
pub mod connect_errors {
    /// The topic the record was consumed from.
    pub const TOPIC: &str = "__connect.errors.topic";
    /// The partition the record was consumed from.
    pub const PARTITION: &str = "__connect.errors.partition";
    /// The record's offset in that partition.
    pub const OFFSET: &str = "__connect.errors.offset";
    /// The consumer (the processor's group id) that gave up on the record.
    pub const CONNECTOR_NAME: &str = "__connect.errors.connector.name";
    /// Where it failed: `VALUE_CONVERTER` (the bytes do not decode) or `TASK_PUT` (the event
    /// decodes but cannot be applied).
    pub const STAGE: &str = "__connect.errors.stage";
    /// The component that failed on it.
    pub const CLASS_NAME: &str = "__connect.errors.class.name";
    /// The kind of error, for grouping dead letters.
    pub const EXCEPTION_CLASS_NAME: &str = "__connect.errors.exception.class.name";
    /// The error's human-readable text.
    pub const EXCEPTION_MESSAGE: &str = "__connect.errors.exception.message";
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spellings are a wire contract: docs/, deploy/chaos.py and any DLQ tooling read them,
    /// so renaming a constant must not silently rename a header.
    #[test]
    fn header_names_are_the_documented_wire_names() {
        assert_eq!(
            [EVENT_ID, SYNC_ID, CORRELATION_ID, TRACEPARENT, CONTENT_TYPE, AVRO_CONTENT_TYPE],
            ["event_id", "sync_id", "correlation_id", "traceparent", "content-type", "application/vnd.confluent.avro"]
        );
        use connect_errors::*;
        assert_eq!(
            [TOPIC, PARTITION, OFFSET, CONNECTOR_NAME, STAGE, CLASS_NAME, EXCEPTION_CLASS_NAME, EXCEPTION_MESSAGE],
            [
                "__connect.errors.topic",
                "__connect.errors.partition",
                "__connect.errors.offset",
                "__connect.errors.connector.name",
                "__connect.errors.stage",
                "__connect.errors.class.name",
                "__connect.errors.exception.class.name",
                "__connect.errors.exception.message",
            ]
        );
    }
}
