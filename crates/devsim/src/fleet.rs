//! The simulated fleet: users with a profile, a physiology and a home time zone, each with a
//! wrist band and, for some, a chest strap worn for workouts. Everything follows from the seed.

use rand::Rng;

use crate::rng::{self, Purpose};

/// Time zones without daylight-saving time, so one UTC offset per zone is right all year.
pub const ZONES: &[(&str, i32)] = &[
    ("Africa/Abidjan", 0),
    ("Africa/Lagos", 60),
    ("Africa/Johannesburg", 120),
    ("Europe/Moscow", 180),
    ("Asia/Dubai", 240),
    ("Asia/Karachi", 300),
    ("Asia/Kolkata", 330),
    ("Asia/Dhaka", 360),
    ("Asia/Bangkok", 420),
    ("Asia/Singapore", 480),
    ("Asia/Tokyo", 540),
    ("Australia/Brisbane", 600),
    ("Pacific/Honolulu", -600),
    ("America/Phoenix", -420),
    ("America/Bogota", -300),
    ("America/Sao_Paulo", -180),
];

#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    pub seed: u64,
    pub users: usize,
    /// Share of users who also own a chest strap (worn for workouts).
    pub strap_share: f64,
    /// User ids are `{prefix}-{index}`.
    pub user_prefix: String,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self { seed: 1, users: 5, strap_share: 0.3, user_prefix: "sim-user".into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
}

