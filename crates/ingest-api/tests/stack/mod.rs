//! The whole system for the read-side tests: a fresh topic and database, ingest-api in-process
//! (ready), and the processor when asked for, against the real broker, registry and PostgreSQL.
//! [`Stack::stop`] stops both and waits for them: a test binary that exits while their threads
//! run (the watermark listener, librdkafka's) can crash in exit handlers.

use ingest_api::auth::TokenSigner;
use ingest_api::config::{Secret, Settings};
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
