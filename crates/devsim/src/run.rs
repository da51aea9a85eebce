//! `devsim run`: the fleet's phones sync through ingest-api, each device on its own task, in
//! simulated time.
//!
//! Simulated time starts `backfill` before the wall clock and runs at `speed` times real time
//! from the moment the run starts: syncs whose simulated time has already come (the history)
//! go out as fast as `concurrency` allows, later ones wait for their time. A phone sends its
//! syncs one after the other; a 503 is retried with the same body (same sync id) after
//! `Retry-After`, a connection error after a growing pause, both at most `max_retries` times.
//! A 429 (a rate limit) is neither accepted nor a failure: the phone waits its `Retry-After`
//! (bounded, see [`crate::load::rate_limit_pause`]) and sends the same body again, as often as
//! it takes; 429s are counted apart (`rate_limited`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ingest_api::config::Secret;
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::fleet::{DeviceKind, Fleet};
use crate::phone::{self, DeviceSim, Outgoing, SimConfig, SyncKind};

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub url: String,
    pub secret: Secret,
    pub sim: SimConfig,
    /// Simulated seconds per real second once history is sent.
    pub speed: f64,
    /// Most requests in flight over all devices.
    pub concurrency: usize,
    pub max_retries: u32,
    pub timeout: Duration,
    pub progress_every: Option<Duration>,
    /// Stop after this much real time.
    pub duration: Option<Duration>,
    /// Stop once the history (everything before the start) is sent.
    pub backfill_only: bool,
    pub gzip: bool,
    /// Follow each user's live event stream and print each sync's processing.
    pub watch: bool,
}

/// Counters of a run, updated by the device tasks.
#[derive(Debug)]
struct Stats {
    syncs: AtomicU64,
    requests: AtomicU64,
    accepted: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
    gave_up: AtomicU64,
    transport_errors: AtomicU64,
    resent: AtomicU64,
    overlapping: AtomicU64,
    late: AtomicU64,
    samples: AtomicU64,
    impossible: AtomicU64,
    bytes_sent: AtomicU64,
    by_status: Mutex<BTreeMap<u16, u64>>,
    /// 202s per user.
    per_user: Vec<AtomicU64>,
    /// Simulated time of each device's next command: everything before it is sent.
    device_time: Vec<AtomicI64>,
    /// Error answers still to print in full.
    error_budget: AtomicU64,
}

/// The summary of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub elapsed_s: f64,
    pub users: usize,
    pub devices: usize,
    /// Distinct commands generated and sent (re-sends and retries not counted).
    pub syncs: u64,
    /// HTTP requests, with re-sends and retries.
    pub requests: u64,
    pub accepted: u64,
    /// Answers by status, 202 included, 503s that were retried included.
    pub by_status: BTreeMap<u16, u64>,
    pub transport_errors: u64,
    /// Retries after a 503 or no answer (bounded by `max_retries`).
    pub retries: u64,
    /// 429 answers, each waited out and sent again (not retries, not failures).
    pub rate_limited: u64,
    /// Syncs abandoned after `max_retries`.
    pub gave_up: u64,
    pub resent: u64,
    pub overlapping: u64,
    pub late: u64,
    pub samples: u64,
    pub impossible_samples: u64,
    pub bytes_sent: u64,
    /// 202s per user id.
    pub per_user: BTreeMap<String, u64>,
    /// With `--watch`: syncs the live streams reported processed and failed, and model updates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watched: Option<WatchedReport>,
    /// Simulated time up to which every device has sent its commands (UTC ms).
    pub sim_time_ms: i64,
}

/// What the live streams reported (`--watch`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WatchedReport {
    pub processed: u64,
    pub failed: u64,
    pub model_updates: u64,
}

/// What every device task of a run shares: the HTTP client, the counters, the clock of simulated
/// time and the stop token.
struct Simulation {
    client: Client,
    stats: Stats,
    permits: tokio::sync::Semaphore,
    stop: CancellationToken,
    max_retries: u32,
    start_ms: i64,
    started: Instant,
    speed: f64,
    backfill_only: bool,
}

impl Simulation {
    /// Simulated now.
    fn sim_now(&self) -> i64 {
        self.start_ms + (self.started.elapsed().as_secs_f64() * 1_000.0 * self.speed) as i64
    }

    /// The real instant at which simulated time reaches `t`.
    fn real_at(&self, t: i64) -> Instant {
        let ms = ((t - self.start_ms) as f64 / self.speed).max(0.0);
        self.started + Duration::from_secs_f64(ms / 1_000.0)
    }
}

