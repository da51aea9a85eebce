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

/// HRV over the valid beats of raw RR runs, with the counts callers need to report coverage (the
/// per-beat verdicts are not kept: a night has ~25k of them and only [`beat_verdicts`] needs them).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FilteredHrv {
    /// Share of input beats that are not valid, 0..=1.
    pub artifact_share: f64,
    /// Whether the window is usable: at most [`MAX_ARTIFACT_SHARE`] artifacts.
    pub window_valid: bool,
    /// Number of valid beats (the NN intervals behind mean NN and SDNN). Defaults to 0 (as does
    /// `valid_ms`) so that summaries stored before these fields existed still deserialize.
    #[serde(default)]
    pub valid_beats: u32,
    /// Sum of the valid intervals, ms: the time the valid beats cover, for RR coverage.
    #[serde(default)]
    pub valid_ms: f64,
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

/// HRV of one raw run of consecutive beats after artifact filtering: [`filtered_runs`] of one run.
///
/// hrv_filtered.json; None when fewer than 2 valid beats or no valid successive pair.
pub fn filtered(rr_ms: &[f64]) -> Option<FilteredHrv> {
    filtered_runs(&[rr_ms])
}

/// HRV of several runs of consecutive beats (the RR blocks of a night) after artifact filtering.
///
/// Each beat is judged within its own run ([`beat_verdicts`]): a neighbourhood never reaches across
/// the gap between two runs. Mean NN and SDNN use the valid beats of all runs; RMSSD and pNN50 only
/// successive pairs of two valid beats of the same run, so that neither a dropped beat nor the gap
/// between runs fakes a large difference. The artifact share and the 4% rule count all beats.
///
/// None when fewer than 2 valid beats or no valid successive pair.
pub fn filtered_runs(runs: &[&[f64]]) -> Option<FilteredHrv> {
    let total: usize = runs.iter().map(|run| run.len()).sum();
    let mut verdicts = Vec::with_capacity(total);
    for run in runs {
        push_beat_verdicts(run, &mut verdicts);
    }
    // Each run with its own verdicts.
    let judged_runs = || {
        let mut rest = verdicts.as_slice();
        runs.iter().map(move |run| {
            let (own, later) = rest.split_at(run.len());
            rest = later;
            (*run, own)
        })
    };
    let valid_beats =
        || judged_runs().flat_map(|(run, valid)| run.iter().zip(valid).filter(|(_, v)| **v).map(|(&rr, _)| rr));

    // The same sums and divisions as `mean` and `sample_sd`, without collecting the beats.
    let (count, valid_ms) = valid_beats().fold((0usize, 0.0), |(count, sum), rr| (count + 1, sum + rr));
    if count < 2 {
        return None;
    }
    let mean_nn = valid_ms / count as f64;
    let squares: f64 = valid_beats().map(|rr| (rr - mean_nn) * (rr - mean_nn)).sum();
    let sdnn = (squares / (count - 1) as f64).sqrt();

    let (mut pairs, mut over_50, mut squared_diffs) = (0usize, 0usize, 0.0);
    for (run, valid) in judged_runs() {
        for (w, _) in run.windows(2).zip(valid.windows(2)).filter(|(_, v)| v[0] && v[1]) {
            let diff = w[1] - w[0];
            squared_diffs += diff * diff;
            pairs += 1;
            over_50 += usize::from(diff.abs() > 50.0);
        }
    }
    if pairs == 0 {
        return None;
    }
    let rmssd = (squared_diffs / pairs as f64).sqrt();

    let invalid = total - count;
    Some(FilteredHrv {
        artifact_share: invalid as f64 / total as f64,
        // Compared in integers so that a share of exactly 4% is not lost to rounding.
        window_valid: invalid * 25 <= total,
        valid_beats: u32::try_from(count).unwrap_or(u32::MAX),
        valid_ms,
        mean_nn,
        sdnn,
        rmssd,
        pnn50: 100.0 * over_50 as f64 / pairs as f64,
        ln_rmssd: rmssd.ln(),
    })
}

