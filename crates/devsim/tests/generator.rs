//! The simulation model without the network: determinism, validity for ingest-api, nights,
//! physiology and the share of impossible values.

use std::collections::BTreeMap;

use devsim::fleet::FleetConfig;
use devsim::phone::{commands, commands_until, Imperfections, Outgoing, SimConfig, SyncKind};
use devsim::timeline::{DAY_MS, HOUR_MS, MINUTE_MS};
use ingest_api::command::{parse_command, ValidSync};
use ingest_api::config::Limits;
use serde_json::Value;

/// 2025-11-24 16:00 UTC.
const START: i64 = 1_764_000_000_000;

fn config(seed: u64, users: usize, backfill_days: f64, imperfections: Imperfections) -> SimConfig {
    let mut c = SimConfig::new(FleetConfig { seed, users, strap_share: 0.5, user_prefix: "u".into() }, START);
    c.imperfections = imperfections;
    c.backfill_ms = (backfill_days * DAY_MS as f64) as i64;
    c
}

fn parse(o: &Outgoing) -> ValidSync {
    // Received when the phone sent it: the server's clock reads the phone's.
    parse_command(&o.body, None, &Limits::default(), o.at_ms).unwrap_or_else(|violations| {
        panic!(
            "{} {:?} was rejected: {:?}\n{}",
            o.device_id,
            o.kind,
            violations,
            serde_json::to_string(&o.body).unwrap().chars().take(2_000).collect::<String>()
        )
    })
}

fn i(v: &Value) -> i64 {
    v.as_i64().expect("an integer")
}

fn skew(body: &Value) -> i64 {
    i(&body["clock"]["phone_time_ms"]) - i(&body["clock"]["device_time_ms"])
}

/// The local hour at UTC time `t` by the body's own offsets.
fn local_hour(body: &Value, t: i64) -> f64 {
    let offsets = body["time_zone"]["offsets"].as_array().unwrap();
    let o = offsets.iter().rev().find(|o| i(&o["from_ms"]) <= t).unwrap_or(&offsets[0]);
    (t + i(&o["offset_minutes"]) * MINUTE_MS).rem_euclid(DAY_MS) as f64 / HOUR_MS as f64
}

#[test]
fn the_same_seed_gives_the_same_commands_and_another_seed_others() {
    let c = config(7, 3, 1.0, Imperfections::default());
    let a = commands(&c, 80);
    let b = commands(&c, 80);
    assert_eq!(a.len(), 80);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x.device_id, x.sync_id, x.kind, x.resend), (&y.device_id, y.sync_id, y.kind, y.resend));
        assert_eq!(x.body, y.body);
    }
    let other = commands(&config(8, 3, 1.0, Imperfections::default()), 80);
    assert_ne!(a.iter().map(|o| o.sync_id).collect::<Vec<_>>(), other.iter().map(|o| o.sync_id).collect::<Vec<_>>());
    assert_ne!(a[0].body["heart_rate"], other[0].body["heart_rate"]);
}