/// Runs the fleet until `stop` fires, `duration` passes, or (with `backfill_only`) the history
/// is sent.
pub async fn run(config: RunConfig, stop: CancellationToken) -> anyhow::Result<RunReport> {
    anyhow::ensure!(config.speed.is_finite() && config.speed > 0.0, "--speed must be a positive number");
    anyhow::ensure!(config.concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!(config.sim.fleet.users >= 1, "--users must be at least 1");
    let client = Client::new(&config.url, &config.secret, config.timeout, config.concurrency, config.gzip)?;
    let fleet = Fleet::new(&config.sim.fleet);
    let sims = phone::devices(&config.sim, &fleet);
    let straps = sims.iter().filter(|s| s.device().kind == DeviceKind::Strap).count();
    let origin = config.sim.origin_ms();
    eprintln!(
        "devsim run: {} users, {} devices ({} chest straps), seed {}, from {} at {}x, posting to {}",
        fleet.users.len(),
        sims.len(),
        straps,
        config.sim.fleet.seed,
        fmt_time(origin),
        config.speed,
        config.url
    );
    let ctx = Arc::new(Simulation {
        client,
        stats: Stats {
            syncs: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            gave_up: AtomicU64::new(0),
            transport_errors: AtomicU64::new(0),
            resent: AtomicU64::new(0),
            overlapping: AtomicU64::new(0),
            late: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            impossible: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            by_status: Mutex::new(BTreeMap::new()),
            per_user: fleet.users.iter().map(|_| AtomicU64::new(0)).collect(),
            device_time: sims.iter().map(|s| AtomicI64::new(s.next_time())).collect(),
            error_budget: AtomicU64::new(5),
        },
        permits: tokio::sync::Semaphore::new(config.concurrency),
        stop: stop.clone(),
        max_retries: config.max_retries,
        start_ms: config.sim.start_ms,
        started: Instant::now(),
        speed: config.speed,
        backfill_only: config.backfill_only,
    });
    let user_ids: Vec<String> = fleet.users.iter().map(|u| u.id.clone()).collect();
    // Streams open before the first sync goes out, so every one of them is seen.
    let stop_watching = CancellationToken::new();
    let watched = if config.watch {
        Some(crate::watch::start(&ctx.client, &user_ids, true, stop_watching.clone()).await?)
    } else {
        None
    };

    let mut tasks = tokio::task::JoinSet::new();
    for (i, sim) in sims.into_iter().enumerate() {
        tasks.spawn(device_loop(sim, i, ctx.clone()));
    }
    let progress = config.progress_every.map(|every| {
        let (ctx, ids) = (ctx.clone(), user_ids.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(Instant::now() + every, every);
            loop {
                tick.tick().await;
                eprintln!("{}", progress_line(&ctx, &ids, origin));
            }
        })
    });
    let deadline = config.duration.map(|d| Instant::now() + d);
    let mut ended_by_itself = false;
    loop {
        tokio::select! {
            done = tasks.join_next() => match done {
                None => {
                    ended_by_itself = true;
                    break;
                }
                Some(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Some(_) => {}
            },
            _ = stop.cancelled() => break,
            _ = async { tokio::time::sleep_until(deadline.expect("checked")).await }, if deadline.is_some() => {
                ended_by_itself = true;
                break;
            }
        }
    }
    // Stop: no new syncs; requests in flight finish (bounded by the timeout), then the rest goes.
    stop.cancel();
    let grace = config.timeout + Duration::from_secs(1);
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
        tasks.abort_all();
    }
    if let Some(p) = progress {
        p.abort();
    }
    eprintln!("{}", progress_line(&ctx, &user_ids, origin));
    let mut report = report(&ctx, &user_ids);
    if let Some(watched) = watched {
        // The last syncs' processing is still to come: wait for it a little (not after Ctrl-C).
        let seen = || watched.processed.load(Ordering::Relaxed) + watched.failed.load(Ordering::Relaxed);
        let until = Instant::now() + Duration::from_secs(10);
        while ended_by_itself && seen() < report.accepted && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop_watching.cancel();
        report.watched = Some(WatchedReport {
            processed: watched.processed.load(Ordering::Relaxed),
            failed: watched.failed.load(Ordering::Relaxed),
            model_updates: watched.model_updates.load(Ordering::Relaxed),
        });
    }
    if ended_by_itself && report.syncs > 0 && report.accepted == 0 {
        anyhow::bail!(
            "no sync was accepted by {}: is ingest-api running there, with the same AUTH_TOKEN_SECRET? (answers: {:?}, transport errors: {})",
            config.url,
            report.by_status,
            report.transport_errors
        );
    }
    Ok(report)
}

