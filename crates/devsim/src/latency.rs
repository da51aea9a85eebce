//! Latency accounting that does not hide slow answers.
//!
//! A load generator that measures from the moment it *actually* sends a request suffers from
//! coordinated omission: while the server stalls, the generator stalls with it, the requests it
//! should have sent meanwhile go out late, and each of them is timed from its late start, so
//! the stall shows up as one slow request instead of hundreds. In fixed-rate mode every request
//! has an *intended* send time from the schedule, and its latency is measured from that time
//! ([`Timing::latency`]); the time from the actual send ([`Timing::service_time`]) is reported
//! next to it only for comparison.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// When each request of a fixed-rate run is meant to go, relative to the start of the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    interval_ns: f64,
}

impl Schedule {
    /// `rate` requests per second (must be positive).
    pub fn per_second(rate: f64) -> Self {
        Self { interval_ns: 1e9 / rate }
    }

    pub fn every(interval: Duration) -> Self {
        Self { interval_ns: interval.as_nanos() as f64 }
    }

    /// The intended send time of request `i` (0-based).
    pub fn intended(&self, i: u64) -> Duration {
        Duration::from_nanos((i as f64 * self.interval_ns).round() as u64)
    }

    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns.round() as u64)
    }
}

/// One request's times, relative to the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// When the schedule meant it to go (in a closed loop: when it went).
    pub intended: Duration,
    /// When it actually went.
    pub sent: Duration,
    /// When the answer (or the error) came.
    pub done: Duration,
}

impl Timing {
    /// What a caller keeping to the schedule waited: from the intended send time to the answer.
    pub fn latency(&self) -> Duration {
        self.done.saturating_sub(self.intended)
    }

    /// What the server took once the request was out (blind to queueing in the generator).
    pub fn service_time(&self) -> Duration {
        self.done.saturating_sub(self.sent)
    }
}

/// A histogram of durations in microseconds, from 1 µs to one hour, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1));
}

/// Latency (from the intended send time) and service time (from the actual send) of a run.
#[derive(Debug, Clone)]
pub struct LatencyStats {
    pub latency: Histogram<u64>,
    pub service: Histogram<u64>,
}

impl Default for LatencyStats {
    fn default() -> Self {
        Self { latency: histogram(), service: histogram() }
    }
}

impl LatencyStats {
    pub fn record(&mut self, t: &Timing) {
        record(&mut self.latency, t.latency());
        record(&mut self.service, t.service_time());
    }
}

/// Percentiles of a microsecond histogram, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1_000.0;
        if h.is_empty() {
            return Self {
                count: 0,
                min_ms: 0.0,
                mean_ms: 0.0,
                p50_ms: 0.0,
                p90_ms: 0.0,
                p99_ms: 0.0,
                p99_9_ms: 0.0,
                max_ms: 0.0,
            };
        }
        Self {
            count: h.len(),
            min_ms: ms(h.min()),
            mean_ms: h.mean().round() / 1_000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p99_9_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }

    /// `p50 1.2 ms  p90 …  max …`.
    pub fn render(&self) -> String {
        format!(
            "p50 {} ms  p90 {} ms  p99 {} ms  p99.9 {} ms  max {} ms  (mean {} ms, n={})",
            self.p50_ms, self.p90_ms, self.p99_ms, self.p99_9_ms, self.max_ms, self.mean_ms, self.count
        )
    }
}
