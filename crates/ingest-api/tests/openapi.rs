//! The OpenAPI document (generated from the code: src/openapi.rs) against what it describes, with a
//! JSON Schema validator (OpenAPI 3.1 schemas are JSON Schema 2020-12; `$ref`s resolve into the
//! document's components):
//! - every example in the document is valid against its schema;
//! - the SyncCommand schema takes the commands the validator takes, and refuses what breaks the
//!   bounds it states;
//! - real answers of a running stack (broker, registry, PostgreSQL, processor), for every operation
//!   and for the errors (400, 401, 403, 409, 413, 415, 422, 429), have a status the operation
//!   documents, its content type and headers, and a body valid against its schema.

mod stack;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use ingest_api::config::{Limits, RateLimit};
use ingest_api::example::standard_sync;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The document, and validators of its schemas.
struct Doc {
    doc: Value,
}

impl Doc {
    fn new() -> Self {
        Self { doc: serde_json::from_str(ingest_api::openapi::json()).expect("the document is JSON") }
    }

    /// Every (method, path template, operation) of the document.
    fn operations(&self) -> Vec<(String, String, &Value)> {
        let mut ops = Vec::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                ops.push((method.to_uppercase(), path.clone(), op));
            }
        }
        ops
    }

    fn operation(&self, method: &Method, template: &str) -> &Value {
        let op = &self.doc["paths"][template][method.as_str().to_lowercase()];
        assert!(op.is_object(), "the document has no {method} {template}");
        op
    }

    /// A response object, its `$ref` into components.responses resolved.
    fn resolve<'a>(&'a self, response: &'a Value) -> &'a Value {
        match response["$ref"].as_str() {
            Some(r) => {
                let name = r.strip_prefix("#/components/responses/").expect("a response reference");
                let target = &self.doc["components"]["responses"][name];
                assert!(target.is_object(), "{r} is not in the document");
                target
            }
            None => response,
        }
    }

    /// A validator of `schema` (which may `$ref` the document's components), formats included.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"],
            "allOf": [schema],
        });
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("not a valid JSON Schema ({e}): {schema}"))
    }

    /// `instance` against `schema`: every error.
    fn errors(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let validator = self.validator(schema);
        validator.iter_errors(instance).map(|e| format!("{e} (at {:?})", e.instance_path().as_str())).collect()
    }

    fn schema(&self, name: &str) -> Value {
        json!({"$ref": format!("#/components/schemas/{name}")})
    }
}

#[test]
fn every_example_is_valid_against_its_schema() {
    let doc = Doc::new();
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut check = |what: String, content: &Value| {
        let Some(schema) = content.get("schema") else { return };
        let mut examples: Vec<(String, &Value)> = Vec::new();
        if let Some(e) = content.get("example") {
            examples.push(("example".into(), e));
        }
        for (name, e) in content.get("examples").and_then(Value::as_object).into_iter().flatten() {
            examples.push((format!("examples.{name}"), &e["value"]));
        }
        for (name, example) in examples {
            checked += 1;
            let errors = doc.errors(schema, example);
            if !errors.is_empty() {
                failures.push(format!("{what} {name}: {}", errors.join("; ")));
            }
        }
    };
    for (method, path, op) in doc.operations() {
        for (media, content) in op["requestBody"]["content"].as_object().into_iter().flatten() {
            check(format!("{method} {path} request {media}"), content);
        }
        for (status, response) in op["responses"].as_object().expect("responses") {
            for (media, content) in doc.resolve(response)["content"].as_object().into_iter().flatten() {
                check(format!("{method} {path} {status} {media}"), content);
            }
        }
    }
    assert!(failures.is_empty(), "examples that do not match their schema:\n{}", failures.join("\n"));
    // The request, the 202, the post's problems, the sync status (2), the shared responses.
    assert!(checked >= 15, "only {checked} examples found");
}

