//! Parsing a SyncDevice command into a validated, skew-corrected [`ValidSync`].
//!
//! Parse, don't validate: the only way to get a `ValidSync` is through [`parse`] (or its two
//! halves), which either rejects the whole command with its violations, each with a JSON pointer,
//! or returns the command with impossible samples dropped and counted by reason.
//!
//! Two paths give the same answer:
//! - [`typed`]: serde straight into typed structs with borrowed strings, checks that build no
//!   string and allocate nothing per valid sample. It only says yes or "not me".
//! - [`full`]: a walk over a `serde_json::Value` tree that lists every violation (the first
//!   [`MAX_LISTED_VIOLATIONS`], then a count). It runs only when the typed path declined.
//!
//! A property test (`tests/command_paths.rs`) holds them to the same `ValidSync` or the same
//! rejection.
//!
//! What rejects the command (structure): wrong types, missing required parts, unknown enum values,
//! a decreasing sequence range or window, more samples of a kind than the limit, samples outside
//! the declared window, an out-of-range profile or time-zone offset, a phone clock more than
//! [`Limits::max_clock_skew`] away from the server's, a window that after clock correction lies
//! before 1970 or more than that skew after the sync time.
//! What only drops a sample (counted in the event's `dropped_samples`): a physiologically
//! impossible value, a sentinel meaning "no reading" (0xFF, 0xFFFF, -1, 0), a time later than
//! the sync plus the tolerance or older than the retention window, a sleep segment that ends
//! before it starts or overlaps another, a duplicate heart-rate timestamp, a workout that ends
//! before it starts.

mod clean;
pub mod full;
mod to_event;
pub mod typed;

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use events::device_synced::{
    AppInfo, DeviceInfo, HrQuality, HrSensorKind, Profile, RrBlock, Sex, SkinTemperatureNight, SleepSegment,
    SleepStage, UtcOffsetSegment, WearEvent, WearState, Workout,
};

use crate::config::Limits;
use crate::problem::Violation;

pub use full::parse_command;
pub use typed::parse_typed;

/// Heart rate a living adult can have (Health Connect accepts 1..300; outside 25..250 is not real).
pub const HR_RANGE: RangeInclusive<i64> = 25..=250;
/// Beat-to-beat intervals (GoldenCheetah FilterHRV, hrv-analysis).
pub const RR_RANGE: RangeInclusive<i64> = 270..=2000;
/// Most steps per minute of an epoch.
pub const MAX_STEPS_PER_MINUTE: i64 = 300;
/// Blood-oxygen saturation a living person can have, in percent.
pub const SPO2_RANGE: RangeInclusive<i64> = 70..=100;
/// Plausible nightly skin-temperature deviation from baseline, in degrees Celsius.
pub const SKIN_TEMPERATURE_RANGE: RangeInclusive<f64> = -5.0..=5.0;

/// Clock readings, window bounds and workout times, in ms. A quarter of i64 leaves room for
/// every sum of two of them, so the skew correction can never overflow.
pub const TIME_RANGE: RangeInclusive<i64> = 0..=i64::MAX / 4;
/// Start of a UTC-offset segment (may lie before 1970: "since ever").
pub const OFFSET_FROM_RANGE: RangeInclusive<i64> = i64::MIN / 4..=i64::MAX / 4;
/// UTC offsets in force anywhere (−14 h to +14 h).
pub const OFFSET_MINUTES_RANGE: RangeInclusive<i64> = -840..=840;
/// Device record sequence numbers are uint32.
pub const SEQUENCE_RANGE: RangeInclusive<i64> = 0..=u32::MAX as i64;
pub const BATTERY_RANGE: RangeInclusive<i64> = 0..=100;
/// Battery readings that mean "no reading" (-1, 0xFF).
pub const BATTERY_NO_READING: [i64; 2] = [-1, 255];
pub const BIRTH_YEAR_RANGE: RangeInclusive<i64> = 1900..=2100;
pub const WEIGHT_KG_RANGE: RangeInclusive<f64> = 20.0..=400.0;
pub const HEIGHT_CM_RANGE: RangeInclusive<f64> = 50.0..=272.0;
pub const HR_MAX_RANGE: RangeInclusive<i64> = 100..=250;
pub const STEP_DURATION_S_RANGE: RangeInclusive<i64> = 1..=3600;
/// An epoch's duration when the device does not say.
pub const DEFAULT_STEP_DURATION_S: i64 = 60;
pub const DISTANCE_M_RANGE: RangeInclusive<f64> = 0.0..=100_000.0;
pub const WORKOUT_VERSION_RANGE: RangeInclusive<i64> = 0..=i32::MAX as i64;
/// Wide bound on a skin-temperature reading; what is not plausible is dropped, not rejected.
pub const SKIN_DEVIATION_RANGE: RangeInclusive<f64> = -1000.0..=1000.0;
/// Longest identifier, name or version string.
pub const MAX_STRING_BYTES: usize = 256;
/// Violations listed in a 422; the rest are only counted, so a flood costs no memory.
pub const MAX_LISTED_VIOLATIONS: usize = 100;

