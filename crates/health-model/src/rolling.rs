//! The rolling series over dense days: fitness/fatigue/form, ACWR, resting-HR anomalies and the HRV
//! baseline. Every value depends only on the days up to its own, so a late batch for day D means
//! recomputing from D forward: from a [`LoadState`] for the load series, and from
//! [`ROLLING_LOOKBACK_DAYS`] before D for the others.

use serde::{Deserialize, Serialize};

use crate::hrv::{mean, sample_sd};

/// Time constant of fitness (CTL), days (GoldenCheetah PMC).
pub const CTL_DAYS: f64 = 42.0;
/// Time constant of fatigue (ATL), days (GoldenCheetah PMC).
pub const ATL_DAYS: f64 = 7.0;
/// Acute window of the ACWR, days (Williams et al. 2017).
pub const ACUTE_DAYS: usize = 7;
/// Chronic window of the ACWR, days; no ratio before a full chronic window exists.
pub const CHRONIC_DAYS: usize = 28;

/// One day of the training-load series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadDay {
    /// The day's load (Banister TRIMP).
    pub load: f64,
    /// Fitness: the chronic training load (CTL), 42-day.
    #[serde(rename = "ctl")]
    pub fitness: f64,
    /// Fatigue: the acute training load (ATL), 7-day.
    #[serde(rename = "atl")]
    pub fatigue: f64,
    /// Form: the training stress balance (TSB), yesterday's fitness − fatigue, so today's load
    /// does not count.
    #[serde(rename = "tsb")]
    pub form: f64,
    /// Mean load of the last 7 days ÷ mean of the last 28 (both including today).
    pub acwr_rolling: Option<f64>,
    /// EWMA7 ÷ EWMA28.
    pub acwr_ewma: Option<f64>,
    /// Exponentially weighted mean load with λ = 2/(7+1).
    pub ewma7: f64,
    /// Exponentially weighted mean load with λ = 2/(28+1).
    pub ewma28: f64,
}

/// Fitness, fatigue, form and ACWR over a dense daily series (a day without training has load 0).
///
/// CTL_d = CTL_{d−1} + (1 − e^(−1/42))(load_d − CTL_{d−1}), ATL likewise with 7, TSB_d = CTL_{d−1} −
/// ATL_{d−1}. ACWR ratios are None before day 27 (no full chronic window) and when the chronic value
/// is 0 (no training to compare against).
///
/// load_series.json: dense days, day 0 first, CTL=ATL=0 and EWMA=0 before day 0.
pub fn load_series(daily_load: &[f64]) -> Vec<LoadDay> {
    LoadState::new().advance(daily_load)
}

/// Where the load series stands after a day: all that carrying it forward needs, so that a late
/// batch for day D recomputes the series from D instead of from the user's first day. Carrying a
/// state forward gives, bit for bit, what [`load_series`] gives over the whole history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadState {
    /// Days in the series so far: the index of the next day (ACWR needs day index 27).
    days: usize,
    // Serialized under the names stored states already use.
    #[serde(rename = "ctl")]
    fitness: f64,
    #[serde(rename = "atl")]
    fatigue: f64,
    ewma7: f64,
    ewma28: f64,
    /// The loads of the last `CHRONIC_DAYS - 1` days (all of them before that), oldest first: the
    /// rest of the next day's rolling windows.
    recent: Vec<f64>,
}

impl LoadState {
    /// Before day 0: no history, CTL = ATL = EWMA = 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// After `previous`, day `index` of the series, as stored from an earlier run.
    /// `loads_so_far` are the daily loads up to and including that day, oldest first; only the last
    /// `CHRONIC_DAYS - 1` are used.
    ///
    /// # Panics
    /// If `loads_so_far` holds fewer than `min(index + 1, CHRONIC_DAYS - 1)` loads: the rolling
    /// windows would silently miss days.
    pub fn after(previous: &LoadDay, index: usize, loads_so_far: &[f64]) -> Self {
        let days = index + 1;
        let needed = days.min(CHRONIC_DAYS - 1);
        assert!(
            loads_so_far.len() >= needed,
            "resuming the load series after day {index} needs the last {needed} loads, got {}",
            loads_so_far.len(),
        );
        LoadState {
            days,
            fitness: previous.fitness,
            fatigue: previous.fatigue,
            ewma7: previous.ewma7,
            ewma28: previous.ewma28,
            recent: loads_so_far[loads_so_far.len() - needed..].to_vec(),
        }
    }

