//! The typed fast path and the full validator agree, and no integer breaks either.
//!
//! - Property: for arbitrary mutations of a valid command (values swapped for hostile ones,
//!   members removed or added, elements duplicated), the typed path accepts exactly what the full
//!   validator accepts, with the same `ValidSync`. `PROPTEST_CASES` overrides the 10,000 cases.
//! - Exhaustive: every integer field of a command set to each extreme value is answered (accepted
//!   or rejected), never a panic or an overflow (tests build with overflow checks); a time field
//!   set to an extreme is rejected.

use ingest_api::command::{self, full, parse_command, parse_typed, Rejection, ValidSync, Violations};
use ingest_api::config::Limits;
use ingest_api::example::standard_sync;
use proptest::prelude::*;
use serde_json::{json, Value};

const END: i64 = 1_764_000_000_000;
const NOW: i64 = END + 1_200;

/// A command with every kind of sample, the long arrays cut to `keep` items so mutations land
/// anywhere in it.
fn rich_command(seed: u64, keep: usize) -> Value {
    let mut body = standard_sync(uuid::Uuid::from_u128(u128::from(seed) + 1), END, seed, true);
    let start = body["window"]["start_ms"].as_i64().unwrap();
    for kind in ["heart_rate", "steps", "sleep"] {
        body[kind].as_array_mut().unwrap().truncate(keep);
    }
    body["rr"]["blocks"][0]["intervals"].as_array_mut().unwrap().truncate(keep);
    body["rr"]["blocks"]
        .as_array_mut()
        .unwrap()
        .push(json!({"first_beat_ms": start + 60_000, "intervals": [800, 810]}));
    body["workouts"] =
        json!([{"id": "w-1", "version": 2, "sport": "running", "start_ms": END - 600_000, "end_ms": END - 60_000}]);
    body["spo2"] = json!([{"t": start + 1_000, "percent": 96}, {"t": start + 2_000, "percent": 255}]);
    body["skin_temperature"] = json!([{"night_end_ms": start + 5_000, "deviation_c": 0.3}]);
    body["wear"] = json!([{"t": start + 3_000, "state": "on_wrist"}, {"t": start + 4_000, "state": "off_wrist"}]);
    body["profile"]["hr_max"] = json!(188);
    body["device"]["battery_percent"] = json!(255);
    body
}

