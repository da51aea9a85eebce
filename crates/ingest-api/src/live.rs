//! Live updates: `GET /v1/users/{user_id}/events`, a Server-Sent Events stream of the user's
//! syncs as the processor finishes them (`sync.processed`, `sync.failed`) and of the days their
//! model changed (`model.updated`).
//!
//! Nothing here polls. The watermark listener (crate::watermark_feed), the one `LISTEN`
//! connection of the process, hears each commit of the processor. When a partition's watermark
//! moves and some stream is open, it reads that partition's new sync statuses of the users with a
//! stream (one indexed query per commit, whatever the number of streams) and hands each to its
//! user's streams; the processor's `model.updated` notifications are handed on as they are.
//!
//! Every sync event's id is its log position, `partition:offset`. A client that reconnects with
//! `Last-Event-ID` (or `?last_event_id=`) first gets, from `sync_status`, every sync of theirs
//! after that position, in order, then the live ones: the stream subscribes before it reads, and
//! drops any live event at or below what it replayed, so nothing is missed or sent twice.
//!
//! Bounded: streams per user and in all (429 and 503 past them), each with a bounded queue and a
//! bounded replay. A stream whose client does not keep up is closed rather than allowed to hold
//! the listener back; its client reconnects with its last id and misses no sync (`model.updated`
//! events are not replayed).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use diesel::pg::PgConnection;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use serde::{Deserialize, Serialize};
use service_kit::CancellationToken;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use crate::problem::ApiError;
use crate::reads::{self, queries, RecordedSync};
use crate::AppState;

/// Events queued for one stream before it counts as too slow and is closed.
const QUEUE: usize = 256;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/users/{user_id}/events", web::get().to(events));
}

/// The limits of live streams (INGEST_EVENTS_*).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSettings {
    pub max_streams: usize,
    pub max_streams_per_user: usize,
    /// A comment line this often keeps proxies from closing an idle stream.
    pub keepalive: Duration,
    /// The most syncs a reconnect replays (held in memory while they are sent); past it,
    /// `replay.truncated` tells the client to reload.
    pub replay_max: usize,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self { max_streams: 2000, max_streams_per_user: 4, keepalive: Duration::from_secs(15), replay_max: 200 }
    }
}

/// One event of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEvent {
    /// `sync.processed`, `sync.failed`, `model.updated` or `replay.truncated`.
    pub kind: &'static str,
    /// The log position, the event's id (none for a recompute's `model.updated`).
    pub position: Option<(i32, i64)>,
    pub data: String,
}

/// The data of a `sync.processed` or `sync.failed` event.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveSync {
    #[serde(flatten)]
    pub sync: RecordedSync,
    /// When the processor committed it (its clock just before the commit); live events only,
    /// not those a reconnect replays
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub committed_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl LiveEvent {
    fn sync(row: queries::SyncRow, committed: i64, committed_at: Option<chrono::DateTime<chrono::Utc>>) -> Self {
        let position = Some((row.kafka_partition, row.kafka_offset));
        let sync = RecordedSync::from_row(row, committed);
        let kind = match sync.status {
            reads::SyncOutcome::Processed => "sync.processed",
            reads::SyncOutcome::Failed => "sync.failed",
        };
        let data = serde_json::to_string(&LiveSync { sync, committed_at }).expect("a sync serializes");
        Self { kind, position, data }
    }

    fn is_sync(&self) -> bool {
        self.kind.starts_with("sync.")
    }

    /// The event as the stream sends it.
    pub fn to_sse(&self) -> Bytes {
        let mut out = String::with_capacity(self.data.len() + 64);
        if let Some((partition, offset)) = self.position {
            out.push_str(&format!("id: {partition}:{offset}\n"));
        }
        out.push_str("event: ");
        out.push_str(self.kind);
        out.push_str("\ndata: ");
        // JSON has no raw newlines; a data line must not either.
        out.push_str(&self.data.replace('\n', "\\n"));
        out.push_str("\n\n");
        Bytes::from(out)
    }
}

/// Why a stream was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRefused {
    /// The user has as many streams open as one user may.
    User { max: usize },
    /// The process has as many streams open as it serves.
    Total { max: usize },
}

