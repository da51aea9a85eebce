//! PostgreSQL pools (Diesel over r2d2) and the one way a handler runs blocking database work.

use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};

pub use crate::pool_metrics::PoolMetrics;

pub type PgPool = Pool<ConnectionManager<PgConnection>>;

/// A pool to build. It never connects while being built: a service starts, and `/readyz` says
/// whether the database answers, instead of a crash loop while PostgreSQL is away.
pub struct PoolBuilder {
    url: String,
    size: u32,
    connection_timeout: Duration,
    customizer: Option<Box<dyn CustomizeConnection<PgConnection, diesel::r2d2::Error>>>,
    observer: Option<(PoolMetrics, String)>,
}

impl PoolBuilder {
    /// At most `size` connections (at least one: r2d2 refuses an empty pool), none opened before
    /// they are needed, 5 s to get one.
    pub fn new(url: &str, size: u32) -> Self {
        Self {
            url: url.to_owned(),
            size: size.max(1),
            connection_timeout: Duration::from_secs(5),
            customizer: None,
            observer: None,
        }
    }

    /// How long `get` waits for a connection before it fails.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Runs on every new connection (read-only mode, statement counting).
    pub fn customize(mut self, customizer: impl CustomizeConnection<PgConnection, diesel::r2d2::Error>) -> Self {
        self.customizer = Some(Box::new(customizer));
        self
    }

    /// Reports the pool's saturation in `metrics` under the label `pool = name`.
    pub fn observed(mut self, metrics: &PoolMetrics, name: &str) -> Self {
        self.observer = Some((metrics.clone(), name.to_owned()));
        self
    }

    pub fn build(self) -> PgPool {
        let mut builder =
            Pool::builder().max_size(self.size).min_idle(Some(0)).connection_timeout(self.connection_timeout);
        if let Some(c) = self.customizer {
            builder = builder.connection_customizer(c);
        }
        if let Some((metrics, name)) = &self.observer {
            builder = builder.event_handler(Box::new(metrics.events(name)));
        }
        let pool = builder.build_unchecked(ConnectionManager::new(self.url));
        if let Some((metrics, name)) = &self.observer {
            metrics.watch(name, &pool);
        }
        pool
    }
}

/// A pool with the defaults of [`PoolBuilder::new`].
pub fn pool(url: &str, size: u32) -> PgPool {
    PoolBuilder::new(url, size).build()
}

/// Why [`blocking`] could not run the caller's statements.
#[derive(Debug, thiserror::Error)]
pub enum DbUnavailable {
    #[error("no database connection: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("the database task did not finish: {0}")]
    Task(String),
}

/// Runs `f` with a pooled connection on Tokio's blocking threads, so async handlers never wait
/// on PostgreSQL on a reactor thread. `E` is the caller's error, which says how a missing
/// connection is answered.
pub async fn blocking<T, E>(
    pool: &PgPool,
    f: impl FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<DbUnavailable> + Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(|e| E::from(DbUnavailable::Pool(e)))?;
        f(&mut conn)
    })
    .await
    .map_err(|e| E::from(DbUnavailable::Task(e.to_string())))?
}

/// `SELECT 1` on a pooled connection: the database check of `/readyz`. Blocking.
pub fn ping(pool: &PgPool) -> Result<(), String> {
    use diesel::RunQueryDsl;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    diesel::sql_query("SELECT 1").execute(&mut conn).map(|_| ()).map_err(|e| e.to_string())
}
