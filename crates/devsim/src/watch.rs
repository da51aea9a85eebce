//! `devsim run --watch`: follows each simulated user's live event stream
//! (`GET /v1/users/{user_id}/events`) and prints each sync's processing as it happens, with how
//! long after its acceptance the processor committed it. A dropped stream is reopened with the
//! last event id, so nothing is missed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::client::Client;

/// What the watchers saw.
#[derive(Debug)]
pub struct Watched {
    pub processed: AtomicU64,
    pub failed: AtomicU64,
    pub model_updates: AtomicU64,
    /// Streams that had to be opened again.
    pub reopened: AtomicU64,
    /// Per sync event, from the processor's commit (`committed_at`: its clock just before the
    /// commit) to the event's arrival here, in µs.
    pub delivery: Mutex<hdrhistogram::Histogram<u64>>,
    /// Whether each event is printed.
    print: bool,
}

impl Watched {
    fn new(print: bool) -> Self {
        Self {
            processed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            model_updates: AtomicU64::new(0),
            reopened: AtomicU64::new(0),
            delivery: Mutex::new(crate::latency::histogram()),
            print,
        }
    }
}

/// Starts one watcher per user; they stop with `stop`. Returns once every stream is open (or
/// after 5 s), so that syncs sent after it are all seen. `print`: a line per event on stdout.
pub async fn start(
    client: &Client,
    users: &[String],
    print: bool,
    stop: CancellationToken,
) -> anyhow::Result<Arc<Watched>> {
    // No overall timeout: a stream stays open for the whole run.
    let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build()?;
    let watched = Arc::new(Watched::new(print));
    let mut opened = Vec::new();
    for user in users {
        let (tx, rx) = tokio::sync::oneshot::channel();
        opened.push(rx);
        let url = format!("{}/v1/users/{user}/events", client.base());
        let token = client.user_token(user);
        tokio::spawn(follow(http.clone(), url, token, user.clone(), watched.clone(), stop.clone(), tx));
    }
    let wait = Duration::from_secs(5).max(Duration::from_millis(5 * users.len() as u64));
    let _ = tokio::time::timeout(wait, futures::future::join_all(opened)).await;
    Ok(watched)
}

