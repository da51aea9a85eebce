//! The Schema Registry client: schema_registry_converter's calls, with our own cache and our own
//! error classification.
//!
//! schema_registry_converter's encoders and decoders cache every error per schema id for the
//! life of the process, and count only transport errors and 502/503 as retriable. One 500 from
//! a registry whose database blinked then turned into a permanent failure: a processor
//! dead-lettered every event with that id, and an ingest-api never became ready. Here only
//! successes are cached, and the HTTP status decides what a failure means.
//!
//! Credentials follow Confluent's `basic.auth.user.info` convention: `user:password` in
//! `SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO`, sent as HTTP Basic auth on every call.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use apache_avro::Schema;
use schema_registry_converter::async_impl::schema_registry::{get_schema_by_id, post_schema, SrSettings};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};

/// How long one call to the registry may take before it counts as failed.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(5);

/// The environment variable with the registry credentials, `user:password`.
pub const USER_INFO_ENV: &str = "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO";

/// HTTP Basic credentials for the registry. Debug never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth").field("user", &self.user).field("password", &"<redacted>").finish()
    }
}

impl BasicAuth {
    /// Parses `user:password` (the password may contain ':').
    pub fn parse(user_info: &str) -> Result<Self, String> {
        match user_info.split_once(':') {
            Some((user, password)) if !user.is_empty() => {
                Ok(Self { user: user.to_owned(), password: password.to_owned() })
            }
            _ => Err(format!("{USER_INFO_ENV} must be `user:password`")),
        }
    }

    /// From `SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO`; None when unset or empty.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var(USER_INFO_ENV) {
            Ok(v) if !v.is_empty() => Self::parse(&v).map(Some),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!("{USER_INFO_ENV} is not UTF-8")),
        }
    }
}

/// What a registry failure means for whoever needed the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The registry is down, overloaded or misconfigured (5xx, 429, transport, an answer that
    /// is not the registry's): retry later; the record is fine.
    Transient,
    /// The registry refused our credentials (401) or their role (403): a configuration error of
    /// this service, not of the record. Retrying is still right (never dead-letter for it: the
    /// data is fine), but only an operator fixing the credentials ends it; the message says what
    /// to set.
    Credentials,
    /// The registry answered that the schema does not exist or cannot be used (404, 422), or
    /// served a schema that is not Avro: a record needing it can never be decoded.
    Poison,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RegistryError {
    pub fault: Fault,
    /// The registry's HTTP status, when it answered.
    pub status: Option<u16>,
    message: String,
}

impl Fault {
    /// Worth retrying: everything but poison.
    pub fn is_retryable(self) -> bool {
        self != Fault::Poison
    }

    /// The `fault` label of [`error_counter`].
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Transient => "transient",
            Fault::Credentials => "credentials",
            Fault::Poison => "poison",
        }
    }
}

/// Failed registry calls of this process, by [`Fault`]: `schema_registry_client_errors_total`.
/// One counter for every client of the process (ingest-api has two encoders); each service
/// registers it in its own registry, under its prefix.
pub fn error_counter() -> prometheus::IntCounterVec {
    static ERRORS: std::sync::LazyLock<prometheus::IntCounterVec> = std::sync::LazyLock::new(|| {
        let counter = prometheus::IntCounterVec::new(
            prometheus::Opts::new("schema_registry_client_errors_total", "Failed Schema Registry calls, by fault"),
            &["fault"],
        )
        .expect("valid metric");
        for fault in [Fault::Transient, Fault::Credentials, Fault::Poison] {
            counter.with_label_values(&[fault.as_str()]);
        }
        counter
    });
    ERRORS.clone()
}

/// Counts `e` in [`error_counter`].
fn count(e: &RegistryError) {
    error_counter().with_label_values(&[e.fault.as_str()]).inc();
}

impl RegistryError {
    fn from_src(what: &str, e: &SRCError) -> Self {
        let status = http_status(e);
        let fault = classify(e.retriable, status);
        let cause = e.cause.as_deref().map(|c| format!(" ({c})")).unwrap_or_default();
        let hint = match status {
            Some(401) => format!(
                "; configuration error: the registry refused the credentials: set {USER_INFO_ENV}=user:password \
                 for a registry user (it is {})",
                if std::env::var_os(USER_INFO_ENV).is_some_and(|v| !v.is_empty()) { "set" } else { "not set" }
            ),
            Some(403) => format!(
                "; configuration error: the registry user in {USER_INFO_ENV} lacks the role for this (reading \
                 schemas needs reader, registering needs writer)"
            ),
            _ => String::new(),
        };
        Self { fault, status, message: format!("{what}: {}{cause}{hint}", e.error) }
    }

