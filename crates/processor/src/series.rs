//! A user's rolling series, resumed from the stored state of the day before the earliest
//! changed day instead of recomputed over the user's whole history.
//!
//! What resuming at day D needs: the load state (CTL, ATL, EWMAs) of D−1 and its position in the
//! dense series, the loads of the 27 days before D (the 28-day ACWR window), and the daily
//! resting HR and ln RMSSD of the [`LOOKBACK_DAYS`] before D (the anomaly and HRV baselines).

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use health_model::rolling::{self, LoadDay};
use serde_json::json;

use crate::sql::RollingRow;

/// Days of history before the first recomputed day that the baselines read.
pub const LOOKBACK_DAYS: u64 = rolling::ROLLING_LOOKBACK_DAYS as u64;
/// Days of stored series held before a day so that resuming there finds what it needs: the
/// lookback, the day before it, and one day of margin. Loads and trims both keep this much.
pub const HISTORY_DAYS: u64 = LOOKBACK_DAYS + 2;

/// The inputs of the rolling series a day contributes (a day without a row contributes load 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DailyValues {
    pub load: f64,
    pub resting_hr: Option<f64>,
    pub ln_rmssd: Option<f64>,
    pub hr_max: Option<f64>,
}

/// A user's daily values and rolling state over a recent stretch of days.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Every daily and rolling row dated on or after this is here (None: everything is).
    pub loaded_from: Option<NaiveDate>,
    /// The first day of the user's dense series (None: the user has none yet).
    pub first_day: Option<NaiveDate>,
    pub daily: BTreeMap<NaiveDate, DailyValues>,
    pub rolling: BTreeMap<NaiveDate, LoadDay>,
}

impl Series {
    /// Whether a recomputation from `from` finds what it needs in memory.
    pub fn covers(&self, from: NaiveDate) -> bool {
        let Some(loaded_from) = self.loaded_from else { return true };
        if self.first_day.is_some_and(|first| first >= loaded_from) {
            return true;
        }
        // Resuming may start earlier than `from` when days between the last row and `from` are new.
        let resume_at = match self.rolling.keys().next_back() {
            Some(&last) => from.min(last.succ_opt().unwrap_or(last)),
            None => from,
        };
        resume_at.checked_sub_days(Days::new(LOOKBACK_DAYS + 1)).is_some_and(|need| need >= loaded_from)
    }

    /// Forgets days well before the latest one, keeping what resuming there needs.
    pub fn trim(&mut self) {
        let Some(&last) = self.rolling.keys().next_back() else { return };
        let Some(keep_from) = last.checked_sub_days(Days::new(HISTORY_DAYS)) else { return };
        if self.loaded_from.is_some_and(|l| l >= keep_from) || self.first_day.is_some_and(|f| f >= keep_from) {
            return;
        }
        self.daily = self.daily.split_off(&keep_from);
        self.rolling = self.rolling.split_off(&keep_from);
        self.loaded_from = Some(keep_from);
    }

    pub fn bytes(&self) -> usize {
        self.daily.len() * (size_of::<DailyValues>() + 40) + self.rolling.len() * (size_of::<LoadDay>() + 40)
    }

    /// Sets or clears a day's values; returns whether the rolling inputs changed.
    pub fn set_day(&mut self, date: NaiveDate, values: Option<DailyValues>) -> bool {
        let before = match values {
            Some(v) => {
                self.first_day = Some(self.first_day.map_or(date, |f| f.min(date)));
                self.daily.insert(date, v)
            }
            None => self.daily.remove(&date),
        };
        before != values
    }

    /// Recomputes the series from `from` (or from where it must resume) to its last day.
    /// Returns the rows to write; None when the history needed is not in memory.
    pub fn recompute_from(&mut self, user: &str, from: NaiveDate) -> Option<Vec<RollingRow>> {
        let first = self.first_day?;
        let last =
            self.daily.keys().next_back().copied()?.max(self.rolling.keys().next_back().copied().unwrap_or(first));
        let mut start = from.max(first);
        if let Some(&last_row) = self.rolling.keys().next_back() {
            start = start.min(last_row.succ_opt()?);
        } else {
            start = first;
        }
        let window_start = start.checked_sub_days(Days::new(LOOKBACK_DAYS))?.max(first);
        if self.loaded_from.is_some_and(|l| l > window_start) {
            return None;
        }
        let days: Vec<NaiveDate> = window_start.iter_days().take_while(|d| *d <= last).collect();
        let at = days.iter().position(|d| *d == start)?;
        let loads: Vec<f64> = days.iter().map(|d| self.daily.get(d).map_or(0.0, |v| v.load)).collect();
        let rhr: Vec<Option<f64>> = days.iter().map(|d| self.daily.get(d).and_then(|v| v.resting_hr)).collect();
        let ln_rmssd: Vec<Option<f64>> = days.iter().map(|d| self.daily.get(d).and_then(|v| v.ln_rmssd)).collect();
        let previous = match start.pred_opt() {
            Some(p) if start > first => Some((self.rolling.get(&p)?, index(first, p)?)),
            _ => None,
        };
        let mut state = match previous {
            Some((day, index)) => rolling::LoadState::after(day, index, &loads[..at]),
            None => rolling::LoadState::new(),
        };
        let load = state.advance(&loads[at..]);
        let anomalies = rolling::rhr_anomalies(&rhr);
        let hrv = rolling::hrv_baseline(&ln_rmssd);
        let mut rows = Vec::with_capacity(days.len() - at);
        for (i, date) in days.iter().enumerate().skip(at) {
            let l = load[i - at];
            self.rolling.insert(*date, l);
            let daily = self.daily.get(date);
            let vo2max = daily.and_then(|v| Some(health_model::energy::uth_vo2max(v.hr_max?, v.resting_hr?)));
            let metrics = json!({
                "load": l,
                "acwr_band": l.acwr_rolling.map(rolling::acwr_band),
                "resting_hr": anomalies[i],
                "hrv": hrv[i],
                "vo2max": vo2max,
                "hr_max": daily.and_then(|v| v.hr_max),
            });
            rows.push(RollingRow {
                user_id: user.to_owned(),
                local_date: *date,
                day_index: i32::try_from(index(first, *date)?).ok()?,
                has_data: daily.is_some(),
                training_load: l.load,
                fitness: l.fitness,
                fatigue: l.fatigue,
                form: l.form,
                acwr_rolling: l.acwr_rolling,
                acwr_ewma: l.acwr_ewma,
                ewma7: l.ewma7,
                ewma28: l.ewma28,
                rhr_z: anomalies[i].z,
                rhr_flag: anomalies[i].z_flag,
                night_signal: anomalies[i].night_signal,
                metrics,
            });
        }
        Some(rows)
    }
}

fn index(first: NaiveDate, date: NaiveDate) -> Option<usize> {
    usize::try_from((date - first).num_days()).ok()
}
