//! A device and the phone that syncs it: decides when syncs happen (in simulated time) and
//! builds each SyncDevice command, with the imperfections of real phones and trackers.
//!
//! Pure and deterministic: for one configuration and seed the sequence of commands is always the
//! same, whatever the pace of the run. Sample values depend only on the device and the time, so
//! a re-sent, overlapping or late batch carries exactly the values sent before.

use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::fleet::{DeviceKind, DeviceSpec, FleetConfig, UserSpec};
use crate::rng::{self, Purpose};
use crate::timeline::{Timeline, DAY_MS, HOUR_MS, MINUTE_MS};

/// How often each imperfection happens.
#[derive(Debug, Clone, PartialEq)]
pub struct Imperfections {
    /// Per sync: the phone missed the answer and sends the same batch (same sync id) again.
    pub resend: f64,
    /// Per sync: the phone re-syncs from a few minutes back (new sync id, overlapping samples).
    pub overlap: f64,
    /// Per sync: the phone was offline; the batch goes out 6 to 72 hours later.
    pub late: f64,
    /// Per sync: the device clock is off by 5 s to 10 min (else by at most 1.5 s).
    pub clock_skew: f64,
    /// Per user and day: the user flies to another time zone.
    pub travel: f64,
    /// Per sample (heart rate, RR interval, step epoch): an impossible value or a sentinel.
    pub impossible: f64,
}

impl Default for Imperfections {
    fn default() -> Self {
        Self { resend: 0.02, overlap: 0.03, late: 0.01, clock_skew: 0.05, travel: 0.02, impossible: 0.001 }
    }
}

impl Imperfections {
    pub fn none() -> Self {
        Self { resend: 0.0, overlap: 0.0, late: 0.0, clock_skew: 0.0, travel: 0.0, impossible: 0.0 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub fleet: FleetConfig,
    pub imperfections: Imperfections,
    /// How much wear one regular sync covers (the phone syncs this often).
    pub sync_interval_ms: i64,
    /// The same for the history before `start_ms` (longer windows make backfill cheaper).
    pub backfill_interval_ms: i64,
    /// Simulated time when the run starts: history is generated before it.
    pub start_ms: i64,
    /// How much history before `start_ms`.
    pub backfill_ms: i64,
}

impl SimConfig {
    pub fn new(fleet: FleetConfig, start_ms: i64) -> Self {
        Self {
            fleet,
            imperfections: Imperfections::default(),
            sync_interval_ms: 15 * MINUTE_MS,
            backfill_interval_ms: 15 * MINUTE_MS,
            start_ms,
            backfill_ms: 0,
        }
    }

    /// Where simulated time begins.
    pub fn origin_ms(&self) -> i64 {
        (self.start_ms - self.backfill_ms).div_euclid(MINUTE_MS) * MINUTE_MS
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    Regular,
    /// A re-sync from a few minutes before the previous one's end, with a new sync id.
    Overlapping,
    /// Held back by the phone and sent hours or days after its window.
    Late,
}

/// One command for the phone to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Simulated time at which the phone sends it (its `phone_time_ms`).
    pub at_ms: i64,
    pub user_index: usize,
    pub user_id: String,
    pub device_id: String,
    pub sync_id: uuid::Uuid,
    pub kind: SyncKind,
    /// The phone will not hear the answer and sends the same body again.
    pub resend: bool,
    pub body: Value,
    /// Heart-rate samples, RR intervals and step epochs in the body.
    pub samples: u32,
    /// How many of them are impossible values or sentinels (ingest-api drops them).
    pub impossible: u32,
}

/// One entry of an RR recording: the time of its first beat, the value reported, and whether
/// it is a glitch (a sentinel, or missed beats merged into one impossible interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RrEntry {
    t: i64,
    value_ms: i64,
    glitch: bool,
}

/// A cached RR recording: its (start, end) and entries.
type RrSession = ((i64, i64), Arc<Vec<RrEntry>>);

const RR_SENTINELS: [i64; 3] = [65_535, -1, 0];
const HR_GLITCHES: [i64; 4] = [300, 255, -1, 0];
const STEP_GLITCHES: [i64; 3] = [-1, 65_535, 400];

pub struct DeviceSim {
    user_index: usize,
    user_id: String,
    app: (&'static str, &'static str),
    profile: Value,
    device: DeviceSpec,
    timeline: Timeline,
    rng: ChaCha8Rng,
    imperfections: Imperfections,
    sync_interval_ms: i64,
    backfill_interval_ms: i64,
    start_ms: i64,
    origin_ms: i64,
    seq_origin_ms: i64,
    synced_until: i64,
    next_sync: i64,
    /// (release time, window start, window end).
    late: Vec<(i64, i64, i64)>,
    /// RR recordings by (start, end), the last few.
    rr_cache: Vec<RrSession>,
}

impl DeviceSim {
    pub fn new(config: &SimConfig, user: &UserSpec, device: &DeviceSpec) -> Self {
        let origin = config.origin_ms();
        let timeline = Timeline::new(user, origin, config.imperfections.travel);
        let mut rng = rng::stream(device.seed, Purpose::Phone, &[]);
        let interval_min = (config.backfill_interval_ms / MINUTE_MS).max(1);
        let phase = rng.gen_range(0..interval_min) * MINUTE_MS;
        let p = &user.profile;
        let mut sim = Self {
            user_index: user.index,
            user_id: user.id.clone(),
            app: (user.app_version, user.os),
            profile: json!({
                "birth_year": p.birth_year, "sex": p.sex.name(), "weight_kg": p.weight_kg, "height_cm": p.height_cm
            }),
            device: device.clone(),
            timeline,
            rng,
            imperfections: config.imperfections.clone(),
            sync_interval_ms: config.sync_interval_ms.max(MINUTE_MS),
            backfill_interval_ms: config.backfill_interval_ms.max(MINUTE_MS),
            start_ms: config.start_ms,
            origin_ms: origin,
            seq_origin_ms: origin - 2 * DAY_MS,
            synced_until: origin - phase,
            next_sync: 0,
            late: Vec::new(),
            rr_cache: Vec::new(),
        };
        sim.next_sync = sim.schedule_after(sim.synced_until);
        sim
    }

