//! The validation rules of the SyncDevice command (docs/ingest-api.md), without I/O: which violations reject the command
//! (with a JSON pointer each) and which only drop a sample under a counted reason.

use ingest_api::command::{self, parse_command, Rejection, ValidSync, Violations};
use ingest_api::config::Limits;
use ingest_api::example::standard_sync;
use serde_json::{json, Value};

const END: i64 = 1_764_000_000_000;
/// The server's clock when these commands arrive: the standard sync's phone time.
const NOW: i64 = END + 1_200;

fn base() -> Value {
    standard_sync(uuid::Uuid::new_v4(), END, 7, false)
}

fn parse(body: &Value) -> Result<ValidSync, Violations> {
    parse_command(body, None, &Limits::default(), NOW)
}

fn pointers(body: &Value) -> Vec<String> {
    let mut p: Vec<String> = parse(body).expect_err("should be rejected").into_iter().map(|v| v.pointer).collect();
    p.sort();
    p
}

#[test]
fn the_standard_sync_is_valid_and_corrected_for_skew() {
    let body = base();
    let sync = parse(&body).expect("valid");
    assert_eq!(sync.heart_rate.len(), 180);
    assert_eq!(sync.rr_blocks.iter().map(|b| b.intervals_ms.len()).sum::<usize>(), 900);
    assert_eq!(sync.steps.len(), 15);
    assert!(sync.dropped.is_empty(), "{:?}", sync.dropped);
    // The phone is 1.2 s ahead of the device: every device time moves by +1200 ms.
    assert_eq!(sync.skew_ms, 1_200);
    assert_eq!(sync.heart_rate[0].time_ms, body["heart_rate"][0]["t"].as_i64().unwrap() + 1_200);
    assert_eq!(sync.rr_blocks[0].first_beat_ms, body["rr"]["blocks"][0]["first_beat_ms"].as_i64().unwrap() + 1_200);
    assert_eq!(sync.window_end_ms, END + 1_200);
}

#[test]
fn structural_violations_reject_the_command_and_are_all_listed() {
    let mut body = base();
    body["device"]["hr_sensor"] = json!("laser"); // unknown enum value
    body["app"].as_object_mut().unwrap().remove("os"); // missing required part
    body["clock"]["device_time_ms"] = json!("yesterday"); // wrong type
    body["sequence"] = json!({"first": 10, "last": 9}); // decreasing range
    body["heart_rate"][3]["t"] = json!(END + 3_600_000); // outside the declared window
    body["steps"][2]["steps"] = json!(1.5); // not an integer
    body["sleep"] = json!([{"start_ms": END - 1000, "end_ms": END, "stage": "dreaming"}]);
    body["profile"]["weight_kg"] = json!(4); // impossible profile
    assert_eq!(
        pointers(&body),
        vec![
            "/app/os",
            "/clock/device_time_ms",
            "/device/hr_sensor",
            "/heart_rate/3/t",
            "/profile/weight_kg",
            "/sequence/last",
            "/sleep/0/stage",
            "/steps/2/steps"
        ]
    );
}

#[test]
fn more_samples_than_the_limit_rejects() {
    let limits = Limits { max_samples_per_kind: 100, ..Limits::default() };
    let err = parse_command(&base(), None, &limits, NOW).expect_err("180 heart-rate samples > 100");
    let p: Vec<&str> = err.iter().map(|v| v.pointer.as_str()).collect();
    assert_eq!(p, vec!["/heart_rate", "/rr/blocks"]);
    assert!(err[0].detail.contains("at most 100"));
}

#[test]
fn not_an_object_and_bad_sync_ids() {
    assert_eq!(parse(&json!([1, 2])).unwrap_err()[0].pointer, "");
    let mut body = base();
    body["sync_id"] = json!("not-a-uuid");
    assert_eq!(pointers(&body), vec!["/sync_id"]);
    // The Idempotency-Key header may carry the id; when both are given they must agree.
    let mut body = base();
    let id = body.as_object_mut().unwrap().remove("sync_id").unwrap();
    assert_eq!(
        parse_command(&body, id.as_str(), &Limits::default(), NOW).unwrap().sync_id.to_string(),
        id.as_str().unwrap()
    );
    assert_eq!(pointers(&body), vec!["/sync_id"]);
    body["sync_id"] = id;
    let other = uuid::Uuid::new_v4().to_string();
    assert!(parse_command(&body, Some(&other), &Limits::default(), NOW).is_err());
}