impl Sex {
    pub fn name(self) -> &'static str {
        match self {
            Sex::Male => "male",
            Sex::Female => "female",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub birth_year: i32,
    pub sex: Sex,
    pub weight_kg: f64,
    pub height_cm: f64,
}

/// How one body behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct Physiology {
    /// Heart rate in light sleep, bpm (so night RR intervals average 60000 / this).
    pub sleep_hr: f64,
    /// Heart rate sitting awake, bpm.
    pub rest_hr: f64,
    pub hr_max: f64,
    /// Respiratory sinus arrhythmia amplitude at night, ms (the main part of night HRV).
    pub rsa_ms: f64,
    /// Beat-to-beat noise at night (AR(1) innovation), ms.
    pub rr_noise_ms: f64,
    /// Chance of a workout on a given day.
    pub workout_chance: f64,
    /// Preferred local hour of workouts.
    pub workout_hour: f64,
    /// Local bedtime in hours after midnight of the evening's date (23.5 = 23:30, 24.5 = 00:30).
    pub bedtime_hour: f64,
    pub sleep_hours: f64,
    /// Walking stride, m.
    pub stride_m: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// An optical wrist band, worn day and night: heart rate every 5 s, steps, sleep, RR at night.
    Band,
    /// A chest strap worn for workouts: heart rate every second and RR intervals.
    Strap,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSpec {
    pub id: String,
    pub kind: DeviceKind,
    /// The seed of this device's sensor noise and glitches.
    pub seed: u64,
    pub manufacturer: &'static str,
    pub model: &'static str,
    pub hardware_version: &'static str,
    pub firmware_version: &'static str,
    /// RR intervals in 1/1024 s (as some straps report them) instead of ms.
    pub rr_per_1024: bool,
    /// The device's record sequence number at the start of the simulation.
    pub sequence_base: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserSpec {
    pub index: usize,
    pub id: String,
    pub seed: u64,
    pub profile: Profile,
    pub physiology: Physiology,
    /// Index into [`ZONES`].
    pub home_zone: usize,
    pub app_version: &'static str,
    pub os: &'static str,
    pub devices: Vec<DeviceSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    pub users: Vec<UserSpec>,
}

const BANDS: &[(&str, &str, &str, &str)] = &[
    ("Acme", "Band 3", "rev-b", "3.1.4"),
    ("Acme", "Band 4", "rev-a", "4.0.2"),
    ("Nimbus", "Watch 2", "hw4", "5.0.2"),
    ("Kestrel", "Fit S", "v1.2", "2.8.0"),
];
const STRAPS: &[(&str, &str, &str, &str, bool)] =
    &[("Pulse", "Strap X", "r2", "1.9.0", true), ("Acme", "HR Strap", "rev-c", "1.2.7", false)];
const APPS: &[(&str, &str)] = &[("2.4.0", "Android 15"), ("2.4.1", "iOS 18.2"), ("2.3.9", "Android 14")];

impl Fleet {
    pub fn new(config: &FleetConfig) -> Self {
        let users = (0..config.users).map(|i| user(config, i)).collect();
        Self { users }
    }
}

fn pick<T: Copy>(rng: &mut impl Rng, items: &[T]) -> T {
    items[rng.gen_range(0..items.len())]
}

fn user(config: &FleetConfig, index: usize) -> UserSpec {
    let seed = rng::hash(config.seed, Purpose::User, &[index as u64]);
    let mut r = rng::stream(seed, Purpose::User, &[]);
    let sex = if r.gen_bool(0.5) { Sex::Female } else { Sex::Male };
    let birth_year = r.gen_range(1955..=2005);
    let age = 2025 - birth_year;
    let (height_cm, weight_kg) = match sex {
        Sex::Female => {
            let h: f64 = 164.0 + 6.5 * rng::normal(&mut r);
            (h, 22.5 * (h / 100.0).powi(2) + 3.0 * rng::normal(&mut r).abs() + 4.0 * r.gen::<f64>())
        }
        Sex::Male => {
            let h: f64 = 177.0 + 7.0 * rng::normal(&mut r);
            (h, 23.5 * (h / 100.0).powi(2) + 3.0 * rng::normal(&mut r).abs() + 5.0 * r.gen::<f64>())
        }
    };
    let sleep_hr = r.gen_range(56.0..66.0);
    let physiology = Physiology {
        sleep_hr,
        rest_hr: sleep_hr + r.gen_range(4.0..9.0),
        hr_max: 208.0 - 0.7 * age as f64 + r.gen_range(-5.0..5.0),
        // Younger people have more HRV.
        rsa_ms: (45.0 - 0.4 * (age - 20).max(0) as f64 + r.gen_range(-5.0..5.0)).clamp(18.0, 45.0),
        rr_noise_ms: r.gen_range(6.0..12.0),
        workout_chance: r.gen_range(0.25..0.7),
        workout_hour: pick(&mut r, &[7.0, 12.5, 17.5, 18.5, 19.0]) + r.gen_range(-0.5..0.5),
        bedtime_hour: r.gen_range(22.5..24.3),
        sleep_hours: r.gen_range(7.0..8.3),
        stride_m: (height_cm * 0.415 / 100.0).clamp(0.55, 0.9),
    };
    let id = format!("{}-{index}", config.user_prefix);
    let (app_version, os) = pick(&mut r, APPS);
    let band = pick(&mut r, BANDS);
    let mut devices = vec![DeviceSpec {
        id: format!("{id}-band"),
        kind: DeviceKind::Band,
        seed: rng::hash(seed, Purpose::Device, &[0]),
        manufacturer: band.0,
        model: band.1,
        hardware_version: band.2,
        firmware_version: band.3,
        rr_per_1024: false,
        sequence_base: r.gen_range(0..1 << 30),
    }];
    if r.gen_bool(config.strap_share.clamp(0.0, 1.0)) {
        let strap = pick(&mut r, STRAPS);
        devices.push(DeviceSpec {
            id: format!("{id}-strap"),
            kind: DeviceKind::Strap,
            seed: rng::hash(seed, Purpose::Device, &[1]),
            manufacturer: strap.0,
            model: strap.1,
            hardware_version: strap.2,
            firmware_version: strap.3,
            rr_per_1024: strap.4,
            sequence_base: r.gen_range(0..1 << 30),
        });
    }
    UserSpec {
        index,
        id,
        seed,
        profile: Profile {
            birth_year,
            sex,
            weight_kg: (weight_kg * 10.0).round() / 10.0,
            height_cm: height_cm.round(),
        },
        physiology,
        home_zone: r.gen_range(0..ZONES.len()),
        app_version,
        os,
        devices,
    }
}