    /// The index the next day will have.
    pub fn days(&self) -> usize {
        self.days
    }

    /// The series over the days that follow, one per load; the state moves on past them.
    pub fn advance(&mut self, loads: &[f64]) -> Vec<LoadDay> {
        let k_fitness = 1.0 - (-1.0 / CTL_DAYS).exp();
        let k_fatigue = 1.0 - (-1.0 / ATL_DAYS).exp();
        let l7 = 2.0 / (ACUTE_DAYS as f64 + 1.0);
        let l28 = 2.0 / (CHRONIC_DAYS as f64 + 1.0);
        // The remembered days, then the new ones: every rolling window lies within.
        let history = [self.recent.as_slice(), loads].concat();
        let (mut fitness, mut fatigue, mut ewma7, mut ewma28) = (self.fitness, self.fatigue, self.ewma7, self.ewma28);
        let out = loads
            .iter()
            .enumerate()
            .map(|(k, &load)| {
                let d = self.days + k;
                let today = self.recent.len() + k;
                let form = fitness - fatigue;
                fitness += k_fitness * (load - fitness);
                fatigue += k_fatigue * (load - fatigue);
                ewma7 = l7 * load + (1.0 - l7) * ewma7;
                ewma28 = l28 * load + (1.0 - l28) * ewma28;
                let full = d + 1 >= CHRONIC_DAYS;
                // Windows are summed afresh each day rather than as a running sum, so no rounding
                // drifts in and the result does not depend on where the series was resumed.
                let window_mean = |days: usize| history[today + 1 - days..=today].iter().sum::<f64>() / days as f64;
                let acwr_rolling = if full { ratio(window_mean(ACUTE_DAYS), window_mean(CHRONIC_DAYS)) } else { None };
                let acwr_ewma = if full { ratio(ewma7, ewma28) } else { None };
                LoadDay { load, fitness, fatigue, form, acwr_rolling, acwr_ewma, ewma7, ewma28 }
            })
            .collect();
        (self.fitness, self.fatigue, self.ewma7, self.ewma28) = (fitness, fatigue, ewma7, ewma28);
        self.days += loads.len();
        self.recent = history[history.len().saturating_sub(CHRONIC_DAYS - 1)..].to_vec();
        out
    }
}

/// acute ÷ chronic, None when the chronic value is 0.
fn ratio(acute: f64, chronic: f64) -> Option<f64> {
    (chronic != 0.0).then(|| acute / chronic)
}

/// Injury-risk band of an ACWR (Williams et al. 2017 / Gabbett "sweet spot").
///
/// "low" (< 0.8), "optimal" (0.8..=1.3), "high" (> 1.3 and <= 1.5), "very_high" (> 1.5)
pub fn acwr_band(acwr: f64) -> &'static str {
    if acwr > 1.5 {
        "very_high"
    } else if acwr > 1.3 {
        "high"
    } else if acwr >= 0.8 {
        "optimal"
    } else {
        "low"
    }
}

/// How many days before day D a slice given to [`rhr_anomalies`] or [`hrv_baseline`] must start for
/// its outputs from D on to equal, bit for bit, those over the whole history: day D reads the ln RMSSD
/// of D−59..D, and the resting HR of D−29..D (its own 28-day baseline, and yesterday's for
/// NightSignal).
pub const ROLLING_LOOKBACK_DAYS: usize =
    if HRV_BASELINE_DAYS - 1 > RHR_BASELINE_DAYS + 1 { HRV_BASELINE_DAYS - 1 } else { RHR_BASELINE_DAYS + 1 };

