//! The typed path: serde straight from the body's bytes into borrowed structs, then the same
//! rules as [`full`](super::full) as plain comparisons. It builds no pointer and no message, and
//! allocates per kind of sample, never per valid sample. Anything unusual (a type error, a
//! violation, a duplicate key) makes it decline, and the full validator answers instead.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use events::device_synced::{AppInfo, DeviceInfo, SleepSegment, UtcOffsetSegment};
use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::*;
use crate::config::Limits;

/// A JSON object, and only an object: serde's derived structs would also take an array, filled
/// by position, which the command's contract does not allow.
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjVisitor<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        d.deserialize_map(ObjVisitor(PhantomData))
    }
}

/// Strings borrow from the body unless they hold escapes. Enum names are read as strings and
/// looked up in the same tables as the full path, since serde's enums would also take `{"x":null}`.
type Str<'a> = Cow<'a, str>;

#[derive(Deserialize)]
struct Command<'a> {
    #[serde(borrow)]
    sync_id: Option<Str<'a>>,
    #[serde(borrow)]
    device: Obj<Device<'a>>,
    #[serde(borrow)]
    app: Obj<App<'a>>,
    clock: Obj<Clock>,
    #[serde(borrow)]
    time_zone: Obj<Zone<'a>>,
    sequence: Obj<Sequence>,
    window: Obj<Window>,
    #[serde(borrow)]
    profile: Option<Obj<RawProfile<'a>>>,
    #[serde(borrow)]
    heart_rate: Option<Vec<Obj<Hr<'a>>>>,
    #[serde(borrow)]
    rr: Option<Obj<Rr<'a>>>,
    steps: Option<Vec<Obj<Step>>>,
    #[serde(borrow)]
    sleep: Option<Vec<Obj<Sleep<'a>>>>,
    #[serde(borrow)]
    workouts: Option<Vec<Obj<RawWorkout<'a>>>>,
    spo2: Option<Vec<Obj<Spo2>>>,
    skin_temperature: Option<Vec<Obj<Skin>>>,
    #[serde(borrow)]
    wear: Option<Vec<Obj<Wear<'a>>>>,
}

#[derive(Deserialize)]
struct Device<'a> {
    #[serde(borrow)]
    manufacturer: Str<'a>,
    #[serde(borrow)]
    model: Str<'a>,
    #[serde(borrow)]
    hardware_version: Str<'a>,
    #[serde(borrow)]
    firmware_version: Str<'a>,
    battery_percent: Option<i64>,
    #[serde(borrow)]
    hr_sensor: Str<'a>,
}

#[derive(Deserialize)]
struct App<'a> {
    #[serde(borrow)]
    version: Str<'a>,
    #[serde(borrow)]
    os: Str<'a>,
}

#[derive(Deserialize)]
struct Clock {
    device_time_ms: i64,
    phone_time_ms: i64,
}

#[derive(Deserialize)]
struct Zone<'a> {
    #[serde(borrow)]
    iana: Str<'a>,
    offsets: Option<Vec<Obj<Offset>>>,
}

#[derive(Deserialize)]
struct Offset {
    from_ms: i64,
    offset_minutes: i64,
}

#[derive(Deserialize)]
struct Sequence {
    first: i64,
    last: i64,
}

#[derive(Deserialize)]
struct Window {
    start_ms: i64,
    end_ms: i64,
}

#[derive(Deserialize)]
struct RawProfile<'a> {
    birth_year: i64,
    #[serde(borrow)]
    sex: Str<'a>,
    weight_kg: f64,
    height_cm: f64,
    hr_max: Option<i64>,
}

#[derive(Deserialize)]
struct Hr<'a> {
    t: i64,
    bpm: i64,
    #[serde(borrow)]
    quality: Str<'a>,
}

#[derive(Deserialize)]
struct Rr<'a> {
    #[serde(borrow)]
    unit: Option<Str<'a>>,
    blocks: Option<Vec<Obj<Block>>>,
}

#[derive(Deserialize)]
struct Block {
    first_beat_ms: i64,
    intervals: Option<Vec<i64>>,
}

#[derive(Deserialize)]
struct Step {
    start_ms: i64,
    duration_s: Option<i64>,
    steps: i64,
    distance_m: Option<f64>,
}

#[derive(Deserialize)]
struct Sleep<'a> {
    start_ms: i64,
    end_ms: i64,
    #[serde(borrow)]
    stage: Str<'a>,
}

#[derive(Deserialize)]
struct RawWorkout<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    version: i64,
    #[serde(borrow)]
    sport: Str<'a>,
    start_ms: i64,
    end_ms: i64,
}

