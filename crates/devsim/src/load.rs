//! `devsim load`: standard syncs (the benchmark unit, [`ingest_api::example::standard_sync`])
//! at a fixed rate, or as fast as `concurrency` connections allow, with HDR latency percentiles.
//!
//! Fixed rate is an open loop: request `i` is due at `i / rate` whatever happened before, and its
//! latency counts from then (see [`crate::latency`]), so a stalled server cannot hide behind a
//! stalled generator. `max` is a closed loop of `concurrency` workers, a throughput measurement:
//! its latency is the service time.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ingest_api::config::Secret;
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::latency::{LatencyStats, Percentiles, Schedule, Timing};
use crate::wire::{Reply, Target, Wire};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    PerSecond(f64),
    Max,
}

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub url: String,
    pub secret: Secret,
    pub rate: Rate,
    /// Most requests in flight (fixed rate), or the number of workers (max).
    pub concurrency: usize,
    pub duration: Option<Duration>,
    pub count: Option<u64>,
    /// Distinct devices (and users) the syncs come from.
    pub devices: usize,
    /// One sync in this many carries a night's sleep (as in the standard sync: one in eight).
    pub sleep_every: u64,
    pub gzip: bool,
    pub timeout: Duration,
    /// Print a progress line this often (None: quiet).
    pub progress_every: Option<Duration>,
    pub seed: u64,
    /// Times a request is sent again, with the same body and sync id, after a 5xx or no answer
    /// (a phone retrying); 0 never retries. A 429 is always sent again after its `Retry-After`
    /// (see [`rate_limit_pause`]) and does not count here.
    pub retries: u32,
    /// Where to write one JSON line per attempt (see [`Ledger`]); None writes none.
    pub ledger: Option<PathBuf>,
}

/// What one request came to: an HTTP status, or None when no answer came (connection error,
/// timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub status: Option<u16>,
    pub bytes_sent: u64,
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    Fixed(Schedule),
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub pace: Pace,
    pub concurrency: usize,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
}

/// Counters of a run, shared by the request tasks.
#[derive(Debug, Default)]
pub struct LoadStats {
    pub latency: LatencyStats,
    pub sent: u64,
    pub completed: u64,
    pub answered: u64,
    pub accepted: u64,
    pub errors: BTreeMap<String, u64>,
    /// Requests whose last answer was a 429 because the run stopped while they waited to be
    /// sent again: neither accepted nor an error.
    pub rate_limited_at_stop: u64,
    pub bytes_sent: u64,
    /// When the last request completed, from the start.
    pub last_done: Duration,
}

impl LoadStats {
    pub fn record(&mut self, timing: &Timing, outcome: &Outcome) {
        self.latency.record(timing);
        self.completed += 1;
        self.bytes_sent += outcome.bytes_sent;
        self.last_done = self.last_done.max(timing.done);
        match outcome.status {
            Some(202) => {
                self.answered += 1;
                self.accepted += 1;
            }
            Some(429) => {
                self.answered += 1;
                self.rate_limited_at_stop += 1;
            }
            Some(s) => {
                self.answered += 1;
                *self.errors.entry(s.to_string()).or_default() += 1;
            }
            None => *self.errors.entry("transport".into()).or_default() += 1,
        }
    }
}

