//! One local day of one user: from cleaned samples to the per-day outputs of the model.
//!
//! The caller (the processor) deduplicates samples and buckets them into the user's local days
//! with the UTC offset in force at each sample; this module only computes. The main sleep that
//! *ends* on a day belongs to that day (a night spans midnight), so the caller passes samples from
//! `start_ms - NIGHT_LOOKBACK_MS` on. What derives from that night alone is a [`NightSummary`], which
//! a caller may keep and pass to [`summarize_with_night`] while only the day's other data change.

use serde::{Deserialize, Serialize};

use crate::sleep::{SleepStats, Stage};
use crate::{energy, hrv, load, resting, sleep, Profile};

/// How far before local midnight the previous evening's data is needed (the night's start).
pub const NIGHT_LOOKBACK_MS: i64 = 18 * 3_600_000;
/// Segments closer than this belong to one sleep session.
const SESSION_GAP_MS: i64 = 30 * 60_000;
/// Longest time one heart-rate sample stands for (optical sensors sample every 1 to 15 s).
const MAX_SAMPLE_MS: i64 = 15_000;
/// Troiano-style non-wear: this many minutes without HR and with zero steps.
const NON_WEAR_RUN_MIN: usize = 60;
/// A day with less wear than this is low-coverage.
const LOW_COVERAGE_WEAR_MIN: u32 = 600;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepEpoch {
    pub start_ms: i64,
    pub duration_s: f64,
    pub steps: f64,
    pub distance_m: f64,
}

/// The cleaned data of one day, plus the evening before it (for the night).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DayData {
    /// Local midnight at the start of the day, and at its end, in UTC ms (23 to 25 h apart).
    pub start_ms: i64,
    pub end_ms: i64,
    /// (time, bpm), sorted, deduplicated.
    pub hr: Vec<(i64, f64)>,
    /// Runs of consecutive beats: (time of the first beat, intervals in ms).
    pub rr_runs: Vec<(i64, Vec<f64>)>,
    pub steps: Vec<StepEpoch>,
    /// (start, end, stage), sorted.
    pub sleep: Vec<(i64, i64, Stage)>,
    /// (time, SpO2 %), sorted (DeviceSynced v2; empty from older trackers).
    pub spo2: Vec<(i64, f64)>,
    /// (end of the night, skin-temperature deviation °C) (v2).
    pub skin_temperature: Vec<(i64, f64)>,
    /// (time, on wrist?) wear-state changes, sorted (v2).
    pub wear: Vec<(i64, bool)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestingHrMethod {
    /// Minimum 5-minute mean over the main sleep.
    Sleep,
    /// Mean HR of minutes after 12 minutes without steps (Mishra et al. 2020).
    Inactivity,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DayHrv {
    #[serde(flatten)]
    pub filtered: hrv::FilteredHrv,
    /// Share of the main sleep covered by valid beats.
    pub rr_coverage: f64,
}

/// SpO2 over the main sleep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spo2Night {
    pub mean: f64,
    pub min: f64,
    pub samples: u32,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DataQuality {
    pub hr_samples: u32,
    pub rr_intervals: u32,
    pub step_epochs: u32,
    pub wear_minutes: u32,
    /// Minutes the tracker reported itself off the wrist (v2 wear events).
    pub off_wrist_minutes: u32,
    pub coverage_pct: f64,
    pub low_coverage: bool,
}

/// The per-day outputs; `None` where the data (or the profile) does not allow a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaySummary {
    pub steps: f64,
    pub distance_m: f64,
    pub moderate_minutes: u32,
    pub vigorous_minutes: u32,
    pub resting_hr: Option<f64>,
    pub resting_hr_method: Option<RestingHrMethod>,
    pub hr_max: Option<f64>,
    pub zone_minutes: Option<[f64; 5]>,
    pub banister_trimp: Option<f64>,
    pub edwards_trimp: Option<f64>,
    pub bmr_kcal: Option<f64>,
    pub active_kcal: Option<f64>,
    pub energy_kcal: Option<f64>,
    pub hrv: Option<DayHrv>,
    pub sleep: Option<SleepStats>,
    /// SpO2 night mean and minimum (None without SpO2 data: older trackers, v1 events).
    pub spo2_night: Option<Spo2Night>,
    /// The night's skin-temperature deviation (None without data).
    pub skin_temperature_deviation_c: Option<f64>,
    pub quality: DataQuality,
}

