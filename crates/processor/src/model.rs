//! From DeviceSynced events to per-local-day chunks, and from a day's chunks back to the cleaned
//! input of the health model (deduplicated, sorted). Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{Datelike, NaiveDate};
use events::device_synced::{SleepStage, UtcOffsetSegment, WearState};
use events::DeviceSynced;
use health_model::day::{DayData, StepEpoch};
use health_model::sleep::Stage;
use serde::{Deserialize, Serialize};

const DAY_MS: i64 = 86_400_000;

/// One sync's samples that fall on one local day, as parallel arrays.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub hr_t: Vec<i64>,
    pub hr_bpm: Vec<i32>,
    /// (first beat, intervals ms)
    pub rr: Vec<(i64, Vec<i32>)>,
    /// (start, duration s, steps, distance m)
    pub steps: Vec<(i64, i32, i32, f32)>,
    /// (start, end, stage)
    pub sleep: Vec<(i64, i64, Stage)>,
    /// (time, SpO2 %), from DeviceSynced v2; absent in chunks of v1 events.
    #[serde(default)]
    pub spo2: Vec<(i64, i32)>,
    /// (end of the night, skin-temperature deviation °C), v2.
    #[serde(default)]
    pub skin_temperature: Vec<(i64, f32)>,
    /// (time, on wrist?), v2.
    #[serde(default)]
    pub wear: Vec<(i64, bool)>,
}

impl Chunk {
    pub fn samples(&self) -> usize {
        self.hr_t.len()
            + self.rr.iter().map(|r| r.1.len()).sum::<usize>()
            + self.steps.len()
            + self.sleep.len()
            + self.spo2.len()
            + self.skin_temperature.len()
            + self.wear.len()
    }
}

/// The UTC offset in force at `t`: the last segment starting at or before it (else the first).
pub fn offset_at(offsets: &[UtcOffsetSegment], t: i64) -> i32 {
    offsets.iter().rev().find(|o| o.start_ms <= t).or(offsets.first()).map_or(0, |o| o.offset_minutes)
}

/// The user's local date of a UTC instant, given the offset in force.
pub fn local_date(t: i64, offset_minutes: i32) -> NaiveDate {
    let days = (t + i64::from(offset_minutes) * 60_000).div_euclid(DAY_MS);
    NaiveDate::from_num_days_from_ce_opt(719_163 + days as i32).unwrap_or(NaiveDate::MIN)
}

/// UTC instant of local midnight starting `date`, at the given offset.
pub fn local_midnight_ms(date: NaiveDate, offset_minutes: i32) -> i64 {
    i64::from(date.num_days_from_ce() - 719_163) * DAY_MS - i64::from(offset_minutes) * 60_000
}

fn stage(s: SleepStage) -> Stage {
    match s {
        SleepStage::Awake => Stage::Awake,
        SleepStage::Light => Stage::Light,
        SleepStage::Deep => Stage::Deep,
        SleepStage::Rem => Stage::Rem,
    }
}

/// Splits an event's samples into local days; each with the offset in force at its first sample.
pub fn chunks_of(event: &DeviceSynced) -> BTreeMap<NaiveDate, (i32, Chunk)> {
    let offsets = &event.time_zone.offsets;
    let mut out: BTreeMap<NaiveDate, (i32, Chunk)> = BTreeMap::new();
    fn chunk_at<'a>(
        out: &'a mut BTreeMap<NaiveDate, (i32, Chunk)>,
        offsets: &[UtcOffsetSegment],
        t: i64,
    ) -> &'a mut Chunk {
        let offset = offset_at(offsets, t);
        &mut out.entry(local_date(t, offset)).or_insert_with(|| (offset, Chunk::default())).1
    }
    let mut t = event.window_start_ms;
    for (i, d) in event.heart_rate.time_deltas_ms.iter().enumerate() {
        t += d;
        let c = chunk_at(&mut out, offsets, t);
        c.hr_t.push(t);
        c.hr_bpm.push(event.heart_rate.bpm.get(i).copied().unwrap_or_default());
    }
    for block in &event.rr_blocks {
        chunk_at(&mut out, offsets, block.first_beat_ms).rr.push((block.first_beat_ms, block.intervals_ms.clone()));
    }
    let mut t = event.window_start_ms;
    for (i, d) in event.steps.start_deltas_ms.iter().enumerate() {
        t += d;
        let s = &event.steps;
        let epoch = (
            t,
            s.duration_s.get(i).copied().unwrap_or(60),
            s.steps.get(i).copied().unwrap_or(0),
            s.distance_m.get(i).copied().unwrap_or(0.0),
        );
        chunk_at(&mut out, offsets, t).steps.push(epoch);
    }
    for seg in &event.sleep {
        chunk_at(&mut out, offsets, seg.start_ms).sleep.push((seg.start_ms, seg.end_ms, stage(seg.stage)));
    }
    if let Some(spo2) = &event.spo2 {
        let mut t = event.window_start_ms;
        for (d, &percent) in spo2.time_deltas_ms.iter().zip(&spo2.percent) {
            t += d;
            chunk_at(&mut out, offsets, t).spo2.push((t, percent));
        }
    }
    for night in &event.skin_temperature {
        chunk_at(&mut out, offsets, night.night_end_ms).skin_temperature.push((night.night_end_ms, night.deviation_c));
    }
    for w in &event.wear_events {
        chunk_at(&mut out, offsets, w.time_ms).wear.push((w.time_ms, w.state == WearState::OnWrist));
    }
    out
}

