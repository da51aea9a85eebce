//! Latency accounting that coordinated omission cannot fool.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use devsim::latency::{LatencyStats, Percentiles, Schedule, Timing};
use devsim::load::{drive, LoadStats, Outcome, Pace, Plan};
use tokio_util::sync::CancellationToken;

const MS: Duration = Duration::from_millis(1);

/// Values at or above `d` in a microsecond histogram.
fn at_least(h: &hdrhistogram::Histogram<u64>, d: Duration) -> u64 {
    h.iter_recorded().filter(|v| v.value_iterated_to() >= d.as_micros() as u64).map(|v| v.count_at_value()).sum()
}

#[test]
fn a_stalled_answer_delays_the_queued_requests_and_the_histogram_shows_it() {
    // A client with one connection keeps a schedule of one request every 10 ms. The server
    // answers in 1 ms, except request 20, which takes a second: the requests due meanwhile
    // wait in the client and go out late.
    let schedule = Schedule::every(10 * MS);
    assert_eq!(schedule.intended(3), 30 * MS);
    let mut stats = LatencyStats::default();
    let mut free_at = Duration::ZERO;
    let mut timings = vec![];
    for i in 0..200u64 {
        let intended = schedule.intended(i);
        let sent = intended.max(free_at);
        let done = sent + if i == 20 { 1_000 * MS } else { MS };
        free_at = done;
        let t = Timing { intended, sent, done };
        stats.record(&t);
        timings.push(t);
    }
    // The queued requests (21 to ~119) each waited: their latency counts from the schedule.
    assert_eq!(timings[21].latency(), 1_201 * MS - 210 * MS);
    assert_eq!(timings[21].service_time(), MS);
    assert!(timings[21..119].iter().all(|t| t.latency() > 10 * MS));
    assert_eq!(stats.latency.len(), 200);
    // Request k (21 to 75) went out at 1201 + (k - 21) ms and was due at 10k ms: 56 requests,
    // the slow one included, waited half a second or more…
    let slow = at_least(&stats.latency, 500 * MS);
    assert!((55..=57).contains(&slow), "{slow}");
    // …which measuring from the actual send would hide: there, only the one slow answer shows.
    assert_eq!(at_least(&stats.service, 500 * MS), 1);
    let corrected = Percentiles::of(&stats.latency);
    let naive = Percentiles::of(&stats.service);
    assert!(corrected.p90_ms > 700.0, "{corrected:?}");
    assert!(naive.p90_ms < 2.0, "{naive:?}");
    assert!((corrected.max_ms - 1_001.0).abs() < 2.0, "{corrected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixed_rate_driver_measures_from_the_intended_send_time() {
    // The real dispatcher, against a fake server with one connection's worth of concurrency.
    let stats = Arc::new(Mutex::new(LoadStats::default()));
    let plan = Plan { pace: Pace::Fixed(Schedule::every(10 * MS)), concurrency: 1, count: Some(150), duration: None };
    let send = |i: u64| async move {
        tokio::time::sleep(if i == 20 { 1_000 * MS } else { MS }).await;
        Outcome { status: Some(202), bytes_sent: 100 }
    };
    drive(plan, send, stats.clone(), CancellationToken::new()).await;
    let s = stats.lock().unwrap();
    assert_eq!((s.sent, s.completed, s.accepted), (150, 150, 150));
    assert_eq!(s.bytes_sent, 15_000);
    let slow = at_least(&s.latency.latency, 500 * MS);
    // 56 with exact 1 ms answers; real timers (more so on a busy machine) answer a little
    // later, so more requests wait.
    assert!(slow >= 50, "{slow} requests ≥ 500 ms");
    assert!(at_least(&s.latency.service, 500 * MS) <= 2);
    assert!(Percentiles::of(&s.latency.latency).p90_ms > 500.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_mode_sends_the_count_and_stop_ends_a_run() {
    let stats = Arc::new(Mutex::new(LoadStats::default()));
    let plan = Plan { pace: Pace::Max, concurrency: 4, count: Some(40), duration: None };
    let send =
        |i: u64| async move { Outcome { status: Some(if i.is_multiple_of(10) { 503 } else { 202 }), bytes_sent: 1 } };
    drive(plan, send, stats.clone(), CancellationToken::new()).await;
    {
        let s = stats.lock().unwrap();
        assert_eq!((s.sent, s.completed, s.accepted), (40, 40, 36));
        assert_eq!(s.errors.get("503"), Some(&4));
    }

    let stats = Arc::new(Mutex::new(LoadStats::default()));
    let stop = CancellationToken::new();
    let plan = Plan { pace: Pace::Fixed(Schedule::per_second(100.0)), concurrency: 8, count: None, duration: None };
    let send = |_| async { Outcome { status: None, bytes_sent: 0 } };
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(200 * MS).await;
            stop.cancel();
        })
    };
    tokio::time::timeout(Duration::from_secs(5), drive(plan, send, stats.clone(), stop)).await.expect("stops");
    stopper.await.unwrap();
    let s = stats.lock().unwrap();
    assert!(s.sent > 5 && s.sent < 60, "{}", s.sent);
    assert_eq!(s.errors.get("transport"), Some(&s.sent));
}
