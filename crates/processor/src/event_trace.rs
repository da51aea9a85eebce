//! The trace an event belongs to: the processor's span continues the `traceparent` ingest-api
//! put on the record (a new trace for a record without one), and every log line about the event
//! carries its `trace_id` and `span_id`. The span id is a function of the record's position, so
//! the lines about one event (decoding, dead-lettering, committing) share it without carrying it
//! around.

use events::headers;
use rdkafka::message::{Headers, Message, OwnedMessage};
use service_kit::trace::TraceContext;

/// The processor's span for this record: a child of the record's `traceparent`.
pub fn span_of(message: &OwnedMessage) -> TraceContext {
    let seed = format!("{}/{}/{}", message.topic(), message.partition(), message.offset());
    let parent = message
        .headers()
        .and_then(|h| h.iter().find(|h| h.key == headers::TRACEPARENT))
        .and_then(|h| std::str::from_utf8(h.value?).ok())
        .and_then(TraceContext::parse);
    match parent {
        Some(parent) => parent.child_for(seed.as_bytes()),
        None => TraceContext::root_for(seed.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::message::{Header, OwnedHeaders, Timestamp};

    use super::*;

    fn record(headers: Option<OwnedHeaders>) -> OwnedMessage {
        OwnedMessage::new(None, None, "t".into(), Timestamp::NotAvailable, 0, 7, headers)
    }

    #[test]
    fn a_record_with_a_traceparent_continues_its_trace() {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let headers = OwnedHeaders::new().insert(Header { key: headers::TRACEPARENT, value: Some(parent) });
        let span = span_of(&record(Some(headers)));
        assert_eq!(span.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        assert_ne!(span.span_id(), "b7ad6b7169203331");
        assert_eq!(
            span_of(&record(Some(
                OwnedHeaders::new().insert(Header { key: headers::TRACEPARENT, value: Some(parent) })
            ))),
            span
        );
    }

    #[test]
    fn a_record_without_one_starts_a_trace_of_its_own() {
        let a = span_of(&record(None));
        let b =
            span_of(&record(Some(OwnedHeaders::new().insert(Header { key: headers::TRACEPARENT, value: Some("x") }))));
        assert_eq!(a, b, "one record, one trace, whatever the broken header");
        let other = OwnedMessage::new(None, None, "t".into(), Timestamp::NotAvailable, 0, 8, None);
        assert_ne!(span_of(&other).trace_id(), a.trace_id());
    }
}
