//! The connection pool and the embedded migrations.

use anyhow::Context;
use diesel::pg::PgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use service_kit::db::PoolBuilder;
pub use service_kit::db::{pool, PgPool};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Counts every statement a connection sends (BEGIN and COMMIT included), for the
/// statements-per-sync figure.
#[derive(Debug)]
struct CountStatements(prometheus::IntCounter);

impl diesel::r2d2::CustomizeConnection<PgConnection, diesel::r2d2::Error> for CountStatements {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        use diesel::connection::{Connection, InstrumentationEvent};
        let counter = self.0.clone();
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if matches!(event, InstrumentationEvent::StartQuery { .. }) {
                counter.inc();
            }
        });
        Ok(())
    }
}

/// The processor's pool: as [`pool`], every statement counted in `processor_sql_statements_total`
/// and its saturation in `processor_db_pool_*`.
pub fn counting_pool(
    database_url: &str,
    size: u32,
    statements: prometheus::IntCounter,
    pools: &service_kit::db::PoolMetrics,
) -> PgPool {
    PoolBuilder::new(database_url, size).customize(CountStatements(statements)).observed(pools, "write").build()
}

/// Applies pending migrations and returns their names.
pub fn run_migrations(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    let mut conn = pool.get().context("connecting to PostgreSQL to run migrations")?;
    let applied = conn.run_pending_migrations(MIGRATIONS).map_err(|e| anyhow::anyhow!("running migrations: {e}"))?;
    Ok(applied.iter().map(ToString::to_string).collect())
}
