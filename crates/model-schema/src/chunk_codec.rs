//! The stored form of a [`Chunk`] (`day_samples.samples`): compact binary (bytea), about a tenth of the JSONB it
//! replaces. Times are delta-of-delta encoded (regular sampling costs one byte a sample), values
//! as deltas from the previous one, all as zigzag LEB128 varints; f32 values keep their bits.
//!
//! Layout (version 1): a version byte, then per kind a count and its samples, in the order
//! heart rate, RR runs, steps, sleep, SpO2, skin temperature, wear. Heart-rate sources are
//! run-length encoded, since they change rarely within a sync.

use health_model::sleep::Stage;
use serde_json::{json, Value};

use crate::samples::{Chunk, HrSample, HrSource, RrRun, SleepSample, StepSample};

const VERSION: u8 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the stored chunk ends early")]
    Truncated,
    #[error("the stored chunk has format version {0}; this build reads version {VERSION}")]
    Version(u8),
    #[error("the stored chunk has an invalid {0}")]
    Invalid(&'static str),
}

pub fn encode(chunk: &Chunk) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64 + chunk.samples() * 2));
    w.0.push(VERSION);

    w.len(chunk.hr.len());
    let mut times = TimeDeltas::default();
    let mut bpm = 0i64;
    for s in &chunk.hr {
        w.signed(times.next(s.t));
        w.signed(i64::from(s.bpm) - bpm);
        bpm = i64::from(s.bpm);
    }
    // (run length, source) pairs
    let mut runs: Vec<(usize, HrSource)> = Vec::new();
    for s in &chunk.hr {
        match runs.last_mut() {
            Some((n, source)) if *source == s.source => *n += 1,
            _ => runs.push((1, s.source)),
        }
    }
    w.len(runs.len());
    for (n, source) in runs {
        w.len(n);
        w.0.push(source as u8);
    }

    w.len(chunk.rr.len());
    let mut first = 0i64;
    for run in &chunk.rr {
        w.signed(run.first_beat_ms - first);
        first = run.first_beat_ms;
        w.len(run.intervals_ms.len());
        let mut previous = 0i64;
        for &rr in &run.intervals_ms {
            w.signed(i64::from(rr) - previous);
            previous = i64::from(rr);
        }
    }

    w.len(chunk.steps.len());
    let mut times = TimeDeltas::default();
    for s in &chunk.steps {
        w.signed(times.next(s.t));
        w.signed(i64::from(s.duration_s));
        w.signed(i64::from(s.steps));
        w.0.extend_from_slice(&s.distance_m.to_le_bytes());
    }

    w.len(chunk.sleep.len());
    let mut t = 0i64;
    for s in &chunk.sleep {
        w.signed(s.start_ms - t);
        w.signed(s.end_ms - s.start_ms);
        t = s.end_ms;
        w.0.push(stage_code(s.stage));
    }

    w.len(chunk.spo2.len());
    let mut times = TimeDeltas::default();
    for &(t, percent) in &chunk.spo2 {
        w.signed(times.next(t));
        w.signed(i64::from(percent));
    }

    w.len(chunk.skin_temperature.len());
    let mut t = 0i64;
    for &(night_end, deviation) in &chunk.skin_temperature {
        w.signed(night_end - t);
        t = night_end;
        w.0.extend_from_slice(&deviation.to_le_bytes());
    }

    w.len(chunk.wear.len());
    let mut t = 0i64;
    for &(time, on_wrist) in &chunk.wear {
        w.signed(time - t);
        t = time;
        w.0.push(u8::from(on_wrist));
    }
    w.0
}

