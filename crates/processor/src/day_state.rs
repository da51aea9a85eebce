//! A user-day's canonical sample set: every sample of the day once, sorted by (time, device),
//! kept up to date chunk by chunk, and turned into the health model's input.
//!
//! Order independence (architecture invariant 5) rests on two rules:
//! - a sample is identified by (device, kind, time); when two syncs carry different values for
//!   one identity, the sync with the later phone time wins, then the larger sync id, whatever
//!   arrived first;
//! - heart rate from several devices is merged by source quality (a strap over a band) when the
//!   day is assembled, never by arrival.
//!
//! Memory: values are kept at the width the model can tell apart. Heart rate is 25..=250 bpm
//! after ingest validation, so a byte; RR intervals outside 270..=2000 ms are artefacts to the
//! model whatever their exact value, so they are clamped into u16.

use std::cmp::Ordering;
use std::sync::Arc;

use chrono::NaiveDate;
use health_model::day::{DayData, NightSummary, StepEpoch, NIGHT_LOOKBACK_MS};
use health_model::sleep::Stage;

use crate::chunk::{local_midnight_ms, Chunk, HrSource, DAY_MS};

/// Which sync a sample came from; the greater one wins a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SyncSource {
    pub phone_time_ms: i64,
    pub sync_id: uuid::Uuid,
}

