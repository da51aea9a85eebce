//! The *standard sync*, the benchmark unit (15 minutes of wear: 180 heart-rate samples every 5 s, 900 RR
//! intervals, 15 one-minute step epochs, metadata), as a JSON command. Used by the OpenAPI
//! example, the tests and the load generator.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// A standard sync whose window ends at `end_ms` (device clock), deterministic for a given seed.
/// `with_sleep` adds a night of about 40 sleep segments, as one sync in eight carries.
pub fn standard_sync(sync_id: uuid::Uuid, end_ms: i64, seed: u64, with_sleep: bool) -> Value {
    let start = end_ms - 15 * 60_000;
    // Seeded, so the same seed gives the same sync on every machine.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut next = move |n: u64| rng.gen_range(0..n) as i64;
    let heart_rate: Vec<Value> =
        (0..180).map(|i| json!({"t": start + i * 5_000, "bpm": 68 + next(12), "quality": "locked"})).collect();
    let intervals: Vec<i64> = (0..900).map(|_| 840 + next(60)).collect();
    let steps: Vec<Value> = (0..15)
        .map(|i| {
            let n = if i % 5 == 0 { 0 } else { next(110) };
            json!({"start_ms": start + i * 60_000, "duration_s": 60, "steps": n, "distance_m": n as f64 * 0.75})
        })
        .collect();
    let mut body = json!({
        "sync_id": sync_id.to_string(),
        "device": {
            "manufacturer": "Acme", "model": "Band 3", "hardware_version": "rev-b",
            "firmware_version": "3.1.4", "battery_percent": 81, "hr_sensor": "optical"
        },
        "app": {"version": "2.4.0", "os": "Android 15"},
        "clock": {"device_time_ms": end_ms, "phone_time_ms": end_ms + 1_200},
        "time_zone": {"iana": "Europe/Berlin", "offsets": [{"from_ms": start - 86_400_000, "offset_minutes": 60}]},
        "sequence": {"first": 10_000 + seed * 1_000, "last": 10_000 + seed * 1_000 + 999},
        "window": {"start_ms": start - if with_sleep { 8 * 3_600_000 } else { 0 }, "end_ms": end_ms},
        "heart_rate": heart_rate,
        "rr": {"unit": "ms", "blocks": [{"first_beat_ms": start, "intervals": intervals}]},
        "steps": steps,
        "profile": {"birth_year": 1988, "sex": "female", "weight_kg": 61.5, "height_cm": 168.0}
    });
    if with_sleep {
        let night_start = start - 8 * 3_600_000;
        let stages = ["light", "deep", "light", "rem"];
        let mut t = night_start;
        let sleep: Vec<Value> = (0..40)
            .map(|i| {
                let len = 10 * 60_000 + next(3) * 60_000;
                let stage = if i == 0 || i % 13 == 12 { "awake" } else { stages[i % 4] };
                let seg = json!({"start_ms": t, "end_ms": t + len, "stage": stage});
                t += len;
                seg
            })
            .collect();
        body["sleep"] = Value::Array(sleep);
    }
    body
}
