//! Training load from heart rate: Karvonen intensity, HR zones, Banister and Edwards TRIMP, and the
//! HRmax they all depend on.

use std::collections::VecDeque;

use crate::energy::tanaka_hr_max;
use crate::Sex;

/// Lower edges of zones 1..=5, as a fraction of heart-rate reserve (Karvonen) or of HRmax (Edwards).
/// Each zone includes its lower edge; zone 5 is open-ended.
const ZONE_EDGES: [f64; 5] = [0.5, 0.6, 0.7, 0.8, 0.9];

/// Karvonen intensity x = (HR − HRrest)/(HRmax − HRrest), the fraction of heart-rate reserve
/// (Karvonen 1957). Not clamped, so callers can tell below-rest from maximal. When the reserve is not
/// positive (a broken profile) no intensity can be measured and x is 0, not a NaN that would poison
/// every sum downstream.
pub fn karvonen_x(hr: f64, hr_rest: f64, hr_max: f64) -> f64 {
    let reserve = hr_max - hr_rest;
    if reserve > 0.0 {
        (hr - hr_rest) / reserve
    } else {
        0.0
    }
}

/// Zone 1..=5 of an intensity fraction, 0 below the first edge.
fn zone_of_fraction(fraction: f64) -> u8 {
    // At most 5 edges, so the count always fits in a u8.
    ZONE_EDGES.iter().filter(|&&edge| fraction >= edge).count() as u8
}

/// Banister TRIMP (Banister 1991; Morton, Fitz-Clarke, Banister 1990): Σ minutes · x · a · e^(b·x)
/// with x clamped to [0, 1], integrated per sample because the exponential weighting makes the
/// session mean underestimate intervals. Male a = 0.64, b = 1.92; female a = 0.86, b = 1.67.
///
/// trimp_zones.json. samples = (hr_bpm, duration_s).
pub fn banister_trimp(samples: &[(f64, f64)], hr_rest: f64, hr_max: f64, sex: Sex) -> f64 {
    let (a, b) = match sex {
        Sex::Male => (0.64, 1.92),
        Sex::Female => (0.86, 1.67),
    };
    let weighting = PerBpm::new(samples.len(), |hr| {
        let x = karvonen_x(hr, hr_rest, hr_max).clamp(0.0, 1.0);
        (x, (b * x).exp())
    });
    samples
        .iter()
        .map(|&(hr, duration_s)| {
            let (x, exp_bx) = weighting.get(hr);
            duration_s / 60.0 * x * a * exp_bx
        })
        .sum()
}

/// Edwards TRIMP (Edwards 1993): minutes in each %HRmax zone [0.5, 0.6) … [0.9, ∞) weighted 1..=5;
/// nothing below 50% HRmax.
pub fn edwards_trimp(samples: &[(f64, f64)], hr_max: f64) -> f64 {
    let weight = PerBpm::new(samples.len(), |hr| {
        let fraction = if hr_max > 0.0 { hr / hr_max } else { 0.0 };
        f64::from(zone_of_fraction(fraction))
    });
    samples.iter().map(|&(hr, duration_s)| duration_s / 60.0 * weight.get(hr)).sum()
}

/// Minutes in Karvonen zones 1..=5 (index 0..=4): zone k for x in [0.4 + 0.1k, 0.5 + 0.1k), zone 5
/// for x ≥ 0.9; time below x = 0.5 counts nowhere.
pub fn zone_minutes(samples: &[(f64, f64)], hr_rest: f64, hr_max: f64) -> [f64; 5] {
    let zone_of = PerBpm::new(samples.len(), |hr| zone(hr, hr_rest, hr_max));
    let mut minutes = [0.0; 5];
    for &(hr, duration_s) in samples {
        if let Some(slot) = usize::from(zone_of.get(hr)).checked_sub(1).and_then(|i| minutes.get_mut(i)) {
            *slot += duration_s / 60.0;
        }
    }
    minutes
}

/// Zone 1..=5 of one HR by Karvonen x (0 below x=0.5), the same boundaries as zone_minutes.
pub fn zone(hr: f64, hr_rest: f64, hr_max: f64) -> u8 {
    zone_of_fraction(karvonen_x(hr, hr_rest, hr_max))
}