impl DaySummary {
    /// The day's training load for the rolling series (Banister TRIMP; 0 without one).
    pub fn load(&self) -> f64 {
        self.banister_trimp.unwrap_or(0.0)
    }
}

/// The main sleep of the day: the longest session of segments that ends within the day.
pub fn main_sleep(data: &DayData) -> Option<Vec<(i64, i64, Stage)>> {
    main_sleep_segments(data).map(<[_]>::to_vec)
}

/// [`main_sleep`] as a slice of `data.sleep`: sessions are runs of sorted segments, each starting at
/// most [`SESSION_GAP_MS`] after the previous one ended. Of equally long sessions the last wins.
fn main_sleep_segments(data: &DayData) -> Option<&[(i64, i64, Stage)]> {
    let ends_within_day = |session: &[(i64, i64, Stage)]| {
        session.last().is_some_and(|last| last.1 > data.start_ms && last.1 <= data.end_ms)
    };
    let duration =
        |session: &[(i64, i64, Stage)]| session.last().map_or(0, |l| l.1) - session.first().map_or(0, |f| f.0);
    data.sleep
        .chunk_by(|previous, next| next.0 - previous.1 <= SESSION_GAP_MS)
        .filter(|session| ends_within_day(session))
        .max_by_key(|session| duration(session))
}

/// The part of `samples` (sorted by time) with time in [from, to).
fn between<T>(samples: &[T], from: i64, to: i64, time: impl Fn(&T) -> i64) -> &[T] {
    let first = samples.partition_point(|s| time(s) < from);
    let end = first + samples[first..].partition_point(|s| time(s) < to);
    &samples[first..end]
}

/// Mean HR per minute from `from`, over samples of [from, to), `None` for minutes without a sample.
fn per_minute_hr(hr: &[(i64, f64)], from: i64, to: i64) -> Vec<Option<f64>> {
    let minutes = ((to - from).max(0) / 60_000) as usize;
    let mut sum = vec![0.0; minutes];
    let mut n = vec![0u32; minutes];
    for &(t, bpm) in between(hr, from, to, |s| s.0) {
        let m = ((t - from) / 60_000) as usize;
        if m < minutes {
            sum[m] += bpm;
            n[m] += 1;
        }
    }
    sum.into_iter().zip(n).map(|(s, n)| (n > 0).then(|| s / f64::from(n))).collect()
}

/// Steps per minute over [from, to), spreading each epoch evenly over its minutes.
fn per_minute_steps(steps: &[StepEpoch], from: i64, to: i64) -> Vec<f64> {
    let minutes = ((to - from).max(0) / 60_000) as usize;
    let mut out = vec![0.0; minutes];
    for e in steps {
        let span = (e.duration_s / 60.0).ceil().max(1.0) as i64;
        // Only the epoch's minutes that start within [from, to), found without walking the others.
        let first = if e.start_ms >= from { 0 } else { (from - e.start_ms + 59_999) / 60_000 };
        for k in first..span {
            let t = e.start_ms + k * 60_000;
            if t >= to {
                break;
            }
            let m = ((t - from) / 60_000) as usize;
            if m < minutes {
                out[m] += e.steps / span as f64;
            }
        }
    }
    out
}

