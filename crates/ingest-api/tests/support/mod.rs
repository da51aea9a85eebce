//! Commands and hostile values shared by the command property test (`command_paths.rs`) and the
//! fuzz targets (`fuzz.rs`); the generic JSON mutations are `testkit::fuzz`'s.

use ingest_api::example::standard_sync;
use serde_json::{json, Value};

/// The device clock at the end of every generated command's window.
pub const END: i64 = 1_764_000_000_000;
/// The server's clock when they arrive: the standard sync's phone time.
pub const NOW: i64 = END + 1_200;

/// A command with every kind of sample, the long arrays cut to `keep` items so mutations land
/// anywhere in it.
pub fn rich_command(seed: u64, keep: usize) -> Value {
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

/// Values that stress the command parser: the generic hostile values (wrong types, sentinels,
/// extremes, deep nesting), then near-misses of the command's enum names and times near `near`.
pub fn hostile(pick: usize, near: &Value) -> Value {
    let pick = pick % (testkit::fuzz::HOSTILE_VALUES + 15);
    if pick < testkit::fuzz::HOSTILE_VALUES {
        return testkit::fuzz::hostile_value(pick);
    }
    let n = near.as_i64().unwrap_or(0);
    match pick - testkit::fuzz::HOSTILE_VALUES {
        0 => json!("locked"),
        1 => json!("strap"),
        2 => json!("1/1024s"),
        3 => json!("rem"),
        4 => json!("female"),
        5 => json!("off_wrist"),
        6 => json!(uuid::Uuid::from_u128(7).to_string()),
        7 => json!([n, 70, "locked"]),
        8 => json!({"t": n}),
        9 => json!({"unit": "ms"}),
        10 => json!(n.saturating_add(1)),
        11 => json!(n.saturating_sub(1)),
        12 => json!(n.saturating_add(86_400_000)),
        13 => json!(n.saturating_sub(40 * 86_400_000)),
        _ => json!(n.saturating_mul(2)),
    }
}
