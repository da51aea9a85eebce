//! Exponential backoff for transient failures, which gives up when shutdown is requested.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// 100 ms doubling to 5 s.
#[derive(Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// Sleeps the next delay; false when shutdown came first.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = Duration::from_millis(100 * 2u64.pow(self.attempt.min(6))).min(Duration::from_secs(5));
        self.attempt += 1;
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}
