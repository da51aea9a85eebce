//! Rebuilding the whole model from the log: a processor with its own consumer group reads the
//! topic from its earliest offset into a fresh database, and stops once every partition is
//! applied up to the high watermark it had when the rebuild started. The model is a function of
//! the log, so the rows equal the live ones for everything still in the topic's retention.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use diesel::prelude::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::{db, migrate, sql, Application};

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RebuildSummary {
    /// Records of the log read (applied, skipped or recorded as failed).
    pub records: i64,
    /// Per partition, the offset range rebuilt (`low..high`).
    pub partitions: BTreeMap<i32, (i64, i64)>,
    pub seconds: f64,
}

/// Each partition's (low, high) watermark in the broker now.
fn log_extent(settings: &Settings) -> anyhow::Result<BTreeMap<i32, (i64, i64)>> {
    let consumer: BaseConsumer =
        events::kafka::client_config(&settings.kafka_bootstrap_servers).create().context("creating a Kafka client")?;
    let timeout = Duration::from_secs(10);
    let partitions = events::kafka::topic_partitions(consumer.client(), &settings.topic, timeout)
        .map_err(|e| anyhow::anyhow!("{e}; is the broker at {} up?", settings.kafka_bootstrap_servers))?;
    let mut extent = BTreeMap::new();
    for partition in 0..i32::try_from(partitions)? {
        let (low, high) = consumer
            .fetch_watermarks(&settings.topic, partition, timeout)
            .with_context(|| format!("reading the offsets of {} partition {partition}", settings.topic))?;
        extent.insert(partition, (low, high));
    }
    Ok(extent)
}

/// Rebuilds into `settings.database_url` with consumer group `settings.group_id`, both of which
/// must be new. `on_progress` gets (records done, records in all) twice a second.
pub async fn rebuild(
    mut settings: Settings,
    shutdown: CancellationToken,
    mut on_progress: impl FnMut(i64, i64),
) -> anyhow::Result<RebuildSummary> {
    settings.recompute_on_start = false;
    settings.dead_letter = false;
    let pool = db::pool(&settings.database_url, 1);
    migrate(&pool).await.context("is PostgreSQL up and the database URL right?")?;
    {
        let pool = pool.clone();
        let used = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
            use crate::schema::{partition_watermarks, sync_status};
            let mut conn = pool.get()?;
            let statuses: i64 = sync_status::table.count().get_result(&mut conn)?;
            let watermarks: i64 = partition_watermarks::table.count().get_result(&mut conn)?;
            Ok(statuses + watermarks > 0)
        })
        .await??;
        anyhow::ensure!(!used, "the database already holds a model; rebuild into a new, empty database");
    }
    let extent = {
        let settings = settings.clone();
        tokio::task::spawn_blocking(move || log_extent(&settings)).await??
    };
    let total: i64 = extent.values().map(|(low, high)| high - low).sum();
    let started = std::time::Instant::now();
    let app = Application::build(settings.clone()).await?;
    let stop = shutdown.child_token();
    let run = tokio::spawn(app.run_until_stopped(stop.clone()));
    let done = loop {
        let (pool, topic) = (pool.clone(), settings.topic.clone());
        let watermarks = tokio::task::spawn_blocking(move || -> anyhow::Result<BTreeMap<i32, i64>> {
            let mut conn = pool.get()?;
            Ok(sql::watermarks(&mut conn, &topic)?)
        })
        .await?
        .unwrap_or_default();
        let applied: i64 = extent
            .iter()
            .map(|(p, (low, high))| watermarks.get(p).map_or(0, |&w| (w + 1).clamp(*low, *high) - low))
            .sum();
        on_progress(applied, total);
        if applied >= total {
            break true;
        }
        if run.is_finished() || stop.is_cancelled() {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    stop.cancel();
    run.await.context("the rebuild's processor panicked")??;
    anyhow::ensure!(
        done,
        "the rebuild was stopped before it reached the end of the log; start again with a new database"
    );
    Ok(RebuildSummary { records: total, partitions: extent, seconds: started.elapsed().as_secs_f64() })
}
