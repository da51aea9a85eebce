//! The health model as pure functions: no I/O, so every formula is tested against the independent
//! vectors in `tests/vectors/` and benchmarked on its own.
//!
//! Conventions: heart rate in bpm, RR intervals in ms, durations in seconds unless named
//! otherwise, times in UTC epoch milliseconds.

/// The version of the model's formulas. Bump it whenever an output changes for the same input
/// (a formula, a constant, a rule); `tests/model_version.json` records the outputs on the vectors
/// that belong to it, and a test fails when they change without a bump.
pub const MODEL_VERSION: i32 = 1;

pub mod day;
pub mod energy;
pub mod hrv;
pub mod load;
pub mod resting;
pub mod rolling;
pub mod sleep;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    Male,
    Female,
}

/// What the model needs to know about the user (the latest profile a sync carried).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub sex: Sex,
    /// Age in whole years on the day computed.
    pub age: f64,
    pub weight_kg: f64,
    pub height_cm: f64,
    /// A measured maximal heart rate, when the user has one.
    pub measured_hr_max: Option<f64>,
}
