//! Rate limits against the real service: ingest-api on the test broker and registry, with a real
//! PostgreSQL read model, and tiny limits so the tests are quick.

use std::time::Duration;

use ingest_api::auth::TokenSigner;
use ingest_api::config::{RateLimit, RateLimits, Secret, Settings};
use ingest_api::example::standard_sync;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::Value;
use testkit::apps::RunningApp;
use testkit::{unique, TestDatabase};

const SECRET: &str = testkit::apps::TOKEN_SECRET;

struct TestApp {
    base: String,
    http: reqwest::Client,
    signer: TokenSigner,
    _app: RunningApp,
    _db: TestDatabase,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name} header"))
    }
}

async fn spawn_app(rate_limits: RateLimits) -> TestApp {
    testkit::init_logging();
    let db = TestDatabase::create();
    processor::migrate(&processor::db::pool(&db.url, 1)).await.expect("migrations");
    let topic = unique("device-synced");
    testkit::create_topic(&topic, 3).await;
    let settings = Settings {
        read_database_url: db.url.clone(),
        read_pool_size: 2,
        read_max_wait: Duration::from_secs(1),
        read_max_days: 31,
        read_max_waiters: 100,
        rate_limits,
        ..testkit::apps::ingest_settings(&topic)
    };
    let app = testkit::apps::spawn_ingest(settings).await;
    TestApp {
        base: app.url.clone(),
        http: reqwest::Client::new(),
        signer: TokenSigner::new(&Secret::new(SECRET)),
        _app: app,
        _db: db,
    }
}

fn only(device: RateLimit, user: RateLimit, reads: RateLimit) -> RateLimits {
    RateLimits { device_post: device, user_post: user, user_reads: reads, ..RateLimits::default() }
}

impl TestApp {
    async fn answer(res: reqwest::Response) -> Answer {
        let (status, headers) = (res.status(), res.headers().clone());
        Answer { status, headers, body: res.json().await.unwrap_or(Value::Null) }
    }