/// What the validator takes, the schema takes; what breaks a bound the schema states, both refuse.
#[test]
fn the_sync_command_schema_agrees_with_the_validator() {
    let doc = Doc::new();
    let schema = doc.schema("SyncCommand");
    let valid = |body: &Value| {
        ingest_api::command::parse(&serde_json::to_vec(body).unwrap(), None, &Limits::default(), support::NOW)
    };
    let mut commands = vec![
        standard_sync(uuid::Uuid::new_v4(), support::END, 1, false),
        standard_sync(uuid::Uuid::new_v4(), support::END, 2, true),
    ];
    commands.extend((0..20).map(|seed| support::rich_command(seed, 5)));
    for body in &commands {
        assert!(valid(body).is_ok(), "the validator takes it: {body}");
        let errors = doc.errors(&schema, body);
        assert!(errors.is_empty(), "the schema refuses a valid command: {errors:?}");
    }
    let base = support::rich_command(7, 5);
    let broken: [(&str, Value); 14] = [
        ("/time_zone/offsets/0/offset_minutes", json!(900)),
        ("/time_zone/offsets", json!([])),
        ("/sequence/first", json!(-1)),
        ("/sequence/last", json!(4_294_967_296_i64)),
        ("/device/hr_sensor", json!("laser")),
        ("/heart_rate/0/quality", json!("good")),
        ("/sleep/0/stage", json!("dozing")),
        ("/wear/0/state", json!("in_pocket")),
        ("/profile/birth_year", json!(1850)),
        ("/profile/weight_kg", json!(401.5)),
        ("/profile/sex", json!("x")),
        ("/steps/0/duration_s", json!(0)),
        ("/rr/unit", json!("s")),
        ("/device/manufacturer", json!("")),
    ];
    for (pointer, value) in broken {
        let mut body = base.clone();
        *body.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer} is in the command")) = value.clone();
        assert!(valid(&body).is_err(), "the validator refuses {pointer} = {value}");
        assert!(!doc.errors(&schema, &body).is_empty(), "the schema refuses {pointer} = {value}");
    }
    // Null where the schema says a member may be null, and only there: the validator agrees.
    for pointer in [
        "/sync_id",
        "/device/battery_percent",
        "/heart_rate",
        "/rr",
        "/rr/unit",
        "/steps",
        "/steps/0/duration_s",
        "/steps/0/distance_m",
        "/sleep",
        "/workouts",
        "/spo2",
        "/skin_temperature",
        "/wear",
        "/profile",
        "/profile/hr_max",
        "/time_zone/offsets",
        "/rr/blocks",
        "/device/hr_sensor",
    ] {
        let mut body = base.clone();
        *body.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer} is in the command")) = Value::Null;
        // The body's own sync id as the key too, so a null sync_id is not refused for lack of one.
        let key = base["sync_id"].as_str();
        let bytes = serde_json::to_vec(&body).unwrap();
        let service = ingest_api::command::parse(&bytes, key, &Limits::default(), support::NOW).is_ok();
        let schema_says = doc.errors(&schema, &body).is_empty();
        assert_eq!(
            service, schema_says,
            "{pointer} = null: the validator accepts it: {service}, the schema: {schema_says}"
        );
    }
    for member in ["device", "app", "clock", "time_zone", "sequence", "window"] {
        let mut body = base.clone();
        body.as_object_mut().unwrap().remove(member);
        assert!(valid(&body).is_err() && !doc.errors(&schema, &body).is_empty(), "both require {member}");
    }
}

