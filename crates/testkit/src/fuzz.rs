//! Fuzzing on stable Rust with proptest: the runner every `tests/fuzz.rs` uses, arbitrary JSON,
//! and structural mutations of a JSON document (shared with the command property test).
//!
//! `FUZZ_CASES` sets the number of cases of every target; without it each target runs its own
//! small default, sized for the debug build of `make test`. `make fuzz` (deploy/fuzz.sh) runs
//! them in release with a million cases each and reads the line [`run`] prints.

use std::cell::Cell;
use std::fmt::Debug;
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseResult, TestRunner};
use serde_json::{json, Map, Number, Value};

/// The case count: `FUZZ_CASES` when set, else the target's default.
pub fn cases(default: u32) -> u32 {
    match std::env::var("FUZZ_CASES") {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("FUZZ_CASES={v:?} is not a number")),
        Err(_) => default,
    }
}

/// Runs `test` on `cases(default)` inputs drawn from `strategy`. A failing input (an Err or a
/// panic) is shrunk to a minimal one and the test panics with it; nothing is written to disk
/// (no failure persistence), so a fuzz run leaves the checkout clean. On success prints
/// `fuzz <name>: <cases> cases in <seconds> s`, the line `make fuzz` reports.
pub fn run<S>(name: &str, default: u32, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: Debug,
{
    let cases = cases(default);
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let ran = Cell::new(0u64);
    let started = Instant::now();
    let result = runner.run(&strategy, |input| {
        ran.set(ran.get() + 1);
        test(input)
    });
    if let Err(e) = result {
        panic!("fuzz {name} failed: {e}");
    }
    println!("fuzz {name}: {} cases in {:.3} s", ran.get(), started.elapsed().as_secs_f64());
}

/// Arbitrary JSON, biased towards a document's own vocabulary so it gets past the first checks:
/// object keys are often from `keys` and strings often from `strings` (neither may be empty).
/// Numbers include the extremes; nesting goes up to 6 levels.
pub fn json_value(keys: &'static [&'static str], strings: &'static [&'static str]) -> BoxedStrategy<Value> {
    let number = prop_oneof![
        any::<i64>().prop_map(Value::from),
        (-5i64..5_000).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // NaN and the infinities are not JSON numbers; they become null as serde_json does.
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(EXTREME_NUMBERS).prop_map(extreme_number),
    ];
    let string = prop_oneof![
        3 => prop::sample::select(strings).prop_map(Value::from),
        1 => any::<String>().prop_map(Value::from),
    ];
    let leaf = prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::from), number, string];
    let key = prop_oneof![3 => prop::sample::select(keys).prop_map(str::to_owned), 1 => any::<String>()];
    leaf.prop_recursive(6, 256, 12, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..12).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..12)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
    .boxed()
}

/// Numbers at the edges of what a parser may meet (indices into [`extreme_number`]).
const EXTREME_NUMBERS: &[u8] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

fn extreme_number(i: u8) -> Value {
    match i {
        0 => json!(i64::MIN),
        1 => json!(i64::MAX),
        2 => json!(u64::MAX),
        3 => json!(i32::MIN),
        4 => json!(i32::MAX),
        5 => json!(u32::MAX),
        6 => json!(1e308),
        7 => json!(-1e308),
        8 => json!(5e-324),
        9 => json!(-0.0),
        _ => json!(-1),
    }
}

/// Values that stress any JSON reader: every type, extremes, strings that look like numbers
/// nobody should accept, and deep nesting. [`HOSTILE_VALUES`] of them, picked by index.
pub fn hostile_value(pick: usize) -> Value {
    match pick % HOSTILE_VALUES {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(0),
        3 => json!(-1),
        4 => json!(255),
        5 => json!(65535),
        6 => json!(i64::MIN),
        7 => json!(i64::MAX),
        8 => json!(u64::MAX),
        9 => json!(i64::MAX / 4),
        10 => json!(i64::MAX / 4 + 1),
        11 => json!(1.5),
        12 => json!(-0.0),
        13 => json!(1e300),
        14 => json!(1e308),
        15 => json!(-1e308),
        16 => json!(5e-324),
        17 => json!(""),
        18 => json!("   "),
        19 => json!("x".repeat(300)),
        20 => json!("é\u{0}\"\\"),
        21 => json!("NaN"),
        22 => json!("-Infinity"),
        23 => json!("1e999"),
        24 => json!("-0"),
        25 => json!("9223372036854775808"),
        26 => json!([]),
        27 => json!({}),
        28 => json!([1, 2, 3]),
        // Deep, yet three of them nested in a command stay within serde_json's recursion limit
        // (128), so a mutated document still parses back; deeper is the text-level mutations'.
        29 => nested(40, |v| json!([v])),
        _ => nested(40, |v| json!({ "a": v })),
    }
}

/// How many values [`hostile_value`] has.
pub const HOSTILE_VALUES: usize = 31;

/// `depth` levels of `wrap` around a null.
pub fn nested(depth: usize, wrap: impl Fn(Value) -> Value) -> Value {
    (0..depth).fold(Value::Null, |v, _| wrap(v))
}

