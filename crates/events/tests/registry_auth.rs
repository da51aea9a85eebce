//! The registry client against the authenticated test registry (`make test` starts it with a
//! credentials file and exports the writer's `user:password`): with credentials it registers and
//! fetches; without them, or with a wrong password or too weak a role, it gets a credentials
//! fault that is retried, never poison, and says what to set.

use events::device_synced::{schema, SCHEMA_JSON};
use events::registry::{BasicAuth, Fault, RegistryClient, USER_INFO_ENV};
use events::{DeviceSynced, EventDecoder, EventEncoder};
use testkit::unique;

fn writer() -> BasicAuth {
    testkit::registry_basic_auth().unwrap_or_else(|| panic!("{USER_INFO_ENV} is not set: run through `make test`"))
}

fn reader() -> BasicAuth {
    let info = std::env::var("TEST_SCHEMA_REGISTRY_READER_USER_INFO")
        .expect("TEST_SCHEMA_REGISTRY_READER_USER_INFO is not set: run through `make test`");
    BasicAuth::parse(&info).unwrap()
}

#[tokio::test]
async fn with_the_writer_s_credentials_the_client_registers_and_a_reader_fetches() {
    let url = testkit::schema_registry_url();
    let subject = format!("{}-value", unique("registry-auth"));
    let writer = RegistryClient::with_credentials(&url, Some(writer())).unwrap();
    let id = writer.register(&subject, SCHEMA_JSON).await.expect("the writer registers");
    let reader = RegistryClient::with_credentials(&url, Some(reader())).unwrap();
    let fetched = reader.schema(id).await.expect("the reader fetches by id");
    assert_eq!(fetched.canonical_form(), schema().canonical_form());
}

#[tokio::test]
async fn the_encoder_and_decoder_take_the_credentials_from_the_environment() {
    // RegistryClient::new, what ingest-api and the processor use, reads SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO.
    let url = testkit::schema_registry_url();
    // The test registry requires credentials, so the encoder's success below proves it sent them.
    let anonymous = RegistryClient::with_credentials(&url, None).unwrap();
    let refused = anonymous.register(&format!("{}-value", unique("registry-anon")), SCHEMA_JSON).await;
    assert_eq!(refused.map_err(|e| e.status), Err(Some(401)), "the test registry runs with authentication");
    let encoder = EventEncoder::new(&url, &unique("registry-auth"), SCHEMA_JSON).unwrap();
    let event = testkit::sample_device_synced("user-auth", "device-auth");
    let payload = encoder.encode(&event).await.expect("encodes with the environment's credentials");
    let decoder = EventDecoder::new(&url, schema()).unwrap();
    assert_eq!(decoder.decode::<DeviceSynced>(&payload).await.unwrap(), event);
}

#[tokio::test]
async fn refused_credentials_are_a_retried_configuration_fault_never_poison() {
    let url = testkit::schema_registry_url();
    let subject = format!("{}-value", unique("registry-auth"));
    let wrong = BasicAuth { user: writer().user, password: "not-the-password".into() };
    for (label, auth, status) in
        [("none", None, 401), ("wrong password", Some(wrong), 401), ("reader", Some(reader()), 403)]
    {
        let client = RegistryClient::with_credentials(&url, auth).unwrap();
        let e = client.register(&subject, SCHEMA_JSON).await.unwrap_err();
        assert_eq!((e.fault, e.status), (Fault::Credentials, Some(status)), "{label}: {e}");
        assert!(e.fault.is_retryable(), "{label}");
        assert!(e.to_string().contains(USER_INFO_ENV), "{label}: {e}");
    }
    // Fetching: a record needing the schema is retried (the processor holds it), not dead-lettered.
    let id =
        RegistryClient::with_credentials(&url, Some(writer())).unwrap().register(&subject, SCHEMA_JSON).await.unwrap();
    let e = RegistryClient::with_credentials(&url, None).unwrap().schema(id).await.unwrap_err();
    assert_eq!((e.fault, e.status), (Fault::Credentials, Some(401)), "{e}");
}
