//! One user's life in UTC: the time zones they were in, their nights (with sleep stages) and
//! workouts, generated night by night from the user's seed as far as asked, and the physiology
//! read off it: heart rate by time of day, sleep stage and exertion; steps per minute.
//!
//! The timeline is a pure function of the user and the origin, so every device of the user (each
//! keeps its own copy) sees the same nights and workouts.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::fleet::{UserSpec, ZONES};
use crate::rng::{self, Purpose};

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Awake,
    Light,
    Deep,
    Rem,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Awake => "awake",
            Stage::Light => "light",
            Stage::Deep => "deep",
            Stage::Rem => "rem",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start_ms: i64,
    pub end_ms: i64,
    pub stage: Stage,
}

/// A night in bed: contiguous sleep segments from `bed_ms` to `wake_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Night {
    pub bed_ms: i64,
    pub wake_ms: i64,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workout {
    pub start_ms: i64,
    pub end_ms: i64,
    pub sport: &'static str,
    /// Heart rate held after the warm-up, bpm.
    pub target_hr: f64,
    /// Steps per minute.
    pub cadence: f64,
    pub stride_m: f64,
}

/// From `from_ms` on, the user is in this zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneChange {
    pub from_ms: i64,
    pub zone: usize,
}

impl ZoneChange {
    pub fn iana(&self) -> &'static str {
        ZONES[self.zone].0
    }
    pub fn offset_minutes(&self) -> i32 {
        ZONES[self.zone].1
    }
}

/// What the body is doing at an instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum State<'a> {
    Asleep { stage: Stage, night_fraction: f64 },
    Exercising { workout: &'a Workout, elapsed_ms: i64 },
    Awake,
}

const SPORTS: &[(&str, f64, f64, f64)] = &[
    // sport, cadence low, cadence high, stride factor over walking
    ("running", 160.0, 178.0, 1.55),
    ("running", 158.0, 176.0, 1.5),
    ("trail_running", 150.0, 170.0, 1.35),
    ("hiking", 112.0, 128.0, 1.0),
];

#[derive(Debug, Clone)]
pub struct Timeline {
    pub user: UserSpec,
    travel_chance: f64,
    rng: ChaCha8Rng,
    pub zones: Vec<ZoneChange>,
    pub nights: Vec<Night>,
    pub workouts: Vec<Workout>,
}

fn floor_day(t: i64) -> i64 {
    t.div_euclid(DAY_MS) * DAY_MS
}

impl Timeline {
    /// A timeline whose first night is the one before `origin_ms`. `travel_chance` is the chance
    /// on each day that the user flies to another time zone.
    pub fn new(user: &UserSpec, origin_ms: i64, travel_chance: f64) -> Self {
        let mut rng = rng::stream(user.seed, Purpose::Timeline, &[]);
        let zones = vec![ZoneChange { from_ms: origin_ms - 2 * DAY_MS, zone: user.home_zone }];
        let start = origin_ms - DAY_MS;
        let offset = i64::from(ZONES[user.home_zone].1) * MINUTE_MS;
        let bed_local = floor_day(start + offset) + (user.physiology.bedtime_hour * HOUR_MS as f64) as i64 - DAY_MS;
        let bed = round_to(bed_local - offset, 30_000);
        let wake = bed + round_to((user.physiology.sleep_hours * HOUR_MS as f64) as i64, 30_000);
        let first = Night { bed_ms: bed, wake_ms: wake, segments: sleep_segments(&mut rng, bed, wake) };
        let mut t = Self {
            user: user.clone(),
            travel_chance: travel_chance.clamp(0.0, 1.0),
            rng,
            zones,
            nights: vec![first],
            workouts: Vec::new(),
        };
        t.extend_to(origin_ms);
        t
    }

    /// Makes sure nights and workouts are known until at least a day past `t`.
    pub fn extend_to(&mut self, t: i64) {
        while self.nights.last().is_some_and(|n| n.wake_ms < t + DAY_MS) {
            self.next_day();
        }
    }