struct Subscriber {
    id: u64,
    tx: mpsc::Sender<Arc<LiveEvent>>,
}

#[derive(Clone)]
struct LiveMetrics {
    open: IntGauge,
    refused: IntCounterVec,
    sent: IntCounterVec,
    closed_slow: IntCounter,
}

/// The open streams, by user.
pub struct LiveHub {
    settings: LiveSettings,
    streams: Mutex<HashMap<String, Vec<Subscriber>>>,
    next_id: AtomicU64,
    /// Cancelled when the service stops: every stream ends, so the server's drain is not held.
    closing: CancellationToken,
    metrics: LiveMetrics,
}

impl LiveHub {
    pub fn new(settings: LiveSettings, registry: &Registry) -> Arc<Self> {
        let metrics = LiveMetrics {
            open: IntGauge::new("live_streams", "Open live event streams (GET /v1/users/{user_id}/events)")
                .expect("valid metric"),
            refused: IntCounterVec::new(
                Opts::new("live_streams_refused_total", "Live streams refused, by limit (user, total)"),
                &["limit"],
            )
            .expect("valid metric"),
            sent: IntCounterVec::new(
                Opts::new("live_events_total", "Live events handed to streams, by kind"),
                &["kind"],
            )
            .expect("valid metric"),
            closed_slow: IntCounter::new(
                "live_streams_closed_slow_total",
                "Live streams closed because their client did not keep up",
            )
            .expect("valid metric"),
        };
        for c in [
            Box::new(metrics.open.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.refused.clone()),
            Box::new(metrics.sent.clone()),
            Box::new(metrics.closed_slow.clone()),
        ] {
            // A second hub on one registry (tests) keeps the first one's metrics.
            let _ = registry.register(c);
        }
        Arc::new(Self {
            settings,
            streams: Mutex::default(),
            next_id: AtomicU64::new(0),
            closing: CancellationToken::new(),
            metrics,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Subscriber>>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a stream for `user`, within the limits.
    pub fn subscribe(self: &Arc<Self>, user: &str) -> Result<Subscription, StreamRefused> {
        let mut streams = self.lock();
        let total: usize = streams.values().map(Vec::len).sum();
        if streams.get(user).map_or(0, Vec::len) >= self.settings.max_streams_per_user {
            self.metrics.refused.with_label_values(&["user"]).inc();
            return Err(StreamRefused::User { max: self.settings.max_streams_per_user });
        }
        if total >= self.settings.max_streams {
            self.metrics.refused.with_label_values(&["total"]).inc();
            return Err(StreamRefused::Total { max: self.settings.max_streams });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE);
        streams.entry(user.to_owned()).or_default().push(Subscriber { id, tx });
        self.metrics.open.inc();
        Ok(Subscription { hub: self.clone(), user: user.to_owned(), id, rx })
    }

    fn unsubscribe(&self, user: &str, id: u64) {
        let mut streams = self.lock();
        if let Some(subs) = streams.get_mut(user) {
            let before = subs.len();
            subs.retain(|s| s.id != id);
            if subs.len() < before {
                self.metrics.open.dec();
            }
            if subs.is_empty() {
                streams.remove(user);
            }
        }
    }

    /// The users with a stream open.
    pub fn users(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Hands an event to every stream of `user`. A stream whose queue is full is closed (its
    /// client reconnects with its last id and gets the rest by replay).
    pub fn send(&self, user: &str, event: Arc<LiveEvent>) {
        let mut streams = self.lock();
        let Some(subs) = streams.get_mut(user) else { return };
        let before = subs.len();
        subs.retain(|s| match s.tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.closed_slow.inc();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        self.metrics.sent.with_label_values(&[event.kind]).inc_by(subs.len() as u64);
        for _ in subs.len()..before {
            self.metrics.open.dec();
        }
        if subs.is_empty() {
            streams.remove(user);
        }
    }

    /// A partition's watermark moved from `after` to `through` in a commit at `committed_at`:
    /// hands the sync statuses in between to their users' streams. Runs on the listener's
    /// connection.
    pub fn on_advance(
        &self,
        conn: &mut PgConnection,
        partition: i32,
        after: i64,
        through: i64,
        committed_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> diesel::QueryResult<()> {
        let users = self.users();
        if users.is_empty() || through <= after {
            return Ok(());
        }
        for row in queries::syncs_between(conn, partition, after, through, &users)? {
            let user = row.user_id.clone();
            self.send(&user, Arc::new(LiveEvent::sync(row, through, committed_at)));
        }
        Ok(())
    }

    /// A `model.updated` notification of the processor (model_schema::ModelUpdate as JSON).
    pub fn on_model_update(&self, payload: &str) {
        match serde_json::from_str::<model_schema::ModelUpdate>(payload) {
            Ok(update) => {
                let position = update.partition.zip(update.offset);
                let data = serde_json::to_string(&ModelUpdated::from(&update)).expect("serializes");
                self.send(&update.user_id, Arc::new(LiveEvent { kind: "model.updated", position, data }));
            }
            Err(e) => log::warn!("ignoring a malformed model update notification {payload:?}: {e}"),
        }
    }

    /// Ends every stream (the service is stopping).
    pub fn close(&self) {
        self.closing.cancel();
    }
}

/// An open stream's place and queue; dropping it (the client went away) frees the place.
pub struct Subscription {
    hub: Arc<LiveHub>,
    user: String,
    id: u64,
    rx: mpsc::Receiver<Arc<LiveEvent>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(&self.user, self.id);
    }
}

/// `model.updated`: days of the user's model that changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelUpdated {
    /// Where in the log the change came from (absent for a recompute of a new model version)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub offset: Option<i64>,
    /// The first and last changed day
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
    /// The changed days, when there are at most 100 (otherwise every day from `from` to `to` may have)
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<chrono::NaiveDate>,
    /// The health model version that computed them
    pub model_version: i32,
}

impl From<&model_schema::ModelUpdate> for ModelUpdated {
    fn from(u: &model_schema::ModelUpdate) -> Self {
        Self {
            partition: u.partition,
            offset: u.offset,
            from: u.from,
            to: u.to,
            days: u.days.clone(),
            model_version: u.model_version,
        }
    }
}

/// `?last_event_id=`, for clients that cannot send the Last-Event-ID header.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The id of the last event the client saw (`partition:offset`): the stream starts with every
    /// sync of the user after it. The Last-Event-ID header, which EventSource sends on reconnect,
    /// takes precedence.
    #[param(nullable = false)]
    last_event_id: Option<String>,
}

/// The query string of the events route: the last event id it names, if any.
pub(crate) fn parse_events_query(query: &str) -> Result<Option<(i32, i64)>, ApiError> {
    let parsed = web::Query::<EventsQuery>::from_query(query).map_err(|e| ApiError::BadQuery(format!("{e}")))?;
    parsed.into_inner().last_event_id.as_deref().map(parse_event_id).transpose()
}

/// A `partition:offset` event id.
fn parse_event_id(id: &str) -> Result<(i32, i64), ApiError> {
    let bad = || ApiError::BadQuery(format!("last event id {id:?} is not partition:offset (two whole numbers)"));
    let (partition, offset) = id.trim().split_once(':').ok_or_else(bad)?;
    Ok((partition.parse().map_err(|_| bad())?, offset.parse().map_err(|_| bad())?))
}

/// The user's live events, as Server-Sent Events
///
/// `sync.processed` and `sync.failed` (data: the sync's status, as GET /v1/syncs/{sync_id} gives
/// it, with `committed_at`) as soon as the processor's transaction commits, and `model.updated` (data: the days that
/// changed). Each sync event's id is its `partition:offset`; reconnect with `Last-Event-ID` to
/// get every sync after it first (at most INGEST_EVENTS_REPLAY_MAX; past that, a
/// `replay.truncated` event says to reload the model). A comment line every 15 s keeps the
/// connection alive. At most INGEST_EVENTS_MAX_STREAMS_PER_USER streams per user (429) and
/// INGEST_EVENTS_MAX_STREAMS in all (503).
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/events",
    operation_id = "streamUserEvents",
    extensions(("x-auth" = json!("owner"))),
    params(
        ("user_id" = String, Path, description = "The user"),
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event seen (partition:offset); the stream replays every sync after it first"),
        EventsQuery,
    ),
    responses(
        (status = 200, description = "the event stream (text/event-stream): events `sync.processed` and `sync.failed` (data: LiveSync), `model.updated` (data: ModelUpdated), `replay.truncated`; comment lines keep it alive",
            body = String, content_type = "text/event-stream"),
        (status = 400, response = crate::openapi::BadQuery),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::OtherUsersData),
        (status = 429, description = "the user has as many streams open as one user may, or the read rate limit", body = crate::problem::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = inline(crate::openapi::RetrySeconds), description = "Seconds to wait"))),
        (status = 503, description = "the database cannot be read right now, or the service has as many streams open as it serves", body = crate::problem::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = inline(crate::openapi::RetrySeconds), description = "Seconds to wait"))),
    )
)]
pub(crate) async fn events(
    req: HttpRequest,
    user: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let user = reads::owner_reads(&req, user, &state)?;
    let query = parse_events_query(req.query_string())?;
    let header_id = req.headers().get("last-event-id").and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
    let last = match header_id {
        Some(id) => Some(parse_event_id(id)?),
        None => query,
    };
    let subscription = state.live.subscribe(&user).map_err(|refused| match refused {
        StreamRefused::User { max } => ApiError::TooManyStreams { max, per_user: true },
        StreamRefused::Total { max } => ApiError::TooManyStreams { max, per_user: false },
    })?;
    // Subscribed first, then read: a commit in between is in both, and `last` drops the repeat.
    let mut pending = VecDeque::new();
    let mut last_sent: HashMap<i32, i64> = HashMap::new();
    if let Some((partition, offset)) = last {
        // The client has everything up to its id: a live event at or below it is not news (it
        // may come from another instance's listener that is behind this one's).
        last_sent.insert(partition, offset);
        let max = state.live.settings.replay_max;
        let u = user.clone();
        let rows =
            reads::db(&state, move |c| queries::user_syncs_after(c, &u, partition, offset, max as i64 + 1)).await?;
        if rows.len() > max {
            let data = serde_json::json!({
                "detail": format!("more than {max} syncs since {partition}:{offset}; reload the model, then follow the stream"),
            });
            pending.push_back(LiveEvent { kind: "replay.truncated", position: None, data: data.to_string() }.to_sse());
        } else {
            for row in rows {
                // Processed up to at least its own offset.
                let committed = row.kafka_offset;
                let event = LiveEvent::sync(row, committed, None);
                if let Some((p, o)) = event.position {
                    last_sent.insert(p, o);
                }
                pending.push_back(event.to_sse());
            }
        }
    }
    // The reconnection delay EventSource uses, and a first line so the client knows it is open.
    pending.push_front(Bytes::from_static(b"retry: 2000\n: connected\n\n"));
    let keepalive = state.live.settings.keepalive;
    let stream = LiveStream {
        subscription,
        pending,
        last_sent,
        keepalive: tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive),
        closing: state.live.closing.clone(),
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Proxies that buffer (nginx) pass each event on at once.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream.into_stream()))
}