/// (bpm, duration s) of the day's samples: each stands until the next, at most 15 s; the last stands
/// as long as the gap before it.
fn hr_durations(day_hr: &[(i64, f64)]) -> Vec<(f64, f64)> {
    let seconds = |gap: i64| gap.clamp(0, MAX_SAMPLE_MS) as f64 / 1000.0;
    let mut out: Vec<(f64, f64)> = day_hr.windows(2).map(|w| (w[0].1, seconds(w[1].0 - w[0].0))).collect();
    if let Some(&(t, bpm)) = day_hr.last() {
        let gap = day_hr.len().checked_sub(2).map_or(MAX_SAMPLE_MS, |p| t - day_hr[p].0);
        out.push((bpm, seconds(gap)));
    }
    out
}

/// What a day's outputs take from its main sleep alone, so a caller can keep it while only the day's
/// other data change.
///
/// It depends on exactly these inputs, and on nothing else (not on steps, wear, skin temperature,
/// the profile, or HR, RR and SpO2 outside the span):
/// - `start_ms` and `end_ms` (the main sleep is the longest session ending in (start_ms, end_ms]);
/// - the sleep segments (`sleep`: the caller passes those starting in
///   [start_ms - NIGHT_LOOKBACK_MS, end_ms));
/// - inside the main-sleep span [`NightSummary::span`] = [a, b): the HR samples with time in [a, b),
///   the RR runs whose first beat lies in [a, b) (whole runs, even beats past b), and the SpO2
///   samples with time in [a, b).
///
/// So a cached one stays valid until a segment in that range, or an HR, RR or SpO2 sample inside the
/// cached span, is added, revised or removed; without a main sleep (`span()` None) only segments
/// matter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NightSummary {
    span: Option<(i64, i64)>,
    sleep: Option<SleepStats>,
    /// Resting HR by [`RestingHrMethod::Sleep`]; without it the day falls back to inactivity.
    resting_hr: Option<f64>,
    hrv: Option<DayHrv>,
    spo2: Option<Spo2Night>,
}

impl NightSummary {
    /// The main sleep, from the start of its first segment to the end of its last (UTC ms); None
    /// without a main sleep.
    pub fn span(&self) -> Option<(i64, i64)> {
        self.span
    }
}

/// The night-derived outputs of a day; see [`NightSummary`] for what they depend on.
pub fn night_summary(data: &DayData) -> NightSummary {
    let Some(segments) = main_sleep_segments(data) else { return NightSummary::default() };
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else { return NightSummary::default() };
    let (a, b) = (first.0, last.1);

    let minutes: Vec<(f64, f64, Stage)> =
        segments.iter().map(|&(s, e, st)| ((s - a) as f64 / 60_000.0, (e - a) as f64 / 60_000.0, st)).collect();
    let resting_hr = resting::from_sleep(&per_minute_hr(&data.hr, a, b).into_iter().flatten().collect::<Vec<_>>());
    let runs: Vec<&[f64]> =
        data.rr_runs.iter().filter(|(first, _)| *first >= a && *first < b).map(|(_, rr)| rr.as_slice()).collect();
    let hrv = hrv::filtered_runs(&runs)
        .map(|filtered| DayHrv { rr_coverage: (filtered.valid_ms / (b - a).max(1) as f64).min(1.0), filtered });
    let spo2 = between(&data.spo2, a, b, |s| s.0);
    let spo2 = spo2.iter().map(|s| s.1).reduce(f64::min).map(|min| Spo2Night {
        mean: spo2.iter().map(|s| s.1).sum::<f64>() / spo2.len() as f64,
        min,
        samples: spo2.len() as u32,
    });
    NightSummary { span: Some((a, b)), sleep: sleep::stats(&minutes), resting_hr, hrv, spo2 }
}

/// The per-day outputs: [`summarize_with_night`] with the day's own [`night_summary`].
pub fn summarize(data: &DayData, profile: Option<&Profile>) -> DaySummary {
    summarize_with_night(data, &night_summary(data), profile)
}