#[test]
fn impossible_values_and_sentinels_drop_only_the_sample() {
    let mut body = base();
    body["heart_rate"][0]["bpm"] = json!(300); // impossible
    body["heart_rate"][1]["bpm"] = json!(255); // 0xFF: no reading
    body["heart_rate"][2]["bpm"] = json!(-1); // no reading
    body["heart_rate"][4]["t"] = body["heart_rate"][5]["t"].clone(); // duplicate timestamp
    body["rr"]["blocks"][0]["intervals"][10] = json!(3000); // out of range
    body["rr"]["blocks"][0]["intervals"][20] = json!(65535); // no reading
    body["steps"][1]["steps"] = json!(400); // > 300 per minute
    let sync = parse(&body).expect("still accepted");
    let dropped: Vec<(&str, i32)> = sync.dropped.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        dropped,
        vec![
            ("hr_duplicate_timestamp", 1),
            ("hr_no_reading", 2),
            ("hr_out_of_range", 1),
            ("rr_no_reading", 1),
            ("rr_out_of_range", 1),
            ("steps_out_of_range", 1)
        ]
    );
    assert_eq!(sync.heart_rate.len(), 176);
    // Dropped RR intervals split the run of valid beats, keeping later beats in place.
    let runs: Vec<usize> = sync.rr_blocks.iter().map(|b| b.intervals_ms.len()).collect();
    assert_eq!(runs, vec![10, 9, 879]);
    let intervals: Vec<i64> =
        body["rr"]["blocks"][0]["intervals"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    let second_start = sync.rr_blocks[0].first_beat_ms + intervals[..11].iter().sum::<i64>();
    assert_eq!(sync.rr_blocks[1].first_beat_ms, second_start);
    assert_eq!(sync.steps.len(), 14);
}

#[test]
fn times_are_checked_after_skew_correction() {
    // The device clock is 2 h behind the phone: once corrected, its samples are recent.
    let mut body = base();
    body["clock"]["phone_time_ms"] = json!(END + 7_200_000);
    let sync = parse(&body).unwrap();
    assert!(sync.dropped.is_empty(), "{:?}", sync.dropped);
    assert_eq!(sync.skew_ms, 7_200_000);

    // A sample older than the retention window before the sync time is dropped.
    let mut body = base();
    body["window"]["start_ms"] = json!(END - 40 * 86_400_000);
    body["heart_rate"][0]["t"] = json!(END - 40 * 86_400_000);
    assert_eq!(parse(&body).unwrap().dropped.get("time_too_old"), Some(&1));

    // The device clock is 1 h behind the phone's *earlier* reading: corrected, every sample lies
    // 45 minutes or more after the sync time, past the 5-minute tolerance.
    let mut body = base();
    body["clock"]["phone_time_ms"] = json!(END);
    body["clock"]["device_time_ms"] = json!(END - 3_600_000);
    let sync = parse(&body).unwrap();
    assert_eq!(sync.dropped.get("time_in_future"), Some(&(180 + 900 + 15)));
    assert!(sync.heart_rate.is_empty() && sync.steps.is_empty() && sync.rr_blocks.is_empty());
}

#[test]
fn sleep_segments_that_end_before_they_start_or_overlap_are_dropped() {
    let mut body = standard_sync(uuid::Uuid::new_v4(), END, 3, true);
    let segments = body["sleep"].as_array().unwrap().len();
    body["sleep"][5]["end_ms"] = body["sleep"][5]["start_ms"].clone();
    let overlap = json!({"start_ms": body["sleep"][7]["start_ms"].as_i64().unwrap() + 60_000, "end_ms": body["sleep"][8]["end_ms"], "stage": "rem"});
    body["sleep"].as_array_mut().unwrap().push(overlap);
    let sync = parse(&body).unwrap();
    assert_eq!(sync.dropped.get("sleep_invalid_interval"), Some(&1));
    assert_eq!(sync.dropped.get("sleep_overlap"), Some(&1));
    assert_eq!(sync.sleep.len(), segments - 1);
}

