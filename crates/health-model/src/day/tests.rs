//! `summarize` against the implementation it replaced, on generated days, and what a cached
//! `NightSummary` may ignore.

use super::*;
use crate::Sex;

/// `summarize` as it was before slicing, single passes and the night split: it filters whole
/// vectors and copies the day's samples. Only its HRV differs from the original, on purpose: RR runs
/// are filtered as runs (`hrv::filtered_runs`), not joined into one series.
mod reference {
    use super::*;

    pub fn main_sleep(data: &DayData) -> Option<Vec<(i64, i64, Stage)>> {
        let mut sessions: Vec<Vec<(i64, i64, Stage)>> = Vec::new();
        for &seg in &data.sleep {
            match sessions.last_mut() {
                Some(s) if seg.0 - s.last().map_or(seg.0, |l| l.1) <= SESSION_GAP_MS => s.push(seg),
                _ => sessions.push(vec![seg]),
            }
        }
        sessions
            .into_iter()
            .filter(|s| s.last().is_some_and(|l| l.1 > data.start_ms && l.1 <= data.end_ms))
            .max_by_key(|s| s.last().map_or(0, |l| l.1) - s.first().map_or(0, |f| f.0))
    }

    fn per_minute_hr(hr: &[(i64, f64)], from: i64, to: i64) -> Vec<Option<f64>> {
        let minutes = ((to - from).max(0) / 60_000) as usize;
        let mut sum = vec![0.0; minutes];
        let mut n = vec![0u32; minutes];
        for &(t, bpm) in hr.iter().filter(|(t, _)| *t >= from && *t < to) {
            let m = ((t - from) / 60_000) as usize;
            if m < minutes {
                sum[m] += bpm;
                n[m] += 1;
            }
        }
        sum.into_iter().zip(n).map(|(s, n)| (n > 0).then(|| s / f64::from(n))).collect()
    }

    fn per_minute_steps(steps: &[StepEpoch], from: i64, to: i64) -> Vec<f64> {
        let minutes = ((to - from).max(0) / 60_000) as usize;
        let mut out = vec![0.0; minutes];
        for e in steps {
            let span = (e.duration_s / 60.0).ceil().max(1.0) as i64;
            for k in 0..span {
                let t = e.start_ms + k * 60_000;
                if t >= from && t < to {
                    let m = ((t - from) / 60_000) as usize;
                    if m < minutes {
                        out[m] += e.steps / span as f64;
                    }
                }
            }
        }
        out
    }

    fn hr_durations(hr: &[(i64, f64)], from: i64, to: i64) -> Vec<(f64, f64)> {
        let day: Vec<(i64, f64)> = hr.iter().copied().filter(|(t, _)| *t >= from && *t < to).collect();
        let mut out = Vec::with_capacity(day.len());
        for (i, &(t, bpm)) in day.iter().enumerate() {
            let gap = match day.get(i + 1) {
                Some(&(next, _)) => next - t,
                None => i.checked_sub(1).map_or(MAX_SAMPLE_MS, |p| t - day[p].0),
            };
            out.push((bpm, gap.clamp(0, MAX_SAMPLE_MS) as f64 / 1000.0));
        }
        out
    }

