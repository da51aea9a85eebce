//! Runs every case of the independent test vectors through the model and compares every expected
//! value, within each file's stated tolerance.
//!
//! The vectors live in `tests/vectors/`, so the tests never read outside the repository; `HEALTH_MODEL_VECTORS` names another folder, so that any other
//! vector set in the same format runs through this harness. A missing folder, a missing file, a file
//! without cases or a file this harness does not know fails loudly rather than passing with nothing
//! checked.

use std::fmt::Display;
use std::path::PathBuf;

use health_model::sleep::Stage;
use health_model::{energy, hrv, load, resting, rolling, sleep, Sex};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

const DEFAULT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");

/// Every vector file this harness checks, one `#[test]` each.
const FILES: [&str; 8] = [
    "energy_fitness.json",
    "hrv_filtered.json",
    "hrv_time_domain.json",
    "load_series.json",
    "resting_hr.json",
    "rhr_anomaly.json",
    "sleep.json",
    "trimp_zones.json",
];

/// Mismatches listed in one failure message; the rest are counted.
const MAX_REPORTED: usize = 25;

fn vectors_dir() -> PathBuf {
    std::env::var_os("HEALTH_MODEL_VECTORS").map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from)
}

/// A value passes when it is within `relative`·|expected| or within `absolute` (for values near 0).
#[derive(Debug, Clone, Copy)]
struct Tolerance {
    relative: f64,
    absolute: f64,
}

impl Tolerance {
    /// Reads "relative 1e-9 (absolute 1e-9 near zero)"; the absolute part defaults to the relative.
    fn parse(file: &str, text: &str) -> Self {
        let words: Vec<&str> = text
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
            .filter(|w| !w.is_empty())
            .collect();
        let after = |key: &str| {
            words.windows(2).find(|w| w[0].eq_ignore_ascii_case(key)).map(|w| {
                w[1].parse::<f64>()
                    .unwrap_or_else(|e| panic!("{file}: tolerance {key} {:?} is not a number: {e}", w[1]))
            })
        };
        let relative =
            after("relative").unwrap_or_else(|| panic!("{file}: tolerance {text:?} states no relative bound"));
        Tolerance { relative, absolute: after("absolute").unwrap_or(relative) }
    }

    fn accepts(self, actual: f64, expected: f64) -> bool {
        let diff = (actual - expected).abs();
        diff <= self.absolute || diff <= self.relative * expected.abs()
    }
}

/// One case of one file, with input accessors that name the file, case and field when they fail.
struct Case<'a> {
    file: &'a str,
    index: usize,
    value: &'a Value,
}

impl Case<'_> {
    fn fail(&self, field: &str, what: impl Display) -> ! {
        panic!("{} case {} field {field}: {what}", self.file, self.index)
    }

    /// The input at a JSON pointer (e.g. "/profile/age"), deserialized.
    fn input<T: DeserializeOwned>(&self, pointer: &str) -> T {
        let raw = self.value.pointer(pointer).unwrap_or_else(|| self.fail(pointer, "missing input"));
        serde_json::from_value(raw.clone()).unwrap_or_else(|e| self.fail(pointer, format!("bad input: {e}")))
    }
}

