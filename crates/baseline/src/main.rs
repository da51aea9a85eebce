//! The baseline of `make bench`: `POST /v1/devices/{device_id}/syncs` with the same auth and
//! validation as ingest-api, but the health model is computed and written to PostgreSQL inside the
//! request (one transaction), with no Kafka. Not for production: it exists to be measured against.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use ingest_api::auth::TokenSigner;
use ingest_api::config::{auth_secret_from_env, Limits};
use processor::db::PgPool;
use processor::schema::Outcome;
use service_kit::env;

struct State {
    signer: TokenSigner,
    pool: PgPool,
    limits: Limits,
}

#[actix_web::main]
async fn main() {
    service_kit::logging::init_from_env();
    if let Err(e) = run().await {
        eprintln!("baseline: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let addr = env::string("BASELINE_LISTEN_ADDR", "127.0.0.1:8090");
    let url =
        env::optional("DATABASE_URL").context("DATABASE_URL is not set: the baseline writes the health model there")?;
    let pool = processor::db::pool(&url, 16);
    processor::migrate(&pool).await?;
    let state =
        web::Data::new(State { signer: TokenSigner::new(&auth_secret_from_env()?), pool, limits: Limits::default() });
    HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(4 * 1024 * 1024))
            .route("/v1/devices/{device_id}/syncs", web::post().to(sync))
            .route("/healthz", web::get().to(|| async { HttpResponse::Ok().finish() }))
    })
    .bind(&addr)
    .with_context(|| format!("binding {addr}"))?
    .run()
    .await?;
    Ok(())
}

async fn sync(req: HttpRequest, device: web::Path<String>, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    let Ok(claims) = state.signer.verify_header(auth) else { return HttpResponse::Unauthorized().finish() };
    if claims.device.as_deref() != Some(device.as_str()) {
        return HttpResponse::Forbidden().finish();
    }
    let now = chrono::Utc::now();
    // The same parsing as ingest-api, so the comparison is of the architecture alone.
    let sync = match ingest_api::command::parse(&body, None, &state.limits, now.timestamp_millis()) {
        Ok(sync) => sync,
        Err(ingest_api::command::Rejection::Malformed(_)) => return HttpResponse::BadRequest().finish(),
        Err(ingest_api::command::Rejection::Invalid(_)) => return HttpResponse::UnprocessableEntity().finish(),
    };
    let sync_id = sync.sync_id;

    let event = sync.into_event(&claims.sub, &device, uuid::Uuid::new_v4(), now.timestamp_millis());
    let pool = state.pool.clone();
    // The whole processing and the database write, inside the request, from the database alone:
    // a request has no consumer-owned memory of the user, so its cache starts cold.
    let written = web::block(move || -> anyhow::Result<()> {
        let mut conn = pool.get()?;
        processor::apply_in_request(&mut conn, event)?;
        Ok(())
    })
    .await;
    match written {
        // 202 like ingest-api, so the load generator counts both alike; here it means processed.
        Ok(Ok(())) => {
            HttpResponse::Accepted().json(serde_json::json!({"sync_id": sync_id, "status": Outcome::Processed}))
        }
        Ok(Err(e)) => {
            log::warn!("sync {sync_id}: {e:#}");
            HttpResponse::ServiceUnavailable().finish()
        }
        Err(e) => {
            log::warn!("sync {sync_id}: {e}");
            HttpResponse::ServiceUnavailable().finish()
        }
    }
}
