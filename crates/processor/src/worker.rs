//! The poll loop: batch, decode, apply each partition in its own transaction, then store
//! offsets. Decoding the next batch overlaps with writing the current one.
//!
//! Offsets are stored only after the transaction holding their effects has committed
//! (`enable.auto.offset.store=false`), and committed on revoke and at shutdown. The database
//! watermark, not Kafka's committed offset, decides what was applied: a redelivered event is
//! skipped, so effects happen at most once while events are delivered at least once.
//!
//! Failures: a transient one (database, registry, broker) is retried with backoff and never
//! dead-letters anything. While a retry lasts longer than [`KEEPALIVE`], the assigned partitions
//! are paused and the consumer keeps polling, so an outage longer than `max.poll.interval.ms`
//! does not make it leave the group; whatever the consumer delivers meanwhile is held, in order,
//! for the next batch. A failure that may be the data's (a constraint, a panic in the model,
//! a date range past the bound) splits the partition's batch in halves until the event is
//! isolated; once it fails alone twice with the database answering, it goes to the DLQ, its
//! sync is marked failed, and the partition goes on.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use events::{EventDecoder, LogEvent};
use log::{debug, error, info, warn};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use service_kit::backoff::Backoff;
use service_kit::readiness::Condition;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::apply::{Applied, ApplyError, ConsumedSync, ModelWriter, Record};
use crate::cache::ModelCache;
use crate::config::Settings;
use crate::consumer::ProcessorConsumer;
use crate::db::PgPool;
use crate::dead_letter::{self, Poison};
use crate::erasure::Erasure;
use crate::event_trace;
use crate::incarnation::{self, Verdict};
use crate::metrics::Metrics;
use crate::sync_outcome::{Position, SyncOutcome};

pub struct Worker {
    pub(crate) settings: Settings,
    pub(crate) consumer: Arc<ProcessorConsumer>,
    pub(crate) decoder: EventDecoder,
    pub(crate) dlq: FutureProducer,
    pub(crate) pool: PgPool,
    pub(crate) cache: Arc<Mutex<ModelCache>>,
    pub(crate) metrics: Metrics,
    /// Fails while transient failures (database, registry) are being retried; `/readyz`
    /// reports it as `processing`.
    pub(crate) processing: Condition,
    /// Fails while nothing may be applied: the topic is not the incarnation the watermarks
    /// know, or it was not checked yet. `/readyz` reports it as `topic`.
    pub(crate) topic: Condition,
}

/// What `/readyz` says while a transient failure is being retried.
const RETRYING: &str = "retrying a transient failure (database or registry)";

/// How long a retry may block the pipeline before the partitions are paused and the consumer is
/// polled while it lasts.
const KEEPALIVE: Duration = Duration::from_secs(1);

/// One record's fate once decoded.
enum Decoded {
    Apply(Box<Record>),
    /// Cannot be applied, ever; handed to the DLQ (with the outcome when the event decoded).
    Poison(Poison, Option<Box<SyncOutcome>>),
}

/// A polled batch with each record decoded.
struct DecodedBatch {
    started: Instant,
    messages: Vec<OwnedMessage>,
    decoded: Vec<Decoded>,
}

/// Failures of one event alone that may be the data's, before it is dead-lettered.
const POISON_CONFIRMATIONS: u32 = 2;