/// Whole-bpm readings a [`PerBpm`] table covers; trackers report HR as an integer below this.
const TABLE_BPM: usize = 256;

/// A function of HR, tabulated for the whole-bpm readings trackers report so that a day of samples
/// costs one evaluation per bpm value (an `exp` for Banister) instead of one per sample. Any other HR
/// (fractional, out of the table) is computed directly. The table holds exactly what the function
/// returns, so a result never depends on whether it came from the table.
struct PerBpm<T, F> {
    table: Vec<T>,
    compute: F,
}

impl<T: Copy, F: Fn(f64) -> T> PerBpm<T, F> {
    /// Tabulates `compute` only when `lookups` outnumber the table's entries; fewer are cheaper
    /// computed.
    fn new(lookups: usize, compute: F) -> Self {
        let table =
            if lookups > TABLE_BPM { (0..TABLE_BPM).map(|bpm| compute(bpm as f64)).collect() } else { Vec::new() };
        PerBpm { table, compute }
    }

    fn get(&self, hr: f64) -> T {
        // Looked up only when `hr` is bit for bit a table index (so not −0.0, not NaN).
        let bpm = hr as usize;
        match self.table.get(bpm) {
            Some(&value) if (bpm as f64).to_bits() == hr.to_bits() => value,
            _ => (self.compute)(hr),
        }
    }
}

/// The highest HR sustained for at least `window_s` seconds, so that one spurious spike cannot set
/// HRmax: the max over windows of the minimum HR of samples spanning >= window_s (samples (t_ms, bpm)
/// sorted by time; a window is a run of samples whose first-to-last time span is >= window_s*1000).
/// None if no such window.
///
/// Lengthening a run can only lower its minimum, so for each start only the shortest qualifying run
/// matters; a monotonic deque yields every such minimum in O(n).
pub fn highest_sustained_hr(samples: &[(i64, f64)], window_s: f64) -> Option<f64> {
    let span_ms = window_s * 1000.0;
    let spans = |from: usize, to: usize| samples[to].0.saturating_sub(samples[from].0) as f64 >= span_ms;
    // Indices of the current run whose HR increases from front to back: the front is its minimum.
    let mut minima: VecDeque<usize> = VecDeque::new();
    let mut best: Option<f64> = None;
    let mut end = 0;
    // Every index below `pushed` has already been offered to `minima`.
    let mut pushed = 0;
    for start in 0..samples.len() {
        // The shortest qualifying run from `start` ends no earlier than the one from `start - 1`.
        end = end.max(start);
        while end < samples.len() && !spans(start, end) {
            end += 1;
        }
        if end == samples.len() {
            break;
        }
        for i in pushed..=end {
            while minima.back().is_some_and(|&j| samples[j].1 >= samples[i].1) {
                minima.pop_back();
            }
            minima.push_back(i);
        }
        pushed = end + 1;
        while minima.front().is_some_and(|&i| i < start) {
            minima.pop_front();
        }
        if let Some(&i) = minima.front() {
            let run_min = samples[i].1;
            best = Some(best.map_or(run_min, |b| b.max(run_min)));
        }
    }
    best
}

