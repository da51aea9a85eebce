//! Authentication, roles, `/mode` and the audit trail, over HTTP against a real registry and
//! PostgreSQL: 401 with `WWW-Authenticate`, 403 per role, READONLY, who did what, a plain-text
//! password refused at start, and schema_registry_converter (what the services use) with
//! credentials.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use diesel::{Connection, PgConnection, RunQueryDsl};
use reqwest::StatusCode;
use schema_registry::auth::hash_password;
use schema_registry::Settings;
use serde_json::{json, Value};
use testkit::apps::{self, RunningApp};
use testkit::TestDatabase;

const ADMIN: (&str, &str) = ("root", "admin-password");
const WRITER: (&str, &str) = ("svc", "writer-password");
const READER: (&str, &str) = ("viewer", "reader-password");
const SR_JSON: &str = "application/vnd.schemaregistry.v1+json";

/// A credentials file with one user per role, in a directory of the test's own.
fn credentials_file(extra: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(testkit::unique("registry-auth"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("users.properties");
    let line =
        |(user, password): (&str, &str), role: &str| format!("{user}: {},{role}\n", hash_password(password).unwrap());
    let text =
        format!("# test users\n{}{}{}{extra}", line(ADMIN, "admin"), line(WRITER, "writer"), line(READER, "reader"));
    std::fs::write(&path, text).unwrap();
    path
}

struct TestRegistry {
    base: String,
    http: reqwest::Client,
    db: TestDatabase,
    _app: RunningApp,
}

async fn spawn_registry() -> TestRegistry {
    let db = TestDatabase::create();
    let settings = Settings { auth_file: Some(credentials_file("")), ..apps::registry_settings(&db.url) };
    let app = apps::spawn_registry(settings).await;
    TestRegistry { base: app.url.clone(), http: reqwest::Client::new(), db, _app: app }
}

fn schema(name: &str) -> Value {
    json!({"schema": json!({"type": "record", "name": name, "fields": [{"name": "n", "type": "long"}]}).to_string()})
}

impl TestRegistry {
    async fn call(
        &self,
        who: Option<(&str, &str)>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some((user, password)) = who {
            req = req.basic_auth(user, Some(password));
        }
        if let Some(b) = body {
            req = req.header("content-type", SR_JSON).body(b.to_string());
        }
        let res = req.send().await.expect("request sent");
        let (status, headers) = (res.status(), res.headers().clone());
        let text = res.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn status(&self, who: (&str, &str), method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, i64) {
        let (status, _, body) = self.call(Some(who), method, path, body).await;
        (status.as_u16(), body["error_code"].as_i64().unwrap_or(0))
    }

    async fn register(&self, who: (&str, &str), subject: &str, name: &str) -> (u16, i64) {
        self.status(who, reqwest::Method::POST, &format!("/subjects/{subject}/versions"), Some(schema(name))).await
    }
}

use reqwest::Method as M;

#[tokio::test]
async fn without_good_credentials_requests_get_401_with_www_authenticate_and_probes_stay_open() {
    let r = spawn_registry().await;
    for who in [None, Some((WRITER.0, "wrong")), Some(("nobody", WRITER.1)), Some((WRITER.0, ""))] {
        let (status, headers, body) = r.call(who, M::GET, "/subjects", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{who:?}");
        let challenge = headers.get("www-authenticate").expect("WWW-Authenticate").to_str().unwrap();
        assert!(challenge.starts_with("Basic realm=\"schema-registry\""), "{challenge}");
        assert_eq!(body["error_code"], 401, "{body}");
        assert!(body["message"].as_str().unwrap().starts_with("Unauthorized"), "{body}");
    }
    // A scheme other than Basic, and garbage.
    for header in ["Bearer abc", "Basic !!!"] {
        let res = r.http.get(format!("{}/subjects", r.base)).header("authorization", header).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{header}");
    }
    assert_eq!(r.call(None, M::GET, "/healthz", None).await.0, StatusCode::OK);
    let (status, _, body) = r.call(None, M::GET, "/readyz", None).await;
    assert_eq!((status, body["authentication"].as_str()), (StatusCode::OK, Some("basic")));
    assert_eq!(body["database"], "ok");
    assert_eq!(r.call(None, M::GET, "/metrics", None).await.0, StatusCode::OK);
    // The right password works, twice (the second from the verified-credentials cache).
    for _ in 0..2 {
        assert_eq!(r.call(Some(WRITER), M::GET, "/subjects", None).await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn each_role_may_do_what_it_should_and_gets_403_for_the_rest() {
    let r = spawn_registry().await;
    // reader: GET only.
    assert_eq!(r.status(READER, M::GET, "/subjects", None).await.0, 200);
    assert_eq!(r.status(READER, M::GET, "/config", None).await.0, 200);
    assert_eq!(r.status(READER, M::GET, "/mode", None).await.0, 200);
    assert_eq!(r.register(READER, "s", "A").await, (403, 40301));
    assert_eq!(r.status(READER, M::POST, "/subjects/s", Some(schema("A"))).await, (403, 40301));
    // writer: register, look up, check compatibility, GET.
    assert_eq!(r.register(WRITER, "s", "A").await.0, 200);
    assert_eq!(r.status(WRITER, M::POST, "/subjects/s", Some(schema("A"))).await.0, 200);
    assert_eq!(r.status(WRITER, M::POST, "/compatibility/subjects/s/versions/latest", Some(schema("A"))).await.0, 200);
    assert_eq!(r.status(READER, M::GET, "/subjects/s/versions/1", None).await.0, 200);
    // Deletes, /config and /mode changes are the admin's.
    let level = Some(json!({"compatibility": "NONE"}));
    let readonly = Some(json!({"mode": "READONLY"}));
    for who in [READER, WRITER] {
        assert_eq!(r.status(who, M::DELETE, "/subjects/s", None).await, (403, 40301), "{who:?}");
        assert_eq!(r.status(who, M::DELETE, "/subjects/s/versions/1", None).await, (403, 40301));
        assert_eq!(r.status(who, M::PUT, "/config", level.clone()).await, (403, 40301));
        assert_eq!(r.status(who, M::PUT, "/config/s", level.clone()).await, (403, 40301));
        assert_eq!(r.status(who, M::DELETE, "/config/s", None).await, (403, 40301));
        assert_eq!(r.status(who, M::PUT, "/mode", readonly.clone()).await, (403, 40301));
        assert_eq!(r.status(who, M::PUT, "/mode/s", readonly.clone()).await, (403, 40301));
        assert_eq!(r.status(who, M::DELETE, "/mode/s", None).await, (403, 40301));
    }
    let (_, _, body) = r.call(Some(WRITER), M::DELETE, "/subjects/s", None).await;
    let message = body["message"].as_str().unwrap();
    assert!(message.starts_with("User is denied operation Delete") && message.contains("writer"), "{message}");
    // Nothing the 403s refused happened.
    assert_eq!(r.status(READER, M::GET, "/subjects/s/versions/1", None).await.0, 200);
    assert_eq!(r.status(ADMIN, M::PUT, "/config/s", level).await.0, 200);
    assert_eq!(r.status(ADMIN, M::DELETE, "/subjects/s", None).await.0, 200);
    assert_eq!(r.status(ADMIN, M::DELETE, "/subjects/s?permanent=true", None).await.0, 200);
}

#[tokio::test]
async fn readonly_mode_refuses_changes_until_an_admin_switches_back() {
    let r = spawn_registry().await;
    assert_eq!(r.call(Some(READER), M::GET, "/mode", None).await.2, json!({"mode": "READWRITE"}));
    assert_eq!(r.register(WRITER, "a", "A").await.0, 200);
    // Any schema may follow any other under "a": a refusal below is the mode's, not compatibility's.
    assert_eq!(r.status(ADMIN, M::PUT, "/config/a", Some(json!({"compatibility": "NONE"}))).await.0, 200);
    let (status, _, body) = r.call(Some(ADMIN), M::PUT, "/mode", Some(json!({"mode": "READONLY"}))).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"mode": "READONLY"})));
    assert_eq!(r.call(Some(READER), M::GET, "/mode", None).await.2, json!({"mode": "READONLY"}));

    assert_eq!(r.register(WRITER, "a", "A2").await, (422, 42205));
    assert_eq!(r.register(ADMIN, "b", "B").await, (422, 42205), "not even the admin registers");
    assert_eq!(r.status(ADMIN, M::DELETE, "/subjects/a", None).await, (422, 42205));
    assert_eq!(r.status(ADMIN, M::DELETE, "/subjects/a/versions/1", None).await, (422, 42205));
    assert_eq!(r.status(ADMIN, M::PUT, "/config", Some(json!({"compatibility": "NONE"}))).await, (422, 42205));
    assert_eq!(r.status(ADMIN, M::PUT, "/config/a", Some(json!({"compatibility": "NONE"}))).await, (422, 42205));
    // Reads, look-ups and compatibility checks go on.
    assert_eq!(r.status(READER, M::GET, "/subjects/a/versions/1", None).await.0, 200);
    assert_eq!(r.status(WRITER, M::POST, "/subjects/a", Some(schema("A"))).await.0, 200);
    assert_eq!(r.status(WRITER, M::POST, "/compatibility/subjects/a/versions", Some(schema("A"))).await.0, 200);
    assert_eq!(r.status(ADMIN, M::PUT, "/mode", Some(json!({"mode": "IMPORT"}))).await, (422, 42204));

    assert_eq!(r.status(ADMIN, M::PUT, "/mode", Some(json!({"mode": "READWRITE"}))).await.0, 200);
    assert_eq!(r.register(WRITER, "b", "B").await.0, 200);

    // Per subject: only that subject is frozen; its own mode wins over the global one.
    assert_eq!(r.status(READER, M::GET, "/mode/a", None).await, (404, 40409));
    assert_eq!(
        r.call(Some(READER), M::GET, "/mode/a?defaultToGlobal=true", None).await.2,
        json!({"mode": "READWRITE"})
    );
    assert_eq!(r.status(ADMIN, M::PUT, "/mode/a", Some(json!({"mode": "READONLY"}))).await.0, 200);
    assert_eq!(r.call(Some(READER), M::GET, "/mode/a", None).await.2, json!({"mode": "READONLY"}));
    assert_eq!(r.register(WRITER, "a", "A2").await, (422, 42205));
    assert_eq!(r.register(WRITER, "b", "B").await.0, 200);
    let (status, _, body) = r.call(Some(ADMIN), M::DELETE, "/mode/a", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"mode": "READONLY"})));
    assert_eq!(r.status(ADMIN, M::DELETE, "/mode/a", None).await, (404, 40409));
    assert_eq!(r.register(WRITER, "a", "A2").await.0, 200);
}