async fn follow(
    http: reqwest::Client,
    url: String,
    token: String,
    user: String,
    watched: Arc<Watched>,
    stop: CancellationToken,
    opened: tokio::sync::oneshot::Sender<()>,
) {
    let mut opened = Some(opened);
    let mut last_id: Option<String> = None;
    let mut first = true;
    while !stop.is_cancelled() {
        if !std::mem::take(&mut first) {
            watched.reopened.fetch_add(1, Ordering::Relaxed);
        }
        let mut req = http.get(&url).bearer_auth(&token);
        if let Some(id) = &last_id {
            req = req.header("Last-Event-ID", id.as_str());
        }
        let res = tokio::select! {
            () = stop.cancelled() => return,
            res = req.send() => res,
        };
        match res {
            Ok(mut res) if res.status().is_success() => {
                if let Some(tx) = opened.take() {
                    let _ = tx.send(());
                }
                let mut buffer = String::new();
                loop {
                    let chunk = tokio::select! {
                        () = stop.cancelled() => return,
                        chunk = res.chunk() => chunk,
                    };
                    let Ok(Some(chunk)) = chunk else { break };
                    buffer.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(end) = buffer.find("\n\n") {
                        let message: String = buffer.drain(..end + 2).collect();
                        if let Some(line) = print_event(&user, &message, &mut last_id, &watched) {
                            if watched.print {
                                println!("{line}");
                            }
                        }
                    }
                }
            }
            Ok(res) => eprintln!("devsim watch: {user}: the event stream answered {}; retrying", res.status()),
            Err(e) => eprintln!("devsim watch: {user}: {e}; retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// One SSE message as a line to print (None for comments).
fn print_event(user: &str, message: &str, last_id: &mut Option<String>, watched: &Watched) -> Option<String> {
    let (mut kind, mut data) = (None, String::new());
    for line in message.lines() {
        if let Some(id) = line.strip_prefix("id: ") {
            *last_id = Some(id.to_owned());
        } else if let Some(k) = line.strip_prefix("event: ") {
            kind = Some(k.to_owned());
        } else if let Some(d) = line.strip_prefix("data: ") {
            data.push_str(d);
        }
    }
    let kind = kind?;
    let data: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
    Some(match kind.as_str() {
        "sync.processed" | "sync.failed" => {
            let counter = if kind == "sync.processed" { &watched.processed } else { &watched.failed };
            counter.fetch_add(1, Ordering::Relaxed);
            // From the commit when the event says when it was (live events), else from the
            // transaction's start (replayed ones).
            let since = data["committed_at"].as_str().or(data["processed_at"].as_str());
            if let Some(at) = since.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
                let micros = (chrono::Utc::now() - at.with_timezone(&chrono::Utc)).num_microseconds().unwrap_or(0);
                let mut h = watched.delivery.lock().unwrap_or_else(|p| p.into_inner());
                h.saturating_record(u64::try_from(micros).unwrap_or(0).max(1));
            }
            let lag = match (data["ingested_at"].as_str(), data["processed_at"].as_str()) {
                (Some(a), Some(b)) => chrono::DateTime::parse_from_rfc3339(b)
                    .ok()
                    .zip(chrono::DateTime::parse_from_rfc3339(a).ok())
                    .map(|(b, a)| format!(", {} ms after its 202", (b - a).num_milliseconds())),
                _ => None,
            }
            .unwrap_or_default();
            let why = data["failure_reason"].as_str().map(|r| format!(": {r}")).unwrap_or_default();
            format!(
                "watch {user}: {kind} {} at {}:{} ({} HR samples){lag}{why}",
                data["sync_id"].as_str().unwrap_or("?"),
                data["partition"],
                data["offset"],
                data["counts"]["heart_rate_samples"]
            )
        }
        "model.updated" => {
            watched.model_updates.fetch_add(1, Ordering::Relaxed);
            format!(
                "watch {user}: model.updated {} to {} (model version {})",
                data["from"].as_str().unwrap_or("?"),
                data["to"].as_str().unwrap_or("?"),
                data["model_version"]
            )
        }
        other => format!("watch {user}: {other} {data}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_print_as_one_line_and_move_the_last_id() {
        let watched = Watched::new(false);
        let mut last = None;
        let message = "id: 2:7\nevent: sync.processed\ndata: {\"sync_id\":\"s\",\"partition\":2,\"offset\":7,\
            \"counts\":{\"heart_rate_samples\":180},\"ingested_at\":\"2026-03-01T00:00:00Z\",\
            \"processed_at\":\"2026-03-01T00:00:00.120Z\"}\n\n";
        let line = print_event("u", message, &mut last, &watched).unwrap();
        assert_eq!(line, "watch u: sync.processed s at 2:7 (180 HR samples), 120 ms after its 202");
        assert_eq!(last.as_deref(), Some("2:7"));
        assert_eq!(watched.processed.load(Ordering::Relaxed), 1);
        assert!(print_event("u", ": keep-alive\n\n", &mut last, &watched).is_none());
    }
}

/// What `devsim watch` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WatchReport {
    pub streams: usize,
    pub elapsed_s: f64,
    pub sync_events: u64,
    pub model_updates: u64,
    pub reopened: u64,
    /// Delivery from the processor's commit to arrival, in milliseconds.
    pub delivery_ms: DeliveryMs,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryMs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// `devsim watch`: holds a stream open for each of `users` for `duration` (or until `stop`),
/// then reports how fast sync events arrived.
pub async fn hold(
    client: &Client,
    users: &[String],
    duration: Duration,
    stop: CancellationToken,
) -> anyhow::Result<WatchReport> {
    let started = std::time::Instant::now();
    let stop_watching = stop.child_token();
    let watched = start(client, users, false, stop_watching.clone()).await?;
    eprintln!("devsim watch: {} streams open after {:.1} s", users.len(), started.elapsed().as_secs_f64());
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(duration) => {}
    }
    stop_watching.cancel();
    let h = watched.delivery.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let ms = |q: f64| if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1000.0 };
    Ok(WatchReport {
        streams: users.len(),
        elapsed_s: started.elapsed().as_secs_f64(),
        sync_events: watched.processed.load(Ordering::Relaxed) + watched.failed.load(Ordering::Relaxed),
        model_updates: watched.model_updates.load(Ordering::Relaxed),
        reopened: watched.reopened.load(Ordering::Relaxed),
        delivery_ms: DeliveryMs { p50: ms(0.5), p90: ms(0.9), p99: ms(0.99), max: h.max() as f64 / 1000.0 },
    })
}