    async fn post(&self, user: &str, device: &str, body: &Value) -> Answer {
        let token = self.signer.mint(user, Some(device), Duration::from_secs(600));
        let res = self
            .http
            .post(format!("{}/v1/devices/{device}/syncs", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request sent");
        Self::answer(res).await
    }

    async fn sync(&self, user: &str, device: &str) -> Answer {
        self.post(user, device, &standard_sync(uuid::Uuid::new_v4(), chrono::Utc::now().timestamp_millis(), 1, false))
            .await
    }

    async fn get(&self, user: &str, path: &str) -> Answer {
        let token = self.signer.mint(user, None, Duration::from_secs(600));
        let res = self.http.get(format!("{}{path}", self.base)).bearer_auth(token).send().await.expect("request sent");
        Self::answer(res).await
    }

    /// `ingest_rate_limited_total{limit="…"}` from /metrics.
    async fn limited(&self, limit: &str) -> u64 {
        let text = self.http.get(format!("{}/metrics", self.base)).send().await.unwrap().text().await.unwrap();
        let prefix = format!("ingest_rate_limited_total{{limit=\"{limit}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {prefix} in /metrics"))
            .parse()
            .unwrap()
    }
}

/// The 429 of `policy`: problem+json naming the limit, `Retry-After` in whole seconds (at most
/// `max_wait`), and the IETF `RateLimit` fields agreeing with it. Returns Retry-After.
fn assert_limited(a: &Answer, policy: &str, expected_policy: &str, max_wait: u64) -> u64 {
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    assert_eq!(a.header("content-type"), "application/problem+json");
    let retry: u64 = a.header("retry-after").parse().expect("Retry-After is whole seconds");
    assert!((1..=max_wait).contains(&retry), "Retry-After {retry}");
    assert_eq!(a.header("ratelimit"), format!("\"{policy}\";r=0;t={retry}"));
    assert_eq!(a.header("ratelimit-policy"), expected_policy);
    assert_eq!(a.body["status"], 429);
    assert_eq!(a.body["type"], "https://fitness.example/problems/rate-limited");
    assert_eq!(a.body["violated-policies"], serde_json::json!([policy]));
    assert_eq!(a.body["retry_after_s"], retry);
    let detail = a.body["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("the {policy} limit")), "{detail}");
    assert!(detail.contains(&format!("retry in {retry} s")), "{detail}");
    retry
}

#[tokio::test]
async fn a_device_over_its_limit_gets_429_and_passes_after_retry_after() {
    let app = spawn_app(only(RateLimit { per_second: 0.5, burst: 2 }, RateLimit::OFF, RateLimit::OFF)).await;
    for _ in 0..2 {
        assert_eq!(app.sync("u1", "band-1").await.status, StatusCode::ACCEPTED);
    }
    let body = standard_sync(uuid::Uuid::new_v4(), chrono::Utc::now().timestamp_millis(), 1, false);
    let refused = app.post("u1", "band-1", &body).await;
    let retry = assert_limited(&refused, "device", "\"device\";q=2;w=4", 2);
    assert!(refused.body["detail"].as_str().unwrap().contains("this device"), "{}", refused.body);
    // Other devices, of this user or another, have buckets of their own.
    assert_eq!(app.sync("u1", "band-2").await.status, StatusCode::ACCEPTED);
    assert_eq!(app.sync("u2", "band-1").await.status, StatusCode::ACCEPTED);
    assert_eq!(app.limited("device").await, 1);
    assert_eq!(app.limited("user").await, 0);
    // Bad requests over the limit are refused before anything reads their body.
    let bad = app.post("u1", "band-1", &serde_json::json!({"not": "a sync"})).await;
    assert_eq!(bad.status, StatusCode::TOO_MANY_REQUESTS);
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let again = app.post("u1", "band-1", &body).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "the same sync after Retry-After: {}", again.body);
    assert_eq!(again.body["sync_id"], body["sync_id"]);
    assert_eq!(app.limited("device").await, 2);
}

#[tokio::test]
async fn a_user_is_limited_over_all_their_devices() {
    let app = spawn_app(only(RateLimit::OFF, RateLimit { per_second: 0.5, burst: 3 }, RateLimit::OFF)).await;
    for d in ["band-1", "band-2", "strap-1"] {
        assert_eq!(app.sync("u1", d).await.status, StatusCode::ACCEPTED);
    }
    let refused = app.sync("u1", "band-3").await;
    assert_limited(&refused, "user", "\"user\";q=3;w=6", 2);
    assert!(refused.body["detail"].as_str().unwrap().contains("this user's devices"), "{}", refused.body);
    assert_eq!(app.sync("u2", "band-1").await.status, StatusCode::ACCEPTED, "another user is not affected");
    assert_eq!(app.limited("user").await, 1);
    assert_eq!(app.limited("device").await, 0);
}

#[tokio::test]
async fn reads_are_limited_per_user_over_every_read_route() {
    let app = spawn_app(only(RateLimit::OFF, RateLimit::OFF, RateLimit { per_second: 1.0, burst: 3 })).await;
    let sync_path = format!("/v1/syncs/{}", uuid::Uuid::new_v4());
    for path in ["/v1/users/u1/model", "/v1/users/u1/days", &sync_path] {
        let a = app.get("u1", path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
    }
    for path in ["/v1/users/u1/syncs", "/v1/users/u1/model", &sync_path] {
        assert_limited(&app.get("u1", path).await, "reads", "\"reads\";q=3;w=3", 1);
    }
    let other = app.get("u2", "/v1/users/u2/model").await;
    assert_eq!(other.status, StatusCode::OK, "another user is not affected: {}", other.body);
    assert_eq!(app.limited("reads").await, 3);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(app.get("u1", "/v1/users/u1/model").await.status, StatusCode::OK);
}

#[tokio::test]
async fn default_limits_let_a_phone_through_and_stop_a_loop() {
    let app = spawn_app(RateLimits::default()).await;
    // A phone: a sync, then its status, a few times.
    for _ in 0..5 {
        assert_eq!(app.sync("phone-user", "band").await.status, StatusCode::ACCEPTED);
        assert_eq!(app.get("phone-user", "/v1/users/phone-user/model").await.status, StatusCode::OK);
    }
    // A stolen token in a loop: the default burst passes, then 429s.
    let token = app.signer.mint("thief", Some("band"), Duration::from_secs(600));
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for _ in 0..80 {
        let res = app
            .http
            .post(format!("{}/v1/devices/band/syncs", app.base))
            .bearer_auth(&token)
            .json(&standard_sync(uuid::Uuid::new_v4(), chrono::Utc::now().timestamp_millis(), 1, false))
            .send()
            .await
            .unwrap();
        *statuses.entry(res.status().as_u16()).or_default() += 1;
    }
    let accepted = statuses.get(&202).copied().unwrap_or(0);
    assert!((60..=62).contains(&accepted), "the default device burst is 60: {statuses:?}");
    assert_eq!(statuses.get(&429).copied().unwrap_or(0), 80 - accepted, "{statuses:?}");
}