#[test]
fn every_command_is_valid_and_only_the_impossible_values_are_dropped() {
    let imperfections =
        Imperfections { resend: 0.2, overlap: 0.2, late: 0.1, clock_skew: 0.3, travel: 0.3, impossible: 0.01 };
    let c = config(11, 6, 4.0, imperfections);
    let out = commands_until(&c, START);
    assert!(out.len() > 1_500, "{} commands", out.len());
    let allowed = [
        "hr_out_of_range",
        "hr_no_reading",
        "rr_out_of_range",
        "rr_no_reading",
        "steps_out_of_range",
        "steps_no_reading",
    ];
    let (mut samples, mut injected, mut dropped) = (0u64, 0u64, 0u64);
    let mut reasons: BTreeMap<String, i32> = BTreeMap::new();
    for o in &out {
        let sync = parse(o);
        let n: i32 = sync.dropped.values().sum();
        for (reason, count) in &sync.dropped {
            assert!(allowed.contains(&reason.as_str()), "{reason} dropped in {}", o.device_id);
            *reasons.entry(reason.clone()).or_default() += count;
        }
        assert_eq!(n as u32, o.impossible, "{}: dropped {:?}, injected {}", o.device_id, sync.dropped, o.impossible);
        samples += u64::from(o.samples);
        injected += u64::from(o.impossible);
        dropped += n as u64;
    }
    assert_eq!(dropped, injected);
    let share = injected as f64 / samples as f64;
    assert!((0.008..0.012).contains(&share), "impossible share {share} of {samples} samples");
    for r in allowed {
        assert!(reasons.get(r).copied().unwrap_or(0) > 0, "no {r}: {reasons:?}");
    }

    // Every imperfection shows up.
    let count = |f: &dyn Fn(&Outgoing) -> bool| out.iter().filter(|o| f(o)).count();
    assert!(count(&|o| o.kind == SyncKind::Overlapping) > 50);
    assert!(count(&|o| o.kind == SyncKind::Late) > 10);
    assert!(count(&|o| o.resend) > 50);
    assert!(count(&|o| skew(&o.body).abs() >= 5_000) > 100);
    assert!(count(&|o| o.body["time_zone"]["offsets"].as_array().unwrap().len() > 1) > 0, "no travel");
    assert!(count(&|o| o.body["rr"]["unit"] == "1/1024s") > 0 || count(&|o| o.device_id.ends_with("strap")) > 0);
    // Late batches are for old days: sent long after their window.
    for o in out.iter().filter(|o| o.kind == SyncKind::Late) {
        let window_end = i(&o.body["window"]["end_ms"]) + skew(&o.body);
        assert!(o.at_ms - window_end >= 6 * HOUR_MS, "{} late by {} ms", o.device_id, o.at_ms - window_end);
    }
    // An overlapping re-sync repeats samples of the sync before it, with the same values.
    let ov = out.iter().find(|o| o.kind == SyncKind::Overlapping && o.device_id.ends_with("band")).unwrap();
    let hr_of = |o: &Outgoing| -> BTreeMap<i64, i64> {
        let s = skew(&o.body);
        o.body["heart_rate"].as_array().unwrap().iter().map(|h| (i(&h["t"]) + s, i(&h["bpm"]))).collect()
    };
    let mine = hr_of(ov);
    let before =
        out.iter().rfind(|o| o.device_id == ov.device_id && o.at_ms < ov.at_ms && o.kind != SyncKind::Late).unwrap();
    let theirs = hr_of(before);
    let shared: Vec<_> = mine.iter().filter(|(t, _)| theirs.contains_key(t)).collect();
    assert!(!shared.is_empty(), "no overlap");
    assert!(shared.iter().all(|(t, bpm)| theirs[t] == **bpm));
}

#[test]
fn without_imperfections_nothing_is_dropped_and_sequences_advance() {
    let out = commands_until(&config(3, 4, 2.0, Imperfections::none()), START);
    let mut last: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for o in &out {
        let sync = parse(o);
        assert!(sync.dropped.is_empty(), "{}: {:?}", o.device_id, sync.dropped);
        assert_eq!(o.impossible, 0);
        assert!(sync.skew_ms.abs() <= 1_500);
        let seq = (sync.sequence_first, sync.sequence_last);
        if let Some(prev) = last.insert(&o.device_id, seq) {
            assert!(seq.0 > prev.1, "{}: {seq:?} after {prev:?}", o.device_id);
        }
    }
}

#[test]
fn a_night_has_about_forty_non_overlapping_sleep_segments_from_late_evening_to_morning() {
    let out = commands_until(&config(5, 4, 4.0, Imperfections::none()), START);
    let mut nights = 0;
    for o in out.iter().filter(|o| o.body.get("sleep").is_some()) {
        assert!(o.device_id.ends_with("-band"));
        let body = &o.body;
        let s = skew(body);
        let segs: Vec<(i64, i64, &str)> = body["sleep"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (i(&x["start_ms"]) + s, i(&x["end_ms"]) + s, x["stage"].as_str().unwrap()))
            .collect();
        assert!((30..=50).contains(&segs.len()), "{} segments", segs.len());
        for w in segs.windows(2) {
            assert!(w[0].0 < w[0].1, "empty segment {w:?}");
            assert!(w[0].1 <= w[1].0, "overlap {w:?}");
        }
        for stage in ["light", "deep", "rem", "awake"] {
            assert!(segs.iter().any(|x| x.2 == stage), "no {stage}");
        }
        let (bed, wake) = (segs[0].0, segs.last().unwrap().1);
        let hours = (wake - bed) as f64 / HOUR_MS as f64;
        assert!((5.0..=10.0).contains(&hours), "{hours} h in bed");
        let bed_hour = local_hour(body, bed);
        assert!(!(2.0..21.0).contains(&bed_hour), "bed at {bed_hour}");
        let wake_hour = local_hour(body, wake);
        assert!((4.5..=10.5).contains(&wake_hour), "up at {wake_hour}");
        // The sync covers the morning: the wake-up is in its window, which reaches back to bedtime.
        let (ws, we) = (i(&body["window"]["start_ms"]) + s, i(&body["window"]["end_ms"]) + s);
        assert!(ws <= bed && wake <= we && we - wake < 20 * MINUTE_MS, "window {ws}..{we}, night {bed}..{wake}");
        let sync = parse(o);
        assert_eq!(sync.sleep.len(), segs.len());
        nights += 1;
    }
    assert!(nights >= 12, "{nights} nights for 4 users over 4 days");
}