/// Every path in a JSON tree, as keys and indices.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn paths(v: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(Step::Key(k.clone()));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                prefix.push(Step::Index(i));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn at<'v>(v: &'v mut Value, path: &[Step]) -> &'v mut Value {
    path.iter().fold(v, |v, step| match step {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

/// Values that stress a parser: wrong types, sentinels, extremes, near-misses of enum names.
fn hostile(pick: usize, near: &Value) -> Value {
    let n = near.as_i64().unwrap_or(0);
    let candidates = [
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(255),
        json!(65535),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(i64::MAX / 4),
        json!(i64::MAX / 4 + 1),
        json!(1.5),
        json!(-0.0),
        json!(1e300),
        json!(""),
        json!("   "),
        json!("x".repeat(300)),
        json!("é\u{0}\"\\"),
        json!("locked"),
        json!("strap"),
        json!("1/1024s"),
        json!("rem"),
        json!("female"),
        json!("off_wrist"),
        json!(uuid::Uuid::from_u128(7).to_string()),
        json!([]),
        json!({}),
        json!([1, 2, 3]),
        json!([n, 70, "locked"]),
        json!({"t": n}),
        json!({"unit": "ms"}),
        json!(n.saturating_add(1)),
        json!(n.saturating_sub(1)),
        json!(n.saturating_add(86_400_000)),
        json!(n.saturating_sub(40 * 86_400_000)),
        json!(n.saturating_mul(2)),
    ];
    candidates[pick % candidates.len()].clone()
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace { path: usize, pick: usize },
    Remove { path: usize },
    Duplicate { path: usize },
    Unknown { path: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => (any::<usize>(), any::<usize>()).prop_map(|(path, pick)| Mutation::Replace { path, pick }),
        2 => any::<usize>().prop_map(|path| Mutation::Remove { path }),
        1 => any::<usize>().prop_map(|path| Mutation::Duplicate { path }),
        1 => any::<usize>().prop_map(|path| Mutation::Unknown { path }),
    ]
}

fn apply(body: &mut Value, m: &Mutation) {
    let mut all = Vec::new();
    paths(body, &mut Vec::new(), &mut all);
    let choose = |i: usize| all[i % all.len()].clone();
    match *m {
        Mutation::Replace { path, pick } => {
            let path = choose(path);
            let target = at(body, &path);
            *target = hostile(pick, target);
        }
        Mutation::Remove { path } => {
            let path = choose(path);
            if let Some((last, parent)) = path.split_last() {
                match (at(body, parent), last) {
                    (Value::Object(o), Step::Key(k)) => {
                        o.remove(k);
                    }
                    (Value::Array(a), Step::Index(i)) => {
                        a.remove(*i);
                    }
                    _ => {}
                }
            }
        }
        Mutation::Duplicate { path } => {
            let path = choose(path);
            if let Value::Array(a) = at(body, &path) {
                if let Some(first) = a.first().cloned() {
                    a.push(first);
                }
            }
        }
        Mutation::Unknown { path } => {
            let path = choose(path);
            if let Value::Object(o) = at(body, &path) {
                o.insert("from_a_newer_app".into(), json!({"anything": [1, "two"]}));
            }
        }
    }
}

fn limits(small: bool) -> Limits {
    if small {
        Limits { max_samples_per_kind: 3, ..Limits::default() }
    } else {
        Limits::default()
    }
}

/// The typed path's answer, and the full validator's as the service runs it (the bounded parse),
/// checked against the whole-tree walk of the same validator.
fn both(body: &Value, key: Option<&str>, limits: &Limits) -> (Option<ValidSync>, Result<ValidSync, Violations>) {
    let bytes = serde_json::to_vec(body).unwrap();
    let tree = parse_command(body, key, limits, NOW);
    let bounded = full::parse_body(&bytes, key, limits, NOW).map_err(|r| match r {
        Rejection::Invalid(v) => v,
        Rejection::Malformed(e) => panic!("serialized JSON is JSON: {e}"),
    });
    // Past the per-kind limit the bounded parse only counts elements, so with a tight limit only
    // the verdict must agree; otherwise the answers are the same.
    if limits.max_samples_per_kind >= 1_000 {
        assert_eq!(bounded, tree, "the bounded parse validates as the whole tree does");
    } else {
        assert_eq!(bounded.is_ok(), tree.is_ok(), "the bounded parse accepts what the whole tree accepts");
    }
    (parse_typed(&bytes, key, limits, NOW), bounded)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(10_000)
}

/// One generated case: a command, its mutations, which Idempotency-Key, whether limits are tight.
fn case() -> impl Strategy<Value = (u64, usize, Vec<Mutation>, u8, bool)> {
    (0u64..1_000, 0usize..6, prop::collection::vec(mutation(), 0..4), 0u8..4, prop::bool::weighted(0.1))
}

#[test]
fn the_typed_and_full_paths_accept_the_same_commands_alike() {
    let config = ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let (accepted, rejected) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    let result = runner.run(&case(), |(seed, keep, mutations, key, small)| {
        let mut body = rich_command(seed, keep);
        let id = body["sync_id"].as_str().unwrap().to_owned();
        for m in &mutations {
            apply(&mut body, m);
        }
        let other = uuid::Uuid::from_u128(99).to_string();
        let key = match key {
            0 => None,
            1 => Some(id.as_str()),
            2 => Some(other.as_str()),
            _ => Some("not-a-uuid"),
        };
        match both(&body, key, &limits(small)) {
            (Some(typed), Ok(full)) => {
                accepted.set(accepted.get() + 1);
                prop_assert_eq!(typed, full);
            }
            (None, Err(_)) => rejected.set(rejected.get() + 1),
            (Some(_), Err(v)) => {
                prop_assert!(false, "typed accepted what the full path rejects: {:?}\n{}", v.listed, body)
            }
            (None, Ok(_)) => prop_assert!(false, "typed declined a valid command:\n{}", body),
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // Both answers must be common, or the property says little.
    let (a, r) = (accepted.get(), rejected.get());
    println!("{a} accepted by both, {r} rejected by both");
    assert!(a > cases() / 10 && r > cases() / 10, "{a} accepted, {r} rejected");
}

#[test]
fn the_typed_path_accepts_the_unmutated_commands() {
    for seed in 0..20 {
        let body = standard_sync(uuid::Uuid::new_v4(), END, seed, seed % 8 == 0);
        let (typed, full) = both(&body, None, &Limits::default());
        assert_eq!(typed.expect("typed accepts the standard sync"), full.unwrap());
        let rich = rich_command(seed, 5);
        let (typed, full) = both(&rich, None, &Limits::default());
        assert_eq!(typed.expect("typed accepts every kind of sample"), full.unwrap());
    }
}

#[test]
fn arrays_in_place_of_objects_and_enum_maps_are_rejected_by_both() {
    // serde would fill a struct from an array by position, and an enum from {"name": null}.
    let mut body = rich_command(1, 3);
    let t = body["heart_rate"][0]["t"].clone();
    body["heart_rate"][0] = json!([t, 70, "locked"]);
    let (typed, full) = both(&body, None, &Limits::default());
    assert!(typed.is_none());
    assert_eq!(full.unwrap_err()[0].pointer, "/heart_rate/0");
    let mut body = rich_command(1, 3);
    body["heart_rate"][0]["quality"] = json!({"locked": null});
    let (typed, full) = both(&body, None, &Limits::default());
    assert!(typed.is_none());
    assert_eq!(full.unwrap_err()[0].pointer, "/heart_rate/0/quality");
}

/// Every integer in the tree, by path.
fn integer_paths(body: &Value) -> Vec<Vec<Step>> {
    let mut all = Vec::new();
    paths(body, &mut Vec::new(), &mut all);
    all.into_iter().filter(|p| at(&mut body.clone(), p).is_i64()).collect()
}

fn is_time(path: &[Step]) -> bool {
    matches!(path.last(), Some(Step::Key(k)) if k.ends_with("_ms") || k == "t")
}

#[test]
fn every_integer_field_at_every_extreme_is_answered_and_extreme_times_are_rejected() {
    let base = rich_command(3, 4);
    let extremes =
        [json!(i64::MIN), json!(i64::MIN + 1), json!(-1), json!(i64::MAX), json!(i64::MAX / 2), json!(u64::MAX)];
    let fields = integer_paths(&base);
    assert!(fields.len() > 40, "the command has {} integer fields", fields.len());
    let mut rejected_times = 0;
    for path in &fields {
        for extreme in &extremes {
            let mut body = base.clone();
            *at(&mut body, path) = extreme.clone();
            let bytes = serde_json::to_vec(&body).unwrap();
            // Through the entry point the service uses: typed, then full.
            let outcome = command::parse(&bytes, None, &Limits::default(), NOW);
            let far = extreme.as_i64().is_none_or(|n| n.unsigned_abs() > (i64::MAX / 4) as u64);
            if is_time(path) && far {
                assert!(outcome.is_err(), "{path:?} = {extreme} was accepted");
                rejected_times += 1;
            }
        }
    }
    assert!(rejected_times > 20);
}
