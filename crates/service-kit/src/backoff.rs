//! Capped exponential backoff for retried transient failures (a database, broker or registry
//! outage), which gives up when shutdown is requested.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Delays doubling from `first` to `cap`. The cap bounds how long after an outage's end the next
/// attempt comes (the chaos suite's recovery goal is 10 s), at one attempt per `cap` while it
/// lasts.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
}

/// 100 ms doubling to 2 s.
impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(2))
    }
}

impl Backoff {
    pub fn new(first: Duration, cap: Duration) -> Self {
        Self { first, cap, next: first }
    }

    /// The delay before the next attempt; each call doubles the one after, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next.min(self.cap);
        self.next = (self.next * 2).min(self.cap);
        delay
    }

    /// After a success: the next failure starts from the first delay again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// Sleeps the next delay; false when shutdown came first.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::default();
        let ms: Vec<u128> = (0..7).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 2000, 2000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_cancelled_shutdown_ends_the_wait_at_once() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let mut b = Backoff::new(Duration::from_secs(60), Duration::from_secs(60));
        let started = std::time::Instant::now();
        assert!(!b.wait(&shutdown).await);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
