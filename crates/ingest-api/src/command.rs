//! Parsing a SyncDevice command into a validated, skew-corrected [`ValidSync`].
//!
//! Parse, don't validate: the only way to get a `ValidSync` is through [`parse_command`], which
//! either collects *every* structural violation (each with a JSON pointer) and rejects the whole
//! command, or returns the command with impossible samples dropped and counted by reason.
//!
//! What rejects the command (structure): wrong types, missing required parts, unknown enum values,
//! a decreasing sequence range or window, more samples of a kind than the limit, samples outside
//! the declared window, an out-of-range profile or time-zone offset.
//! What only drops a sample (counted in the event's `dropped_samples`): a physiologically
//! impossible value, a sentinel meaning "no reading" (0xFF, 0xFFFF, -1, 0), a time later than
//! the sync plus the tolerance or older than the retention window, a sleep segment that ends
//! before it starts or overlaps another, a duplicate heart-rate timestamp, a workout that ends
//! before it starts.

use std::collections::BTreeMap;

use events::device_synced::{
    AppInfo, DeviceInfo, HrQuality, HrSensorKind, Profile, Sex, SleepSegment, SleepStage, UtcOffsetSegment, WearState,
    Workout,
};
use serde_json::{Map, Value};

use crate::config::Limits;
use crate::problem::Violation;

/// Heart rate a living adult can have (Health Connect accepts 1..300; outside 25..250 is not real).
pub const HR_RANGE: std::ops::RangeInclusive<i64> = 25..=250;
/// Beat-to-beat intervals (GoldenCheetah FilterHRV, hrv-analysis).
pub const RR_RANGE: std::ops::RangeInclusive<i64> = 270..=2000;
/// Most steps per minute of an epoch.
pub const MAX_STEPS_PER_MINUTE: i64 = 300;
/// Blood-oxygen saturation a living person can have, in percent.
pub const SPO2_RANGE: std::ops::RangeInclusive<i64> = 70..=100;
/// Plausible nightly skin-temperature deviation from baseline, in degrees Celsius.
pub const SKIN_TEMPERATURE_RANGE: std::ops::RangeInclusive<f64> = -5.0..=5.0;

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
    pub heart_rate: Vec<(i64, i32, HrQuality)>,
    /// (time of the first beat, intervals in ms): runs of consecutive valid beats.
    pub rr_blocks: Vec<(i64, Vec<i32>)>,
    /// (start, duration s, steps, distance m), sorted by start.
    pub steps: Vec<(i64, i32, i32, f32)>,
    pub sleep: Vec<SleepSegment>,
    pub workouts: Vec<Workout>,
    pub profile: Option<Profile>,
    /// (time, percent), sorted.
    pub spo2: Vec<(i64, i32)>,
    /// (end of the night, deviation °C).
    pub skin_temperature: Vec<(i64, f32)>,
    /// (time, state), sorted.
    pub wear: Vec<(i64, WearState)>,
    pub dropped: BTreeMap<String, i32>,
}

impl ValidSync {
    fn drop_sample(&mut self, reason: &str) {
        *self.dropped.entry(reason.to_owned()).or_default() += 1;
    }
}