    fn poison(message: String) -> Self {
        Self { fault: Fault::Poison, status: None, message }
    }
}

/// 404 and 422 say the schema is not there or not acceptable: poison. 401 and 403 are our
/// credentials. Everything else (5xx, 429, transport, an unreadable answer) may pass, so it is
/// retried.
pub fn classify(retriable: bool, status: Option<u16>) -> Fault {
    match status {
        _ if retriable => Fault::Transient,
        Some(401 | 403) => Fault::Credentials,
        Some(404 | 422) => Fault::Poison,
        _ => Fault::Transient,
    }
}

/// schema_registry_converter keeps the status only in its message ("… failed with status 500
/// Internal Server Error"); the crate is pinned, and a test below holds that format.
fn http_status(e: &SRCError) -> Option<u16> {
    let (_, rest) = e.error.split_once("failed with status ")?;
    rest.get(..3)?.parse().ok()
}

/// Registry calls with a success-only cache: schemas by id, and ids by registered schema.
pub struct RegistryClient {
    settings: SrSettings,
    by_id: RwLock<HashMap<u32, Arc<Schema>>>,
    registered: RwLock<HashMap<(String, String), u32>>,
}

impl RegistryClient {
    /// A client with the credentials of `SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO`, if set.
    pub fn new(registry_url: &str) -> Result<Self, RegistryError> {
        let auth =
            BasicAuth::from_env().map_err(|e| RegistryError { fault: Fault::Credentials, status: None, message: e })?;
        Self::with_credentials(registry_url, auth)
    }

    /// A client with these credentials (None: anonymous), whatever the environment says.
    pub fn with_credentials(registry_url: &str, auth: Option<BasicAuth>) -> Result<Self, RegistryError> {
        let mut builder = SrSettings::new_builder(registry_url.to_owned());
        builder.set_timeout(REGISTRY_TIMEOUT).no_proxy();
        if let Some(auth) = &auth {
            builder.set_basic_authorization(&auth.user, Some(&auth.password));
        }
        let settings = builder.build().map_err(|e| RegistryError::from_src("configuring the registry client", &e))?;
        Ok(Self { settings, by_id: RwLock::default(), registered: RwLock::default() })
    }

