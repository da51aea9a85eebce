//! Sleep statistics from a staged hypnogram.

use serde::{Deserialize, Serialize};

/// A hypnogram stage as devices report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Awake,
    Light,
    Deep,
    Rem,
}

/// The standard sleep-diary and actigraphy measures of one main sleep, all in minutes except the
/// percentage and the count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SleepStats {
    /// From the first segment's start to the last segment's end.
    pub time_in_bed_min: f64,
    /// Light + deep + REM.
    pub total_sleep_min: f64,
    /// From getting into bed to the first non-awake segment.
    pub sleep_onset_latency_min: f64,
    /// Awake minutes between sleep onset and the final awakening.
    pub waso_min: f64,
    /// 100 · total sleep / time in bed.
    pub efficiency_pct: f64,
    /// Wake bouts of at least [`MIN_AWAKENING_MIN`] between onset and final awakening.
    pub awakenings: u32,
    pub light_min: f64,
    pub deep_min: f64,
    pub rem_min: f64,
    pub awake_min: f64,
}

/// Shortest wake bout that counts as an awakening; shorter ones are ordinary micro-arousals.
pub const MIN_AWAKENING_MIN: f64 = 5.0;

/// Sleep statistics of one main sleep.
///
/// Segments are contiguous minutes `[start, end)` as (start_min, end_min, stage), in any order (they
/// are sorted by start here). Adjacent awake segments (one ending where the next starts) form a
/// single wake bout for `awakenings`, because a device may split one bout at an arbitrary minute.
/// A night without any sleep stage has latency = time in bed and no WASO. Efficiency is 0 when time
/// in bed is 0.
///
/// sleep.json; None when empty.
pub fn stats(segments: &[(f64, f64, Stage)]) -> Option<SleepStats> {
    let mut sorted = segments.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let first_start = sorted.first()?.0;
    let last_end = sorted.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
    let time_in_bed_min = last_end - first_start;

    let (mut light_min, mut deep_min, mut rem_min, mut awake_min) = (0.0, 0.0, 0.0, 0.0);
    for &(start, end, stage) in &sorted {
        let minutes = end - start;
        match stage {
            Stage::Light => light_min += minutes,
            Stage::Deep => deep_min += minutes,
            Stage::Rem => rem_min += minutes,
            Stage::Awake => awake_min += minutes,
        }
    }
    let total_sleep_min = light_min + deep_min + rem_min;

    let asleep = || sorted.iter().filter(|s| s.2 != Stage::Awake);
    let onset = asleep().map(|s| s.0).fold(f64::INFINITY, f64::min);
    let final_awakening = asleep().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);

    // Wake inside the sleep period, merged into bouts where one segment ends as the next starts.
    let mut bouts: Vec<(f64, f64)> = Vec::new();
    let mut waso_min = 0.0;
    for &(start, end, stage) in &sorted {
        if stage != Stage::Awake || start < onset || end > final_awakening {
            continue;
        }
        waso_min += end - start;
        match bouts.last_mut() {
            Some(bout) if bout.1 == start => bout.1 = end,
            _ => bouts.push((start, end)),
        }
    }
    let awakenings = bouts.iter().filter(|(start, end)| end - start >= MIN_AWAKENING_MIN).count();

    let asleep_at_all = onset.is_finite();
    Some(SleepStats {
        time_in_bed_min,
        total_sleep_min,
        sleep_onset_latency_min: if asleep_at_all { onset - first_start } else { time_in_bed_min },
        waso_min,
        efficiency_pct: if time_in_bed_min > 0.0 { 100.0 * total_sleep_min / time_in_bed_min } else { 0.0 },
        awakenings: u32::try_from(awakenings).unwrap_or(u32::MAX),
        light_min,
        deep_min,
        rem_min,
        awake_min,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Stage::*;

    #[test]
    fn empty_is_none() {
        assert_eq!(stats(&[]), None);
    }

    #[test]
    fn unsorted_night_hand_computed() {
        // In bed 0..100; asleep 10..90; wake bouts inside: 30..36 (6 min, counts), 50..53 (3 min,
        // micro-arousal), 70..72 + 72..75 (one 5-min bout split in two segments, counts once).
        // The final 90..100 awake is after the final awakening, not WASO.
        let segs = [
            (90.0, 100.0, Awake),
            (10.0, 30.0, Light),
            (0.0, 10.0, Awake),
            (30.0, 36.0, Awake),
            (36.0, 50.0, Deep),
            (50.0, 53.0, Awake),
            (53.0, 70.0, Rem),
            (70.0, 72.0, Awake),
            (72.0, 75.0, Awake),
            (75.0, 90.0, Light),
        ];
        let s = stats(&segs).unwrap();
        assert_eq!(s.time_in_bed_min, 100.0);
        assert_eq!(s.light_min, 35.0);
        assert_eq!(s.deep_min, 14.0);
        assert_eq!(s.rem_min, 17.0);
        assert_eq!(s.awake_min, 34.0);
        assert_eq!(s.total_sleep_min, 66.0);
        assert_eq!(s.sleep_onset_latency_min, 10.0);
        assert_eq!(s.waso_min, 14.0);
        assert_eq!(s.awakenings, 2);
        assert_eq!(s.efficiency_pct, 66.0);
    }

    #[test]
    fn never_asleep() {
        let s = stats(&[(0.0, 30.0, Awake)]).unwrap();
        assert_eq!(s.total_sleep_min, 0.0);
        assert_eq!(s.sleep_onset_latency_min, 30.0);
        assert_eq!(s.waso_min, 0.0);
        assert_eq!(s.awakenings, 0);
        assert_eq!(s.efficiency_pct, 0.0);
    }

    #[test]
    fn wake_bout_of_exactly_five_minutes_counts() {
        // ">= 5 min" is inclusive.
        let s = stats(&[(0.0, 10.0, Light), (10.0, 15.0, Awake), (15.0, 20.0, Rem)]).unwrap();
        assert_eq!(s.awakenings, 1);
        assert_eq!(s.waso_min, 5.0);
    }
}