#[test]
fn rr_in_1024ths_of_a_second_become_milliseconds() {
    let mut body = base();
    body["rr"] = json!({"unit": "1/1024s", "blocks": [{"first_beat_ms": body["window"]["start_ms"], "intervals": [1024, 512, 1000]}]});
    let sync = parse(&body).unwrap();
    assert_eq!(sync.rr_blocks[0].intervals_ms, vec![1000, 500, 977]);
}

#[test]
fn v2_samples_spo2_skin_temperature_and_wear_are_validated() {
    let mut body = base();
    let t0 = body["heart_rate"][0]["t"].clone();
    body["spo2"] = json!([{"t": t0, "percent": 97}, {"t": t0, "percent": 55}, {"t": t0, "percent": 255}]);
    body["skin_temperature"] =
        json!([{"night_end_ms": t0, "deviation_c": -0.4}, {"night_end_ms": t0, "deviation_c": 9.0}]);
    body["wear"] = json!([{"t": t0, "state": "off_wrist"}]);
    let sync = parse(&body).expect("valid");
    assert_eq!(sync.spo2.len(), 1);
    assert_eq!(sync.dropped.get("spo2_out_of_range"), Some(&1));
    assert_eq!(sync.dropped.get("spo2_no_reading"), Some(&1));
    assert_eq!(sync.skin_temperature.len(), 1);
    assert_eq!(sync.dropped.get("skin_temperature_out_of_range"), Some(&1));
    assert_eq!(sync.wear.len(), 1);
    // An unknown wear state is structural.
    body["wear"] = json!([{"t": t0, "state": "in_pocket"}]);
    assert_eq!(pointers(&body), vec!["/wear/0/state"]);
}

#[test]
fn a_violation_flood_lists_a_hundred_and_counts_the_rest() {
    // About 2 MiB of empty heart-rate samples. The service's parse keeps the first 50,001 (the
    // limit, plus one) and counts the rest: three violations each, and one for the limit.
    let n = 700_000;
    let mut body = base();
    body["heart_rate"] = Value::Array(vec![json!({}); n]);
    let bytes = serde_json::to_vec(&body).unwrap();
    let Err(Rejection::Invalid(err)) = command::parse(&bytes, None, &Limits::default(), NOW) else {
        panic!("a flood is rejected as invalid")
    };
    assert_eq!(err.listed.len(), command::MAX_LISTED_VIOLATIONS);
    let kept = Limits::default().max_samples_per_kind + 1;
    assert_eq!(err.total(), 3 * kept + 1, "every checked violation is counted");
    assert_eq!(err.listed[0].pointer, "/heart_rate");
    assert!(err.listed[0].detail.contains(&format!("has {n} samples")), "{}", err.listed[0].detail);
    assert_eq!(err.listed[1].pointer, "/heart_rate/0/t");
    // The whole-tree validator, given the same flood, checks every sample.
    assert_eq!(parse(&body).unwrap_err().total(), 3 * n + 1);
}