pub fn decode(bytes: &[u8]) -> Result<Chunk, DecodeError> {
    let mut r = Reader(bytes);
    match r.byte()? {
        VERSION => {}
        other => return Err(DecodeError::Version(other)),
    }
    let mut chunk = Chunk::default();

    let n = r.len()?;
    chunk.hr.reserve(n);
    let mut times = TimeDeltas::default();
    let mut bpm = 0i64;
    for _ in 0..n {
        let t = times.undo(r.signed()?);
        bpm += r.signed()?;
        let bpm = i32::try_from(bpm).map_err(|_| DecodeError::Invalid("heart rate"))?;
        chunk.hr.push(HrSample { t, bpm, source: HrSource::OpticalLocked });
    }
    let mut at = 0usize;
    for _ in 0..r.len()? {
        // A run may be longer than the bytes left: it is bounded by the samples read instead.
        let run = usize::try_from(r.unsigned()?).map_err(|_| DecodeError::Invalid("source run"))?;
        let source = HrSource::from_code(r.byte()?).ok_or(DecodeError::Invalid("heart-rate source"))?;
        let end = at.checked_add(run).filter(|&e| e <= chunk.hr.len()).ok_or(DecodeError::Invalid("source run"))?;
        for s in &mut chunk.hr[at..end] {
            s.source = source;
        }
        at = end;
    }

    let n = r.len()?;
    let mut first = 0i64;
    for _ in 0..n {
        first += r.signed()?;
        let count = r.len()?;
        let mut intervals_ms = Vec::with_capacity(count);
        let mut previous = 0i64;
        for _ in 0..count {
            previous += r.signed()?;
            intervals_ms.push(i32::try_from(previous).map_err(|_| DecodeError::Invalid("RR interval"))?);
        }
        chunk.rr.push(RrRun { first_beat_ms: first, intervals_ms });
    }

    let n = r.len()?;
    let mut times = TimeDeltas::default();
    for _ in 0..n {
        let t = times.undo(r.signed()?);
        let duration_s = r.int("step duration")?;
        let steps = r.int("step count")?;
        let distance_m = f32::from_le_bytes(r.array()?);
        chunk.steps.push(StepSample { t, duration_s, steps, distance_m });
    }

    let n = r.len()?;
    let mut t = 0i64;
    for _ in 0..n {
        let start_ms = t + r.signed()?;
        let end_ms = start_ms + r.signed()?;
        t = end_ms;
        let stage = stage_of(r.byte()?).ok_or(DecodeError::Invalid("sleep stage"))?;
        chunk.sleep.push(SleepSample { start_ms, end_ms, stage });
    }

    let n = r.len()?;
    let mut times = TimeDeltas::default();
    for _ in 0..n {
        let t = times.undo(r.signed()?);
        chunk.spo2.push((t, r.int("SpO2")?));
    }

    let n = r.len()?;
    let mut t = 0i64;
    for _ in 0..n {
        t += r.signed()?;
        chunk.skin_temperature.push((t, f32::from_le_bytes(r.array()?)));
    }

    let n = r.len()?;
    let mut t = 0i64;
    for _ in 0..n {
        t += r.signed()?;
        chunk.wear.push((t, r.byte()? != 0));
    }
    if !r.0.is_empty() {
        return Err(DecodeError::Invalid("trailer"));
    }
    Ok(chunk)
}

/// One stored `samples` blob as JSON, for exports: each kind an array of objects with named
/// fields (times in UTC epoch milliseconds), e.g.
/// `{"heart_rate": [{"t_ms": 1772400000000, "bpm": 61, "source": "optical_locked"}], "rr": [...],
/// "steps": [...], "sleep": [...], "spo2": [...], "skin_temperature": [...], "wear": [...]}`.
pub fn decode_to_json(bytes: &[u8]) -> Result<Value, DecodeError> {
    Ok(to_json(&decode(bytes)?))
}

