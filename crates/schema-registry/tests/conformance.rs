//! Conformance of the registry with Confluent's REST API, over HTTP against a real PostgreSQL:
//! every endpoint and error code, a compatibility matrix, idempotence and global ids, the delete
//! rules, and schema_registry_converter's encoder and decoder.

use reqwest::StatusCode;
use serde_json::{json, Value};
use testkit::apps::{self, RunningApp};
use testkit::TestDatabase;

struct TestRegistry {
    base: String,
    http: reqwest::Client,
    _app: RunningApp,
    _db: TestDatabase,
}

/// A registry on a free port with a fresh database.
async fn spawn_registry() -> TestRegistry {
    let db = TestDatabase::create();
    let app = apps::spawn_registry(apps::registry_settings(&db.url)).await;
    TestRegistry { base: app.url.clone(), http: reqwest::Client::new(), _app: app, _db: db }
}

const SR_JSON: &str = "application/vnd.schemaregistry.v1+json";

impl TestRegistry {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.header("content-type", SR_JSON).body(b.to_string());
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }
    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }
    /// Registers and returns the id, failing the test on any error.
    async fn register(&self, subject: &str, schema: &Value) -> i64 {
        let (status, body) =
            self.post(&format!("/subjects/{subject}/versions"), json!({"schema": schema.to_string()})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["id"].as_i64().expect("an id")
    }
    async fn set_level(&self, subject: &str, level: &str) {
        let (status, body) = self.put(&format!("/config/{subject}"), json!({"compatibility": level})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

fn error_code(body: &Value) -> i64 {
    body["error_code"].as_i64().unwrap_or_else(|| panic!("not a Confluent error body: {body}"))
}

fn record(name: &str, fields: Value) -> Value {
    json!({"type": "record", "name": name, "namespace": "test", "fields": fields})
}

fn user_v1() -> Value {
    record("User", json!([{"name": "id", "type": "string"}, {"name": "age", "type": "int"}]))
}

#[tokio::test]
async fn root_types_health_and_metrics() {
    let r = spawn_registry().await;
    assert_eq!(r.get("/").await, (StatusCode::OK, json!({})));
    assert_eq!(r.get("/schemas/types").await, (StatusCode::OK, json!(["AVRO"])));
    assert_eq!(r.get("/healthz").await.0, StatusCode::OK);
    let res = r.http.get(format!("{}/subjects", r.base)).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], SR_JSON);
    let (status, metrics) = r.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(metrics.as_str().unwrap().contains("schema_registry_http_requests_total"), "{metrics}");
}

#[tokio::test]
async fn registration_is_idempotent_and_ids_are_global() {
    let r = spawn_registry().await;
    let schema = user_v1();
    let id = r.register("users-value", &schema).await;
    // Same schema again: same id, no new version.
    assert_eq!(r.register("users-value", &schema).await, id);
    // Same schema with other whitespace and key order is the same schema.
    let reordered = r#"{ "fields" : [ {"type":"string","name":"id"}, {"type":"int","name":"age"} ],
                         "namespace":"test", "name":"User", "type":"record" }"#;
    let (status, body) = r.post("/subjects/users-value/versions", json!({"schema": reordered})).await;
    assert_eq!((status, body["id"].as_i64()), (StatusCode::OK, Some(id)));
    assert_eq!(r.get("/subjects/users-value/versions").await, (StatusCode::OK, json!([1])));
    // Another subject: same id, its own version 1.
    assert_eq!(r.register("other-value", &schema).await, id);
    assert_eq!(r.get("/subjects/other-value/versions").await, (StatusCode::OK, json!([1])));
    let (_, versions) = r.get(&format!("/schemas/ids/{id}/versions")).await;
    assert_eq!(versions, json!([{"subject": "other-value", "version": 1}, {"subject": "users-value", "version": 1}]));
    // A different schema gets a different id and the next version.
    let v2 = record(
        "User",
        json!([{"name": "id", "type": "string"}, {"name": "age", "type": "int"}, {"name": "email", "type": ["null", "string"], "default": null}]),
    );
    let id2 = r.register("users-value", &v2).await;
    assert_ne!(id2, id);
    assert_eq!(r.get("/subjects/users-value/versions").await.1, json!([1, 2]));
    assert_eq!(r.get("/subjects").await.1, json!(["other-value", "users-value"]));
}

