//! Benchmarks of the health model: one full user-day as the processor assembles it, the HRV
//! artifact filter on its own, and carrying the rolling series over a year.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use health_model::day::{summarize, DayData, StepEpoch, NIGHT_LOOKBACK_MS};
use health_model::sleep::Stage;
use health_model::{hrv, rolling, Profile, Sex};

/// A deterministic pseudo-random source (PCG-style LCG), so every run measures the same day.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

const DAY_MS: i64 = 86_400_000;

/// A night of RR from 23:00 to 07:00: runs of 2 to 6 minutes of consecutive beats separated by
/// short gaps, integer milliseconds with a few ectopic and missed beats, ~25k beats in all.
fn a_night_of_rr(start: i64, rng: &mut Lcg) -> Vec<(i64, Vec<f64>)> {
    let (mut t, end) = (start - 3_600_000, start + 7 * 3_600_000);
    let mut runs = Vec::new();
    while t < end {
        let first = t;
        let run_ms = 120_000 + rng.below(240_000) as i64;
        let mut rr = Vec::new();
        while t < first + run_ms {
            let normal = 1_050 + rng.below(120) as i64 - 60;
            let beat = match rng.below(200) {
                0 => normal * 2,      // a missed beat
                1 => normal * 6 / 10, // an ectopic beat
                _ => normal,
            };
            rr.push(beat as f64);
            t += beat;
        }
        runs.push((first, rr));
        t += 5_000 + rng.below(30_000) as i64;
    }
    runs
}

/// What the processor passes for one day: everything from `start - NIGHT_LOOKBACK_MS` (the evening
/// before, for the night) to the day's end. HR at 1 Hz in whole bpm, RR through the night, steps
/// per minute, a staged night, SpO2 each minute of the night and a few wear events.
fn a_day() -> DayData {
    let start = 1_772_409_600_000_i64;
    let from = start - NIGHT_LOOKBACK_MS;
    let mut rng = Lcg(42);
    let night = (start - 3_600_000, start + 7 * 3_600_000);
    let asleep = |t: i64| t >= night.0 && t < night.1;
    // HR drifts from second to second (a random walk), as a 1 Hz optical sensor reports it.
    let mut drift = 10i64;
    let hr = (from..start + DAY_MS)
        .step_by(1_000)
        .map(|t| {
            drift = (drift + rng.below(3) as i64 - 1).clamp(0, 25);
            let base = if asleep(t) { 50 } else { 65 };
            let exercise = if (t - start) / 60_000 % 480 < 45 { 80 } else { 0 };
            (t, (base + exercise + drift) as f64)
        })
        .collect();
    let steps = (from..start + DAY_MS)
        .step_by(60_000)
        .map(|t| {
            let steps = if asleep(t) { 0.0 } else { rng.below(140) as f64 };
            StepEpoch { start_ms: t, duration_s: 60.0, steps, distance_m: steps * 0.75 }
        })
        .collect();
    let stages = [Stage::Light, Stage::Deep, Stage::Light, Stage::Rem, Stage::Awake];
    let segment_ms = (night.1 - night.0) / 40;
    let sleep =
        (0..40).map(|i| (night.0 + i * segment_ms, night.0 + (i + 1) * segment_ms, stages[i as usize % 5])).collect();
    let spo2 = (night.0..night.1).step_by(60_000).map(|t| (t, 93.0 + rng.below(6) as f64)).collect();
    let wear = vec![(start + 12 * 3_600_000, false), (start + 13 * 3_600_000, true)];
    DayData {
        start_ms: start,
        end_ms: start + DAY_MS,
        hr,
        rr_runs: a_night_of_rr(start, &mut rng),
        steps,
        sleep,
        spo2,
        wear,
        ..DayData::default()
    }
}

fn benches(c: &mut Criterion) {
    let day = a_day();
    let profile = Profile { sex: Sex::Female, age: 38.0, weight_kg: 61.5, height_cm: 168.0, measured_hr_max: None };
    c.bench_function("health-model: one user-day (1 Hz HR over 42 h, 25k RR)", |b| {
        b.iter(|| summarize(black_box(&day), Some(&profile)))
    });

    let night: Vec<f64> = day.rr_runs.iter().flat_map(|(_, rr)| rr.iter().copied()).collect();
    c.bench_function(&format!("health-model: HRV filter, one run of {} beats", night.len()), |b| {
        b.iter(|| hrv::filtered(black_box(&night)))
    });
    let runs: Vec<&[f64]> = day.rr_runs.iter().map(|(_, rr)| rr.as_slice()).collect();
    c.bench_function(&format!("health-model: HRV filter, the night's {} runs", runs.len()), |b| {
        b.iter(|| hrv::filtered_runs(black_box(&runs)))
    });

    let loads: Vec<f64> = (0..365).map(|d| ((d * 37) % 180) as f64).collect();
    let rhr: Vec<Option<f64>> = (0..365).map(|d| (d % 9 != 0).then_some(50.0 + (d % 7) as f64)).collect();
    let hrv: Vec<Option<f64>> = (0..365).map(|d| (d % 5 != 0).then_some(3.5 + (d % 11) as f64 / 20.0)).collect();
    c.bench_function("health-model: rolling series over one year", |b| {
        b.iter(|| {
            (
                rolling::load_series(black_box(&loads)),
                rolling::rhr_anomalies(black_box(&rhr)),
                rolling::hrv_baseline(black_box(&hrv)),
            )
        })
    });
}

criterion_group!(group, benches);
criterion_main!(group);
