//! The full validator: a walk over a `serde_json::Value` tree that reports every violation with
//! its JSON pointer (the first [`MAX_LISTED_VIOLATIONS`] of them, then a count). It runs only
//! for commands the typed path declined, so it favours exact answers over speed, but its work is
//! still linear in the body and its memory bounded: pointers and details are only built for the
//! violations it lists.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt::Write;
use std::ops::RangeInclusive;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use events::device_synced::{AppInfo, DeviceInfo, Profile, SleepSegment, UtcOffsetSegment, Workout};
use serde_json::{Map, Value};

use super::*;
use crate::config::Limits;
use crate::problem::Violation;

/// A JSON pointer (RFC 6901) that is only written out when a violation is listed: the walk over
/// a million bad samples builds no string for the ones past the listing limit.
#[derive(Clone, Copy)]
pub struct Loc<'a> {
    parent: Option<&'a Loc<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

/// The whole document.
static ROOT: Loc<'static> = Loc { parent: None, seg: Seg::Root };

impl<'a> Loc<'a> {
    pub fn key(&'a self, key: &'a str) -> Loc<'a> {
        Loc { parent: Some(self), seg: Seg::Key(key) }
    }

    pub fn index(&'a self, i: usize) -> Loc<'a> {
        Loc { parent: Some(self), seg: Seg::Index(i) }
    }

    fn write(&self, out: &mut String) {
        if let Some(p) = self.parent {
            p.write(out);
        }
        match self.seg {
            Seg::Root => {}
            // Keys here are the schema's own names: nothing to escape.
            Seg::Key(k) => {
                out.push('/');
                out.push_str(k);
            }
            Seg::Index(i) => {
                let _ = write!(out, "/{i}");
            }
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }
}

/// Collects violations while reading a JSON document.
#[derive(Default)]
struct Reader {
    violations: Violations,
    /// Arrays cut short while parsing ([`parse_body`]): where their kept elements start, and
    /// how many elements they really had.
    truncated: HashMap<usize, usize>,
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
    fn violation<D: Into<String>>(&mut self, at: Loc<'_>, detail: impl FnOnce() -> D) {
        self.violations.push_with(|| Violation::new(at.render(), detail()));
    }

    /// A required member; reports it missing.
    fn required<'v>(&mut self, obj: &'v Map<String, Value>, at: &Loc<'_>, key: &str) -> Option<&'v Value> {
        match obj.get(key) {
            None | Some(Value::Null) => {
                self.violation(at.key(key), || "is required");
                None
            }
            Some(v) => Some(v),
        }
    }

    fn object<'v>(&mut self, v: &'v Value, at: Loc<'_>) -> Option<&'v Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            other => {
                self.violation(at, || format!("must be an object, not {}", type_name(other)));
                None
            }
        }
    }

    fn req_object<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        at: &Loc<'_>,
        key: &str,
    ) -> Option<&'v Map<String, Value>> {
        let v = self.required(obj, at, key)?;
        self.object(v, at.key(key))
    }

    /// An optional member: `None` when absent or null.
    fn optional<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
        obj.get(key).filter(|v| !v.is_null())
    }

    fn array<'v>(&mut self, obj: &'v Map<String, Value>, at: &Loc<'_>, key: &str) -> &'v [Value] {
        match Self::optional(obj, key) {
            None => &[],
            Some(Value::Array(a)) => a,
            Some(other) => {
                self.violation(at.key(key), || format!("must be an array, not {}", type_name(other)));
                &[]
            }
        }
    }

    fn string(&mut self, obj: &Map<String, Value>, at: &Loc<'_>, key: &str) -> Option<String> {
        match self.required(obj, at, key)? {
            Value::String(s) => match string_problem(s) {
                None => Some(s.clone()),
                Some(problem) => {
                    self.violation(at.key(key), || problem);
                    None
                }
            },
            other => {
                self.violation(at.key(key), || format!("must be a string, not {}", type_name(other)));
                None
            }
        }
    }

    fn integer_value(&mut self, v: &Value, at: Loc<'_>) -> Option<i64> {
        match v.as_i64() {
            Some(n) => Some(n),
            None => {
                self.violation(at, || {
                    if v.is_number() {
                        "must be an integer".to_owned()
                    } else {
                        format!("must be an integer, not {}", type_name(v))
                    }
                });
                None
            }
        }
    }

    fn integer(&mut self, obj: &Map<String, Value>, at: &Loc<'_>, key: &str) -> Option<i64> {
        let v = self.required(obj, at, key)?;
        self.integer_value(v, at.key(key))
    }

    fn in_range(&mut self, n: i64, at: Loc<'_>, range: &RangeInclusive<i64>) -> Option<i64> {
        if range.contains(&n) {
            Some(n)
        } else {
            self.violation(at, || format!("must be between {} and {}", range.start(), range.end()));
            None
        }
    }

    fn integer_in(
        &mut self,
        obj: &Map<String, Value>,
        at: &Loc<'_>,
        key: &str,
        range: RangeInclusive<i64>,
    ) -> Option<i64> {
        let n = self.integer(obj, at, key)?;
        self.in_range(n, at.key(key), &range)
    }

    fn number_in(
        &mut self,
        obj: &Map<String, Value>,
        at: &Loc<'_>,
        key: &str,
        range: RangeInclusive<f64>,
    ) -> Option<f64> {
        match self.required(obj, at, key)? {
            Value::Number(n) => match n.as_f64() {
                Some(x) if range.contains(&x) => Some(x),
                _ => {
                    self.violation(at.key(key), || format!("must be between {} and {}", range.start(), range.end()));
                    None
                }
            },
            other => {
                self.violation(at.key(key), || format!("must be a number, not {}", type_name(other)));
                None
            }
        }
    }

    fn one_of<T: Copy>(
        &mut self,
        obj: &Map<String, Value>,
        at: &Loc<'_>,
        key: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let s = match self.required(obj, at, key)? {
            Value::String(s) => s,
            other => {
                self.violation(at.key(key), || format!("must be a string, not {}", type_name(other)));
                return None;
            }
        };
        match options.iter().find(|(name, _)| name == s) {
            Some((_, v)) => Some(*v),
            None => {
                self.violation(at.key(key), || {
                    let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                    format!("{:?} is not one of {}", truncate(s), names.join(", "))
                });
                None
            }
        }
    }

    fn within_window(&mut self, t: i64, window: Option<(i64, i64)>, at: Loc<'_>) -> bool {
        match window {
            Some((start, end)) if t < start || t > end => {
                self.violation(at, || format!("time {t} is outside the batch's window [{start}, {end}]"));
                false
            }
            _ => true,
        }
    }

    /// One kind of sample: the array `key` of `root`, its length checked against the limit, and
    /// `read` run on each element that is an object, keeping what it returns.
    fn samples<T>(
        &mut self,
        root: &Map<String, Value>,
        key: &'static str,
        limits: &Limits,
        mut read: impl FnMut(&mut Self, &Map<String, Value>, &Loc<'_>) -> Option<T>,
    ) -> Vec<T> {
        let kind_at = ROOT.key(key);
        let items = self.array(root, &ROOT, key);
        self.limit(self.len_of(items), limits, kind_at);
        let mut out = Vec::with_capacity(items.len().min(limits.max_samples_per_kind));
        for (i, item) in items.iter().enumerate() {
            let at = kind_at.index(i);
            if let Some(object) = self.object(item, at) {
                out.extend(read(self, object, &at));
            }
        }
        out
    }

    /// How many elements an array really had, counting those cut off while parsing.
    fn len_of(&self, items: &[Value]) -> usize {
        self.truncated.get(&(items.as_ptr() as usize)).copied().unwrap_or(items.len())
    }

    fn limit(&mut self, n: usize, limits: &Limits, at: Loc<'_>) {
        if n > limits.max_samples_per_kind {
            self.violation(at, || {
                format!("has {n} samples; at most {} are accepted per command", limits.max_samples_per_kind)
            });
        }
    }
}

