//! Energy expenditure and fitness estimates from published regression equations.

use crate::Sex;

/// Basal metabolic rate in kcal/day by Mifflin–St Jeor (Mifflin, St Jeor et al. 1990): the equation
/// that best predicts measured resting expenditure in non-obese and obese adults alike.
pub fn bmr_kcal_per_day(sex: Sex, weight_kg: f64, height_cm: f64, age: f64) -> f64 {
    let sex_term = match sex {
        Sex::Male => 5.0,
        Sex::Female => -161.0,
    };
    10.0 * weight_kg + 6.25 * height_cm - 5.0 * age + sex_term
}

/// kJ per kcal (thermochemical calorie), to turn Keytel's kJ/min into kcal/min.
const KJ_PER_KCAL: f64 = 4.184;

/// Energy expenditure in kcal/min at heart rate `hr` by Keytel et al. 2005, the variant without
/// VO2max because the tracker never measures it. Only meaningful for exercise intensities; the caller
/// counts resting minutes as BMR instead.
pub fn keytel_kcal_per_min(sex: Sex, hr: f64, weight_kg: f64, age: f64) -> f64 {
    let kj_per_min = match sex {
        Sex::Male => -55.0969 + 0.6309 * hr + 0.1988 * weight_kg + 0.2017 * age,
        Sex::Female => -20.4022 + 0.4472 * hr - 0.1263 * weight_kg + 0.0740 * age,
    };
    kj_per_min / KJ_PER_KCAL
}

/// Age-predicted maximal heart rate, 208 − 0.7·age (Tanaka, Monahan, Seals 2001); less biased in
/// older adults than the classic 220 − age.
pub fn tanaka_hr_max(age: f64) -> f64 {
    208.0 - 0.7 * age
}

/// VO2max in ml/kg/min from the heart-rate ratio, 15.3 · HRmax / HRrest (Uth et al. 2004): the only
/// estimate available from passive wear data without a test.
pub fn uth_vo2max(hr_max: f64, hr_rest: f64) -> f64 {
    15.3 * hr_max / hr_rest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn mifflin_st_jeor_male_and_female_differ_by_166() {
        // Mifflin 1990: 10·70 + 6.25·175 − 5·30 = 1643.75; +5 male, −161 female.
        assert!(close(bmr_kcal_per_day(Sex::Male, 70.0, 175.0, 30.0), 1648.75));
        assert!(close(bmr_kcal_per_day(Sex::Female, 70.0, 175.0, 30.0), 1482.75));
    }

    #[test]
    fn keytel_female_constants() {
        // Keytel 2005, female: −20.4022 + 0.4472·150 − 0.1263·60 + 0.0740·40 = 42.0598 kJ/min.
        let expected = 42.0598 / 4.184;
        assert!(close(keytel_kcal_per_min(Sex::Female, 150.0, 60.0, 40.0), expected));
    }

    #[test]
    fn keytel_male_constants() {
        // Keytel 2005, male: −55.0969 + 0.6309·150 + 0.1988·80 + 0.2017·40 = 63.5101 kJ/min.
        let expected = 63.5101 / 4.184;
        assert!(close(keytel_kcal_per_min(Sex::Male, 150.0, 80.0, 40.0), expected));
    }

    #[test]
    fn tanaka_and_uth() {
        // Tanaka 2001: 208 − 0.7·40 = 180; Uth 2004: 15.3 · 180 / 60 = 45.9.
        assert!(close(tanaka_hr_max(40.0), 180.0));
        assert!(close(uth_vo2max(180.0, 60.0), 45.9));
    }
}