#[derive(Deserialize)]
struct Spo2 {
    t: i64,
    percent: i64,
}

#[derive(Deserialize)]
struct Skin {
    night_end_ms: i64,
    deviation_c: f64,
}

#[derive(Deserialize)]
struct Wear<'a> {
    t: i64,
    #[serde(borrow)]
    state: Str<'a>,
}

/// `Some` when the typed path accepts the command; `None` means "ask the full validator", which
/// either rejects it with its violations or, for JSON serde cannot map (a duplicate key), accepts it.
pub fn parse_typed(body: &[u8], idempotency_key: Option<&str>, limits: &Limits, now_ms: i64) -> Option<ValidSync> {
    let Obj(c) = serde_json::from_slice::<Obj<Command<'_>>>(body).ok()?;
    check(c, idempotency_key, limits, now_ms).map(|x| finish(x, limits))
}

/// A string the command may carry, owned for the event.
fn text(s: Str<'_>) -> Option<String> {
    string_problem(&s).is_none().then(|| s.into_owned())
}

fn sync_id(body: Option<Str<'_>>, key: Option<&str>) -> Option<uuid::Uuid> {
    let from_body = match body {
        None if key.is_some() => None,
        None => return None,
        Some(s) => {
            string_problem(&s).is_none().then_some(())?;
            Some(s.parse::<uuid::Uuid>().ok()?)
        }
    };
    match (from_body, key) {
        (Some(id), None) => Some(id),
        (None, Some(k)) => k.parse().ok(),
        (Some(id), Some(k)) => (k.parse::<uuid::Uuid>().ok() == Some(id)).then_some(id),
        (None, None) => None,
    }
}

/// Not more of a kind than the limit allows.
fn within_limit<T>(items: &Option<Vec<T>>, limits: &Limits) -> Option<()> {
    (items.as_ref().map_or(0, Vec::len) <= limits.max_samples_per_kind).then_some(())
}