/// The names each enum takes in the command, and what they mean.
pub const HR_SENSORS: [(&str, HrSensorKind); 2] = [("optical", HrSensorKind::Optical), ("strap", HrSensorKind::Strap)];
pub const HR_QUALITIES: [(&str, HrQuality); 3] =
    [("locked", HrQuality::Locked), ("unlocked", HrQuality::Unlocked), ("strap", HrQuality::Strap)];
pub const SLEEP_STAGES: [(&str, SleepStage); 4] =
    [("awake", SleepStage::Awake), ("light", SleepStage::Light), ("deep", SleepStage::Deep), ("rem", SleepStage::Rem)];
pub const WEAR_STATES: [(&str, WearState); 2] = [("on_wrist", WearState::OnWrist), ("off_wrist", WearState::OffWrist)];
pub const SEXES: [(&str, Sex); 2] = [("male", Sex::Male), ("female", Sex::Female)];
/// `unit` of RR intervals: is it 1/1024 s?
pub const RR_UNITS: [(&str, bool); 2] = [("ms", false), ("1/1024s", true)];

/// The value a name stands for in one of the tables above.
pub(crate) fn lookup<T: Copy>(options: &[(&str, T)], name: &str) -> Option<T> {
    options.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// A command that passed validation. Times are UTC epoch ms corrected for the device's skew.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSync {
    pub sync_id: uuid::Uuid,
    pub device: DeviceInfo,
    pub app: AppInfo,
    pub device_time_ms: i64,
    pub phone_time_ms: i64,
    /// `phone_time_ms - device_time_ms`, added to every device time.
    pub skew_ms: i64,
    pub time_zone: String,
    pub offsets: Vec<UtcOffsetSegment>,
    pub sequence_first: i64,
    pub sequence_last: i64,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    /// Sorted by time.
    pub heart_rate: Vec<HeartRateSample>,
    /// Runs of consecutive valid beats.
    pub rr_blocks: Vec<RrBlock>,
    /// Sorted by start.
    pub steps: Vec<StepEpoch>,
    pub sleep: Vec<SleepSegment>,
    pub workouts: Vec<Workout>,
    pub profile: Option<Profile>,
    /// Sorted by time.
    pub spo2: Vec<Spo2Sample>,
    pub skin_temperature: Vec<SkinTemperatureNight>,
    /// Sorted by time.
    pub wear: Vec<WearEvent>,
    pub dropped: BTreeMap<String, i32>,
}

/// One heart-rate reading, at a skew-corrected UTC time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeartRateSample {
    pub time_ms: i64,
    pub bpm: i32,
    pub quality: HrQuality,
}

/// One step-count epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepEpoch {
    pub start_ms: i64,
    pub duration_s: i32,
    pub steps: i32,
    pub distance_m: f32,
}

/// One blood-oxygen reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spo2Sample {
    pub time_ms: i64,
    pub percent: i32,
}

/// Why a command was rejected: the first [`MAX_LISTED_VIOLATIONS`] violations, and how many more.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations {
    pub listed: Vec<Violation>,
    pub unlisted: usize,
}

impl Violations {
    pub fn total(&self) -> usize {
        self.listed.len() + self.unlisted
    }

    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// Lists it while there is room, else counts it; `make` runs only when it is listed.
    pub fn push_with(&mut self, make: impl FnOnce() -> Violation) {
        if self.listed.len() < MAX_LISTED_VIOLATIONS {
            self.listed.push(make());
        } else {
            self.unlisted += 1;
        }
    }
}

impl std::ops::Deref for Violations {
    type Target = [Violation];
    fn deref(&self) -> &[Violation] {
        &self.listed
    }
}

impl IntoIterator for Violations {
    type Item = Violation;
    type IntoIter = std::vec::IntoIter<Violation>;
    fn into_iter(self) -> Self::IntoIter {
        self.listed.into_iter()
    }
}

/// Why a body is not a valid command.
#[derive(Debug)]
pub enum Rejection {
    /// Not JSON at all (400).
    Malformed(String),
    /// JSON, but not a valid command (422).
    Invalid(Violations),
}

/// Parses and validates a command received when the server's clock read `now_ms`.
/// `idempotency_key` (the `Idempotency-Key` header) may carry the sync id; when both are given
/// they must agree. The typed path answers almost every valid command; anything it declines is
/// walked again by the full validator, which says exactly what is wrong.
pub fn parse(body: &[u8], idempotency_key: Option<&str>, limits: &Limits, now_ms: i64) -> Result<ValidSync, Rejection> {
    if let Some(sync) = parse_typed(body, idempotency_key, limits, now_ms) {
        return Ok(sync);
    }
    full::parse_body(body, idempotency_key, limits, now_ms)
}

