//! Seeded randomness, in two forms:
//!
//! - a ChaCha stream per purpose ([`stream`]) for decisions taken in sequence (a user's nights,
//!   a phone's imperfections), so one seed always gives the same run;
//! - stateless hashes of `(seed, key...)` ([`hash`], [`unit`], [`gauss`], [`value_noise`]) for
//!   sample values, so a sample depends only on its device and its time: a re-sent, overlapping
//!   or late batch carries exactly the values the first one did.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a hash or a stream is for, so two purposes never share numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Purpose {
    Fleet = 1,
    User,
    Device,
    Timeline,
    Phone,
    HrNoise,
    HrGlitch,
    HrQuality,
    Steps,
    StepGlitch,
    Walking,
    Rr,
    RrGlitch,
    Physiology,
}

/// The SplitMix64 finalizer: a good 64-bit mixer.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of the seed, the purpose and the key parts.
pub fn hash(seed: u64, purpose: Purpose, parts: &[u64]) -> u64 {
    let mut h = mix(seed ^ mix(purpose as u64));
    for p in parts {
        h = mix(h ^ p.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    }
    h
}

/// Uniform in [0, 1).
pub fn unit(seed: u64, purpose: Purpose, parts: &[u64]) -> f64 {
    (hash(seed, purpose, parts) >> 11) as f64 / (1u64 << 53) as f64
}

/// Standard normal (Box-Muller over two hashes).
pub fn gauss(seed: u64, purpose: Purpose, parts: &[u64]) -> f64 {
    let h = hash(seed, purpose, parts);
    let u1 = ((h >> 11) as f64 + 1.0) / ((1u64 << 53) as f64 + 1.0);
    let u2 = (mix(h) >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Smooth noise in [-1, 1] that changes over `period_ms`: hashed values at grid points, eased.
pub fn value_noise(seed: u64, purpose: Purpose, t_ms: i64, period_ms: i64) -> f64 {
    let k = t_ms.div_euclid(period_ms);
    let frac = (t_ms - k * period_ms) as f64 / period_ms as f64;
    let a = unit(seed, purpose, &[k as u64]) * 2.0 - 1.0;
    let b = unit(seed, purpose, &[(k + 1) as u64]) * 2.0 - 1.0;
    let eased = frac * frac * (3.0 - 2.0 * frac);
    a + (b - a) * eased
}

/// A ChaCha8 stream for one purpose of one thing.
pub fn stream(seed: u64, purpose: Purpose, parts: &[u64]) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(hash(seed, purpose, parts))
}

/// A standard normal from a stream.
pub fn normal(rng: &mut impl rand::Rng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A v4 UUID from a stream (deterministic for a seed).
pub fn uuid(rng: &mut impl rand::Rng) -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rng.gen()).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_spread() {
        assert_eq!(hash(1, Purpose::HrNoise, &[5]), hash(1, Purpose::HrNoise, &[5]));
        assert_ne!(hash(1, Purpose::HrNoise, &[5]), hash(1, Purpose::HrGlitch, &[5]));
        assert_ne!(hash(1, Purpose::HrNoise, &[5]), hash(2, Purpose::HrNoise, &[5]));
        let mean = (0..10_000).map(|i| unit(7, Purpose::Steps, &[i])).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        let g: Vec<f64> = (0..10_000).map(|i| gauss(7, Purpose::Rr, &[i])).collect();
        let m = g.iter().sum::<f64>() / g.len() as f64;
        let sd = (g.iter().map(|x| (x - m).powi(2)).sum::<f64>() / g.len() as f64).sqrt();
        assert!(m.abs() < 0.05 && (sd - 1.0).abs() < 0.05, "{m} {sd}");
    }

    #[test]
    fn value_noise_is_continuous() {
        let a = value_noise(3, Purpose::Physiology, 59_999, 60_000);
        let b = value_noise(3, Purpose::Physiology, 60_000, 60_000);
        assert!((a - b).abs() < 1e-3);
    }
}
