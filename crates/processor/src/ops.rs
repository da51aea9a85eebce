//! `/healthz`, `/readyz` and `/metrics`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{get, web, App, HttpResponse, HttpServer};
use rdkafka::consumer::Consumer;
use service_kit::readiness::{self, Condition, Readiness};

use crate::consumer::ProcessorConsumer;
use crate::db::PgPool;
use crate::metrics::Metrics;

pub struct OpsState {
    pub pool: PgPool,
    pub consumer: Arc<ProcessorConsumer>,
    pub topic_name: String,
    pub metrics: Metrics,
    /// Fails while the worker retries transient failures.
    pub processing: Condition,
    /// Fails while the topic may not be the one the watermarks belong to.
    pub topic: Condition,
}

pub fn serve(listener: TcpListener, state: OpsState) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    Ok(HttpServer::new(move || {
        App::new().app_data(state.clone()).service(healthz).service(readyz).service(metrics_text)
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}

#[get("/healthz")]
async fn healthz() -> HttpResponse {
    readiness::alive()
}

/// Ready when PostgreSQL answers, the broker knows the topic, no transient failure is being
/// retried, and the topic is the one the watermarks belong to.
#[get("/readyz")]
async fn readyz(state: web::Data<OpsState>) -> HttpResponse {
    let probe = state.clone();
    let checks = web::block(move || {
        let database = service_kit::db::ping(&probe.pool);
        let broker =
            events::kafka::topic_partitions(probe.consumer.client(), &probe.topic_name, Duration::from_secs(2))
                .map(|_| ());
        (database, broker)
    })
    .await;
    let (database, broker) = checks.unwrap_or_else(|e| (Err(e.to_string()), Err(e.to_string())));
    Readiness::new()
        .check("database", database)
        .check("broker", broker)
        .check("processing", state.processing.check())
        .check("topic", state.topic.check())
        .into_response()
}

/// The metrics, with `processor_ready` as of this scrape: 1 while the worker applies events (no
/// failure being retried, the topic checked). /readyz also asks PostgreSQL and the broker; the
/// scrape does not, so it stays cheap, and an outage shows here once a batch meets it.
#[get("/metrics")]
async fn metrics_text(state: web::Data<OpsState>) -> HttpResponse {
    state.metrics.ready.set(i64::from(state.processing.holds() && state.topic.holds()));
    service_kit::metrics::response(&state.metrics.registry)
}