/// One sample of a kind: its identity (time, device), the sync it came from and its value.
#[derive(Debug, Clone, PartialEq)]
struct Entry<V> {
    t: i64,
    device: u16,
    source: u16,
    value: V,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct HrValue {
    bpm: u8,
    quality: HrSource,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct StepValue {
    duration_s: i32,
    steps: i32,
    distance_m: f32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct SleepValue {
    end_ms: i64,
    stage: Stage,
}

/// The day's UTC offset: that in force at its earliest sample.
#[derive(Debug, Clone, Copy, PartialEq)]
struct DayOffset {
    first_sample_ms: i64,
    minutes: i32,
}

#[derive(Debug, Clone, Default)]
pub struct DayState {
    offset: Option<DayOffset>,
    /// Device ids in arrival order (entries refer to them by index) and their rank by id, so
    /// that ordering never depends on arrival.
    devices: Vec<Arc<str>>,
    device_rank: Vec<u16>,
    sources: Vec<SyncSource>,
    hr: Vec<Entry<HrValue>>,
    rr: Vec<Entry<Box<[u16]>>>,
    steps: Vec<Entry<StepValue>>,
    sleep: Vec<Entry<SleepValue>>,
    spo2: Vec<Entry<i32>>,
    skin_temperature: Vec<Entry<f32>>,
    wear: Vec<Entry<bool>>,
    /// Samples of every chunk of the day, re-sends included (an RR interval counts as one).
    received: u32,
    /// The night's results while nothing that feeds them changed.
    pub night: Option<NightSummary>,
}

/// What merging a chunk into its day changed, to decide what to recompute.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ChunkEffect {
    /// The chunk carried sleep segments or wear events, which reach into the next day.
    pub sleep_or_wear: bool,
    /// Earliest and latest sample time of the chunk.
    pub span: Option<(i64, i64)>,
}

impl DayState {
    pub fn is_empty(&self) -> bool {
        self.received == 0
    }

    /// The day's UTC offset, if it has samples of its own.
    pub fn offset_minutes(&self) -> Option<i32> {
        self.offset.map(|o| o.minutes)
    }

    /// Approximate heap bytes, for the cache budget: allocated capacity, not just what is used.
    pub fn bytes(&self) -> usize {
        fn vec<V>(v: &Vec<Entry<V>>) -> usize {
            v.capacity() * size_of::<Entry<V>>()
        }
        size_of::<Self>()
            + self.devices.iter().map(|d| d.len() + 32).sum::<usize>()
            + self.sources.capacity() * size_of::<SyncSource>()
            + vec(&self.hr)
            + vec(&self.rr)
            + self.rr.iter().map(|r| r.value.len() * 2).sum::<usize>()
            + vec(&self.steps)
            + vec(&self.sleep)
            + vec(&self.spo2)
            + vec(&self.skin_temperature)
            + vec(&self.wear)
            + if self.night.is_some() { 512 } else { 0 }
    }

    /// Gives back the room kept for growth, once the day is unlikely to grow (a later day exists).
    pub fn shrink(&mut self) {
        self.sources.shrink_to_fit();
        self.hr.shrink_to_fit();
        self.rr.shrink_to_fit();
        self.steps.shrink_to_fit();
        self.sleep.shrink_to_fit();
        self.spo2.shrink_to_fit();
        self.skin_temperature.shrink_to_fit();
        self.wear.shrink_to_fit();
    }

    /// Start of the earliest sleep segment that starts at or after `t`.
    pub fn first_sleep_from(&self, t: i64) -> Option<i64> {
        self.sleep.iter().find(|s| s.t >= t).map(|s| s.t)
    }

    /// Adds one sync's chunk of this day. Samples already present are replaced only when this
    /// sync wins the conflict rule.
    pub fn merge(&mut self, device_id: &str, source: SyncSource, offset_minutes: i32, chunk: &Chunk) -> ChunkEffect {
        if let Some(first) = chunk.first_time() {
            let candidate = DayOffset { first_sample_ms: first, minutes: offset_minutes };
            // Earliest sample decides; equal times take the smaller offset, so arrival never does.
            let better = self
                .offset
                .is_none_or(|o| (candidate.first_sample_ms, candidate.minutes) < (o.first_sample_ms, o.minutes));
            if better {
                self.offset = Some(candidate);
            }
        }
        self.received = self.received.saturating_add(u32::try_from(chunk.samples()).unwrap_or(u32::MAX));
        let device = self.device_index(device_id);
        let source = self.source_index(source);
        let ctx = MergeContext { device, source, rank: &self.device_rank, sources: &self.sources };
        ctx.merge(
            &mut self.hr,
            chunk.hr.iter().map(|s| (s.t, HrValue { bpm: s.bpm.clamp(0, 255) as u8, quality: s.source })),
        );
        ctx.merge(
            &mut self.rr,
            chunk.rr.iter().map(|r| {
                let intervals: Box<[u16]> =
                    r.intervals_ms.iter().map(|&v| v.clamp(0, i32::from(u16::MAX)) as u16).collect();
                (r.first_beat_ms, intervals)
            }),
        );
        ctx.merge(
            &mut self.steps,
            chunk
                .steps
                .iter()
                .map(|s| (s.t, StepValue { duration_s: s.duration_s, steps: s.steps, distance_m: s.distance_m })),
        );
        ctx.merge(
            &mut self.sleep,
            chunk.sleep.iter().map(|s| (s.start_ms, SleepValue { end_ms: s.end_ms, stage: s.stage })),
        );
        ctx.merge(&mut self.spo2, chunk.spo2.iter().copied());
        ctx.merge(&mut self.skin_temperature, chunk.skin_temperature.iter().copied());
        ctx.merge(&mut self.wear, chunk.wear.iter().copied());
        let last = [
            chunk.hr.last().map(|s| s.t),
            chunk.rr.last().map(|r| r.first_beat_ms + r.intervals_ms.iter().map(|&v| i64::from(v.max(0))).sum::<i64>()),
            chunk.steps.last().map(|s| s.t),
            chunk.sleep.iter().map(|s| s.end_ms).max(),
            chunk.spo2.last().map(|s| s.0),
            chunk.skin_temperature.last().map(|s| s.0),
            chunk.wear.last().map(|s| s.0),
        ]
        .into_iter()
        .flatten()
        .max();
        ChunkEffect {
            sleep_or_wear: !chunk.sleep.is_empty() || !chunk.wear.is_empty(),
            span: chunk.first_time().zip(last),
        }
    }

    fn device_index(&mut self, device_id: &str) -> u16 {
        if let Some(i) = self.devices.iter().position(|d| &**d == device_id) {
            return i as u16;
        }
        self.devices.push(Arc::from(device_id));
        // Rank by id; existing devices keep their relative order, so sorted entries stay sorted.
        let mut order: Vec<usize> = (0..self.devices.len()).collect();
        order.sort_by(|&a, &b| self.devices[a].cmp(&self.devices[b]));
        self.device_rank = vec![0; self.devices.len()];
        for (rank, &i) in order.iter().enumerate() {
            self.device_rank[i] = rank as u16;
        }
        (self.devices.len() - 1) as u16
    }

    fn source_index(&mut self, source: SyncSource) -> u16 {
        match self.sources.iter().position(|s| *s == source) {
            Some(i) => i as u16,
            None => {
                self.sources.push(source);
                (self.sources.len() - 1) as u16
            }
        }
    }

    /// Samples kept (the canonical set), counted as `received` counts them.
    fn kept(&self) -> u32 {
        let rr: usize = self.rr.iter().map(|r| r.value.len()).sum();
        (self.hr.len()
            + rr
            + self.steps.len()
            + self.sleep.len()
            + self.spo2.len()
            + self.skin_temperature.len()
            + self.wear.len()) as u32
    }

    /// Samples received on the day, and how many of them were duplicates of kept ones.
    pub fn counts(&self) -> (u32, u32) {
        (self.received, self.received.saturating_sub(self.kept()))
    }
}

struct MergeContext<'a> {
    device: u16,
    source: u16,
    rank: &'a [u16],
    sources: &'a [SyncSource],
}

impl MergeContext<'_> {
    fn key<V>(&self, e: &Entry<V>) -> (i64, u16) {
        (e.t, self.rank[usize::from(e.device)])
    }