/// Loads `name`, runs `compute` on each case and compares its output with the case's `expected`.
fn check_file(name: &str, compute: impl Fn(&Case<'_>) -> Value) {
    let dir = vectors_dir();
    assert!(dir.is_dir(), "vector folder {} is missing (HEALTH_MODEL_VECTORS overrides the default)", dir.display());
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: cannot read {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
    let tolerance_text = doc["tolerance"].as_str().unwrap_or_else(|| panic!("{name}: no `tolerance` string"));
    let tolerance = Tolerance::parse(name, tolerance_text);
    let cases = doc["cases"].as_array().unwrap_or_else(|| panic!("{name}: no `cases` array"));
    assert!(!cases.is_empty(), "{name}: zero cases, nothing would be checked");

    let mut errors = Vec::new();
    let mut outputs = Vec::with_capacity(cases.len());
    for (index, value) in cases.iter().enumerate() {
        let case = Case { file: name, index, value };
        let expected = value.get("expected").unwrap_or_else(|| case.fail("expected", "missing"));
        let actual = compute(&case);
        compare(tolerance, expected, &actual, &mut String::from("expected"), &mut |field, what| {
            errors.push(format!("{name} case {index} field {field}: {what}"));
        });
        outputs.push(actual);
    }
    if std::env::var_os("HEALTH_MODEL_VECTORS").is_none() {
        check_model_version(name, &outputs);
    }
    if !errors.is_empty() {
        let shown = errors.iter().take(MAX_REPORTED).cloned().collect::<Vec<_>>().join("\n  ");
        let more = errors.len().saturating_sub(MAX_REPORTED);
        panic!(
            "{} mismatch(es) in {name}:\n  {shown}{}",
            errors.len(),
            if more > 0 { format!("\n  … and {more} more") } else { String::new() }
        );
    }
}

/// Compares `actual` with every value in `expected`: numbers within tolerance, null only with null
/// (None), booleans and strings exactly, arrays element by element with equal lengths, objects key
/// by key (keys only in `actual` are extra outputs and ignored).
fn compare(
    tol: Tolerance,
    expected: &Value,
    actual: &Value,
    field: &mut String,
    report: &mut impl FnMut(&str, String),
) {
    match (expected, actual) {
        (Value::Null, Value::Null) => {}
        (Value::Bool(e), Value::Bool(a)) if e == a => {}
        (Value::String(e), Value::String(a)) if e == a => {}
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (e.as_f64().unwrap_or(f64::NAN), a.as_f64().unwrap_or(f64::NAN));
            if !tol.accepts(a, e) {
                report(field, format!("expected {e}, got {a} (difference {:e})", (a - e).abs()));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                report(field, format!("expected {} elements, got {}", e.len(), a.len()));
                return;
            }
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                let len = field.len();
                field.push_str(&format!("[{i}]"));
                compare(tol, e, a, field, report);
                field.truncate(len);
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            for (key, e) in e {
                let len = field.len();
                field.push('.');
                field.push_str(key);
                match a.get(key) {
                    Some(a) => compare(tol, e, a, field, report),
                    None => report(field, "the model produces no such output".to_string()),
                }
                field.truncate(len);
            }
        }
        (e, a) => report(field, format!("expected {e}, got {a}")),
    }
}

const MODEL_VERSION_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/model_version.json");

/// The outputs on the default vectors belong to one `MODEL_VERSION`: `tests/model_version.json`
/// records that version and a digest of each file's outputs. Outputs that change while the
/// version stays the same fail here, so stored rows never silently mix two formulas under one
/// version. Numbers are compared at 9 significant digits: a last-bit difference of a platform's
/// `exp` is not a formula change.
fn check_model_version(name: &str, outputs: &[Value]) {
    use sha2::{Digest, Sha256};
    fn rounded(v: &Value) -> Value {
        match v {
            Value::Number(n) => Value::String(format!("{:.8e}", n.as_f64().unwrap_or(f64::NAN))),
            Value::Array(a) => Value::Array(a.iter().map(rounded).collect()),
            Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), rounded(v))).collect()),
            other => other.clone(),
        }
    }
    let text = serde_json::to_string(&outputs.iter().map(rounded).collect::<Vec<_>>()).unwrap();
    let digest: String = Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let record: Value = serde_json::from_str(&std::fs::read_to_string(MODEL_VERSION_FILE).unwrap())
        .unwrap_or_else(|e| panic!("{MODEL_VERSION_FILE} is not JSON: {e}"));
    let recorded_version = record["model_version"].as_i64().unwrap_or(-1);
    let recorded = record["outputs_sha256"][name].as_str().unwrap_or("");
    assert_eq!(
        recorded_version,
        i64::from(health_model::MODEL_VERSION),
        "MODEL_VERSION is {} but {MODEL_VERSION_FILE} records version {recorded_version}: set it to {} with \
         the outputs' digests (this file's: \"{name}\": \"{digest}\")",
        health_model::MODEL_VERSION,
        health_model::MODEL_VERSION
    );
    assert_eq!(
        recorded,
        digest,
        "{name}: the model's outputs changed but MODEL_VERSION is still {}. Bump MODEL_VERSION (rows computed \
         with the old formulas are then known to be stale) and record \"{name}\": \"{digest}\" in {MODEL_VERSION_FILE}",
        health_model::MODEL_VERSION
    );
}

fn to_json(value: impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| panic!("output does not serialize: {e}"))
}

#[test]
fn energy_fitness() {
    check_file("energy_fitness.json", |case| {
        let sex: Sex = case.input("/profile/sex");
        let age: f64 = case.input("/profile/age");
        let weight: f64 = case.input("/profile/weight_kg");
        let hr_max = energy::tanaka_hr_max(age);
        json!({
            "bmr_kcal_per_day": energy::bmr_kcal_per_day(sex, weight, case.input("/profile/height_cm"), age),
            "keytel_kcal_per_min": energy::keytel_kcal_per_min(sex, case.input("/hr_bpm"), weight, age),
            "hr_max_tanaka": hr_max,
            "vo2max_uth": energy::uth_vo2max(hr_max, case.input("/profile/hr_rest")),
        })
    });
}

#[test]
fn hrv_time_domain() {
    check_file("hrv_time_domain.json", |case| to_json(hrv::time_domain(&case.input::<Vec<f64>>("/rr_ms"))));
}

