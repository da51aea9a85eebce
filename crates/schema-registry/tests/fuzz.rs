//! Fuzz targets of the registry's schema parser (`registry::candidate`, what register, look-up
//! and the compatibility routes run on every request body's schema): whatever the text, it is a
//! schema or an "Invalid schema" with a reason, never a panic. What parses round-trips through
//! its Avro canonical form and its canonical JSON, and the compatibility check that registration
//! runs next answers too.
//!
//! `FUZZ_CASES` sets the number of cases; `make fuzz` runs a million of each in release.

use std::sync::OnceLock;

use apache_avro::Schema;
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use schema_registry::compat::Level;
use schema_registry::error::ApiError;
use schema_registry::registry::{candidate, canonical_json, SchemaRequest};
use serde_json::{json, Value};
use testkit::fuzz::{self as fz, mutation, Mutation};

/// The real schemas, oldest first: what mutations start from.
const SCHEMAS: &[&str] =
    &[include_str!("../../../schemas/device-synced/v1.avsc"), include_str!("../../../schemas/device-synced/v2.avsc")];

/// Avro's vocabulary: attribute names, type names, logical types, names the real schemas define.
const KEYS: &[&str] = &[
    "type",
    "name",
    "namespace",
    "fields",
    "items",
    "values",
    "symbols",
    "size",
    "default",
    "doc",
    "aliases",
    "order",
    "logicalType",
    "precision",
    "scale",
];
const STRINGS: &[&str] = &[
    "null",
    "boolean",
    "int",
    "long",
    "float",
    "double",
    "bytes",
    "string",
    "record",
    "error",
    "enum",
    "array",
    "map",
    "fixed",
    "uuid",
    "decimal",
    "big-decimal",
    "date",
    "time-millis",
    "timestamp-millis",
    "local-timestamp-nanos",
    "duration",
    "ascending",
    "ignore",
    "A",
    "a.b.C",
    "fitness.events.DeviceSynced",
    "DeviceInfo",
    "HrQuality",
];

/// Values that stress a schema parser: the generic hostile values, then Avro's own near-misses.
fn hostile(pick: usize, _near: &Value) -> Value {
    let pick = pick % (fz::HOSTILE_VALUES + 13);
    if pick < fz::HOSTILE_VALUES {
        return fz::hostile_value(pick);
    }
    match pick - fz::HOSTILE_VALUES {
        0 => json!("record"),
        1 => json!("enum"),
        2 => json!(["null", "null"]),
        3 => json!(["null", ["int"]]),
        4 => json!({"type": "fixed", "name": "F", "size": -1}),
        5 => json!({"type": "bytes", "logicalType": "decimal", "precision": 0, "scale": 5}),
        6 => json!({"type": "fixed", "name": "D", "size": 16, "logicalType": "duration"}),
        7 => json!({"type": "array", "items": "fitness.events.DeviceSynced"}),
        8 => json!({"type": "record", "name": "R", "fields": [{"name": "r", "type": "R"}]}),
        9 => json!("fitness.events.DeviceSynced"),
        10 => json!({"type": "enum", "name": "E", "symbols": ["A", "A"], "default": "B"}),
        11 => json!({"type": "array", "items": "int", "values": 5}),
        _ => json!({"type": "map", "values": {"type": "long", "logicalType": "timestamp-nanos"}}),
    }
}

/// The parsed real schemas as versions 1, 2, …, for the compatibility check.
fn existing() -> &'static [(i32, Schema)] {
    static EXISTING: OnceLock<Vec<(i32, Schema)>> = OnceLock::new();
    EXISTING.get_or_init(|| {
        SCHEMAS.iter().zip(1..).map(|(s, v)| (v, Schema::parse_str(s).expect("the real schemas parse"))).collect()
    })
}

fn request(schema: String) -> SchemaRequest {
    SchemaRequest { schema, schema_type: None, references: Vec::new() }
}

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(m) => m.values().any(has_float),
        _ => false,
    }
}

