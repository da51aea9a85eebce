//! Live updates over Server-Sent Events (`GET /v1/users/{user_id}/events`), against the real
//! broker, registry, PostgreSQL and processor: a sync's processing arrives within a second of the
//! commit, a reconnect with Last-Event-ID gets what it missed in order and once, and a stream
//! shows only its own user's events.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

mod stack;

use stack::Stack;

/// One SSE message.
#[derive(Debug, Clone)]
struct Message {
    id: Option<String>,
    event: Option<String>,
    data: Value,
    comment: bool,
}

/// A stream as a client reads it.
struct Sse {
    res: reqwest::Response,
    buffer: String,
}

impl Sse {
    async fn open(stack: &Stack, user: &str, last_id: Option<&str>) -> Self {
        let res = open(stack, user, user, last_id).await;
        assert_eq!(res.status(), StatusCode::OK, "{:?}", res.headers());
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        let mut sse = Self { res, buffer: String::new() };
        // The first message says the stream is open (and sets the retry delay).
        let first = sse.next(Duration::from_secs(5)).await.expect("the stream opens");
        assert!(first.comment, "{first:?}");
        sse
    }

    /// The next message, comments included; None when `within` passes or the stream ends.
    async fn next(&mut self, within: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                let mut m = Message { id: None, event: None, data: Value::Null, comment: false };
                let mut data = String::new();
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        m.id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        m.event = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    } else if line.starts_with(':') {
                        m.comment = true;
                    }
                }
                if !data.is_empty() {
                    m.data = serde_json::from_str(&data).expect("event data is JSON");
                }
                return Some(m);
            }
            match tokio::time::timeout_at(deadline, self.res.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(std::str::from_utf8(&chunk).unwrap()),
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    /// Whether the server ends the stream within `within` (what is still buffered is skipped).
    async fn ends(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.res.chunk()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) | Ok(Err(_)) => return true,
                Err(_) => return false,
            }
        }
    }

    /// The next event (comments skipped).
    async fn next_event(&mut self, within: Duration) -> Option<Message> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self.next(left).await?;
            if m.event.is_some() {
                return Some(m);
            }
        }
    }

    /// Events until one is `kind` for `sync_id`; returns them all, that one last.
    async fn until_sync(&mut self, kind: &str, sync_id: &str, within: Duration) -> Vec<Message> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self
                .next_event(left)
                .await
                .unwrap_or_else(|| panic!("no {kind} for {sync_id} within {within:?}; saw {seen:?}"));
            let done = m.event.as_deref() == Some(kind) && m.data["sync_id"] == sync_id;
            seen.push(m);
            if done {
                return seen;
            }
        }
    }
}

async fn open(stack: &Stack, user: &str, token_user: &str, last_id: Option<&str>) -> reqwest::Response {
    let mut req = stack.http.get(format!("{}/v1/users/{user}/events", stack.api)).bearer_auth(stack.signer.mint(
        token_user,
        None,
        Duration::from_secs(600),
    ));
    if let Some(id) = last_id {
        req = req.header("Last-Event-ID", id);
    }
    req.send().await.unwrap()
}

#[actix_web::test]
async fn a_stream_gets_its_sync_processed_within_a_second_of_the_commit() {
    let stack = stack::spawn(true, |_| {}).await;
    let user = testkit::unique("live");
    let mut sse = Sse::open(&stack, &user, None).await;
    let accepted = stack.sync(&user, &format!("band-{user}")).await;
    let sync_id = accepted["sync_id"].as_str().unwrap();
    let seen = sse.until_sync("sync.processed", sync_id, Duration::from_secs(20)).await;
    let received = chrono::Utc::now();
    let event = seen.last().unwrap();
    // committed_at is the processor's clock just before its commit.
    let committed_at: chrono::DateTime<chrono::Utc> = event.data["committed_at"].as_str().unwrap().parse().unwrap();
    let delay = (received - committed_at).to_std().unwrap_or_default();
    assert!(delay < Duration::from_secs(1), "sync.processed came {delay:?} after the commit");
    assert_eq!(event.id.as_deref(), Some(format!("{}:{}", accepted["partition"], accepted["offset"]).as_str()));
    assert_eq!(event.data["status"], "processed");
    assert_eq!(event.data["counts"]["heart_rate_samples"], 180);
    // Then the days that changed.
    let update = sse.next_event(Duration::from_secs(5)).await.expect("model.updated follows");
    assert_eq!(update.event.as_deref(), Some("model.updated"), "{update:?}");
    assert_eq!(update.data["model_version"], health_model::MODEL_VERSION);
    assert!(update.data["from"].is_string() && update.data["days"].as_array().is_some_and(|d| !d.is_empty()));
    stack.stop().await;
}