#[tokio::test]
async fn every_delete_config_and_mode_change_is_stored_with_who_did_it_and_how_it_ended() {
    let r = spawn_registry().await;
    assert_eq!(r.register(WRITER, "audited", "A").await.0, 200);
    assert_eq!(r.status(ADMIN, M::PUT, "/config/audited", Some(json!({"compatibility": "FULL"}))).await.0, 200);
    assert_eq!(r.status(ADMIN, M::PUT, "/mode", Some(json!({"mode": "READONLY"}))).await.0, 200);
    assert_eq!(r.status(ADMIN, M::DELETE, "/subjects/audited", None).await.1, 42205);
    assert_eq!(r.status(ADMIN, M::PUT, "/mode", Some(json!({"mode": "READWRITE"}))).await.0, 200);
    assert_eq!(r.status(ADMIN, M::DELETE, "/subjects/audited/versions/1", None).await.0, 200);
    assert_eq!(r.status(WRITER, M::DELETE, "/subjects/audited", None).await.0, 403);

    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        username: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        action: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        subject: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        version: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        result: String,
    }
    let mut conn = PgConnection::establish(&r.db.url).unwrap();
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT username, action, coalesce(subject, '') AS subject, coalesce(version, '') AS version, detail, result \
         FROM audit_log ORDER BY id",
    )
    .load(&mut conn)
    .unwrap();
    let row = |action: &str, subject: &str, version: &str, detail: &str, result: &str| Row {
        username: ADMIN.0.into(),
        action: action.into(),
        subject: subject.into(),
        version: version.into(),
        detail: detail.into(),
        result: result.into(),
    };
    assert_eq!(
        rows,
        vec![
            row("set_config", "audited", "", "FULL", "ok"),
            row("set_mode", "", "", "READONLY", "ok"),
            row("delete_subject", "audited", "", "permanent=false", "error 42205"),
            row("set_mode", "", "", "READWRITE", "ok"),
            row("delete_version", "audited", "1", "permanent=false", "ok"),
        ],
        "the writer's refused delete never reached a handler"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_plain_text_password_in_the_credentials_file_stops_the_start_with_a_clear_error() {
    let db = TestDatabase::create();
    let file = credentials_file("intruder: letmein,admin\n");
    let out = Command::new(env!("CARGO_BIN_EXE_schema-registry"))
        .env("SCHEMA_REGISTRY_LISTEN_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("SCHEMA_REGISTRY_DATABASE_URL", &db.url)
        .env("SCHEMA_REGISTRY_AUTH_FILE", &file)
        .output()
        .expect("the registry binary runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 5") && stderr.contains("plain-text passwords are refused"), "{stderr}");
    assert!(stderr.contains("intruder"), "{stderr}");
}

/// A forgotten credentials variable does not leave the registry open: it refuses to start and
/// says what to set; running open takes an explicit SCHEMA_REGISTRY_AUTH=none.
#[test]
fn without_a_credentials_file_the_registry_refuses_to_start_unless_told_to_run_open() {
    let db = TestDatabase::create();
    let run = |mode: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_schema-registry"));
        command
            .env("SCHEMA_REGISTRY_LISTEN_ADDR", "not-an-address")
            .env("SCHEMA_REGISTRY_DATABASE_URL", &db.url)
            .env_remove("SCHEMA_REGISTRY_AUTH_FILE")
            .env_remove("SCHEMA_REGISTRY_AUTH");
        if let Some(mode) = mode {
            command.env("SCHEMA_REGISTRY_AUTH", mode);
        }
        command.output().expect("the registry binary runs")
    };
    let out = run(None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SCHEMA_REGISTRY_AUTH_FILE is not set") && stderr.contains("SCHEMA_REGISTRY_AUTH=none"),
        "{stderr}"
    );
    let out = run(Some("sometimes"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SCHEMA_REGISTRY_AUTH=\"sometimes\" is not valid"));
    // Told to run open, it gets past the settings (and fails later only on the address it cannot bind).
    let out = run(Some("none"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("make a credentials file with"), "{stderr}");
    assert!(stderr.contains("NO AUTHENTICATION"), "it warns: {stderr}");
}

#[tokio::test]
async fn the_audit_log_line_names_the_user_the_action_the_subject_and_the_result() {
    let db = TestDatabase::create();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log = std::env::temp_dir().join(testkit::unique("registry-audit")).with_extension("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_schema-registry"))
        .env("SCHEMA_REGISTRY_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("SCHEMA_REGISTRY_DATABASE_URL", &db.url)
        .env("SCHEMA_REGISTRY_AUTH_FILE", credentials_file(""))
        .env("RUST_LOG", "warn,schema_registry::audit=info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the registry binary starts");
    testkit::eventually(Duration::from_secs(30), "the registry to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .await;
    let http = reqwest::Client::new();
    let send = |method: M, path: &str, who: (&str, &str), body: Option<Value>| {
        let mut req = http.request(method, format!("{base}{path}")).basic_auth(who.0, Some(who.1));
        if let Some(b) = body {
            req = req.header("content-type", SR_JSON).body(b.to_string());
        }
        req.send()
    };
    assert!(send(M::POST, "/subjects/logged/versions", WRITER, Some(schema("L"))).await.unwrap().status().is_success());
    assert_eq!(send(M::DELETE, "/subjects/logged", ADMIN, None).await.unwrap().status(), StatusCode::OK);
    assert_eq!(send(M::DELETE, "/subjects/logged", READER, None).await.unwrap().status(), StatusCode::FORBIDDEN);
    let lines = testkit::eventually(Duration::from_secs(10), "both audit lines", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<String> =
            text.lines().filter(|l| l.contains("schema_registry::audit")).map(String::from).collect();
        (lines.len() >= 2).then_some(lines)
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(
        lines[0].contains(r#"user="root" action=delete_subject subject="logged""#) && lines[0].contains("result=ok"),
        "{lines:?}"
    );
    assert!(lines[1].contains(r#"user="viewer""#) && lines[1].contains("result=denied"), "{lines:?}");
}

#[tokio::test]
async fn schema_registry_converter_with_credentials_encodes_and_decodes_and_without_them_is_refused() {
    use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
    use schema_registry_converter::async_impl::schema_registry::SrSettings;
    use schema_registry_converter::schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema};

    let r = spawn_registry().await;
    let settings = |who: Option<(&str, &str)>| {
        let mut builder = SrSettings::new_builder(r.base.clone());
        builder.no_proxy();
        if let Some((user, password)) = who {
            builder.set_basic_authorization(user, Some(password));
        }
        builder.build().unwrap()
    };
    let supplied = json!({"type": "record", "name": "Point", "fields": [{"name": "x", "type": "int"}]}).to_string();
    let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
        "points".into(),
        false,
        SuppliedSchema::new(None, SchemaType::Avro, supplied),
    );
    #[derive(serde::Serialize)]
    struct Point {
        x: i32,
    }
    let refused = AvroEncoder::new(settings(None)).encode_struct(Point { x: 1 }, &strategy).await.unwrap_err();
    assert!(refused.error.contains("401"), "{refused:?}");
    let refused = AvroEncoder::new(settings(Some(READER))).encode_struct(Point { x: 1 }, &strategy).await.unwrap_err();
    assert!(refused.error.contains("403"), "a reader cannot register: {refused:?}");

    let bytes =
        AvroEncoder::new(settings(Some(WRITER))).encode_struct(Point { x: 7 }, &strategy).await.expect("encodes");
    let decoded = AvroDecoder::new(settings(Some(READER))).decode(Some(&bytes)).await.expect("a reader decodes");
    assert_eq!(decoded.value, apache_avro::types::Value::Record(vec![("x".into(), apache_avro::types::Value::Int(7))]));
}