    pub fn summarize(data: &DayData, profile: Option<&Profile>) -> DaySummary {
        let (from, to) = (data.start_ms, data.end_ms);
        let minute_hr = per_minute_hr(&data.hr, from, to);
        let minute_steps = per_minute_steps(&data.steps, from, to);
        let day_steps: Vec<&StepEpoch> = data.steps.iter().filter(|e| e.start_ms >= from && e.start_ms < to).collect();

        let night = main_sleep(data);
        let sleep_stats = night.as_ref().and_then(|s| {
            let origin = s.first().map_or(0, |f| f.0);
            let minutes: Vec<(f64, f64, Stage)> = s
                .iter()
                .map(|&(a, b, st)| ((a - origin) as f64 / 60_000.0, (b - origin) as f64 / 60_000.0, st))
                .collect();
            sleep::stats(&minutes)
        });
        let night_span = night.as_ref().and_then(|s| Some((s.first()?.0, s.last()?.1)));
        let (resting_hr, resting_hr_method) = match night_span.and_then(|(a, b)| {
            resting::from_sleep(&per_minute_hr(&data.hr, a, b).into_iter().flatten().collect::<Vec<_>>())
        }) {
            Some(r) => (Some(r), Some(RestingHrMethod::Sleep)),
            None => {
                let minutes: Vec<(Option<f64>, u32)> =
                    minute_hr.iter().zip(&minute_steps).map(|(h, s)| (*h, s.round() as u32)).collect();
                match resting::from_inactivity(&minutes) {
                    Some(r) => (Some(r), Some(RestingHrMethod::Inactivity)),
                    None => (None, None),
                }
            }
        };
        let hrv = night_span.and_then(|(a, b)| {
            let runs: Vec<&[f64]> = data
                .rr_runs
                .iter()
                .filter(|(first, _)| *first >= a && *first < b)
                .map(|(_, rr)| rr.as_slice())
                .collect();
            let filtered = hrv::filtered_runs(&runs)?;
            let verdicts: Vec<bool> = runs.iter().flat_map(|run| hrv::beat_verdicts(run)).collect();
            let valid_ms: f64 =
                runs.iter().flat_map(|run| run.iter()).zip(&verdicts).filter(|(_, v)| **v).map(|(rr, _)| rr).sum();
            Some(DayHrv { rr_coverage: (valid_ms / (b - a).max(1) as f64).min(1.0), filtered })
        });

        let sustained = load::highest_sustained_hr(
            &data.hr.iter().copied().filter(|(t, _)| *t >= from && *t < to).collect::<Vec<_>>(),
            60.0,
        );
        let hr_max = profile.map(|p| load::hr_max_used(p.measured_hr_max, p.age, sustained));
        let samples = hr_durations(&data.hr, from, to);
        let with_rest = hr_max.zip(resting_hr).filter(|(max, rest)| max > rest);
        let zone_minutes = with_rest.map(|(max, rest)| load::zone_minutes(&samples, rest, max));
        let banister_trimp =
            with_rest.zip(profile).map(|((max, rest), p)| load::banister_trimp(&samples, rest, max, p.sex));
        let edwards_trimp = hr_max.map(|max| load::edwards_trimp(&samples, max));

        let (mut moderate, mut vigorous) = (0u32, 0u32);
        for (hr, cadence) in minute_hr.iter().zip(&minute_steps) {
            let zone = match (hr, with_rest) {
                (Some(h), Some((max, rest))) => load::zone(*h, rest, max),
                _ => 0,
            };
            if *cadence >= 130.0 || zone >= 4 {
                vigorous += 1;
            } else if *cadence >= 100.0 || zone >= 3 {
                moderate += 1;
            }
        }

        let (bmr_kcal, active_kcal, energy_kcal) = match (profile, with_rest) {
            (Some(p), Some((max, rest))) => {
                let bmr_day = energy::bmr_kcal_per_day(p.sex, p.weight_kg, p.height_cm, p.age);
                let per_minute = bmr_day / 1440.0;
                let (mut active, mut total) = (0.0, 0.0);
                for hr in &minute_hr {
                    match hr {
                        Some(h) if load::karvonen_x(*h, rest, max) >= 0.3 => {
                            let k = energy::keytel_kcal_per_min(p.sex, *h, p.weight_kg, p.age).max(per_minute);
                            active += k;
                            total += k;
                        }
                        _ => total += per_minute,
                    }
                }
                (Some(bmr_day), Some(active), Some(total))
            }
            (Some(p), None) => {
                let bmr_day = energy::bmr_kcal_per_day(p.sex, p.weight_kg, p.height_cm, p.age);
                (Some(bmr_day), None, Some(bmr_day * minute_hr.len() as f64 / 1440.0))
            }
            _ => (None, None, None),
        };

        let off_wrist = off_wrist_minutes(&data.wear, from, minute_hr.len());
        let mut wear = 0u32;
        let mut run = 0usize;
        for (m, (hr, steps)) in minute_hr.iter().zip(&minute_steps).enumerate() {
            if off_wrist[m] {
                if run < NON_WEAR_RUN_MIN {
                    wear += run as u32;
                }
                run = 0;
            } else if hr.is_none() && *steps == 0.0 {
                run += 1;
            } else {
                if run < NON_WEAR_RUN_MIN {
                    wear += run as u32;
                }
                run = 0;
                wear += 1;
            }
        }
        if run < NON_WEAR_RUN_MIN {
            wear += run as u32;
        }
        let spo2_night = night_span.and_then(|(a, b)| {
            let values: Vec<f64> = data.spo2.iter().filter(|(t, _)| *t >= a && *t < b).map(|s| s.1).collect();
            let min = values.iter().copied().reduce(f64::min)?;
            Some(Spo2Night {
                mean: values.iter().sum::<f64>() / values.len() as f64,
                min,
                samples: values.len() as u32,
            })
        });
        let skin_temperature_deviation_c =
            data.skin_temperature.iter().filter(|(t, _)| *t > from && *t <= to).map(|s| s.1).next_back();
        let day_minutes = minute_hr.len().max(1) as f64;
        let quality = DataQuality {
            hr_samples: data.hr.iter().filter(|(t, _)| *t >= from && *t < to).count() as u32,
            rr_intervals: data.rr_runs.iter().filter(|(t, _)| *t >= from && *t < to).map(|(_, r)| r.len() as u32).sum(),
            step_epochs: day_steps.len() as u32,
            wear_minutes: wear,
            off_wrist_minutes: off_wrist.iter().filter(|m| **m).count() as u32,
            coverage_pct: 100.0 * f64::from(wear) / day_minutes,
            low_coverage: wear < LOW_COVERAGE_WEAR_MIN,
        };

        DaySummary {
            steps: day_steps.iter().map(|e| e.steps).sum(),
            distance_m: day_steps.iter().map(|e| e.distance_m).sum(),
            moderate_minutes: moderate,
            vigorous_minutes: vigorous,
            resting_hr,
            resting_hr_method,
            hr_max,
            zone_minutes,
            banister_trimp,
            edwards_trimp,
            bmr_kcal,
            active_kcal,
            energy_kcal,
            hrv,
            sleep: sleep_stats,
            spo2_night,
            skin_temperature_deviation_c,
            quality,
        }
    }
}