/// Collects violations while reading a JSON document.
#[derive(Default)]
struct Reader {
    violations: Vec<Violation>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Reader {
    fn violation(&mut self, pointer: String, detail: impl Into<String>) {
        self.violations.push(Violation::new(pointer, detail));
    }

    /// A required member; reports it missing.
    fn required<'a>(&mut self, obj: &'a Map<String, Value>, ptr: &str, key: &str) -> Option<&'a Value> {
        match obj.get(key) {
            None | Some(Value::Null) => {
                self.violation(format!("{ptr}/{key}"), "is required");
                None
            }
            Some(v) => Some(v),
        }
    }

    fn object<'a>(&mut self, v: &'a Value, ptr: &str) -> Option<&'a Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            other => {
                self.violation(ptr.to_owned(), format!("must be an object, not {}", type_name(other)));
                None
            }
        }
    }

    fn req_object<'a>(&mut self, obj: &'a Map<String, Value>, ptr: &str, key: &str) -> Option<&'a Map<String, Value>> {
        let v = self.required(obj, ptr, key)?;
        self.object(v, &format!("{ptr}/{key}"))
    }

    fn array<'a>(&mut self, obj: &'a Map<String, Value>, ptr: &str, key: &str) -> &'a [Value] {
        match obj.get(key) {
            None | Some(Value::Null) => &[],
            Some(Value::Array(a)) => a,
            Some(other) => {
                self.violation(format!("{ptr}/{key}"), format!("must be an array, not {}", type_name(other)));
                &[]
            }
        }
    }

    fn string(&mut self, obj: &Map<String, Value>, ptr: &str, key: &str) -> Option<String> {
        match self.required(obj, ptr, key)? {
            Value::String(s) if s.trim().is_empty() => {
                self.violation(format!("{ptr}/{key}"), "must not be empty");
                None
            }
            Value::String(s) if s.len() > 256 => {
                self.violation(format!("{ptr}/{key}"), "must be at most 256 bytes");
                None
            }
            Value::String(s) => Some(s.clone()),
            other => {
                self.violation(format!("{ptr}/{key}"), format!("must be a string, not {}", type_name(other)));
                None
            }
        }
    }

    fn integer_value(&mut self, v: &Value, ptr: String) -> Option<i64> {
        match v.as_i64() {
            Some(n) => Some(n),
            None => {
                let what =
                    if v.is_number() { "an integer".to_owned() } else { format!("an integer, not {}", type_name(v)) };
                self.violation(ptr, format!("must be {what}"));
                None
            }
        }
    }

    fn integer(&mut self, obj: &Map<String, Value>, ptr: &str, key: &str) -> Option<i64> {
        let v = self.required(obj, ptr, key)?;
        self.integer_value(v, format!("{ptr}/{key}"))
    }

    fn integer_in(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        let n = self.integer(obj, ptr, key)?;
        if !range.contains(&n) {
            self.violation(format!("{ptr}/{key}"), format!("must be between {} and {}", range.start(), range.end()));
            return None;
        }
        Some(n)
    }

    fn number_in(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        key: &str,
        range: std::ops::RangeInclusive<f64>,
    ) -> Option<f64> {
        match self.required(obj, ptr, key)? {
            Value::Number(n) => match n.as_f64() {
                Some(x) if range.contains(&x) => Some(x),
                _ => {
                    self.violation(
                        format!("{ptr}/{key}"),
                        format!("must be between {} and {}", range.start(), range.end()),
                    );
                    None
                }
            },
            other => {
                self.violation(format!("{ptr}/{key}"), format!("must be a number, not {}", type_name(other)));
                None
            }
        }
    }

    fn one_of<T: Copy>(&mut self, obj: &Map<String, Value>, ptr: &str, key: &str, options: &[(&str, T)]) -> Option<T> {
        let s = match self.required(obj, ptr, key)? {
            Value::String(s) => s.clone(),
            other => {
                self.violation(format!("{ptr}/{key}"), format!("must be a string, not {}", type_name(other)));
                return None;
            }
        };
        match options.iter().find(|(name, _)| *name == s) {
            Some((_, v)) => Some(*v),
            None => {
                let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                self.violation(format!("{ptr}/{key}"), format!("{s:?} is not one of {}", names.join(", ")));
                None
            }
        }
    }

    fn within_window(&mut self, t: i64, window: Option<(i64, i64)>, ptr: String) -> bool {
        match window {
            Some((start, end)) if t < start || t > end => {
                self.violation(ptr, format!("time {t} is outside the batch's window [{start}, {end}]"));
                false
            }
            _ => true,
        }
    }

    fn limit(&mut self, n: usize, limits: &Limits, ptr: &str) {
        if n > limits.max_samples_per_kind {
            self.violation(
                ptr.to_owned(),
                format!("has {n} samples; at most {} are accepted per command", limits.max_samples_per_kind),
            );
        }
    }
}

