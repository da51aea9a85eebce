//! Prometheus metrics of the processor.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::cache::CacheMetrics;

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Events whose effects were committed, by outcome (`applied`, `skipped_duplicate`,
    /// `skipped_erased`: a sync of a user whose data was erased after it, `dead_lettered`).
    pub events: IntCounterVec,
    /// Erasures carried out (a user's rows deleted and a receipt recorded).
    pub erasures: IntCounter,
    /// Events per database transaction.
    pub batch_events: Histogram,
    /// Time from a batch's first event received to its transaction committed.
    pub batch_seconds: Histogram,
    /// Ingest time of an event to the commit of its effects: the freshness lag readers see.
    pub end_to_end_lag_seconds: Histogram,
    pub retries: IntCounter,
    /// Records behind the high watermark, per partition (librdkafka statistics, every 5 s).
    pub consumer_lag: IntGaugeVec,
    /// Statements sent to PostgreSQL, BEGIN and COMMIT included.
    pub sql_statements: IntCounter,
    pub cache: CacheMetrics,
    /// 1 while the topic is not the incarnation the watermarks belong to (nothing is applied).
    pub topic_incarnation_mismatch: IntGauge,
    /// 1 while consumption is paused because a dependency is down (the consumer keeps polling).
    pub paused: IntGauge,
    /// Users recomputed from their stored samples (a model version bump, in the background).
    pub recompute_users: IntCounter,
    /// Users still to recompute in the background.
    pub recompute_users_remaining: IntGauge,
    /// Partition assignments and revocations seen: a member that leaves and rejoins shows here.
    pub rebalances: IntCounterVec,
    /// 1 while the worker applies events (set at each scrape; see `ops::metrics_text`).
    pub ready: IntGauge,
    /// Saturation of the database pool (`processor_db_pool_*`).
    pub pools: service_kit::db::PoolMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = service_kit::metrics::registry("processor");
        let pools = service_kit::db::PoolMetrics::new();
        let ready = IntGauge::new("ready", "1 while the worker applies events: no failure retried, the topic checked")
            .expect("valid metric");
        let events = IntCounterVec::new(Opts::new("events_total", "Events finished, by outcome"), &["outcome"])
            .expect("valid metric");
        let batch_events = Histogram::with_opts(
            HistogramOpts::new("batch_events", "Events per database transaction")
                .buckets(vec![1.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0]),
        )
        .expect("valid metric");
        let batch_seconds =
            Histogram::with_opts(HistogramOpts::new("batch_seconds", "Time to decode and commit one batch"))
                .expect("valid metric");
        let end_to_end_lag_seconds = Histogram::with_opts(
            HistogramOpts::new("end_to_end_lag_seconds", "Event ingest time to commit of its effects")
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]),
        )
        .expect("valid metric");
        let retries =
            IntCounter::new("retries_total", "Batches retried after a transient failure").expect("valid metric");
        let consumer_lag =
            IntGaugeVec::new(Opts::new("consumer_lag", "Records behind the high watermark"), &["topic", "partition"])
                .expect("valid metric");
        let erasures =
            IntCounter::new("erasures_total", "Users whose data was erased (receipts written)").expect("valid metric");
        let sql_statements =
            IntCounter::new("sql_statements_total", "Statements sent to PostgreSQL").expect("valid metric");
        let cache = CacheMetrics {
            bytes: IntGauge::new("cache_bytes", "Approximate memory of the in-memory model").expect("valid metric"),
            users: IntGauge::new("cache_users", "Users held in the in-memory model").expect("valid metric"),
            hits: IntCounter::new("cache_hits_total", "Users of a batch found in memory").expect("valid metric"),
            misses: IntCounter::new("cache_misses_total", "Users of a batch loaded from the database")
                .expect("valid metric"),
            evictions: IntCounter::new("cache_evictions_total", "Users evicted to stay within the budget")
                .expect("valid metric"),
            invalidations: IntCounter::new(
                "cache_invalidations_total",
                "Partitions whose cached users were dropped because another writer moved the watermark",
            )
            .expect("valid metric"),
        };
        let topic_incarnation_mismatch = IntGauge::new(
            "topic_incarnation_mismatch",
            "1 while the live topic is not the incarnation the stored watermarks belong to",
        )
        .expect("valid metric");
        let paused = IntGauge::new("paused", "1 while consumption is paused during retries").expect("valid metric");
        let rebalances = IntCounterVec::new(Opts::new("rebalances_total", "Rebalance events, by kind"), &["kind"])
            .expect("valid metric");
        let recompute_users =
            IntCounter::new("recompute_users_total", "Users recomputed from their stored samples in the background")
                .expect("valid metric");
        let recompute_users_remaining =
            IntGauge::new("recompute_users_remaining", "Users still to recompute in the background (model version)")
                .expect("valid metric");
        service_kit::metrics::register_all(
            &registry,
            vec![
                Box::new(topic_incarnation_mismatch.clone()) as Box<dyn prometheus::core::Collector>,
                Box::new(paused.clone()),
                Box::new(rebalances.clone()),
                Box::new(recompute_users.clone()),
                Box::new(recompute_users_remaining.clone()),
                Box::new(events.clone()),
                Box::new(erasures.clone()),
                Box::new(batch_events.clone()),
                Box::new(batch_seconds.clone()),
                Box::new(end_to_end_lag_seconds.clone()),
                Box::new(retries.clone()),
                Box::new(consumer_lag.clone()),
                Box::new(sql_statements.clone()),
                Box::new(cache.bytes.clone()),
                Box::new(cache.users.clone()),
                Box::new(cache.hits.clone()),
                Box::new(cache.misses.clone()),
                Box::new(cache.evictions.clone()),
                Box::new(cache.invalidations.clone()),
                Box::new(pools.clone()),
                Box::new(ready.clone()),
                // `processor_schema_registry_client_errors_total{fault}`: schema lookups.
                Box::new(events::registry::error_counter()),
            ],
        );
        Self {
            registry,
            events,
            erasures,
            batch_events,
            batch_seconds,
            end_to_end_lag_seconds,
            retries,
            consumer_lag,
            sql_statements,
            cache,
            topic_incarnation_mismatch,
            paused,
            recompute_users,
            recompute_users_remaining,
            rebalances,
            ready,
            pools,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
