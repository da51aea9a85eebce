//! The whole system for the read-side tests: a fresh topic and database, ingest-api in-process
//! (ready), and the processor when asked for, against the real broker, registry and PostgreSQL.
//! [`Stack::stop`] stops both and waits for them: a test binary that exits while their threads
//! run (the watermark listener, librdkafka's) can crash in exit handlers.

use std::time::Duration;

use ingest_api::auth::TokenSigner;
use ingest_api::config::{Secret, Settings};
use reqwest::StatusCode;
use testkit::{unique, TestDatabase};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The HMAC secret of the stack's tokens.
pub const SECRET: &str = "read-test-secret-0123";

pub struct Stack {
    pub api: String,
    pub http: reqwest::Client,
    pub signer: TokenSigner,
    processor: Option<(CancellationToken, JoinHandle<anyhow::Result<()>>)>,
    processor_settings: processor::config::Settings,
    api_stop: CancellationToken,
    api_task: JoinHandle<anyhow::Result<()>>,
    _db: TestDatabase,
}

/// Starts the stack; `adjust` changes ingest-api's settings (rate limits are off unless it turns
/// them on: they have their own tests).
pub async fn spawn(with_processor: bool, adjust: impl FnOnce(&mut Settings)) -> Stack {
    testkit::init_logging();
    let db = TestDatabase::create();
    let topic = unique("device-synced");
    testkit::create_topic(&topic, 3).await;
    testkit::create_topic(&format!("{topic}.dlq"), 1).await;
    let processor_settings = processor::config::Settings {
        kafka_bootstrap_servers: testkit::kafka_bootstrap(),
        schema_registry_url: testkit::schema_registry_url(),
        database_url: db.url.clone(),
        topic: topic.clone(),
        dlq_topic: format!("{topic}.dlq"),
        group_id: unique("processor"),
        ops_addr: "127.0.0.1:0".into(),
        db_pool_size: 4,
        batch_max_events: 100,
        batch_max_wait: Duration::from_millis(20),
        cache_budget_bytes: 64 << 20,
        ..Default::default()
    };
    // The schema of the read model exists before any read.
    processor::migrate(&processor::db::pool(&db.url, 1)).await.expect("migrations");
    let mut settings = Settings {
        listen_addr: "127.0.0.1:0".into(),
        kafka_bootstrap_servers: testkit::kafka_bootstrap(),
        schema_registry_url: testkit::schema_registry_url(),
        topic,
        producer_queue_max_messages: 1000,
        workers: 2,
        read_database_url: db.url.clone(),
        read_pool_size: 4,
        read_max_days: 31,
        rate_limits: ingest_api::config::RateLimits::off(),
        ..Settings::with_defaults(Secret::new(SECRET))
    };
    adjust(&mut settings);
    let app = ingest_api::Application::build(settings).await.expect("ingest-api starts");
    let api = format!("http://127.0.0.1:{}", app.port());
    let api_stop = CancellationToken::new();
    let stopped = api_stop.clone();
    let api_task = tokio::spawn(app.run_until(async move { stopped.cancelled().await }));
    let http = reqwest::Client::new();
    testkit::eventually_async(Duration::from_secs(10), "ingest-api ready", || {
        let (http, url) = (http.clone(), format!("{api}/readyz"));
        async move { http.get(url).send().await.ok().filter(|r| r.status() == StatusCode::OK).map(|_| ()) }
    })
    .await;
    let mut stack = Stack {
        api,
        http,
        signer: TokenSigner::new(&Secret::new(SECRET)),
        processor: None,
        processor_settings,
        api_stop,
        api_task,
        _db: db,
    };
    if with_processor {
        stack.start_processor().await;
    }
    stack
}

impl Stack {
    pub async fn start_processor(&mut self) {
        let app = processor::Application::build(self.processor_settings.clone()).await.expect("processor starts");
        let stop = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(stop.clone()));
        self.processor = Some((stop, task));
    }

    /// Stops the processor and ingest-api and waits for both.
    pub async fn stop(self) {
        if let Some((stop, task)) = self.processor {
            stop.cancel();
            task.await.expect("the processor's task").expect("the processor stops cleanly");
        }
        self.api_stop.cancel();
        self.api_task.await.expect("ingest-api's task").expect("ingest-api stops cleanly");
    }
}