    /// The writer schema with this id, parsed. Cached once fetched; failures are not cached, and
    /// each is counted in [`error_counter`].
    pub async fn schema(&self, id: u32) -> Result<Arc<Schema>, RegistryError> {
        if let Some(s) = self.by_id.read().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Ok(s.clone());
        }
        let schema = Arc::new(self.fetch(id).await.inspect_err(count)?);
        self.by_id.write().unwrap_or_else(|p| p.into_inner()).insert(id, schema.clone());
        Ok(schema)
    }

    /// Schema `id` from the registry, parsed and checked.
    async fn fetch(&self, id: u32) -> Result<Schema, RegistryError> {
        let registered = get_schema_by_id(id, &self.settings)
            .await
            .map_err(|e| RegistryError::from_src(&format!("fetching schema {id}"), &e))?;
        if registered.schema_type != SchemaType::Avro {
            return Err(RegistryError::poison(format!("schema {id} is {:?}, not Avro", registered.schema_type)));
        }
        if !registered.references.is_empty() {
            return Err(RegistryError::poison(format!(
                "schema {id} has references, which this reader does not resolve"
            )));
        }
        // apache-avro 0.22 panics on some schemas (an attribute named like a keyword holding a
        // non-schema): in parse_str when a default does not fit, and always in canonical_form,
        // which the decoder computes. A schema from another registry must not panic the consumer.
        let parsed = std::panic::catch_unwind(|| {
            Schema::parse_str(&registered.schema).inspect(|s| {
                s.canonical_form();
            })
        });
        match parsed {
            Ok(Ok(schema)) => Ok(schema),
            Ok(Err(e)) => Err(RegistryError::poison(format!("schema {id} from the registry is not valid Avro: {e}"))),
            Err(_) => {
                Err(RegistryError::poison(format!("schema {id} from the registry cannot be processed by apache-avro")))
            }
        }
    }

    /// Registers `schema_json` under `subject` (or finds it) and returns its id.
    pub async fn register(&self, subject: &str, schema_json: &str) -> Result<u32, RegistryError> {
        let key = (subject.to_owned(), schema_json.to_owned());
        if let Some(id) = self.registered.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(*id);
        }
        let supplied = SuppliedSchema::new(None, SchemaType::Avro, schema_json.to_owned());
        let registered = post_schema(&self.settings, subject.to_owned(), supplied)
            .await
            .map_err(|e| RegistryError::from_src(&format!("registering a schema under {subject}"), &e))
            .inspect_err(count)?;
        self.registered.write().unwrap_or_else(|p| p.into_inner()).insert(key, registered.id);
        Ok(registered.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: &str) -> SRCError {
        SRCError::non_retryable_with_cause(
            "couldn't parse schema registry error json",
            &format!("HTTP request to schema registry failed with status {status}"),
        )
    }

    /// Nothing listens on port 1: the lookup and the registration each fail once, transient,
    /// and each is counted (the counter is the process's, so other tests may add to it too).
    #[tokio::test]
    async fn every_failed_call_is_counted_by_its_fault() {
        let transient = || error_counter().with_label_values(&[Fault::Transient.as_str()]).get();
        let client = RegistryClient::with_credentials("http://127.0.0.1:1", None).unwrap();
        let before = transient();
        assert_eq!(client.schema(7).await.map(|_| ()).unwrap_err().fault, Fault::Transient);
        assert_eq!(client.register("s-value", "\"string\"").await.unwrap_err().fault, Fault::Transient);
        assert!(transient() >= before + 2, "{} then {}", before, transient());
    }

    #[test]
    fn the_status_is_read_from_the_library_s_message() {
        assert_eq!(http_status(&answered("500 Internal Server Error")), Some(500));
        assert_eq!(http_status(&answered("404 Not Found")), Some(404));
        assert_eq!(http_status(&SRCError::non_retryable_without_cause("Could not get id from response")), None);
    }

    #[test]
    fn server_errors_throttling_and_transport_are_transient() {
        for status in ["500 Internal Server Error", "503 Service Unavailable", "429 Too Many Requests"] {
            let e = RegistryError::from_src("fetching schema 1", &answered(status));
            assert_eq!(e.fault, Fault::Transient, "{status}");
        }
        let transport = SRCError::retryable_with_cause("connection refused", "could not reach the registry");
        assert_eq!(RegistryError::from_src("fetching schema 1", &transport).fault, Fault::Transient);
        // An answer that is not the registry's (a proxy's page) may pass too.
        let unreadable = SRCError::non_retryable_without_cause("could not parse to RawRegisteredSchema");
        assert_eq!(RegistryError::from_src("fetching schema 1", &unreadable).fault, Fault::Transient);
    }

    #[test]
    fn refused_credentials_are_a_retried_configuration_error_that_says_what_to_set() {
        for status in ["401 Unauthorized", "403 Forbidden"] {
            let e = RegistryError::from_src("fetching schema 1", &answered(status));
            assert_eq!(e.fault, Fault::Credentials, "{status}");
            assert!(e.fault.is_retryable(), "never dead-letter a record for our own credentials");
            assert!(e.to_string().contains(USER_INFO_ENV), "{e}");
        }
        assert!(!Fault::Poison.is_retryable());
    }

    #[test]
    fn user_info_is_user_colon_password() {
        let a = BasicAuth::parse("svc:pa:ss").unwrap();
        assert_eq!((a.user.as_str(), a.password.as_str()), ("svc", "pa:ss"));
        assert!(!format!("{a:?}").contains("pa:ss"));
        assert!(BasicAuth::parse("no-colon").is_err());
        assert!(BasicAuth::parse(":password").is_err());
    }

    #[test]
    fn not_found_and_unprocessable_are_poison() {
        for status in ["404 Not Found", "422 Unprocessable Entity"] {
            let e = RegistryError::from_src("fetching schema 1", &answered(status));
            assert_eq!(e.fault, Fault::Poison, "{status}");
            assert_eq!(e.status, Some(status[..3].parse().unwrap()));
        }
    }
}
