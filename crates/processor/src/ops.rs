//! `/healthz`, `/readyz` and `/metrics`.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{get, web, App, HttpResponse, HttpServer};
use diesel::RunQueryDsl;
use rdkafka::consumer::Consumer;

use crate::consumer::ProcessorConsumer;
use crate::db::PgPool;
use crate::metrics::Metrics;

pub struct OpsState {
    pub pool: PgPool,
    pub consumer: Arc<ProcessorConsumer>,
    pub topic: String,
    pub metrics: Metrics,
    /// False while the worker retries transient failures.
    pub healthy: Arc<AtomicBool>,
    /// Why nothing is applied (the topic changed under the watermarks), if so.
    pub mismatch: crate::incarnation::Mismatch,
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
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Ready when PostgreSQL answers, the broker knows the topic, and no transient failure is being
/// retried.
#[get("/readyz")]
async fn readyz(state: web::Data<OpsState>) -> HttpResponse {
    let probe = state.clone();
    let checks = web::block(move || {
        let database = probe
            .pool
            .get()
            .map_err(|e| e.to_string())
            .and_then(|mut c| diesel::sql_query("SELECT 1").execute(&mut c).map_err(|e| e.to_string()));
        let broker = probe
            .consumer
            .fetch_metadata(Some(&probe.topic), Duration::from_secs(2))
            .map_err(|e| e.to_string())
            .and_then(|m| match m.topics().first() {
                Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
                _ => Err(format!("topic {} not found", probe.topic)),
            });
        (database.map(|_| ()), broker)
    })
    .await;
    let (database, broker) = match checks {
        Ok(c) => c,
        Err(e) => {
            return HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "error", "error": e.to_string()}))
        }
    };
    let report = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.clone(),
    };
    let processing: Result<(), String> = if state.healthy.load(Ordering::Relaxed) {
        Ok(())
    } else {
        Err("retrying a transient failure (database or registry)".into())
    };
    let topic: Result<(), String> = match state.mismatch.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        None => Ok(()),
        Some(why) => Err(why),
    };
    let ready = database.is_ok() && broker.is_ok() && processing.is_ok() && topic.is_ok();
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not ready" },
        "database": report(&database),
        "broker": report(&broker),
        "processing": report(&processing),
        "topic": report(&topic),
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

#[get("/metrics")]
async fn metrics_text(state: web::Data<OpsState>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
}
