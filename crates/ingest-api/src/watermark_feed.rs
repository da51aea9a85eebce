//! The processor's watermarks, pushed: one `LISTEN processor_watermarks` connection per process
//! wakes every read that waits for a consistency token. The processor notifies inside the
//! transaction that advances a partition, so a notification arrives only after its commit.
//!
//! Waiters hold no database connection and poll nothing; their number is bounded
//! (`INGEST_READ_MAX_WAITERS`), past which a wait is refused at once with 503.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use prometheus::{IntCounter, IntGauge, Registry};
use serde::Deserialize;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// The channel the processor notifies on (contract with `processor`).
pub const CHANNEL: &str = "processor_watermarks";

/// How often the listener looks for notifications. `PQconsumeInput` is non-blocking and diesel
/// does not expose the socket, so this is the wake-up latency of a waiter, not a database query.
const LISTEN_TICK: Duration = Duration::from_millis(5);
/// How often the listener checks its connection is alive, when nothing arrives.
const HEALTH_CHECK: Duration = Duration::from_secs(10);
/// The longest pause between attempts to reconnect.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Debug, Deserialize)]
struct Notification {
    topic: String,
    partition: i32,
    offset: i64,
}

/// Why a wait was not started.
#[derive(Debug, PartialEq, Eq)]
pub enum WaitRefused {
    /// Too many reads are waiting already.
    Saturated { max: usize },
}

/// The watermarks of one topic as last seen, and the waiters on them.
pub struct WatermarkFeed {
    topic: String,
    partitions: Mutex<HashMap<i32, watch::Sender<i64>>>,
    waiters: Arc<Semaphore>,
    max_waiters: usize,
    connected: AtomicBool,
    waiting: IntGauge,
    refused: IntCounter,
    notifications: IntCounter,
    listener_up: IntGauge,
}

