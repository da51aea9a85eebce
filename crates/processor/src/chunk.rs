//! From a DeviceSynced event to its per-local-day chunks: the raw samples of one sync that fall
//! on one local day of the user. A chunk is what the processor stores (compactly, see
//! [`crate::chunk_codec`]) and what a day's canonical sample set is built from. Pure: no I/O.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use events::device_synced::{HrQuality, SleepStage, UtcOffsetSegment, WearState};
use events::DeviceSynced;
use health_model::sleep::Stage;

pub const DAY_MS: i64 = 86_400_000;

// The chunk types live with their stored form in model-schema, so readers can decode it too.
pub use model_schema::samples::{Chunk, HrSample, HrSource, RrRun, SleepSample, StepSample};

/// The UTC offset in force at `t`: the last segment starting at or before it (else the first).
pub fn offset_at(offsets: &[UtcOffsetSegment], t: i64) -> i32 {
    offsets.iter().rev().find(|o| o.start_ms <= t).or(offsets.first()).map_or(0, |o| o.offset_minutes)
}

/// The user's local date of a UTC instant, given the offset in force; None outside chrono's
/// calendar (the caller's time bound rejects such events before they get here).
pub fn local_date(t: i64, offset_minutes: i32) -> Option<NaiveDate> {
    let days = t.checked_add(i64::from(offset_minutes) * 60_000)?.div_euclid(DAY_MS);
    NaiveDate::from_num_days_from_ce_opt(i32::try_from(days.checked_add(719_163)?).ok()?)
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

fn hr_source(q: Option<&HrQuality>) -> HrSource {
    match q {
        Some(HrQuality::Strap) => HrSource::Strap,
        Some(HrQuality::Unlocked) => HrSource::OpticalUnlocked,
        Some(HrQuality::Locked) | None => HrSource::OpticalLocked,
    }
}

/// One local day of an event: the offset in force at its first sample, and its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct DayChunk {
    pub offset_minutes: i32,
    pub chunk: Chunk,
}

/// Every sample time of an event, in the order the event lists them; for the time bound.
pub fn sample_times(event: &DeviceSynced) -> impl Iterator<Item = Option<i64>> + '_ {
    fn running(start: i64, deltas: &[i64]) -> impl Iterator<Item = Option<i64>> + '_ {
        deltas.iter().scan(Some(start), |t, d| {
            *t = t.and_then(|t| t.checked_add(*d));
            Some(*t)
        })
    }
    let start = event.window_start_ms;
    running(start, &event.heart_rate.time_deltas_ms)
        .chain(running(start, &event.steps.start_deltas_ms))
        .chain(event.spo2.iter().flat_map(move |s| running(start, &s.time_deltas_ms)))
        .chain(event.rr_blocks.iter().map(|b| Some(b.first_beat_ms)))
        .chain(event.sleep.iter().flat_map(|s| [Some(s.start_ms), Some(s.end_ms)]))
        .chain(event.skin_temperature.iter().map(|s| Some(s.night_end_ms)))
        .chain(event.wear_events.iter().map(|w| Some(w.time_ms)))
        .chain([Some(event.window_start_ms), Some(event.window_end_ms)])
}

/// Every sample of an event must lie within `max_days` of the time ingest-api accepted it (a
/// clock it controls, unlike the phone's). Past that the event is unusable: its dates would
/// stretch the user's series without bound, or leave the calendar.
pub fn check_sample_times(event: &DeviceSynced, max_days: u64) -> Result<(), String> {
    let reach = i64::try_from(max_days).unwrap_or(i64::MAX).saturating_mul(DAY_MS);
    let (lo, hi) = (event.ingested_at.saturating_sub(reach), event.ingested_at.saturating_add(reach));
    for t in sample_times(event) {
        match t {
            Some(t) if (lo..=hi).contains(&t) => {}
            Some(t) => {
                return Err(format!(
                    "a sample at {t} ms lies more than {max_days} days (PROCESSOR_MAX_SERIES_DAYS) from the \
                     ingest time {} ms",
                    event.ingested_at
                ))
            }
            None => return Err("sample times overflow".into()),
        }
    }
    Ok(())
}