#[tokio::test]
async fn reading_schemas_and_versions_and_their_errors() {
    let r = spawn_registry().await;
    let id = r.register("s-value", &user_v1()).await;
    let (status, body) = r.get(&format!("/schemas/ids/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_str::<Value>(body["schema"].as_str().unwrap()).unwrap(), user_v1());
    assert_eq!(r.get(&format!("/schemas/ids/{id}?subject=s-value")).await.0, StatusCode::OK);
    let (status, body) = r.get(&format!("/schemas/ids/{id}?subject=nope")).await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40403));
    let (status, body) = r.get("/schemas/ids/999").await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40403));
    assert_eq!(error_code(&r.get("/schemas/ids/999/versions").await.1), 40403);

    for v in ["1", "latest", "-1"] {
        let (status, body) = r.get(&format!("/subjects/s-value/versions/{v}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            (body["subject"].clone(), body["version"].clone(), body["id"].as_i64()),
            (json!("s-value"), json!(1), Some(id))
        );
    }
    let (status, raw) = r.get("/subjects/s-value/versions/1/schema").await;
    assert_eq!((status, raw), (StatusCode::OK, user_v1()));
    let (status, body) = r.get("/subjects/s-value/versions/2").await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40402));
    let (status, body) = r.get("/subjects/nope/versions/1").await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40401));
    let (status, body) = r.get("/subjects/nope/versions").await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40401));
    for bad in ["0", "abc", "99999999999"] {
        let (status, body) = r.get(&format!("/subjects/s-value/versions/{bad}")).await;
        assert_eq!((status, error_code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, 42202), "{bad}");
    }
}

#[tokio::test]
async fn looking_up_a_schema_under_a_subject() {
    let r = spawn_registry().await;
    let id = r.register("s-value", &user_v1()).await;
    let (status, body) = r.post("/subjects/s-value", json!({"schema": user_v1().to_string()})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["id"].as_i64(), body["version"].clone(), body["subject"].clone()),
        (Some(id), json!(1), json!("s-value"))
    );
    let other = record("Other", json!([{"name": "x", "type": "long"}]));
    let (status, body) = r.post("/subjects/s-value", json!({"schema": other.to_string()})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40403));
    let (status, body) = r.post("/subjects/missing", json!({"schema": other.to_string()})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40401));
}

#[tokio::test]
async fn invalid_input_gets_confluent_errors() {
    let r = spawn_registry().await;
    let (status, body) = r.post("/subjects/s/versions", json!({"schema": "{\"type\": \"recordz\"}"})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, 42201));
    let (status, body) = r.post("/subjects/s/versions", json!({"schema": "not json"})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, 42201));
    let (status, body) =
        r.post("/subjects/s/versions", json!({"schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF"})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, 42201));
    assert!(body["message"].as_str().unwrap().contains("only AVRO"), "{body}");
    let (status, body) = r.put("/config", json!({"compatibility": "SIDEWAYS"})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, 42203));
    // Malformed body and wrong content type.
    let res = r
        .http
        .post(format!("{}/subjects/s/versions", r.base))
        .header("content-type", SR_JSON)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert_eq!(error_code(&body), 400);
    let res = r
        .http
        .post(format!("{}/subjects/s/versions", r.base))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Every accepted content type works.
    for ct in ["application/vnd.schemaregistry.v1+json", "application/vnd.schemaregistry+json", "application/json"] {
        let res = r
            .http
            .post(format!("{}/subjects/ct/versions", r.base))
            .header("content-type", ct)
            .body(json!({"schema": user_v1().to_string()}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{ct}");
        assert_eq!(res.headers()["content-type"], SR_JSON);
    }
    let (status, body) = r.get("/no/such/route").await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 404));
}

