//! The drop rules: times corrected for the skew, then every sample that is not a real reading
//! dropped and counted under its reason. Shared by both parsing paths.
//!
//! Every time sum here is bounded: sample times lie in the window and windows, clocks and workout
//! times in [`TIME_RANGE`](super::TIME_RANGE), so `t + skew` fits; RR beats advance by checked
//! or saturating steps, and a beat pushed past the end of time is simply "in the future".

use events::device_synced::{HrQuality, RrBlock, SkinTemperatureNight, SleepSegment, WearEvent, WearState, Workout};

use super::{
    HeartRateSample, Spo2Sample, StepEpoch, ValidSync, HR_RANGE, MAX_STEPS_PER_MINUTE, RR_RANGE,
    SKIN_TEMPERATURE_RANGE, SPO2_RANGE,
};
use crate::config::Limits;

/// The longest gap an RR interval can stand for: a 16-bit field of milliseconds.
const MAX_RR_GAP_MS: i64 = 65_535;

impl ValidSync {
    fn drop_sample(&mut self, reason: &str) {
        match self.dropped.get_mut(reason) {
            Some(n) => *n += 1,
            None => {
                self.dropped.insert(reason.to_owned(), 1);
            }
        }
    }
}

/// The reason a corrected sample time is dropped, if any: later than the sync time plus the
/// tolerance, or older than the retention window before it.
fn time_check(sync: &ValidSync, limits: &Limits) -> impl Fn(i64) -> Option<&'static str> {
    let latest = sync.phone_time_ms + limits.future_tolerance.as_millis() as i64;
    let oldest = sync.phone_time_ms - limits.max_sample_age.as_millis() as i64;
    move |t| {
        if t > latest {
            Some("time_in_future")
        } else if t < oldest {
            Some("time_too_old")
        } else {
            None
        }
    }
}