#[test]
fn heart_rate_is_lower_at_night_and_workouts_raise_it_with_a_high_cadence() {
    let out = commands_until(&config(9, 4, 6.0, Imperfections::none()), START);
    let (mut night, mut day) = (vec![], vec![]);
    let mut workouts = 0;
    for o in out.iter().filter(|o| o.device_id.ends_with("-band")) {
        let s = skew(&o.body);
        for h in o.body["heart_rate"].as_array().unwrap() {
            let t = i(&h["t"]) + s;
            let hour = local_hour(&o.body, t);
            if (1.0..5.0).contains(&hour) {
                night.push(i(&h["bpm"]) as f64);
            } else if (13.0..19.0).contains(&hour) {
                day.push(i(&h["bpm"]) as f64);
            }
        }
        let Some(list) = o.body.get("workouts") else { continue };
        for w in list.as_array().unwrap() {
            workouts += 1;
            assert_eq!(w["version"], 1);
            let (start, end) = (i(&w["start_ms"]) + s, i(&w["end_ms"]) + s);
            let minutes = (end - start) / MINUTE_MS;
            assert!((20..=60).contains(&minutes), "{minutes} min");
            // The workout's samples, from every sync of the device.
            let mut bpm = vec![];
            let mut cadence = vec![];
            for p in out.iter().filter(|p| p.device_id == o.device_id) {
                let ps = skew(&p.body);
                for h in p.body["heart_rate"].as_array().unwrap() {
                    let t = i(&h["t"]) + ps;
                    if t >= start + 6 * MINUTE_MS && t < end - 3 * MINUTE_MS {
                        bpm.push(i(&h["bpm"]));
                    }
                }
                for e in p.body.get("steps").and_then(Value::as_array).into_iter().flatten() {
                    let t = i(&e["start_ms"]) + ps;
                    if t >= start + 4 * MINUTE_MS && t < end - MINUTE_MS {
                        cadence.push(i(&e["steps"]));
                    }
                }
            }
            bpm.sort();
            cadence.sort();
            let median_bpm = bpm[bpm.len() / 2];
            assert!((125..=175).contains(&median_bpm), "{} workout at {median_bpm} bpm", w["sport"]);
            let median_cadence = cadence[cadence.len() / 2];
            assert!(median_cadence >= 105, "{} cadence {median_cadence}", w["sport"]);
            if w["sport"] == "running" {
                assert!(median_cadence >= 150, "running cadence {median_cadence}");
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(mean(&night) + 10.0 < mean(&day), "night {} day {}", mean(&night), mean(&day));
    assert!((45.0..75.0).contains(&mean(&night)), "night mean {}", mean(&night));
    assert!(workouts >= 6, "{workouts} workouts for 4 users over 6 days");
}

#[test]
fn night_rr_intervals_have_a_realistic_mean_and_beat_to_beat_variation() {
    let out = commands_until(&config(13, 5, 3.0, Imperfections::none()), START);
    let mut per_user: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for o in out.iter().filter(|o| o.device_id.ends_with("-band")) {
        let Some(blocks) = o.body["rr"]["blocks"].as_array() else { continue };
        let entry = per_user.entry(o.user_id.clone()).or_default();
        for b in blocks {
            let rr: Vec<f64> = b["intervals"].as_array().unwrap().iter().map(|v| i(v) as f64).collect();
            entry.0.extend(&rr);
            entry.1.extend(rr.windows(2).map(|w| w[1] - w[0]));
        }
    }
    assert_eq!(per_user.len(), 5);
    for (user, (rr, diffs)) in per_user {
        assert!(rr.len() > 20_000, "{user}: {} beats", rr.len());
        let mean = rr.iter().sum::<f64>() / rr.len() as f64;
        let rmssd = (diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len() as f64).sqrt();
        assert!((880.0..=1_120.0).contains(&mean), "{user}: mean RR {mean}");
        assert!((20.0..=60.0).contains(&rmssd), "{user}: RMSSD {rmssd}");
    }
}

#[test]
fn the_impossible_value_share_follows_the_setting() {
    for p in [0.0, 0.003, 0.03] {
        let mut imperfections = Imperfections::none();
        imperfections.impossible = p;
        let out = commands_until(&config(21, 3, 2.0, imperfections), START);
        let samples: u64 = out.iter().map(|o| u64::from(o.samples)).sum();
        let injected: u64 = out.iter().map(|o| u64::from(o.impossible)).sum();
        let dropped: u64 = out.iter().map(|o| parse(o).dropped.values().sum::<i32>() as u64).sum();
        assert_eq!(dropped, injected, "p={p}");
        let share = injected as f64 / samples as f64;
        assert!((share - p).abs() <= p * 0.2 + 1e-9, "p={p}: share {share} of {samples}");
    }
}
