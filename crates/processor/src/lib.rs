//! The processor: consumes DeviceSynced in its own consumer group and writes to PostgreSQL only.
//!
//! The public API is deliberate and small: [`Application`] (the service), [`config`], [`db`]
//! (the pool and the migrations), [`schema`] (the tables, shared with readers), [`topics`]
//! (`create-topics`), [`migrate`], [`adopt_live_topic`], [`apply_in_request`] (the bench
//! baseline's write) and [`local_midnight_ms`]. Everything else is how the processor works
//! inside, free to change.

mod apply;
mod cache;
mod chunk;
pub mod config;
mod consumer;
mod day_state;
pub mod db;
mod dead_letter;
mod erasure;
mod incarnation;
mod metrics;
mod ops;
pub use model_schema as schema;
mod series;
mod sql;
mod sync_outcome;
pub mod topics;
mod worker;

pub use chunk::local_midnight_ms;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::dev::Server;
use anyhow::Context;
use log::info;
use service_kit::readiness::Condition;
use tokio_util::sync::CancellationToken;

use crate::cache::ModelCache;
use crate::config::Settings;
use crate::db::PgPool;
use crate::metrics::Metrics;
use crate::worker::Worker;

pub struct Application {
    ops_port: u16,
    ops_server: Server,
    worker: Worker,
}

impl Application {
    /// Migrates the database, joins the consumer group and binds the ops endpoints.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let pool = db::counting_pool(&settings.database_url, settings.db_pool_size, metrics.sql_statements.clone());
        let migrated = migrate(&pool).await?;
        if !migrated.is_empty() {
            info!("applied migrations: {}", migrated.join(", "));
        }
        let cache = Arc::new(Mutex::new(ModelCache::new(settings.cache_budget_bytes, metrics.cache.clone())));
        let consumer =
            Arc::new(consumer::consumer(&settings, &metrics, cache.clone()).context("creating the Kafka consumer")?);
        let dlq = dead_letter::producer(&settings).context("creating the dead-letter producer")?;
        let decoder = events::EventDecoder::new(&settings.schema_registry_url, events::device_synced::schema())?;
        let listener = TcpListener::bind(&settings.ops_addr)
            .with_context(|| format!("binding the ops endpoints to {}", settings.ops_addr))?;
        let ops_port = listener.local_addr()?.port();
        let processing = Condition::ok();
        // Nothing is applied before the topic's incarnation has been compared with the stored one.
        let topic = Condition::failing("the topic's incarnation has not been checked yet");
        let ops_server = ops::serve(
            listener,
            ops::OpsState {
                pool: pool.clone(),
                consumer: consumer.clone(),
                topic_name: settings.topic.clone(),
                metrics: metrics.clone(),
                processing: processing.clone(),
                topic: topic.clone(),
            },
        )?;
        info!("ops endpoints on http://{}", settings.ops_addr.replace(":0", &format!(":{ops_port}")));
        Ok(Self {
            ops_port,
            ops_server,
            worker: Worker { settings, consumer, decoder, dlq, pool, cache, metrics, processing, topic },
        })
    }

    /// The port of the ops endpoints (`/healthz`, `/readyz`, `/metrics`).
    pub fn port(&self) -> u16 {
        self.ops_port
    }

    /// Consumes until `shutdown` fires: then the current batch is finished, its offsets
    /// committed, the group left, and the ops endpoints stopped.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        // The ops endpoints keep answering (probes, the last scrape) until the worker has finished.
        let stop_ops = CancellationToken::new();
        let ops = tokio::spawn(service_kit::http::serve_until_cancelled(self.ops_server, stop_ops.clone()));
        let result = self.worker.run(shutdown).await;
        stop_ops.cancel();
        let _ = ops.await;
        result
    }
}

/// `processor adopt-topic`: binds the watermarks to the live topic and clears the old ones.
pub async fn adopt_live_topic(settings: &Settings) -> anyhow::Result<incarnation::Incarnation> {
    let pool = db::pool(&settings.database_url, 1);
    migrate(&pool).await.context("is PostgreSQL up and DATABASE_URL right?")?;
    let (topic, bootstrap) = (settings.topic.clone(), settings.kafka_bootstrap_servers.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<incarnation::Incarnation> {
        use rdkafka::producer::Producer;
        let client: rdkafka::producer::BaseProducer = events::kafka::client_config(&bootstrap).create()?;
        let live = incarnation::live(client.client(), &topic)
            .map_err(|e| anyhow::anyhow!("{e}; is the broker at {bootstrap} up?"))?;
        let mut conn = pool.get()?;
        incarnation::adopt(&mut conn, &topic, &live, true)?;
        Ok(live)
    })
    .await?
}

/// Applies one DeviceSynced to the health model in one transaction, outside any consumer: no log
/// position, no watermark, a cold cache. The in-request write of `baseline`, the architecture
/// `make bench` measures this one against; the processor itself never calls it. Blocking.
pub fn apply_in_request(conn: &mut diesel::PgConnection, event: events::DeviceSynced) -> anyhow::Result<()> {
    use crate::apply::{ConsumedSync, ModelWriter};
    use crate::sync_outcome::{Position, SyncOutcome};
    let outcome = SyncOutcome::processed(&event, Position { partition: -1, offset: -1 }).map_err(anyhow::Error::msg)?;
    let cache = Mutex::new(ModelCache::new(64 << 20, cache::CacheMetrics::unregistered()));
    let writer = ModelWriter {
        topic: "baseline",
        cache: &cache,
        max_series_days: Settings::default().max_series_days,
        watermarked: false,
    };
    writer.apply(conn, -1, -1, &[ConsumedSync { outcome, event: Some(event) }.into()])?;
    Ok(())
}

/// Runs the embedded migrations on a blocking thread.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || db::run_migrations(&pool)).await?
}
