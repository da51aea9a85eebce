//! Settings from the environment, with defaults that match `make run`.

use std::time::Duration;

use service_kit::env::{self, parse};

#[derive(Clone)]
pub struct Settings {
    /// Address the HTTP API listens on; port 0 picks a free one.
    pub listen_addr: String,
    pub kafka_bootstrap_servers: String,
    pub schema_registry_url: String,
    pub topic: String,
    /// The current HMAC secret of device and first-party user tokens (mints; verifies with the
    /// previous ones in `identity`), under its key id. Never logged.
    pub auth_token_secret: Secret,
    /// Token rotation, lifetime bound and the identity provider (docs/ingest-api.md, "Auth").
    pub identity: crate::auth::IdentitySettings,
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
    /// The health-model database, read through a read-only pool by the read routes.
    pub read_database_url: String,
    pub read_pool_size: u32,
    /// Longest `wait` a read may ask for.
    pub read_max_wait: Duration,
    /// Longest date range of one `/days` request.
    pub read_max_days: u32,
    /// Most reads waiting for a consistency token at once; past it a wait is 503 at once.
    pub read_max_waiters: usize,
    /// Most of them for one user, so a few users cannot take every place.
    pub read_max_waiters_per_user: usize,
    /// Most exports streaming at once; each holds a read connection.
    pub export_max_concurrent: usize,
    /// Live event streams (`GET /v1/users/{user_id}/events`): limits and keep-alive.
    pub live: crate::live::LiveSettings,
    /// Token buckets per device and per user (docs/ingest-api.md, "Rate limits").
    pub rate_limits: RateLimits,
}

/// One token bucket (GCRA): `per_second` sustained, `burst` at once. A `per_second` of 0 turns
/// the limit off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl RateLimit {
    pub const OFF: RateLimit = RateLimit { per_second: 0.0, burst: 0 };
}

/// The rate limits of ingest-api. The defaults are far above a real phone (a sync every few
/// minutes, a retry now and then, a backlog after days offline) and far below a stolen token
/// in a loop, which would otherwise take the whole ingest capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    /// POST syncs per device (keyed by user and device).
    pub device_post: RateLimit,
    /// POST syncs per user, over all their devices.
    pub user_post: RateLimit,
    /// Reads per user (the caller), over every read route.
    pub user_reads: RateLimit,
    /// Most keys one limiter keeps; past it (after a sweep) its state is dropped.
    pub max_keys: usize,
    /// How often keys whose bucket is full again are forgotten.
    pub sweep_interval: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            device_post: RateLimit { per_second: 1.0, burst: 60 },
            user_post: RateLimit { per_second: 2.0, burst: 120 },
            user_reads: RateLimit { per_second: 10.0, burst: 100 },
            max_keys: 1_000_000,
            sweep_interval: Duration::from_secs(30),
        }
    }
}

impl RateLimits {
    /// Every limit off (tests of other things; a deployment behind its own limiter).
    pub fn off() -> Self {
        Self { device_post: RateLimit::OFF, user_post: RateLimit::OFF, user_reads: RateLimit::OFF, ..Self::default() }
    }