/// The per-day outputs, with the night-derived ones taken from `night` (which must be
/// [`night_summary`] of the same inputs, possibly cached; see [`NightSummary`]).
pub fn summarize_with_night(data: &DayData, night: &NightSummary, profile: Option<&Profile>) -> DaySummary {
    let (from, to) = (data.start_ms, data.end_ms);
    let day_hr = between(&data.hr, from, to, |s| s.0);
    let minute_hr = per_minute_hr(day_hr, from, to);
    let minute_steps = per_minute_steps(&data.steps, from, to);
    let day_steps = || data.steps.iter().filter(|e| e.start_ms >= from && e.start_ms < to);

    let (resting_hr, resting_hr_method) = match night.resting_hr {
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

    // HR-based load and energy need HRmax, HRrest and the profile.
    let sustained = load::highest_sustained_hr(day_hr, 60.0);
    let hr_max = profile.map(|p| load::hr_max_used(p.measured_hr_max, p.age, sustained));
    let samples = hr_durations(day_hr);
    let with_rest = hr_max.zip(resting_hr).filter(|(max, rest)| max > rest);
    let zone_minutes = with_rest.map(|(max, rest)| load::zone_minutes(&samples, rest, max));
    let banister_trimp =
        with_rest.zip(profile).map(|((max, rest), p)| load::banister_trimp(&samples, rest, max, p.sex));
    let edwards_trimp = hr_max.map(|max| load::edwards_trimp(&samples, max));
    // Active minutes: Tudor-Locke cadence bands, or HR zones 3 and 4+.
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

    // Energy: BMR pro rata, minutes at x >= 0.3 by Keytel instead.
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

    // Non-wear: minutes the tracker reported off the wrist, plus runs of >= 60 minutes with no
    // HR and zero steps (Troiano) for trackers that do not report it.
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
    let skin_temperature_deviation_c =
        data.skin_temperature.iter().filter(|(t, _)| *t > from && *t <= to).map(|s| s.1).next_back();
    let day_minutes = minute_hr.len().max(1) as f64;
    let quality = DataQuality {
        hr_samples: day_hr.len() as u32,
        rr_intervals: data.rr_runs.iter().filter(|(t, _)| *t >= from && *t < to).map(|(_, r)| r.len() as u32).sum(),
        step_epochs: day_steps().count() as u32,
        wear_minutes: wear,
        off_wrist_minutes: off_wrist.iter().filter(|m| **m).count() as u32,
        coverage_pct: 100.0 * f64::from(wear) / day_minutes,
        low_coverage: wear < LOW_COVERAGE_WEAR_MIN,
    };

    DaySummary {
        steps: day_steps().map(|e| e.steps).sum(),
        distance_m: day_steps().map(|e| e.distance_m).sum(),
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
        hrv: night.hrv,
        sleep: night.sleep,
        spo2_night: night.spo2,
        skin_temperature_deviation_c,
        quality,
    }
}

/// Which minutes of the day (from `from`) lie between an off-wrist event and the next on-wrist
/// one; the state before the day's first event is taken from the events before the day.
fn off_wrist_minutes(wear: &[(i64, bool)], from: i64, minutes: usize) -> Vec<bool> {
    let mut out = vec![false; minutes];
    let mut off_since: Option<i64> = None;
    let mark = |a: i64, b: i64, out: &mut Vec<bool>| {
        let first = ((a - from).max(0) / 60_000) as usize;
        let last = ((b - from).max(0) as usize).div_ceil(60_000).min(minutes);
        for m in out.iter_mut().take(last).skip(first) {
            *m = true;
        }
    };
    for &(t, on_wrist) in wear {
        match (on_wrist, off_since) {
            (false, None) => off_since = Some(t),
            (true, Some(a)) => {
                mark(a, t, &mut out);
                off_since = None;
            }
            _ => {}
        }
    }
    if let Some(a) = off_since {
        mark(a, from + minutes as i64 * 60_000, &mut out);
    }
    out
}

#[cfg(test)]
mod tests;