#[test]
fn hrv_filtered() {
    check_file("hrv_filtered.json", |case| {
        let rr: Vec<f64> = case.input("/rr_ms");
        let mut out = to_json(hrv::filtered(&rr));
        // The per-beat verdicts are not part of the summary; the vectors check them all the same.
        if let Value::Object(fields) = &mut out {
            fields.insert("valid".to_string(), json!(hrv::beat_verdicts(&rr)));
        }
        out
    });
}

#[test]
fn resting_hr() {
    check_file(
        "resting_hr.json",
        |case| json!({ "resting_hr": resting::from_sleep(&case.input::<Vec<f64>>("/sleep_hr_per_minute")) }),
    );
}

#[test]
fn sleep() {
    check_file("sleep.json", |case| {
        let segments: Vec<(f64, f64, Stage)> = case.input("/segments_start_end_min_stage");
        let Some(s) = sleep::stats(&segments) else { return Value::Null };
        json!({
            "time_in_bed_min": s.time_in_bed_min,
            "total_sleep_min": s.total_sleep_min,
            "sleep_onset_latency_min": s.sleep_onset_latency_min,
            "waso_min": s.waso_min,
            "efficiency_pct": s.efficiency_pct,
            "awakenings": s.awakenings,
            "stage_minutes": { "light": s.light_min, "deep": s.deep_min, "rem": s.rem_min, "awake": s.awake_min },
        })
    });
}

#[test]
fn trimp_zones() {
    check_file("trimp_zones.json", |case| {
        let sex: Sex = case.input("/profile/sex");
        let hr_rest: f64 = case.input("/profile/hr_rest");
        let hr_max: f64 = case.input("/profile/hr_max");
        let samples: Vec<(f64, f64)> = case.input("/samples_hr_bpm_duration_s");
        json!({
            "banister_trimp": load::banister_trimp(&samples, hr_rest, hr_max, sex),
            "edwards_trimp": load::edwards_trimp(&samples, hr_max),
            "karvonen_zone_minutes": load::zone_minutes(&samples, hr_rest, hr_max),
        })
    });
}

#[test]
fn load_series() {
    check_file("load_series.json", |case| {
        let days = rolling::load_series(&case.input::<Vec<f64>>("/daily_load"));
        let column = |f: fn(&rolling::LoadDay) -> Value| Value::Array(days.iter().map(f).collect());
        json!({
            "ctl": column(|d| json!(d.fitness)),
            "atl": column(|d| json!(d.fatigue)),
            "tsb": column(|d| json!(d.form)),
            "acwr_rolling": column(|d| json!(d.acwr_rolling)),
            "acwr_ewma": column(|d| json!(d.acwr_ewma)),
            "ewma7": column(|d| json!(d.ewma7)),
            "ewma28": column(|d| json!(d.ewma28)),
        })
    });
}

#[test]
fn rhr_anomaly() {
    check_file("rhr_anomaly.json", |case| {
        to_json(rolling::rhr_anomalies(&case.input::<Vec<Option<f64>>>("/daily_resting_hr")))
    });
}

/// A vector file without a test here would be silently skipped; refuse that.
#[test]
fn every_vector_file_is_checked() {
    let dir = vectors_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!("vector folder {} is missing (HEALTH_MODEL_VECTORS overrides the default): {e}", dir.display())
    });
    let mut unknown = Vec::new();
    for entry in entries {
        let name = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())).file_name();
        let name = name.to_string_lossy().into_owned();
        if name.ends_with(".json") && !FILES.contains(&name.as_str()) {
            unknown.push(name);
        }
    }
    assert!(unknown.is_empty(), "vector files without a test in tests/vectors.rs: {unknown:?}");
}

/// The comparator itself must catch what it is there to catch, or every test above proves nothing.
#[test]
fn comparator_reports_each_kind_of_mismatch() {
    let tol = Tolerance::parse("t", "relative 1e-9 (absolute 1e-9 near zero)");
    assert_eq!((tol.relative, tol.absolute), (1e-9, 1e-9));
    let expected = json!({ "x": 100.0, "small": 0.0, "n": null, "b": true, "v": [1.0, 2.0], "w": [1.0], "gone": 1 });
    let actual = json!({ "x": 100.0 + 2e-7, "small": 2e-9, "n": 0.0, "b": false, "v": [1.0, 2.1], "w": [1.0, 2.0] });
    let mut fields = Vec::new();
    compare(tol, &expected, &actual, &mut String::from("expected"), &mut |field, _| fields.push(field.to_string()));
    fields.sort();
    assert_eq!(
        fields,
        ["expected.b", "expected.gone", "expected.n", "expected.small", "expected.v[1]", "expected.w", "expected.x"]
    );

    let mut none = Vec::new();
    let within =
        json!({ "x": 100.0 + 5e-8, "small": 5e-10, "n": null, "b": true, "v": [1.0, 2.0], "w": [1.0], "gone": 1 });
    compare(tol, &expected, &within, &mut String::new(), &mut |field, what| none.push(format!("{field}: {what}")));
    assert!(none.is_empty(), "{none:?}");
}