/// Deterministic pseudo-random numbers below `n` (an LCG; no dependency for a test).
fn lcg(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed;
    move |n| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n.max(1)
    }
}

const HOUR: i64 = 3_600_000;

/// A day with what real ones have: the evening before, gaps in HR (non-wear), mostly whole-bpm HR
/// with some fractional, RR runs with artifacts, step epochs of several lengths (some reaching into
/// the day from before it), zero to three sleep sessions, SpO2, wear events, skin temperature.
fn random_day(next: &mut impl FnMut(u64) -> u64) -> DayData {
    let start = 1_772_409_600_000 + next(48) as i64 * 900_000;
    let end = start + [23, 24, 25][next(3) as usize] * HOUR;
    let from = start - NIGHT_LOOKBACK_MS - HOUR;

    let mut hr = Vec::new();
    let mut t = from + next(60_000) as i64;
    while t < end + HOUR {
        let bpm = match next(30) {
            0 => 40.0 + next(1600) as f64 / 10.0,
            _ => 45.0 + next(150) as f64,
        };
        hr.push((t, bpm));
        t += match next(400) {
            0 => next(3 * HOUR as u64) as i64,
            _ => 1_000 + next(30_000) as i64,
        };
    }

    let mut rr_runs = Vec::new();
    let mut t = start - 8 * HOUR + next(HOUR as u64) as i64;
    while t < end {
        let base = 600.0 + next(500) as f64;
        let rr: Vec<f64> = (0..next(300))
            .map(|_| match next(60) {
                0 => base * 2.0,
                1 => next(300) as f64,
                _ => base + next(60) as f64,
            })
            .collect();
        let duration: f64 = rr.iter().sum();
        rr_runs.push((t, rr));
        t += duration as i64 + next(HOUR as u64 / 2) as i64;
    }

    let mut steps = Vec::new();
    let mut t = from - 2 * HOUR;
    while t < end + HOUR {
        let duration_s = [60.0, 60.0, 300.0, 3_600.0, 90.0][next(5) as usize];
        let count = if next(4) == 0 { 0.0 } else { next(200) as f64 + [0.0, 0.5][next(2) as usize] };
        steps.push(StepEpoch { start_ms: t, duration_s, steps: count, distance_m: count * 0.7 });
        t += (duration_s * 1000.0) as i64 + [0, 60_000, 7_200_000][next(3) as usize];
    }
    // Epochs that straddle the day's start and end, on and off the minute grid.
    for edge in [start, end] {
        let start_ms = edge - [60_000, 1_800_000, 45_000, 0][next(4) as usize];
        steps.push(StepEpoch {
            start_ms,
            duration_s: [3_600.0, 250.0][next(2) as usize],
            steps: 1_000.0,
            distance_m: 0.0,
        });
    }
    steps.sort_by_key(|e| e.start_ms);

    let stages = [Stage::Awake, Stage::Light, Stage::Deep, Stage::Rem];
    let mut sleep = Vec::new();
    let mut t = start - NIGHT_LOOKBACK_MS + next(20 * HOUR as u64) as i64;
    for _ in 0..next(4) {
        for _ in 0..1 + next(30) {
            let length = 60_000 * (1 + next(40) as i64);
            sleep.push((t, t + length, stages[next(4) as usize]));
            t += length + [0, 0, 0, 600_000, 2_400_000][next(5) as usize];
        }
        t += next(10 * HOUR as u64) as i64;
    }

    let spo2 = (0..next(800)).map(|i| (start - 8 * HOUR + i as i64 * 60_000, 90.0 + next(10) as f64)).collect();
    let mut wear: Vec<(i64, bool)> =
        (0..next(6)).map(|_| (from + next((end - from) as u64) as i64, next(2) == 0)).collect();
    wear.sort_by_key(|w| w.0);
    let skin_temperature = (0..next(3)).map(|_| (start + next(30 * HOUR as u64) as i64 - 3 * HOUR, 0.1)).collect();

    DayData { start_ms: start, end_ms: end, hr, rr_runs, steps, sleep, spo2, skin_temperature, wear }
}

