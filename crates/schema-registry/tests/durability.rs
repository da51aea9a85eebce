//! What was acknowledged with a 2xx survives a kill -9 and a restart of the registry process.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use testkit::TestDatabase;

fn start(db: &TestDatabase, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_schema-registry"))
        .env("SCHEMA_REGISTRY_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("SCHEMA_REGISTRY_DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        // Durability, not authentication (tests/auth.rs): run it open, on purpose.
        .env_remove("SCHEMA_REGISTRY_AUTH_FILE")
        .env("SCHEMA_REGISTRY_AUTH", "none")
        .stdout(Stdio::null())
        .spawn()
        .expect("the registry binary starts")
}

async fn wait_healthy(base: &str) {
    testkit::eventually(Duration::from_secs(30), "the registry to answer /healthz", || {
        std::net::TcpStream::connect(base.trim_start_matches("http://")).ok()
    })
    .await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn acknowledged_registrations_survive_kill_9() {
    testkit::init_logging();
    let db = TestDatabase::create();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut child = start(&db, port);
    wait_healthy(&base).await;

    let schema = json!({"type": "record", "name": "Durable", "fields": [{"name": "n", "type": "long"}]}).to_string();
    let res = http
        .post(format!("{base}/subjects/durable-value/versions"))
        .json(&json!({"schema": schema}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    http.put(format!("{base}/config/durable-value")).json(&json!({"compatibility": "FULL"})).send().await.unwrap();

    child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    child.wait().unwrap();
    let mut child = start(&db, port);
    wait_healthy(&base).await;

    let body: Value =
        http.get(format!("{base}/subjects/durable-value/versions/latest")).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["id"].as_i64(), Some(id));
    assert_eq!(body["schema"].as_str(), Some(schema.as_str()));
    let body: Value = http.get(format!("{base}/config/durable-value")).send().await.unwrap().json().await.unwrap();
    assert_eq!(body, json!({"compatibilityLevel": "FULL"}));
    // Ids keep counting from where they were.
    let other = json!({"type": "record", "name": "Other", "fields": []}).to_string();
    let body: Value = http
        .post(format!("{base}/subjects/o/versions"))
        .json(&json!({"schema": other}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["id"].as_i64().unwrap() > id);
    child.kill().unwrap();
    child.wait().unwrap();
}