    pub fn from_env() -> anyhow::Result<Self> {
        let d = Self::default();
        let limit = |name: &str, default: RateLimit| -> anyhow::Result<RateLimit> {
            Ok(RateLimit {
                per_second: parse(&format!("INGEST_RATE_LIMIT_{name}_PER_SECOND"), default.per_second)?,
                burst: parse(&format!("INGEST_RATE_LIMIT_{name}_BURST"), default.burst)?,
            })
        };
        Ok(Self {
            device_post: limit("DEVICE", d.device_post)?,
            user_post: limit("USER", d.user_post)?,
            user_reads: limit("READS", d.user_reads)?,
            max_keys: parse("INGEST_RATE_LIMIT_MAX_KEYS", d.max_keys)?,
            sweep_interval: env::seconds("INGEST_RATE_LIMIT_SWEEP_SECONDS", d.sweep_interval)?,
        })
    }
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

/// A secret that does not print. A token secret also has the key id tokens name it by (`kid`).
#[derive(Clone)]
pub struct Secret {
    value: String,
    key_id: Option<String>,
}

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self { value: s.into(), key_id: None }
    }
    pub fn with_key_id(key_id: impl Into<String>, s: impl Into<String>) -> Self {
        Self { value: s.into(), key_id: Some(key_id.into()) }
    }
    pub fn expose(&self) -> &[u8] {
        self.value.as_bytes()
    }
    /// The token key id (`default` for a secret given without one).
    pub fn key_id(&self) -> &str {
        self.key_id.as_deref().unwrap_or(crate::auth::DEFAULT_KID)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Settings {
    /// Every setting at its default (what `make run` uses), with the token secret, which has
    /// none. Tests start from it and change what they need.
    pub fn with_defaults(auth_token_secret: Secret) -> Self {
        Self {
            listen_addr: "127.0.0.1:8080".into(),
            kafka_bootstrap_servers: "127.0.0.1:9092".into(),
            schema_registry_url: "http://127.0.0.1:8081".into(),
            topic: events::DEVICE_SYNCED_TOPIC.into(),
            auth_token_secret,
            identity: crate::auth::IdentitySettings::default(),
            limits: Limits::default(),
            delivery_timeout: Duration::from_secs(5),
            producer_queue_max_messages: 10_000,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            producer: ProducerTuning::default(),
            workers: 0,
            access_log_every: 1,
            read_database_url: "postgres://postgres@127.0.0.1:5432/fitness".into(),
            read_pool_size: 8,
            read_max_wait: Duration::from_secs(10),
            read_max_days: 366,
            read_max_waiters: 1000,
            read_max_waiters_per_user: 20,
            export_max_concurrent: 2,
            live: crate::live::LiveSettings::default(),
            rate_limits: RateLimits::default(),
        }
    }

    pub fn from_env() -> anyhow::Result<Self> {
        let d = Self::with_defaults(auth_secret_from_env()?);
        Ok(Self {
            listen_addr: env::string("INGEST_LISTEN_ADDR", &d.listen_addr),
            kafka_bootstrap_servers: env::string("KAFKA_BOOTSTRAP_SERVERS", &d.kafka_bootstrap_servers),
            schema_registry_url: env::string("SCHEMA_REGISTRY_URL", &d.schema_registry_url),
            topic: env::string("INGEST_TOPIC", &d.topic),
            identity: crate::auth::IdentitySettings::from_env()?,
            limits: Limits {
                max_body_bytes: parse("INGEST_MAX_BODY_BYTES", d.limits.max_body_bytes)?,
                max_samples_per_kind: parse("INGEST_MAX_SAMPLES_PER_KIND", d.limits.max_samples_per_kind)?,
                max_sample_age: Duration::from_secs(
                    parse::<u64>("INGEST_MAX_SAMPLE_AGE_DAYS", d.limits.max_sample_age.as_secs() / 86_400)?
                        .saturating_mul(86_400),
                ),
                future_tolerance: env::seconds("INGEST_FUTURE_TOLERANCE_SECONDS", d.limits.future_tolerance)?,
                max_clock_skew: env::seconds("INGEST_MAX_CLOCK_SKEW_SECONDS", d.limits.max_clock_skew)?,
            },
            delivery_timeout: env::millis("INGEST_DELIVERY_TIMEOUT_MS", d.delivery_timeout)?,
            producer_queue_max_messages: parse("INGEST_PRODUCER_QUEUE_MAX_MESSAGES", d.producer_queue_max_messages)?,
            max_event_bytes: parse("INGEST_MAX_EVENT_BYTES", d.max_event_bytes)?,
            producer: ProducerTuning {
                compression: env::string("INGEST_PRODUCER_COMPRESSION", &d.producer.compression),
                linger_ms: parse("INGEST_PRODUCER_LINGER_MS", d.producer.linger_ms)?,
                batch_bytes: parse("INGEST_PRODUCER_BATCH_BYTES", d.producer.batch_bytes)?,
            },
            workers: parse("INGEST_WORKERS", d.workers)?,
            access_log_every: parse("INGEST_ACCESS_LOG_EVERY", d.access_log_every)?,
            read_database_url: env::string("DATABASE_URL", &d.read_database_url),
            read_pool_size: parse("INGEST_READ_POOL_SIZE", d.read_pool_size)?,
            read_max_wait: env::millis("INGEST_READ_MAX_WAIT_MS", d.read_max_wait)?,
            read_max_days: parse("INGEST_READ_MAX_DAYS", d.read_max_days)?,
            read_max_waiters: parse("INGEST_READ_MAX_WAITERS", d.read_max_waiters)?,
            read_max_waiters_per_user: parse("INGEST_READ_MAX_WAITERS_PER_USER", d.read_max_waiters_per_user)?,
            export_max_concurrent: parse("INGEST_EXPORT_MAX_CONCURRENT", d.export_max_concurrent)?,
            live: crate::live::LiveSettings {
                max_streams: parse("INGEST_EVENTS_MAX_STREAMS", d.live.max_streams)?,
                max_streams_per_user: parse("INGEST_EVENTS_MAX_STREAMS_PER_USER", d.live.max_streams_per_user)?,
                keepalive: env::millis("INGEST_EVENTS_KEEPALIVE_MS", d.live.keepalive)?,
                replay_max: parse("INGEST_EVENTS_REPLAY_MAX", d.live.replay_max)?,
            },
            rate_limits: RateLimits::from_env()?,
            auth_token_secret: d.auth_token_secret,
        })
    }
}

/// The secret new tokens are signed with: the first of `AUTH_TOKEN_SECRETS`, else
/// `AUTH_TOKEN_SECRET` (see [`crate::auth::settings::token_secrets_from_env`]). Required.
pub fn auth_secret_from_env() -> anyhow::Result<Secret> {
    Ok(crate::auth::settings::token_secrets_from_env()?.0)
}

/// Whether the host of a URL, given after its `scheme://`, is this machine: a connection there
/// crosses no network. Any `user:password@` and `:port` are skipped.
pub(crate) fn is_loopback_host(after_scheme: &str) -> bool {
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, port)) if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    ["127.0.0.1", "localhost", "[::1]"].contains(&host)
}