/// Sends requests `0, 1, 2, …` through `send` as the plan says, until the count or the duration
/// is reached or `stop` fires, recording every request's [`Timing`] in `stats`. Returns when
/// every request sent has completed.
pub async fn drive<F, Fut>(plan: Plan, send: F, stats: Arc<Mutex<LoadStats>>, stop: CancellationToken)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let start = Instant::now();
    let send = Arc::new(send);
    let concurrency = plan.concurrency.max(1);
    let more = {
        let stop = stop.clone();
        move |i: u64, due: Duration| {
            plan.count.is_none_or(|c| i < c) && plan.duration.is_none_or(|d| due < d) && !stop.is_cancelled()
        }
    };
    match plan.pace {
        Pace::Fixed(schedule) => {
            let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
            let mut tasks = tokio::task::JoinSet::new();
            let mut i = 0u64;
            while more(i, schedule.intended(i)) {
                let intended = schedule.intended(i);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep_until(start + intended) => {}
                }
                // Waiting here for a free slot delays the send, not the intended time.
                let permit = tokio::select! {
                    _ = stop.cancelled() => break,
                    p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                };
                stats.lock().expect("stats lock").sent += 1;
                let (send, stats) = (send.clone(), stats.clone());
                tasks.spawn(async move {
                    let sent = start.elapsed();
                    let outcome = send(i).await;
                    let timing = Timing { intended, sent, done: start.elapsed() };
                    stats.lock().expect("stats lock").record(&timing, &outcome);
                    drop(permit);
                });
                while tasks.try_join_next().is_some() {}
                i += 1;
            }
            while tasks.join_next().await.is_some() {}
        }
        Pace::Max => {
            let next = Arc::new(AtomicU64::new(0));
            let more = Arc::new(more);
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..concurrency {
                let (send, stats, next, more) = (send.clone(), stats.clone(), next.clone(), more.clone());
                workers.spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let sent = start.elapsed();
                        if !more(i, sent) {
                            break;
                        }
                        stats.lock().expect("stats lock").sent += 1;
                        let outcome = send(i).await;
                        let timing = Timing { intended: sent, sent, done: start.elapsed() };
                        stats.lock().expect("stats lock").record(&timing, &outcome);
                    }
                });
            }
            while workers.join_next().await.is_some() {}
        }
    }
}

/// The report of a load run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub url: String,
    pub mode: &'static str,
    pub target_rate_per_s: Option<f64>,
    pub concurrency: usize,
    pub gzip: bool,
    pub elapsed_s: f64,
    pub requests: u64,
    pub completed: u64,
    pub answered: u64,
    pub accepted: u64,
    /// Final answers other than 202 by status, and `transport` for requests that got no answer.
    pub errors: BTreeMap<String, u64>,
    /// Attempts sent again after a retryable failure (`--retries`); not counted in `requests`.
    pub retries: u64,
    /// 429 answers: each request waited for its `Retry-After` and was sent again (same body,
    /// same sync id); not in `errors`, not in `retries`.
    pub rate_limited: u64,
    /// Requests still waiting after a 429 when the run stopped.
    pub rate_limited_at_stop: u64,
    pub throughput_per_s: f64,
    pub accepted_per_s: f64,
    pub bytes_sent: u64,
    /// What the latency is measured from.
    pub latency_basis: &'static str,
    pub latency_ms: Percentiles,
    /// Fixed rate only: from the actual send, for comparison (it hides queueing).
    pub service_time_ms: Option<Percentiles>,
    /// CPU time (user + system, every thread) devsim itself used while sending, from
    /// `/proc/self/stat` before the first request and after the last (see [`crate::cpu`]); None
    /// where `/proc` cannot be read. Setting up (tokens, bodies) is not in it.
    pub cpu_s: Option<f64>,
    /// `cpu_s` per completed request, in microseconds: what the generator costs the machine it
    /// shares with the service it measures.
    pub cpu_us_per_request: Option<f64>,
}

