//! Resting heart rate, from sleep when there is any, else from inactive daytime minutes.

/// Minutes averaged together: a short rolling mean damps single-minute dips that are artifacts.
const SLEEP_WINDOW_MIN: usize = 5;
/// Step-free minutes that must precede a minute for its HR to count as resting (Mishra et al. 2020).
const INACTIVE_LEAD_MIN: usize = 12;

/// Resting HR from the main sleep: the lowest 5-minute rolling mean of the per-minute HR, which is
/// the most stable physiological floor a night offers.
///
/// resting_hr.json: minimum over the main sleep of the mean of 5 consecutive one-minute HR values;
/// None with < 5 minutes.
pub fn from_sleep(per_minute_hr: &[f64]) -> Option<f64> {
    per_minute_hr
        .windows(SLEEP_WINDOW_MIN)
        .map(|w| w.iter().sum::<f64>() / SLEEP_WINDOW_MIN as f64)
        .min_by(f64::total_cmp)
}

/// Resting HR without sleep data (Mishra et al. 2020): the HR of a minute counts only after 12
/// minutes without steps, so that recovery from activity does not inflate it.
///
/// Mean HR of the minutes whose preceding 12 minutes all exist in the slice and had zero steps and
/// whose own HR is Some. Input is consecutive minutes (hr, steps). None if no such minute.
pub fn from_inactivity(minutes: &[(Option<f64>, u32)]) -> Option<f64> {
    let mut still_for = 0usize;
    let mut sum = 0.0;
    let mut count = 0usize;
    for &(hr, steps) in minutes {
        if let (true, Some(hr)) = (still_for >= INACTIVE_LEAD_MIN, hr) {
            sum += hr;
            count += 1;
        }
        still_for = if steps == 0 { still_for + 1 } else { 0 };
    }
    (count > 0).then(|| sum / count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_sleep_needs_five_minutes() {
        assert_eq!(from_sleep(&[]), None);
        assert_eq!(from_sleep(&[50.0, 51.0, 52.0, 53.0]), None);
    }

    #[test]
    fn from_sleep_takes_lowest_five_minute_mean() {
        // Windows: (60+55+50+50+50)/5 = 53, (55+50+50+50+45)/5 = 50, (50+50+50+45+70)/5 = 53.
        // The single 45-bpm minute alone is not the answer: a rolling mean, not the minimum.
        let hr = [60.0, 55.0, 50.0, 50.0, 50.0, 45.0, 70.0];
        assert_eq!(from_sleep(&hr), Some(50.0));
    }

    #[test]
    fn from_inactivity_empty_or_too_short() {
        assert_eq!(from_inactivity(&[]), None);
        // Twelve still minutes: none of them has twelve still minutes before it inside the slice.
        assert_eq!(from_inactivity(&[(Some(60.0), 0); 12]), None);
    }

    #[test]
    fn from_inactivity_counts_after_twelve_still_minutes() {
        // Mishra 2020: minutes 12 and 13 follow ≥ 12 step-free minutes; minute 14 has steps itself
        // but its lead is still step-free, so it counts; minute 15 follows a minute with steps.
        let mut minutes = vec![(Some(80.0), 0u32); 12];
        minutes.push((Some(58.0), 0));
        minutes.push((None, 0));
        minutes.push((Some(62.0), 30));
        minutes.push((Some(90.0), 0));
        assert_eq!(from_inactivity(&minutes), Some(60.0));
    }
}