    /// Merges one chunk's samples of a kind (sorted by time) into the sorted canonical series.
    fn merge<V>(&self, series: &mut Vec<Entry<V>>, new: impl Iterator<Item = (i64, V)>) {
        let my_rank = self.rank[usize::from(self.device)];
        let mut incoming: Vec<Entry<V>> = Vec::new();
        for (t, value) in new {
            // A chunk is sorted; an equal time within one sync is a re-send of itself: first wins.
            if incoming.last().is_some_and(|l| l.t == t) {
                continue;
            }
            incoming.push(Entry { t, device: self.device, source: self.source, value });
        }
        if incoming.is_empty() {
            return;
        }
        // Fast path: in-order data lands after everything the day has.
        if series.last().is_none_or(|l| self.key(l) < (incoming[0].t, my_rank)) {
            series.extend(incoming);
            return;
        }
        let old = std::mem::take(series);
        series.reserve(old.len() + incoming.len());
        let mut old = old.into_iter().peekable();
        let mut new = incoming.into_iter().peekable();
        loop {
            let order = match (old.peek(), new.peek()) {
                (Some(a), Some(b)) => self.key(a).cmp(&self.key(b)),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => break,
            };
            match order {
                Ordering::Less => series.extend(old.next()),
                Ordering::Greater => series.extend(new.next()),
                Ordering::Equal => {
                    let (a, b) = (old.next().expect("peeked"), new.next().expect("peeked"));
                    let wins = self.sources[usize::from(b.source)] > self.sources[usize::from(a.source)];
                    series.push(if wins { b } else { a });
                }
            }
        }
    }
}

/// Longest time one heart-rate sample stands for (the model's 15 s).
const MAX_SAMPLE_MS: i64 = 15_000;

/// Builds the model's input for a day from its own state and the evening before. `data` is
/// reused between days so the buffers are allocated once.
///
/// `night_inputs` is false when the caller holds a valid night for the day: then what only the
/// night reads is left out (RR runs, SpO2, and the evening's heart rate). Heart rate from 30 s
/// before midnight stays, because whether a sample survives the multi-device merge depends on
/// better sources up to 15 s before it, and theirs on 15 s before them.
pub fn assemble(date: NaiveDate, previous: Option<&DayState>, day: &DayState, data: &mut DayData, night_inputs: bool) {
    let offset = day.offset.or(previous.and_then(|p| p.offset)).map_or(0, |o| o.minutes);
    let start_ms = local_midnight_ms(date, offset);
    data.start_ms = start_ms;
    data.end_ms = start_ms + DAY_MS;
    let from = start_ms - NIGHT_LOOKBACK_MS;
    let days: Vec<&DayState> = previous.into_iter().chain([day]).collect();

    data.hr.clear();
    collect_hr(&days, if night_inputs { from } else { start_ms - 2 * MAX_SAMPLE_MS }, &mut data.hr);
    // What only the night reads is left out when the night is cached.
    let night_days: &[&DayState] = if night_inputs { &days } else { &[] };
    fill(
        &mut data.rr_runs,
        night_days,
        |d| &d.rr,
        from,
        |e| (e.t, e.value.iter().map(|&v| f64::from(v)).collect()),
        |r| r.0,
    );
    fill(&mut data.spo2, night_days, |d| &d.spo2, from, |e| (e.t, f64::from(e.value)), |s| s.0);
    let step = |e: &Entry<StepValue>| StepEpoch {
        start_ms: e.t,
        duration_s: f64::from(e.value.duration_s),
        steps: f64::from(e.value.steps),
        distance_m: f64::from(e.value.distance_m),
    };
    fill(&mut data.steps, &days, |d| &d.steps, from, step, |s| s.start_ms);
    fill(&mut data.sleep, &days, |d| &d.sleep, from, |e| (e.t, e.value.end_ms, e.value.stage), |s| s.0);
    fill(&mut data.skin_temperature, &days, |d| &d.skin_temperature, from, |e| (e.t, f64::from(e.value)), |s| s.0);
    fill(&mut data.wear, &days, |d| &d.wear, from, |e| (e.t, e.value), |s| s.0);
}

