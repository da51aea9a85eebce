//! Fuzz targets of the command parser: whatever the body, `command::parse` (the entry point
//! the route calls) answers with a `ValidSync` or a rejection that says why, and never panics.
//! Tests build with overflow checks, so an arithmetic overflow is a panic too.
//!
//! What an answer must be: a malformed body has a message; an invalid one lists at least one
//! violation, each with a JSON pointer and a detail; an accepted one becomes a DeviceSynced that
//! the generated encoder writes and the producer's schema reads back unchanged.
//!
//! `FUZZ_CASES` sets the number of cases (the defaults keep each target to a few seconds in a
//! debug build); `make fuzz` runs a million of each in release.

mod support;

use std::sync::OnceLock;

use apache_avro::reader::datum::GenericDatumReader;
use events::avro::Encode;
use events::DeviceSynced;
use ingest_api::command::{self, parse_command, Rejection, ValidSync, Violations, MAX_LISTED_VIOLATIONS};
use ingest_api::config::Limits;
use ingest_api::example::standard_sync;
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use serde_json::Value;
use support::{hostile, rich_command, END, NOW};
use testkit::fuzz::{self as fz, mutation, Mutation};

/// Every member name and string value of a command with every kind of sample: the vocabulary
/// arbitrary JSON draws from, so it reaches past the first type checks.
fn vocabulary() -> &'static (Vec<&'static str>, Vec<&'static str>) {
    static WORDS: OnceLock<(Vec<&'static str>, Vec<&'static str>)> = OnceLock::new();
    WORDS.get_or_init(|| {
        fn walk(v: &Value, keys: &mut Vec<String>, strings: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    for (k, child) in m {
                        keys.push(k.clone());
                        walk(child, keys, strings);
                    }
                }
                Value::Array(a) => a.iter().for_each(|c| walk(c, keys, strings)),
                Value::String(s) => strings.push(s.clone()),
                _ => {}
            }
        }
        let (mut keys, mut strings) = (Vec::new(), Vec::new());
        walk(&rich_command(1, 3), &mut keys, &mut strings);
        let leak = |mut v: Vec<String>| -> Vec<&'static str> {
            v.sort();
            v.dedup();
            v.into_iter().map(|s| &*Box::leak(s.into_boxed_str())).collect()
        };
        (leak(keys), leak(strings))
    })
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let (keys, strings) = vocabulary();
    let value = fz::json_value(keys, strings);
    // Mostly an object at the root, as a command is, with members from the command.
    let object = prop::collection::vec((prop::sample::select(keys.as_slice()), value.clone()), 0..16)
        .prop_map(|members| Value::Object(members.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
    prop_oneof![3 => object, 1 => value]
}

fn limits(small: bool) -> Limits {
    if small {
        Limits { max_samples_per_kind: 3, ..Limits::default() }
    } else {
        Limits::default()
    }
}

/// The reader of the schema producers write, built once.
fn producer_reader() -> &'static GenericDatumReader<'static> {
    static READER: OnceLock<GenericDatumReader<'static>> = OnceLock::new();
    READER.get_or_init(|| {
        GenericDatumReader::builder(events::device_synced::producer_schema()).build().expect("the schema is valid")
    })
}

/// An accepted command becomes an event that survives the generated encoder and the schema.
fn check_accepted(sync: ValidSync) -> TestCaseResult {
    prop_assert!(sync.window_start_ms <= sync.window_end_ms, "window {}..{}", sync.window_start_ms, sync.window_end_ms);
    let event = sync.into_event("user-1", "device-1", uuid::Uuid::from_u128(1), NOW);
    let mut bytes = Vec::new();
    event.encode(&mut bytes);
    let back: DeviceSynced = producer_reader()
        .read_deser(&mut bytes.as_slice())
        .map_err(|e| TestCaseError::fail(format!("the accepted command's event does not decode: {e}")))?;
    prop_assert_eq!(back, event);
    Ok(())
}

fn check_violations(v: &Violations) -> TestCaseResult {
    prop_assert!(!v.listed.is_empty(), "a rejection lists no violation");
    prop_assert!(v.listed.len() <= MAX_LISTED_VIOLATIONS);
    for violation in &v.listed {
        prop_assert!(!violation.detail.trim().is_empty(), "{:?} has no detail", violation);
        prop_assert!(
            violation.pointer.is_empty() || violation.pointer.starts_with('/'),
            "{:?} is not a JSON pointer",
            violation
        );
    }
    Ok(())
}

/// What every answer of `command::parse` must be.
fn check(outcome: Result<ValidSync, Rejection>) -> TestCaseResult {
    match outcome {
        Ok(sync) => check_accepted(sync),
        Err(Rejection::Malformed(message)) => {
            prop_assert!(!message.trim().is_empty(), "a malformed body without a message");
            Ok(())
        }
        Err(Rejection::Invalid(v)) => check_violations(&v),
    }
}

/// `parse_command`, the validator over a whole tree, answers the same kinds of answers.
fn check_tree(body: &Value, key: Option<&str>, limits: &Limits) -> TestCaseResult {
    match parse_command(body, key, limits, NOW) {
        Ok(sync) => check_accepted(sync),
        Err(v) => check_violations(&v),
    }
}

/// An Idempotency-Key: none, the command's own sync id, another id, or garbage.
fn key(pick: u8, own: &str) -> Option<String> {
    match pick % 5 {
        0 => None,
        1 => Some(own.to_owned()),
        2 => Some(uuid::Uuid::from_u128(99).to_string()),
        3 => Some("not-a-uuid".to_owned()),
        _ => Some(own.to_uppercase()),
    }
}

#[test]
fn parse_never_panics_on_arbitrary_bytes() {
    let body = prop_oneof![
        any::<Vec<u8>>(),
        any::<String>().prop_map(String::into_bytes),
        // Truncations of a valid command: JSON that ends anywhere.
        (any::<u64>(), any::<prop::sample::Index>()).prop_map(|(seed, cut)| {
            let mut bytes = serde_json::to_vec(&rich_command(seed % 100, 3)).unwrap();
            bytes.truncate(cut.index(bytes.len() + 1));
            bytes
        }),
    ];
    fz::run("command-arbitrary-bytes", 3_000, (body, any::<bool>()), |(body, small)| {
        check(command::parse(&body, None, &limits(small), NOW))
    });
}

#[test]
fn parse_never_panics_on_arbitrary_json() {
    fz::run("command-arbitrary-json", 1_000, (arbitrary_json(), any::<u8>(), any::<bool>()), |(body, k, small)| {
        let own = body.get("sync_id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let key = key(k, &own);
        let limits = limits(small);
        let bytes = serde_json::to_vec(&body).unwrap();
        check(command::parse(&bytes, key.as_deref(), &limits, NOW))?;
        check_tree(&body, key.as_deref(), &limits)
    });
}

/// One mutated command: which base (a rich command cut to `keep` samples of each kind, or the
/// whole standard sync), its mutations, then at most one change only JSON text can carry (a
/// duplicate member, nesting far deeper than serde_json's recursion limit).
#[derive(Debug, Clone)]
struct MutatedSync {
    seed: u64,
    keep: Option<usize>,
    mutations: Vec<Mutation>,
    text: Option<TextMutation>,
    key: u8,
    small: bool,
}

#[derive(Debug, Clone)]
enum TextMutation {
    DuplicateMember { object: usize, pick: usize },
    Nesting { path: usize, depth: usize },
}

fn mutated_sync() -> impl Strategy<Value = MutatedSync> {
    let text = prop_oneof![
        (any::<usize>(), any::<usize>()).prop_map(|(object, pick)| TextMutation::DuplicateMember { object, pick }),
        (any::<usize>(), prop_oneof![0usize..200, 200usize..20_000])
            .prop_map(|(path, depth)| TextMutation::Nesting { path, depth }),
    ];
    (
        0u64..1_000,
        prop_oneof![3 => (0usize..6).prop_map(Some), 1 => Just(None)],
        prop::collection::vec(mutation(), 1..4),
        prop::option::weighted(0.2, text),
        any::<u8>(),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(seed, keep, mutations, text, key, small)| MutatedSync {
            seed,
            keep,
            mutations,
            text,
            key,
            small,
        })
}

#[test]
fn parse_never_panics_on_mutations_of_the_standard_sync() {
    fz::run("command-mutated-sync", 1_000, mutated_sync(), |case| {
        let mut body = match case.keep {
            Some(keep) => rich_command(case.seed, keep),
            None => standard_sync(uuid::Uuid::from_u128(u128::from(case.seed) + 1), END, case.seed, case.seed % 8 == 0),
        };
        let own = body["sync_id"].as_str().unwrap_or_default().to_owned();
        for m in &case.mutations {
            fz::apply(&mut body, m, hostile);
        }
        let key = key(case.key, &own);
        let limits = limits(case.small);
        let bytes = match &case.text {
            None => serde_json::to_vec(&body).unwrap(),
            Some(TextMutation::DuplicateMember { object, pick }) => {
                fz::to_vec_with_duplicate_member(&body, *object, &hostile(*pick, &Value::Null))
            }
            Some(TextMutation::Nesting { path, depth }) => fz::to_vec_with_nesting(&body, *path, *depth),
        };
        check(command::parse(&bytes, key.as_deref(), &limits, NOW))?;
        check_tree(&body, key.as_deref(), &limits)
    });
}
