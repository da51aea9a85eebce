//! One `spawn_*` per service: each test starts the real service in-process on a free port, with
//! test settings (the test broker and registry, its own topic and database), and stops it
//! through its token. Stopping matters: a test binary that exits while a service's threads run
//! (actix workers, librdkafka, the watermark listener) can crash in exit handlers.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{kafka_bootstrap, schema_registry_url, unique};

/// The HMAC secret of the tokens of an ingest-api started by [`ingest_settings`].
pub const TOKEN_SECRET: &str = "test-token-secret-0123";

/// A service running in this test process. Dropping it asks the service to stop;
/// [`stop`](Self::stop) also waits for it.
pub struct RunningApp {
    pub port: u16,
    /// `http://127.0.0.1:{port}`.
    pub url: String,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl RunningApp {
    /// Runs `run_until_stopped(shutdown)` of a built application on a task.
    pub fn start<F>(port: u16, run_until_stopped: impl FnOnce(CancellationToken) -> F) -> Self
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_until_stopped(shutdown.clone()));
        Self { port, url: format!("http://127.0.0.1:{port}"), shutdown, task: Some(task) }
    }

    /// The token that stops the service (a test that stops it from elsewhere).
    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops the service and waits for it (20 s at most); its own result, or why it did not
    /// stop.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let Some(task) = self.task.take() else { return Ok(()) };
        match tokio::time::timeout(Duration::from_secs(20), task).await {
            Ok(joined) => joined?,
            Err(_) => anyhow::bail!("the service did not stop within 20 s of its shutdown"),
        }
    }

    /// Waits until `path` answers 200 (a readiness probe), or panics after `timeout`.
    pub async fn wait_for_ok(&self, path: &str, timeout: Duration) {
        let (http, url) = (reqwest::Client::new(), format!("{}{path}", self.url));
        crate::eventually_async(timeout, &format!("{url} to answer 200"), || {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
        })
        .await;
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// ingest-api's test settings: a free port, the test broker and registry, `topic`, tokens signed
/// with [`TOKEN_SECRET`], rate limits off (they have their own tests), and no read database (the
/// command path never reads it; read tests set `read_database_url`).
pub fn ingest_settings(topic: &str) -> ingest_api::config::Settings {
    ingest_api::config::Settings {
        listen_addr: "127.0.0.1:0".into(),
        kafka_bootstrap_servers: kafka_bootstrap(),
        schema_registry_url: schema_registry_url(),
        topic: topic.into(),
        producer_queue_max_messages: 1000,
        workers: 2,
        read_database_url: "postgres://postgres@127.0.0.1:1/none".into(),
        read_pool_size: 1,
        rate_limits: ingest_api::config::RateLimits::off(),
        ..ingest_api::config::Settings::with_defaults(ingest_api::config::Secret::new(TOKEN_SECRET))
    }
}

/// Starts ingest-api and waits until `/readyz` says it is ready (the schema registered).
pub async fn spawn_ingest(settings: ingest_api::config::Settings) -> RunningApp {
    crate::init_logging();
    let app = ingest_api::Application::build(settings).await.expect("ingest-api starts");
    let running = RunningApp::start(app.port(), |shutdown| app.run_until_stopped(shutdown));
    running.wait_for_ok("/readyz", Duration::from_secs(20)).await;
    running
}

/// The processor's test settings: `topic` and `{topic}.dlq`, a group of its own, `database_url`,
/// small batches, a free ops port.
pub fn processor_settings(topic: &str, database_url: &str) -> processor::config::Settings {
    processor::config::Settings {
        kafka_bootstrap_servers: kafka_bootstrap(),
        schema_registry_url: schema_registry_url(),
        database_url: database_url.into(),
        topic: topic.into(),
        dlq_topic: format!("{topic}.dlq"),
        group_id: unique("processor"),
        ops_addr: "127.0.0.1:0".into(),
        db_pool_size: 4,
        batch_max_events: 100,
        batch_max_wait: Duration::from_millis(20),
        cache_budget_bytes: 64 << 20,
        ..Default::default()
    }
}

/// Starts the processor (it migrates its database and joins its group); its port is the ops
/// port.
pub async fn spawn_processor(settings: processor::config::Settings) -> RunningApp {
    crate::init_logging();
    let app = processor::Application::build(settings).await.expect("processor starts");
    RunningApp::start(app.port(), |shutdown| app.run_until_stopped(shutdown))
}

/// The registry's test settings: a free port, `database_url`, open (auth tests set a file).
pub fn registry_settings(database_url: &str) -> schema_registry::Settings {
    schema_registry::Settings {
        listen_addr: "127.0.0.1:0".into(),
        database_url: database_url.into(),
        db_pool_size: 4,
        ..Default::default()
    }
}

/// Starts the schema registry (it migrates its database).
pub async fn spawn_registry(settings: schema_registry::Settings) -> RunningApp {
    crate::init_logging();
    let app = schema_registry::Application::build(settings).await.expect("the registry starts");
    RunningApp::start(app.port(), |shutdown| app.run_until_stopped(shutdown))
}