    pub fn user_index(&self) -> usize {
        self.user_index
    }

    pub fn device(&self) -> &DeviceSpec {
        &self.device
    }

    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// Simulated time of this device's next command.
    pub fn next_time(&self) -> i64 {
        self.late.iter().map(|l| l.0).fold(self.next_sync, i64::min)
    }

    /// When the phone next syncs after having synced up to `from`.
    fn schedule_after(&mut self, from: i64) -> i64 {
        match self.device.kind {
            DeviceKind::Band => {
                let interval = if from < self.start_ms { self.backfill_interval_ms } else { self.sync_interval_ms };
                let jitter = (interval / MINUTE_MS / 10).max(0);
                let minutes = interval / MINUTE_MS + self.rng.gen_range(-jitter..=jitter);
                from + minutes.max(1) * MINUTE_MS
            }
            DeviceKind::Strap => {
                // The phone picks the strap's recording up a little after each workout.
                self.timeline.extend_to(from + 15 * DAY_MS);
                let delay = self.rng.gen_range(5..=20) * MINUTE_MS;
                match self.timeline.workouts.iter().find(|w| w.end_ms > from) {
                    Some(w) if w.end_ms < from + 14 * DAY_MS => w.end_ms.div_euclid(MINUTE_MS) * MINUTE_MS + delay,
                    _ => from + 14 * DAY_MS,
                }
            }
        }
    }

    /// The commands due at [`next_time`](Self::next_time) (none when the batch is held back).
    pub fn step(&mut self) -> Vec<Outgoing> {
        let t = self.next_time();
        if let Some(i) = self.late.iter().position(|l| l.0 == t) {
            let (release, from, to) = self.late.remove(i);
            let phone_time = release + self.rng.gen_range(300..4_000);
            return vec![self.build(from, to, phone_time, SyncKind::Late)];
        }
        let imp = self.imperfections.clone();
        let to = t;
        let mut from = self.synced_until;
        let mut kind = SyncKind::Regular;
        let overlap_by = self.rng.gen_range(1..=10) * MINUTE_MS;
        if self.rng.gen_bool(imp.overlap) && from > self.origin_ms {
            from -= overlap_by;
            kind = SyncKind::Overlapping;
        }
        let held = self.rng.gen_bool(imp.late);
        let hold_for = self.rng.gen_range(6 * 60..72 * 60) * MINUTE_MS;
        let resend = self.rng.gen_bool(imp.resend);
        let phone_time = to + self.rng.gen_range(300..4_000);
        self.synced_until = to;
        self.next_sync = self.schedule_after(to);
        if held {
            self.late.push((to + hold_for, from, to));
            return vec![];
        }
        let mut out = self.build(from, to, phone_time, kind);
        out.resend = resend;
        vec![out]
    }

