//! The processor's watermarks, pushed: one `LISTEN processor_watermarks` connection per process
//! wakes every read that waits for a consistency token. The processor notifies inside the
//! transaction that advances a partition, so a notification arrives only after its commit.
//! The same connection feeds the live event streams (crate::live): on each advance it reads the
//! partition's new sync statuses for the users with a stream, and it passes on the processor's
//! `processor_model_updates` notifications.
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

use crate::live::LiveHub;

/// The channel the processor notifies on (contract with `processor`).
pub const CHANNEL: &str = model_schema::WATERMARK_CHANNEL;

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
    /// The processor's clock just before its commit (absent from older processors).
    #[serde(default)]
    committed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A notification for the live streams, in the order received.
enum ForStreams<'a> {
    Advance(Notification),
    ModelUpdate(&'a str),
}

/// Why a wait was not started.
#[derive(Debug, PartialEq, Eq)]
pub enum WaitRefused {
    /// Too many reads are waiting already.
    Saturated { max: usize },
    /// This user has as many reads waiting as one user may.
    UserSaturated { max: usize },
}

/// The watermarks of one topic as last seen, and the waiters on them.
pub struct WatermarkFeed {
    topic: String,
    partitions: Mutex<HashMap<i32, watch::Sender<i64>>>,
    waiters: Arc<Semaphore>,
    max_waiters: usize,
    /// Waiting reads per user, so a few users cannot take every place.
    per_user: Arc<Mutex<HashMap<String, usize>>>,
    max_per_user: usize,
    connected: AtomicBool,
    waiting: IntGauge,
    refused: IntCounter,
    notifications: IntCounter,
    listener_up: IntGauge,
}

