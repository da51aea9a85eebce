//! Helpers for the integration tests: a fresh PostgreSQL database per test, the broker and
//! registry that `make test` started, unique topics, and sample events.
//!
//! The tests use real components over real connections. `make test` (see `deploy/test-stack.sh`)
//! starts the broker and the registry on free ports and exports where they are.

pub mod fuzz;
pub mod metrics;

use std::time::Duration;

use diesel::{Connection, PgConnection, RunQueryDsl};
use rdkafka::config::ClientConfig;

pub mod apps;

pub use events::DeviceSynced;

/// Logs at `RUST_LOG` (default warn) into the test output; safe to call many times.
pub fn init_logging() {
    let _ =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).is_test(true).try_init();
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through `make test`, which starts the broker and registry and sets it")
    })
}

/// The test broker's bootstrap address.
pub fn kafka_bootstrap() -> String {
    required_env("TEST_KAFKA_BOOTSTRAP_SERVERS")
}

/// The test Schema Registry's URL.
pub fn schema_registry_url() -> String {
    required_env("TEST_SCHEMA_REGISTRY_URL")
}

/// The credentials `make test` made for the test registry (a writer), from
/// SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO; None when the registry runs open.
pub fn registry_basic_auth() -> Option<events::registry::BasicAuth> {
    events::registry::BasicAuth::from_env().unwrap_or_else(|e| panic!("{e}"))
}

/// The server to create test databases on.
pub fn database_admin_url() -> String {
    std::env::var("TEST_DATABASE_ADMIN_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A short random suffix for names that must not clash between tests or runs.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A database that exists for one test and is dropped with it.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub fn create() -> Self {
        let admin = database_admin_url();
        let name = unique("test").replace('-', "_");
        let mut conn = PgConnection::establish(&admin)
            .unwrap_or_else(|e| panic!("connecting to {admin} to create a test database: {e}"));
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn).expect("CREATE DATABASE");
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Self { url: format!("{base}/{name}"), name }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&database_admin_url()) {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&mut conn);
        }
    }
}

/// Creates a topic on the test broker (the embedded broker does not create topics on first use).
pub async fn create_topic(name: &str, partitions: i32) {
    create_topic_on(&kafka_bootstrap(), name, partitions).await
}

/// Creates a topic on the given broker.
pub async fn create_topic_on(bootstrap: &str, name: &str, partitions: i32) {
    let topic = events::kafka::TopicSpec::new(name, partitions, 1);
    if let Err(e) = events::kafka::create_topics(bootstrap, &[topic]).await {
        panic!("{e}");
    }
}

/// Polls `check` every 100 ms until it returns Some, or panics after `timeout` with `what`.
pub async fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Like [`eventually`], for a check that awaits.
pub async fn eventually_async<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A small but complete DeviceSynced: 12 heart-rate samples, one RR block, 3 step epochs.
pub fn sample_device_synced(user_id: &str, device_id: &str) -> DeviceSynced {
    use events::device_synced::*;
    let start = 1_764_000_000_000_i64;
    DeviceSynced {
        event_id: uuid::Uuid::new_v4().to_string(),
        sync_id: uuid::Uuid::new_v4().to_string(),
        user_id: user_id.into(),
        device_id: device_id.into(),
        ingested_at: start + 900_000,
        device: DeviceInfo {
            manufacturer: "Acme".into(),
            model: "Band 3".into(),
            hardware_version: "rev-b".into(),
            firmware_version: "3.1.4".into(),
            battery_percent: Some(81),
            hr_sensor: HrSensorKind::Optical,
        },
        app: AppInfo { app_version: "2.4.0".into(), os: "Android 15".into() },
        clock: ClockInfo { device_time_ms: start + 899_000, phone_time_ms: start + 900_000, skew_ms: 1_000 },
        time_zone: TimeZoneInfo {
            iana: "Europe/Berlin".into(),
            offsets: vec![UtcOffsetSegment { start_ms: start, offset_minutes: 60 }],
        },
        sequence: SequenceRange { first: 100, last: 127 },
        window_start_ms: start,
        window_end_ms: start + 900_000,
        heart_rate: HeartRateSeries {
            time_deltas_ms: vec![0; 1].into_iter().chain(std::iter::repeat_n(5_000, 11)).collect(),
            bpm: vec![62, 63, 63, 64, 66, 70, 72, 71, 69, 66, 64, 63],
            quality: vec![HrQuality::Locked; 12],
        },
        rr_blocks: vec![RrBlock { first_beat_ms: start, intervals_ms: vec![950, 962, 948, 971, 940] }],
        steps: StepSeries {
            start_deltas_ms: vec![0, 60_000, 60_000],
            duration_s: vec![60, 60, 60],
            steps: vec![0, 35, 104],
            distance_m: vec![0.0, 24.5, 78.0],
        },
        sleep: vec![],
        workouts: vec![],
        profile: Some(Profile { birth_year: 1988, sex: Sex::Female, weight_kg: 61.5, height_cm: 168.0, hr_max: None }),
        spo2: None,
        skin_temperature: vec![],
        wear_events: vec![],
        dropped_samples: [("hr_out_of_range".to_string(), 1)].into_iter().collect(),
    }
}