/// Splits an event's samples into local days, each with the offset in force at its first
/// sample. Samples whose time cannot be represented are left out; the time bound dead-letters
/// such events before they get here.
pub fn chunks_of(event: &DeviceSynced) -> BTreeMap<NaiveDate, DayChunk> {
    let offsets = &event.time_zone.offsets;
    let mut out: BTreeMap<NaiveDate, DayChunk> = BTreeMap::new();
    fn chunk_at<'a>(
        out: &'a mut BTreeMap<NaiveDate, DayChunk>,
        offsets: &[UtcOffsetSegment],
        t: i64,
    ) -> Option<&'a mut Chunk> {
        let offset = offset_at(offsets, t);
        let date = local_date(t, offset)?;
        Some(&mut out.entry(date).or_insert_with(|| DayChunk { offset_minutes: offset, chunk: Chunk::default() }).chunk)
    }
    let mut t = event.window_start_ms;
    for (i, d) in event.heart_rate.time_deltas_ms.iter().enumerate() {
        t = t.saturating_add(*d);
        if let Some(c) = chunk_at(&mut out, offsets, t) {
            let bpm = event.heart_rate.bpm.get(i).copied().unwrap_or_default();
            c.hr.push(HrSample { t, bpm, source: hr_source(event.heart_rate.quality.get(i)) });
        }
    }
    for block in &event.rr_blocks {
        if let Some(c) = chunk_at(&mut out, offsets, block.first_beat_ms) {
            c.rr.push(RrRun { first_beat_ms: block.first_beat_ms, intervals_ms: block.intervals_ms.clone() });
        }
    }
    let s = &event.steps;
    let mut t = event.window_start_ms;
    for (i, d) in s.start_deltas_ms.iter().enumerate() {
        t = t.saturating_add(*d);
        if let Some(c) = chunk_at(&mut out, offsets, t) {
            c.steps.push(StepSample {
                t,
                duration_s: s.duration_s.get(i).copied().unwrap_or(60),
                steps: s.steps.get(i).copied().unwrap_or(0),
                distance_m: s.distance_m.get(i).copied().unwrap_or(0.0),
            });
        }
    }
    for seg in &event.sleep {
        if let Some(c) = chunk_at(&mut out, offsets, seg.start_ms) {
            c.sleep.push(SleepSample { start_ms: seg.start_ms, end_ms: seg.end_ms, stage: stage(seg.stage) });
        }
    }
    if let Some(spo2) = &event.spo2 {
        let mut t = event.window_start_ms;
        for (d, &percent) in spo2.time_deltas_ms.iter().zip(&spo2.percent) {
            t = t.saturating_add(*d);
            if let Some(c) = chunk_at(&mut out, offsets, t) {
                c.spo2.push((t, percent));
            }
        }
    }
    for night in &event.skin_temperature {
        if let Some(c) = chunk_at(&mut out, offsets, night.night_end_ms) {
            c.skin_temperature.push((night.night_end_ms, night.deviation_c));
        }
    }
    for w in &event.wear_events {
        if let Some(c) = chunk_at(&mut out, offsets, w.time_ms) {
            c.wear.push((w.time_ms, w.state == WearState::OnWrist));
        }
    }
    for day in out.values_mut() {
        day.chunk.sort();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_dates_follow_the_offset_in_force() {
        // 2026-03-01T23:30Z is already March 2nd in Berlin (+60).
        let t = 1_772_407_800_000;
        assert_eq!(local_date(t, 0), NaiveDate::from_ymd_opt(2026, 3, 1));
        assert_eq!(local_date(t, 60), NaiveDate::from_ymd_opt(2026, 3, 2));
        assert_eq!(local_midnight_ms(NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(), 60), 1_772_406_000_000);
        let offsets = [
            UtcOffsetSegment { start_ms: 0, offset_minutes: 60 },
            UtcOffsetSegment { start_ms: t, offset_minutes: 120 },
        ];
        assert_eq!((offset_at(&offsets, t - 1), offset_at(&offsets, t), offset_at(&offsets, -5)), (60, 120, 60));
    }

    #[test]
    fn dates_outside_the_calendar_are_none_not_a_panic() {
        assert_eq!(local_date(i64::MAX, 0), None);
        assert_eq!(local_date(i64::MAX - 1, 600), None);
        // The year 300,000 is past chrono's calendar (which ends in 262,143).
        assert_eq!(local_date(9_404_000_000_000_000, 0), None);
    }

    #[test]
    fn samples_far_from_the_ingest_time_are_out_of_bounds() {
        let mut event = testkit::sample_device_synced("u", "d");
        assert_eq!(check_sample_times(&event, 1096), Ok(()));
        // A phone clock in the year 200,000: inside chrono's calendar, but 73 million days away.
        event.window_start_ms = 6_249_223_680_000_000;
        let err = check_sample_times(&event, 1096).unwrap_err();
        assert!(err.contains("PROCESSOR_MAX_SERIES_DAYS"), "{err}");
        event.window_start_ms = i64::MAX - 10;
        assert!(check_sample_times(&event, 1096).is_err());
    }
}