impl LoadReport {
    fn new(
        config: &LoadConfig,
        stats: &LoadStats,
        elapsed: Duration,
        cpu: Option<Duration>,
        retries: u64,
        rate_limited: u64,
    ) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let fixed = matches!(config.rate, Rate::PerSecond(_));
        Self {
            url: config.url.clone(),
            mode: if fixed { "fixed-rate" } else { "max" },
            target_rate_per_s: match config.rate {
                Rate::PerSecond(r) => Some(r),
                Rate::Max => None,
            },
            concurrency: config.concurrency,
            gzip: config.gzip,
            elapsed_s: (secs * 1_000.0).round() / 1_000.0,
            requests: stats.sent,
            completed: stats.completed,
            answered: stats.answered,
            accepted: stats.accepted,
            errors: stats.errors.clone(),
            retries,
            rate_limited,
            rate_limited_at_stop: stats.rate_limited_at_stop,
            throughput_per_s: (stats.completed as f64 / secs * 10.0).round() / 10.0,
            accepted_per_s: (stats.accepted as f64 / secs * 10.0).round() / 10.0,
            bytes_sent: stats.bytes_sent,
            latency_basis: if fixed {
                "intended send time (schedule): corrected for coordinated omission"
            } else {
                "actual send time (closed loop of concurrency workers)"
            },
            latency_ms: Percentiles::of(&stats.latency.latency),
            service_time_ms: fixed.then(|| Percentiles::of(&stats.latency.service)),
            cpu_s: cpu.map(|c| (c.as_secs_f64() * 1_000.0).round() / 1_000.0),
            cpu_us_per_request: cpu
                .filter(|_| stats.completed > 0)
                .map(|c| (c.as_secs_f64() * 1e6 / stats.completed as f64 * 10.0).round() / 10.0),
        }
    }

    /// The report for people.
    pub fn render(&self) -> String {
        let rate = self.target_rate_per_s.map_or("as fast as possible".to_owned(), |r| format!("{r}/s"));
        let errors = if self.errors.is_empty() {
            "none".to_owned()
        } else {
            self.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ")
        };
        let mut s = format!(
            "devsim load: {} at {rate}, concurrency {}{}\n  \
             requests {}  completed {}  202 {}  errors {errors}  retries {}  429 (waited, sent again) {}\n  \
             elapsed {:.2} s  throughput {}/s  accepted {}/s  sent {:.1} MiB\n  \
             latency ({}):\n    {}\n",
            self.url,
            self.concurrency,
            if self.gzip { ", gzip" } else { "" },
            self.requests,
            self.completed,
            self.accepted,
            self.retries,
            self.rate_limited,
            self.elapsed_s,
            self.throughput_per_s,
            self.accepted_per_s,
            self.bytes_sent as f64 / (1024.0 * 1024.0),
            self.latency_basis,
            self.latency_ms.render(),
        );
        if let Some(service) = &self.service_time_ms {
            s.push_str(&format!("  service time (from the actual send):\n    {}\n", service.render()));
        }
        match (self.cpu_s, self.cpu_us_per_request) {
            (Some(cpu), Some(per)) => s.push_str(&format!("  devsim CPU {cpu:.2} s, {per:.1} µs per request\n")),
            (Some(cpu), None) => s.push_str(&format!("  devsim CPU {cpu:.2} s\n")),
            _ => s.push_str("  devsim CPU not measured (no /proc/self/stat)\n"),
        }
        s
    }
}

/// The standard syncs a load run sends, serialized once with a placeholder sync id that each
/// request overwrites with a fresh one.
struct Bodies {
    templates: Vec<(Vec<u8>, usize)>,
    /// Random per run: request `i`'s sync id is this with `i` in its low bits (see [`sync_id`]).
    ids: u128,
}

const PLACEHOLDER: uuid::Uuid = uuid::Uuid::from_u128(0x00dd_ba11_0000_4000_8000_0000_0000_0000);

impl Bodies {
    fn new(now_ms: i64, seed: u64, sleep_every: u64) -> Self {
        let needle = PLACEHOLDER.to_string();
        let templates = (0..32u64)
            .map(|k| {
                let with_sleep = sleep_every > 0 && k % sleep_every == 0;
                let body = ingest_api::example::standard_sync(
                    PLACEHOLDER,
                    now_ms - k as i64 * 15 * 60_000,
                    seed.wrapping_mul(1_000).wrapping_add(k),
                    with_sleep,
                );
                let bytes = serde_json::to_vec(&body).expect("JSON serializes");
                let at = bytes
                    .windows(needle.len())
                    .position(|w| w == needle.as_bytes())
                    .expect("the sync id is in the body");
                (bytes, at)
            })
            .collect();
        Self { templates, ids: uuid::Uuid::new_v4().as_u128() }
    }

