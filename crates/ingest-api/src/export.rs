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
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use diesel::pg::{PgConnection, PgRowByRowLoadingMode};
use diesel::prelude::*;
use diesel::sql_types::{Bytea, Text};
use serde::Serialize;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use utoipa::ToSchema;

use crate::problem::ApiError;
use crate::reads::{self, ConsistencyHeader, ConsistencyParams, Freshness};
use crate::AppState;

/// Lines buffered between the reader and the client.
const CHANNEL_LINES: usize = 64;
/// Longest a client may leave a line unread: past it the export stops, giving back its
/// connection and ending its snapshot (a stalled client must not hold them forever).
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one export may take in all.
const MAX_DURATION: Duration = Duration::from_secs(15 * 60);

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

/// One line of an export (`application/x-ndjson`), by its `type`: `export` first, then one line
/// per stored row (`profile`, `sync`, `day`, `rolling`, `erasure`: the row as `data`; `samples`:
/// a day's raw samples of one sync, decoded), and `end` last. An `error` line says why a stream
/// stopped early, when it can.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ExportLine {
    /// Who, when, and how fresh
    Export {
        user_id: String,
        generated_at: chrono::DateTime<chrono::Utc>,
        freshness: Freshness,
        /// How to read the stream
        format: &'static str,
    },
    /// The user's profile row
    Profile {
        #[schema(value_type = Object)]
        data: serde_json::Value,
    },
    /// A processed sync's row
    Sync {
        #[schema(value_type = Object)]
        data: serde_json::Value,
    },
    /// A day's row
    Day {
        #[schema(value_type = Object)]
        data: serde_json::Value,
    },
    /// A rolling-outputs row
    Rolling {
        #[schema(value_type = Object)]
        data: serde_json::Value,
    },
    /// An erasure receipt
    Erasure {
        #[schema(value_type = Object)]
        data: serde_json::Value,
    },
    /// A day's raw samples from one sync, decoded (`samples.undecodable` says why not, when not)
    Samples {
        /// user_id, local_date, sync_id, device_id, utc_offset_minutes, phone_time_ms
        #[schema(value_type = Object)]
        data: serde_json::Value,
        #[schema(value_type = Object)]
        samples: serde_json::Value,
    },
    /// The last line: the export is complete, with this many lines (this one included)
    End { lines: u64 },
    /// The export stopped early, for this reason
    Error { detail: String },
}

impl ExportLine {
    fn line(&self) -> String {
        serde_json::to_string(self).expect("an export line serializes")
    }
}

/// Samples that could not be decoded, in place of them.
#[derive(Debug, Serialize)]
struct Undecodable {
    undecodable: String,
    bytes: usize,
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
    #[error("the client read nothing for {STALL_TIMEOUT:?}")]
    Stalled,
    #[error("the export took longer than {MAX_DURATION:?}")]
    TooLong,
    #[error("reading the database: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("getting a connection: {0}")]
    Pool(#[from] r2d2::Error),
}

/// Everything stored about the user, as NDJSON (GDPR Article 20)
///
/// Streams from one read-only snapshot: a first {"type":"export"} line (user, time, freshness), one
/// line per stored row ({"type":"profile"|"sync"|"day"|"rolling"|"erasure","data":{...}}, and
/// {"type":"samples","data":{...},"samples":{...}} with the raw samples decoded), then
/// {"type":"end","lines":N}. A stream without its end line is incomplete; an {"type":"error"} line
/// says why when it can. Every line is an `ExportLine` (components.schemas). Only the user's own
/// token. At most INGEST_EXPORT_MAX_CONCURRENT run at once.
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/export",
    operation_id = "exportUserData",
    extensions(("x-auth" = json!("user"))),
    params(
        ("user_id" = String, Path, description = "The user; only their own token"),
        ConsistencyParams,
        ConsistencyHeader,
    ),
    responses(
        (status = 200, description = "the NDJSON stream: one ExportLine per line", body = String, content_type = "application/x-ndjson",
            headers(
                ("X-Processed-Position" = String, description = "partition:committed_offset"),
                ("Content-Disposition" = String, description = "attachment; filename=\"export.ndjson\""),
            )),
        (status = 400, response = crate::openapi::BadQuery),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::NotTheUsersToken),
        (status = 409, response = crate::openapi::NotYetProcessed),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, description = "the database cannot be read right now, or the most exports that may run at once are running (busy, Retry-After: 30)",
            body = crate::problem::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = inline(crate::openapi::RetrySeconds), description = "Seconds to wait"))),
    )
)]
pub(crate) async fn export(
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
    let header_line = ExportLine::Export {
        user_id: user.clone(),
        generated_at: chrono::Utc::now(),
        freshness: Freshness { partition, committed_offset: committed },
        format: "one JSON object per line; complete when the last line is {\"type\":\"end\"}",
    };
    let mut sink =
        Sink { tx, runtime: tokio::runtime::Handle::current(), lines: 0, deadline: Instant::now() + MAX_DURATION };
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let result = (|| -> Result<(), Stopped> {
            sink.send(header_line.line())?;
            let mut conn = pool.get()?;
            conn.build_transaction().repeatable_read().read_only().run(|c| write_user(c, &user, &mut sink))
        })();
        match result {
            Ok(()) => {
                let end = ExportLine::End { lines: sink.lines + 1 }.line();
                let _ = sink.send(end);
            }
            Err(Stopped::ClientGone) => log::info!("export of a user stopped: the client went away"),
            Err(e) => {
                log::warn!("export of a user stopped after {} lines: {e}", sink.lines);
                let _ = sink.send(ExportLine::Error { detail: e.to_string() }.line());
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
fn write_user(conn: &mut PgConnection, user: &str, sink: &mut Sink) -> Result<(), Stopped> {
    for (kind, table, order) in TABLES {
        let sql = format!("SELECT row_to_json(t)::text AS line FROM {table} t WHERE user_id = $1 ORDER BY {order}");
        let rows = diesel::sql_query(sql).bind::<Text, _>(user).load_iter::<JsonRow, PgRowByRowLoadingMode>(conn)?;
        for row in rows {
            sink.send(format!(r#"{{"type":"{kind}","data":{}}}"#, row?.line))?;
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
            Err(e) => serde_json::to_value(Undecodable { undecodable: e.to_string(), bytes: row.samples.len() })
                .expect("a struct of a string and a number serializes"),
        };
        sink.send(format!(r#"{{"type":"samples","data":{},"samples":{samples}}}"#, row.meta))?;
    }
    Ok(())
}

/// The response's side of the export: lines go to the client through a bounded channel, each
/// within [`STALL_TIMEOUT`] and all before the deadline.
struct Sink {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    runtime: tokio::runtime::Handle,
    lines: u64,
    deadline: Instant,
}

impl Sink {
    /// Called on a blocking thread (never a runtime worker), so it may block on the runtime.
    fn send(&mut self, mut line: String) -> Result<(), Stopped> {
        if Instant::now() > self.deadline {
            return Err(Stopped::TooLong);
        }
        line.push('\n');
        let sent = self.runtime.block_on(tokio::time::timeout(STALL_TIMEOUT, self.tx.send(Ok(Bytes::from(line)))));
        match sent {
            Ok(Ok(())) => {
                self.lines += 1;
                Ok(())
            }
            Ok(Err(_)) => Err(Stopped::ClientGone),
            Err(_) => Err(Stopped::Stalled),
        }
    }
}

/// The receiver as the response body's stream.
fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