/// A caller's string quoted back in a detail, cut so a huge one cannot blow the answer up.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Parses and validates a command received when the server's clock read `now_ms`, reporting
/// every violation. `idempotency_key` (the `Idempotency-Key` header) may carry the sync id; when
/// both are given they must agree.
pub fn parse_command(
    body: &Value,
    idempotency_key: Option<&str>,
    limits: &Limits,
    now_ms: i64,
) -> Result<ValidSync, Violations> {
    validate(body, idempotency_key, limits, now_ms, Reader::default())
}

/// Parses a body into a bounded tree ([`Bounded`]) and validates it as [`parse_command`] does.
/// Memory stays a few MB whatever the body: at most `max_samples_per_kind + 1` elements of an
/// array and [`VALUE_BUDGET`] values in all are kept, and only members the command has. Elements
/// past those bounds are counted, not checked: an array that long is over the limit anyway.
pub fn parse_body(
    body: &[u8],
    idempotency_key: Option<&str>,
    limits: &Limits,
    now_ms: i64,
) -> Result<ValidSync, Rejection> {
    let context = BoundedContext {
        array_cap: limits.max_samples_per_kind.saturating_add(1),
        budget: Cell::new(VALUE_BUDGET),
        truncated: RefCell::default(),
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = Bounded(&context).deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    let value = value.map_err(|e| Rejection::Malformed(e.to_string()))?;
    let mut reader = Reader { truncated: context.truncated.into_inner(), ..Reader::default() };
    if context.budget.get() == 0 {
        // Only a command far over every limit gets here; say so instead of checking the rest.
        reader.violation(ROOT, || {
            format!("holds more than {VALUE_BUDGET} values; the values past them were not checked")
        });
    }
    validate(&value, idempotency_key, limits, now_ms, reader).map_err(Rejection::Invalid)
}

/// Most JSON values [`parse_body`] keeps in its tree (about 32 bytes each).
pub const VALUE_BUDGET: usize = 400_000;

/// Every member name the command has; the bounded parse drops the others (they are ignored
/// anyway), so a body of a million unknown keys costs nothing.
const MEMBERS: &[&str] = &[
    "sync_id",
    "device",
    "manufacturer",
    "model",
    "hardware_version",
    "firmware_version",
    "battery_percent",
    "hr_sensor",
    "app",
    "version",
    "os",
    "clock",
    "device_time_ms",
    "phone_time_ms",
    "time_zone",
    "iana",
    "offsets",
    "from_ms",
    "offset_minutes",
    "sequence",
    "first",
    "last",
    "window",
    "start_ms",
    "end_ms",
    "profile",
    "birth_year",
    "sex",
    "weight_kg",
    "height_cm",
    "hr_max",
    "heart_rate",
    "t",
    "bpm",
    "quality",
    "rr",
    "unit",
    "blocks",
    "first_beat_ms",
    "intervals",
    "steps",
    "duration_s",
    "distance_m",
    "sleep",
    "stage",
    "workouts",
    "id",
    "sport",
    "spo2",
    "percent",
    "skin_temperature",
    "night_end_ms",
    "deviation_c",
    "wear",
    "state",
];

struct BoundedContext {
    array_cap: usize,
    /// Values the tree may still take.
    budget: Cell<usize>,
    truncated: RefCell<HashMap<usize, usize>>,
}

/// A `serde_json::Value` built within [`BoundedContext`]'s bounds.
#[derive(Clone, Copy)]
struct Bounded<'c>(&'c BoundedContext);

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_f64<E>(self, x: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut kept = Vec::new();
        let mut seen = 0usize;
        loop {
            let room = kept.len() < self.0.array_cap && self.0.budget.get() > 0;
            let more = if room {
                match seq.next_element_seed(self)? {
                    Some(v) => {
                        self.0.budget.set(self.0.budget.get() - 1);
                        kept.push(v);
                        true
                    }
                    None => false,
                }
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                break;
            }
            seen += 1;
        }
        if seen > kept.len() {
            // An empty array cannot be cut, so its dangling pointer is never a key.
            self.0.truncated.borrow_mut().insert(kept.as_ptr() as usize, seen);
        }
        Ok(Value::Array(kept))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if MEMBERS.contains(&key.as_str()) && self.0.budget.get() > 0 {
                self.0.budget.set(self.0.budget.get() - 1);
                let value = map.next_value_seed(self)?;
                members.insert(key, value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Value::Object(members))
    }
}