/// The days whose outputs a chunk of `date` can change: the day itself, and the next one (its
/// night starts the evening before).
pub fn affected_days(date: NaiveDate) -> [NaiveDate; 2] {
    [date, date.succ_opt().unwrap_or(date)]
}

/// Builds the model's input for `date` from the chunks of that day and the day before,
/// deduplicating re-sent samples by (device, kind, time). Returns the input, the samples
/// received on the day and the duplicates dropped on it.
pub fn assemble(date: NaiveDate, offset_minutes: i32, chunks: &[(NaiveDate, String, Chunk)]) -> (DayData, u32, u32) {
    let start_ms = local_midnight_ms(date, offset_minutes);
    let mut data = DayData { start_ms, end_ms: start_ms + DAY_MS, ..DayData::default() };
    let from = start_ms - health_model::day::NIGHT_LOOKBACK_MS;
    let (mut received, mut duplicates) = (0u32, 0u32);
    let mut seen: HashSet<(&str, u8, i64)> = HashSet::new();
    // Chunks in a stable order (date, device, then content) so "first wins" does not depend on
    // arrival order.
    let mut ordered: Vec<&(NaiveDate, String, Chunk)> = chunks.iter().collect();
    ordered.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    for (chunk_date, device, chunk) in ordered {
        let on_day = *chunk_date == date;
        let mut keep = |kind: u8, t: i64, n: u32| -> bool {
            let fresh = t >= from && seen.insert((device.as_str(), kind, t));
            if on_day {
                received += n;
                if !fresh && t >= from {
                    duplicates += n;
                }
            }
            fresh
        };
        for (&t, &bpm) in chunk.hr_t.iter().zip(&chunk.hr_bpm) {
            if keep(0, t, 1) {
                data.hr.push((t, f64::from(bpm)));
            }
        }
        for (first, rr) in &chunk.rr {
            if keep(1, *first, rr.len() as u32) {
                data.rr_runs.push((*first, rr.iter().map(|&v| f64::from(v)).collect()));
            }
        }
        for &(t, duration, steps, distance) in &chunk.steps {
            if keep(2, t, 1) {
                data.steps.push(StepEpoch {
                    start_ms: t,
                    duration_s: f64::from(duration),
                    steps: f64::from(steps),
                    distance_m: f64::from(distance),
                });
            }
        }
        for &(a, b, st) in &chunk.sleep {
            if keep(3, a, 1) {
                data.sleep.push((a, b, st));
            }
        }
        for &(t, percent) in &chunk.spo2 {
            if keep(4, t, 1) {
                data.spo2.push((t, f64::from(percent)));
            }
        }
        for &(t, deviation) in &chunk.skin_temperature {
            if keep(5, t, 1) {
                data.skin_temperature.push((t, f64::from(deviation)));
            }
        }
        for &(t, on_wrist) in &chunk.wear {
            if keep(6, t, 1) {
                data.wear.push((t, on_wrist));
            }
        }
    }
    data.hr.sort_by_key(|s| s.0);
    data.rr_runs.sort_by_key(|r| r.0);
    data.steps.sort_by_key(|s| s.start_ms);
    data.sleep.sort_by_key(|s| s.0);
    data.spo2.sort_by_key(|s| s.0);
    data.skin_temperature.sort_by_key(|s| s.0);
    data.wear.sort_by_key(|w| w.0);
    (data, received, duplicates)
}

/// Dense days from the first to the last of `dates`.
pub fn dense_days(dates: &BTreeSet<NaiveDate>) -> Vec<NaiveDate> {
    match (dates.first(), dates.last()) {
        (Some(&first), Some(&last)) => first.iter_days().take_while(|d| *d <= last).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_dates_follow_the_offset_in_force() {
        // 2026-03-01T23:30Z is already March 2nd in Berlin (+60).
        let t = 1_772_407_800_000;
        assert_eq!(local_date(t, 0), NaiveDate::from_ymd_opt(2026, 3, 1).unwrap());
        assert_eq!(local_date(t, 60), NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
        assert_eq!(local_midnight_ms(NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(), 60), 1_772_406_000_000);
        let offsets = [
            UtcOffsetSegment { start_ms: 0, offset_minutes: 60 },
            UtcOffsetSegment { start_ms: t, offset_minutes: 120 },
        ];
        assert_eq!((offset_at(&offsets, t - 1), offset_at(&offsets, t), offset_at(&offsets, -5)), (60, 120, 60));
    }

    #[test]
    fn re_sent_samples_count_once() {
        let date = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let t = local_midnight_ms(date, 0) + 3_600_000;
        let chunk = Chunk { hr_t: vec![t, t + 5_000], hr_bpm: vec![60, 61], ..Chunk::default() };
        let mut overlap = chunk.clone();
        overlap.hr_t.push(t + 10_000);
        overlap.hr_bpm.push(62);
        let chunks = vec![
            (date, "d1".to_owned(), chunk.clone()),
            (date, "d1".to_owned(), overlap),
            (date, "d2".to_owned(), chunk),
        ];
        let (data, received, duplicates) = assemble(date, 0, &chunks);
        // d1 sent t and t+5s twice; d2 is another device, so its samples are its own.
        assert_eq!((data.hr.len(), received, duplicates), (5, 7, 2));
    }
}