#[actix_web::test]
async fn a_reconnect_with_last_event_id_gets_what_it_missed_in_order_and_once() {
    let stack = stack::spawn(true, |s| s.live.keepalive = Duration::from_millis(300)).await;
    let user = testkit::unique("resume");
    let mut sse = Sse::open(&stack, &user, None).await;
    let first = stack.sync(&user, &format!("band-{user}")).await;
    let seen = sse.until_sync("sync.processed", first["sync_id"].as_str().unwrap(), Duration::from_secs(20)).await;
    let last_id = seen.last().unwrap().id.clone().unwrap();
    // Idle, the stream sends keep-alive comments.
    let idle = sse.next(Duration::from_secs(5)).await.expect("a keep-alive");
    assert!(idle.comment || idle.event.as_deref() == Some("model.updated"), "{idle:?}");
    drop(sse);

    // Missed while disconnected.
    let mut missed = Vec::new();
    for _ in 0..3 {
        let accepted = stack.sync(&user, &format!("band-{user}")).await;
        stack.wait_processed(&user, &accepted).await;
        missed.push(accepted["sync_id"].as_str().unwrap().to_owned());
    }
    let mut sse = Sse::open(&stack, &user, Some(&last_id)).await;
    let mut replayed = Vec::new();
    while replayed.len() < missed.len() {
        let m = sse.next_event(Duration::from_secs(5)).await.expect("the missed syncs are replayed");
        if m.event.as_deref() == Some("sync.processed") {
            replayed.push(m);
        }
    }
    let ids: Vec<&str> = replayed.iter().map(|m| m.data["sync_id"].as_str().unwrap()).collect();
    assert_eq!(ids, missed, "every missed sync, in log order, and not the one seen before");
    assert!(replayed.iter().all(|m| m.data.get("committed_at").is_none()), "a replay does not know commit times");
    // Then live ones, and nothing replayed comes again.
    let live = stack.sync(&user, &format!("band-{user}")).await;
    let rest = sse.until_sync("sync.processed", live["sync_id"].as_str().unwrap(), Duration::from_secs(20)).await;
    let again: Vec<&Message> = rest.iter().filter(|m| m.event.as_deref() == Some("sync.processed")).collect::<Vec<_>>();
    assert_eq!(again.len(), 1, "no duplicates: {rest:?}");

    // A client that posts first and then opens the stream one offset before its sync sees it.
    let early = stack.sync(&user, &format!("band-{user}")).await;
    stack.wait_processed(&user, &early).await;
    let before = format!("{}:{}", early["partition"], early["offset"].as_i64().unwrap() - 1);
    let mut late = Sse::open(&stack, &user, Some(&before)).await;
    late.until_sync("sync.processed", early["sync_id"].as_str().unwrap(), Duration::from_secs(5)).await;

    // A malformed id is a 400 problem, before anything is streamed.
    let bad = open(&stack, &user, &user, Some("yesterday")).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");
    stack.stop().await;
}

#[actix_web::test]
async fn a_stream_shows_only_its_own_users_events_and_streams_are_bounded() {
    let stack = stack::spawn(true, |s| {
        s.live.max_streams_per_user = 2;
        s.live.max_streams = 3;
        // A client that went away is noticed at the next write: a keep-alive, at the latest.
        s.live.keepalive = Duration::from_millis(200);
    })
    .await;
    let (alice, bob) = (testkit::unique("alice"), testkit::unique("bob"));
    let mut alices = Sse::open(&stack, &alice, None).await;
    let mut bobs = Sse::open(&stack, &bob, None).await;
    for _ in 0..2 {
        let accepted = stack.sync(&alice, &format!("band-{alice}")).await;
        alices.until_sync("sync.processed", accepted["sync_id"].as_str().unwrap(), Duration::from_secs(20)).await;
    }
    let mut bob_saw = Vec::new();
    while let Some(m) = bobs.next_event(Duration::from_secs(1)).await {
        bob_saw.push(m);
    }
    assert!(bob_saw.is_empty(), "bob's stream shows nothing of alice's: {bob_saw:?}");
    // Nor can bob open alice's.
    let refused = open(&stack, &alice, &bob, None).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // Two streams per user, three in all.
    let _second = Sse::open(&stack, &alice, None).await;
    let third = open(&stack, &alice, &alice, None).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.headers()["retry-after"], "5");
    let problem: Value = third.json().await.unwrap();
    assert_eq!(problem["type"], "https://fitness.example/problems/too-many-streams");
    let carol = testkit::unique("carol");
    let full = open(&stack, &carol, &carol, None).await;
    assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
    // A closed stream frees its place.
    drop(bobs);
    let mut freed = None;
    for _ in 0..50 {
        let res = open(&stack, &carol, &carol, None).await;
        if res.status() == StatusCode::OK {
            freed = Some(res);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed.is_some(), "bob's place was given back");

    // Stopping the service ends open streams instead of waiting for them.
    let started = Instant::now();
    stack.stop().await;
    assert!(started.elapsed() < Duration::from_secs(10), "stopped in {:?}", started.elapsed());
    assert!(alices.ends(Duration::from_secs(2)).await, "the stream ended");
}