/// Refills `out` with one kind's samples from `from` on, over the given days, in time order.
fn fill<V, T, K: Ord>(
    out: &mut Vec<T>,
    days: &[&DayState],
    kind: impl Fn(&DayState) -> &Vec<Entry<V>>,
    from: i64,
    convert: impl Fn(&Entry<V>) -> T,
    time: impl Fn(&T) -> K,
) {
    out.clear();
    for d in days {
        let series = kind(d);
        out.extend(series[series.partition_point(|e| e.t < from)..].iter().map(&convert));
    }
    sort_if_needed(out, time);
}

/// The two days' series are each sorted; they only need sorting when time zones overlap them.
fn sort_if_needed<T, K: Ord>(v: &mut [T], key: impl Fn(&T) -> K) {
    if !v.is_sorted_by_key(&key) {
        v.sort_by_key(key);
    }
}

/// Heart rate of all devices as one series. With one device, every sample. With several, a
/// sample is dropped while a better source (strap over locked optical over unlocked) has a
/// kept sample less than 15 s before it, or at the same time; equal sources both count.
fn collect_hr(days: &[&DayState], from: i64, out: &mut Vec<(i64, f64)>) {
    let single_device = days.iter().all(|d| d.devices.len() <= 1)
        && days.windows(2).all(|w| w[0].devices.is_empty() || w[1].devices.is_empty() || w[0].devices == w[1].devices);
    if single_device {
        for d in days {
            let tail = &d.hr[d.hr.partition_point(|e| e.t < from)..];
            out.extend(tail.iter().map(|e| (e.t, f64::from(e.value.bpm))));
        }
        sort_if_needed(out, |s| s.0);
        return;
    }
    // (time, device id, quality, bpm), in a total order that never depends on arrival.
    let mut all: Vec<(i64, &str, HrSource, u8)> = Vec::new();
    for d in days {
        let tail = &d.hr[d.hr.partition_point(|e| e.t < from)..];
        all.extend(tail.iter().map(|e| (e.t, &*d.devices[usize::from(e.device)], e.value.quality, e.value.bpm)));
    }
    // Identical identities across the two days (a zone change moved a sample's date) count once.
    all.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    all.dedup_by(|b, a| (a.0, a.1) == (b.0, b.1));
    // Latest kept sample time per quality.
    let mut last_kept: [Option<i64>; 3] = [None; 3];
    let mut i = 0;
    while i < all.len() {
        // Samples at one instant are judged together, best source first.
        let t = all[i].0;
        let mut j = i;
        while j < all.len() && all[j].0 == t {
            j += 1;
        }
        let best_here = all[i..j].iter().map(|s| s.2).max().expect("non-empty");
        for &(t, _, quality, bpm) in &all[i..j] {
            let covered = (quality as usize + 1..3)
                .any(|better| last_kept[better].is_some_and(|k| t - k < MAX_SAMPLE_MS))
                || quality < best_here;
            if !covered {
                out.push((t, f64::from(bpm)));
                last_kept[quality as usize] = Some(t);
            }
        }
        i = j;
    }
}

/// RR intervals of runs whose first beat lies in [from, to): the data-quality count, for a day
/// assembled without its RR runs.
pub fn rr_intervals_between(previous: Option<&DayState>, day: &DayState, from: i64, to: i64) -> u32 {
    previous
        .into_iter()
        .chain([day])
        .flat_map(|d| &d.rr[d.rr.partition_point(|e| e.t < from)..d.rr.partition_point(|e| e.t < to)])
        .map(|e| e.value.len() as u32)
        .sum()
}