/// Reads a topic from the beginning until `count` records arrived or `timeout` passed.
pub async fn consume(topic: &str, count: usize, timeout: Duration) -> Vec<rdkafka::message::OwnedMessage> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::Message;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", unique("test-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while out.len() < count {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(m)) => out.push(m.detach()),
            Ok(Err(e)) => panic!("consuming {topic}: {e}"),
            Err(_) => break,
        }
    }
    out.sort_by_key(|m| (m.partition(), m.offset()));
    out
}

/// Records in a topic, summed over partitions (high watermarks).
pub fn topic_record_count(topic: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", unique("test-watermarks"))
        .create()
        .expect("consumer");
    let partitions = events::kafka::topic_partitions(consumer.client(), topic, Duration::from_secs(5))
        .expect("topic metadata") as i32;
    (0..partitions)
        .map(|p| {
            let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5)).expect("watermarks");
            high - low
        })
        .sum()
}

/// A broker of the test's own, for tests that stop and restart it. Its data lives in its own
/// PostgreSQL database, so a restart keeps topics, records and producer state, as Kafka does.
pub struct PrivateBroker {
    pub port: u16,
    child: Option<std::process::Child>,
    db: TestDatabase,
}

impl PrivateBroker {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let mut broker = Self { port, child: None, db: TestDatabase::create() };
        broker.restart().await;
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port and storage.
    pub async fn restart(&mut self) {
        let bin = required_env("TEST_NISSHI_BIN");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = std::process::Command::new(bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            // sslmode=disable: the broker would otherwise insist on TLS to PostgreSQL.
            .args([
                "--storage-engine",
                &format!("{}?sslmode=disable", self.db.url),
                "--group-initial-rebalance-delay",
                "0s",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nisshi starts");
        self.child = Some(child);
        let addr = self.bootstrap();
        eventually(Duration::from_secs(10), "the private broker to listen", || {
            std::net::TcpStream::connect(&addr).ok()
        })
        .await;
    }

    /// Kills it (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy on loopback that a test can cut and restore, to take a dependency "down" without
/// stopping the shared server behind it; in front of an HTTP server it can also answer every
/// request with an error status itself ([`TcpProxy::answer_http`]).
pub struct TcpProxy {
    pub port: u16,
    /// 0: forward; 1: refuse; an HTTP status: answer it to every request.
    mode: std::sync::Arc<std::sync::atomic::AtomicU16>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

const PROXY_FORWARD: u16 = 0;
const PROXY_REFUSE: u16 = 1;

impl TcpProxy {
    pub async fn start(target: &str) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let mode = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(PROXY_FORWARD));
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (mode2, conns2, target) = (mode.clone(), connections.clone(), target.to_owned());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let task = match mode2.load(Ordering::SeqCst) {
                    PROXY_REFUSE => continue, // dropped: the connection is refused in effect
                    PROXY_FORWARD => tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    }),
                    status => tokio::spawn(answer_every_request(inbound, status)),
                };
                conns2.lock().expect("lock").push(task);
            }
        });
        Self { port, mode, connections, accept }
    }

    /// Cuts every open connection and refuses new ones.
    pub fn cut(&self) {
        self.switch(PROXY_REFUSE);
    }

    /// Cuts every open connection; new ones get `status` as the answer to each HTTP request.
    pub fn answer_http(&self, status: u16) {
        assert!(status >= 100, "an HTTP status");
        self.switch(status);
    }

    pub fn restore(&self) {
        self.switch(PROXY_FORWARD);
    }

    fn switch(&self, mode: u16) {
        self.mode.store(mode, std::sync::atomic::Ordering::SeqCst);
        for c in self.connections.lock().expect("lock").drain(..) {
            c.abort();
        }
    }
}

/// Reads HTTP requests (head, then a Content-Length body) and answers each with `status`.
async fn answer_every_request(mut stream: tokio::net::TcpStream, status: u16) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let body_len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() < end + 4 + body_len {
                break;
            }
            buf.drain(..end + 4 + body_len);
            let body = format!(r#"{{"error_code":{status},"message":"injected by the test proxy"}}"#);
            let answer = format!(
                "HTTP/1.1 {status} Injected\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