/// Whatever a mutated command the validator accepts, the schema accepts: the schema is never
/// stricter than the service (`FUZZ_CASES` overrides the 2,000 cases).
#[test]
fn the_sync_command_schema_takes_every_command_the_validator_takes() {
    use proptest::prelude::*;
    let doc = Doc::new();
    let schema = doc.validator(&doc.schema("SyncCommand"));
    let cases = testkit::fuzz::cases(2_000);
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let accepted = std::cell::Cell::new(0u32);
    let strategy = (0u64..1_000, 0usize..6, prop::collection::vec(testkit::fuzz::mutation(), 0..4));
    let result = runner.run(&strategy, |(seed, keep, mutations)| {
        let mut body = support::rich_command(seed, keep);
        for m in &mutations {
            testkit::fuzz::apply(&mut body, m, support::hostile);
        }
        let bytes = serde_json::to_vec(&body).unwrap();
        if ingest_api::command::parse(&bytes, None, &Limits::default(), support::NOW).is_ok() {
            accepted.set(accepted.get() + 1);
            let errors: Vec<String> =
                schema.iter_errors(&body).map(|e| format!("{e} at {}", e.instance_path().as_str())).collect();
            prop_assert!(errors.is_empty(), "the service accepts it, the schema does not: {errors:?}\n{body}");
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(accepted.get() > cases / 10, "too few accepted commands ({}) to say anything", accepted.get());
}

/// One answer of the service.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A request as the test sends it.
#[derive(Default)]
struct Call {
    token: Option<String>,
    json: Option<Value>,
    raw: Option<(&'static str, Vec<u8>)>,
    headers: &'static [(&'static str, &'static str)],
    /// Documented response headers this answer may lack (with why).
    may_lack: &'static [&'static str],
}

struct Checker {
    doc: Doc,
    stack: stack::Stack,
    /// (method, path template, status) of every answer checked.
    seen: BTreeSet<(String, String, u16)>,
    failures: Vec<String>,
}

impl Checker {
    fn user(&self, user: &str) -> String {
        self.stack.signer.mint(user, None, Duration::from_secs(600))
    }

    fn device(&self, user: &str, device: &str) -> String {
        self.stack.signer.mint(user, Some(device), Duration::from_secs(600))
    }

    /// Sends the request and checks the answer against the document; returns it.
    async fn call(&mut self, method: Method, template: &str, path: &str, call: Call) -> Answer {
        let mut req = self.stack.http.request(method.clone(), format!("{}{path}", self.stack.api));
        if let Some(t) = &call.token {
            req = req.bearer_auth(t);
        }
        if let Some(body) = &call.json {
            req = req.json(body);
        }
        if let Some((content_type, bytes)) = call.raw {
            req = req.header("content-type", content_type).body(bytes);
        }
        for (name, value) in call.headers {
            req = req.header(*name, *value);
        }
        let mut res = req.send().await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        let body = if headers.get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream")) {
            // A live stream never ends: its first message is what is checked.
            let mut body = Vec::new();
            while !body.windows(2).any(|w| w == b"\n\n") {
                match tokio::time::timeout(Duration::from_secs(5), res.chunk()).await {
                    Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            body
        } else {
            res.bytes().await.unwrap().to_vec()
        };
        let answer = Answer { status, headers, body };
        let what = format!("{method} {path} -> {}", answer.status);
        if let Err(e) = self.check(&method, template, &answer, call.may_lack) {
            self.failures.push(format!("{what}: {e}"));
        }
        self.seen.insert((method.to_string(), template.to_owned(), answer.status.as_u16()));
        answer
    }

    fn check(&self, method: &Method, template: &str, answer: &Answer, may_lack: &[&str]) -> Result<(), String> {
        let op = self.doc.operation(method, template);
        let status = answer.status.as_u16().to_string();
        let response = op["responses"].get(&status).ok_or_else(|| {
            format!("status {status} is not documented ({:?})", String::from_utf8_lossy(&answer.body))
        })?;
        let response = self.doc.resolve(response);
        for (name, _) in response["headers"].as_object().into_iter().flatten() {
            if !answer.headers.contains_key(name.as_str()) && !may_lack.contains(&name.as_str()) {
                return Err(format!("no {name} header, which the document promises"));
            }
        }
        let content_type =
            answer.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        let Some(contents) = response["content"].as_object() else {
            return if answer.body.is_empty() { Ok(()) } else { Err("a body the document does not describe".into()) };
        };
        let content = contents.get(essence).ok_or_else(|| {
            format!("content type {content_type:?}, the document says {:?}", contents.keys().collect::<Vec<_>>())
        })?;
        let schema = &content["schema"];
        let errors = match essence {
            "application/json" | "application/problem+json" => {
                let body: Value = serde_json::from_slice(&answer.body).map_err(|e| format!("not JSON: {e}"))?;
                self.doc.errors(schema, &body)
            }
            "application/x-ndjson" => {
                let text = std::str::from_utf8(&answer.body).map_err(|e| e.to_string())?;
                let mut errors = self.doc.errors(schema, &json!(text));
                for (i, line) in text.lines().enumerate() {
                    let line: Value = serde_json::from_str(line).map_err(|e| format!("line {i} is not JSON: {e}"))?;
                    let line_errors = self.doc.errors(&self.doc.schema("ExportLine"), &line);
                    errors.extend(line_errors.into_iter().map(|e| format!("line {i}: {e}")));
                }
                errors
            }
            "text/plain" => {
                let text = std::str::from_utf8(&answer.body).map_err(|e| e.to_string())?;
                self.doc.errors(schema, &json!(text))
            }
            "text/event-stream" => {
                let text = std::str::from_utf8(&answer.body).map_err(|e| e.to_string())?;
                let mut errors = self.doc.errors(schema, &json!(text));
                if !text.ends_with("\n\n")
                    || !text.lines().all(|l| l.is_empty() || l.starts_with(':') || l.contains(": "))
                {
                    errors.push(format!("not a Server-Sent Events message: {text:?}"));
                }
                errors
            }
            other => return Err(format!("the test does not know how to check {other}")),
        };
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the body does not match the schema: {}\n{}",
                errors.join("; "),
                String::from_utf8_lossy(&answer.body)
            ))
        }
    }
}

/// A sync of `user` from `device`, as a phone sends it now.
fn sync_body() -> Value {
    let now = chrono::Utc::now().timestamp_millis();
    let mut body = standard_sync(uuid::Uuid::new_v4(), now, 3, true);
    body["clock"] = json!({"device_time_ms": now, "phone_time_ms": now + 1_200});
    body
}

#[actix_web::test]
async fn real_answers_match_the_document() {
    use Method as M;
    const SYNCS: &str = "/v1/devices/{device_id}/syncs";
    const STATUS: &str = "/v1/syncs/{sync_id}";
    const DAYS: &str = "/v1/users/{user_id}/days";
    const MODEL: &str = "/v1/users/{user_id}/model";
    const RECENT: &str = "/v1/users/{user_id}/syncs";
    const ERASE: &str = "/v1/users/{user_id}/data";
    const ERASURE: &str = "/v1/users/{user_id}/erasure";
    const EXPORT: &str = "/v1/users/{user_id}/export";
    const EVENTS: &str = "/v1/users/{user_id}/events";
    // A device may send two syncs at once, then one a thousand seconds: the third is a 429.
    let stack = stack::spawn(false, |s| s.rate_limits.device_post = RateLimit { per_second: 0.001, burst: 2 }).await;
    let mut c = Checker { doc: Doc::new(), stack, seen: BTreeSet::new(), failures: Vec::new() };

    // Operations endpoints.
    c.call(M::GET, "/healthz", "/healthz", Call::default()).await;
    c.call(M::GET, "/readyz", "/readyz", Call::default()).await;
    c.call(M::GET, "/metrics", "/metrics", Call::default()).await;
    let served = c.call(M::GET, "/openapi.json", "/openapi.json", Call::default()).await;
    assert_eq!(served.body, ingest_api::openapi::json().as_bytes(), "/openapi.json serves the generated document");

    // A sync, read back while the processor is stopped: pending, and 409 with a token.
    let token = c.device("alice", "band-1");
    let accepted = c
        .call(
            M::POST,
            SYNCS,
            "/v1/devices/band-1/syncs",
            Call { token: Some(token), json: Some(sync_body()), ..Default::default() },
        )
        .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.json());
    let accepted = accepted.json();
    let (sync_id, consistency) =
        (accepted["sync_id"].as_str().unwrap(), accepted["consistency_token"].as_str().unwrap());
    let status_url = accepted["status_url"].as_str().unwrap().to_owned();
    let alice = c.user("alice");
    let pending = c.call(M::GET, STATUS, &status_url, Call { token: Some(alice.clone()), ..Default::default() }).await;
    assert_eq!(pending.json()["status"], "pending");
    let conflict = c
        .call(
            M::GET,
            DAYS,
            &format!("/v1/users/alice/days?consistency_token={consistency}"),
            Call { token: Some(alice.clone()), ..Default::default() },
        )
        .await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    let unknown = c
        .call(
            M::GET,
            STATUS,
            &format!("/v1/syncs/{}", uuid::Uuid::new_v4()),
            Call {
                token: Some(alice.clone()),
                // An unknown sync without a token has no freshness to tell.
                may_lack: &["X-Processed-Position"],
                ..Default::default()
            },
        )
        .await;
    assert_eq!(unknown.json()["status"], "unknown");

    // Processed: every read route.
    c.stack.start_processor().await;
    let as_alice = || Call { token: Some(alice.clone()), ..Default::default() };
    let processed = c.call(M::GET, STATUS, &format!("{status_url}&wait=10000"), as_alice()).await;
    assert_eq!(processed.json()["status"], "processed", "{}", processed.json());
    let days = c
        .call(M::GET, DAYS, &format!("/v1/users/alice/days?consistency_token={consistency}&wait=10000"), as_alice())
        .await;
    assert!(!days.json()["days"].as_array().unwrap().is_empty(), "{}", days.json());
    let model = c.call(M::GET, MODEL, "/v1/users/alice/model", as_alice()).await;
    assert!(model.json()["model"].is_object(), "{}", model.json());
    let recent = c.call(M::GET, RECENT, "/v1/users/alice/syncs?limit=5", as_alice()).await;
    assert_eq!(recent.json()["syncs"].as_array().unwrap().len(), 1);
    let nobody =
        c.call(M::GET, MODEL, "/v1/users/bob/model", Call { token: Some(c.user("bob")), ..Default::default() }).await;
    assert!(nobody.json()["model"].is_null());
    let none = c.call(M::GET, ERASURE, "/v1/users/alice/erasure", as_alice()).await;
    assert_eq!(none.json()["status"], "none");
    let export = c.call(M::GET, EXPORT, "/v1/users/alice/export", as_alice()).await;
    assert_eq!(export.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&export.body).lines().count() > 3);
    let events = c.call(M::GET, EVENTS, "/v1/users/alice/events", as_alice()).await;
    assert_eq!(events.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&events.body).starts_with("retry: "), "the stream opens with its retry delay");

    // Refusals: no token, another user's, a device's where the user's own is needed.
    for (method, template, path) in [
        (M::POST, SYNCS, "/v1/devices/band-1/syncs".to_owned()),
        (M::GET, STATUS, status_url.clone()),
        (M::GET, DAYS, "/v1/users/alice/days".into()),
        (M::GET, MODEL, "/v1/users/alice/model".into()),
        (M::GET, RECENT, "/v1/users/alice/syncs".into()),
        (M::DELETE, ERASE, "/v1/users/alice/data".into()),
        (M::GET, ERASURE, "/v1/users/alice/erasure".into()),
        (M::GET, EXPORT, "/v1/users/alice/export".into()),
        (M::GET, EVENTS, "/v1/users/alice/events".into()),
    ] {
        let answer = c.call(method.clone(), template, &path, Call::default()).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        let token = if method == M::POST { c.device("mallory", "mallory-band") } else { c.user("mallory") };
        let answer = c.call(method.clone(), template, &path, Call { token: Some(token), ..Default::default() }).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    for (method, template, path) in
        [(M::DELETE, ERASE, "/v1/users/alice/data"), (M::GET, EXPORT, "/v1/users/alice/export")]
    {
        let token = Some(c.device("alice", "band-1"));
        let answer = c.call(method.clone(), template, path, Call { token, ..Default::default() }).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    let as_user_at_syncs = Call { token: Some(c.user("alice")), json: Some(sync_body()), ..Default::default() };
    assert_eq!(
        c.call(M::POST, SYNCS, "/v1/devices/band-1/syncs", as_user_at_syncs).await.status,
        StatusCode::FORBIDDEN
    );

    // Bad queries.
    for (template, path) in [
        (STATUS, "/v1/syncs/not-a-uuid".to_owned()),
        (STATUS, format!("/v1/syncs/{sync_id}?wait=soon")),
        (DAYS, "/v1/users/alice/days?from=2026-03-10&to=2026-03-01".into()),
        (DAYS, "/v1/users/alice/days?consistency_token=garbage".into()),
        (MODEL, "/v1/users/alice/model?wait=-1".into()),
        (RECENT, "/v1/users/alice/syncs?limit=ten".into()),
        (ERASURE, "/v1/users/alice/erasure?wait=soon".into()),
        (EXPORT, "/v1/users/alice/export?wait=soon".into()),
        (EVENTS, "/v1/users/alice/events?last_event_id=yesterday".into()),
    ] {
        assert_eq!(c.call(M::GET, template, &path, as_alice()).await.status, StatusCode::BAD_REQUEST, "{path}");
    }

    // The sync's own problems, each device within its burst of two.
    let (probe_1, probe_2) = (Some(c.device("alice", "probe-1")), Some(c.device("alice", "probe-2")));
    let malformed =
        Call { token: probe_1.clone(), raw: Some(("application/json", b"{".to_vec())), ..Default::default() };
    assert_eq!(c.call(M::POST, SYNCS, "/v1/devices/probe-1/syncs", malformed).await.status, StatusCode::BAD_REQUEST);
    let text = Call { token: probe_1, raw: Some(("text/plain", b"hello".to_vec())), ..Default::default() };
    assert_eq!(
        c.call(M::POST, SYNCS, "/v1/devices/probe-1/syncs", text).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let mut invalid = sync_body();
    invalid["sequence"] = json!({"first": 10, "last": 9});
    invalid["heart_rate"][3]["quality"] = json!("good");
    let invalid = Call { token: probe_2.clone(), json: Some(invalid), ..Default::default() };
    let answer = c.call(M::POST, SYNCS, "/v1/devices/probe-2/syncs", invalid).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.json()["violation_count"], 2);
    // A gzip body that decompresses to more than the limit (sent small, so the answer is not
    // racing the upload).
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gzip, &vec![b' '; Limits::default().max_body_bytes + 1]).unwrap();
    let bomb = gzip.finish().unwrap();
    let huge = Call {
        token: probe_2.clone(),
        raw: Some(("application/json", bomb)),
        headers: &[("content-encoding", "gzip")],
        ..Default::default()
    };
    assert_eq!(c.call(M::POST, SYNCS, "/v1/devices/probe-2/syncs", huge).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    let limited = c
        .call(
            M::POST,
            SYNCS,
            "/v1/devices/probe-2/syncs",
            Call { token: probe_2, json: Some(sync_body()), ..Default::default() },
        )
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.json()["violated-policies"], json!(["device"]));

    // Erasure, last: it deletes alice's data.
    let erase = c.call(M::DELETE, ERASE, "/v1/users/alice/data", as_alice()).await;
    assert_eq!(erase.status, StatusCode::ACCEPTED, "{}", erase.json());
    let erasure_url = erase.json()["status_url"].as_str().unwrap().to_owned();
    let done = c.call(M::GET, ERASURE, &format!("{erasure_url}&wait=10000"), as_alice()).await;
    assert_eq!(done.json()["status"], "completed", "{}", done.json());

    let Checker { doc, stack, seen, failures } = c;
    stack.stop().await;
    assert!(failures.is_empty(), "{} answers do not match the document:\n{}", failures.len(), failures.join("\n\n"));
    // Every operation was seen succeeding, and every documented error kind the test can cause.
    for (method, path, op) in doc.operations() {
        let documented: BTreeSet<u16> =
            op["responses"].as_object().unwrap().keys().filter_map(|s| s.parse().ok()).collect();
        let success = documented.iter().find(|s| (200..300).contains(*s)).unwrap();
        assert!(
            seen.contains(&(method.clone(), path.clone(), *success)),
            "{method} {path} was not seen answering {success}"
        );
    }
    let statuses: BTreeSet<u16> = seen.iter().map(|(_, _, s)| *s).collect();
    for status in [200, 202, 400, 401, 403, 409, 413, 415, 422, 429] {
        assert!(statuses.contains(&status), "no answer with {status} was checked: {seen:?}");
    }
}
