//! Micro benchmarks of the health model: one user-day, and carrying the rolling series over a year.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use health_model::day::{summarize, DayData, StepEpoch};
use health_model::sleep::Stage;
use health_model::{rolling, Profile, Sex};

/// A full day: HR every 5 s, RR through an 8-hour night, steps every minute, ~40 sleep segments.
fn a_day() -> DayData {
    let start = 1_772_409_600_000_i64;
    let night = start - 3_600_000;
    let hr = (0..(25 * 720)).map(|i| (night + i * 5_000, 55.0 + ((i % 97) as f64) * 0.6)).collect();
    let rr: Vec<f64> = (0..28_800).map(|i| 950.0 + ((i * 37 % 61) as f64) - 30.0).collect();
    let runs = vec![(night, rr)];
    let steps = (0..1440)
        .map(|m| StepEpoch { start_ms: start + m * 60_000, duration_s: 60.0, steps: (m % 120) as f64, distance_m: 0.0 })
        .collect();
    let stages = [Stage::Light, Stage::Deep, Stage::Light, Stage::Rem];
    let sleep = (0..40).map(|i| (night + i * 720_000, night + (i + 1) * 720_000, stages[i as usize % 4])).collect();
    DayData { start_ms: start, end_ms: start + 86_400_000, hr, rr_runs: runs, steps, sleep, ..DayData::default() }
}

fn benches(c: &mut Criterion) {
    let day = a_day();
    let profile = Profile { sex: Sex::Female, age: 38.0, weight_kg: 61.5, height_cm: 168.0, measured_hr_max: None };
    c.bench_function("health-model: one user-day", |b| b.iter(|| summarize(black_box(&day), Some(&profile))));
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