/// Days of resting-HR history that form the baseline.
pub const RHR_BASELINE_DAYS: usize = 28;
/// Fewest non-missing days for a usable resting-HR baseline.
pub const RHR_MIN_BASELINE: usize = 14;
/// z-score at or above which a day's resting HR is flagged.
pub const RHR_Z_FLAG: f64 = 2.0;
/// Elevation over the baseline median, bpm, that NightSignal treats as a raised night (Alavi 2022).
pub const NIGHT_SIGNAL_BPM: f64 = 4.0;

/// One day of resting-HR anomaly detection. All baseline fields are None on a day without a
/// resting HR (as in the vectors) or with fewer than 14 baseline days.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RhrDay {
    /// Mean of the non-missing resting HR of days d−28..d−1.
    pub baseline_mean: Option<f64>,
    /// SD (n − 1) of the same days.
    pub baseline_sd: Option<f64>,
    /// (RHR_d − mean)/SD; None also when SD is 0, where a z-score means nothing.
    pub z: Option<f64>,
    /// z ≥ 2.
    pub z_flag: bool,
    /// Median of the same baseline days (NightSignal's robust reference).
    pub median: Option<f64>,
    /// Today and yesterday both ≥ their own baseline median + 4 bpm (NightSignal, Alavi et al. 2022).
    pub night_signal: bool,
}

/// Resting-HR anomalies over a dense daily series (None = no resting HR that day). Day d reads days
/// d−29..d only, so a slice from [`ROLLING_LOOKBACK_DAYS`] before a day on gives that day's values.
///
/// rhr_anomaly.json
pub fn rhr_anomalies(daily_rhr: &[Option<f64>]) -> Vec<RhrDay> {
    let mut days: Vec<RhrDay> = Vec::with_capacity(daily_rhr.len());
    let mut elevated_yesterday = false;
    for (d, &rhr) in daily_rhr.iter().enumerate() {
        let baseline: Vec<f64> = daily_rhr[d.saturating_sub(RHR_BASELINE_DAYS)..d].iter().flatten().copied().collect();
        let day = match rhr {
            Some(rhr) if baseline.len() >= RHR_MIN_BASELINE => {
                let baseline_mean = mean(&baseline);
                let baseline_sd = sample_sd(&baseline);
                let z = match (baseline_mean, baseline_sd) {
                    (Some(m), Some(sd)) if sd > 0.0 => Some((rhr - m) / sd),
                    _ => None,
                };
                RhrDay {
                    baseline_mean,
                    baseline_sd,
                    z,
                    z_flag: z.is_some_and(|z| z >= RHR_Z_FLAG),
                    median: median(&baseline),
                    night_signal: false,
                }
            }
            _ => RhrDay {
                baseline_mean: None,
                baseline_sd: None,
                z: None,
                z_flag: false,
                median: None,
                night_signal: false,
            },
        };
        let elevated = match (rhr, day.median) {
            (Some(rhr), Some(median)) => rhr >= median + NIGHT_SIGNAL_BPM,
            _ => false,
        };
        days.push(RhrDay { night_signal: elevated && elevated_yesterday, ..day });
        elevated_yesterday = elevated;
    }
    days
}

/// Median (mean of the two middle values for an even count); None for an empty slice.
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Days in the short HRV rolling mean.
pub const HRV_ROLLING_DAYS: usize = 7;
/// Days in the HRV baseline (including today).
pub const HRV_BASELINE_DAYS: usize = 60;
/// Half-width of the HRV normal range in baseline SDs.
pub const HRV_NORMAL_SDS: f64 = 0.5;

/// One day of the HRV baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HrvDay {
    /// Mean ln RMSSD of days d−6..d.
    pub rolling7: Option<f64>,
    /// Mean ln RMSSD of days d−59..d.
    pub baseline60_mean: Option<f64>,
    /// SD (n − 1) of the same days.
    pub baseline60_sd: Option<f64>,
    /// rolling7 within mean ± 0.5 SD; None when either side is missing.
    pub within_normal: Option<bool>,
}