/// A day's row is kept while it has samples of its own or a night that ends on it.
pub fn reportable(day: &DayState, has_sleep: bool) -> bool {
    !day.is_empty() || has_sleep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{HrSample, RrRun};

    fn src(phone: i64, id: u128) -> SyncSource {
        SyncSource { phone_time_ms: phone, sync_id: uuid::Uuid::from_u128(id) }
    }

    fn hr(samples: &[(i64, i32)], quality: HrSource) -> Chunk {
        Chunk { hr: samples.iter().map(|&(t, bpm)| HrSample { t, bpm, source: quality }).collect(), ..Chunk::default() }
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
    }

    fn midnight() -> i64 {
        local_midnight_ms(day(), 0)
    }

    fn assembled(state: &DayState) -> DayData {
        let mut data = DayData::default();
        assemble(day(), None, state, &mut data, true);
        data
    }

    #[test]
    fn conflicting_re_sends_resolve_by_phone_time_then_sync_id_in_any_order() {
        let t = midnight() + 3_600_000;
        let chunks = [
            (src(100, 1), hr(&[(t, 60), (t + 5_000, 61)], HrSource::OpticalLocked)),
            (src(200, 2), hr(&[(t, 70)], HrSource::OpticalLocked)),
            (src(200, 3), hr(&[(t, 80), (t + 10_000, 62)], HrSource::OpticalLocked)),
        ];
        let orders: [[usize; 3]; 6] = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
        let mut results = Vec::new();
        for order in orders {
            let mut state = DayState::default();
            for i in order {
                state.merge("d1", chunks[i].0, 0, &chunks[i].1);
            }
            results.push((assembled(&state).hr, state.counts()));
        }
        // Sync 3 has the latest phone time and the larger id of the two at 200: its 80 wins.
        assert_eq!(results[0].0, vec![(t, 80.0), (t + 5_000, 61.0), (t + 10_000, 62.0)]);
        assert_eq!(results[0].1, (5, 2));
        assert!(results.iter().all(|r| *r == results[0]), "{results:?}");
    }

    #[test]
    fn a_strap_wins_over_a_band_for_the_time_it_covers() {
        let t = midnight() + 3_600_000;
        let band: Vec<(i64, i32)> = (0..12).map(|i| (t + i * 5_000, 100)).collect();
        let strap: Vec<(i64, i32)> = (0..20).map(|i| (t + 20_000 + i * 1_000, 150)).collect();
        let mut a = DayState::default();
        a.merge("band", src(1, 1), 0, &hr(&band, HrSource::OpticalLocked));
        a.merge("strap", src(2, 2), 0, &hr(&strap, HrSource::Strap));
        let mut b = DayState::default();
        b.merge("strap", src(2, 2), 0, &hr(&strap, HrSource::Strap));
        b.merge("band", src(1, 1), 0, &hr(&band, HrSource::OpticalLocked));
        let merged = assembled(&a).hr;
        assert_eq!(merged, assembled(&b).hr);
        // Band samples before the strap starts stay (t, +5, +10, +15 s); those within 15 s after a
        // strap sample go (+20 .. +39 s plus 14 s of cover: +40, +45, +50 go), +55 s stays.
        let band_kept: Vec<i64> = merged.iter().filter(|s| s.1 == 100.0).map(|s| s.0 - t).collect();
        assert_eq!(band_kept, vec![0, 5_000, 10_000, 15_000, 55_000]);
        assert_eq!(merged.iter().filter(|s| s.1 == 150.0).count(), 20);
    }

    #[test]
    fn a_shrunk_day_counts_only_what_it_holds() {
        let mut state = DayState::default();
        state.merge("d", src(1, 1), 0, &hr(&[(midnight(), 60)], HrSource::OpticalLocked));
        state.hr.reserve(10_000);
        let grown = state.bytes();
        state.shrink();
        assert!(state.bytes() + 10_000 * size_of::<Entry<HrValue>>() <= grown, "{} vs {grown}", state.bytes());
        assert_eq!(assembled(&state).hr, vec![(midnight(), 60.0)]);
    }

    #[test]
    fn the_evening_before_is_included_and_sorted_rr_runs_follow() {
        let mut previous = DayState::default();
        let evening = midnight() - 3_600_000;
        let morning_of_previous = midnight() - 20 * 3_600_000;
        previous.merge(
            "d",
            src(1, 1),
            0,
            &Chunk {
                hr: vec![
                    HrSample { t: morning_of_previous, bpm: 50, source: HrSource::OpticalLocked },
                    HrSample { t: evening, bpm: 55, source: HrSource::OpticalLocked },
                ],
                rr: vec![RrRun { first_beat_ms: evening, intervals_ms: vec![1000, 70_000, -3] }],
                ..Chunk::default()
            },
        );
        let mut today = DayState::default();
        today.merge("d", src(2, 2), 0, &hr(&[(midnight() + 1, 60)], HrSource::OpticalLocked));
        let mut data = DayData::default();
        assemble(day(), Some(&previous), &today, &mut data, true);
        assert_eq!(data.hr, vec![(evening, 55.0), (midnight() + 1, 60.0)]);
        assert_eq!(data.rr_runs, vec![(evening, vec![1000.0, 65_535.0, 0.0])]);
        assemble(day(), Some(&previous), &today, &mut data, false);
        assert!(data.rr_runs.is_empty());
        // Without the night's inputs the evening's heart rate is left out too.
        assert_eq!(data.hr, vec![(midnight() + 1, 60.0)]);
    }
}
