//! How saturated a service's database pools are, for `/metrics` and the dashboard's "DB pool
//! saturation" panel: connections in use and idle against the maximum (read at scrape time from
//! r2d2's own state), how long a checkout waited, and checkouts that timed out.
//!
//! ```text
//! <prefix>_db_pool_connections{pool, state="in_use"|"idle"}
//! <prefix>_db_pool_max_connections{pool}
//! <prefix>_db_pool_wait_seconds{pool}          histogram of checkout waits
//! <prefix>_db_pool_timeouts_total{pool}        checkouts that gave up
//! ```

use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

use crate::db::PgPool;

/// The pools of one service; register it once in the service's registry, and give it to each
/// [`crate::db::PoolBuilder::observed`].
#[derive(Clone)]
pub struct PoolMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    pools: Mutex<Vec<(String, PgPool)>>,
    connections: IntGaugeVec,
    max_connections: IntGaugeVec,
    wait_seconds: HistogramVec,
    timeouts: IntCounterVec,
}

impl PoolMetrics {
    pub fn new() -> Self {
        let connections = IntGaugeVec::new(
            Opts::new("db_pool_connections", "Open database connections, by pool and state (in_use, idle)"),
            &["pool", "state"],
        )
        .expect("valid metric");
        let max_connections =
            IntGaugeVec::new(Opts::new("db_pool_max_connections", "The most connections a pool opens"), &["pool"])
                .expect("valid metric");
        let wait_seconds = HistogramVec::new(
            HistogramOpts::new("db_pool_wait_seconds", "Time a checkout waited for a connection")
                .buckets(vec![0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            &["pool"],
        )
        .expect("valid metric");
        let timeouts =
            IntCounterVec::new(Opts::new("db_pool_timeouts_total", "Checkouts that timed out waiting"), &["pool"])
                .expect("valid metric");
        Self {
            inner: Arc::new(Inner { pools: Mutex::default(), connections, max_connections, wait_seconds, timeouts }),
        }
    }

    /// Reports `pool` under the label `name` from now on.
    pub fn watch(&self, name: &str, pool: &PgPool) {
        self.inner.max_connections.with_label_values(&[name]).set(i64::from(pool.max_size()));
        self.inner.timeouts.with_label_values(&[name]);
        self.inner.pools.lock().unwrap_or_else(|p| p.into_inner()).push((name.to_owned(), pool.clone()));
    }

    /// The r2d2 event handler that times the checkouts of the pool called `name`. It holds the
    /// two series it writes, never `self`: the pool owns its handler, and a handler that held the
    /// list of pools would keep every pool (and its connections) alive for ever.
    pub(crate) fn events(&self, name: &str) -> PoolEvents {
        let i = &self.inner;
        PoolEvents {
            name: name.to_owned(),
            wait_seconds: i.wait_seconds.with_label_values(&[name]),
            timeouts: i.timeouts.with_label_values(&[name]),
        }
    }
}

impl Default for PoolMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for PoolMetrics {
    fn desc(&self) -> Vec<&Desc> {
        let i = &self.inner;
        [i.connections.desc(), i.max_connections.desc(), i.wait_seconds.desc(), i.timeouts.desc()].concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let i = &self.inner;
        for (name, pool) in i.pools.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let state = pool.state();
            let idle = i64::from(state.idle_connections);
            i.connections.with_label_values(&[name, "idle"]).set(idle);
            i.connections.with_label_values(&[name, "in_use"]).set(i64::from(state.connections) - idle);
        }
        [i.connections.collect(), i.max_connections.collect(), i.wait_seconds.collect(), i.timeouts.collect()].concat()
    }
}

/// Times checkouts and counts timeouts for one pool.
#[derive(Clone)]
pub(crate) struct PoolEvents {
    name: String,
    wait_seconds: prometheus::Histogram,
    timeouts: prometheus::IntCounter,
}

impl std::fmt::Debug for PoolEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PoolEvents({})", self.name)
    }
}

impl r2d2::HandleEvent for PoolEvents {
    fn handle_checkout(&self, event: r2d2::event::CheckoutEvent) {
        self.wait_seconds.observe(event.duration().as_secs_f64());
    }

    fn handle_timeout(&self, event: r2d2::event::TimeoutEvent) {
        self.timeouts.inc();
        self.wait_seconds.observe(event.timeout().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::db::PoolBuilder;

    fn scrape(metrics: &PoolMetrics) -> String {
        let registry = prometheus::Registry::new_custom(Some("svc".into()), None).unwrap();
        registry.register(Box::new(metrics.clone())).unwrap();
        crate::metrics::render(&registry)
    }

    /// Against a port nothing listens on: a checkout times out, and is counted.
    #[test]
    fn a_pool_reports_its_maximum_and_its_timeouts() {
        let metrics = PoolMetrics::new();
        let pool = PoolBuilder::new("postgres://nobody@127.0.0.1:1/none", 3)
            .connection_timeout(Duration::from_millis(200))
            .observed(&metrics, "write")
            .build();
        assert!(pool.get().is_err());
        let text = scrape(&metrics);
        assert!(text.contains("svc_db_pool_max_connections{pool=\"write\"} 3"), "{text}");
        assert!(text.contains("svc_db_pool_timeouts_total{pool=\"write\"} 1"), "{text}");
        assert!(text.contains("svc_db_pool_wait_seconds_count{pool=\"write\"} 1"), "{text}");
        assert!(text.contains("svc_db_pool_connections{pool=\"write\",state=\"in_use\"} 0"), "{text}");
    }
}