/// Parses and validates a command. `idempotency_key` (the `Idempotency-Key` header) may carry the
/// sync id; when both are given they must agree.
pub fn parse_command(
    body: &Value,
    idempotency_key: Option<&str>,
    limits: &Limits,
) -> Result<ValidSync, Vec<Violation>> {
    let mut r = Reader::default();
    let Some(root) = r.object(body, "") else { return Err(r.violations) };

    let sync_id = parse_sync_id(&mut r, root, idempotency_key);
    let device = r.req_object(root, "", "device").and_then(|d| {
        let battery = match d.get("battery_percent") {
            None | Some(Value::Null) => Some(None),
            Some(v) => r.integer_value(v, "/device/battery_percent".into()).map(|b| match b {
                // 0xFF and -1 are "no reading".
                -1 | 255 => None,
                0..=100 => Some(b as i32),
                _ => {
                    r.violation("/device/battery_percent".into(), "must be between 0 and 100");
                    None
                }
            }),
        };
        Some(DeviceInfo {
            manufacturer: r.string(d, "/device", "manufacturer")?,
            model: r.string(d, "/device", "model")?,
            hardware_version: r.string(d, "/device", "hardware_version")?,
            firmware_version: r.string(d, "/device", "firmware_version")?,
            hr_sensor: r.one_of(
                d,
                "/device",
                "hr_sensor",
                &[("optical", HrSensorKind::Optical), ("strap", HrSensorKind::Strap)],
            )?,
            battery_percent: battery?,
        })
    });
    let app = r
        .req_object(root, "", "app")
        .and_then(|a| Some(AppInfo { app_version: r.string(a, "/app", "version")?, os: r.string(a, "/app", "os")? }));
    let clocks = r.req_object(root, "", "clock").and_then(|c| {
        Some((
            r.integer_in(c, "/clock", "device_time_ms", 0..=i64::MAX / 4)?,
            r.integer_in(c, "/clock", "phone_time_ms", 0..=i64::MAX / 4)?,
        ))
    });
    let zone = r.req_object(root, "", "time_zone").and_then(|z| {
        let iana = r.string(z, "/time_zone", "iana")?;
        let items = r.array(z, "/time_zone", "offsets");
        if items.is_empty() {
            r.violation("/time_zone/offsets".into(), "needs at least one UTC offset");
        }
        let mut offsets = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ptr = format!("/time_zone/offsets/{i}");
            let Some(o) = r.object(item, &ptr) else { continue };
            let from = r.integer(o, &ptr, "from_ms");
            let minutes = r.integer_in(o, &ptr, "offset_minutes", -840..=840);
            if let (Some(start_ms), Some(m)) = (from, minutes) {
                if offsets.last().is_some_and(|p: &UtcOffsetSegment| p.start_ms >= start_ms) {
                    r.violation(format!("{ptr}/from_ms"), "offsets must be in increasing time order");
                }
                offsets.push(UtcOffsetSegment { start_ms, offset_minutes: m as i32 });
            }
        }
        Some((iana, offsets))
    });
    let sequence = r.req_object(root, "", "sequence").and_then(|s| {
        let first = r.integer_in(s, "/sequence", "first", 0..=u32::MAX as i64)?;
        let last = r.integer_in(s, "/sequence", "last", 0..=u32::MAX as i64)?;
        if last < first {
            r.violation("/sequence/last".into(), format!("the range must not decrease: last {last} < first {first}"));
            return None;
        }
        Some((first, last))
    });
    let window = r.req_object(root, "", "window").and_then(|w| {
        let start = r.integer_in(w, "/window", "start_ms", 0..=i64::MAX / 4)?;
        let end = r.integer_in(w, "/window", "end_ms", 0..=i64::MAX / 4)?;
        if end < start {
            r.violation("/window/end_ms".into(), format!("the window must not end ({end}) before it starts ({start})"));
            return None;
        }
        Some((start, end))
    });
    let profile = match root.get("profile") {
        None | Some(Value::Null) => None,
        Some(v) => r.object(v, "/profile").and_then(|p| parse_profile(&mut r, p)),
    };

    let hr_items = r.array(root, "", "heart_rate");
    r.limit(hr_items.len(), limits, "/heart_rate");
    let mut heart_rate = Vec::with_capacity(hr_items.len());
    for (i, item) in hr_items.iter().enumerate() {
        let ptr = format!("/heart_rate/{i}");
        let Some(s) = r.object(item, &ptr) else { continue };
        let t = r.integer(s, &ptr, "t");
        let bpm = r.integer(s, &ptr, "bpm");
        let quality = r.one_of(
            s,
            &ptr,
            "quality",
            &[("locked", HrQuality::Locked), ("unlocked", HrQuality::Unlocked), ("strap", HrQuality::Strap)],
        );
        if let (Some(t), Some(bpm), Some(q)) = (t, bpm, quality) {
            if r.within_window(t, window, format!("{ptr}/t")) {
                heart_rate.push((t, bpm, q));
            }
        }
    }

    let mut rr_raw = Vec::new();
    if let Some(rr) = root.get("rr").filter(|v| !v.is_null()) {
        if let Some(rr) = r.object(rr, "/rr") {
            let per_1024 = match rr.get("unit") {
                None | Some(Value::Null) => Some(false),
                Some(_) => r.one_of(rr, "/rr", "unit", &[("ms", false), ("1/1024s", true)]),
            };
            let blocks = r.array(rr, "/rr", "blocks");
            let mut total = 0;
            for (i, item) in blocks.iter().enumerate() {
                let ptr = format!("/rr/blocks/{i}");
                let Some(b) = r.object(item, &ptr) else { continue };
                let first = r.integer(b, &ptr, "first_beat_ms");
                let intervals = r.array(b, &ptr, "intervals");
                total += intervals.len();
                let values: Vec<Option<i64>> = intervals
                    .iter()
                    .enumerate()
                    .map(|(j, v)| r.integer_value(v, format!("{ptr}/intervals/{j}")))
                    .collect();
                if let (Some(first), Some(per_1024)) = (first, per_1024) {
                    if r.within_window(first, window, format!("{ptr}/first_beat_ms"))
                        && values.iter().all(Option::is_some)
                    {
                        rr_raw.push((first, values.into_iter().flatten().collect::<Vec<_>>(), per_1024));
                    }
                }
            }
            r.limit(total, limits, "/rr/blocks");
        }
    }

    let step_items = r.array(root, "", "steps");
    r.limit(step_items.len(), limits, "/steps");
    let mut steps = Vec::with_capacity(step_items.len());
    for (i, item) in step_items.iter().enumerate() {
        let ptr = format!("/steps/{i}");
        let Some(s) = r.object(item, &ptr) else { continue };
        let start = r.integer(s, &ptr, "start_ms");
        let duration =
            if s.contains_key("duration_s") { r.integer_in(s, &ptr, "duration_s", 1..=3600) } else { Some(60) };
        let count = r.integer(s, &ptr, "steps");
        let distance = if s.get("distance_m").is_some_and(|v| !v.is_null()) {
            r.number_in(s, &ptr, "distance_m", 0.0..=100_000.0)
        } else {
            Some(0.0)
        };
        if let (Some(start), Some(d), Some(n), Some(m)) = (start, duration, count, distance) {
            if r.within_window(start, window, format!("{ptr}/start_ms")) {
                steps.push((start, d as i32, n, m as f32));
            }
        }
    }

    let sleep_items = r.array(root, "", "sleep");
    r.limit(sleep_items.len(), limits, "/sleep");
    let mut sleep = Vec::with_capacity(sleep_items.len());
    for (i, item) in sleep_items.iter().enumerate() {
        let ptr = format!("/sleep/{i}");
        let Some(s) = r.object(item, &ptr) else { continue };
        let start = r.integer(s, &ptr, "start_ms");
        let end = r.integer(s, &ptr, "end_ms");
        let stage = r.one_of(
            s,
            &ptr,
            "stage",
            &[
                ("awake", SleepStage::Awake),
                ("light", SleepStage::Light),
                ("deep", SleepStage::Deep),
                ("rem", SleepStage::Rem),
            ],
        );
        if let (Some(start_ms), Some(end_ms), Some(stage)) = (start, end, stage) {
            if r.within_window(start_ms, window, format!("{ptr}/start_ms")) {
                sleep.push(SleepSegment { start_ms, end_ms, stage });
            }
        }
    }

    let workout_items = r.array(root, "", "workouts");
    r.limit(workout_items.len(), limits, "/workouts");
    let mut workouts = Vec::with_capacity(workout_items.len());
    for (i, item) in workout_items.iter().enumerate() {
        let ptr = format!("/workouts/{i}");
        let Some(w) = r.object(item, &ptr) else { continue };
        // Workouts are revisable, so an old one may be re-sent: no window check.
        let parsed = (|| {
            Some(Workout {
                id: r.string(w, &ptr, "id")?,
                version: r.integer_in(w, &ptr, "version", 0..=i32::MAX as i64)? as i32,
                sport: r.string(w, &ptr, "sport")?,
                start_ms: r.integer(w, &ptr, "start_ms")?,
                end_ms: r.integer(w, &ptr, "end_ms")?,
            })
        })();
        workouts.extend(parsed);
    }

    let spo2_items = r.array(root, "", "spo2");
    r.limit(spo2_items.len(), limits, "/spo2");
    let mut spo2 = Vec::with_capacity(spo2_items.len());
    for (i, item) in spo2_items.iter().enumerate() {
        let ptr = format!("/spo2/{i}");
        let Some(s) = r.object(item, &ptr) else { continue };
        if let (Some(t), Some(percent)) = (r.integer(s, &ptr, "t"), r.integer(s, &ptr, "percent")) {
            if r.within_window(t, window, format!("{ptr}/t")) {
                spo2.push((t, percent));
            }
        }
    }
    let skin_items = r.array(root, "", "skin_temperature");
    r.limit(skin_items.len(), limits, "/skin_temperature");
    let mut skin = Vec::with_capacity(skin_items.len());
    for (i, item) in skin_items.iter().enumerate() {
        let ptr = format!("/skin_temperature/{i}");
        let Some(s) = r.object(item, &ptr) else { continue };
        let end = r.integer(s, &ptr, "night_end_ms");
        let deviation = r.number_in(s, &ptr, "deviation_c", -1000.0..=1000.0);
        if let (Some(end), Some(d)) = (end, deviation) {
            if r.within_window(end, window, format!("{ptr}/night_end_ms")) {
                skin.push((end, d));
            }
        }
    }
    let wear_items = r.array(root, "", "wear");
    r.limit(wear_items.len(), limits, "/wear");
    let mut wear = Vec::with_capacity(wear_items.len());
    for (i, item) in wear_items.iter().enumerate() {
        let ptr = format!("/wear/{i}");
        let Some(w) = r.object(item, &ptr) else { continue };
        let t = r.integer(w, &ptr, "t");
        let state = r.one_of(w, &ptr, "state", &[("on_wrist", WearState::OnWrist), ("off_wrist", WearState::OffWrist)]);
        if let (Some(t), Some(state)) = (t, state) {
            if r.within_window(t, window, format!("{ptr}/t")) {
                wear.push((t, state));
            }
        }
    }

    let (
        Some(sync_id),
        Some(device),
        Some(app),
        Some((device_time_ms, phone_time_ms)),
        Some((time_zone, offsets)),
        Some((sequence_first, sequence_last)),
        Some((window_start, window_end)),
        true,
    ) = (sync_id, device, app, clocks, zone, sequence, window, r.violations.is_empty())
    else {
        return Err(r.violations);
    };

    let skew_ms = phone_time_ms - device_time_ms;
    let mut sync = ValidSync {
        sync_id,
        device,
        app,
        device_time_ms,
        phone_time_ms,
        skew_ms,
        time_zone,
        offsets,
        sequence_first,
        sequence_last,
        window_start_ms: window_start + skew_ms,
        window_end_ms: window_end + skew_ms,
        heart_rate: Vec::new(),
        rr_blocks: Vec::new(),
        steps: Vec::new(),
        sleep: Vec::new(),
        workouts: Vec::new(),
        profile,
        spo2: Vec::new(),
        skin_temperature: Vec::new(),
        wear: Vec::new(),
        dropped: BTreeMap::new(),
    };
    clean_samples(&mut sync, heart_rate, rr_raw, steps, sleep, workouts, limits);
    clean_v2_samples(&mut sync, spo2, skin, wear, limits);
    Ok(sync)
}

