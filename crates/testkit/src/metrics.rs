//! Prometheus naming conventions (<https://prometheus.io/docs/practices/naming/>), checked on a
//! service's `/metrics` answer after it has done real work, so every labelled series exists.
//!
//! The text is parsed with an exposition-format parser (`prometheus-parse`); then:
//! - every name is lowercase snake_case and starts with the service's prefix;
//! - every family has HELP and TYPE;
//! - counters end in `_total`, and nothing else does;
//! - a unit is a base unit in the name (`_seconds`, `_bytes`), never `_ms`, `_millis`, `_kb` and
//!   the like; a histogram or summary names what it measures in its last word;
//! - no label can grow without bound: no label named for an id (user, device, sync, trace,
//!   request, path), and no label with more than [`MAX_LABEL_VALUES`] values.

use std::collections::{BTreeMap, BTreeSet};

/// More values than this in one label is taken as unbounded (a route or status has a handful).
pub const MAX_LABEL_VALUES: usize = 64;

/// Labels whose values are ids or free text, each a new series per user, device or request.
const UNBOUNDED_LABELS: &[&str] = &[
    "user",
    "user_id",
    "device",
    "device_id",
    "sync_id",
    "event_id",
    "trace_id",
    "span_id",
    "request_id",
    "correlation_id",
    "path",
    "url",
    "token",
    "subject_version",
];

/// Unit words that are not base units: time is `_seconds`, size `_bytes`.
const NON_BASE_UNITS: &[&str] = &[
    "ms",
    "msec",
    "millis",
    "milliseconds",
    "us",
    "micros",
    "microseconds",
    "ns",
    "nanoseconds",
    "minutes",
    "hours",
    "kb",
    "mb",
    "gb",
    "kilobytes",
    "megabytes",
    "gigabytes",
    "percent",
];

/// What a histogram or summary may end with: a base unit, or the thing it counts.
const MEASURED: &[&str] = &["seconds", "bytes", "events", "records", "rows", "samples", "days", "users", "ratio"];

/// Every convention `exposition` breaks, one line each; empty when it keeps them all.
pub fn convention_violations(exposition: &str, prefix: &str) -> Vec<String> {
    let scrape = match prometheus_parse::Scrape::parse(exposition.lines().map(|l| Ok(l.to_owned()))) {
        Ok(s) => s,
        Err(e) => return vec![format!("the exposition does not parse: {e}")],
    };
    let mut violations = Vec::new();
    let types: BTreeMap<&str, &str> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name, kind.trim()))
        .collect();
    let helps: BTreeSet<&str> =
        exposition.lines().filter_map(|l| l.strip_prefix("# HELP ")).filter_map(|l| l.split(' ').next()).collect();

    for (&name, &kind) in &types {
        let words: Vec<&str> = name.split('_').collect();
        if !name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_') {
            violations.push(format!("{name}: not lowercase snake_case"));
        }
        if !name.starts_with(&format!("{prefix}_")) {
            violations.push(format!("{name}: does not start with the service prefix {prefix}_"));
        }
        if !helps.contains(name) {
            violations.push(format!("{name}: no HELP"));
        }
        if let Some(unit) = words.iter().find(|w| NON_BASE_UNITS.contains(w)) {
            violations.push(format!("{name}: unit {unit:?} is not a base unit (use _seconds or _bytes)"));
        }
        match kind {
            "counter" if !name.ends_with("_total") => violations.push(format!("{name}: a counter must end in _total")),
            "counter" => {}
            _ if name.ends_with("_total") => violations.push(format!("{name}: a {kind} must not end in _total")),
            "histogram" | "summary" if !MEASURED.iter().any(|m| name.ends_with(&format!("_{m}"))) => violations
                .push(format!("{name}: a {kind} must end in its unit or what it counts ({})", MEASURED.join(", "))),
            _ => {}
        }
    }

    let mut label_values: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for sample in &scrape.samples {
        for (label, value) in sample.labels.iter() {
            if label == "le" || label == "quantile" {
                continue;
            }
            label_values.entry((sample.metric.clone(), label.clone())).or_default().insert(value.clone());
        }
    }
    for ((metric, label), values) in &label_values {
        if UNBOUNDED_LABELS.contains(&label.as_str()) {
            violations.push(format!("{metric}: label {label:?} is an id, unbounded"));
        }
        if values.len() > MAX_LABEL_VALUES {
            violations
                .push(format!("{metric}: label {label:?} has {} values, more than {MAX_LABEL_VALUES}", values.len()));
        }
    }
    violations.sort();
    violations.dedup();
    violations
}

/// Panics with every violation, and the scraped text, when `exposition` breaks a convention.
pub fn assert_conventions(exposition: &str, prefix: &str) {
    assert!(exposition.contains("# TYPE"), "no metrics in:\n{exposition}");
    let violations = convention_violations(exposition, prefix);
    assert!(
        violations.is_empty(),
        "metric conventions broken:\n  {}\n\nscraped:\n{exposition}",
        violations.join("\n  ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
# HELP svc_requests_total Requests.
# TYPE svc_requests_total counter
svc_requests_total{route=\"/a\",status=\"200\"} 3
# HELP svc_request_seconds Latency.
# TYPE svc_request_seconds histogram
svc_request_seconds_bucket{le=\"0.1\"} 1
svc_request_seconds_bucket{le=\"+Inf\"} 1
svc_request_seconds_sum 0.05
svc_request_seconds_count 1
# HELP svc_queue_depth Records waiting.
# TYPE svc_queue_depth gauge
svc_queue_depth 0
";

    #[test]
    fn a_conventional_exposition_passes() {
        assert_eq!(convention_violations(GOOD, "svc"), Vec::<String>::new());
    }

    #[test]
    fn each_broken_convention_is_named() {
        let bad = "\
# HELP svc_requests Requests.
# TYPE svc_requests counter
svc_requests 1
# TYPE svc_latency_ms histogram
svc_latency_ms_bucket{le=\"+Inf\"} 1
svc_latency_ms_sum 1
svc_latency_ms_count 1
# HELP other_things_total Things.
# TYPE other_things_total gauge
other_things_total{user_id=\"u1\"} 1
";
        let v = convention_violations(bad, "svc").join("\n");
        for expected in [
            "svc_requests: a counter must end in _total",
            "svc_latency_ms: no HELP",
            "svc_latency_ms: unit \"ms\" is not a base unit",
            "svc_latency_ms: a histogram must end in its unit",
            "other_things_total: does not start with the service prefix svc_",
            "other_things_total: a gauge must not end in _total",
            "other_things_total: label \"user_id\" is an id, unbounded",
        ] {
            assert!(v.contains(expected), "missing {expected:?} in:\n{v}");
        }
    }

    #[test]
    fn a_label_with_too_many_values_is_unbounded() {
        let mut text = String::from("# HELP svc_hits_total Hits.\n# TYPE svc_hits_total counter\n");
        for i in 0..=MAX_LABEL_VALUES {
            text.push_str(&format!("svc_hits_total{{key=\"k{i}\"}} 1\n"));
        }
        let v = convention_violations(&text, "svc");
        assert_eq!(v, vec![format!("svc_hits_total: label \"key\" has 65 values, more than {MAX_LABEL_VALUES}")]);
    }
}