    /// The command for the wear in `[from, to)`, sent at `phone_time`.
    pub fn build(&mut self, from: i64, to: i64, phone_time: i64, kind: SyncKind) -> Outgoing {
        self.timeline.extend_to(phone_time.max(to));
        let imp = self.imperfections.clone();
        // skew = phone - device; device times = true times - skew.
        let skewed = self.rng.gen_bool(imp.clock_skew);
        let big = self.rng.gen_range(5_000..600_000) * if self.rng.gen_bool(0.5) { 1 } else { -1 };
        let small = self.rng.gen_range(-1_500..=1_500);
        let skew = if skewed { big } else { small };
        let dev = move |t: i64| t - skew;
        let sync_id = rng::uuid(&mut self.rng);
        let battery_glitch = self.rng.gen_bool(imp.impossible);

        let seed = self.device.seed;
        let p_bad = imp.impossible;
        let mut samples = 0u32;
        let mut impossible = 0u32;
        let mut window_start = from;
        let mut heart_rate = Vec::new();
        let mut steps = Vec::new();
        let mut sleep = Vec::new();
        let mut workouts = Vec::new();
        let mut sessions: Vec<(i64, i64, bool)> = Vec::new();

        let (hr_step, quality) = match self.device.kind {
            DeviceKind::Band => (5_000, "locked"),
            DeviceKind::Strap => (1_000, "strap"),
        };
        let hr_spans: Vec<(i64, i64)> = match self.device.kind {
            DeviceKind::Band => vec![(from, to)],
            DeviceKind::Strap => self
                .timeline
                .workouts
                .iter()
                .filter(|w| w.start_ms < to && w.end_ms > from)
                .map(|w| (w.start_ms.max(from), w.end_ms.min(to)))
                .collect(),
        };
        for (a, b) in hr_spans {
            let mut t = a.div_euclid(hr_step) * hr_step;
            if t < a {
                t += hr_step;
            }
            while t < b {
                let mut bpm = (self.timeline.heart_rate(t) + 1.2 * rng::gauss(seed, Purpose::HrNoise, &[t as u64]))
                    .round()
                    .clamp(30.0, 230.0) as i64;
                if rng::unit(seed, Purpose::HrGlitch, &[t as u64]) < p_bad {
                    bpm = HR_GLITCHES[(rng::hash(seed, Purpose::HrGlitch, &[t as u64, 1]) % 4) as usize];
                    impossible += 1;
                }
                let q = if quality == "locked"
                    && self.timeline.workout_at(t).is_some()
                    && rng::unit(seed, Purpose::HrQuality, &[t as u64]) < 0.08
                {
                    "unlocked"
                } else {
                    quality
                };
                heart_rate.push(json!({"t": dev(t), "bpm": bpm, "quality": q}));
                samples += 1;
                t += hr_step;
            }
        }

        match self.device.kind {
            DeviceKind::Band => {
                let mut m = from.div_euclid(MINUTE_MS) * MINUTE_MS;
                if m < from {
                    m += MINUTE_MS;
                }
                while m + MINUTE_MS <= to {
                    if let Some((mut n, stride)) = self.timeline.steps(m) {
                        let mut distance = (n as f64 * stride * 10.0).round() / 10.0;
                        if rng::unit(seed, Purpose::StepGlitch, &[m as u64]) < p_bad {
                            n = STEP_GLITCHES[(rng::hash(seed, Purpose::StepGlitch, &[m as u64, 1]) % 3) as usize];
                            distance = 0.0;
                            impossible += 1;
                        }
                        steps.push(json!({"start_ms": dev(m), "duration_s": 60, "steps": n, "distance_m": distance}));
                        samples += 1;
                    }
                    m += MINUTE_MS;
                }
                for night in self.timeline.nights.iter().filter(|n| n.bed_ms < to && n.wake_ms > from) {
                    sessions.push((night.bed_ms, night.wake_ms, true));
                }
                for night in self.timeline.nights_ending_in(from, to) {
                    window_start = window_start.min(night.bed_ms);
                    sleep.extend(night.segments.iter().map(
                        |s| json!({"start_ms": dev(s.start_ms), "end_ms": dev(s.end_ms), "stage": s.stage.name()}),
                    ));
                }
                for w in self.timeline.workouts_ending_in(from, to) {
                    workouts.push(json!({
                        "id": format!("{}-{}", self.device.id, w.start_ms / MINUTE_MS),
                        "version": 1,
                        "sport": w.sport,
                        "start_ms": dev(w.start_ms),
                        "end_ms": dev(w.end_ms),
                    }));
                }
            }
            DeviceKind::Strap => {
                for w in self.timeline.workouts.iter().filter(|w| w.start_ms < to && w.end_ms > from) {
                    sessions.push((w.start_ms, w.end_ms, false));
                }
            }
        }

        let mut blocks = Vec::new();
        for (start, end, night) in sessions {
            let entries = self.rr_session(start, end, night);
            let i = entries.partition_point(|e| e.t < from);
            let j = entries.partition_point(|e| e.t < to);
            let run = &entries[i..j];
            if run.is_empty() {
                continue;
            }
            let intervals: Vec<i64> = run
                .iter()
                .map(|e| {
                    let sentinel = e.glitch && RR_SENTINELS.contains(&e.value_ms);
                    if sentinel || !self.device.rr_per_1024 {
                        e.value_ms
                    } else {
                        (e.value_ms as f64 * 1.024).round() as i64
                    }
                })
                .collect();
            samples += run.len() as u32;
            impossible += run.iter().filter(|e| e.glitch).count() as u32;
            blocks.push(json!({"first_beat_ms": dev(run[0].t), "intervals": intervals}));
        }

        let zones = self.timeline.zones_between(window_start, phone_time);
        let iana = zones.last().map_or("Etc/UTC", |z| z.iana());
        let offsets: Vec<Value> =
            zones.iter().map(|z| json!({"from_ms": z.from_ms, "offset_minutes": z.offset_minutes()})).collect();
        let per = hr_step; // one record per heart-rate slot
        let seq = |t: i64| {
            (i64::from(self.device.sequence_base) + (t - self.seq_origin_ms).max(0) / per).min(i64::from(u32::MAX))
        };
        let (seq_first, seq_last) = (seq(from), seq(to).saturating_sub(1).max(seq(from)));
        let battery = if battery_glitch { 255 } else { self.battery(phone_time) };

        let mut body = json!({
            "sync_id": sync_id.to_string(),
            "device": {
                "manufacturer": self.device.manufacturer,
                "model": self.device.model,
                "hardware_version": self.device.hardware_version,
                "firmware_version": self.device.firmware_version,
                "battery_percent": battery,
                "hr_sensor": match self.device.kind { DeviceKind::Band => "optical", DeviceKind::Strap => "strap" },
            },
            "app": {"version": self.app.0, "os": self.app.1},
            "clock": {"device_time_ms": phone_time - skew, "phone_time_ms": phone_time},
            "time_zone": {"iana": iana, "offsets": offsets},
            "sequence": {"first": seq_first, "last": seq_last},
            "window": {"start_ms": dev(window_start), "end_ms": dev(to)},
            "heart_rate": heart_rate,
        });
        if !blocks.is_empty() {
            body["rr"] = json!({"unit": if self.device.rr_per_1024 { "1/1024s" } else { "ms" }, "blocks": blocks});
        }
        if !steps.is_empty() {
            body["steps"] = Value::Array(steps);
        }
        if !sleep.is_empty() {
            body["sleep"] = Value::Array(sleep);
        }
        if !workouts.is_empty() {
            body["workouts"] = Value::Array(workouts);
        }
        if self.device.kind == DeviceKind::Band {
            body["profile"] = self.profile.clone();
        }
        Outgoing {
            at_ms: phone_time,
            user_index: self.user_index,
            user_id: self.user_id.clone(),
            device_id: self.device.id.clone(),
            sync_id,
            kind,
            resend: false,
            body,
            samples,
            impossible,
        }
    }