    /// The day after the last night, and the night after it. Every draw happens whatever is
    /// decided, so the stream stays aligned.
    fn next_day(&mut self) {
        let p = self.user.physiology.clone();
        let wake = self.nights.last().map_or(0, |n| n.wake_ms);
        let r = &mut self.rng;
        let (travels, travel_after, destination) =
            (r.gen_bool(self.travel_chance), r.gen_range(3 * HOUR_MS..8 * HOUR_MS), r.gen_range(1..ZONES.len()));
        let bed_jitter = (rng::normal(r) * 25.0 * MINUTE_MS as f64) as i64;
        let sleep_jitter = (rng::normal(r) * 30.0 * MINUTE_MS as f64) as i64;
        let works_out = r.gen_bool(p.workout_chance);
        let workout_jitter = r.gen_range(-45 * MINUTE_MS..45 * MINUTE_MS);
        let workout_minutes = r.gen_range(20..=60);
        let sport = SPORTS[r.gen_range(0..SPORTS.len())];
        let target_hr: f64 = r.gen_range(132.0..168.0);
        let cadence = r.gen_range(sport.1..sport.2);

        if travels {
            let current = self.zone_at(wake).zone;
            let zone = (current + destination) % ZONES.len();
            self.zones.push(ZoneChange { from_ms: round_to(wake + travel_after, MINUTE_MS), zone });
        }

        // Bedtime: the user's local bedtime after the day, within 13 to 19 hours of waking, so a
        // big time-zone change is absorbed over a few days (jet lag).
        let probe = wake + 12 * HOUR_MS;
        let offset = self.offset_ms_at(probe);
        let bed_local = floor_day(probe + offset) + (p.bedtime_hour * HOUR_MS as f64) as i64 + bed_jitter;
        let bed = round_to((bed_local - offset).clamp(wake + 13 * HOUR_MS, wake + 19 * HOUR_MS), 30_000);
        let length = ((p.sleep_hours * HOUR_MS as f64) as i64 + sleep_jitter).clamp(5 * HOUR_MS, 10 * HOUR_MS);
        let next_wake = bed + round_to(length, 30_000);

        if works_out {
            let at = wake + HOUR_MS;
            let offset = self.offset_ms_at(at);
            let start_local = floor_day(at + offset) + (p.workout_hour * HOUR_MS as f64) as i64 + workout_jitter;
            let start = round_to(start_local - offset, MINUTE_MS).max(wake + 45 * MINUTE_MS);
            let end = start + workout_minutes * MINUTE_MS;
            if end <= bed - 90 * MINUTE_MS {
                self.workouts.push(Workout {
                    start_ms: start,
                    end_ms: end,
                    sport: sport.0,
                    target_hr: target_hr.min(p.hr_max - 12.0),
                    cadence,
                    stride_m: p.stride_m * sport.3,
                });
            }
        }
        let segments = sleep_segments(&mut self.rng, bed, next_wake);
        self.nights.push(Night { bed_ms: bed, wake_ms: next_wake, segments });
    }

    pub fn zone_at(&self, t: i64) -> ZoneChange {
        let i = self.zones.partition_point(|z| z.from_ms <= t);
        self.zones[i.saturating_sub(1)]
    }

    pub fn offset_ms_at(&self, t: i64) -> i64 {
        i64::from(self.zone_at(t).offset_minutes()) * MINUTE_MS
    }

    /// Local hour of day, 0.0..24.0.
    pub fn local_hour(&self, t: i64) -> f64 {
        (t + self.offset_ms_at(t)).rem_euclid(DAY_MS) as f64 / HOUR_MS as f64
    }

    /// The zone changes in force somewhere in `[from, to]`: the one at `from`, then later ones.
    pub fn zones_between(&self, from: i64, to: i64) -> Vec<ZoneChange> {
        let first = self.zones.partition_point(|z| z.from_ms <= from).saturating_sub(1);
        self.zones[first..].iter().take_while(|z| z.from_ms <= to).copied().collect()
    }