impl WatermarkFeed {
    /// A feed with no listener yet: call [`spawn_listener`](Self::spawn_listener) to start it.
    pub fn new(topic: &str, max_waiters: usize, max_per_user: usize, registry: &Registry) -> Arc<Self> {
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
            per_user: Arc::default(),
            max_per_user,
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

    /// A place among the waiters for `user`, or a refusal when the user's or all are taken.
    pub fn admit(&self, user: &str) -> Result<WaiterPermit, WaitRefused> {
        {
            let mut per_user = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
            let count = per_user.entry(user.to_owned()).or_default();
            if *count >= self.max_per_user {
                self.refused.inc();
                return Err(WaitRefused::UserSaturated { max: self.max_per_user });
            }
            *count += 1;
        }
        let user_place = UserPlace { per_user: self.per_user.clone(), user: user.to_owned() };
        match self.waiters.clone().try_acquire_owned() {
            Ok(permit) => {
                self.waiting.inc();
                Ok(WaiterPermit { _permit: permit, _user: user_place, gauge: self.waiting.clone() })
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
    /// reconnects with capped backoff and reloads, so a waiter misses nothing. Dropping the
    /// returned handle stops the thread and waits for it (a thread inside libpq while the
    /// process exits can crash it).
    pub fn spawn_listener(self: &Arc<Self>, database_url: String, live: Arc<LiveHub>) -> ListenerHandle {
        let feed = self.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done) = std::sync::mpsc::channel::<()>();
        let handle = ListenerHandle { stop: stop.clone(), done };
        let spawned = std::thread::Builder::new().name("watermark-listener".into()).spawn(move || {
            let _done = done_tx; // dropped when the thread ends: the handle hears it
            let mut backoff = Duration::from_millis(100);
            // Per partition, the offset up to which live streams were handed the sync statuses;
            // kept across reconnects, so what a lost connection missed is handed on after it.
            let mut delivered: Option<HashMap<i32, i64>> = None;
            while !stop.load(Ordering::Relaxed) {
                match feed.listen(&database_url, &live, &mut delivered, &stop) {
                    Ok(()) => break,
                    Err(e) => {
                        if feed.connected.swap(false, Ordering::Relaxed) {
                            log::warn!("the watermark listener lost its connection ({e}); reconnecting");
                        } else {
                            log::debug!("the watermark listener cannot connect yet: {e}");
                        }
                        feed.listener_up.set(0);
                        sleep_unless_stopped(backoff, &stop);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            feed.connected.store(false, Ordering::Relaxed);
            feed.listener_up.set(0);
        });
        if let Err(e) = spawned {
            log::error!("cannot start the watermark listener thread ({e}); reads with a wait will time out");
        }
        handle
    }

    /// One connection's life: LISTEN, reload, then notifications until an error or `stop`.
    /// `delivered` is None before the first load (then nothing before it is news to anyone).
    fn listen(
        &self,
        database_url: &str,
        live: &LiveHub,
        delivered: &mut Option<HashMap<i32, i64>>,
        stop: &AtomicBool,
    ) -> Result<(), diesel::result::Error> {
        let mut conn = PgConnection::establish(&with_liveness(database_url))
            .map_err(|e| diesel::result::Error::QueryBuilderError(Box::new(e)))?;
        diesel::sql_query(format!("LISTEN {CHANNEL}")).execute(&mut conn)?;
        diesel::sql_query(format!("LISTEN {}", model_schema::MODEL_UPDATES_CHANNEL)).execute(&mut conn)?;
        // LISTEN first, then read: a commit in between is in both, never in neither.
        let loaded = crate::reads::queries::watermarks(&mut conn, &self.topic)?;
        for &(partition, offset) in &loaded {
            self.publish(partition, offset, true);
        }
        match delivered {
            // A reconnect: what was committed while the connection was down goes to the streams.
            Some(delivered) => {
                for &(partition, offset) in &loaded {
                    let before = delivered.get(&partition).copied().unwrap_or(-1);
                    live.on_advance(&mut conn, partition, before, offset, None)?;
                    delivered.insert(partition, before.max(offset));
                }
            }
            None => *delivered = Some(loaded.iter().copied().collect()),
        }
        let delivered = delivered.as_mut().expect("set above");
        self.connected.store(true, Ordering::Relaxed);
        self.listener_up.set(1);
        log::info!("watermark listener connected: reads with a wait are woken by the processor's commits");
        let mut last_check = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            // Taken off the connection first: the live streams' reads use it too.
            let mut received = Vec::new();
            for notification in conn.notifications_iter() {
                received.push(notification?);
            }
            // Waiting reads first, then the live streams, in commit order.
            let mut for_streams = Vec::new();
            for notification in &received {
                if notification.channel == model_schema::MODEL_UPDATES_CHANNEL {
                    for_streams.push(ForStreams::ModelUpdate(&notification.payload));
                    continue;
                }
                self.notifications.inc();
                match serde_json::from_str::<Notification>(&notification.payload) {
                    Ok(n) if n.topic == self.topic => {
                        self.publish(n.partition, n.offset, false);
                        for_streams.push(ForStreams::Advance(n));
                    }
                    Ok(_) => {}
                    Err(e) => log::warn!("ignoring a malformed watermark notification {:?}: {e}", notification.payload),
                }
            }
            for item in for_streams {
                match item {
                    ForStreams::Advance(n) => {
                        // A partition first seen now is new since the listener started.
                        let before = delivered.get(&n.partition).copied().unwrap_or(-1);
                        if n.offset > before {
                            live.on_advance(&mut conn, n.partition, before, n.offset, n.committed_at)?;
                            delivered.insert(n.partition, n.offset);
                        }
                    }
                    ForStreams::ModelUpdate(payload) => live.on_model_update(payload),
                }
            }
            if !received.is_empty() {
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

/// Stops the listener thread when dropped, and waits (a little) for it to end.
pub struct ListenerHandle {
    stop: Arc<AtomicBool>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Returns when the thread has ended (its sender is dropped), or after the longest a
        // statement or a connection attempt can take.
        let _ = self.done.recv_timeout(Duration::from_secs(12));
    }
}

/// Sleeps `total`, waking early when `stop` is set.
fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) && started.elapsed() < total {
        std::thread::sleep(LISTEN_TICK.min(total.saturating_sub(started.elapsed())));
    }
}

/// The listener's URL with TCP keepalives and a statement timeout: a silently dead connection
/// must fail the health check within seconds, not hang it (libpq URI parameters).
///
/// On loopback it also turns TLS off unless the URL asks for it: TLS there protects nothing, and
/// this thread calls into libpq every few milliseconds, so with TLS it is inside OpenSSL when a
/// process that never dropped the application (a test) exits, and OpenSSL's exit handlers free
/// state under it (seen as "double free or corruption" at the end of test binaries).
fn with_liveness(url: &str) -> String {
    let mut params = String::from(
        "keepalives=1&keepalives_idle=5&keepalives_interval=2&keepalives_count=3&tcp_user_timeout=10000\
         &options=-c%20statement_timeout%3D10000",
    );
    let Some(rest) = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")) else {
        // A keyword/value connection string: leave it as configured.
        return url.to_owned();
    };
    if crate::config::is_loopback_host(rest) && !url.contains("sslmode=") {
        params.push_str("&sslmode=disable");
    }
    format!("{url}{}{params}", if url.contains('?') { '&' } else { '?' })
}

/// A waiter's place; dropping it frees the place.
pub struct WaiterPermit {
    _permit: OwnedSemaphorePermit,
    _user: UserPlace,
    gauge: IntGauge,
}

/// One of a user's places; dropping it gives it back (and forgets a user with none left, so the
/// map holds only users who are waiting).
struct UserPlace {
    per_user: Arc<Mutex<HashMap<String, usize>>>,
    user: String,
}

impl Drop for UserPlace {
    fn drop(&mut self) {
        let mut per_user = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = per_user.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                per_user.remove(&self.user);
            }
        }
    }
}

impl Drop for WaiterPermit {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listener_url_gets_liveness_and_no_tls_on_loopback_only() {
        let local = with_liveness("postgres://postgres@127.0.0.1:5432/fitness");
        assert!(local.starts_with("postgres://postgres@127.0.0.1:5432/fitness?keepalives=1&"), "{local}");
        assert!(local.ends_with("&sslmode=disable"), "{local}");
        let remote = with_liveness("postgres://u:p@db.example:5432/fitness?sslmode=verify-full");
        assert!(remote.contains("?sslmode=verify-full&keepalives=1") && !remote.contains("disable"), "{remote}");
        let asked = with_liveness("postgres://localhost/fitness?sslmode=require");
        assert!(!asked.contains("disable"), "{asked}");
        assert_eq!(with_liveness("host=/run/postgresql dbname=f"), "host=/run/postgresql dbname=f");
    }

    #[test]
    fn one_user_cannot_take_every_place() {
        let feed = WatermarkFeed::new("t", 10, 2, &Registry::new());
        let first = feed.admit("greedy").unwrap();
        let _second = feed.admit("greedy").unwrap();
        assert_eq!(feed.admit("greedy").err(), Some(WaitRefused::UserSaturated { max: 2 }));
        assert!(feed.admit("other").is_ok(), "another user still gets a place");
        drop(first);
        assert!(feed.admit("greedy").is_ok(), "a given-back place is the user's again");
        drop(_second);
        assert!(feed.per_user.lock().unwrap().is_empty(), "users with no waiting read are forgotten");
    }

    #[tokio::test]
    async fn waiters_wake_on_a_newer_watermark_and_are_bounded() {
        let feed = WatermarkFeed::new("t", 2, 2, &Registry::new());
        let a = feed.admit("u1").unwrap();
        let b = feed.admit("u2").unwrap();
        assert_eq!(feed.admit("u3").err(), Some(WaitRefused::Saturated { max: 2 }));
        drop(b);
        let b = feed.admit("u2").expect("a freed place is reused");

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
        let feed = WatermarkFeed::new("t", 1, 1, &Registry::new());
        feed.publish(0, 50, false);
        feed.publish(0, 3, true);
        let permit = feed.admit("u").unwrap();
        assert_eq!(feed.wait_for(&permit, 0, 0, -1, Duration::ZERO).await, 3);
    }
}