    /// Charge: the band drains over about six days, then is charged; the strap drains slowly.
    fn battery(&self, t: i64) -> i64 {
        let hours = (t / HOUR_MS + (self.device.seed % 500) as i64) as f64;
        match self.device.kind {
            DeviceKind::Band => (100.0 - (hours % 150.0) * 0.6).round() as i64,
            DeviceKind::Strap => (98.0 - (hours % 700.0) * 0.12).round() as i64,
        }
    }

    /// The RR recording of a night (band) or a workout (strap), cached: mean interval from the
    /// body's heart rate, respiratory sinus arrhythmia and AR(1) beat-to-beat noise; glitches
    /// are missed beats (merged into one interval over 2 s, so later beats stay in place) or
    /// sentinels.
    fn rr_session(&mut self, start: i64, end: i64, night: bool) -> Arc<Vec<RrEntry>> {
        if let Some((_, s)) = self.rr_cache.iter().find(|(k, _)| *k == (start, end)) {
            return s.clone();
        }
        let seed = self.device.seed;
        let key = start as u64;
        let p = &self.timeline.user.physiology;
        let (rsa, noise) = if night { (p.rsa_ms, p.rr_noise_ms) } else { (4.0, 4.0) };
        let breath_ms = 3_500.0 + 1_500.0 * rng::unit(seed, Purpose::Rr, &[key, u64::MAX]);
        let mut t = start + (rng::unit(seed, Purpose::Rr, &[key, u64::MAX - 1]) * 1_000.0) as i64;
        let mut ar = 0.0;
        let mut beats = Vec::new();
        let mut n = 0u64;
        while t < end {
            let mean = 60_000.0 / self.timeline.heart_rate(t);
            ar = 0.5 * ar + noise * rng::gauss(seed, Purpose::Rr, &[key, n]);
            let rr = (mean + rsa * (std::f64::consts::TAU * t as f64 / breath_ms).sin() + ar)
                .round()
                .clamp(300.0, 1_900.0) as i64;
            beats.push((t, rr));
            t += rr;
            n += 1;
        }
        let p_bad = self.imperfections.impossible;
        let mut entries = Vec::with_capacity(beats.len());
        let mut i = 0;
        while i < beats.len() {
            let (t, rr) = beats[i];
            if rng::unit(seed, Purpose::RrGlitch, &[t as u64]) < p_bad {
                let what = rng::hash(seed, Purpose::RrGlitch, &[t as u64, 1]) % 5;
                if what < 2 {
                    let (mut sum, mut j) = (0, i);
                    while j < beats.len() && sum <= 2_000 {
                        sum += beats[j].1;
                        j += 1;
                    }
                    if sum > 2_000 {
                        entries.push(RrEntry { t, value_ms: sum, glitch: true });
                        i = j;
                        continue;
                    }
                }
                entries.push(RrEntry { t, value_ms: RR_SENTINELS[(what % 3) as usize], glitch: true });
            } else {
                entries.push(RrEntry { t, value_ms: rr, glitch: false });
            }
            i += 1;
        }
        let entries = Arc::new(entries);
        if self.rr_cache.len() >= 4 {
            self.rr_cache.remove(0);
        }
        self.rr_cache.push(((start, end), entries.clone()));
        entries
    }
}

/// Every device of a fleet, in a fixed order (user by user).
pub fn devices(config: &SimConfig, fleet: &crate::fleet::Fleet) -> Vec<DeviceSim> {
    fleet.users.iter().flat_map(|u| u.devices.iter().map(move |d| DeviceSim::new(config, u, d))).collect()
}

/// The first `n` commands of a fleet in the order of their send times (ties by device order):
/// what a run sends, without the network. Used by `devsim preview` and the tests.
pub fn commands(config: &SimConfig, n: usize) -> Vec<Outgoing> {
    let fleet = crate::fleet::Fleet::new(&config.fleet);
    let mut sims = devices(config, &fleet);
    let mut out = Vec::with_capacity(n);
    while out.len() < n && !sims.is_empty() {
        let (i, _) = sims.iter().enumerate().min_by_key(|(_, s)| s.next_time()).expect("not empty");
        out.extend(sims[i].step());
    }
    out.truncate(n);
    out
}

/// All commands of a fleet sent before simulated time `until_ms`.
pub fn commands_until(config: &SimConfig, until_ms: i64) -> Vec<Outgoing> {
    let fleet = crate::fleet::Fleet::new(&config.fleet);
    let mut sims = devices(config, &fleet);
    let mut out = Vec::new();
    while let Some((i, t)) = sims.iter().enumerate().map(|(i, s)| (i, s.next_time())).min_by_key(|x| x.1) {
        if t >= until_ms {
            break;
        }
        out.extend(sims[i].step());
    }
    out
}