fn check(c: Command<'_>, key: Option<&str>, limits: &Limits, now_ms: i64) -> Option<Extracted> {
    let sync_id = sync_id(c.sync_id, key)?;
    let Obj(d) = c.device;
    let device = DeviceInfo {
        manufacturer: text(d.manufacturer)?,
        model: text(d.model)?,
        hardware_version: text(d.hardware_version)?,
        firmware_version: text(d.firmware_version)?,
        hr_sensor: lookup(&HR_SENSORS, &d.hr_sensor)?,
        battery_percent: match d.battery_percent {
            None => None,
            Some(b) => battery(b).ok()?,
        },
    };
    let Obj(a) = c.app;
    let app = AppInfo { app_version: text(a.version)?, os: text(a.os)? };
    let Obj(clock) = c.clock;
    let (device_time_ms, phone_time_ms) = (clock.device_time_ms, clock.phone_time_ms);
    (TIME_RANGE.contains(&device_time_ms) && TIME_RANGE.contains(&phone_time_ms)).then_some(())?;
    let Obj(z) = c.time_zone;
    let time_zone = text(z.iana)?;
    let raw_offsets = z.offsets.unwrap_or_default();
    let mut offsets = Vec::with_capacity(raw_offsets.len());
    for Obj(o) in raw_offsets {
        let fits = OFFSET_FROM_RANGE.contains(&o.from_ms) && OFFSET_MINUTES_RANGE.contains(&o.offset_minutes);
        let increasing = offsets.last().is_none_or(|p: &UtcOffsetSegment| p.start_ms < o.from_ms);
        (fits && increasing).then_some(())?;
        offsets.push(UtcOffsetSegment { start_ms: o.from_ms, offset_minutes: o.offset_minutes as i32 });
    }
    (!offsets.is_empty()).then_some(())?;
    let Obj(s) = c.sequence;
    (SEQUENCE_RANGE.contains(&s.first) && SEQUENCE_RANGE.contains(&s.last) && s.last >= s.first).then_some(())?;
    let Obj(w) = c.window;
    (TIME_RANGE.contains(&w.start_ms) && TIME_RANGE.contains(&w.end_ms) && w.end_ms >= w.start_ms).then_some(())?;
    let window = (w.start_ms, w.end_ms);
    if clock_violations(device_time_ms, phone_time_ms, window, limits, now_ms).is_some() {
        return None;
    }
    let in_window = |t: i64| (window.0..=window.1).contains(&t).then_some(());
    let profile = match c.profile {
        None => None,
        Some(Obj(p)) => {
            let fits = BIRTH_YEAR_RANGE.contains(&p.birth_year)
                && WEIGHT_KG_RANGE.contains(&p.weight_kg)
                && HEIGHT_CM_RANGE.contains(&p.height_cm)
                && p.hr_max.is_none_or(|h| HR_MAX_RANGE.contains(&h));
            fits.then_some(())?;
            Some(Profile {
                birth_year: p.birth_year as i32,
                sex: lookup(&SEXES, &p.sex)?,
                weight_kg: p.weight_kg,
                height_cm: p.height_cm,
                hr_max: p.hr_max.map(|h| h as i32),
            })
        }
    };

    within_limit(&c.heart_rate, limits)?;
    let raw = c.heart_rate.unwrap_or_default();
    let mut heart_rate = Vec::with_capacity(raw.len());
    for Obj(s) in raw {
        in_window(s.t)?;
        heart_rate.push((s.t, s.bpm, lookup(&HR_QUALITIES, &s.quality)?));
    }

    let mut rr = Vec::new();
    if let Some(Obj(r)) = c.rr {
        let per_1024 = match r.unit {
            None => false,
            Some(u) => lookup(&RR_UNITS, &u)?,
        };
        let blocks = r.blocks.unwrap_or_default();
        let total: usize = blocks.iter().map(|Obj(b)| b.intervals.as_ref().map_or(0, Vec::len)).sum();
        (total <= limits.max_samples_per_kind).then_some(())?;
        rr.reserve(blocks.len());
        for Obj(b) in blocks {
            in_window(b.first_beat_ms)?;
            rr.push((b.first_beat_ms, b.intervals.unwrap_or_default(), per_1024));
        }
    }

    within_limit(&c.steps, limits)?;
    let raw = c.steps.unwrap_or_default();
    let mut steps = Vec::with_capacity(raw.len());
    for Obj(s) in raw {
        let duration = s.duration_s.unwrap_or(DEFAULT_STEP_DURATION_S);
        let distance = s.distance_m.unwrap_or(0.0);
        (STEP_DURATION_S_RANGE.contains(&duration) && DISTANCE_M_RANGE.contains(&distance)).then_some(())?;
        in_window(s.start_ms)?;
        steps.push((s.start_ms, duration as i32, s.steps, distance as f32));
    }

    within_limit(&c.sleep, limits)?;
    let raw = c.sleep.unwrap_or_default();
    let mut sleep = Vec::with_capacity(raw.len());
    for Obj(s) in raw {
        TIME_RANGE.contains(&s.end_ms).then_some(())?;
        in_window(s.start_ms)?;
        sleep.push(SleepSegment { start_ms: s.start_ms, end_ms: s.end_ms, stage: lookup(&SLEEP_STAGES, &s.stage)? });
    }

    within_limit(&c.workouts, limits)?;
    let raw = c.workouts.unwrap_or_default();
    let mut workouts = Vec::with_capacity(raw.len());
    for Obj(w) in raw {
        let fits = WORKOUT_VERSION_RANGE.contains(&w.version)
            && TIME_RANGE.contains(&w.start_ms)
            && TIME_RANGE.contains(&w.end_ms);
        fits.then_some(())?;
        workouts.push(Workout {
            id: text(w.id)?,
            version: w.version as i32,
            sport: text(w.sport)?,
            start_ms: w.start_ms,
            end_ms: w.end_ms,
        });
    }

    within_limit(&c.spo2, limits)?;
    let raw = c.spo2.unwrap_or_default();
    let mut spo2 = Vec::with_capacity(raw.len());
    for Obj(s) in raw {
        in_window(s.t)?;
        spo2.push((s.t, s.percent));
    }
    within_limit(&c.skin_temperature, limits)?;
    let raw = c.skin_temperature.unwrap_or_default();
    let mut skin = Vec::with_capacity(raw.len());
    for Obj(s) in raw {
        SKIN_DEVIATION_RANGE.contains(&s.deviation_c).then_some(())?;
        in_window(s.night_end_ms)?;
        skin.push((s.night_end_ms, s.deviation_c));
    }
    within_limit(&c.wear, limits)?;
    let raw = c.wear.unwrap_or_default();
    let mut wear = Vec::with_capacity(raw.len());
    for Obj(w) in raw {
        in_window(w.t)?;
        wear.push((w.t, lookup(&WEAR_STATES, &w.state)?));
    }

    Some(Extracted {
        sync_id,
        device,
        app,
        device_time_ms,
        phone_time_ms,
        time_zone,
        offsets,
        sequence: (s.first, s.last),
        window,
        profile,
        heart_rate,
        rr,
        steps,
        sleep,
        workouts,
        spo2,
        skin,
        wear,
    })
}