/// A chunk as JSON (the shape [`decode_to_json`] documents).
pub fn to_json(chunk: &Chunk) -> Value {
    let source = |s: HrSource| match s {
        HrSource::OpticalUnlocked => "optical_unlocked",
        HrSource::OpticalLocked => "optical_locked",
        HrSource::Strap => "strap",
    };
    let stage = |s: Stage| match s {
        Stage::Awake => "awake",
        Stage::Light => "light",
        Stage::Deep => "deep",
        Stage::Rem => "rem",
    };
    json!({
        "heart_rate": chunk.hr.iter().map(|s| json!({"t_ms": s.t, "bpm": s.bpm, "source": source(s.source)})).collect::<Vec<_>>(),
        "rr": chunk.rr.iter().map(|r| json!({"first_beat_ms": r.first_beat_ms, "intervals_ms": r.intervals_ms})).collect::<Vec<_>>(),
        "steps": chunk.steps.iter().map(|s| json!({
            "t_ms": s.t, "duration_s": s.duration_s, "steps": s.steps, "distance_m": s.distance_m
        })).collect::<Vec<_>>(),
        "sleep": chunk.sleep.iter().map(|s| json!({
            "start_ms": s.start_ms, "end_ms": s.end_ms, "stage": stage(s.stage)
        })).collect::<Vec<_>>(),
        "spo2": chunk.spo2.iter().map(|&(t, p)| json!({"t_ms": t, "percent": p})).collect::<Vec<_>>(),
        "skin_temperature": chunk.skin_temperature.iter().map(|&(t, d)| json!({
            "night_end_ms": t, "deviation_c": d
        })).collect::<Vec<_>>(),
        "wear": chunk.wear.iter().map(|&(t, on)| json!({"t_ms": t, "on_wrist": on})).collect::<Vec<_>>(),
    })
}

fn stage_code(s: Stage) -> u8 {
    match s {
        Stage::Awake => 0,
        Stage::Light => 1,
        Stage::Deep => 2,
        Stage::Rem => 3,
    }
}

fn stage_of(code: u8) -> Option<Stage> {
    Some(match code {
        0 => Stage::Awake,
        1 => Stage::Light,
        2 => Stage::Deep,
        3 => Stage::Rem,
        _ => return None,
    })
}

/// Delta-of-delta of a time series: a regular series costs one byte a sample.
#[derive(Default)]
struct TimeDeltas {
    previous: i64,
    delta: i64,
}

impl TimeDeltas {
    fn next(&mut self, t: i64) -> i64 {
        let delta = t.wrapping_sub(self.previous);
        let dod = delta.wrapping_sub(self.delta);
        (self.previous, self.delta) = (t, delta);
        dod
    }