async fn device_loop(mut sim: DeviceSim, index: usize, ctx: Arc<Simulation>) {
    loop {
        let t = sim.next_time();
        if ctx.backfill_only && t >= ctx.start_ms {
            break;
        }
        if t > ctx.sim_now() {
            tokio::select! {
                _ = ctx.stop.cancelled() => break,
                _ = tokio::time::sleep_until(ctx.real_at(t)) => {}
            }
        }
        if ctx.stop.is_cancelled() {
            break;
        }
        let outgoing = sim.step();
        for o in outgoing {
            deliver(&ctx, o).await;
        }
        ctx.stats.device_time[index].store(sim.next_time(), Ordering::Relaxed);
        // Long backfills build big bodies back to back: let other tasks run.
        tokio::task::yield_now().await;
    }
}

/// A phone that was offline sends its history when it comes back: its clock reads the wall
/// clock, not the simulated time of the wear, as ingest-api checks it against its own. The
/// device clock moves with it, so the skew, and every corrected sample time, stay the same.
fn stamp_history_now(body: &mut serde_json::Value, wall_ms: i64) {
    let clock = &mut body["clock"];
    let (Some(phone), Some(device)) = (clock["phone_time_ms"].as_i64(), clock["device_time_ms"].as_i64()) else {
        return;
    };
    if phone < wall_ms - 60_000 {
        clock["phone_time_ms"] = wall_ms.into();
        clock["device_time_ms"] = (wall_ms - (phone - device)).into();
    }
}

async fn deliver(ctx: &Simulation, mut o: Outgoing) {
    stamp_history_now(&mut o.body, chrono::Utc::now().timestamp_millis());
    let s = &ctx.stats;
    s.syncs.fetch_add(1, Ordering::Relaxed);
    s.samples.fetch_add(u64::from(o.samples), Ordering::Relaxed);
    s.impossible.fetch_add(u64::from(o.impossible), Ordering::Relaxed);
    match o.kind {
        SyncKind::Regular => {}
        SyncKind::Overlapping => {
            s.overlapping.fetch_add(1, Ordering::Relaxed);
        }
        SyncKind::Late => {
            s.late.fetch_add(1, Ordering::Relaxed);
        }
    }
    let body = ctx.client.encode(serde_json::to_vec(&o.body).expect("JSON serializes"));
    post(ctx, &o, &body).await;
    if o.resend && !ctx.stop.is_cancelled() {
        // The phone never heard the answer: the same batch, same sync id, again.
        s.resent.fetch_add(1, Ordering::Relaxed);
        post(ctx, &o, &body).await;
    }
}