#[test]
fn the_bounded_parse_drops_unknown_members_and_caps_every_array() {
    // A million unknown members and a huge array inside the device: parsed within bounds, and the
    // answer names what is wrong with the command itself.
    let mut body = base();
    let junk: serde_json::Map<String, Value> = (0..100_000).map(|i| (format!("k{i}"), json!(0))).collect();
    body["extra"] = Value::Object(junk);
    body["device"]["model"] = Value::Array(vec![json!(0); 600_000]);
    let bytes = serde_json::to_vec(&body).unwrap();
    let Err(Rejection::Invalid(err)) = command::parse(&bytes, None, &Limits::default(), NOW) else {
        panic!("rejected")
    };
    let pointers: Vec<&str> = err.iter().map(|v| v.pointer.as_str()).collect();
    assert_eq!(pointers, vec!["/device/model"]);
    // Values past the overall budget are not checked, and the answer says so.
    let mut body = base();
    for kind in ["steps", "sleep", "spo2", "wear", "workouts", "skin_temperature", "heart_rate", "offsets"] {
        body[kind] = Value::Array(vec![json!(0); 60_000]);
    }
    let bytes = serde_json::to_vec(&body).unwrap();
    let Err(Rejection::Invalid(err)) = command::parse(&bytes, None, &Limits::default(), NOW) else {
        panic!("rejected")
    };
    assert_eq!(err[0].pointer, "");
    assert!(err[0].detail.contains("not checked"), "{}", err[0].detail);
    // A body the typed path declines only for a duplicate key is still accepted, as before.
    let text = String::from_utf8(serde_json::to_vec(&base()).unwrap()).unwrap();
    let duplicated = text.replacen('{', "{\"app\":{\"version\":\"1\",\"os\":\"x\"},", 1);
    assert!(command::parse_typed(duplicated.as_bytes(), None, &Limits::default(), NOW).is_none());
    let sync = command::parse(duplicated.as_bytes(), None, &Limits::default(), NOW).expect("accepted");
    assert_eq!(sync.app.os, "Android 15", "the last member wins, as in any JSON object");
}

#[test]
fn the_phone_clock_is_checked_against_the_server_clock() {
    let limits = Limits::default();
    // A phone a year ahead of the server (or behind it) is refused, however its samples look.
    for offset in [365 * 86_400_000i64, -365 * 86_400_000] {
        let mut body = base();
        body["clock"]["phone_time_ms"] = json!(END + offset);
        body["clock"]["device_time_ms"] = json!(END + offset);
        let err = parse_command(&body, None, &limits, NOW).expect_err("a year off");
        assert_eq!(err[0].pointer, "/clock/phone_time_ms");
        assert!(err[0].detail.contains("server's clock"), "{}", err[0].detail);
    }
    // 23 hours off is within the default 24 h.
    let mut body = base();
    body["clock"]["phone_time_ms"] = json!(END + 23 * 3_600_000);
    assert!(parse(&body).is_ok());
    // A tighter setting applies.
    let tight = Limits { max_clock_skew: std::time::Duration::from_secs(3600), ..Limits::default() };
    assert!(parse_command(&body, None, &tight, NOW).is_err());
    // A device clock that puts the window before 1970 once corrected is refused too.
    let mut body = base();
    body["clock"]["device_time_ms"] = json!(END * 3);
    assert_eq!(parse(&body).unwrap_err()[0].pointer, "/window/start_ms");
}

#[test]
fn workouts_and_nights_that_end_after_the_sync_are_dropped() {
    let mut body = standard_sync(uuid::Uuid::new_v4(), END, 3, true);
    body["workouts"] = json!([
        {"id": "a", "version": 1, "sport": "run", "start_ms": END - 3_600_000, "end_ms": END - 60_000},
        {"id": "b", "version": 1, "sport": "run", "start_ms": END - 3_600_000, "end_ms": END + 86_400_000},
    ]);
    let last = body["sleep"].as_array().unwrap().len() - 1;
    body["sleep"][last]["end_ms"] = json!(END + 86_400_000);
    let sync = parse(&body).unwrap();
    assert_eq!(sync.workouts.len(), 1);
    assert_eq!(sync.dropped.get("time_in_future"), Some(&2));
}

#[test]
fn huge_rr_values_in_1024ths_are_out_of_range_not_wrapped() {
    let mut body = base();
    let start = body["window"]["start_ms"].clone();
    body["rr"] = json!({"unit": "1/1024s", "blocks": [{"first_beat_ms": start, "intervals": [1024, i64::MAX, 1024, i64::MAX / 1000, 1024]}]});
    let sync = parse(&body).unwrap();
    assert_eq!(sync.dropped.get("rr_out_of_range"), Some(&2));
    // The beats after an unusable value are placed by the previous interval, and kept.
    let kept: usize = sync.rr_blocks.iter().map(|b| b.intervals_ms.len()).sum();
    assert_eq!(kept, 3);
}