/// Where the pieces of a command sit once read, before the drop rules run; both paths fill it.
pub(crate) struct Extracted {
    pub sync_id: uuid::Uuid,
    pub device: DeviceInfo,
    pub app: AppInfo,
    pub device_time_ms: i64,
    pub phone_time_ms: i64,
    pub time_zone: String,
    pub offsets: Vec<UtcOffsetSegment>,
    pub sequence: (i64, i64),
    pub window: (i64, i64),
    pub profile: Option<Profile>,
    pub heart_rate: Vec<(i64, i64, HrQuality)>,
    /// (first beat, raw intervals, in 1/1024 s).
    pub rr: Vec<(i64, Vec<i64>, bool)>,
    /// (start, duration s, steps, distance m).
    pub steps: Vec<(i64, i32, i64, f32)>,
    pub sleep: Vec<SleepSegment>,
    pub workouts: Vec<Workout>,
    pub spo2: Vec<(i64, i64)>,
    pub skin: Vec<(i64, f64)>,
    pub wear: Vec<(i64, WearState)>,
}

/// What is wrong with the clocks, judged by the server's: the phone's clock may be off by at most
/// `max_clock_skew`, and the window, once corrected, must lie between 1970 and the sync time plus
/// that much again (samples past the sync time plus the tolerance are then dropped one by one).
/// Returns (pointer, detail); both paths check this one rule.
pub(crate) fn clock_violations(
    device_time_ms: i64,
    phone_time_ms: i64,
    window: (i64, i64),
    limits: &Limits,
    now_ms: i64,
) -> Option<(&'static str, String)> {
    let max_skew = limits.max_clock_skew.as_millis() as i64;
    if (phone_time_ms - now_ms).abs() > max_skew {
        return Some((
            "/clock/phone_time_ms",
            format!(
                "{phone_time_ms} is {:.1} h from the server's clock ({now_ms}); at most {:.1} h is accepted: correct the phone's clock",
                (phone_time_ms - now_ms) as f64 / 3_600_000.0,
                max_skew as f64 / 3_600_000.0
            ),
        ));
    }
    // Inputs are within TIME_RANGE, so none of these sums can overflow.
    let skew = phone_time_ms - device_time_ms;
    let (start, end) = (window.0 + skew, window.1 + skew);
    if start < 0 {
        return Some(("/window/start_ms", format!("corrected for the clock skew ({skew} ms) it lies before 1970")));
    }
    if end > phone_time_ms + max_skew {
        return Some((
            "/window/end_ms",
            format!(
                "corrected for the clock skew ({skew} ms) it ends at {end}, long after the sync time ({phone_time_ms})"
            ),
        ));
    }
    None
}

/// The command with its times corrected and the drop rules applied.
pub(crate) fn finish(x: Extracted, limits: &Limits) -> ValidSync {
    let skew_ms = x.phone_time_ms - x.device_time_ms;
    let mut sync = ValidSync {
        sync_id: x.sync_id,
        device: x.device,
        app: x.app,
        device_time_ms: x.device_time_ms,
        phone_time_ms: x.phone_time_ms,
        skew_ms,
        time_zone: x.time_zone,
        offsets: x.offsets,
        sequence_first: x.sequence.0,
        sequence_last: x.sequence.1,
        window_start_ms: x.window.0 + skew_ms,
        window_end_ms: x.window.1 + skew_ms,
        heart_rate: Vec::with_capacity(x.heart_rate.len()),
        rr_blocks: Vec::new(),
        steps: Vec::with_capacity(x.steps.len()),
        sleep: Vec::with_capacity(x.sleep.len()),
        workouts: Vec::with_capacity(x.workouts.len()),
        profile: x.profile,
        spo2: Vec::with_capacity(x.spo2.len()),
        skin_temperature: Vec::with_capacity(x.skin.len()),
        wear: Vec::with_capacity(x.wear.len()),
        dropped: BTreeMap::new(),
    };
    clean::samples(&mut sync, x.heart_rate, x.rr, x.steps, x.sleep, x.workouts, limits);
    clean::v2_samples(&mut sync, x.spo2, x.skin, x.wear, limits);
    sync
}

/// A string the command may carry: not blank and at most [`MAX_STRING_BYTES`].
pub(crate) fn string_problem(s: &str) -> Option<&'static str> {
    if s.trim().is_empty() {
        Some("must not be empty")
    } else if s.len() > MAX_STRING_BYTES {
        Some("must be at most 256 bytes")
    } else {
        None
    }
}

/// Battery percent as the event carries it: `Ok(None)` for a "no reading" sentinel.
pub(crate) fn battery(b: i64) -> Result<Option<i32>, ()> {
    if BATTERY_NO_READING.contains(&b) {
        Ok(None)
    } else if BATTERY_RANGE.contains(&b) {
        Ok(Some(b as i32))
    } else {
        Err(())
    }
}