/// Posts one body until it is accepted, refused, or retried `max_retries` times.
async fn post(ctx: &Simulation, o: &Outgoing, body: &[u8]) {
    let s = &ctx.stats;
    let mut attempt = 0;
    loop {
        let permit = tokio::select! {
            _ = ctx.stop.cancelled() => return,
            p = ctx.permits.acquire() => p.expect("the semaphore is never closed"),
        };
        let token = ctx.client.token(&o.user_id, &o.device_id);
        s.requests.fetch_add(1, Ordering::Relaxed);
        s.bytes_sent.fetch_add(body.len() as u64, Ordering::Relaxed);
        let answer = ctx.client.post_sync(&o.device_id, &token, body.to_vec()).await;
        drop(permit);
        let pause = match answer {
            Ok(a) => {
                *s.by_status.lock().expect("stats lock").entry(a.status).or_default() += 1;
                match a.status {
                    202 => {
                        s.accepted.fetch_add(1, Ordering::Relaxed);
                        s.per_user[o.user_index].fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    // Slowed down by a rate limit: wait, send the same again, spend no retry.
                    429 => {
                        s.rate_limited.fetch_add(1, Ordering::Relaxed);
                        let pause = crate::load::rate_limit_pause(a.retry_after);
                        tokio::select! {
                            _ = ctx.stop.cancelled() => return,
                            _ = tokio::time::sleep(pause) => {}
                        }
                        continue;
                    }
                    503 if attempt < ctx.max_retries => {
                        a.retry_after.unwrap_or(Duration::from_secs(5)).min(Duration::from_secs(60))
                    }
                    status => {
                        if status == 503 {
                            s.gave_up.fetch_add(1, Ordering::Relaxed);
                        }
                        if s.error_budget
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                            .is_ok()
                        {
                            eprintln!(
                                "devsim: {} sync {} ({:?}) got HTTP {status}: {}",
                                o.device_id,
                                o.sync_id,
                                o.kind,
                                a.problem.unwrap_or_default()
                            );
                        }
                        return;
                    }
                }
            }
            Err(e) => {
                s.transport_errors.fetch_add(1, Ordering::Relaxed);
                if s.error_budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok() {
                    eprintln!("devsim: {} sync {}: {e}", o.device_id, o.sync_id);
                }
                if attempt >= ctx.max_retries {
                    s.gave_up.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Duration::from_secs(1 << attempt.min(5))
            }
        };
        s.retries.fetch_add(1, Ordering::Relaxed);
        attempt += 1;
        tokio::select! {
            _ = ctx.stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

fn report(ctx: &Simulation, user_ids: &[String]) -> RunReport {
    let s = &ctx.stats;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    RunReport {
        elapsed_s: (ctx.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        users: user_ids.len(),
        devices: s.device_time.len(),
        syncs: get(&s.syncs),
        requests: get(&s.requests),
        accepted: get(&s.accepted),
        by_status: s.by_status.lock().expect("stats lock").clone(),
        transport_errors: get(&s.transport_errors),
        retries: get(&s.retries),
        rate_limited: get(&s.rate_limited),
        gave_up: get(&s.gave_up),
        resent: get(&s.resent),
        overlapping: get(&s.overlapping),
        late: get(&s.late),
        samples: get(&s.samples),
        impossible_samples: get(&s.impossible),
        bytes_sent: get(&s.bytes_sent),
        per_user: user_ids.iter().zip(&s.per_user).map(|(id, n)| (id.clone(), get(n))).collect(),
        watched: None,
        sim_time_ms: s.device_time.iter().map(|t| t.load(Ordering::Relaxed)).fold(ctx.sim_now(), i64::min),
    }
}

/// One progress line: simulated time, syncs, answers by status, imperfections, per-user 202s.
fn progress_line(ctx: &Simulation, user_ids: &[String], origin: i64) -> String {
    let r = report(ctx, user_ids);
    let sim = r.sim_time_ms.max(origin);
    let phase = if sim < ctx.start_ms && ctx.start_ms > origin {
        format!("backfill {:.0}%", (sim - origin) as f64 * 100.0 / (ctx.start_ms - origin) as f64)
    } else {
        "live".to_owned()
    };
    let statuses: Vec<String> = r.by_status.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    // In user order (the report's map is in string order: user-1, user-10, user-2…).
    let counts: Vec<u64> = ctx.stats.per_user.iter().map(|n| n.load(Ordering::Relaxed)).collect();
    let mut per_user: Vec<String> = user_ids.iter().zip(&counts).take(8).map(|(k, v)| format!("{k} {v}")).collect();
    if counts.len() > 8 {
        let rest = &counts[8..];
        let (min, max) = (rest.iter().min().unwrap_or(&0), rest.iter().max().unwrap_or(&0));
        per_user.push(format!("… {} more (min {min}, max {max})", rest.len()));
    }
    format!(
        "devsim {:>6.0}s  sim {}  {phase} | syncs {} requests {} [{}] transport errors {} | retried {} 429 waited {} gave up {} resent {} overlapping {} late {} | 202 per user: {}",
        r.elapsed_s,
        fmt_time(sim),
        r.syncs,
        r.requests,
        if statuses.is_empty() { "no answers yet".to_owned() } else { statuses.join(", ") },
        r.transport_errors,
        r.retries,
        r.rate_limited,
        r.gave_up,
        r.resent,
        r.overlapping,
        r.late,
        per_user.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_sent_with_the_wall_clock_and_the_same_skew() {
        let wall = 1_800_000_000_000;
        let mut old = serde_json::json!({"clock": {"phone_time_ms": wall - 86_400_000, "device_time_ms": wall - 86_400_000 - 7_000}});
        stamp_history_now(&mut old, wall);
        assert_eq!(old["clock"]["phone_time_ms"], wall);
        assert_eq!(old["clock"]["device_time_ms"], wall - 7_000, "the skew stays, so corrected times stay");
        // A sync of the last minute goes as it was.
        let mut recent =
            serde_json::json!({"clock": {"phone_time_ms": wall - 30_000, "device_time_ms": wall - 31_000}});
        let before = recent.clone();
        stamp_history_now(&mut recent, wall);
        assert_eq!(recent, before);
    }
}
