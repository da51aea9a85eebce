//! ingest-api over HTTP against the real broker and schema registry (no database).

use std::io::Write;
use std::time::Duration;

use events::{DeviceSynced, EventDecoder};
use ingest_api::auth::TokenSigner;
use ingest_api::config::{Secret, Settings};
use ingest_api::example::standard_sync;
use ingest_api::Application;
use rdkafka::message::{Headers, Message};
use reqwest::StatusCode;
use serde_json::{json, Value};
use testkit::apps::RunningApp;
use testkit::unique;

const SECRET: &str = testkit::apps::TOKEN_SECRET;

struct TestApp {
    base: String,
    topic: String,
    http: reqwest::Client,
    signer: TokenSigner,
    /// The in-process service, stopped when the test ends (None: a child process).
    _app: Option<RunningApp>,
}

fn settings(topic: &str, bootstrap: String) -> Settings {
    Settings { kafka_bootstrap_servers: bootstrap, ..testkit::apps::ingest_settings(topic) }
}

async fn spawn_app_with(settings: Settings) -> TestApp {
    let topic = settings.topic.clone();
    let app = testkit::apps::spawn_ingest(settings).await;
    TestApp::new(app.url.clone(), topic, Some(app))
}

async fn spawn_app() -> TestApp {
    let topic = unique("device-synced");
    testkit::create_topic(&topic, 3).await;
    spawn_app_with(settings(&topic, testkit::kafka_bootstrap())).await
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl TestApp {
    fn new(base: String, topic: String, app: Option<RunningApp>) -> Self {
        Self { base, topic, http: reqwest::Client::new(), signer: TokenSigner::new(&Secret::new(SECRET)), _app: app }
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.base)).send().await {
                if r.status() == StatusCode::OK {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("ingest-api never became ready");
    }

    fn device_token(&self, user: &str, device: &str) -> String {
        self.signer.mint(user, Some(device), Duration::from_secs(600))
    }

    async fn post(
        &self,
        device: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.post(format!("{}/v1/devices/{device}/syncs", self.base)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("request sent");
        let (status, headers) = (res.status(), res.headers().clone());
        (status, headers, res.json().await.unwrap_or(Value::Null))
    }

    async fn decode_all(&self, count: usize) -> Vec<(rdkafka::message::OwnedMessage, DeviceSynced)> {
        let decoder = EventDecoder::new(&testkit::schema_registry_url(), events::device_synced::schema()).unwrap();
        let mut out = Vec::new();
        for m in testkit::consume(&self.topic, count, Duration::from_secs(20)).await {
            let e = decoder.decode::<DeviceSynced>(m.payload().unwrap()).await.expect("decodes through the registry");
            out.push((m, e));
        }
        out
    }
}

fn header(m: &rdkafka::message::OwnedMessage, key: &str) -> Option<String> {
    m.headers()?
        .iter()
        .find(|h| h.key == key)
        .map(|h| String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
}

/// The W3C specification's example `traceparent`, as a caller with a tracer sends it.
const CALLER_TRACE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

#[tokio::test]
async fn a_valid_sync_is_published_and_acknowledged_with_202() {
    let app = spawn_app().await;
    let sync_id = uuid::Uuid::new_v4();
    let body = standard_sync(sync_id, now_ms(), 1, true);
    let token = app.device_token("user-7", "band-7");
    let res = app
        .http
        .post(format!("{}/v1/devices/band-7/syncs", app.base))
        .bearer_auth(&token)
        .header("X-Request-Id", "req-123")
        .header("traceparent", CALLER_TRACE)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(res.headers()["x-request-id"], "req-123");
    // The request's own span, in the caller's trace.
    let span = res.headers()["traceresponse"].to_str().unwrap().to_owned();
    assert!(span.starts_with("00-0af7651916cd43dd8448eb211c80319c-"), "{span}");
    assert_ne!(span, CALLER_TRACE);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let reply: Value = res.json().await.unwrap();
    assert_eq!(reply["sync_id"], json!(sync_id.to_string()));
    assert_eq!(reply["status_url"], json!(location));
    let token: events::ConsistencyToken = reply["consistency_token"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        (token.partition as i64, token.offset),
        (reply["partition"].as_i64().unwrap(), reply["offset"].as_i64().unwrap())
    );

    let records = app.decode_all(1).await;
    assert_eq!(records.len(), 1);
    let (m, event) = &records[0];
    assert_eq!((m.partition(), m.offset()), (token.partition, token.offset), "the token names the record");
    assert_eq!(m.key(), Some(&b"user-7"[..]));
    assert_eq!(header(m, events::headers::EVENT_ID).as_deref(), reply["event_id"].as_str());
    assert_eq!(header(m, events::headers::SYNC_ID), Some(sync_id.to_string()));
    assert_eq!(header(m, events::headers::CORRELATION_ID).as_deref(), Some("req-123"));
    assert_eq!(header(m, events::headers::TRACEPARENT), Some(span), "the record carries the request's span");
    assert_eq!(header(m, events::headers::CONTENT_TYPE).as_deref(), Some(events::headers::AVRO_CONTENT_TYPE));

    // The event is the command after normalization: skew-corrected, delta-encoded, same data.
    let skew = body["clock"]["phone_time_ms"].as_i64().unwrap() - body["clock"]["device_time_ms"].as_i64().unwrap();
    assert_eq!((event.user_id.as_str(), event.device_id.as_str()), ("user-7", "band-7"));
    assert_eq!(event.clock.skew_ms, skew);
    let mut t = event.window_start_ms;
    let times: Vec<i64> = event
        .heart_rate
        .time_deltas_ms
        .iter()
        .map(|d| {
            t += d;
            t
        })
        .collect();
    let sent: Vec<i64> =
        body["heart_rate"].as_array().unwrap().iter().map(|s| s["t"].as_i64().unwrap() + skew).collect();
    assert_eq!(times, sent);
    let bpm: Vec<i32> =
        body["heart_rate"].as_array().unwrap().iter().map(|s| s["bpm"].as_i64().unwrap() as i32).collect();
    assert_eq!(event.heart_rate.bpm, bpm);
    assert_eq!(event.rr_blocks.iter().map(|b| b.intervals_ms.len()).sum::<usize>(), 900);
    assert_eq!(event.steps.steps.len(), 15);
    assert_eq!(event.sleep.len(), 40);
    assert_eq!(event.profile.as_ref().map(|p| p.birth_year), Some(1988));
    assert!(event.dropped_samples.is_empty());
}

#[tokio::test]
async fn dropped_samples_are_counted_in_the_event() {
    let app = spawn_app().await;
    let mut body = standard_sync(uuid::Uuid::new_v4(), now_ms(), 2, false);
    body["heart_rate"][0]["bpm"] = json!(320);
    body["heart_rate"][1]["bpm"] = json!(255);
    let (status, _, _) = app.post("d1", Some(&app.device_token("u1", "d1")), &body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, event) = app.decode_all(1).await.pop().unwrap();
    assert_eq!(event.dropped_samples.get("hr_out_of_range"), Some(&1));
    assert_eq!(event.dropped_samples.get("hr_no_reading"), Some(&1));
    assert_eq!(event.heart_rate.bpm.len(), 178);
}

#[tokio::test]
async fn rejected_commands_get_problem_details_and_publish_nothing() {
    let app = spawn_app().await;
    let token = app.device_token("u1", "d1");
    let mut body = standard_sync(uuid::Uuid::new_v4(), now_ms(), 3, false);
    body["sequence"] = json!({"first": 5, "last": 4});
    body["device"]["hr_sensor"] = json!("laser");
    let (status, headers, problem) = app.post("d1", Some(&token), &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(problem["status"], json!(422));
    let pointers: Vec<&str> =
        problem["violations"].as_array().unwrap().iter().map(|v| v["pointer"].as_str().unwrap()).collect();
    assert_eq!(pointers, vec!["/device/hr_sensor", "/sequence/last"]);

    // Malformed JSON, another media type, an unknown encoding, a corrupt gzip body.
    let url = format!("{}/v1/devices/d1/syncs", app.base);
    let send = |ct: &str, enc: Option<&str>, body: Vec<u8>| {
        let mut r = app.http.post(&url).bearer_auth(&token).header("content-type", ct).body(body);
        if let Some(e) = enc {
            r = r.header("content-encoding", e);
        }
        r.send()
    };
    let res = send("application/json", None, b"{\"sync_id\":".to_vec()).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(send("text/plain", None, b"{}".to_vec()).await.unwrap().status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        send("application/json", Some("br"), b"{}".to_vec()).await.unwrap().status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        send("application/json", Some("gzip"), b"not gzip".to_vec()).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );

    // Nothing of it reached the topic.
    assert_eq!(testkit::topic_record_count(&app.topic), 0);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[tokio::test]
async fn gzip_bodies_are_accepted_and_size_limits_hold() {
    let topic = unique("device-synced");
    testkit::create_topic(&topic, 1).await;
    let mut s = settings(&topic, testkit::kafka_bootstrap());
    s.limits.max_body_bytes = 64 * 1024;
    let app = spawn_app_with(s).await;
    let token = app.device_token("u1", "d1");
    let url = format!("{}/v1/devices/d1/syncs", app.base);
    let body = serde_json::to_vec(&standard_sync(uuid::Uuid::new_v4(), now_ms(), 4, false)).unwrap();
    let compressed = gzip(&body);
    assert!(compressed.len() < body.len() / 2);
    let res = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(compressed)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);

    // Over the limit as sent, and over it only once decompressed (a gzip bomb).
    let big = vec![b' '; 70 * 1024];
    let res = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let bomb = gzip(&big);
    assert!(bomb.len() < 64 * 1024);
    let res = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(testkit::topic_record_count(&topic), 1);
}

#[tokio::test]
async fn authentication_and_authorization() {
    let app = spawn_app().await;
    let body = standard_sync(uuid::Uuid::new_v4(), now_ms(), 5, false);
    let forged =
        TokenSigner::new(&Secret::new("some-other-secret-000")).mint("u1", Some("d1"), Duration::from_secs(600));
    let expired = app.signer.mint("u1", Some("d1"), Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (token, expected) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("garbage".to_owned()), StatusCode::UNAUTHORIZED),
        (Some(forged), StatusCode::UNAUTHORIZED),
        (Some(expired), StatusCode::UNAUTHORIZED),
        (Some(app.device_token("u1", "another-device")), StatusCode::FORBIDDEN),
        (Some(app.signer.mint("u1", None, Duration::from_secs(600))), StatusCode::FORBIDDEN),
    ] {
        let (status, headers, problem) = app.post("d1", token.as_deref(), &body).await;
        assert_eq!(status, expected, "{problem}");
        assert_eq!(headers["content-type"], "application/problem+json");
    }
    assert_eq!(testkit::topic_record_count(&app.topic), 0);
}

#[tokio::test]
async fn a_retried_sync_is_accepted_again_with_the_same_sync_id() {
    let app = spawn_app().await;
    let token = app.device_token("u1", "d1");
    let sync_id = uuid::Uuid::new_v4();
    let mut body = standard_sync(sync_id, now_ms(), 6, false);
    let (s1, _, first) = app.post("d1", Some(&token), &body).await;
    // The retry carries the id in the Idempotency-Key header only.
    body.as_object_mut().unwrap().remove("sync_id");
    let res = app
        .http
        .post(format!("{}/v1/devices/d1/syncs", app.base))
        .bearer_auth(&token)
        .header("Idempotency-Key", sync_id.to_string())
        .json(&body)
        .send()
        .await
        .unwrap();
    let s2 = res.status();
    let second: Value = res.json().await.unwrap();
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(first["sync_id"], second["sync_id"]);
    assert_ne!(first["event_id"], second["event_id"]);
    let events = app.decode_all(2).await;
    assert!(events.iter().all(|(_, e)| e.sync_id == sync_id.to_string()));
}

#[tokio::test]
async fn metrics_and_openapi() {
    let app = spawn_app().await;
    let doc: Value = app.http.get(format!("{}/openapi.json", app.base)).send().await.unwrap().json().await.unwrap();
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json")).unwrap())
            .unwrap();
    assert_eq!(doc, committed, "the served document is the committed one (run `make openapi`)");
    assert_eq!(doc["openapi"], json!("3.1.0"));
    // Every documented route exists.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let url = format!(
                "{}{}",
                app.base,
                path.replace("{device_id}", "d1").replace("{user_id}", "u1").replace("{sync_id}", "x")
            );
            let res = app.http.request(method.to_uppercase().parse().unwrap(), url).send().await.unwrap();
            assert_ne!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
        }
    }
    // The example request body is a complete standard sync that gets 202.
    let example = &doc["paths"]["/v1/devices/{device_id}/syncs"]["post"]["requestBody"]["content"]["application/json"]
        ["examples"]["standard"]["value"];
    assert_eq!(example["heart_rate"].as_array().unwrap().len(), 180);
    // Sent now, as a phone would: its clock reads the server's (give or take), the device's the
    // same skew behind, so the wear keeps its corrected times.
    let mut example = example.clone();
    let skew =
        example["clock"]["phone_time_ms"].as_i64().unwrap() - example["clock"]["device_time_ms"].as_i64().unwrap();
    example["clock"] = json!({"device_time_ms": now_ms() - skew, "phone_time_ms": now_ms()});
    let (status, _, reply) = app.post("d1", Some(&app.device_token("u1", "d1")), &example).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");

    let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("ingest_records_total{fate=\"delivered\"} 1"), "{metrics}");
    assert!(
        metrics.contains("ingest_http_requests_total{route=\"/v1/devices/{device_id}/syncs\",status=\"202\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ingest_producer_queue_depth"));
}

