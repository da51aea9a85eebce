//! A Confluent-compatible Schema Registry (REST v1, Avro only) stored in PostgreSQL.
//!
//! The embedded default for `make run` and the tests; in production the services point at
//! Confluent Schema Registry, Karapace or Redpanda instead.

pub use avro_compat as compat;
pub mod audit;
pub mod auth;
pub mod error;
pub mod mode;
pub mod passwd;
pub mod registry;
pub mod routes;
pub mod schema;
pub mod store;

use std::net::TcpListener;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use prometheus::{IntCounterVec, Opts, Registry};
use service_kit::env::{self, EnvError};
use service_kit::readiness::{self, Readiness};
use service_kit::CancellationToken;

/// What every response is labelled with, as Confluent's registry does.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub use service_kit::db::PgPool;

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen_addr: String,
    pub database_url: String,
    pub db_pool_size: u32,
    /// The credentials file (`SCHEMA_REGISTRY_AUTH_FILE`); None runs the registry open.
    pub auth_file: Option<std::path::PathBuf>,
}

/// Every setting at its default, open (no credentials file); tests start from it.
impl Default for Settings {
    fn default() -> Self {
        Self {
            listen_addr: "127.0.0.1:8081".into(),
            database_url: "postgres://postgres@127.0.0.1:5432/schema_registry".into(),
            db_pool_size: 8,
            auth_file: None,
        }
    }
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let d = Self::default();
        Ok(Self {
            listen_addr: env::string("SCHEMA_REGISTRY_LISTEN_ADDR", &d.listen_addr),
            database_url: env::string("SCHEMA_REGISTRY_DATABASE_URL", &d.database_url),
            db_pool_size: env::parse("SCHEMA_REGISTRY_DB_POOL_SIZE", d.db_pool_size)?,
            auth_file: auth_file_from_env()?,
        })
    }
}

/// The credentials file, required: a registry left open by a forgotten variable is the hole
/// authentication closes. Running open takes an explicit `SCHEMA_REGISTRY_AUTH=none`.
fn auth_file_from_env() -> anyhow::Result<Option<std::path::PathBuf>> {
    let file = env::optional(auth::AUTH_FILE_ENV);
    let mode = env::string("SCHEMA_REGISTRY_AUTH", "basic");
    match (file, mode.as_str()) {
        (Some(file), "basic") => Ok(Some(file.into())),
        (None, "none") => Ok(None),
        (Some(_), "none") => {
            anyhow::bail!("SCHEMA_REGISTRY_AUTH=none and {} are both set: choose one", auth::AUTH_FILE_ENV)
        }
        (None, "basic") => anyhow::bail!(
            "{} is not set: make a credentials file with `schema-registry passwd --file F --user U --role admin` \
             and point it there, or set SCHEMA_REGISTRY_AUTH=none to run without authentication (local \
             experiments only)",
            auth::AUTH_FILE_ENV
        ),
        (_, other) => Err(EnvError::invalid("SCHEMA_REGISTRY_AUTH", other, "basic (the default) or none").into()),
    }
}

pub struct AppState {
    pub pool: PgPool,
    pub requests: IntCounterVec,
    pub metrics: Registry,
    /// None when no credentials file is configured: every request is let through.
    pub auth: Option<std::sync::Arc<auth::Authenticator>>,
}

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Connects to PostgreSQL, applies the migrations and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // Checked first: a bad credentials file must stop the start, before anything listens.
        let auth = match &settings.auth_file {
            Some(path) => {
                let path = path.clone();
                let auth = tokio::task::spawn_blocking(move || auth::Authenticator::load(&path)).await??;
                log::info!("HTTP Basic authentication on, {} user(s)", auth.user_count());
                Some(std::sync::Arc::new(auth))
            }
            None => {
                log::warn!(
                    "NO AUTHENTICATION: {} is not set, so anyone who can reach this registry can delete subjects, \
                     change compatibility and register schemas. Set it to a credentials file (see \
                     `schema-registry passwd --help`) for anything but a throw-away local run.",
                    auth::AUTH_FILE_ENV
                );
                None
            }
        };
        let pools = service_kit::db::PoolMetrics::new();
        let pool = service_kit::db::PoolBuilder::new(&settings.database_url, settings.db_pool_size)
            .observed(&pools, "registry")
            .build();
        let migrate_pool = pool.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut conn = migrate_pool.get().context("connecting to the registry's database")?;
            conn.run_pending_migrations(MIGRATIONS)
                .map_err(|e| anyhow::anyhow!("migrating the registry's database: {e}"))?;
            Ok(())
        })
        .await??;
        let metrics = service_kit::metrics::registry("schema_registry");
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "Requests by method and status"),
            &["method", "status"],
        )?;
        metrics.register(Box::new(requests.clone()))?;
        metrics.register(Box::new(pools))?;
        let state = web::Data::new(AppState { pool, requests, metrics, auth });
        let listener =
            TcpListener::bind(&settings.listen_addr).with_context(|| format!("binding {}", settings.listen_addr))?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PathConfig::default())
                .wrap(from_fn(auth::middleware))
                .wrap(from_fn(count_requests))
                .wrap(actix_web::middleware::Logger::new("%r %s %Dms"))
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .route("/metrics", web::get().to(metrics_text))
                .configure(routes::configure)
                .default_service(web::to(not_found))
        })
        .listen(listener)?
        // Signals are the caller's (`run_until_stopped`).
        .disable_signals()
        .shutdown_timeout(30)
        .run();
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` is cancelled, then finishes the requests in flight (up to 30 s).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        service_kit::http::serve_until_cancelled(self.server, shutdown).await?;
        log::info!("stopped");
        Ok(())
    }
}

async fn count_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let method = req.method().to_string();
    let res = next.call(req).await?;
    if let Some(state) = state {
        state.requests.with_label_values(&[method.as_str(), res.status().as_str()]).inc();
    }
    Ok(res)
}

/// The process answers.
async fn healthz() -> HttpResponse {
    readiness::alive()
}

/// Ready when its database answers; also says whether requests are authenticated.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let authentication = if state.auth.is_some() {
        "basic"
    } else {
        "none: SCHEMA_REGISTRY_AUTH_FILE is not set and anyone can change this registry"
    };
    let pool = state.pool.clone();
    let database = web::block(move || service_kit::db::ping(&pool)).await.unwrap_or_else(|e| Err(e.to_string()));
    Readiness::new().check("database", database).note("authentication", authentication).into_response()
}

async fn metrics_text(state: web::Data<AppState>) -> HttpResponse {
    service_kit::metrics::response(&state.metrics)
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type(CONTENT_TYPE)
        .json(serde_json::json!({"error_code": 404, "message": "HTTP 404 Not Found"}))
}