fn parse_sync_id(r: &mut Reader, root: &Map<String, Value>, key: Option<&str>) -> Option<uuid::Uuid> {
    let from_body = match root.get("sync_id") {
        None | Some(Value::Null) if key.is_some() => None,
        _ => match r.string(root, "", "sync_id") {
            Some(s) => match s.parse::<uuid::Uuid>() {
                Ok(id) => Some(id),
                Err(_) => {
                    r.violation("/sync_id".into(), "must be a UUID");
                    return None;
                }
            },
            None => return None,
        },
    };
    match (from_body, key) {
        (Some(id), None) => Some(id),
        (None, Some(k)) => match k.parse() {
            Ok(id) => Some(id),
            Err(_) => {
                r.violation("/sync_id".into(), "the Idempotency-Key header must be the sync id, a UUID");
                None
            }
        },
        (Some(id), Some(k)) if k.parse::<uuid::Uuid>().ok() == Some(id) => Some(id),
        (Some(_), Some(_)) => {
            r.violation("/sync_id".into(), "differs from the Idempotency-Key header");
            None
        }
        (None, None) => None,
    }
}

fn parse_profile(r: &mut Reader, p: &Map<String, Value>) -> Option<Profile> {
    let hr_max = match p.get("hr_max") {
        None | Some(Value::Null) => Some(None),
        Some(_) => r.integer_in(p, "/profile", "hr_max", 100..=250).map(|v| Some(v as i32)),
    };
    Some(Profile {
        birth_year: r.integer_in(p, "/profile", "birth_year", 1900..=2100)? as i32,
        sex: r.one_of(p, "/profile", "sex", &[("male", Sex::Male), ("female", Sex::Female)])?,
        weight_kg: r.number_in(p, "/profile", "weight_kg", 20.0..=400.0)?,
        height_cm: r.number_in(p, "/profile", "height_cm", 50.0..=272.0)?,
        hr_max: hr_max?,
    })
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
fn clean_samples(
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
                sync.heart_rate.push((t, bpm as i32, quality));
            }
        }
    }

    for (first, intervals, per_1024) in rr_raw {
        // A dropped interval ends a run of valid beats; the next run starts where that beat was.
        let mut beat = first + skew;
        let mut run: Vec<i32> = Vec::new();
        let mut run_start = beat;
        let mut previous_ms = 1000;
        for raw in intervals {
            let no_reading = matches!(raw, -1 | 0 | 0xFFFF);
            let ms = if per_1024 { (raw * 1000 + 512) / 1024 } else { raw };
            let reason = if no_reading {
                Some("rr_no_reading")
            } else if !RR_RANGE.contains(&ms) {
                Some("rr_out_of_range")
            } else {
                time_check(beat + ms)
            };
            // An unknown interval is estimated by the previous one, to keep later beats placed.
            let step = if no_reading || ms <= 0 { previous_ms } else { ms };
            match reason {
                Some(r) => {
                    sync.drop_sample(r);
                    if !run.is_empty() {
                        sync.rr_blocks.push((run_start, std::mem::take(&mut run)));
                    }
                    beat += step;
                    run_start = beat;
                }
                None => {
                    run.push(ms as i32);
                    beat += ms;
                    previous_ms = ms;
                }
            }
        }
        if !run.is_empty() {
            sync.rr_blocks.push((run_start, run));
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
            None => sync.steps.push((start, duration_s, count as i32, distance)),
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
            time_check(seg.start_ms)
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
        let reason = if w.end_ms < w.start_ms { Some("workout_invalid_interval") } else { time_check(w.start_ms) };
        match reason {
            Some(r) => sync.drop_sample(r),
            None => sync.workouts.push(w),
        }
    }
}

/// The samples DeviceSynced v2 added: SpO2, nightly skin temperature, wear-state events.
fn clean_v2_samples(
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
            None => sync.spo2.push((t, percent as i32)),
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
            None => sync.skin_temperature.push((end, deviation as f32)),
        }
    }
    wear.sort_by_key(|w| w.0);
    for (t, state) in wear {
        let t = t + skew;
        match time_check(t) {
            Some(r) => sync.drop_sample(r),
            None => sync.wear.push((t, state)),
        }
    }
}