    fn template(&self, i: u64) -> &(Vec<u8>, usize) {
        &self.templates[(i % self.templates.len() as u64) as usize]
    }

    /// Request `i`'s body: a copy of a template with its sync id formatted in place, without
    /// allocating anything else.
    fn body(&self, i: u64) -> Vec<u8> {
        let (template, at) = self.template(i);
        let mut bytes = template.clone();
        sync_id(self.ids, i).hyphenated().encode_lower(&mut bytes[*at..*at + uuid::fmt::Hyphenated::LENGTH]);
        bytes
    }

    /// Request `i`'s body as sent: gzipped when the client says so.
    fn wire_body(&self, client: &Client, i: u64) -> Vec<u8> {
        let body = self.body(i);
        if client.gzips() {
            client.encode(body)
        } else {
            body
        }
    }
}

/// The sync id of request `i` of a run whose random version-4 id is `run`: `run` with `i` XORed
/// into its low 62 bits, which leaves the version and variant bits alone, so every request of a
/// run has a distinct valid version-4 UUID, and runs differ in their 60 random high bits; one
/// `getrandom` call per run instead of one per request.
pub fn sync_id(run: u128, i: u64) -> uuid::Uuid {
    uuid::Uuid::from_u128(run ^ u128::from(i & ((1 << 62) - 1)))
}