#[tokio::test]
async fn config_endpoints() {
    let r = spawn_registry().await;
    assert_eq!(r.get("/config").await.1, json!({"compatibilityLevel": "BACKWARD"}));
    assert_eq!(r.put("/config", json!({"compatibility": "full"})).await.1, json!({"compatibility": "FULL"}));
    assert_eq!(r.get("/config").await.1, json!({"compatibilityLevel": "FULL"}));
    let (status, body) = r.get("/config/s").await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40408));
    assert_eq!(r.get("/config/s?defaultToGlobal=true").await.1, json!({"compatibilityLevel": "FULL"}));
    r.set_level("s", "NONE").await;
    assert_eq!(r.get("/config/s").await.1, json!({"compatibilityLevel": "NONE"}));
    assert_eq!(r.delete("/config/s").await.1, json!({"compatibilityLevel": "NONE"}));
    assert_eq!(r.get("/config/s?defaultToGlobal=true").await.1, json!({"compatibilityLevel": "FULL"}));
    let (status, body) = r.delete("/config/s").await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40401));
    assert_eq!(r.delete("/config").await.1, json!({"compatibilityLevel": "FULL"}));
    assert_eq!(r.get("/config").await.1, json!({"compatibilityLevel": "BACKWARD"}));
}

/// (case, old schema, new schema, expected for BACKWARD, FORWARD, FULL).
fn matrix() -> Vec<(&'static str, Value, Value, [bool; 3])> {
    let base = || json!([{"name": "id", "type": "string"}]);
    let with = |extra: Value| {
        let mut f = base();
        f.as_array_mut().unwrap().push(extra);
        f
    };
    let nested =
        |inner: Value| json!([{"name": "id", "type": "string"}, {"name": "address", "type": record("Address", inner)}]);
    vec![
        (
            "add a field with a default",
            record("R", base()),
            record("R", with(json!({"name": "n", "type": "int", "default": 0}))),
            [true, true, true],
        ),
        (
            "add a field without a default",
            record("R", base()),
            record("R", with(json!({"name": "n", "type": "int"}))),
            [false, true, false],
        ),
        (
            "remove a field without a default",
            record("R", with(json!({"name": "n", "type": "int"}))),
            record("R", base()),
            [true, false, false],
        ),
        (
            "remove a field with a default",
            record("R", with(json!({"name": "n", "type": "int", "default": 1}))),
            record("R", base()),
            [true, true, true],
        ),
        (
            "change a type",
            record("R", with(json!({"name": "n", "type": "string"}))),
            record("R", with(json!({"name": "n", "type": "int"}))),
            [false, false, false],
        ),
        (
            "promote int to long",
            record("R", with(json!({"name": "n", "type": "int"}))),
            record("R", with(json!({"name": "n", "type": "long"}))),
            [true, false, false],
        ),
        (
            "add an enum symbol",
            record("R", with(json!({"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}}))),
            record("R", with(json!({"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}}))),
            [true, false, false],
        ),
        (
            "widen a union",
            record("R", with(json!({"name": "u", "type": ["null", "string"], "default": null}))),
            record("R", with(json!({"name": "u", "type": ["null", "string", "int"], "default": null}))),
            [true, false, false],
        ),
        (
            "rename a field with an alias",
            record("R", with(json!({"name": "n", "type": "int"}))),
            record("R", with(json!({"name": "count", "aliases": ["n"], "type": "int"}))),
            [true, false, false],
        ),
        (
            "add a field with a default to a nested record",
            record("R", nested(json!([{"name": "city", "type": "string"}]))),
            record(
                "R",
                nested(json!([{"name": "city", "type": "string"}, {"name": "zip", "type": "string", "default": ""}])),
            ),
            [true, true, true],
        ),
        (
            "add a field without a default to a nested record",
            record("R", nested(json!([{"name": "city", "type": "string"}]))),
            record("R", nested(json!([{"name": "city", "type": "string"}, {"name": "zip", "type": "string"}]))),
            [false, true, false],
        ),
    ]
}

#[tokio::test]
async fn compatibility_matrix_at_each_level() {
    let r = spawn_registry().await;
    for (i, (case, old, new, expected)) in matrix().into_iter().enumerate() {
        for (level, expect) in
            [("BACKWARD", expected[0]), ("FORWARD", expected[1]), ("FULL", expected[2]), ("NONE", true)]
        {
            let subject = format!("m{i}-{level}");
            r.set_level(&subject, level).await;
            r.register(&subject, &old).await;
            // The check endpoints agree with what registering does.
            let (status, body) = r
                .post(
                    &format!("/compatibility/subjects/{subject}/versions/latest?verbose=true"),
                    json!({"schema": new.to_string()}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{case}: {body}");
            assert_eq!(body["is_compatible"], json!(expect), "{case} at {level}: {body}");
            if !expect {
                assert!(!body["messages"].as_array().unwrap().is_empty(), "{case}: reasons expected");
            }
            let (_, body) = r
                .post(&format!("/compatibility/subjects/{subject}/versions"), json!({"schema": new.to_string()}))
                .await;
            assert_eq!(body["is_compatible"], json!(expect), "{case} at {level} (all versions)");
            assert!(body.get("messages").is_none(), "messages only with verbose");
            let (status, body) =
                r.post(&format!("/subjects/{subject}/versions"), json!({"schema": new.to_string()})).await;
            if expect {
                assert_eq!(status, StatusCode::OK, "{case} at {level}: {body}");
            } else {
                assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, 409), "{case} at {level}: {body}");
                assert!(body["message"].as_str().unwrap().contains("incompatible"), "{body}");
            }
        }
    }
}

#[tokio::test]
async fn transitive_levels_check_every_version() {
    let r = spawn_registry().await;
    let v1 = record("R", json!([{"name": "a", "type": "string"}]));
    let v2 = record("R", json!([{"name": "a", "type": "string"}, {"name": "b", "type": "string", "default": "x"}]));
    let v3 = record("R", json!([{"name": "a", "type": "string"}, {"name": "b", "type": "string"}]));
    for (level, v3_ok) in
        [("BACKWARD", true), ("BACKWARD_TRANSITIVE", false), ("FULL", true), ("FULL_TRANSITIVE", false)]
    {
        let subject = format!("t-{level}");
        r.set_level(&subject, level).await;
        r.register(&subject, &v1).await;
        r.register(&subject, &v2).await;
        let (status, body) = r.post(&format!("/subjects/{subject}/versions"), json!({"schema": v3.to_string()})).await;
        assert_eq!(status == StatusCode::OK, v3_ok, "{level}: {body}");
    }
    // FORWARD_TRANSITIVE: every old version must read the new one.
    let w1 = record("R", json!([{"name": "a", "type": "string"}, {"name": "b", "type": "int"}]));
    let w2 = record("R", json!([{"name": "a", "type": "string"}, {"name": "b", "type": "int", "default": 0}]));
    let w3 = record("R", json!([{"name": "a", "type": "string"}]));
    for (level, ok) in [("FORWARD", true), ("FORWARD_TRANSITIVE", false)] {
        let subject = format!("f-{level}");
        r.set_level(&subject, level).await;
        r.register(&subject, &w1).await;
        r.register(&subject, &w2).await;
        let (status, body) = r.post(&format!("/subjects/{subject}/versions"), json!({"schema": w3.to_string()})).await;
        assert_eq!(status == StatusCode::OK, ok, "{level}: {body}");
    }
    // The global level applies to subjects without their own.
    r.put("/config", json!({"compatibility": "NONE"})).await;
    r.register("g", &v1).await;
    r.register("g", &record("R", json!([{"name": "a", "type": "int"}]))).await;
}

#[tokio::test]
async fn soft_and_hard_delete_rules() {
    let r = spawn_registry().await;
    let v1 = user_v1();
    let v2 = record(
        "User",
        json!([{"name": "id", "type": "string"}, {"name": "age", "type": "int"}, {"name": "x", "type": "int", "default": 0}]),
    );
    let id1 = r.register("d", &v1).await;
    r.register("d", &v2).await;

    // A version: hard delete needs a soft delete first; a second soft delete is refused.
    let (status, body) = r.delete("/subjects/d/versions/1?permanent=true").await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40407));
    assert_eq!(r.delete("/subjects/d/versions/1").await, (StatusCode::OK, json!(1)));
    let (status, body) = r.delete("/subjects/d/versions/1").await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40406));
    assert_eq!(r.get("/subjects/d/versions").await.1, json!([2]));
    assert_eq!(r.get("/subjects/d/versions?deleted=true").await.1, json!([1, 2]));
    assert_eq!(error_code(&r.get("/subjects/d/versions/1").await.1), 40402);
    assert_eq!(r.get("/subjects/d/versions/1?deleted=true").await.0, StatusCode::OK);
    // The schema stays readable by id (decoders of old records need it).
    assert_eq!(r.get(&format!("/schemas/ids/{id1}")).await.0, StatusCode::OK);
    assert_eq!(r.delete("/subjects/d/versions/1?permanent=true").await, (StatusCode::OK, json!(1)));
    assert_eq!(r.get("/subjects/d/versions?deleted=true").await.1, json!([2]));
    assert_eq!(error_code(&r.delete("/subjects/d/versions/7").await.1), 40402);

    // A subject: the same rules.
    let (status, body) = r.delete("/subjects/d?permanent=true").await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40405));
    assert_eq!(r.delete("/subjects/d").await, (StatusCode::OK, json!([2])));
    let (status, body) = r.delete("/subjects/d").await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, 40404));
    assert_eq!(r.get("/subjects").await.1, json!([]));
    assert_eq!(r.get("/subjects?deleted=true").await.1, json!(["d"]));
    assert_eq!(r.delete("/subjects/d?permanent=true").await, (StatusCode::OK, json!([2])));
    assert_eq!(r.get("/subjects?deleted=true").await.1, json!([]));
    assert_eq!(error_code(&r.delete("/subjects/d").await.1), 40401);
    assert_eq!(error_code(&r.get(&format!("/schemas/ids/{id1}")).await.1), 40403);

    // Registering after a soft delete of everything starts from the next version number.
    r.register("e", &v1).await;
    r.delete("/subjects/e").await;
    r.register("e", &v1).await;
    assert_eq!(r.get("/subjects/e/versions").await.1, json!([2]));
}

