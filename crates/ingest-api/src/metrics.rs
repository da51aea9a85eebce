//! Prometheus metrics of ingest-api.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Requests by route pattern and status.
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    /// Records `produced` (queued), `delivered` (acknowledged) and `failed`.
    pub records: IntCounterVec,
    pub in_flight: IntGauge,
    pub queue_depth: IntGauge,
    /// Requests answered 429, by the limit they hit (`device`, `user`, `reads`).
    pub rate_limited: IntCounterVec,
    /// Keys (devices, users) each rate limiter holds state for, as of its last sweep.
    pub rate_limit_keys: IntGaugeVec,
    /// Saturation of the read pool (`ingest_db_pool_*`).
    pub pools: service_kit::db::PoolMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = service_kit::metrics::registry("ingest");
        let requests = IntCounterVec::new(Opts::new("http_requests_total", "HTTP requests"), &["route", "status"])
            .expect("valid metric");
        let request_seconds = HistogramVec::new(
            HistogramOpts::new("http_request_seconds", "HTTP request latency")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["route", "status"],
        )
        .expect("valid metric");
        let records =
            IntCounterVec::new(Opts::new("records_total", "Kafka records by fate"), &["fate"]).expect("valid metric");
        let in_flight = IntGauge::new("http_requests_in_flight", "Requests being served").expect("valid metric");
        let queue_depth =
            IntGauge::new("producer_queue_depth", "Records waiting for the broker").expect("valid metric");
        let rate_limited =
            IntCounterVec::new(Opts::new("rate_limited_total", "Requests refused with 429, by limit"), &["limit"])
                .expect("valid metric");
        let rate_limit_keys = IntGaugeVec::new(
            Opts::new("rate_limit_keys", "Keys a rate limiter holds, after its last sweep"),
            &["limit"],
        )
        .expect("valid metric");
        let pools = service_kit::db::PoolMetrics::new();
        // Every limit shows, at 0 until it is hit.
        for limit in ["device", "user", "reads"] {
            rate_limited.with_label_values(&[limit]);
            rate_limit_keys.with_label_values(&[limit]);
        }
        service_kit::metrics::register_all(
            &registry,
            vec![
                Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
                Box::new(request_seconds.clone()),
                Box::new(records.clone()),
                Box::new(in_flight.clone()),
                Box::new(queue_depth.clone()),
                Box::new(rate_limited.clone()),
                Box::new(rate_limit_keys.clone()),
                Box::new(pools.clone()),
                // `ingest_schema_registry_client_errors_total{fault}`: registration and lookups.
                Box::new(events::registry::error_counter()),
            ],
        );
        Self {
            registry,
            requests,
            request_seconds,
            records,
            in_flight,
            queue_depth,
            rate_limited,
            rate_limit_keys,
            pools,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