/// One open stream's state.
struct LiveStream {
    subscription: Subscription,
    /// Bytes to send before anything live (the replay).
    pending: VecDeque<Bytes>,
    /// Per partition, the last sync offset sent: a live sync at or below it was replayed.
    last_sent: HashMap<i32, i64>,
    keepalive: tokio::time::Interval,
    closing: CancellationToken,
}

impl LiveStream {
    fn into_stream(self) -> impl futures::Stream<Item = Result<Bytes, actix_web::Error>> {
        futures::stream::unfold(self, |mut s| async move {
            if let Some(bytes) = s.pending.pop_front() {
                return Some((Ok(bytes), s));
            }
            loop {
                tokio::select! {
                    biased;
                    () = s.closing.cancelled() => return None,
                    event = s.subscription.rx.recv() => {
                        // None: closed for not keeping up; the client reconnects with its last id.
                        let event = event?;
                        if let (true, Some((partition, offset))) = (event.is_sync(), event.position) {
                            if s.last_sent.get(&partition).is_some_and(|&seen| offset <= seen) {
                                continue;
                            }
                            s.last_sent.insert(partition, offset);
                        }
                        return Some((Ok(event.to_sse()), s));
                    }
                    _ = s.keepalive.tick() => return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), s)),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &'static str, offset: i64) -> Arc<LiveEvent> {
        Arc::new(LiveEvent { kind, position: Some((2, offset)), data: "{}".into() })
    }

    #[test]
    fn an_event_is_one_sse_message_with_its_position_as_id() {
        let e = LiveEvent { kind: "sync.processed", position: Some((3, 41)), data: "{\"a\":1}".into() };
        assert_eq!(&e.to_sse()[..], b"id: 3:41\nevent: sync.processed\ndata: {\"a\":1}\n\n");
        let e = LiveEvent { kind: "model.updated", position: None, data: "{}".into() };
        assert_eq!(&e.to_sse()[..], b"event: model.updated\ndata: {}\n\n");
    }

    #[test]
    fn event_ids_parse_or_are_refused() {
        assert_eq!(parse_event_id("3:41").unwrap(), (3, 41));
        assert_eq!(parse_event_id(" 0:-1 ").unwrap(), (0, -1));
        for bad in ["", "3", "3:", ":4", "a:1", "1:b", "1:2:3"] {
            assert!(parse_event_id(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn streams_are_bounded_per_user_and_in_all_and_freed_on_drop() {
        let settings = LiveSettings { max_streams: 3, max_streams_per_user: 2, ..LiveSettings::default() };
        let hub = LiveHub::new(settings, &Registry::new());
        let a1 = hub.subscribe("a").unwrap();
        let _a2 = hub.subscribe("a").unwrap();
        assert_eq!(hub.subscribe("a").err(), Some(StreamRefused::User { max: 2 }));
        let _b1 = hub.subscribe("b").unwrap();
        assert_eq!(hub.subscribe("c").err(), Some(StreamRefused::Total { max: 3 }));
        drop(a1);
        let _c1 = hub.subscribe("c").expect("a closed stream frees its place");
        assert_eq!(hub.metrics.open.get(), 3);
    }

    #[tokio::test]
    async fn events_reach_only_their_users_streams_and_a_slow_stream_is_closed() {
        let hub = LiveHub::new(LiveSettings::default(), &Registry::new());
        let mut a = hub.subscribe("a").unwrap();
        let mut b = hub.subscribe("b").unwrap();
        hub.send("a", event("sync.processed", 1));
        assert_eq!(a.rx.recv().await.unwrap().position, Some((2, 1)));
        assert!(b.rx.try_recv().is_err(), "b sees nothing of a's");
        for offset in 0..=QUEUE as i64 {
            hub.send("b", event("sync.processed", offset));
        }
        assert_eq!(hub.metrics.closed_slow.get(), 1);
        assert!(hub.users() == vec!["a".to_owned()], "b's stream is gone: {:?}", hub.users());
        // What was queued is still delivered; then the stream ends.
        let mut delivered = 0;
        while b.rx.recv().await.is_some() {
            delivered += 1;
        }
        assert_eq!(delivered, QUEUE);
    }

    #[tokio::test]
    async fn a_live_sync_already_replayed_is_not_sent_again() {
        let hub = LiveHub::new(LiveSettings::default(), &Registry::new());
        let subscription = hub.subscribe("a").unwrap();
        let stream = LiveStream {
            subscription,
            pending: VecDeque::from([Bytes::from_static(b"replayed\n\n")]),
            last_sent: HashMap::from([(2, 5)]),
            keepalive: tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_secs(60),
                Duration::from_secs(60),
            ),
            closing: hub.closing.clone(),
        };
        for offset in [4, 5, 6] {
            hub.send("a", event("sync.processed", offset));
        }
        hub.send("a", event("model.updated", 5));
        use futures::StreamExt;
        let mut stream = Box::pin(stream.into_stream());
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(String::from_utf8(stream.next().await.unwrap().unwrap().to_vec()).unwrap());
        }
        assert_eq!(got[0], "replayed\n\n");
        assert!(got[1].starts_with("id: 2:6\nevent: sync.processed"), "{got:?}");
        assert!(got[2].starts_with("id: 2:5\nevent: model.updated"), "{got:?}");
        hub.close();
        assert!(stream.next().await.is_none(), "closing ends the stream");
    }
}
