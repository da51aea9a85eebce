//! The processor: consumes DeviceSynced in its own consumer group and writes to PostgreSQL only.
//!
//! The public API is deliberate and small: [`Application`] (the service), [`config`], [`db`]
//! (the pool and the migrations), [`schema`] (the tables, shared with readers), [`topics`]
//! (`create-topics`), [`migrate`], [`adopt_live_topic`], [`apply_in_request`] (the bench
//! baseline's write), [`local_midnight_ms`], and the `recompute` and `rebuild` commands
//! ([`recompute_users`], [`rebuild()`]). Everything else is how the processor works
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
mod event_trace;
mod incarnation;
mod metrics;
mod ops;
mod rebuild;
mod recompute;
pub use model_schema as schema;
mod series;
mod sql;
mod sync_outcome;
pub mod topics;
mod worker;

pub use chunk::local_midnight_ms;
pub use rebuild::{rebuild, RebuildSummary};
pub use recompute::Scope as RecomputeScope;

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
        let pool = db::counting_pool(
            &settings.database_url,
            settings.db_pool_size,
            metrics.sql_statements.clone(),
            &metrics.pools,
        );
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
        // Rows of an older model version are recomputed beside live processing (see recompute).
        let stop_recompute = shutdown.child_token();
        let recompute = self.worker.settings.recompute_on_start.then(|| {
            tokio::spawn(recompute::in_background(
                self.worker.pool.clone(),
                self.worker.settings.topic.clone(),
                self.worker.settings.max_series_days,
                self.worker.cache.clone(),
                self.worker.metrics.clone(),
                stop_recompute.clone(),
            ))
        });
        let result = self.worker.run(shutdown).await;
        stop_recompute.cancel();
        if let Some(recompute) = recompute {
            let _ = recompute.await;
        }
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

/// What `processor recompute` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecomputeSummary {
    pub users: usize,
    /// Users another process had brought up to date meanwhile.
    pub already_current: usize,
    /// Users whose data cannot be computed (logged; their rows keep their version).
    pub skipped: usize,
    pub user_days: usize,
}

/// `processor recompute`: recomputes the users of `scope` from their stored samples, one
/// transaction each, on `jobs` connections in parallel, beside running processors (see the
/// recompute module), with a progress bar on a terminal and a line every 10 s otherwise (a
/// Kubernetes Job's log).
pub async fn recompute_users(
    settings: &Settings,
    scope: RecomputeScope,
    jobs: usize,
) -> anyhow::Result<RecomputeSummary> {
    use std::io::IsTerminal;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let jobs = jobs.max(1);
    let pool = db::pool(&settings.database_url, u32::try_from(jobs).unwrap_or(u32::MAX));
    migrate(&pool).await.context("is PostgreSQL up and DATABASE_URL right?")?;
    let (topic, max_series_days) = (settings.topic.clone(), settings.max_series_days);
    tokio::task::spawn_blocking(move || -> anyhow::Result<RecomputeSummary> {
        let only_if_behind = scope == RecomputeScope::Behind;
        let users = {
            let mut conn = pool.get().context("connecting to PostgreSQL")?;
            recompute::users(&mut conn, &scope)?
        };
        let bar = indicatif::ProgressBar::new(users.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} users, {per_sec}, eta {eta} {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        let terminal = std::io::stderr().is_terminal();
        let next = AtomicUsize::new(0);
        let totals = Mutex::new((RecomputeSummary::default(), std::time::Instant::now()));
        // Each job takes the next user until none is left; the first error stops them all.
        std::thread::scope(|scope| -> anyhow::Result<()> {
            let workers: Vec<_> = (0..jobs)
                .map(|_| {
                    scope.spawn(|| -> anyhow::Result<()> {
                        let mut conn = pool.get().context("connecting to PostgreSQL")?;
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(user) = users.get(i) else { return Ok(()) };
                            let done = match recompute::recompute_user(
                                &mut conn,
                                &topic,
                                user,
                                only_if_behind,
                                max_series_days,
                                None,
                            ) {
                                Ok(done) => Some(done),
                                // The data's fault: this user only.
                                Err(e) if e.may_be_poison() => {
                                    bar.suspend(|| eprintln!("recompute: user {user} skipped: {e}"));
                                    None
                                }
                                Err(e) => {
                                    next.store(users.len(), Ordering::Relaxed);
                                    return Err(anyhow::anyhow!("recomputing user {user}: {e}"));
                                }
                            };
                            let mut totals = totals.lock().unwrap_or_else(|p| p.into_inner());
                            let (summary, last_line) = &mut *totals;
                            summary.users += 1;
                            match done {
                                Some(done) => {
                                    summary.user_days += done.series_days;
                                    summary.already_current += usize::from(!done.done);
                                }
                                None => summary.skipped += 1,
                            }
                            bar.inc(1);
                            bar.set_message(format!("{} user-days", summary.user_days));
                            if !terminal && last_line.elapsed() >= std::time::Duration::from_secs(10) {
                                *last_line = std::time::Instant::now();
                                eprintln!(
                                    "recompute: {} of {} users, {} user-days",
                                    summary.users,
                                    users.len(),
                                    summary.user_days
                                );
                            }
                        }
                    })
                })
                .collect();
            for worker in workers {
                worker.join().map_err(|_| anyhow::anyhow!("a recompute job panicked"))??;
            }
            Ok(())
        })?;
        bar.finish_and_clear();
        let (summary, _) = totals.into_inner().unwrap_or_else(|p| p.into_inner());
        Ok(summary)
    })
    .await?
}

/// Runs the embedded migrations on a blocking thread.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || db::run_migrations(&pool)).await?
}