/// Corrects times for skew, then drops (and counts) what is not a real reading.
pub(super) fn samples(
    sync: &mut ValidSync,
    mut heart_rate: Vec<(i64, i64, HrQuality)>,
    rr_raw: Vec<(i64, Vec<i64>, bool)>,
    mut steps: Vec<(i64, i32, i64, f32)>,
    mut sleep: Vec<SleepSegment>,
    workouts: Vec<Workout>,
    limits: &Limits,
) {
    let skew = sync.skew_ms;
    let time_check = time_check(sync, limits);

    heart_rate.sort_by_key(|s| s.0);
    let mut last_t = None;
    for (t, bpm, quality) in heart_rate {
        let t = t + skew;
        let reason = if matches!(bpm, -1 | 0 | 255) {
            Some("hr_no_reading")
        } else if !HR_RANGE.contains(&bpm) {
            Some("hr_out_of_range")
        } else if last_t == Some(t) {
            Some("hr_duplicate_timestamp")
        } else {
            time_check(t)
        };
        match reason {
            Some(r) => sync.drop_sample(r),
            None => {
                last_t = Some(t);
                sync.heart_rate.push(HeartRateSample { time_ms: t, bpm: bpm as i32, quality });
            }
        }
    }

    for (first, intervals, per_1024) in rr_raw {
        // A dropped interval ends a run of valid beats; the next run starts where that beat was.
        let mut beat = first + skew;
        let mut run: Vec<i32> = Vec::with_capacity(intervals.len());
        let mut run_start = beat;
        let mut previous_ms = 1000;
        for raw in intervals {
            let no_reading = matches!(raw, -1 | 0 | 0xFFFF);
            // A raw value too large to convert is out of range, never a wrapped one.
            let ms = if per_1024 { raw.checked_mul(1000).map_or(i64::MAX, |x| (x + 512) / 1024) } else { raw };
            let reason = if no_reading {
                Some("rr_no_reading")
            } else if !RR_RANGE.contains(&ms) {
                Some("rr_out_of_range")
            } else {
                time_check(beat.saturating_add(ms))
            };
            // An unknown or absurd interval is estimated by the previous one, to keep later beats
            // placed; a long but possible one (a missed beat) still moves them by itself.
            let step = if no_reading || !(1..=MAX_RR_GAP_MS).contains(&ms) { previous_ms } else { ms };
            match reason {
                Some(r) => {
                    sync.drop_sample(r);
                    if !run.is_empty() {
                        sync.rr_blocks
                            .push(RrBlock { first_beat_ms: run_start, intervals_ms: std::mem::take(&mut run) });
                    }
                    beat = beat.saturating_add(step);
                    run_start = beat;
                }
                None => {
                    run.push(ms as i32);
                    beat += ms; // ms is within RR_RANGE and beat + ms passed the time check
                    previous_ms = ms;
                }
            }
        }
        if !run.is_empty() {
            sync.rr_blocks.push(RrBlock { first_beat_ms: run_start, intervals_ms: run });
        }
    }

    steps.sort_by_key(|s| s.0);
    for (start, duration_s, count, distance) in steps {
        let start = start + skew;
        let max = MAX_STEPS_PER_MINUTE * i64::from(duration_s) / 60;
        let reason = if matches!(count, -1 | 0xFFFF) {
            Some("steps_no_reading")
        } else if count < 0 || count > max.max(1) {
            Some("steps_out_of_range")
        } else {
            time_check(start)
        };
        match reason {
            Some(r) => sync.drop_sample(r),
            None => {
                sync.steps.push(StepEpoch { start_ms: start, duration_s, steps: count as i32, distance_m: distance })
            }
        }
    }

    sleep.sort_by_key(|s| s.start_ms);
    let mut last_end: Option<i64> = None;
    for mut seg in sleep {
        seg.start_ms += skew;
        seg.end_ms += skew;
        let reason = if seg.end_ms <= seg.start_ms {
            Some("sleep_invalid_interval")
        } else if last_end.is_some_and(|end| seg.start_ms < end) {
            Some("sleep_overlap")
        } else {
            time_check(seg.start_ms).or_else(|| time_check(seg.end_ms))
        };
        match reason {
            Some(r) => sync.drop_sample(r),
            None => {
                last_end = Some(seg.end_ms);
                sync.sleep.push(seg);
            }
        }
    }

    for mut w in workouts {
        w.start_ms += skew;
        w.end_ms += skew;
        // A workout or night that ends after the sync has not happened yet.
        let reason = if w.end_ms < w.start_ms {
            Some("workout_invalid_interval")
        } else {
            time_check(w.start_ms).or_else(|| time_check(w.end_ms))
        };
        match reason {
            Some(r) => sync.drop_sample(r),
            None => sync.workouts.push(w),
        }
    }
}

/// The samples DeviceSynced v2 added: SpO2, nightly skin temperature, wear-state events.
pub(super) fn v2_samples(
    sync: &mut ValidSync,
    mut spo2: Vec<(i64, i64)>,
    skin: Vec<(i64, f64)>,
    mut wear: Vec<(i64, WearState)>,
    limits: &Limits,
) {
    let skew = sync.skew_ms;
    let time_check = time_check(sync, limits);
    spo2.sort_by_key(|s| s.0);
    for (t, percent) in spo2 {
        let t = t + skew;
        let reason = if matches!(percent, -1 | 0 | 127 | 255) {
            Some("spo2_no_reading")
        } else if !SPO2_RANGE.contains(&percent) {
            Some("spo2_out_of_range")
        } else {
            time_check(t)
        };
        match reason {
            Some(r) => sync.drop_sample(r),
            None => sync.spo2.push(Spo2Sample { time_ms: t, percent: percent as i32 }),
        }
    }
    for (end, deviation) in skin {
        let end = end + skew;
        let reason = if SKIN_TEMPERATURE_RANGE.contains(&deviation) {
            time_check(end)
        } else {
            Some("skin_temperature_out_of_range")
        };
        match reason {
            Some(r) => sync.drop_sample(r),
            None => {
                sync.skin_temperature.push(SkinTemperatureNight { night_end_ms: end, deviation_c: deviation as f32 })
            }
        }
    }
    wear.sort_by_key(|w| w.0);
    for (t, state) in wear {
        let t = t + skew;
        match time_check(t) {
            Some(r) => sync.drop_sample(r),
            None => sync.wear.push(WearEvent { time_ms: t, state }),
        }
    }
}
