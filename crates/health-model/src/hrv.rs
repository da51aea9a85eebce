//! Time-domain heart-rate variability (Task Force ESC/NASPE 1996), on raw and on artifact-filtered
//! RR series (GoldenCheetah FilterHRV, Aura hrv-analysis).

use serde::{Deserialize, Serialize};

/// The standard short-term time-domain measures of one RR series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimeDomain {
    /// Mean NN interval, ms.
    pub mean_nn: f64,
    /// Standard deviation of NN intervals with n − 1, ms.
    pub sdnn: f64,
    /// Root mean square of successive differences, ms.
    pub rmssd: f64,
    /// Percentage of successive differences strictly greater than 50 ms.
    pub pnn50: f64,
    /// Natural log of RMSSD, which makes its skewed distribution near normal for baselines
    /// (−∞ when RMSSD is 0, as in hrv-analysis).
    pub ln_rmssd: f64,
}

/// Time-domain HRV of a clean RR series (ms), with the definitions of hrv-analysis
/// `get_time_domain_features`: pNN50 and RMSSD over the N − 1 successive differences.
///
/// hrv_time_domain.json; None with fewer than 2 intervals.
pub fn time_domain(rr_ms: &[f64]) -> Option<TimeDomain> {
    if rr_ms.len() < 2 {
        return None;
    }
    let diffs: Vec<f64> = rr_ms.windows(2).map(|w| w[1] - w[0]).collect();
    let mean_nn = mean(rr_ms)?;
    let sdnn = sample_sd(rr_ms)?;
    let (rmssd, pnn50) = successive(&diffs)?;
    Some(TimeDomain { mean_nn, sdnn, rmssd, pnn50, ln_rmssd: rmssd.ln() })
}

/// HRV over the valid beats of a raw RR series, with the per-beat verdicts so that callers can
/// report coverage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilteredHrv {
    /// One verdict per input beat.
    pub valid: Vec<bool>,
    /// Share of input beats that are not valid, 0..=1.
    pub artifact_share: f64,
    /// Whether the window is usable: at most [`MAX_ARTIFACT_SHARE`] artifacts.
    pub window_valid: bool,
    pub mean_nn: f64,
    pub sdnn: f64,
    pub rmssd: f64,
    pub pnn50: f64,
    pub ln_rmssd: f64,
}

/// Physiologically possible RR range in ms (≈ 222 down to 30 bpm); anything outside is a
/// detection error, not a beat.
pub const RR_RANGE_MS: std::ops::RangeInclusive<f64> = 270.0..=2000.0;
/// Beats on each side of a beat that form its local reference (GoldenCheetah FilterHRV).
pub const NEIGHBOURS: usize = 20;
/// Largest relative deviation from the local reference that still counts as a normal beat.
pub const MAX_DEVIATION: f64 = 0.2;
/// Largest artifact share of a usable window (4%, hrv-analysis / Task Force practice).
pub const MAX_ARTIFACT_SHARE: f64 = 0.04;

/// HRV of a raw RR series after artifact filtering.
///
/// A beat is valid when it lies in [`RR_RANGE_MS`] and differs by at most 20% from the mean of the
/// in-range beats among the 20 before and 20 after it (itself excluded; fewer at the edges). A
/// beat with no in-range neighbour has nothing to be compared against and is kept. Mean NN and SDNN
/// use the valid beats; RMSSD and pNN50 only successive pairs whose two beats are both valid, so that
/// a dropped beat never fakes a large difference.
///
/// hrv_filtered.json; None when fewer than 2 valid beats or no valid successive pair.
pub fn filtered(rr_ms: &[f64]) -> Option<FilteredHrv> {
    let in_range: Vec<bool> = rr_ms.iter().map(|rr| RR_RANGE_MS.contains(rr)).collect();
    let valid: Vec<bool> = (0..rr_ms.len())
        .map(|i| {
            if !in_range[i] {
                return false;
            }
            let lo = i.saturating_sub(NEIGHBOURS);
            let hi = (i + NEIGHBOURS + 1).min(rr_ms.len());
            let (sum, count) = (lo..hi)
                .filter(|&j| j != i && in_range[j])
                .fold((0.0, 0usize), |(sum, count), j| (sum + rr_ms[j], count + 1));
            if count == 0 {
                return true;
            }
            let reference = sum / count as f64;
            (rr_ms[i] - reference).abs() <= MAX_DEVIATION * reference
        })
        .collect();

    let beats: Vec<f64> = rr_ms.iter().zip(&valid).filter(|(_, &v)| v).map(|(&rr, _)| rr).collect();
    if beats.len() < 2 {
        return None;
    }
    let diffs: Vec<f64> =
        rr_ms.windows(2).zip(valid.windows(2)).filter(|(_, v)| v[0] && v[1]).map(|(w, _)| w[1] - w[0]).collect();
    let (rmssd, pnn50) = successive(&diffs)?;

    let invalid = rr_ms.len() - beats.len();
    Some(FilteredHrv {
        artifact_share: invalid as f64 / rr_ms.len() as f64,
        // Compared in integers so that a share of exactly 4% is not lost to rounding.
        window_valid: invalid * 25 <= rr_ms.len(),
        mean_nn: mean(&beats)?,
        sdnn: sample_sd(&beats)?,
        rmssd,
        pnn50,
        ln_rmssd: rmssd.ln(),
        valid,
    })
}