/// HRV baseline: a week's mean ln RMSSD smooths the large night-to-night noise, and the normal range
/// of ± 0.5 SD of the last 60 days is what HRV-guided training compares it against.
///
/// 7-day rolling mean of ln RMSSD (days d-6..d, non-missing values, None if none) against the mean ±
/// 0.5 SD (SD n-1) of the 60 days d-59..d (non-missing, needs >= 2 values); within_normal = rolling7
/// within [mean - 0.5 SD, mean + 0.5 SD]. Day d reads days d−59..d only, so a slice from
/// [`ROLLING_LOOKBACK_DAYS`] before a day on gives that day's values.
pub fn hrv_baseline(daily_ln_rmssd: &[Option<f64>]) -> Vec<HrvDay> {
    let present =
        |from: usize, to: usize| -> Vec<f64> { daily_ln_rmssd[from..=to].iter().flatten().copied().collect() };
    (0..daily_ln_rmssd.len())
        .map(|d| {
            let rolling7 = mean(&present((d + 1).saturating_sub(HRV_ROLLING_DAYS), d));
            let baseline = present((d + 1).saturating_sub(HRV_BASELINE_DAYS), d);
            let (baseline60_mean, baseline60_sd) = match sample_sd(&baseline) {
                Some(sd) => (mean(&baseline), Some(sd)),
                None => (None, None),
            };
            let within_normal = match (rolling7, baseline60_mean, baseline60_sd) {
                (Some(r), Some(m), Some(sd)) => Some(r >= m - HRV_NORMAL_SDS * sd && r <= m + HRV_NORMAL_SDS * sd),
                _ => None,
            };
            HrvDay { rolling7, baseline60_mean, baseline60_sd, within_normal }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn empty_series() {
        assert!(load_series(&[]).is_empty());
        assert!(rhr_anomalies(&[]).is_empty());
        assert!(hrv_baseline(&[]).is_empty());
    }

    #[test]
    fn pmc_first_days() {
        // GoldenCheetah PMC from CTL = ATL = 0: day 0 gets (1 − e^(−1/k))·load; TSB uses yesterday's.
        let s = load_series(&[100.0, 0.0]);
        let ctl0 = (1.0 - (-1.0_f64 / 42.0).exp()) * 100.0;
        let atl0 = (1.0 - (-1.0_f64 / 7.0).exp()) * 100.0;
        assert!(close(s[0].fitness, ctl0));
        assert!(close(s[0].fatigue, atl0));
        assert_eq!(s[0].form, 0.0);
        assert!(close(s[1].form, ctl0 - atl0));
        assert!(close(s[1].fitness, ctl0 * (-1.0_f64 / 42.0).exp()));
        // Williams 2017 EWMA, λ = 2/(N+1): 0.25·100 and (2/29)·100.
        assert!(close(s[0].ewma7, 25.0));
        assert!(close(s[0].ewma28, 200.0 / 29.0));
        assert_eq!(s[0].acwr_rolling, None);
    }

    #[test]
    fn acwr_needs_a_full_chronic_window() {
        // Constant load: rolling ACWR is exactly 1 from day 27; EWMA ratio is
        // (1 − 0.75^28)/(1 − (27/29)^28) because both EWMAs start from 0.
        let s = load_series(&[10.0; 28]);
        assert_eq!(s[26].acwr_rolling, None);
        assert_eq!(s[26].acwr_ewma, None);
        assert!(close(s[27].acwr_rolling.unwrap(), 1.0));
        let expected = (1.0 - 0.75_f64.powi(28)) / (1.0 - (27.0_f64 / 29.0).powi(28));
        assert!(close(s[27].acwr_ewma.unwrap(), expected));
    }

    #[test]
    fn acwr_is_none_without_chronic_load() {
        let s = load_series(&[0.0; 30]);
        assert_eq!(s[29].acwr_rolling, None);
        assert_eq!(s[29].acwr_ewma, None);
    }

    #[test]
    fn acwr_band_edges() {
        // Williams 2017 / Gabbett 2016: 0.8 and 1.3 are inside the optimal band, 1.5 is still "high".
        assert_eq!(acwr_band(0.79), "low");
        assert_eq!(acwr_band(0.8), "optimal");
        assert_eq!(acwr_band(1.3), "optimal");
        assert_eq!(acwr_band(1.31), "high");
        assert_eq!(acwr_band(1.5), "high");
        assert_eq!(acwr_band(1.51), "very_high");
    }

    #[test]
    fn rhr_sd_zero_gives_no_z_and_night_signal_needs_two_nights() {
        // 14 days at 50 bpm, then 55 twice. Day 14: SD 0 → z None; 55 ≥ median 50 + 4 (Alavi 2022).
        // Day 15: baseline 14×50 + 55, mean 151/3, SS = 14/9 + 196/9 = 210/9, SD = sqrt(5/3),
        // z = (14/3)/sqrt(5/3) ≈ 3.61 → flagged; median 50, second raised night → NightSignal.
        let mut rhr = vec![Some(50.0); 14];
        rhr.extend([Some(55.0), Some(55.0)]);
        let days = rhr_anomalies(&rhr);
        assert_eq!(days[13].median, None);
        assert_eq!(days[14].baseline_sd, Some(0.0));
        assert_eq!(days[14].z, None);
        assert!(!days[14].z_flag);
        assert_eq!(days[14].median, Some(50.0));
        assert!(!days[14].night_signal);
        assert!(close(days[15].baseline_mean.unwrap(), 151.0 / 3.0));
        assert!(close(days[15].z.unwrap(), (14.0 / 3.0) / (5.0_f64 / 3.0).sqrt()));
        assert!(days[15].z_flag);
        assert!(days[15].night_signal);
    }

    #[test]
    fn rhr_missing_day_has_no_values_and_breaks_night_signal() {
        let mut rhr = vec![Some(50.0); 14];
        rhr.extend([Some(60.0), None, Some(60.0)]);
        let days = rhr_anomalies(&rhr);
        assert_eq!(
            days[15],
            RhrDay {
                baseline_mean: None,
                baseline_sd: None,
                z: None,
                z_flag: false,
                median: None,
                night_signal: false
            }
        );
        assert!(!days[16].night_signal);
    }

    #[test]
    fn median_even_and_odd() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn hrv_baseline_needs_two_days() {
        // One value: a rolling mean exists, an SD does not.
        let days = hrv_baseline(&[Some(3.0), None]);
        assert_eq!(
            days[0],
            HrvDay { rolling7: Some(3.0), baseline60_mean: None, baseline60_sd: None, within_normal: None }
        );
        assert_eq!(days[1].rolling7, Some(3.0));
        assert_eq!(days[1].within_normal, None);
        assert_eq!(hrv_baseline(&[None])[0].rolling7, None);
    }

    #[test]
    fn hrv_baseline_hand_computed() {
        // Plews 2013-style HRV guidance: days 0..=6 at ln RMSSD 3.0, days 7..=11 at 4.0.
        // Day 2: rolling7 = 3, baseline {3,3,3}: SD 0 → normal range [3, 3], within.
        // Day 11: rolling7 over days 5..=11 = (2·3 + 5·4)/7 = 26/7; baseline over days 0..=11 has
        // mean 41/12, SS = 7·(5/12)² + 5·(7/12)² = 420/144, SD = sqrt(420/144/11) ≈ 0.5149;
        // upper edge 41/12 + 0.2575 ≈ 3.674 < 26/7 ≈ 3.714, so not within normal.
        let mut ln = vec![Some(3.0); 7];
        ln.extend([Some(4.0); 5]);
        let days = hrv_baseline(&ln);
        assert_eq!(days[2].baseline60_sd, Some(0.0));
        assert_eq!(days[2].within_normal, Some(true));
        let d11 = days[11];
        assert!(close(d11.rolling7.unwrap(), 26.0 / 7.0));
        assert!(close(d11.baseline60_mean.unwrap(), 41.0 / 12.0));
        assert!(close(d11.baseline60_sd.unwrap(), (420.0_f64 / 144.0 / 11.0).sqrt()));
        assert_eq!(d11.within_normal, Some(false));
        // Day 9: rolling7 = (4·3 + 3·4)/7 = 24/7 ≈ 3.429; mean 3.3, SD = sqrt(2.1/9) ≈ 0.4830,
        // range [3.058, 3.542] → within.
        assert!(close(days[9].baseline60_sd.unwrap(), (2.1_f64 / 9.0).sqrt()));
        assert_eq!(days[9].within_normal, Some(true));
    }

    #[test]
    fn hrv_baseline_windows_skip_missing_and_old_days() {
        // 61 days: day 0 is 10.0 and falls out of the 60-day window on day 60; day 59 is missing.
        // Day 60: rolling7 over days 54..=60 = six values of 3.0 → 3.0; baseline days 1..=60 without
        // day 59 = 59 values of 3.0 → mean 3, SD 0.
        let mut ln = vec![Some(3.0); 61];
        ln[0] = Some(10.0);
        ln[59] = None;
        let days = hrv_baseline(&ln);
        assert_eq!(days[60].rolling7, Some(3.0));
        assert!(close(days[60].baseline60_mean.unwrap(), 3.0));
        assert_eq!(days[60].baseline60_sd, Some(0.0));
        assert_eq!(days[60].within_normal, Some(true));
        assert!(days[59].baseline60_sd.unwrap() > 0.0);
    }

    /// Deterministic pseudo-random numbers below `n` (an LCG; no dependency for a test).
    fn lcg(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut state = seed;
        move |n| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % n
        }
    }

    /// Debug output tells every f64 bit pattern apart, so equal text is a bit-for-bit equal series.
    fn bits<T: std::fmt::Debug>(days: &[T]) -> String {
        format!("{days:?}")
    }

    /// 120 days with rest days (load 0) and days without a resting HR or an HRV reading (None).
    fn random_series(seed: u64) -> (Vec<f64>, Vec<Option<f64>>, Vec<Option<f64>>) {
        let mut next = lcg(seed);
        let loads = (0..120).map(|_| if next(4) == 0 { 0.0 } else { next(30_000) as f64 / 100.0 }).collect();
        let rhr = (0..120).map(|_| (next(5) != 0).then(|| 45.0 + next(2_000) as f64 / 100.0)).collect();
        let ln_rmssd = (0..120).map(|_| (next(5) != 0).then(|| 3.0 + next(1_500) as f64 / 1_000.0)).collect();
        (loads, rhr, ln_rmssd)
    }

    #[test]
    fn load_series_is_bit_identical_to_the_one_pass_version() {
        // `load_series` as it was before `LoadState`: one loop over the whole history.
        fn reference(daily_load: &[f64]) -> Vec<LoadDay> {
            let k_fitness = 1.0 - (-1.0 / CTL_DAYS).exp();
            let k_fatigue = 1.0 - (-1.0 / ATL_DAYS).exp();
            let l7 = 2.0 / (ACUTE_DAYS as f64 + 1.0);
            let l28 = 2.0 / (CHRONIC_DAYS as f64 + 1.0);
            let (mut fitness, mut fatigue, mut ewma7, mut ewma28) = (0.0, 0.0, 0.0, 0.0);
            daily_load
                .iter()
                .enumerate()
                .map(|(d, &load)| {
                    let form = fitness - fatigue;
                    fitness += k_fitness * (load - fitness);
                    fatigue += k_fatigue * (load - fatigue);
                    ewma7 = l7 * load + (1.0 - l7) * ewma7;
                    ewma28 = l28 * load + (1.0 - l28) * ewma28;
                    let full = d + 1 >= CHRONIC_DAYS;
                    let window_mean = |days: usize| daily_load[d + 1 - days..=d].iter().sum::<f64>() / days as f64;
                    let acwr_rolling =
                        if full { ratio(window_mean(ACUTE_DAYS), window_mean(CHRONIC_DAYS)) } else { None };
                    let acwr_ewma = if full { ratio(ewma7, ewma28) } else { None };
                    LoadDay { load, fitness, fatigue, form, acwr_rolling, acwr_ewma, ewma7, ewma28 }
                })
                .collect()
        }
        for seed in 1..=5 {
            let (loads, _, _) = random_series(seed);
            assert_eq!(bits(&load_series(&loads)), bits(&reference(&loads)), "seed {seed}");
        }
    }

    #[test]
    fn resumed_load_series_equals_the_full_one_at_every_split() {
        for seed in 1..=3 {
            let (loads, _, _) = random_series(seed);
            let full = load_series(&loads);
            for d in 0..=loads.len() {
                let (mut state, mut minimal) = match d {
                    0 => (LoadState::new(), LoadState::new()),
                    _ => (
                        LoadState::after(&full[d - 1], d - 1, &loads[..d]),
                        // Only the loads the rolling windows need.
                        LoadState::after(&full[d - 1], d - 1, &loads[d.saturating_sub(CHRONIC_DAYS - 1)..d]),
                    ),
                };
                assert_eq!(state, minimal, "seed {seed} day {d}");
                assert_eq!(state.days(), d);
                let expected = bits(&full[d..]);
                assert_eq!(bits(&state.advance(&loads[d..])), expected, "seed {seed} day {d}");
                // Carried on in two steps (yesterday, then today), the state gives the same.
                let (first, rest) = loads[d..].split_at((loads.len() - d) / 2);
                let mut two_steps = minimal.advance(first);
                two_steps.extend(minimal.advance(rest));
                assert_eq!(bits(&two_steps), expected, "seed {seed} day {d}");
                assert_eq!(minimal, state, "seed {seed} day {d}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "needs the last 27 loads")]
    fn resuming_without_the_window_panics() {
        let loads = [10.0; 40];
        let full = load_series(&loads);
        let _ = LoadState::after(&full[35], 35, &loads[10..35]);
    }

    #[test]
    fn rhr_and_hrv_over_the_lookback_equal_the_full_history_at_every_split() {
        for seed in 1..=3 {
            let (_, rhr, ln_rmssd) = random_series(seed);
            let (full_rhr, full_hrv) = (rhr_anomalies(&rhr), hrv_baseline(&ln_rmssd));
            for d in 0..=rhr.len() {
                let from = d.saturating_sub(ROLLING_LOOKBACK_DAYS);
                let resumed_rhr = rhr_anomalies(&rhr[from..]);
                assert_eq!(bits(&resumed_rhr[d - from..]), bits(&full_rhr[d..]), "seed {seed} day {d}");
                let resumed_hrv = hrv_baseline(&ln_rmssd[from..]);
                assert_eq!(bits(&resumed_hrv[d - from..]), bits(&full_hrv[d..]), "seed {seed} day {d}");
            }
        }
    }

    #[test]
    fn a_day_less_of_lookback_is_not_enough() {
        // Each function's own lookback is needed in full: with one day less (29 − 1 for resting HR,
        // 59 − 1 for HRV) some output changes.
        let (_, rhr, ln_rmssd) = random_series(1);
        let (full_rhr, full_hrv) = (rhr_anomalies(&rhr), hrv_baseline(&ln_rmssd));
        let rhr_short = (RHR_BASELINE_DAYS + 1..rhr.len()).any(|d| {
            let from = d - RHR_BASELINE_DAYS;
            bits(&rhr_anomalies(&rhr[from..])[d - from..]) != bits(&full_rhr[d..])
        });
        let hrv_short = (HRV_BASELINE_DAYS - 1..ln_rmssd.len()).any(|d| {
            let from = d + 2 - HRV_BASELINE_DAYS;
            bits(&hrv_baseline(&ln_rmssd[from..])[d - from..]) != bits(&full_hrv[d..])
        });
        assert!(rhr_short && hrv_short);
        assert_eq!(ROLLING_LOOKBACK_DAYS, HRV_BASELINE_DAYS - 1);
    }
}