/// A path in a JSON tree, as keys and indices.
#[derive(Debug, Clone)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// Every path in a JSON tree (the root's is empty), depth first.
pub fn paths(v: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
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

/// The value at a path that [`paths`] returned.
pub fn at<'v>(v: &'v mut Value, path: &[Step]) -> &'v mut Value {
    path.iter().fold(v, |v, step| match step {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

/// One change to a document. `path` picks one of its paths (modulo their number), so the same
/// mutation applies to any document.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// The value swapped for the `pick`th hostile value.
    Replace { path: usize, pick: usize },
    /// The member or element removed.
    Remove { path: usize },
    /// An array's first element appended again.
    Duplicate { path: usize },
    /// An unknown member added to an object.
    Unknown { path: usize },
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => (any::<usize>(), any::<usize>()).prop_map(|(path, pick)| Mutation::Replace { path, pick }),
        2 => any::<usize>().prop_map(|path| Mutation::Remove { path }),
        1 => any::<usize>().prop_map(|path| Mutation::Duplicate { path }),
        1 => any::<usize>().prop_map(|path| Mutation::Unknown { path }),
    ]
}

/// Applies a mutation; `hostile(pick, current)` gives the replacement value.
pub fn apply(body: &mut Value, m: &Mutation, hostile: impl Fn(usize, &Value) -> Value) {
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

/// The document as JSON text in which the `pick`th object (modulo their number; none when it has
/// none) repeats its first member with `value`. A `Value` cannot hold a duplicate member, but a
/// body can, and parsers disagree on it: first wins, last wins, or an error.
pub fn to_vec_with_duplicate_member(body: &Value, pick: usize, value: &Value) -> Vec<u8> {
    fn count(v: &Value) -> usize {
        match v {
            Value::Object(m) => 1 + m.values().map(count).sum::<usize>(),
            Value::Array(a) => a.iter().map(count).sum(),
            _ => 0,
        }
    }
    fn write(v: &Value, target: usize, seen: &mut usize, dup: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Object(m) => {
                let this = *seen;
                *seen += 1;
                out.push(b'{');
                for (i, (k, child)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    serde_json::to_writer(&mut *out, k).expect("a string serialises");
                    out.push(b':');
                    write(child, target, seen, dup, out);
                }
                if let (true, Some(first)) = (this == target, m.keys().next()) {
                    out.push(b',');
                    serde_json::to_writer(&mut *out, first).expect("a string serialises");
                    out.push(b':');
                    serde_json::to_writer(&mut *out, dup).expect("a value serialises");
                }
                out.push(b'}');
            }
            Value::Array(a) => {
                out.push(b'[');
                for (i, child) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(child, target, seen, dup, out);
                }
                out.push(b']');
            }
            other => serde_json::to_writer(&mut *out, other).expect("a value serialises"),
        }
    }
    let objects = count(body).max(1);
    let mut out = Vec::new();
    write(body, pick % objects, &mut 0, value, &mut out);
    out
}

/// The document as JSON text with the value at its `pick`th path (modulo their number) replaced
/// by `depth` nested arrays, deeper than a `Value` can be dropped or printed safely: what a
/// hostile client sends to exhaust a recursive parser's stack.
pub fn to_vec_with_nesting(body: &Value, pick: usize, depth: usize) -> Vec<u8> {
    const MARK: &str = "\u{1}nest\u{1}";
    let mut all = Vec::new();
    paths(body, &mut Vec::new(), &mut all);
    let mut marked = body.clone();
    *at(&mut marked, &all[pick % all.len()]) = json!(MARK);
    let text = serde_json::to_string(&marked).expect("a value serialises");
    let quoted = serde_json::to_string(MARK).expect("a string serialises");
    let nest = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    text.replacen(&quoted, &nest, 1).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_member_is_written_after_the_others() {
        let body = json!({"a": 1, "b": {"c": 2}});
        let text = |pick| String::from_utf8(to_vec_with_duplicate_member(&body, pick, &json!("x"))).unwrap();
        assert_eq!(text(0), r#"{"a":1,"b":{"c":2},"a":"x"}"#);
        assert_eq!(text(1), r#"{"a":1,"b":{"c":2,"c":"x"}}"#);
        // Without the duplicate it is the document itself.
        let plain = to_vec_with_duplicate_member(&json!([1, [2]]), 0, &json!(0));
        assert_eq!(plain, serde_json::to_vec(&json!([1, [2]])).unwrap());
    }

    #[test]
    fn nesting_replaces_the_picked_value() {
        let body = json!({"a": 1, "b": [2]});
        let text = |pick, depth| String::from_utf8(to_vec_with_nesting(&body, pick, depth)).unwrap();
        assert_eq!(text(1, 2), r#"{"a":[[]],"b":[2]}"#);
        assert_eq!(text(3, 1), r#"{"a":1,"b":[[]]}"#);
        assert_eq!(text(0, 0), "");
    }

    #[test]
    fn hostile_values_serialise_and_parse_back() {
        for i in 0..HOSTILE_VALUES {
            let v = hostile_value(i);
            let text = serde_json::to_vec(&json!({"x": {"y": [v.clone()]}})).unwrap();
            let back: Value = serde_json::from_slice(&text).unwrap();
            assert_eq!(back["x"]["y"][0], v, "value {i}");
        }
    }
}