/// RMSSD and pNN50 of a list of successive differences; None when there is none.
fn successive(diffs: &[f64]) -> Option<(f64, f64)> {
    if diffs.is_empty() {
        return None;
    }
    let n = diffs.len() as f64;
    let rmssd = (diffs.iter().map(|d| d * d).sum::<f64>() / n).sqrt();
    let over_50 = diffs.iter().filter(|d| d.abs() > 50.0).count();
    Some((rmssd, 100.0 * over_50 as f64 / n))
}

/// Arithmetic mean; None for an empty slice.
pub(crate) fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        None
    } else {
        Some(values.iter().sum::<f64>() / values.len() as f64)
    }
}

/// Sample standard deviation (n − 1), two-pass for accuracy; None with fewer than 2 values.
pub(crate) fn sample_sd(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let m = mean(values)?;
    let ss: f64 = values.iter().map(|v| (v - m) * (v - m)).sum();
    Some((ss / (values.len() - 1) as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn time_domain_needs_two_intervals() {
        assert_eq!(time_domain(&[]), None);
        assert_eq!(time_domain(&[800.0]), None);
    }

    #[test]
    fn time_domain_hand_computed() {
        // Task Force 1996: RR 800, 860, 840. Mean 833.33…; deviations −33.3, 26.7, 6.7 → SS = 1866.67,
        // SDNN = sqrt(1866.67/2) = 30.5505; diffs 60, −20 → RMSSD = sqrt((3600+400)/2) = sqrt(2000);
        // one of two diffs > 50 ms → pNN50 = 50%.
        let td = time_domain(&[800.0, 860.0, 840.0]).unwrap();
        assert!(close(td.mean_nn, 2500.0 / 3.0));
        assert!(close(td.sdnn, (5600.0_f64 / 3.0 / 2.0).sqrt()));
        assert!(close(td.rmssd, 2000.0_f64.sqrt()));
        assert!(close(td.pnn50, 50.0));
        assert!(close(td.ln_rmssd, 2000.0_f64.sqrt().ln()));
    }

    #[test]
    fn pnn50_is_strictly_greater_than_50() {
        // hrv-analysis counts |diff| > 50, so a difference of exactly 50 ms does not count.
        let td = time_domain(&[800.0, 850.0]).unwrap();
        assert_eq!(td.pnn50, 0.0);
    }

    #[test]
    fn filtered_empty_and_single() {
        assert_eq!(filtered(&[]), None);
        assert_eq!(filtered(&[800.0]), None);
    }

    #[test]
    fn filtered_drops_out_of_range_and_ectopic_beats() {
        // FilterHRV: 250 is below 270 ms; 1100 deviates 37.5% from the mean 800 of its in-range
        // neighbours. The pairs touching them are skipped: diffs 10 (800→810), −20 (810→790), so
        // RMSSD = sqrt((100+400)/2) = sqrt(250).
        let rr = [800.0, 250.0, 800.0, 810.0, 790.0, 1100.0, 800.0];
        let f = filtered(&rr).unwrap();
        assert_eq!(f.valid, vec![true, false, true, true, true, false, true]);
        assert!(close(f.artifact_share, 2.0 / 7.0));
        assert!(!f.window_valid);
        assert!(close(f.mean_nn, 800.0));
        assert!(close(f.rmssd, 250.0_f64.sqrt()));
        assert_eq!(f.pnn50, 0.0);
    }

    #[test]
    fn filtered_deviation_of_exactly_20_percent_is_valid() {
        // "at most 20%": 960 vs neighbours' mean 800 is exactly 20%. The 800s see means (800+960)/2
        // = 880 and 800, both within 20%.
        let f = filtered(&[800.0, 960.0, 800.0]).unwrap();
        assert_eq!(f.valid, vec![true, true, true]);
    }

    #[test]
    fn window_valid_at_exactly_four_percent() {
        // 1 artifact in 25 beats is exactly 4%, which is still a usable window.
        let mut rr = vec![800.0; 25];
        rr[12] = 100.0;
        let f = filtered(&rr).unwrap();
        assert!(close(f.artifact_share, 0.04));
        assert!(f.window_valid);
    }

    #[test]
    fn filtered_without_valid_pair_is_none() {
        // Valid beats 0 and 2 are never adjacent, so RMSSD has no pair.
        assert_eq!(filtered(&[800.0, 100.0, 800.0]), None);
    }
}