/// HRmax: the measured value if given, else max(Tanaka 208 - 0.7*age, highest sustained HR).
///
/// The age formula alone underestimates fit users; data that show a higher sustained HR prove it.
pub fn hr_max_used(measured: Option<f64>, age: f64, sustained: Option<f64>) -> f64 {
    measured.unwrap_or_else(|| {
        let predicted = tanaka_hr_max(age);
        sustained.map_or(predicted, |s| predicted.max(s))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn karvonen_x_hand_computed() {
        // Karvonen 1957: (150 − 50)/(190 − 50) = 100/140.
        assert!(close(karvonen_x(150.0, 50.0, 190.0), 100.0 / 140.0));
        assert_eq!(karvonen_x(150.0, 60.0, 60.0), 0.0);
    }

    #[test]
    fn zone_edges_are_inclusive_below() {
        // HRrest 50, HRmax 150: x = (HR − 50)/100, so HR 100 is x = 0.5 and HR 140 is x = 0.9.
        assert_eq!(zone(99.0, 50.0, 150.0), 0);
        assert_eq!(zone(100.0, 50.0, 150.0), 1);
        assert_eq!(zone(139.0, 50.0, 150.0), 4);
        assert_eq!(zone(140.0, 50.0, 150.0), 5);
        assert_eq!(zone(200.0, 50.0, 150.0), 5);
        let minutes = zone_minutes(&[(99.0, 60.0), (100.0, 120.0), (140.0, 30.0), (139.0, 6.0)], 50.0, 150.0);
        assert_eq!(minutes, [2.0, 0.0, 0.0, 0.1, 0.5]);
    }

    #[test]
    fn zone_edges_at_awkward_reserve() {
        // HRrest 60, HRmax 190 (reserve 130): x = 0.7 exactly at HR 151, which must be zone 3 even
        // though 0.7 has no exact binary form.
        assert_eq!(zone(151.0, 60.0, 190.0), 3);
        assert_eq!(zone(177.0, 60.0, 190.0), 5);
    }

    #[test]
    fn empty_samples() {
        assert_eq!(banister_trimp(&[], 50.0, 190.0, Sex::Male), 0.0);
        assert_eq!(edwards_trimp(&[], 190.0), 0.0);
        assert_eq!(zone_minutes(&[], 50.0, 190.0), [0.0; 5]);
        assert_eq!(highest_sustained_hr(&[], 60.0), None);
    }

    #[test]
    fn banister_male_and_female_constants() {
        // Banister 1991: 30 min at x = 0.5 → 30 · 0.5 · 0.64 · e^0.96 (male), 30 · 0.5 · 0.86 · e^0.835 (female).
        let samples = [(100.0, 1800.0)];
        assert!(close(banister_trimp(&samples, 50.0, 150.0, Sex::Male), 15.0 * 0.64 * 0.96_f64.exp()));
        assert!(close(banister_trimp(&samples, 50.0, 150.0, Sex::Female), 15.0 * 0.86 * 0.835_f64.exp()));
    }

    #[test]
    fn banister_clamps_x() {
        // Below rest contributes 0; above HRmax counts as x = 1: 10 min · 0.64 · e^1.92.
        let samples = [(40.0, 600.0), (170.0, 600.0)];
        assert!(close(banister_trimp(&samples, 50.0, 150.0, Sex::Male), 10.0 * 0.64 * 1.92_f64.exp()));
    }

    #[test]
    fn edwards_weights_and_edges() {
        // Edwards 1993, HRmax 200: 100 bpm = 50% (weight 1), 99 bpm below (0), 180 = 90% (weight 5).
        let samples = [(99.0, 600.0), (100.0, 600.0), (180.0, 120.0)];
        assert!(close(edwards_trimp(&samples, 200.0), 10.0 + 2.0 * 5.0));
    }

    #[test]
    fn sustained_hr_ignores_a_spike() {
        // A 5-s spike to 200 bpm cannot set HRmax over 60 s: the best 60-s run (20..80 s) holds ≥ 170.
        // Over 5 s the best run is 50..80 s (≥ 172); a 0-s window is any single sample.
        let samples: Vec<(i64, f64)> = vec![
            (0, 150.0),
            (5_000, 200.0),
            (10_000, 150.0),
            (20_000, 170.0),
            (50_000, 175.0),
            (80_000, 172.0),
            (90_000, 120.0),
        ];
        assert_eq!(highest_sustained_hr(&samples, 60.0), Some(170.0));
        assert_eq!(highest_sustained_hr(&samples, 5.0), Some(172.0));
        assert_eq!(highest_sustained_hr(&samples, 0.0), Some(200.0));
        assert_eq!(highest_sustained_hr(&samples, 91.0), None);
    }

    #[test]
    fn sustained_hr_matches_brute_force() {
        // Cross-check of the deque against the definition on a deterministic pseudo-random series.
        let mut state: u64 = 7;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            state >> 33
        };
        let mut t = 0i64;
        let samples: Vec<(i64, f64)> = (0..300)
            .map(|_| {
                t += (next() % 20) as i64;
                (t, 60.0 + (next() % 120) as f64)
            })
            .collect();
        for window_s in [0.0, 1.0, 10.0, 33.0, 60.0, 200.0, 10_000.0] {
            let mut brute: Option<f64> = None;
            for i in 0..samples.len() {
                for j in i..samples.len() {
                    if (samples[j].0 - samples[i].0) as f64 >= window_s * 1000.0 {
                        let m = samples[i..=j].iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
                        brute = Some(brute.map_or(m, |b| b.max(m)));
                        break;
                    }
                }
            }
            assert_eq!(highest_sustained_hr(&samples, window_s), brute, "window {window_s}");
        }
    }

    #[test]
    fn hr_max_used_prefers_measured_then_the_higher_estimate() {
        // Tanaka 2001: 208 − 0.7·40 = 180.
        assert_eq!(hr_max_used(Some(195.0), 40.0, Some(185.0)), 195.0);
        assert!(close(hr_max_used(None, 40.0, None), 180.0));
        assert!(close(hr_max_used(None, 40.0, Some(170.0)), 180.0));
        assert_eq!(hr_max_used(None, 40.0, Some(186.0)), 186.0);
    }

    /// Deterministic pseudo-random numbers below `n` (an LCG; no dependency for a test).
    fn lcg(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut state = seed;
        move |n| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % n
        }
    }

    #[test]
    fn lookup_tables_give_the_directly_computed_results() {
        // The formulas as they were before the per-bpm tables: computed for every sample.
        fn direct_banister(samples: &[(f64, f64)], hr_rest: f64, hr_max: f64, sex: Sex) -> f64 {
            let (a, b) = match sex {
                Sex::Male => (0.64, 1.92),
                Sex::Female => (0.86, 1.67),
            };
            samples
                .iter()
                .map(|&(hr, duration_s)| {
                    let x = karvonen_x(hr, hr_rest, hr_max).clamp(0.0, 1.0);
                    duration_s / 60.0 * x * a * (b * x).exp()
                })
                .sum()
        }
        fn direct_edwards(samples: &[(f64, f64)], hr_max: f64) -> f64 {
            samples
                .iter()
                .map(|&(hr, duration_s)| {
                    let fraction = if hr_max > 0.0 { hr / hr_max } else { 0.0 };
                    duration_s / 60.0 * f64::from(zone_of_fraction(fraction))
                })
                .sum()
        }
        fn direct_zone_minutes(samples: &[(f64, f64)], hr_rest: f64, hr_max: f64) -> [f64; 5] {
            let mut minutes = [0.0; 5];
            for &(hr, duration_s) in samples {
                if let Some(slot) =
                    usize::from(zone(hr, hr_rest, hr_max)).checked_sub(1).and_then(|i| minutes.get_mut(i))
                {
                    *slot += duration_s / 60.0;
                }
            }
            minutes
        }

        let mut next = lcg(5);
        for case in 0..200 {
            let len = if case < 20 { case * 20 } else { next(5000) as usize };
            let samples: Vec<(f64, f64)> = (0..len)
                .map(|_| {
                    let hr = match next(50) {
                        0 => 40.0 + next(2000) as f64 / 10.0,
                        1 => -0.0,
                        2 => 250.0 + next(20) as f64,
                        _ => 40.0 + next(170) as f64,
                    };
                    (hr, [1.0, 5.0, 15.0, next(15_000) as f64 / 1000.0][next(4) as usize])
                })
                .collect();
            let hr_rest = 35.0 + next(40) as f64 + [0.0, 0.5, 0.25][next(3) as usize];
            let hr_max = [hr_rest, hr_rest - 10.0, 150.0 + next(60) as f64, 187.3][next(4) as usize];
            let sex = if next(2) == 0 { Sex::Male } else { Sex::Female };
            let banister = banister_trimp(&samples, hr_rest, hr_max, sex);
            assert_eq!(banister.to_bits(), direct_banister(&samples, hr_rest, hr_max, sex).to_bits(), "case {case}");
            assert_eq!(edwards_trimp(&samples, hr_max).to_bits(), direct_edwards(&samples, hr_max).to_bits());
            let minutes = zone_minutes(&samples, hr_rest, hr_max).map(f64::to_bits);
            assert_eq!(minutes, direct_zone_minutes(&samples, hr_rest, hr_max).map(f64::to_bits), "case {case}");
        }
    }
}