    pub fn night_at(&self, t: i64) -> Option<&Night> {
        let i = self.nights.partition_point(|n| n.bed_ms <= t);
        self.nights[..i].last().filter(|n| t < n.wake_ms)
    }

    pub fn workout_at(&self, t: i64) -> Option<&Workout> {
        let i = self.workouts.partition_point(|w| w.start_ms <= t);
        self.workouts[..i].last().filter(|w| t < w.end_ms)
    }

    /// Nights that end in `[from, to)`.
    pub fn nights_ending_in(&self, from: i64, to: i64) -> impl Iterator<Item = &Night> {
        self.nights.iter().filter(move |n| n.wake_ms >= from && n.wake_ms < to)
    }

    /// Workouts that end in `[from, to)`.
    pub fn workouts_ending_in(&self, from: i64, to: i64) -> impl Iterator<Item = &Workout> {
        self.workouts.iter().filter(move |w| w.end_ms >= from && w.end_ms < to)
    }

    pub fn state_at(&self, t: i64) -> State<'_> {
        if let Some(n) = self.night_at(t) {
            let i = n.segments.partition_point(|s| s.start_ms <= t);
            let stage = n.segments[..i].last().map_or(Stage::Awake, |s| s.stage);
            let night_fraction = (t - n.bed_ms) as f64 / (n.wake_ms - n.bed_ms).max(1) as f64;
            return State::Asleep { stage, night_fraction };
        }
        if let Some(w) = self.workout_at(t) {
            return State::Exercising { workout: w, elapsed_ms: t - w.start_ms };
        }
        State::Awake
    }

    /// Whether the user is out walking in the 10-minute block around `t` (more likely by day).
    fn walking(&self, t: i64) -> bool {
        let hour = self.local_hour(t);
        let chance = if (8.0..20.0).contains(&hour) {
            0.09
        } else if (6.5..23.0).contains(&hour) {
            0.04
        } else {
            0.01
        };
        rng::unit(self.user.seed, Purpose::Walking, &[t.div_euclid(10 * MINUTE_MS) as u64]) < chance
    }

    /// The heart rate of the body at `t` (no sensor noise): lower at night and by stage of sleep,
    /// a circadian swing by day, raised when walking, held at the target in a workout.
    pub fn heart_rate(&self, t: i64) -> f64 {
        let p = &self.user.physiology;
        let wobble = |period_min: i64| rng::value_noise(self.user.seed, Purpose::Physiology, t, period_min * MINUTE_MS);
        match self.state_at(t) {
            State::Asleep { stage, night_fraction } => {
                let stage_delta = match stage {
                    Stage::Deep => -3.0,
                    Stage::Light => 0.0,
                    Stage::Rem => 3.0,
                    Stage::Awake => 7.0,
                };
                p.sleep_hr + stage_delta + 1.5 - 3.0 * night_fraction + 1.5 * wobble(7)
            }
            State::Exercising { workout, elapsed_ms } => {
                let warm = (elapsed_ms as f64 / (5 * MINUTE_MS) as f64).min(1.0);
                let left = (workout.end_ms - workout.start_ms - elapsed_ms) as f64 / (3 * MINUTE_MS) as f64;
                let ramp = warm.min(0.6 + 0.4 * left.min(1.0));
                let start = p.rest_hr + 25.0;
                start + (workout.target_hr - start) * ramp + 3.5 * wobble(2)
            }
            State::Awake => {
                let hour = self.local_hour(t);
                let circadian = 6.0 * (std::f64::consts::TAU * (hour - 9.0) / 24.0).sin();
                let walking = if self.walking(t) { 22.0 } else { 0.0 };
                p.rest_hr + 8.0 + circadian + walking + 4.0 * wobble(11)
            }
        }
    }

    /// Steps in the minute starting at `minute_ms` and the distance per step, or None while
    /// asleep (a band sends no step epochs at night).
    pub fn steps(&self, minute_ms: i64) -> Option<(i64, f64)> {
        let p = &self.user.physiology;
        let key = [minute_ms.div_euclid(MINUTE_MS) as u64];
        let noise = rng::gauss(self.user.seed, Purpose::Steps, &key);
        match self.state_at(minute_ms) {
            State::Asleep { .. } => None,
            State::Exercising { workout, elapsed_ms } => {
                let warm = (elapsed_ms as f64 / (3 * MINUTE_MS) as f64).min(1.0);
                let cadence = 100.0 + (workout.cadence - 100.0) * warm + 3.0 * noise;
                Some((cadence.round().clamp(0.0, 220.0) as i64, workout.stride_m))
            }
            State::Awake if self.walking(minute_ms) => Some(((105.0 + 8.0 * noise).round() as i64, p.stride_m)),
            State::Awake => {
                let u = rng::unit(self.user.seed, Purpose::Steps, &[key[0], 1]);
                Some((if u < 0.7 { 0 } else { (u * 40.0 - 27.0).round() as i64 }, p.stride_m))
            }
        }
    }
}

