//! Two event types on one topic, against the real registry: DeviceSynced (TopicNameStrategy) and
//! UserDataErasureRequested (TopicRecordNameStrategy) are told apart by the writer schema's full
//! name; a record of any other name is refused as unknown.

use events::UserDataErasureRequested;
use events::{device_synced, user_data_erasure_requested, CodecError, EventDecoder, EventEncoder, LogEvent};
use testkit::{sample_device_synced, unique};

fn decoder() -> EventDecoder {
    EventDecoder::new(&testkit::schema_registry_url(), device_synced::schema()).expect("decoder")
}

#[tokio::test]
async fn both_events_of_the_topic_decode_by_their_record_name() {
    let url = testkit::schema_registry_url();
    let topic = unique("log-events");
    let syncs = EventEncoder::new(&url, &topic, device_synced::SCHEMA_JSON).unwrap();
    let subject = format!("{topic}-{}", user_data_erasure_requested::FULL_NAME);
    let erasures = EventEncoder::with_subject(&url, &subject, user_data_erasure_requested::SCHEMA_JSON).unwrap();
    assert_eq!(
        user_data_erasure_requested::SUBJECT,
        format!("{}-{}", events::DEVICE_SYNCED_TOPIC, user_data_erasure_requested::FULL_NAME)
    );
    assert_eq!(user_data_erasure_requested::FULL_NAME, "fitness.events.UserDataErasureRequested");
    assert_eq!(device_synced::FULL_NAME, "fitness.events.DeviceSynced");

    let sync = sample_device_synced("user-1", "device-1");
    let erasure = UserDataErasureRequested {
        event_id: uuid::Uuid::new_v4().to_string(),
        erasure_id: uuid::Uuid::new_v4().to_string(),
        user_id: "user-1".into(),
        requested_at: 1_764_000_000_000,
    };
    let decoder = decoder();
    // Twice each: the second goes through the per-id cache.
    for _ in 0..2 {
        let decoded = decoder.decode_log_event(&syncs.encode(&sync).await.unwrap()).await.unwrap();
        assert_eq!(decoded, LogEvent::DeviceSynced(Box::new(sync.clone())));
        let decoded = decoder.decode_log_event(&erasures.encode(&erasure).await.unwrap()).await.unwrap();
        assert_eq!(decoded, LogEvent::UserDataErasureRequested(erasure.clone()));
    }
    // The two schemas got their own ids, under their own subjects.
    let sync_id = EventDecoder::schema_id(&syncs.encode(&sync).await.unwrap()).unwrap();
    let erasure_id = EventDecoder::schema_id(&erasures.encode(&erasure).await.unwrap()).unwrap();
    assert_ne!(sync_id, erasure_id);
}

#[tokio::test]
async fn a_record_of_another_name_is_unknown_and_not_retryable() {
    let url = testkit::schema_registry_url();
    let other = r#"{"type": "record", "name": "SomethingElse", "namespace": "fitness.events",
        "fields": [{"name": "user_id", "type": "string"}]}"#;
    let topic = unique("log-events");
    let encoder = EventEncoder::with_subject(&url, &format!("{topic}-fitness.events.SomethingElse"), other).unwrap();
    #[derive(serde::Serialize)]
    struct SomethingElse {
        user_id: String,
    }
    let payload = encoder.encode(&SomethingElse { user_id: "u".into() }).await.unwrap();
    match decoder().decode_log_event(&payload).await {
        Err(e @ CodecError::UnknownRecord(_)) => {
            assert!(!e.is_retryable());
            assert!(e.to_string().contains("fitness.events.SomethingElse"), "{e}");
        }
        other => panic!("expected an unknown record, got {other:?}"),
    }
}
