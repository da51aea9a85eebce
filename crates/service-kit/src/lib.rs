//! The plumbing the three services (ingest-api, processor, schema-registry) share, so each is
//! written once: settings from the environment with one error format, PostgreSQL pools, the
//! Prometheus `/metrics` answer, the `/readyz` report, the shutdown signal, backoff, logging and
//! W3C trace context.
//!
//! Every service has the same shape on top of it: `Application::build(settings)`, `.port()`, and
//! `.run_until_stopped(shutdown)`, where `shutdown` is a [`CancellationToken`] that `main` ties to
//! SIGINT and SIGTERM ([`shutdown::on_signal`]) and a test cancels itself.

pub mod backoff;
pub mod db;
pub mod env;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod pool_metrics;
pub mod readiness;
pub mod shutdown;
pub mod trace;

pub use tokio_util::sync::CancellationToken;