/// What every answer must be: a reason, or a schema that round-trips and can be checked.
fn check(result: Result<schema_registry::registry::Candidate, ApiError>, referenced: &[String]) -> TestCaseResult {
    let candidate = match result {
        Err(ApiError::InvalidSchema(reason)) => {
            prop_assert!(!reason.trim().is_empty(), "an invalid schema without a reason");
            return Ok(());
        }
        Err(other) => return Err(TestCaseError::fail(format!("not an invalid-schema error: {other:?}"))),
        Ok(c) => c,
    };
    // The canonical JSON is JSON and canonical: canonicalising it again changes nothing. Except
    // in a float: serde_json's default parser is not correctly rounded (its `float_roundtrip`
    // feature is), so a float with a long mantissa may move by one unit in the last place.
    let again = canonical_json(&candidate.canonical);
    prop_assert!(again.is_ok(), "the canonical JSON is not JSON: {}", candidate.canonical);
    if !has_float(&serde_json::from_str(&candidate.canonical).unwrap_or_default()) {
        prop_assert_eq!(again.ok(), Some(candidate.canonical.clone()));
    }
    // Avro's Parsing Canonical Form parses back. apache-avro 0.22 writes a primitive with a
    // logical type as {"type":"long"} rather than "long", so the form is stable only from its
    // second round on: that is what is checked.
    let reparse = |text: &str| -> Result<Schema, TestCaseError> {
        let parsed = if referenced.is_empty() {
            Schema::parse_str(text)
        } else {
            Schema::parse_str_with_list(text, referenced).map(|(s, _)| s)
        };
        parsed.map_err(|e| TestCaseError::fail(format!("the canonical form {text} does not parse: {e}")))
    };
    let second = reparse(&candidate.parsed.canonical_form())?.canonical_form();
    prop_assert_eq!(reparse(&second)?.canonical_form(), second);
    // Registration checks a candidate against the subject's versions next: both directions,
    // every version.
    let _ = Level::FullTransitive.check(&candidate.parsed, existing());
    Ok(())
}

#[test]
fn schema_parser_never_panics_on_arbitrary_text() {
    fz::run("schema-arbitrary-text", 5_000, any::<String>(), |text| check(candidate(&request(text), &[]), &[]));
}

#[test]
fn schema_parser_never_panics_on_arbitrary_json() {
    fz::run("schema-arbitrary-json", 3_000, fz::json_value(KEYS, STRINGS), |schema| {
        check(candidate(&request(schema.to_string()), &[]), &[])
    });
}

/// One of the real schemas (by index) and the mutations applied to it.
type Mutated = (usize, Vec<Mutation>);

/// A mutated real schema, and whether a second mutated one is passed as a referenced schema.
fn mutated_schema() -> impl Strategy<Value = (Mutated, Option<Mutated>)> {
    (
        (0..SCHEMAS.len(), prop::collection::vec(mutation(), 1..6)),
        prop::option::weighted(0.2, (0..SCHEMAS.len(), prop::collection::vec(mutation(), 0..3))),
    )
}

fn mutate(which: usize, mutations: &[Mutation]) -> String {
    let mut schema: Value = serde_json::from_str(SCHEMAS[which]).expect("the real schemas are JSON");
    for m in mutations {
        fz::apply(&mut schema, m, hostile);
    }
    schema.to_string()
}

#[test]
fn schema_parser_never_panics_on_mutations_of_the_real_schemas() {
    fz::run("schema-mutated", 1_000, mutated_schema(), |((which, mutations), reference)| {
        let referenced: Vec<String> = reference.iter().map(|(w, m)| mutate(*w, m)).collect();
        check(candidate(&request(mutate(which, &mutations)), &referenced), &referenced)
    });
}

/// Inputs the targets found that panicked apache-avro 0.22: `canonical_form` on a keyword
/// attribute that is not a schema (here "fields" on a map), and `parse_str` when a field's
/// default does not fit such a type. The registry rejects both with a reason.
#[test]
fn a_keyword_attribute_that_is_not_a_schema_is_an_invalid_schema_not_a_panic() {
    for text in [
        r#"[{"type": {"type": "map", "values": "null", "fields": null}}]"#,
        r#"{"type": "array", "items": "int", "values": 5}"#,
        r#"{"type": "record", "name": "R", "fields": [
            {"name": "a", "type": {"type": "array", "items": "int", "values": 5}, "default": "x"}]}"#,
    ] {
        match candidate(&request(text.to_owned()), &[]) {
            Err(ApiError::InvalidSchema(reason)) => assert!(reason.contains("Avro library"), "{text}: {reason}"),
            other => panic!("{text}: {:?}", other.map(|c| c.canonical)),
        }
    }
}