/// Walks a parsed command with `r`, reporting every violation.
fn validate(
    body: &Value,
    idempotency_key: Option<&str>,
    limits: &Limits,
    now_ms: i64,
    mut r: Reader,
) -> Result<ValidSync, Violations> {
    let root_at = &ROOT;
    let Some(root) = r.object(body, ROOT) else { return Err(r.violations) };

    let sync_id = parse_sync_id(&mut r, root, idempotency_key);
    let device = r.req_object(root, root_at, "device").and_then(|d| {
        let at = root_at.key("device");
        let battery = match Reader::optional(d, "battery_percent") {
            None => Some(None),
            Some(v) => r.integer_value(v, at.key("battery_percent")).and_then(|b| match battery(b) {
                Ok(b) => Some(b),
                Err(()) => {
                    r.violation(at.key("battery_percent"), || "must be between 0 and 100");
                    None
                }
            }),
        };
        Some(DeviceInfo {
            manufacturer: r.string(d, &at, "manufacturer")?,
            model: r.string(d, &at, "model")?,
            hardware_version: r.string(d, &at, "hardware_version")?,
            firmware_version: r.string(d, &at, "firmware_version")?,
            hr_sensor: r.one_of(d, &at, "hr_sensor", &HR_SENSORS)?,
            battery_percent: battery?,
        })
    });
    let app = r.req_object(root, root_at, "app").and_then(|a| {
        let at = root_at.key("app");
        Some(AppInfo { app_version: r.string(a, &at, "version")?, os: r.string(a, &at, "os")? })
    });
    let clocks = r.req_object(root, root_at, "clock").and_then(|c| {
        let at = root_at.key("clock");
        Some((r.integer_in(c, &at, "device_time_ms", TIME_RANGE)?, r.integer_in(c, &at, "phone_time_ms", TIME_RANGE)?))
    });
    let zone = r.req_object(root, root_at, "time_zone").and_then(|z| {
        let at = root_at.key("time_zone");
        let iana = r.string(z, &at, "iana")?;
        let items = r.array(z, &at, "offsets");
        let items_at = at.key("offsets");
        if items.is_empty() {
            r.violation(items_at, || "needs at least one UTC offset");
        }
        let mut offsets = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = items_at.index(i);
            let Some(o) = r.object(item, at) else { continue };
            let from = r.integer_in(o, &at, "from_ms", OFFSET_FROM_RANGE);
            let minutes = r.integer_in(o, &at, "offset_minutes", OFFSET_MINUTES_RANGE);
            if let (Some(start_ms), Some(m)) = (from, minutes) {
                if offsets.last().is_some_and(|p: &UtcOffsetSegment| p.start_ms >= start_ms) {
                    r.violation(at.key("from_ms"), || "offsets must be in increasing time order");
                }
                offsets.push(UtcOffsetSegment { start_ms, offset_minutes: m as i32 });
            }
        }
        Some((iana, offsets))
    });
    let sequence = r.req_object(root, root_at, "sequence").and_then(|s| {
        let at = root_at.key("sequence");
        let first = r.integer_in(s, &at, "first", SEQUENCE_RANGE)?;
        let last = r.integer_in(s, &at, "last", SEQUENCE_RANGE)?;
        if last < first {
            r.violation(at.key("last"), || format!("the range must not decrease: last {last} < first {first}"));
            return None;
        }
        Some((first, last))
    });
    let window = r.req_object(root, root_at, "window").and_then(|w| {
        let at = root_at.key("window");
        let start = r.integer_in(w, &at, "start_ms", TIME_RANGE)?;
        let end = r.integer_in(w, &at, "end_ms", TIME_RANGE)?;
        if end < start {
            r.violation(at.key("end_ms"), || format!("the window must not end ({end}) before it starts ({start})"));
            return None;
        }
        Some((start, end))
    });
    if let (Some((device_time, phone_time)), Some(window)) = (clocks, window) {
        if let Some((pointer, detail)) = clock_violations(device_time, phone_time, window, limits, now_ms) {
            r.violations.push_with(|| Violation::new(pointer, detail));
        }
    }
    let profile = match Reader::optional(root, "profile") {
        None => None,
        Some(v) => r.object(v, root_at.key("profile")).and_then(|p| parse_profile(&mut r, p)),
    };

    let heart_rate = r.samples(root, "heart_rate", limits, |r, s, at| {
        let t = r.integer(s, at, "t");
        let bpm = r.integer(s, at, "bpm");
        let quality = r.one_of(s, at, "quality", &HR_QUALITIES);
        let (t, bpm, q) = (t?, bpm?, quality?);
        r.within_window(t, window, at.key("t")).then_some((t, bpm, q))
    });

    let mut rr_raw = Vec::new();
    if let Some(rr) = Reader::optional(root, "rr") {
        let rr_at = root_at.key("rr");
        if let Some(rr) = r.object(rr, rr_at) {
            let per_1024 = match Reader::optional(rr, "unit") {
                None => Some(false),
                Some(_) => r.one_of(rr, &rr_at, "unit", &RR_UNITS),
            };
            let blocks_at = rr_at.key("blocks");
            let blocks = r.array(rr, &rr_at, "blocks");
            let mut total = 0;
            for (i, item) in blocks.iter().enumerate() {
                let at = blocks_at.index(i);
                let Some(b) = r.object(item, at) else { continue };
                let first = r.integer(b, &at, "first_beat_ms");
                let intervals = r.array(b, &at, "intervals");
                total += r.len_of(intervals);
                let intervals_at = at.key("intervals");
                let mut values = Vec::with_capacity(intervals.len().min(limits.max_samples_per_kind));
                let mut all_integers = true;
                for (j, v) in intervals.iter().enumerate() {
                    match r.integer_value(v, intervals_at.index(j)) {
                        Some(n) => values.push(n),
                        None => all_integers = false,
                    }
                }
                if let (Some(first), Some(per_1024)) = (first, per_1024) {
                    if r.within_window(first, window, at.key("first_beat_ms")) && all_integers {
                        rr_raw.push((first, values, per_1024));
                    }
                }
            }
            r.limit(total, limits, blocks_at);
        }
    }

    let steps = r.samples(root, "steps", limits, |r, s, at| {
        let start = r.integer(s, at, "start_ms");
        let duration = match Reader::optional(s, "duration_s") {
            Some(_) => r.integer_in(s, at, "duration_s", STEP_DURATION_S_RANGE),
            None => Some(DEFAULT_STEP_DURATION_S),
        };
        let count = r.integer(s, at, "steps");
        let distance = match Reader::optional(s, "distance_m") {
            Some(_) => r.number_in(s, at, "distance_m", DISTANCE_M_RANGE),
            None => Some(0.0),
        };
        let (start, d, n, m) = (start?, duration?, count?, distance?);
        r.within_window(start, window, at.key("start_ms")).then_some((start, d as i32, n, m as f32))
    });
    let sleep = r.samples(root, "sleep", limits, |r, s, at| {
        let start = r.integer(s, at, "start_ms");
        let end = r.integer_in(s, at, "end_ms", TIME_RANGE);
        let stage = r.one_of(s, at, "stage", &SLEEP_STAGES);
        let (start_ms, end_ms, stage) = (start?, end?, stage?);
        r.within_window(start_ms, window, at.key("start_ms")).then_some(SleepSegment { start_ms, end_ms, stage })
    });
    // Workouts are revisable, so an old one may be re-sent: no window check.
    let workouts = r.samples(root, "workouts", limits, |r, w, at| {
        Some(Workout {
            id: r.string(w, at, "id")?,
            version: r.integer_in(w, at, "version", WORKOUT_VERSION_RANGE)? as i32,
            sport: r.string(w, at, "sport")?,
            start_ms: r.integer_in(w, at, "start_ms", TIME_RANGE)?,
            end_ms: r.integer_in(w, at, "end_ms", TIME_RANGE)?,
        })
    });
    let spo2 = r.samples(root, "spo2", limits, |r, s, at| {
        let (t, percent) = (r.integer(s, at, "t"), r.integer(s, at, "percent"));
        let (t, percent) = (t?, percent?);
        r.within_window(t, window, at.key("t")).then_some((t, percent))
    });
    let skin = r.samples(root, "skin_temperature", limits, |r, s, at| {
        let end = r.integer(s, at, "night_end_ms");
        let deviation = r.number_in(s, at, "deviation_c", SKIN_DEVIATION_RANGE);
        let (end, d) = (end?, deviation?);
        r.within_window(end, window, at.key("night_end_ms")).then_some((end, d))
    });
    let wear = r.samples(root, "wear", limits, |r, w, at| {
        let t = r.integer(w, at, "t");
        let state = r.one_of(w, at, "state", &WEAR_STATES);
        let (t, state) = (t?, state?);
        r.within_window(t, window, at.key("t")).then_some((t, state))
    });

    let (
        Some(sync_id),
        Some(device),
        Some(app),
        Some((device_time_ms, phone_time_ms)),
        Some((time_zone, offsets)),
        Some(sequence),
        Some(window),
        true,
    ) = (sync_id, device, app, clocks, zone, sequence, window, r.violations.is_empty())
    else {
        return Err(r.violations);
    };
    let extracted = Extracted {
        sync_id,
        device,
        app,
        device_time_ms,
        phone_time_ms,
        time_zone,
        offsets,
        sequence,
        window,
        profile,
        heart_rate,
        rr: rr_raw,
        steps,
        sleep,
        workouts,
        spo2,
        skin,
        wear,
    };
    Ok(finish(extracted, limits))
}