impl WatermarkFeed {
    /// A feed with no listener yet: call [`spawn_listener`](Self::spawn_listener) to start it.
    pub fn new(topic: &str, max_waiters: usize, registry: &Registry) -> Arc<Self> {
        let waiting = IntGauge::new("read_waiters", "Reads waiting for a consistency token").expect("valid metric");
        let refused = IntCounter::new("read_waiters_refused_total", "Waits refused because too many were waiting")
            .expect("valid metric");
        let notifications =
            IntCounter::new("watermark_notifications_total", "Watermark notifications received from the processor")
                .expect("valid metric");
        let listener_up =
            IntGauge::new("watermark_listener_connected", "1 while the LISTEN connection is up").expect("valid metric");
        for c in [
            Box::new(waiting.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(refused.clone()),
            Box::new(notifications.clone()),
            Box::new(listener_up.clone()),
        ] {
            // A second feed on one registry (tests) keeps the first one's metrics.
            let _ = registry.register(c);
        }
        Arc::new(Self {
            topic: topic.to_owned(),
            partitions: Mutex::default(),
            waiters: Arc::new(Semaphore::new(max_waiters)),
            max_waiters,
            connected: AtomicBool::new(false),
            waiting,
            refused,
            notifications,
            listener_up,
        })
    }

    /// Whether the LISTEN connection is up (for `/readyz`).
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Records a watermark; it only moves forward, except on a full reload after reconnecting
    /// (`replace`), which takes the database's word.
    fn publish(&self, partition: i32, offset: i64, replace: bool) {
        let mut partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        match partitions.get(&partition) {
            Some(tx) if replace => {
                tx.send_replace(offset);
            }
            Some(tx) => {
                tx.send_if_modified(|seen| {
                    let advanced = offset > *seen;
                    if advanced {
                        *seen = offset;
                    }
                    advanced
                });
            }
            None => {
                partitions.insert(partition, watch::channel(offset).0);
            }
        }
    }

    /// A receiver of the partition's watermark, starting from `known` when the feed has not
    /// seen the partition yet.
    fn subscribe(&self, partition: i32, known: i64) -> watch::Receiver<i64> {
        let mut partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        partitions.entry(partition).or_insert_with(|| watch::channel(known).0).subscribe()
    }

    /// A place among the waiters, or a refusal when all are taken.
    pub fn admit(&self) -> Result<WaiterPermit, WaitRefused> {
        match self.waiters.clone().try_acquire_owned() {
            Ok(permit) => {
                self.waiting.inc();
                Ok(WaiterPermit { _permit: permit, gauge: self.waiting.clone() })
            }
            Err(_) => {
                self.refused.inc();
                Err(WaitRefused::Saturated { max: self.max_waiters })
            }
        }
    }

    /// Waits until the partition's watermark reaches `offset` or `wait` passes; returns the
    /// watermark last seen. `known` is the database's value read just before (the feed may not
    /// have the partition yet). Holds no connection while it waits.
    pub async fn wait_for(
        &self,
        _permit: &WaiterPermit,
        partition: i32,
        offset: i64,
        known: i64,
        wait: Duration,
    ) -> i64 {
        let deadline = tokio::time::Instant::now() + wait;
        let mut rx = self.subscribe(partition, known);
        loop {
            let seen = (*rx.borrow_and_update()).max(known);
            if seen >= offset {
                return seen;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                // The sender lives as long as the feed; a timeout ends the wait.
                Ok(Err(_)) | Err(_) => return (*rx.borrow()).max(known),
            }
        }
    }

    /// Starts the listener on its own thread: it connects to `database_url`, LISTENs, loads every
    /// watermark of the topic, then publishes each notification. On a lost connection it
    /// reconnects with capped backoff and reloads, so a waiter misses nothing. It stops when
    /// `stop` is set.
    pub fn spawn_listener(self: &Arc<Self>, database_url: String, stop: Arc<AtomicBool>) {
        let feed = self.clone();
        let spawned = std::thread::Builder::new().name("watermark-listener".into()).spawn(move || {
            let mut backoff = Duration::from_millis(100);
            while !stop.load(Ordering::Relaxed) {
                match feed.listen(&database_url, &stop) {
                    Ok(()) => return,
                    Err(e) => {
                        if feed.connected.swap(false, Ordering::Relaxed) {
                            log::warn!("the watermark listener lost its connection ({e}); reconnecting");
                        } else {
                            log::debug!("the watermark listener cannot connect yet: {e}");
                        }
                        feed.listener_up.set(0);
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        });
        if let Err(e) = spawned {
            log::error!("cannot start the watermark listener thread ({e}); reads with a wait will time out");
        }
    }

    /// One connection's life: LISTEN, reload, then notifications until an error or `stop`.
    fn listen(&self, database_url: &str, stop: &AtomicBool) -> Result<(), diesel::result::Error> {
        let mut conn =
            PgConnection::establish(database_url).map_err(|e| diesel::result::Error::QueryBuilderError(Box::new(e)))?;
        diesel::sql_query(format!("LISTEN {CHANNEL}")).execute(&mut conn)?;
        // LISTEN first, then read: a commit in between is in both, never in neither.
        for (partition, offset) in crate::read_model::watermarks(&mut conn, &self.topic)? {
            self.publish(partition, offset, true);
        }
        self.connected.store(true, Ordering::Relaxed);
        self.listener_up.set(1);
        log::info!("watermark listener connected: reads with a wait are woken by the processor's commits");
        let mut last_check = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let mut any = false;
            for notification in conn.notifications_iter() {
                let notification = notification?;
                any = true;
                self.notifications.inc();
                match serde_json::from_str::<Notification>(&notification.payload) {
                    Ok(n) if n.topic == self.topic => self.publish(n.partition, n.offset, false),
                    Ok(_) => {}
                    Err(e) => log::warn!("ignoring a malformed watermark notification {:?}: {e}", notification.payload),
                }
            }
            if any {
                last_check = Instant::now();
            } else if last_check.elapsed() >= HEALTH_CHECK {
                // A silently dropped connection shows only when used.
                diesel::sql_query("SELECT 1").execute(&mut conn)?;
                last_check = Instant::now();
            } else {
                std::thread::sleep(LISTEN_TICK);
            }
        }
        Ok(())
    }
}

/// A waiter's place; dropping it frees the place.
pub struct WaiterPermit {
    _permit: OwnedSemaphorePermit,
    gauge: IntGauge,
}

impl Drop for WaiterPermit {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_on_a_newer_watermark_and_are_bounded() {
        let feed = WatermarkFeed::new("t", 2, &Registry::new());
        let a = feed.admit().unwrap();
        let b = feed.admit().unwrap();
        assert_eq!(feed.admit().err(), Some(WaitRefused::Saturated { max: 2 }));
        drop(b);
        let b = feed.admit().expect("a freed place is reused");

        feed.publish(0, 5, false);
        let waiter = {
            let feed = feed.clone();
            tokio::spawn(async move { feed.wait_for(&a, 0, 9, 5, Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        feed.publish(0, 7, false);
        feed.publish(0, 6, false); // an older notification never moves it back
        feed.publish(0, 10, false);
        assert_eq!(waiter.await.unwrap(), 10);

        let started = Instant::now();
        let seen = feed.wait_for(&b, 1, 3, -1, Duration::from_millis(100)).await;
        assert_eq!(seen, -1, "nothing known about partition 1");
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_reload_takes_the_databases_word() {
        let feed = WatermarkFeed::new("t", 1, &Registry::new());
        feed.publish(0, 50, false);
        feed.publish(0, 3, true);
        let permit = feed.admit().unwrap();
        assert_eq!(feed.wait_for(&permit, 0, 0, -1, Duration::ZERO).await, 3);
    }
}
