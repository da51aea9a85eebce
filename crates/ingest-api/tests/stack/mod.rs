//! The whole system for the read-side tests: a fresh topic and database, ingest-api in-process
//! (ready), and the processor when asked for, against the real broker, registry and PostgreSQL.
//! [`Stack::stop`] stops both and waits for them: a test binary that exits while their threads
//! run (the watermark listener, librdkafka's) can crash in exit handlers.

use std::time::Duration;

use ingest_api::auth::TokenSigner;
use ingest_api::config::{Secret, Settings};
use ingest_api::example::standard_sync;
use reqwest::StatusCode;
use serde_json::{json, Value};
use testkit::apps::{self, RunningApp};
use testkit::{unique, TestDatabase};

/// The HMAC secret of the stack's tokens.
pub const SECRET: &str = apps::TOKEN_SECRET;

pub struct Stack {
    pub api: String,
    pub http: reqwest::Client,
    pub signer: TokenSigner,
    processor: Option<RunningApp>,
    processor_settings: processor::config::Settings,
    ingest: RunningApp,
    _db: TestDatabase,
}

/// Starts the stack; `adjust` changes ingest-api's settings (rate limits are off unless it turns
/// them on: they have their own tests).
pub async fn spawn(with_processor: bool, adjust: impl FnOnce(&mut Settings)) -> Stack {
    let db = TestDatabase::create();
    let topic = unique("device-synced");
    testkit::create_topic(&topic, 3).await;
    testkit::create_topic(&format!("{topic}.dlq"), 1).await;
    let processor_settings = apps::processor_settings(&topic, &db.url);
    // The schema of the read model exists before any read.
    processor::migrate(&processor::db::pool(&db.url, 1)).await.expect("migrations");
    let mut settings = Settings {
        read_database_url: db.url.clone(),
        read_pool_size: 4,
        read_max_days: 31,
        ..apps::ingest_settings(&topic)
    };
    adjust(&mut settings);
    let ingest = apps::spawn_ingest(settings).await;
    let mut stack = Stack {
        api: ingest.url.clone(),
        http: reqwest::Client::new(),
        signer: TokenSigner::new(&Secret::new(SECRET)),
        processor: None,
        processor_settings,
        ingest,
        _db: db,
    };
    if with_processor {
        stack.start_processor().await;
    }
    stack
}

impl Stack {
    /// Posts a standard sync of `user` from `device` ending now; the 202's body.
    #[allow(dead_code)] // not every test binary posts
    pub async fn sync(&self, user: &str, device: &str) -> Value {
        self.sync_ending(user, device, chrono::Utc::now().timestamp_millis()).await
    }

    /// Posts a standard sync of `user` from `device` ending at `end_ms`; the 202's body.
    #[allow(dead_code)]
    pub async fn sync_ending(&self, user: &str, device: &str, end_ms: i64) -> Value {
        let mut body = standard_sync(uuid::Uuid::new_v4(), end_ms, 3, true);
        // The phone syncs now (the server checks its clock); its device clock keeps the example's
        // 1.2 s skew, so the wear's corrected times stay as they were.
        let now = chrono::Utc::now().timestamp_millis();
        body["clock"] = json!({"device_time_ms": now, "phone_time_ms": now + 1_200});
        let res = self
            .http
            .post(format!("{}/v1/devices/{device}/syncs", self.api))
            .bearer_auth(self.signer.mint(user, Some(device), Duration::from_secs(600)))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        res.json().await.unwrap()
    }

    /// Waits until the sync `accepted` (a 202's body) is processed, through a read of `user`'s
    /// model with its consistency token.
    #[allow(dead_code)]
    pub async fn wait_processed(&self, user: &str, accepted: &Value) {
        let res = self
            .http
            .get(format!(
                "{}/v1/users/{user}/model?consistency_token={}&wait=10000",
                self.api,
                accepted["consistency_token"].as_str().unwrap()
            ))
            .bearer_auth(self.signer.mint(user, None, Duration::from_secs(600)))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    /// The processor's ops URL (`/metrics`, `/readyz`), while it runs.
    #[allow(dead_code)]
    pub fn processor_url(&self) -> Option<&str> {
        self.processor.as_ref().map(|p| p.url.as_str())
    }

    pub async fn start_processor(&mut self) {
        self.processor = Some(apps::spawn_processor(self.processor_settings.clone()).await);
    }

    /// Stops the processor and ingest-api and waits for both.
    pub async fn stop(self) {
        if let Some(processor) = self.processor {
            processor.stop().await.expect("the processor stops cleanly");
        }
        self.ingest.stop().await.expect("ingest-api stops cleanly");
    }
}