/// Runs a load test against ingest-api and returns its report.
pub async fn run(config: LoadConfig, stop: CancellationToken) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(config.concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!(config.devices >= 1, "--devices must be at least 1");
    if let Rate::PerSecond(r) = config.rate {
        anyhow::ensure!(r.is_finite() && r > 0.0, "--rate must be a positive number per second, or max");
    }
    let client = Arc::new(Client::new(&config.url, &config.secret, config.timeout, config.concurrency, config.gzip)?);
    let wire = Arc::new(Wire::new(&crate::client::base_url(&config.url)?, config.timeout).await?);
    // Everything a request needs that is the same each time is built here, once: each device's
    // path and headers (its token minted once), and the bodies (see [`Bodies`]).
    let targets: Arc<Vec<Target>> = Arc::new(
        (0..config.devices)
            .map(|d| {
                let device = format!("load-band-{d}");
                let authorization = format!("Bearer {}", client.token(&format!("load-user-{d}"), &device));
                let mut headers = vec![("Authorization", authorization.as_str()), ("Content-Type", "application/json")];
                if config.gzip {
                    headers.push(("Content-Encoding", "gzip"));
                }
                wire.target(&format!("/v1/devices/{device}/syncs"), &headers)
            })
            .collect::<anyhow::Result<_>>()?,
    );
    let bodies = Arc::new(Bodies::new(chrono::Utc::now().timestamp_millis(), config.seed, config.sleep_every));
    let plan = Plan {
        pace: match config.rate {
            Rate::PerSecond(r) => Pace::Fixed(Schedule::per_second(r)),
            Rate::Max => Pace::Max,
        },
        concurrency: config.concurrency,
        count: config.count,
        duration: config.duration,
    };
    let ledger = config.ledger.as_deref().map(Ledger::create).transpose()?.map(Arc::new);
    let retried = Arc::new(AtomicU64::new(0));
    let rate_limited = Arc::new(AtomicU64::new(0));
    let stats = Arc::new(Mutex::new(LoadStats::default()));
    let send = {
        let (ledger, retried, rate_limited, max_retries, stop) =
            (ledger.clone(), retried.clone(), rate_limited.clone(), config.retries, stop.clone());
        move |i: u64| {
            let (client, wire, targets, bodies) = (client.clone(), wire.clone(), targets.clone(), bodies.clone());
            let (ledger, retried, rate_limited, stop) =
                (ledger.clone(), retried.clone(), rate_limited.clone(), stop.clone());
            async move {
                let device = (i % targets.len() as u64) as usize;
                let target = &targets[device];
                // Shared, not copied, by the attempts: every one carries the same bytes.
                let body = bytes::Bytes::from(bodies.wire_body(&client, i));
                let bytes_sent = body.len() as u64;
                // `attempt` numbers every send of this sync id; `failures` the ones `--retries` bounds.
                let (mut attempt, mut failures) = (0u32, 0u32);
                loop {
                    let sent = SystemTime::now();
                    let reply = wire.post(target, body.clone()).await.ok();
                    let status = reply.map(|r| r.status);
                    if let Some(ledger) = &ledger {
                        ledger.write(&LedgerLine {
                            sync_id: sync_id(bodies.ids, i),
                            device,
                            attempt,
                            status,
                            sent,
                            answered: SystemTime::now(),
                        });
                    }
                    let pause = match reply {
                        // Asked to slow down: not a failure, the server said when to come back.
                        Some(Reply { status: 429, retry_after }) => {
                            rate_limited.fetch_add(1, Ordering::Relaxed);
                            rate_limit_pause(retry_after)
                        }
                        _ if failures < max_retries && retryable(status) => {
                            failures += 1;
                            retried.fetch_add(1, Ordering::Relaxed);
                            retry_backoff(failures)
                        }
                        _ => return Outcome { status, bytes_sent },
                    };
                    attempt += 1;
                    tokio::select! {
                        _ = stop.cancelled() => return Outcome { status, bytes_sent },
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    };
    let progress =
        config.progress_every.map(|every| tokio::spawn(progress(stats.clone(), rate_limited.clone(), every)));
    let cpu_before = crate::cpu::process_cpu_time();
    let started = Instant::now();
    drive(plan, send, stats.clone(), stop).await;
    let elapsed = started.elapsed();
    if let Some(ledger) = &ledger {
        ledger.finish()?;
    }
    let cpu = cpu_before.zip(crate::cpu::process_cpu_time()).map(|(a, b)| b.saturating_sub(a));
    if let Some(p) = progress {
        p.abort();
    }
    let stats = stats.lock().expect("stats lock");
    let elapsed = if stats.last_done > Duration::ZERO { stats.last_done.min(elapsed) } else { elapsed };
    Ok(LoadReport::new(
        &config,
        &stats,
        elapsed,
        cpu,
        retried.load(Ordering::Relaxed),
        rate_limited.load(Ordering::Relaxed),
    ))
}

/// Whether a phone would send the same sync again: the server failed (5xx), asked it to slow
/// down (429), or never answered. A 4xx says the request itself is wrong. (`run` sends a 429
/// again whatever `--retries` says: see [`rate_limit_pause`].)
pub fn retryable(status: Option<u16>) -> bool {
    match status {
        None => true,
        Some(s) => s == 429 || (500..600).contains(&s),
    }
}

/// How long to wait after a 429 before sending the same request again: its `Retry-After`, within
/// 100 ms and 60 s (a broken or hostile value neither spins nor stalls the run); 1 s without one.
pub fn rate_limit_pause(retry_after: Option<Duration>) -> Duration {
    retry_after.unwrap_or(Duration::from_secs(1)).clamp(Duration::from_millis(100), Duration::from_secs(60))
}

/// Wait before retry `attempt` (1, 2, …): 200 ms doubling, at most 2 s.
pub fn retry_backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.saturating_sub(1).min(4))).min(Duration::from_secs(2))
}

/// One attempt of a request, as the ledger records it.
pub struct LedgerLine {
    pub sync_id: uuid::Uuid,
    /// Index of the device: `load-band-N` of user `load-user-N`.
    pub device: usize,
    /// 0 for the first send, then 1, 2, … for the retries of the same sync id.
    pub attempt: u32,
    /// The HTTP status, None when no answer came.
    pub status: Option<u16>,
    pub sent: SystemTime,
    pub answered: SystemTime,
}

/// `--ledger FILE`: one JSON object a line per attempt, in the order answers came:
/// `{"sync_id", "user", "device", "attempt", "status" (null: no answer), "sent", "answered"}`,
/// times in seconds since the Unix epoch. Whoever checks the system afterwards (deploy/chaos.py)
/// learns from it which syncs were acknowledged (a 202) and what clients saw, and when.
pub struct Ledger {
    out: Mutex<std::io::BufWriter<std::fs::File>>,
    path: PathBuf,
}

impl Ledger {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::create(path).with_context(|| format!("creating the ledger {}", path.display()))?;
        Ok(Self { out: Mutex::new(std::io::BufWriter::new(file)), path: path.to_owned() })
    }

    pub fn write(&self, line: &LedgerLine) {
        let seconds = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let status = line.status.map_or("null".to_owned(), |s| s.to_string());
        let mut out = self.out.lock().expect("ledger lock");
        // A write error surfaces at finish(), when the buffer is flushed.
        let _ = writeln!(
            out,
            r#"{{"sync_id":"{}","user":"load-user-{d}","device":"load-band-{d}","attempt":{},"status":{status},"sent":{:.3},"answered":{:.3}}}"#,
            line.sync_id,
            line.attempt,
            seconds(line.sent),
            seconds(line.answered),
            d = line.device,
        );
    }

    /// Flushes the file; an error here means the ledger is incomplete.
    pub fn finish(&self) -> anyhow::Result<()> {
        let mut out = self.out.lock().expect("ledger lock");
        out.flush()
            .and_then(|_| out.get_ref().sync_all())
            .with_context(|| format!("writing the ledger {}", self.path.display()))
    }
}

