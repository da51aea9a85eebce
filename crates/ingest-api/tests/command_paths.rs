//! The typed fast path and the full validator agree, and no integer breaks either.
//!
//! - Property: for arbitrary mutations of a valid command (values swapped for hostile ones,
//!   members removed or added, elements duplicated), the typed path accepts exactly what the full
//!   validator accepts, with the same `ValidSync`. `PROPTEST_CASES` overrides the 10,000 cases.
//! - Exhaustive: every integer field of a command set to each extreme value is answered (accepted
//!   or rejected), never a panic or an overflow (tests build with overflow checks); a time field
//!   set to an extreme is rejected.
//!
//! The commands and hostile values (`tests/support`) and the mutations (`testkit::fuzz`) are
//! shared with the fuzz targets (`tests/fuzz.rs`).

mod support;

use ingest_api::command::{self, full, parse_command, parse_typed, Rejection, ValidSync, Violations};
use ingest_api::config::Limits;
use ingest_api::example::standard_sync;
use proptest::prelude::*;
use serde_json::{json, Value};
use support::{hostile, rich_command, END, NOW};
use testkit::fuzz::{apply, at, mutation, paths, Mutation, Step};

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
            apply(&mut body, m, hostile);
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
