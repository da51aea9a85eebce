//! Settings from the environment, with defaults that match `make run`.

use std::time::Duration;

use anyhow::Context;

#[derive(Clone)]
pub struct Settings {
    /// Address the HTTP API listens on; port 0 picks a free one.
    pub listen_addr: String,
    pub kafka_bootstrap_servers: String,
    pub schema_registry_url: String,
    pub topic: String,
    /// HMAC secret for device and user tokens. Never logged.
    pub auth_token_secret: Secret,
    pub limits: Limits,
    /// How long a record may wait for the broker's acknowledgement before the reply is 503.
    pub delivery_timeout: Duration,
    /// Most records waiting in the producer's queue; past it, requests get 503 at once.
    pub producer_queue_max_messages: u32,
    /// Largest encoded event the producer sends (its `message.max.bytes`; the topic's
    /// `max.message.bytes` must be at least this). A larger one is 413: retrying cannot help.
    pub max_event_bytes: usize,
    pub producer: ProducerTuning,
    /// HTTP worker threads (actix); 0 means one per CPU.
    pub workers: usize,
    /// One successful request in this many gets an access-log line (every error always does);
    /// 0 logs none. At 10,000 syncs/s a line per request costs more than it tells.
    pub access_log_every: u64,
    /// Log lines as JSON objects instead of text.
    pub log_json: bool,
    /// The health-model database, read through a read-only pool by the read routes.
    pub read_database_url: String,
    pub read_pool_size: u32,
    /// Longest `wait` a read may ask for.
    pub read_max_wait: Duration,
    /// Longest date range of one `/days` request.
    pub read_max_days: u32,
}

/// Producer settings chosen by measurement (docs/ingest-api.md, "Producer tuning").
#[derive(Debug, Clone)]
pub struct ProducerTuning {
    /// `compression.type`: lz4 by default, which pays on a real network; `none` saves CPU on a
    /// single machine where the broker is on loopback.
    pub compression: String,
    /// `linger.ms`: how long a record may wait for others to share its request.
    pub linger_ms: u32,
    /// `batch.size` in bytes.
    pub batch_bytes: u32,
}

impl Default for ProducerTuning {
    fn default() -> Self {
        Self { compression: "lz4".into(), linger_ms: 2, batch_bytes: 1_000_000 }
    }
}

/// Kafka's default `message.max.bytes` (broker and producer), so the default works anywhere.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1_000_000;

/// Bounds on one command.
#[derive(Debug, Clone)]
pub struct Limits {
    /// After decompression.
    pub max_body_bytes: usize,
    pub max_samples_per_kind: usize,
    /// Samples older than this before the sync time are dropped.
    pub max_sample_age: Duration,
    /// Samples later than the sync time by more than this are dropped.
    pub future_tolerance: Duration,
    /// Most the phone's clock may differ from the server's; past it the command is 422.
    pub max_clock_skew: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 2 * 1024 * 1024,
            max_samples_per_kind: 50_000,
            max_sample_age: Duration::from_secs(30 * 24 * 3600),
            future_tolerance: Duration::from_secs(300),
            max_clock_skew: Duration::from_secs(24 * 3600),
        }
    }
}

/// A secret that does not print.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let defaults = Limits::default();
        let tuning = ProducerTuning::default();
        Ok(Self {
            listen_addr: var("INGEST_LISTEN_ADDR", "127.0.0.1:8080"),
            kafka_bootstrap_servers: var("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            schema_registry_url: var("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081"),
            topic: var("INGEST_TOPIC", events::DEVICE_SYNCED_TOPIC),
            auth_token_secret: auth_secret_from_env()?,
            limits: Limits {
                max_body_bytes: parse("INGEST_MAX_BODY_BYTES", defaults.max_body_bytes)?,
                max_samples_per_kind: parse("INGEST_MAX_SAMPLES_PER_KIND", defaults.max_samples_per_kind)?,
                max_sample_age: Duration::from_secs(
                    parse("INGEST_MAX_SAMPLE_AGE_DAYS", defaults.max_sample_age.as_secs() / 86_400)? * 86_400,
                ),
                future_tolerance: Duration::from_secs(parse(
                    "INGEST_FUTURE_TOLERANCE_SECONDS",
                    defaults.future_tolerance.as_secs(),
                )?),
                max_clock_skew: Duration::from_secs(parse(
                    "INGEST_MAX_CLOCK_SKEW_SECONDS",
                    defaults.max_clock_skew.as_secs(),
                )?),
            },
            delivery_timeout: Duration::from_millis(parse("INGEST_DELIVERY_TIMEOUT_MS", 5_000u64)?),
            producer_queue_max_messages: parse("INGEST_PRODUCER_QUEUE_MAX_MESSAGES", 10_000u32)?,
            max_event_bytes: parse("INGEST_MAX_EVENT_BYTES", DEFAULT_MAX_EVENT_BYTES)?,
            producer: ProducerTuning {
                compression: var("INGEST_PRODUCER_COMPRESSION", &tuning.compression),
                linger_ms: parse("INGEST_PRODUCER_LINGER_MS", tuning.linger_ms)?,
                batch_bytes: parse("INGEST_PRODUCER_BATCH_BYTES", tuning.batch_bytes)?,
            },
            workers: parse("INGEST_WORKERS", 0usize)?,
            access_log_every: parse("INGEST_ACCESS_LOG_EVERY", 1u64)?,
            log_json: var("LOG_FORMAT", "text").eq_ignore_ascii_case("json"),
            read_database_url: var("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fitness"),
            read_pool_size: parse("INGEST_READ_POOL_SIZE", 8u32)?,
            read_max_wait: Duration::from_millis(parse("INGEST_READ_MAX_WAIT_MS", 10_000u64)?),
            read_max_days: parse("INGEST_READ_MAX_DAYS", 366u32)?,
        })
    }
}

/// The token secret is required: a default would let anyone mint tokens for a forgotten deployment.
pub fn auth_secret_from_env() -> anyhow::Result<Secret> {
    match std::env::var("AUTH_TOKEN_SECRET") {
        Ok(s) if s.len() >= 16 => Ok(Secret::new(s)),
        Ok(_) => anyhow::bail!("AUTH_TOKEN_SECRET is shorter than 16 bytes; use a long random value"),
        Err(_) => anyhow::bail!(
            "AUTH_TOKEN_SECRET is not set; set it to a long random value (e.g. `openssl rand -hex 32`), the same for every replica"
        ),
    }
}

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn parse<T: std::str::FromStr + std::fmt::Display>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match std::env::var(name) {
        Ok(raw) => {
            raw.parse().with_context(|| format!("{name}={raw:?} is not valid; unset it to use the default {default}"))
        }
        Err(_) => Ok(default),
    }
}