fn profiles() -> [Option<Profile>; 4] {
    let female = Profile { sex: Sex::Female, age: 38.0, weight_kg: 61.5, height_cm: 168.0, measured_hr_max: None };
    [
        None,
        Some(female.clone()),
        Some(Profile { sex: Sex::Male, age: 52.0, weight_kg: 82.0, height_cm: 181.0, measured_hr_max: Some(171.0) }),
        // HRmax below any resting HR: no reserve, so no zones or Banister TRIMP.
        Some(Profile { measured_hr_max: Some(40.0), ..female }),
    ]
}

/// Debug output tells every f64 bit pattern apart (−0.0, −∞ included), so equal text is a bit-for-bit
/// equal summary.
fn bits(summary: &DaySummary) -> String {
    format!("{summary:?}")
}

#[test]
fn summarize_is_bit_identical_to_the_reference() {
    let mut next = lcg(3);
    let mut days: Vec<DayData> = (0..30).map(|_| random_day(&mut next)).collect();
    // Edge cases: no data at all, one HR sample, a night with no RR or SpO2.
    let start = days[0].start_ms;
    days.push(DayData { start_ms: start, end_ms: start + 24 * HOUR, ..DayData::default() });
    days.push(DayData { hr: vec![(start + 5, 70.0)], ..days[days.len() - 1].clone() });
    days.push(DayData { rr_runs: Vec::new(), spo2: Vec::new(), ..days[0].clone() });
    let mut with_sleep = 0;
    for (i, day) in days.iter().enumerate() {
        let night = night_summary(day);
        with_sleep += usize::from(night.span().is_some());
        assert_eq!(night.span(), reference::main_sleep(day).map(|s| (s[0].0, s[s.len() - 1].1)), "day {i}");
        assert_eq!(main_sleep(day), reference::main_sleep(day), "day {i}");
        for profile in profiles() {
            let expected = bits(&reference::summarize(day, profile.as_ref()));
            assert_eq!(bits(&summarize(day, profile.as_ref())), expected, "day {i}, {profile:?}");
            assert_eq!(bits(&summarize_with_night(day, &night, profile.as_ref())), expected, "day {i}");
        }
    }
    // The generator must exercise both paths of the resting HR.
    assert!(with_sleep > 5 && with_sleep < days.len() - 5, "{with_sleep} of {} days with a main sleep", days.len());
}

