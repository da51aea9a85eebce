//! Exponential backoff for transient failures, which gives up when shutdown is requested.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// 100 ms doubling to 2 s: the cap bounds how long after an outage's end the next attempt comes
/// (the chaos suite's recovery goal is 10 s), at a cost of one attempt per 2 s while it lasts.
#[derive(Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// Sleeps the next delay; false when shutdown came first.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = Duration::from_millis(100 * 2u64.pow(self.attempt.min(5))).min(Duration::from_secs(2));
        self.attempt += 1;
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}
