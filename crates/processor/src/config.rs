//! Settings from the environment, with defaults that match `make run`.

use std::time::Duration;

use service_kit::env::{self, EnvError};

#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka_bootstrap_servers: String,
    pub schema_registry_url: String,
    pub database_url: String,
    pub topic: String,
    pub dlq_topic: String,
    pub group_id: String,
    /// Kafka static membership (`group.instance.id`): a member restarted with the same id (a
    /// crashed container in the same pod) takes its partitions back at once, instead of after the
    /// dead member's session timeout. None: dynamic membership.
    pub group_instance_id: Option<String>,
    /// Address of `/healthz`, `/readyz` and `/metrics`; port 0 picks a free one.
    pub ops_addr: String,
    pub db_pool_size: u32,
    /// Most events applied in one database transaction.
    pub batch_max_events: usize,
    /// How long a batch waits to fill before it is applied anyway.
    pub batch_max_wait: Duration,
    /// Memory for the users' in-memory model (canonical day samples and recent series).
    pub cache_budget_bytes: usize,
    /// Longest dense series a user may have, and farthest a sample may lie from its ingest time.
    pub max_series_days: u64,
    /// librdkafka's `max.poll.interval.ms`: a member that does not poll for this long leaves the
    /// group. The worker keeps polling (partitions paused) while it retries, so outages longer
    /// than this do not cost a rebalance.
    pub max_poll_interval: Duration,
    /// The partitions `create-topics` makes, their replication factor and `min.insync.replicas`.
    pub topic_partitions: i32,
    pub topic_replication: i32,
    pub topic_min_insync_replicas: i32,
    /// `retention.ms` of the topics `create-topics` makes: how long raw events (health data)
    /// stay in Kafka, and so when an erasure is complete there too.
    pub topic_retention_ms: i64,
    /// Whether `run` recomputes, in the background, the users whose rows an older health model
    /// version computed.
    pub recompute_on_start: bool,
    /// Whether poison records go to the DLQ; false in `rebuild`, whose poison records the live
    /// processor dead-lettered already (not from the environment).
    pub dead_letter: bool,
}

/// Every setting at its default (what `make run` uses); tests start from it.
impl Default for Settings {
    fn default() -> Self {
        Self {
            kafka_bootstrap_servers: "127.0.0.1:9092".into(),
            schema_registry_url: "http://127.0.0.1:8081".into(),
            database_url: "postgres://postgres@127.0.0.1:5432/fitness".into(),
            topic: events::DEVICE_SYNCED_TOPIC.into(),
            dlq_topic: events::DEVICE_SYNCED_DLQ_TOPIC.into(),
            group_id: "processor".into(),
            group_instance_id: None,
            ops_addr: "127.0.0.1:9090".into(),
            db_pool_size: 8,
            batch_max_events: 2000,
            batch_max_wait: Duration::from_millis(10),
            cache_budget_bytes: 512 << 20,
            max_series_days: 1096,
            max_poll_interval: Duration::from_millis(300_000),
            topic_partitions: 6,
            topic_replication: 1,
            topic_min_insync_replicas: 1,
            topic_retention_ms: 604_800_000,
            recompute_on_start: true,
            dead_letter: true,
        }
    }
}

impl Settings {
    /// The settings of the environment (README, "Configuration"); unset or empty means default.
    pub fn from_env() -> Result<Self, EnvError> {
        let d = Self::default();
        Ok(Self {
            kafka_bootstrap_servers: env::string("KAFKA_BOOTSTRAP_SERVERS", &d.kafka_bootstrap_servers),
            schema_registry_url: env::string("SCHEMA_REGISTRY_URL", &d.schema_registry_url),
            database_url: env::string("DATABASE_URL", &d.database_url),
            topic: env::string("PROCESSOR_TOPIC", &d.topic),
            dlq_topic: env::string("PROCESSOR_DLQ_TOPIC", &d.dlq_topic),
            group_id: env::string("PROCESSOR_GROUP_ID", &d.group_id),
            group_instance_id: env::optional("PROCESSOR_GROUP_INSTANCE_ID"),
            ops_addr: env::string("PROCESSOR_OPS_ADDR", &d.ops_addr),
            db_pool_size: env::parse("PROCESSOR_DB_POOL_SIZE", d.db_pool_size)?,
            batch_max_events: env::parse("PROCESSOR_BATCH_MAX_EVENTS", d.batch_max_events)?,
            batch_max_wait: env::millis("PROCESSOR_BATCH_MAX_WAIT_MS", d.batch_max_wait)?,
            cache_budget_bytes: env::parse::<usize>("PROCESSOR_CACHE_BUDGET_MB", d.cache_budget_bytes >> 20)?
                .saturating_mul(1 << 20),
            max_series_days: env::parse("PROCESSOR_MAX_SERIES_DAYS", d.max_series_days)?,
            max_poll_interval: env::millis("PROCESSOR_MAX_POLL_INTERVAL_MS", d.max_poll_interval)?,
            topic_partitions: env::parse("PROCESSOR_TOPIC_PARTITIONS", d.topic_partitions)?,
            topic_replication: env::parse("PROCESSOR_TOPIC_REPLICATION", d.topic_replication)?,
            topic_min_insync_replicas: env::parse("PROCESSOR_TOPIC_MIN_INSYNC_REPLICAS", d.topic_min_insync_replicas)?,
            topic_retention_ms: env::parse("PROCESSOR_TOPIC_RETENTION_MS", d.topic_retention_ms)?,
            recompute_on_start: env::parse("PROCESSOR_RECOMPUTE_ON_START", d.recompute_on_start)?,
            dead_letter: d.dead_letter,
        })
    }
}
