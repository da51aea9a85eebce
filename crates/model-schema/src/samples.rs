//! One sync's raw samples of one local day of its user (a "chunk"): what the processor stores in
//! `day_samples.samples` (see [`crate::chunk_codec`]) and builds a day's canonical sample set from.

use health_model::sleep::Stage;

/// How much a heart-rate source is trusted when two devices report the same moment: a chest
/// strap over an optical band with a locked signal, over one without.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum HrSource {
    OpticalUnlocked = 0,
    OpticalLocked = 1,
    Strap = 2,
}

impl HrSource {
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::OpticalUnlocked),
            1 => Some(Self::OpticalLocked),
            2 => Some(Self::Strap),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HrSample {
    pub t: i64,
    pub bpm: i32,
    pub source: HrSource,
}

/// A run of consecutive beats as the device recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct RrRun {
    pub first_beat_ms: i64,
    pub intervals_ms: Vec<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepSample {
    pub t: i64,
    pub duration_s: i32,
    pub steps: i32,
    pub distance_m: f32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SleepSample {
    pub start_ms: i64,
    pub end_ms: i64,
    pub stage: Stage,
}

/// One sync's samples that fall on one local day, each kind sorted by time as sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chunk {
    pub hr: Vec<HrSample>,
    pub rr: Vec<RrRun>,
    pub steps: Vec<StepSample>,
    pub sleep: Vec<SleepSample>,
    /// (time, SpO2 %), DeviceSynced v2.
    pub spo2: Vec<(i64, i32)>,
    /// (end of the night, skin-temperature deviation °C), v2.
    pub skin_temperature: Vec<(i64, f32)>,
    /// (time, on wrist?), v2.
    pub wear: Vec<(i64, bool)>,
}

impl Chunk {
    /// Samples as the data-quality counts see them: one per RR interval, one per other record.
    pub fn samples(&self) -> usize {
        self.hr.len()
            + self.rr.iter().map(|r| r.intervals_ms.len()).sum::<usize>()
            + self.steps.len()
            + self.sleep.len()
            + self.spo2.len()
            + self.skin_temperature.len()
            + self.wear.len()
    }

    /// The earliest sample time, which decides the day's UTC offset when chunks disagree.
    pub fn first_time(&self) -> Option<i64> {
        [
            self.hr.first().map(|s| s.t),
            self.rr.first().map(|r| r.first_beat_ms),
            self.steps.first().map(|s| s.t),
            self.sleep.first().map(|s| s.start_ms),
            self.spo2.first().map(|s| s.0),
            self.skin_temperature.first().map(|s| s.0),
            self.wear.first().map(|s| s.0),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Sorts every kind by time (stable, so a device's own order of equal times is kept).
    pub fn sort(&mut self) {
        self.hr.sort_by_key(|s| s.t);
        self.rr.sort_by_key(|r| r.first_beat_ms);
        self.steps.sort_by_key(|s| s.t);
        self.sleep.sort_by_key(|s| s.start_ms);
        self.spo2.sort_by_key(|s| s.0);
        self.skin_temperature.sort_by_key(|s| s.0);
        self.wear.sort_by_key(|s| s.0);
    }
}