fn round_to(t: i64, step: i64) -> i64 {
    (t + step / 2).div_euclid(step) * step
}

/// A night of about 40 segments: a few minutes awake falling asleep, then 90-minute cycles of
/// light, deep and REM sleep (deep early, REM late), with brief awakenings late in the night.
/// Boundaries are on 30-second epochs; segments are contiguous and never overlap.
pub fn sleep_segments(rng: &mut impl Rng, bed: i64, wake: i64) -> Vec<Segment> {
    use Stage::*;
    const EARLY: &[(Stage, f64)] = &[
        (Light, 0.14),
        (Deep, 0.20),
        (Light, 0.07),
        (Deep, 0.16),
        (Light, 0.12),
        (Rem, 0.09),
        (Light, 0.08),
        (Rem, 0.06),
        (Light, 0.08),
    ];
    const LATE: &[(Stage, f64)] = &[
        (Light, 0.18),
        (Deep, 0.05),
        (Light, 0.12),
        (Rem, 0.18),
        (Light, 0.10),
        (Rem, 0.17),
        (Light, 0.08),
        (Awake, 0.04),
    ];
    let latency = round_to(rng.gen_range(5 * MINUTE_MS..18 * MINUTE_MS), 30_000);
    let asleep = bed + latency;
    let cycles = (((wake - asleep) as f64 / (90 * MINUTE_MS) as f64).round() as usize).max(1);
    let mut plan: Vec<(Stage, f64)> = vec![];
    for c in 0..cycles {
        let pattern = if c * 2 < cycles { EARLY } else { LATE };
        let weights: Vec<f64> = pattern.iter().map(|(_, w)| w * rng.gen_range(0.6..1.4)).collect();
        let total: f64 = weights.iter().sum();
        plan.extend(pattern.iter().zip(&weights).map(|((s, _), w)| (*s, w / total)));
    }
    let cycle_share = 1.0 / cycles as f64;
    let span = (wake - asleep) as f64;
    let mut segments = vec![Segment { start_ms: bed, end_ms: asleep, stage: Awake }];
    let mut acc = 0.0;
    let mut start = asleep;
    for (i, (stage, share)) in plan.iter().enumerate() {
        acc += share * cycle_share;
        let end = if i + 1 == plan.len() { wake } else { round_to(asleep + (acc * span) as i64, 30_000) };
        if end <= start {
            continue;
        }
        match segments.last_mut() {
            Some(last) if last.stage == *stage => last.end_ms = end,
            _ => segments.push(Segment { start_ms: start, end_ms: end, stage: *stage }),
        }
        start = end;
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_night_has_about_forty_contiguous_segments() {
        let mut r = ChaCha8Rng::seed_from_u64(4);
        let s = sleep_segments(&mut r, 0, 8 * HOUR_MS);
        assert!((30..=50).contains(&s.len()), "{}", s.len());
        assert_eq!(s.first().unwrap().start_ms, 0);
        assert_eq!(s.last().unwrap().end_ms, 8 * HOUR_MS);
        for w in s.windows(2) {
            assert_eq!(w[0].end_ms, w[1].start_ms);
            assert!(w[0].start_ms < w[0].end_ms);
        }
    }
}