fn parse_sync_id(r: &mut Reader, root: &Map<String, Value>, key: Option<&str>) -> Option<uuid::Uuid> {
    let at = ROOT.key("sync_id");
    let from_body = match Reader::optional(root, "sync_id") {
        None if key.is_some() => None,
        _ => match r.string(root, &ROOT, "sync_id") {
            Some(s) => match s.parse::<uuid::Uuid>() {
                Ok(id) => Some(id),
                Err(_) => {
                    r.violation(at, || "must be a UUID");
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
                r.violation(at, || "the Idempotency-Key header must be the sync id, a UUID");
                None
            }
        },
        (Some(id), Some(k)) if k.parse::<uuid::Uuid>().ok() == Some(id) => Some(id),
        (Some(_), Some(_)) => {
            r.violation(at, || "differs from the Idempotency-Key header");
            None
        }
        (None, None) => None,
    }
}

fn parse_profile(r: &mut Reader, p: &Map<String, Value>) -> Option<Profile> {
    let at = ROOT.key("profile");
    let hr_max = match Reader::optional(p, "hr_max") {
        None => Some(None),
        Some(_) => r.integer_in(p, &at, "hr_max", HR_MAX_RANGE).map(|v| Some(v as i32)),
    };
    Some(Profile {
        birth_year: r.integer_in(p, &at, "birth_year", BIRTH_YEAR_RANGE)? as i32,
        sex: r.one_of(p, &at, "sex", &SEXES)?,
        weight_kg: r.number_in(p, &at, "weight_kg", WEIGHT_KG_RANGE)?,
        height_cm: r.number_in(p, &at, "height_cm", HEIGHT_CM_RANGE)?,
        hr_max: hr_max?,
    })
}
