//! `GET /v1/users/{user_id}/export` (GDPR Article 20): everything stored about a user, as
//! NDJSON, streamed from one read-only snapshot.
//!
//! Memory is bounded whatever the user's history: a blocking task reads row by row (PostgreSQL
//! builds each row's JSON) and hands lines to the response through a small channel, so a slow
//! client slows the reader instead of filling memory. Exports hold a connection for their whole
//! life, so only a few run at once (`INGEST_EXPORT_MAX_CONCURRENT`).
//!
//! Lines: first `{"type":"export",...}` (who, when, freshness), then one line per stored row as
//! `{"type":"<table>","data":{...}}`, and last `{"type":"end","lines":N}`. A stream that stops
//! without its `end` line is incomplete (an `{"type":"error"}` line says why when it can).

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use diesel::pg::{PgConnection, PgRowByRowLoadingMode};
use diesel::prelude::*;
use diesel::sql_types::{Bytea, Text};
use serde_json::json;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::problem::ApiError;
use crate::reads;
use crate::AppState;

/// Lines buffered between the reader and the client.
const CHANNEL_LINES: usize = 64;

/// The tables of a user's data with the order of their rows, exported as PostgreSQL renders each
/// row (`row_to_json`: every column, including ones added later). `day_samples` is apart: its
/// samples are a binary encoding, decoded to JSON here.
const TABLES: &[(&str, &str, &str)] = &[
    ("profile", "user_profiles", "user_id"),
    ("sync", "sync_status", "kafka_partition, kafka_offset"),
    ("day", "daily_metrics", "local_date"),
    ("rolling", "rolling_metrics", "local_date"),
    ("erasure", "erasure_receipts", "kafka_partition, kafka_offset"),
];

/// Bounds concurrent exports.
pub struct ExportSlots(Arc<Semaphore>);

impl ExportSlots {
    pub fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max)))
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/users/{user_id}/export", web::get().to(export));
}

#[derive(QueryableByName)]
struct JsonRow {
    #[diesel(sql_type = Text)]
    line: String,
}

#[derive(QueryableByName)]
struct SamplesRow {
    #[diesel(sql_type = Text)]
    meta: String,
    #[diesel(sql_type = Bytea)]
    samples: Vec<u8>,
}

/// Why an export stopped early.
#[derive(Debug, thiserror::Error)]
enum Stopped {
    #[error("the client went away")]
    ClientGone,
    #[error("reading the database: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("getting a connection: {0}")]
    Pool(#[from] r2d2::Error),
}

async fn export(
    req: HttpRequest,
    user: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // Everything about the user: the user's own token only, never a device's.
    crate::auth::authorize_user_token(&reads::claims(&req, &state)?, &user)?;
    let (user, q) = reads::user_read(&req, user, &state)?;
    let (partition, committed) = reads::position(&state, &req, &q, &user).await?;
    let permit: OwnedSemaphorePermit =
        state.exports.0.clone().try_acquire_owned().map_err(|_| {
            ApiError::Busy("the most exports that may run at once are running; retry in a minute".into())
        })?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(CHANNEL_LINES);
    let pool = state.read_pool.clone();
    let header_line = json!({
        "type": "export",
        "user_id": user,
        "generated_at": chrono::Utc::now(),
        "freshness": {"partition": partition, "committed_offset": committed},
        "format": "one JSON object per line; complete when the last line is {\"type\":\"end\"}",
    });
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut lines = 0u64;
        let result = (|| -> Result<(), Stopped> {
            send(&tx, header_line.to_string(), &mut lines)?;
            let mut conn = pool.get()?;
            conn.build_transaction().repeatable_read().read_only().run(|c| write_user(c, &user, &tx, &mut lines))
        })();
        match result {
            Ok(()) => {
                let _ = send(&tx, json!({"type": "end", "lines": lines + 1}).to_string(), &mut lines);
            }
            Err(Stopped::ClientGone) => log::info!("export of a user stopped: the client went away"),
            Err(e) => {
                log::warn!("export of a user failed after {lines} lines: {e}");
                let _ = send(&tx, json!({"type": "error", "detail": e.to_string()}).to_string(), &mut lines);
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"export.ndjson\""))
        .insert_header(("X-Processed-Position", format!("{partition}:{committed}")))
        .streaming(tokio_stream_from(rx)))
}

/// Every table's rows of the user, inside the caller's snapshot.
fn write_user(
    conn: &mut PgConnection,
    user: &str,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    lines: &mut u64,
) -> Result<(), Stopped> {
    for (kind, table, order) in TABLES {
        let sql = format!("SELECT row_to_json(t)::text AS line FROM {table} t WHERE user_id = $1 ORDER BY {order}");
        let rows = diesel::sql_query(sql).bind::<Text, _>(user).load_iter::<JsonRow, PgRowByRowLoadingMode>(conn)?;
        for row in rows {
            send(tx, format!(r#"{{"type":"{kind}","data":{}}}"#, row?.line), lines)?;
        }
    }
    let sql = "SELECT row_to_json(t)::text AS meta, s.samples FROM day_samples s, \
               LATERAL (SELECT s.user_id, s.local_date, s.sync_id, s.device_id, s.utc_offset_minutes, s.phone_time_ms) t \
               WHERE s.user_id = $1 ORDER BY s.local_date, s.phone_time_ms, s.sync_id";
    let rows = diesel::sql_query(sql).bind::<Text, _>(user).load_iter::<SamplesRow, PgRowByRowLoadingMode>(conn)?;
    for row in rows {
        let row = row?;
        let samples = match model_schema::chunk_codec::decode_to_json(&row.samples) {
            Ok(v) => v,
            Err(e) => json!({"undecodable": e.to_string(), "bytes": row.samples.len()}),
        };
        send(tx, format!(r#"{{"type":"samples","data":{},"samples":{samples}}}"#, row.meta), lines)?;
    }
    Ok(())
}

fn send(tx: &mpsc::Sender<Result<Bytes, std::io::Error>>, mut line: String, lines: &mut u64) -> Result<(), Stopped> {
    line.push('\n');
    tx.blocking_send(Ok(Bytes::from(line))).map_err(|_| Stopped::ClientGone)?;
    *lines += 1;
    Ok(())
}

/// The receiver as the response body's stream.
fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