#[test]
fn a_cached_night_stays_valid_while_only_other_inputs_change() {
    // Everything NightSummary does not list among its inputs is changed: steps, wear, skin
    // temperature, and HR, RR runs and SpO2 outside the main-sleep span. The cached night then
    // still gives what a fresh one gives.
    let mut next = lcg(4);
    let mut checked = 0;
    for i in 0..40 {
        let day = random_day(&mut next);
        let night = night_summary(&day);
        let Some((a, b)) = night.span() else { continue };
        let other = random_day(&mut next);
        let outside = |t: i64| t < a || t >= b;
        let mut changed = DayData {
            steps: other.steps.clone(),
            wear: other.wear.clone(),
            skin_temperature: other.skin_temperature.clone(),
            ..day.clone()
        };
        changed.hr.retain(|s| !outside(s.0));
        changed.hr.extend(other.hr.iter().filter(|s| outside(s.0)));
        changed.hr.sort_by_key(|s| s.0);
        changed.rr_runs.retain(|r| !outside(r.0));
        changed.rr_runs.extend(other.rr_runs.iter().filter(|r| outside(r.0)).cloned());
        changed.rr_runs.sort_by_key(|r| r.0);
        changed.spo2.retain(|s| !outside(s.0));
        changed.spo2.extend(other.spo2.iter().filter(|s| outside(s.0)));
        changed.spo2.sort_by_key(|s| s.0);
        assert_ne!(changed, day);

        assert_eq!(night_summary(&changed), night, "day {i}");
        for profile in profiles() {
            let fresh = summarize(&changed, profile.as_ref());
            assert_eq!(bits(&summarize_with_night(&changed, &night, profile.as_ref())), bits(&fresh), "day {i}");
        }
        checked += 1;
    }
    assert!(checked > 5, "only {checked} days had a main sleep");
}

#[test]
fn a_night_without_main_sleep_is_empty() {
    let day = DayData {
        start_ms: 0,
        end_ms: 24 * HOUR,
        sleep: vec![(30 * HOUR, 31 * HOUR, Stage::Light)],
        ..DayData::default()
    };
    let night = night_summary(&day);
    assert_eq!(night, NightSummary::default());
    assert_eq!(night.span(), None);
}

#[test]
fn the_night_hrv_is_filtered_run_by_run() {
    // Two RR blocks in the night: the step from 810 ms to 1000 ms lies across the gap between them
    // and must not count as a successive difference.
    let night = (HOUR, 3 * HOUR);
    let day = DayData {
        start_ms: 0,
        end_ms: 24 * HOUR,
        sleep: vec![(night.0, night.1, Stage::Light)],
        rr_runs: vec![(night.0, vec![800.0, 810.0, 800.0, 810.0]), (night.0 + 60_000, vec![1000.0, 1020.0, 1000.0])],
        ..DayData::default()
    };
    let hrv = summarize(&day, None).hrv.unwrap();
    assert_eq!(hrv.filtered.pnn50, 0.0);
    assert_eq!(hrv.filtered.rmssd, 220.0_f64.sqrt());
    assert_eq!(hrv.rr_coverage, 6240.0 / (2 * HOUR) as f64);
}

#[test]
fn the_summary_does_not_store_per_beat_verdicts() {
    let mut next = lcg(6);
    let day = (0..20).map(|_| random_day(&mut next)).find(|d| summarize(d, None).hrv.is_some()).unwrap();
    let json = serde_json::to_value(summarize(&day, None)).unwrap();
    let hrv = json["hrv"].as_object().unwrap();
    assert!(!hrv.contains_key("valid"), "{hrv:?}");
    for key in ["artifact_share", "window_valid", "mean_nn", "sdnn", "rmssd", "pnn50", "ln_rmssd", "rr_coverage"] {
        assert!(hrv.contains_key(key), "{key} missing from {hrv:?}");
    }
}