#[test]
fn the_token_command_mints_tokens_and_needs_the_secret() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ingest-api"))
        .args(["token", "--device", "band-1", "--user", "u-1"])
        .env("AUTH_TOKEN_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let claims = TokenSigner::new(&Secret::new(SECRET)).verify(token.trim()).unwrap();
    assert_eq!((claims.sub.as_str(), claims.device.as_deref()), ("u-1", Some("band-1")));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ingest-api"))
        .args(["token", "--user", "u-1"])
        .env_remove("AUTH_TOKEN_SECRET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AUTH_TOKEN_SECRET is not set"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ingest-api"))
        .args(["token", "--bogus"])
        .env("AUTH_TOKEN_SECRET", SECRET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test]
async fn with_the_broker_down_the_answer_is_503_never_202_and_it_recovers() {
    let mut broker = testkit::PrivateBroker::start().await;
    let topic = unique("device-synced");
    testkit::create_topic_on(&broker.bootstrap(), &topic, 2).await;
    let mut s = settings(&topic, broker.bootstrap());
    s.delivery_timeout = Duration::from_millis(1500);
    let app = spawn_app_with(s).await;
    let token = app.device_token("u1", "d1");
    let body = || standard_sync(uuid::Uuid::new_v4(), now_ms(), 8, false);
    assert_eq!(app.post("d1", Some(&token), &body()).await.0, StatusCode::ACCEPTED);

    broker.kill();
    let (status, headers, problem) = app.post("d1", Some(&token), &body()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(headers["retry-after"], "5");
    assert_eq!(headers["content-type"], "application/problem+json");

    // The broker comes back; the service recovers without a restart.
    broker.restart().await;
    let mut last = None;
    for _ in 0..40 {
        let (status, _, reply) = app.post("d1", Some(&token), &body()).await;
        assert!(status == StatusCode::ACCEPTED || status == StatusCode::SERVICE_UNAVAILABLE, "{status}: {reply}");
        last = Some(status);
        if status == StatusCode::ACCEPTED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(last, Some(StatusCode::ACCEPTED), "never recovered");
}

#[tokio::test]
async fn a_registry_500_at_start_up_is_retried_until_registration_works_and_readyz_tells_the_truth() {
    let target = testkit::schema_registry_url().trim_start_matches("http://").to_owned();
    let registry = testkit::TcpProxy::start(&target).await;
    registry.answer_http(500);
    let topic = unique("device-synced");
    testkit::create_topic(&topic, 2).await;
    let mut s = settings(&topic, testkit::kafka_bootstrap());
    s.schema_registry_url = format!("http://127.0.0.1:{}", registry.port);
    let app = Application::build(s).await.expect("ingest-api starts while the registry errs");
    let app = RunningApp::start(app.port(), |shutdown| app.run_until_stopped(shutdown));
    let base = app.url.clone();
    let http = reqwest::Client::new();
    let readyz = || async {
        let r = http.get(format!("{base}/readyz")).send().await.expect("readyz answers");
        (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
    };
    // Long enough for several attempts: each one fails, none is remembered as final.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, body) = readyz().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let schema = body["schema"].as_str().unwrap_or_default();
    assert!(schema.contains("retrying") && schema.contains("500"), "says why: {body}");
    assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), StatusCode::OK);

    registry.restore();
    let t = TestApp::new(base, topic, Some(app));
    t.wait_ready().await;
    let token = t.device_token("u1", "d1");
    let body = standard_sync(uuid::Uuid::new_v4(), now_ms(), 9, false);
    assert_eq!(t.post("d1", Some(&token), &body).await.0, StatusCode::ACCEPTED);
}

/// The real ingest-api binary on a free port, publishing to `topic`, once it is ready; and its port.
async fn spawn_binary(topic: &str) -> (std::process::Child, TestApp, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ingest-api"))
        .env("INGEST_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("KAFKA_BOOTSTRAP_SERVERS", testkit::kafka_bootstrap())
        .env("SCHEMA_REGISTRY_URL", testkit::schema_registry_url())
        .env("INGEST_TOPIC", topic)
        .env("AUTH_TOKEN_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let app = TestApp::new(format!("http://127.0.0.1:{port}"), topic.to_owned(), None);
    app.wait_ready().await;
    (child, app, port)
}

#[tokio::test]
async fn sigterm_loses_no_acknowledged_request() {
    a_stop_signal_loses_no_acknowledged_request("TERM").await;
}

#[tokio::test]
async fn sigint_drains_like_sigterm() {
    // Ctrl-C in a terminal: the same graceful stop, not actix's immediate one.
    a_stop_signal_loses_no_acknowledged_request("INT").await;
}

#[tokio::test]
async fn a_request_half_sent_when_ctrl_c_comes_is_still_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let topic = unique("device-synced");
    testkit::create_topic(&topic, 1).await;
    let (mut child, app, port) = spawn_binary(&topic).await;
    // Three requests whose bodies are half on the wire when SIGINT arrives: a graceful stop waits
    // for them (an immediate one would drop their connections).
    let body = serde_json::to_vec(&standard_sync(uuid::Uuid::new_v4(), now_ms(), 7, false)).unwrap();
    let head = format!(
        "POST /v1/devices/d1/syncs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.device_token("u1", "d1"),
        body.len()
    );
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body[..body.len() / 2]).await.unwrap();
        streams.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Each needs its own sync id: the same body three times is three retries of one sync, fine.
    for mut s in streams {
        s.write_all(&body[body.len() / 2..]).await.unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.unwrap();
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 202"), "the request in flight was answered: {text}");
    }
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "exit 0 after SIGINT, got {status}");
    assert_eq!(testkit::topic_record_count(&topic), 3);
}

async fn a_stop_signal_loses_no_acknowledged_request(signal: &str) {
    let topic = unique("device-synced");
    testkit::create_topic(&topic, 3).await;
    let (mut child, app, _) = spawn_binary(&topic).await;
    let token = app.device_token("u1", "d1");
    let bodies: Vec<Value> = (0..40).map(|i| standard_sync(uuid::Uuid::new_v4(), now_ms(), 100 + i, false)).collect();
    // Requests that arrive after the listener closed fail to connect: that is not an answer.
    let requests = bodies.iter().map(|b| async {
        let res =
            app.http.post(format!("{}/v1/devices/d1/syncs", app.base)).bearer_auth(&token).json(b).send().await.ok()?;
        let status = res.status();
        Some((status, res.json::<Value>().await.unwrap_or(Value::Null)))
    });
    let all = futures::future::join_all(requests);
    let term = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        std::process::Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
    };
    let (results, ()) = tokio::join!(all, term);
    let accepted: Vec<String> = results
        .iter()
        .flatten()
        .filter(|r| r.0 == StatusCode::ACCEPTED)
        .map(|r| r.1["sync_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!accepted.is_empty(), "some requests were served before the stop");
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "exit 0 after SIG{signal}, got {status}");
    // Every 202 is on the topic.
    let on_topic: std::collections::HashSet<String> =
        app.decode_all(accepted.len()).await.into_iter().map(|(_, e)| e.sync_id).collect();
    for id in &accepted {
        assert!(on_topic.contains(id), "acknowledged sync {id} is not on the topic");
    }
}

#[tokio::test]
async fn abusive_bodies_get_bounded_answers_and_publish_nothing() {
    let topic = unique("device-synced");
    testkit::create_topic(&topic, 1).await;
    let mut s = settings(&topic, testkit::kafka_bootstrap());
    // The standard sync's event is about 3 KB: with a 2,000-byte limit it cannot be sent.
    s.max_event_bytes = 2_000;
    let app = spawn_app_with(s).await;
    let token = app.device_token("u1", "d1");

    // An event over the record size limit is 413: retrying the same body cannot help.
    let (status, headers, problem) =
        app.post("d1", Some(&token), &standard_sync(uuid::Uuid::new_v4(), now_ms(), 6, false)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(headers.get("retry-after").is_none());
    assert!(problem["detail"].as_str().unwrap().contains("split it"), "{problem}");

    // A violation flood near the 2 MiB limit (gzipped, a few KB on the wire): 422, a hundred
    // violations listed and the rest counted.
    let mut flood = standard_sync(uuid::Uuid::new_v4(), now_ms(), 6, false);
    flood["heart_rate"] = Value::Array(vec![json!({}); 690_000]);
    let raw = serde_json::to_vec(&flood).unwrap();
    assert!(raw.len() < 2 * 1024 * 1024);
    let started = std::time::Instant::now();
    let res = app
        .http
        .post(format!("{}/v1/devices/d1/syncs", app.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(&raw))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = res.json().await.unwrap();
    log::info!("a 690,000-sample violation flood was answered in {:?}", started.elapsed());
    assert_eq!(problem["violations"].as_array().unwrap().len(), 100);
    // The first 50,001 samples are checked (the limit, plus one), the rest only counted.
    assert_eq!(problem["violation_count"], json!(3 * 50_001 + 1));
    assert_eq!(problem["unlisted_violations"], json!(3 * 50_001 + 1 - 100));
    assert!(problem["violations"][0]["detail"].as_str().unwrap().contains("has 690000 samples"), "{problem}");

    // A phone clock a year ahead of the server is 422, whatever the samples say.
    let year = 365 * 86_400_000;
    let ahead = standard_sync(uuid::Uuid::new_v4(), now_ms() + year, 6, false);
    let (status, _, problem) = app.post("d1", Some(&token), &ahead).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["violations"][0]["pointer"], json!("/clock/phone_time_ms"));

    assert_eq!(testkit::topic_record_count(&topic), 0);
}