    fn undo(&mut self, dod: i64) -> i64 {
        self.delta = self.delta.wrapping_add(dod);
        self.previous = self.previous.wrapping_add(self.delta);
        self.previous
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn unsigned(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn signed(&mut self, v: i64) {
        self.unsigned(((v << 1) ^ (v >> 63)) as u64);
    }

    fn len(&mut self, n: usize) {
        self.unsigned(n as u64);
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.0.split_first().ok_or(DecodeError::Truncated)?;
        self.0 = rest;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or(DecodeError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }

    fn unsigned(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Invalid("varint"))
    }

    fn signed(&mut self) -> Result<i64, DecodeError> {
        let v = self.unsigned()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A count, bounded by the bytes left so a corrupt length cannot reserve gigabytes.
    fn len(&mut self) -> Result<usize, DecodeError> {
        let n = usize::try_from(self.unsigned()?).map_err(|_| DecodeError::Invalid("count"))?;
        if n > self.0.len() {
            return Err(DecodeError::Invalid("count"));
        }
        Ok(n)
    }

    fn int(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        i32::try_from(self.signed()?).map_err(|_| DecodeError::Invalid(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Chunk {
        let t0 = 1_772_400_000_000;
        Chunk {
            hr: (0..180)
                .map(|i| HrSample {
                    t: t0 + i * 5_000 + (i % 7),
                    bpm: 60 + (i % 11) as i32,
                    source: if i < 90 { HrSource::OpticalLocked } else { HrSource::Strap },
                })
                .collect(),
            rr: vec![
                RrRun { first_beat_ms: t0, intervals_ms: vec![812, 830, 799, 1_999, 270, 65_535, 0, -1] },
                RrRun { first_beat_ms: t0 + 60_000, intervals_ms: vec![900; 10] },
            ],
            steps: (0..15)
                .map(|i| StepSample {
                    t: t0 + i * 60_000,
                    duration_s: 60,
                    steps: (i * 7) as i32,
                    distance_m: 0.1 * i as f32,
                })
                .collect(),
            sleep: vec![
                SleepSample { start_ms: t0 - 3_600_000, end_ms: t0 - 1_800_000, stage: Stage::Light },
                SleepSample { start_ms: t0 - 1_800_000, end_ms: t0, stage: Stage::Rem },
            ],
            spo2: vec![(t0, 97), (t0 + 60_000, 95)],
            skin_temperature: vec![(t0, -0.25)],
            wear: vec![(t0, false), (t0 + 1, true)],
        }
    }

    #[test]
    fn a_chunk_round_trips_exactly() {
        let chunk = sample();
        let bytes = encode(&chunk);
        assert_eq!(decode(&bytes), Ok(chunk));
        assert_eq!(decode(&encode(&Chunk::default())), Ok(Chunk::default()));
    }

    #[test]
    fn a_chunk_of_heart_rate_only_round_trips() {
        // One source run of 180 samples is longer than the bytes that follow it.
        let chunk = Chunk {
            hr: sample().hr.into_iter().map(|s| HrSample { source: HrSource::Strap, ..s }).collect(),
            ..Chunk::default()
        };
        assert_eq!(decode(&encode(&chunk)), Ok(chunk));
    }

    #[test]
    fn extreme_values_round_trip() {
        let chunk = Chunk {
            hr: vec![
                HrSample { t: i64::MIN / 2, bpm: i32::MIN, source: HrSource::OpticalUnlocked },
                HrSample { t: i64::MAX / 2, bpm: i32::MAX, source: HrSource::Strap },
            ],
            rr: vec![RrRun { first_beat_ms: -5, intervals_ms: vec![i32::MIN, i32::MAX] }],
            ..Chunk::default()
        };
        assert_eq!(decode(&encode(&chunk)), Ok(chunk));
    }

    #[test]
    fn a_standard_sync_is_far_smaller_than_its_json() {
        let chunk = sample();
        // 180 HR samples at 5 s cost about 2 bytes each, 15 step epochs about 8.
        assert!(encode(&chunk).len() < 600, "{} bytes", encode(&chunk).len());
    }

    #[test]
    fn a_stored_blob_decodes_to_json_with_every_sample() {
        let chunk = sample();
        let value = decode_to_json(&encode(&chunk)).expect("decodes");
        assert_eq!(value["heart_rate"].as_array().map(Vec::len), Some(180));
        assert_eq!(
            value["heart_rate"][0],
            json!({"t_ms": 1_772_400_000_000_i64, "bpm": 60, "source": "optical_locked"})
        );
        assert_eq!(value["heart_rate"][179]["source"], "strap");
        assert_eq!(value["rr"][0]["intervals_ms"], json!([812, 830, 799, 1_999, 270, 65_535, 0, -1]));
        assert_eq!(
            value["steps"][2],
            json!({"t_ms": 1_772_400_120_000_i64, "duration_s": 60, "steps": 14, "distance_m": 0.2_f32})
        );
        assert_eq!(value["sleep"][1]["stage"], "rem");
        assert_eq!(value["spo2"][1], json!({"t_ms": 1_772_400_060_000_i64, "percent": 95}));
        assert_eq!(value["skin_temperature"][0]["deviation_c"], json!(-0.25_f32));
        assert_eq!(
            value["wear"],
            json!([{"t_ms": 1_772_400_000_000_i64, "on_wrist": false}, {"t_ms": 1_772_400_000_001_i64, "on_wrist": true}])
        );
        assert_eq!(decode_to_json(&[9]), Err(DecodeError::Version(9)));
    }

    #[test]
    fn corrupt_bytes_are_an_error_never_a_panic() {
        let bytes = encode(&sample());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(decode(&[9]), Err(DecodeError::Version(9)));
        // A count far beyond the bytes present is refused before anything is reserved.
        assert_eq!(decode(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f]), Err(DecodeError::Invalid("count")));
        let mut flipped = bytes.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = decode(&flipped);
            flipped[i] ^= 0xff;
        }
    }
}