/// Per-beat verdicts of one run of consecutive beats.
///
/// A beat is valid when it lies in [`RR_RANGE_MS`] and differs by at most 20% from the mean of the
/// in-range beats among the 20 before and 20 after it (itself excluded; fewer at the edges). A
/// beat with no in-range neighbour has nothing to be compared against and is kept.
pub fn beat_verdicts(rr_ms: &[f64]) -> Vec<bool> {
    let mut verdicts = Vec::with_capacity(rr_ms.len());
    push_beat_verdicts(rr_ms, &mut verdicts);
    verdicts
}

/// Every f64 in [`RR_RANGE_MS`] is a whole multiple of 2^-44 (from 256 up, f64 spacing is 2^-44 or
/// a power-of-two multiple of it), so scaled by 2^44 it is an exact integer below 2^55, and 41 of
/// them add up exactly in an i64.
const FIXED_POINT_SCALE: f64 = (1u64 << 44) as f64;

/// An in-range RR in fixed point, exactly; None outside [`RR_RANGE_MS`].
fn fixed_point(rr_ms: f64) -> Option<i64> {
    RR_RANGE_MS.contains(&rr_ms).then_some((rr_ms * FIXED_POINT_SCALE) as i64)
}

/// Appends the verdicts of [`beat_verdicts`] in O(n): the neighbourhood sum slides along the run.
///
/// The sum is kept exactly in fixed point, so it does not depend on the order in which beats enter
/// and leave the window and rounds once, when turned back into ms. For integer RR that is the exact
/// sum, the very value a beat-by-beat fold over the ±20 neighbours gives.
fn push_beat_verdicts(rr_ms: &[f64], verdicts: &mut Vec<bool>) {
    // The in-range beats of rr_ms[lo..hi]: beat i's neighbourhood and beat i itself.
    let (mut lo, mut hi) = (0, 0);
    let (mut sum, mut count) = (0i64, 0usize);
    for (i, &rr) in rr_ms.iter().enumerate() {
        let (new_lo, new_hi) = (i.saturating_sub(NEIGHBOURS), (i + NEIGHBOURS + 1).min(rr_ms.len()));
        for entering in rr_ms[hi..new_hi].iter().filter_map(|&rr| fixed_point(rr)) {
            sum += entering;
            count += 1;
        }
        for leaving in rr_ms[lo..new_lo].iter().filter_map(|&rr| fixed_point(rr)) {
            sum -= leaving;
            count -= 1;
        }
        (lo, hi) = (new_lo, new_hi);
        let valid = match fixed_point(rr) {
            None => false,
            // No in-range neighbour: nothing to compare against, so the beat is kept.
            Some(_) if count == 1 => true,
            Some(own) => {
                let reference = (sum - own) as f64 / FIXED_POINT_SCALE / (count - 1) as f64;
                (rr - reference).abs() <= MAX_DEVIATION * reference
            }
        };
        verdicts.push(valid);
    }
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
        assert_eq!(beat_verdicts(&rr), vec![true, false, true, true, true, false, true]);
        assert_eq!(f.valid_beats, 5);
        assert_eq!(f.valid_ms, 4000.0);
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
        assert_eq!(beat_verdicts(&[800.0, 960.0, 800.0]), vec![true, true, true]);
        assert_eq!(filtered(&[800.0, 960.0, 800.0]).unwrap().valid_beats, 3);
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

    #[test]
    fn a_pair_across_the_gap_between_runs_is_not_counted() {
        // Two RR blocks of one night. Within them the diffs are ±10 (3 pairs) and ±20 (2 pairs):
        // RMSSD = sqrt((3·100 + 2·400)/5) = sqrt(220), pNN50 = 0. Joined into one series, the
        // 810 → 1000 "difference" across the gap would add a pair of 190 ms: pNN50 = 100/6.
        let (a, b) = ([800.0, 810.0, 800.0, 810.0], [1000.0, 1020.0, 1000.0]);
        let runs = filtered_runs(&[&a, &b]).unwrap();
        assert_eq!(runs.valid_beats, 7);
        assert_eq!(runs.valid_ms, 6240.0);
        assert!(close(runs.mean_nn, 6240.0 / 7.0));
        assert!(close(runs.rmssd, 220.0_f64.sqrt()));
        assert_eq!(runs.pnn50, 0.0);

        let joined = filtered(&[a.as_slice(), &b].concat()).unwrap();
        assert_eq!(joined.valid_beats, 7);
        assert!(close(joined.pnn50, 100.0 / 6.0));
        assert!(close(joined.rmssd, ((1100.0 + 190.0 * 190.0) / 6.0_f64).sqrt()));
        // Mean NN and SDNN are over the same valid beats either way.
        assert_eq!((runs.mean_nn, runs.sdnn), (joined.mean_nn, joined.sdnn));
    }

    #[test]
    fn a_neighbourhood_does_not_reach_into_another_run() {
        // A block at 600 ms, then one at 1000 ms. Joined, the first 1000 would be compared against
        // the mean of 20 beats of 600 and 20 of 1000 (800), 25% off, and dropped; in its own run
        // every beat equals its neighbours.
        let (a, b) = ([600.0; 30], [1000.0; 30]);
        let runs = filtered_runs(&[&a, &b]).unwrap();
        assert_eq!(runs.valid_beats, 60);
        assert_eq!(runs.artifact_share, 0.0);
        assert!(!beat_verdicts(&[a.as_slice(), &b].concat())[30]);
    }

    #[test]
    fn runs_count_all_beats_for_the_artifact_share() {
        // One artifact in each of two runs of 25 beats: 2 of 50 is exactly 4%, a usable window, and
        // an empty run changes nothing.
        let mut a = vec![800.0; 25];
        a[3] = 100.0;
        let mut b = vec![900.0; 25];
        b[20] = 3000.0;
        let f = filtered_runs(&[&a, &[], &b]).unwrap();
        assert_eq!(f, filtered_runs(&[&a, &b]).unwrap());
        assert_eq!(f.valid_beats, 48);
        assert!(close(f.artifact_share, 0.04));
        assert!(f.window_valid);
        assert_eq!(filtered_runs(&[]), None);
        assert_eq!(filtered_runs(&[&[800.0], &[800.0]]), None);
    }

    /// The O(n·41) filter as it was before the sliding window: every beat sums its neighbours afresh.
    fn reference_verdicts(rr_ms: &[f64]) -> Vec<bool> {
        let in_range: Vec<bool> = rr_ms.iter().map(|rr| RR_RANGE_MS.contains(rr)).collect();
        (0..rr_ms.len())
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
            .collect()
    }

    /// The statistics as they were computed before: from collected beats and differences.
    fn reference_filtered(rr_ms: &[f64]) -> Option<FilteredHrv> {
        let valid = reference_verdicts(rr_ms);
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
            window_valid: invalid * 25 <= rr_ms.len(),
            valid_beats: beats.len() as u32,
            valid_ms: beats.iter().sum(),
            mean_nn: mean(&beats)?,
            sdnn: sample_sd(&beats)?,
            rmssd,
            pnn50,
            ln_rmssd: rmssd.ln(),
        })
    }

    /// Deterministic pseudo-random numbers below `n` (an LCG; no dependency for a test).
    fn lcg(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut state = seed;
        move |n| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % n
        }
    }

    /// A random RR series around `base` ms with ectopic beats, missed beats, out-of-range values
    /// and exact ±20% deviations mixed in; `fraction` adds a fractional part to every value.
    fn random_series(next: &mut impl FnMut(u64) -> u64, len: usize, fraction: bool) -> Vec<f64> {
        let base = 400 + next(1200);
        (0..len)
            .map(|_| {
                let normal = base + next(80);
                let rr = match next(40) {
                    0 => normal * 2,
                    1 => normal * 6 / 10,
                    2 => next(270),
                    3 => 2000 + next(3),
                    4 => base * 12 / 10,
                    5 => base * 8 / 10,
                    _ => normal,
                } as f64;
                if fraction {
                    rr + next(1000) as f64 / 1000.0
                } else {
                    rr
                }
            })
            .collect()
    }

    fn bits(f: Option<FilteredHrv>) -> Option<[u64; 8]> {
        f.map(|f| {
            [
                f.artifact_share.to_bits(),
                u64::from(f.window_valid) << 32 | u64::from(f.valid_beats),
                f.valid_ms.to_bits(),
                f.mean_nn.to_bits(),
                f.sdnn.to_bits(),
                f.rmssd.to_bits(),
                f.pnn50.to_bits(),
                f.ln_rmssd.to_bits(),
            ]
        })
    }

    #[test]
    fn sliding_window_is_bit_identical_to_the_direct_sum_for_integer_rr() {
        let mut next = lcg(11);
        for case in 0..400 {
            let len = match case {
                0..=49 => case,
                _ => next(3000) as usize,
            };
            let rr = random_series(&mut next, len, false);
            assert_eq!(beat_verdicts(&rr), reference_verdicts(&rr), "case {case}");
            assert_eq!(bits(filtered(&rr)), bits(reference_filtered(&rr)), "case {case}");
            // A single run is the same as `filtered`.
            assert_eq!(bits(filtered_runs(&[&rr])), bits(reference_filtered(&rr)), "case {case}");
        }
    }

    #[test]
    fn sliding_window_matches_the_direct_sum_for_fractional_rr() {
        // The neighbourhood sums may differ in the last bit (the fixed-point sum rounds once, a fold
        // at every beat), which could only flip a beat lying exactly on the 20% edge; the statistics
        // are computed alike, so equal verdicts give equal values.
        let mut next = lcg(12);
        for case in 0..100 {
            let len = next(3000) as usize;
            let rr = random_series(&mut next, len, true);
            assert_eq!(beat_verdicts(&rr), reference_verdicts(&rr), "case {case}");
            assert_eq!(filtered(&rr), reference_filtered(&rr), "case {case}");
        }
    }

    #[test]
    fn runs_are_judged_as_if_each_were_alone() {
        // Splitting a night into runs gives each run's verdicts and pools the statistics.
        let mut next = lcg(13);
        for case in 0..50 {
            let runs: Vec<Vec<f64>> = (0..1 + next(6))
                .map(|_| {
                    let len = next(400) as usize;
                    random_series(&mut next, len, false)
                })
                .collect();
            let slices: Vec<&[f64]> = runs.iter().map(Vec::as_slice).collect();
            let verdicts: Vec<bool> = runs.iter().flat_map(|run| reference_verdicts(run)).collect();
            let beats: Vec<f64> =
                slices.concat().into_iter().zip(&verdicts).filter(|(_, v)| **v).map(|(rr, _)| rr).collect();
            let diffs: Vec<f64> = runs
                .iter()
                .flat_map(|run| {
                    let valid = reference_verdicts(run);
                    run.windows(2)
                        .zip(valid.windows(2))
                        .filter(|(_, v)| v[0] && v[1])
                        .map(|(w, _)| w[1] - w[0])
                        .collect::<Vec<_>>()
                })
                .collect();
            let Some(f) = filtered_runs(&slices) else {
                assert!(beats.len() < 2 || diffs.is_empty(), "case {case}");
                continue;
            };
            let (rmssd, pnn50) = successive(&diffs).unwrap();
            assert_eq!(f.valid_beats as usize, beats.len(), "case {case}");
            assert_eq!(f.mean_nn, mean(&beats).unwrap(), "case {case}");
            assert_eq!(f.sdnn, sample_sd(&beats).unwrap(), "case {case}");
            assert_eq!((f.rmssd, f.pnn50), (rmssd, pnn50), "case {case}");
        }
    }
}