impl Worker {
    /// Runs until `shutdown` fires, then commits what is stored and leaves the group.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        info!("consuming {} as group {}", self.settings.topic, self.settings.group_id);
        let (decoded_tx, mut decoded_rx) = mpsc::channel::<DecodedBatch>(1);
        let read = async {
            // Delivered while partitions were paused; consumed first, so order is kept.
            let mut held = VecDeque::new();
            while let Some(batch) = self.next_batch(&mut held, &shutdown).await {
                let Some(decoded) = self.decode_batch(batch, &mut held, &shutdown).await else { break };
                if self.polling_while(&mut held, decoded_tx.send(decoded)).await.is_err() {
                    break;
                }
            }
            drop(decoded_tx);
        };
        let watch = self.watch_incarnation(&shutdown);
        let write = async {
            while let Some(batch) = decoded_rx.recv().await {
                if !self.apply_batch(batch, &shutdown).await {
                    shutdown.cancel();
                    break;
                }
            }
            decoded_rx.close();
        };
        tokio::join!(read, write, watch);
        info!("stopping: committing stored offsets and leaving the group");
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            debug!("final commit: {e}");
        }
        self.consumer.unsubscribe();
        Ok(())
    }

    /// Takes what is held first; otherwise waits for one message. Then gathers more until the
    /// batch is full or its wait is over.
    async fn next_batch(
        &self,
        held: &mut VecDeque<OwnedMessage>,
        shutdown: &CancellationToken,
    ) -> Option<Vec<OwnedMessage>> {
        if shutdown.is_cancelled() {
            return None;
        }
        if !held.is_empty() {
            let n = held.len().min(self.settings.batch_max_events);
            return Some(held.drain(..n).collect());
        }
        let first = loop {
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                m = self.consumer.recv() => match m {
                    Ok(m) => break m.detach(),
                    Err(e) => { warn!("consumer: {e}"); tokio::time::sleep(Duration::from_millis(200)).await }
                }
            }
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + self.settings.batch_max_wait;
        while batch.len() < self.settings.batch_max_events {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(m)) => batch.push(m.detach()),
                Ok(Err(e)) => warn!("consumer: {e}"),
                Err(_) => break,
            }
        }
        Some(batch)
    }

    /// Decodes every record, retrying transient registry failures. None on shutdown.
    async fn decode_batch(
        &self,
        messages: Vec<OwnedMessage>,
        held: &mut VecDeque<OwnedMessage>,
        shutdown: &CancellationToken,
    ) -> Option<DecodedBatch> {
        let started = Instant::now();
        let mut decoded = Vec::with_capacity(messages.len());
        let mut backoff = Backoff::default();
        for message in &messages {
            let d = loop {
                match self.decode(message).await {
                    Ok(d) => break d,
                    Err(e) => {
                        let span = event_trace::span_of(message);
                        warn!(
                            trace_id = span.trace_id(), span_id = span.span_id();
                            "decoding {}: {e}; retrying", dead_letter::describe(message)
                        );
                        self.metrics.retries.inc();
                        self.processing.fail(RETRYING);
                        if !self.polling_while(held, backoff.wait(shutdown)).await {
                            return None;
                        }
                    }
                }
            };
            decoded.push(d);
        }
        Some(DecodedBatch { started, messages, decoded })
    }

    async fn decode(&self, message: &OwnedMessage) -> Result<Decoded, events::CodecError> {
        let Some(payload) = message.payload() else {
            return Ok(Decoded::Poison(Poison::undecodable("processor.EmptyPayload", "the record has no value"), None));
        };
        let at = Position { partition: message.partition(), offset: message.offset() };
        match self.decoder.decode_log_event(payload).await {
            Ok(LogEvent::UserDataErasureRequested(request)) => Ok(match Erasure::from_event(&request, at) {
                // The key decides the partition, and so the order against the user's syncs.
                Ok(_) if message.key() != Some(request.user_id.as_bytes()) => Decoded::Poison(
                    Poison::unusable("processor.KeyMismatch", "an erasure's record key must be its user id"),
                    None,
                ),
                Ok(erasure) => Decoded::Apply(Box::new(Record::Erasure(erasure))),
                Err(reason) => Decoded::Poison(Poison::unusable("processor.InvalidEvent", reason), None),
            }),
            Ok(LogEvent::DeviceSynced(event)) => Ok(match SyncOutcome::processed(&event, at) {
                Ok(outcome) => match crate::chunk::check_sample_times(&event, self.settings.max_series_days) {
                    Ok(()) => {
                        Decoded::Apply(Box::new(Record::Sync(Box::new(ConsumedSync { outcome, event: Some(*event) }))))
                    }
                    Err(reason) => {
                        Decoded::Poison(Poison::unusable("processor.TimeOutOfBounds", reason), Some(Box::new(outcome)))
                    }
                },
                Err(reason) => Decoded::Poison(Poison::unusable("processor.InvalidEvent", reason), None),
            }),
            Err(e) if e.is_retryable() => Err(e),
            Err(e) => {
                let class = match &e {
                    events::CodecError::Registry(_) => "events.codec.UnknownSchema",
                    events::CodecError::Framing(_) => "events.codec.NotConfluentAvro",
                    events::CodecError::Avro(_) => "events.codec.AvroDecodeError",
                    events::CodecError::UnknownRecord(_) => "events.codec.UnknownRecord",
                };
                Ok(Decoded::Poison(Poison::undecodable(class, e.to_string()), None))
            }
        }
    }

    /// Applies a decoded batch, partition by partition in parallel. Returns false when shutdown
    /// interrupted it (what committed stays committed; the rest is redelivered).
    async fn apply_batch(&self, batch: DecodedBatch, shutdown: &CancellationToken) -> bool {
        let DecodedBatch { started, messages, decoded } = batch;
        let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
        for m in &messages {
            let e = positions.entry(m.partition()).or_insert(m.offset());
            *e = (*e).max(m.offset());
        }
        if !self.wait_for_safe_topic(shutdown).await {
            return false;
        }
        // A poison record redelivered after its failure committed is in the DLQ already: the
        // watermark says so, like for any other effect.
        let already_applied = if decoded.iter().any(|d| matches!(d, Decoded::Poison(..))) {
            match self.watermarks(shutdown).await {
                Some(w) => w,
                None => return false,
            }
        } else {
            BTreeMap::new()
        };
        let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
        for (message, d) in messages.iter().zip(decoded) {
            let item = match d {
                Decoded::Apply(item) => Some(*item),
                // Redelivered after its failure committed: it is in the DLQ already.
                Decoded::Poison(..)
                    if already_applied.get(&message.partition()).is_some_and(|&w| message.offset() <= w) =>
                {
                    None
                }
                Decoded::Poison(poison, outcome) => {
                    if !self.dead_letter(message, &poison, shutdown).await {
                        return false;
                    }
                    dead_letter::failed_outcome(message, outcome.as_deref(), &poison.message)
                        .map(|outcome| Record::Sync(Box::new(ConsumedSync { outcome, event: None })))
                }
            };
            if let Some(item) = item {
                by_partition.entry(item.partition()).or_default().push(item);
            }
        }
        let messages_by_position: HashMap<(i32, i64), &OwnedMessage> =
            messages.iter().map(|m| ((m.partition(), m.offset()), m)).collect();
        let runs = positions.iter().map(|(&partition, &through)| {
            let items = by_partition.remove(&partition).unwrap_or_default();
            self.apply_partition(partition, through, items, &messages_by_position, shutdown)
        });
        let results = futures::future::join_all(runs).await;
        let Some(results) = results.into_iter().collect::<Option<Vec<_>>>() else { return false };
        let mut total = Applied::default();
        for r in results {
            total.absorb(r);
        }
        let (fresh, skipped_erased) = (total.fresh_ingested_at, total.skipped_erased);
        let applied = fresh.len();
        self.processing.recover();
        // The next offset to read is stored (rd_kafka_offsets_store takes it as given; the older
        // rd_kafka_offset_store adds one itself, and storing `offset + 1` through it skipped a
        // record at every hand-over).
        let mut next = TopicPartitionList::new();
        for (partition, offset) in &positions {
            if let Err(e) = next.add_partition_offset(&self.settings.topic, *partition, Offset::Offset(offset + 1)) {
                warn!("offset {offset} of partition {partition}: {e}");
            }
        }
        if let Err(e) = self.consumer.store_offsets(&next) {
            // A partition moved to another member; its new owner skips what we applied.
            debug!("storing offsets {positions:?}: {e}");
        }
        // Freshness: ingest time to commit, as a reader sees it (redeliveries excluded).
        let now = Utc::now();
        for at in fresh {
            self.metrics.end_to_end_lag_seconds.observe((now - at).num_milliseconds().max(0) as f64 / 1000.0);
        }
        self.metrics.events.with_label_values(&["applied"]).inc_by(applied as u64);
        self.metrics.events.with_label_values(&["skipped_erased"]).inc_by(skipped_erased as u64);
        self.metrics.erasures.inc_by(total.erasures as u64);
        self.metrics
            .events
            .with_label_values(&["skipped_duplicate"])
            .inc_by((messages.len().saturating_sub(applied + skipped_erased)) as u64);
        self.metrics.batch_events.observe(messages.len() as f64);
        self.metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
        debug!("applied a batch of {} event(s), {} new, through offsets {:?}", messages.len(), applied, positions);
        // One line per event, in its trace; only when asked for (RUST_LOG=processor=debug).
        if log::log_enabled!(log::Level::Debug) {
            for m in &messages {
                let span = event_trace::span_of(m);
                debug!(trace_id = span.trace_id(), span_id = span.span_id(); "committed {}", dead_letter::describe(m));
            }
        }
        true
    }

    /// Hands a record to the DLQ and counts it; false when shutdown interrupted it.
    async fn dead_letter(&self, message: &OwnedMessage, poison: &Poison, shutdown: &CancellationToken) -> bool {
        if !self.settings.dead_letter {
            // A rebuild: the live processor put it in the DLQ when it first met it.
            let span = event_trace::span_of(message);
            warn!(
                trace_id = span.trace_id(), span_id = span.span_id();
                "not dead-lettering {} again: {} ({})", dead_letter::describe(message), poison.message, poison.class
            );
            return true;
        }
        let sent = dead_letter::send(&self.dlq, &self.settings, message, poison, shutdown).await;
        if sent {
            self.metrics.events.with_label_values(&["dead_lettered"]).inc();
        }
        sent
    }

    /// The database watermark of every partition, retried while the database does not answer
    /// (dead-lettering without it could send a record twice). None on shutdown.
    async fn watermarks(&self, shutdown: &CancellationToken) -> Option<BTreeMap<i32, i64>> {
        let mut backoff = Backoff::default();
        loop {
            let (pool, topic) = (self.pool.clone(), self.settings.topic.clone());
            let read = tokio::task::spawn_blocking(move || -> anyhow::Result<BTreeMap<i32, i64>> {
                let mut conn = pool.get()?;
                Ok(crate::sql::watermarks(&mut conn, &topic)?)
            });
            match read.await {
                Ok(Ok(w)) => return Some(w),
                Ok(Err(e)) => warn!("reading the watermarks: {e}; retrying"),
                Err(e) => warn!("reading the watermarks: {e}; retrying"),
            }
            self.metrics.retries.inc();
            self.processing.fail(RETRYING);
            if !backoff.wait(shutdown).await {
                return None;
            }
        }
    }

    /// Runs `work` to completion while keeping the consumer in its group: once it has taken
    /// [`KEEPALIVE`] while a retry is under way, the assigned partitions are paused and the
    /// consumer is polled every second until `work` is done; what it delivers meanwhile is held
    /// for the next batch.
    async fn polling_while<F: Future>(&self, held: &mut VecDeque<OwnedMessage>, work: F) -> F::Output {
        tokio::pin!(work);
        let started = tokio::time::Instant::now();
        // A slow batch (a big catch-up batch in a debug build) is not an outage: pausing would
        // drop the prefetched records for nothing. Pause while something is being retried or
        // the topic is in doubt, or when the wait nears half of max.poll.interval.ms anyway.
        loop {
            if let Ok(out) = tokio::time::timeout(KEEPALIVE, &mut work).await {
                return out;
            }
            let retrying = !self.processing.holds() || !self.topic.holds();
            if retrying || started.elapsed() > self.settings.max_poll_interval / 2 {
                break;
            }
        }
        self.metrics.paused.set(1);
        info!("waiting on a retry: partitions paused, the consumer keeps polling to stay in the group");
        let out = loop {
            // Again each time: a rebalance meanwhile may have assigned more partitions.
            if let Ok(assigned) = self.consumer.assignment() {
                if let Err(e) = self.consumer.pause(&assigned) {
                    debug!("pausing: {e}");
                }
            }
            tokio::select! {
                out = &mut work => break out,
                // A fresh recv each second polls librdkafka, which is what max.poll.interval.ms
                // counts.
                m = tokio::time::timeout(Duration::from_secs(1), self.consumer.recv()) => match m {
                    Ok(Ok(m)) => held.push_back(m.detach()),
                    Ok(Err(e)) => warn!("consumer: {e}"),
                    Err(_) => {}
                },
            }
        };
        if let Ok(assigned) = self.consumer.assignment() {
            if let Err(e) = self.consumer.resume(&assigned) {
                warn!("resuming partitions: {e}");
            }
        }
        self.metrics.paused.set(0);
        info!("partitions resumed");
        out
    }

    /// Waits while the topic may not be the incarnation the watermarks belong to. False on
    /// shutdown.
    async fn wait_for_safe_topic(&self, shutdown: &CancellationToken) -> bool {
        loop {
            if self.topic.holds() {
                return true;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    /// Compares the live topic with the one the watermarks belong to, at start and every
    /// [`incarnation::RECHECK`], until shutdown.
    async fn watch_incarnation(&self, shutdown: &CancellationToken) {
        let mut last_error: Option<String> = None;
        loop {
            let (consumer, pool, topic) = (self.consumer.clone(), self.pool.clone(), self.settings.topic.clone());
            let checked = tokio::task::spawn_blocking(move || -> Result<Verdict, String> {
                let live = incarnation::live(consumer.client(), &topic)?;
                let mut conn = pool.get().map_err(|e| e.to_string())?;
                incarnation::check(&mut conn, &topic, &live).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            let wait = match checked {
                Ok(Verdict::Same) => {
                    self.topic.recover();
                    self.metrics.topic_incarnation_mismatch.set(0);
                    last_error = None;
                    incarnation::RECHECK
                }
                Ok(Verdict::Changed { stored, live }) => {
                    let message = incarnation::mismatch_message(&self.settings.topic, &stored, &live);
                    error!("{message}");
                    self.topic.fail(message);
                    self.metrics.topic_incarnation_mismatch.set(1);
                    incarnation::RECHECK
                }
                // Unknown is not safe: a check that has never passed keeps applying off.
                Err(e) => {
                    if last_error.as_deref() != Some(e.as_str()) {
                        warn!("checking which topic the watermarks belong to: {e}; retrying");
                    }
                    last_error = Some(e);
                    Duration::from_secs(2)
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Applies one partition's records through `through`, isolating poison. Returns what the
    /// transactions did, or None on shutdown.
    async fn apply_partition(
        &self,
        partition: i32,
        through: i64,
        items: Vec<Record>,
        messages: &HashMap<(i32, i64), &OwnedMessage>,
        shutdown: &CancellationToken,
    ) -> Option<Applied> {
        let mut items = Arc::new(items);
        let mut work: VecDeque<Range<usize>> = VecDeque::new();
        work.push_back(0..items.len());
        let mut applied = Applied::default();
        let mut backoff = Backoff::default();
        let mut suspicions: HashMap<i64, u32> = HashMap::new();
        while let Some(range) = work.pop_front() {
            let upto = if range.end == items.len() { through } else { items[range.end - 1].offset() };
            let error = match self.apply_range(partition, upto, items.clone(), range.clone()).await {
                Ok(done) => {
                    applied.absorb(done);
                    continue;
                }
                Err(e) => e,
            };
            if error.may_be_poison() && range.len() > 1 {
                let mid = range.start + range.len() / 2;
                warn!(
                    "partition {partition}: {error}; splitting offsets {}..={upto} to isolate the event",
                    items[range.start].offset()
                );
                work.push_front(mid..range.end);
                work.push_front(range.start..mid);
                continue;
            }
            if error.may_be_poison() && range.len() == 1 {
                let offset = items[range.start].offset();
                let seen = suspicions.entry(offset).or_default();
                *seen += 1;
                if *seen >= POISON_CONFIRMATIONS && self.database_answers().await {
                    let message = messages.get(&(partition, offset));
                    let poison = Poison::unusable("processor.ApplyFailed", error.to_string());
                    if let Some(message) = message {
                        if !self.dead_letter(message, &poison, shutdown).await {
                            return None;
                        }
                    }
                    let at = Position { partition, offset };
                    let replacement = match &items[range.start] {
                        Record::Sync(item) => Record::Sync(Box::new(ConsumedSync {
                            outcome: SyncOutcome::failed(
                                item.outcome.sync_id,
                                Some(item.outcome.event_id),
                                item.outcome.user_id.clone(),
                                at,
                                item.outcome.ingested_at,
                                &poison.message,
                            ),
                            event: None,
                        })),
                        Record::Erasure(e) => {
                            error!(
                                "erasure {} of user {} at {partition}/{offset} could not be applied and was \
                                 dead-lettered: {}; the user's data is NOT erased",
                                e.erasure_id, e.user_id, poison.message
                            );
                            Record::Skipped(at)
                        }
                        Record::Skipped(_) => Record::Skipped(at),
                    };
                    Arc::make_mut(&mut items)[range.start] = replacement;
                    work.push_front(range);
                    continue;
                }
            }
            warn!("writing partition {partition}: {error}; retrying");
            self.metrics.retries.inc();
            self.processing.fail(RETRYING);
            if !backoff.wait(shutdown).await {
                return None;
            }
            work.push_front(range);
        }
        Some(applied)
    }

    /// One transaction on a blocking thread; a panic in the model is reported as an error that
    /// may be the data's, and its connection is discarded by the pool.
    async fn apply_range(
        &self,
        partition: i32,
        upto: i64,
        items: Arc<Vec<Record>>,
        range: Range<usize>,
    ) -> Result<Applied, ApplyError> {
        let (pool, cache, topic) = (self.pool.clone(), self.cache.clone(), self.settings.topic.clone());
        let max_series_days = self.settings.max_series_days;
        let run = tokio::task::spawn_blocking(move || {
            std::panic::catch_unwind(AssertUnwindSafe(|| {
                let mut conn = pool.get().map_err(|e| ApplyError::Pool(e.to_string()))?;
                let writer = ModelWriter { topic: &topic, cache: &cache, max_series_days, watermarked: true };
                writer.apply(&mut conn, partition, upto, &items[range])
            }))
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                Err(ApplyError::Unusable(format!("applying panicked: {what}")))
            })
        });
        run.await.map_err(|e| ApplyError::Unusable(format!("applying failed: {e}")))?
    }

    async fn database_answers(&self) -> bool {
        let pool = self.pool.clone();
        let probe = tokio::task::spawn_blocking(move || {
            use diesel::RunQueryDsl;
            pool.get().ok().is_some_and(|mut c| diesel::sql_query("SELECT 1").execute(&mut c).is_ok())
        });
        probe.await.unwrap_or(false)
    }
}