async fn progress(stats: Arc<Mutex<LoadStats>>, rate_limited: Arc<AtomicU64>, every: Duration) {
    let start = Instant::now();
    let mut last = 0u64;
    let mut tick = tokio::time::interval_at(start + every, every);
    loop {
        tick.tick().await;
        let line = {
            let s = stats.lock().expect("stats lock");
            let errors: u64 = s.errors.values().sum();
            let rate = (s.completed - last) as f64 / every.as_secs_f64();
            last = s.completed;
            let p99 =
                if s.latency.latency.is_empty() { 0.0 } else { s.latency.latency.value_at_quantile(0.99) as f64 / 1e3 };
            format!(
                "devsim load {:>6.1}s  sent {}  done {}  202 {}  errors {errors}  429 {}  in flight {}  {rate:.0}/s  p99 so far {p99:.1} ms",
                start.elapsed().as_secs_f64(),
                s.sent,
                s.completed,
                s.accepted,
                rate_limited.load(Ordering::Relaxed),
                s.sent - s.completed,
            )
        };
        eprintln!("{line}");
    }
}

/// Writes the report as JSON.
pub fn write_json(report: &LoadReport, path: &Path) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report).expect("the report serializes");
    std::fs::write(path, json + "\n").with_context(|| format!("writing the report to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_of_a_run_gets_its_own_version_4_sync_id() {
        let run = uuid::Uuid::new_v4().as_u128();
        let ids: std::collections::HashSet<uuid::Uuid> = (0..10_000).map(|i| sync_id(run, i)).collect();
        assert_eq!(ids.len(), 10_000);
        for i in [0, 1, 12_345, u64::MAX] {
            let id = sync_id(run, i);
            assert_eq!(id.get_version(), Some(uuid::Version::Random), "{id}");
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
    }

    #[test]
    fn bodies_carry_the_sync_id_of_their_request() {
        let bodies = Bodies::new(1_700_000_000_000, 1, 8);
        for i in [0u64, 1, 31, 32, 1_000] {
            let body: serde_json::Value = serde_json::from_slice(&bodies.body(i)).expect("valid JSON");
            assert_eq!(body["sync_id"], sync_id(bodies.ids, i).to_string());
        }
    }
}
