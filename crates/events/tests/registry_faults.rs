//! The registry client against the real registry behind a proxy that injects faults: transient
//! failures are reported as retryable and never remembered; an unknown id is poison.

use events::device_synced::{schema, SCHEMA_JSON};
use events::registry::Fault;
use events::{CodecError, DeviceSynced, EventDecoder, EventEncoder};
use testkit::{unique, TcpProxy};

async fn registry_proxy() -> (TcpProxy, String) {
    let target = testkit::schema_registry_url().trim_start_matches("http://").trim_end_matches('/').to_owned();
    let proxy = TcpProxy::start(&target).await;
    let url = format!("http://127.0.0.1:{}", proxy.port);
    (proxy, url)
}

/// The proxy cuts open connections when it switches, so a pooled connection fails once with a
/// transport error (transient too); the second attempt reaches the new behaviour.
async fn twice<T, F: std::future::Future<Output = Result<T, CodecError>>>(
    mut attempt: impl FnMut() -> F,
) -> Result<T, CodecError> {
    match attempt().await {
        Err(e) if fault(&e) == Some((Fault::Transient, None)) => attempt().await,
        other => other,
    }
}

fn fault(e: &CodecError) -> Option<(Fault, Option<u16>)> {
    match e {
        CodecError::Registry(r) => Some((r.fault, r.status)),
        _ => None,
    }
}

#[tokio::test]
async fn a_500_at_registration_is_retryable_and_the_next_attempt_succeeds() {
    let (proxy, url) = registry_proxy().await;
    let encoder = EventEncoder::new(&url, &unique("registry-faults"), SCHEMA_JSON).unwrap();
    proxy.answer_http(500);
    let e = twice(|| encoder.warm_up()).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(fault(&e), Some((Fault::Transient, Some(500))));
    // The library this wraps cached that error for the life of the process.
    proxy.restore();
    let id = twice(|| encoder.warm_up()).await.expect("registers once the registry answers");
    assert!(id > 0);
}

#[tokio::test]
async fn a_cold_decoder_that_sees_a_500_decodes_the_same_record_once_the_registry_recovers() {
    let (proxy, url) = registry_proxy().await;
    let encoder = EventEncoder::new(&url, &unique("registry-faults"), SCHEMA_JSON).unwrap();
    let event = testkit::sample_device_synced("user-1", "device-1");
    let payload = encoder.encode(&event).await.unwrap();

    let decoder = EventDecoder::new(&url, schema()).unwrap();
    for (status, label) in [(500, "server error"), (503, "unavailable"), (429, "throttled")] {
        proxy.answer_http(status);
        let e = twice(|| decoder.decode::<DeviceSynced>(&payload)).await.unwrap_err();
        assert_eq!(fault(&e), Some((Fault::Transient, Some(status))), "{label}: {e}");
    }
    proxy.cut();
    let e = decoder.decode::<DeviceSynced>(&payload).await.unwrap_err();
    assert!(e.is_retryable(), "unreachable: {e}");

    proxy.restore();
    assert_eq!(twice(|| decoder.decode::<DeviceSynced>(&payload)).await.expect("decodes after recovery"), event);
    // Once fetched, the schema is cached: the registry going away changes nothing.
    proxy.cut();
    assert_eq!(decoder.decode::<DeviceSynced>(&payload).await.expect("decodes from the cache"), event);
}

#[tokio::test]
async fn an_id_the_registry_does_not_know_is_poison() {
    let decoder = EventDecoder::new(&testkit::schema_registry_url(), schema()).unwrap();
    let unknown = [0u8, 0x7f, 0xff, 0xff, 0xf0, 2, 4];
    let e = decoder.decode::<DeviceSynced>(&unknown).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert_eq!(fault(&e), Some((Fault::Poison, Some(404))));
}