#[tokio::test]
async fn references_are_stored_and_returned() {
    let r = spawn_registry().await;
    let address = record("Address", json!([{"name": "city", "type": "string"}]));
    r.register("address", &address).await;
    let person = record("Person", json!([{"name": "home", "type": "test.Address"}]));
    let refs = json!([{"name": "test.Address", "subject": "address", "version": 1}]);
    let (status, body) =
        r.post("/subjects/person/versions", json!({"schema": person.to_string(), "references": refs})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["id"].as_i64().unwrap();
    assert_eq!(r.get(&format!("/schemas/ids/{id}")).await.1["references"], refs);
    assert_eq!(r.get("/subjects/person/versions/1").await.1["references"], refs);
    // Without its reference the schema does not parse.
    let (status, body) = r.post("/subjects/person2/versions", json!({"schema": person.to_string()})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, 42201));
}

#[tokio::test]
async fn schema_registry_converter_encodes_and_decodes_against_it() {
    use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
    use schema_registry_converter::async_impl::schema_registry::SrSettings;
    use schema_registry_converter::schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema};

    let r = spawn_registry().await;
    let settings = || SrSettings::new_builder(r.base.clone()).no_proxy().build().unwrap();
    let encoder = AvroEncoder::new(settings());
    let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
        "people".into(),
        false,
        SuppliedSchema::new(None, SchemaType::Avro, user_v1().to_string()),
    );
    #[derive(serde::Serialize)]
    struct User {
        id: String,
        age: i32,
    }
    let bytes = encoder.encode_struct(User { id: "u1".into(), age: 42 }, &strategy).await.expect("encodes");
    assert_eq!(bytes[0], 0, "Confluent magic byte");
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
    assert_eq!(r.get("/subjects/people-value/versions/latest").await.1["id"].as_u64(), Some(id as u64));
    let decoded = AvroDecoder::new(settings()).decode(Some(&bytes)).await.expect("decodes");
    use apache_avro::types::Value as Avro;
    assert_eq!(
        decoded.value,
        Avro::Record(vec![("id".into(), Avro::String("u1".into())), ("age".into(), Avro::Int(42))])
    );
    // The plain topic strategy reads "latest".
    let plain = encoder
        .encode(
            vec![("id", Avro::String("u2".into())), ("age", Avro::Int(7))],
            SubjectNameStrategy::TopicNameStrategy("people".into(), false),
        )
        .await
        .expect("encodes with latest");
    assert_eq!(&plain[1..5], &bytes[1..5]);
}
