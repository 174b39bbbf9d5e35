//! Rule `disclosure.perturbation`: the cell-key method (Australian Bureau of Statistics; ONS's
//! `cell-key-perturbation`). Every patient has a secret record key, one per hub; a cell's key
//! is the XOR of the keys behind it (bound to their contributions), so its noise is a function
//! of who stands behind it and of nothing else: re-running, reordering or averaging a thousand
//! repeats gives the same answer. Counts get a small integer noise (uniform-triangular on
//! ±`count_noise`) and are rounded to `rounding`; sums and means get a noise scaled to the
//! cell's largest contribution (`magnitude_noise` × it), so one patient's value stays hidden.

use super::Settings;
use super::functions::Kind;
use super::measure::Summary;

/// The rule's name in reports and audit events.
pub const RULE: &str = "disclosure.perturbation";

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A uniform number in [0, 1) drawn from the cell key, the measure and a salt.
fn uniform(key: u64, signature: &str, salt: u64) -> f64 {
    (mix(key ^ mix(fnv(signature) ^ salt)) >> 11) as f64 / (1u64 << 53) as f64
}

/// Integer noise on ±`d`, weights `d + 1 − |j|` (unbiased, variance d(d+2)/6).
fn count_noise(u: f64, d: u64) -> f64 {
    let d = d as i64;
    let total: i64 = (-d..=d).map(|j| d + 1 - j.abs()).sum();
    let mut target = u * total as f64;
    for j in -d..=d {
        let w = (d + 1 - j.abs()) as f64;
        if target < w {
            return j as f64;
        }
        target -= w;
    }
    d as f64
}

fn round_to(x: f64, base: u64) -> f64 {
    let b = base.max(1) as f64;
    ((x / b).round() * b).max(0.0)
}

/// The published value of a cell that passed the other rules. `distinct` is the true count
/// of distinct values, for [`Kind::Distinct`].
pub fn release(
    kind: Kind,
    s: &Summary,
    distinct: Option<i64>,
    signature: &str,
    settings: &Settings,
) -> f64 {
    let e = count_noise(uniform(s.key, signature, 1), settings.count_noise);
    // Triangular on (−1, 1).
    let c = uniform(s.key, signature, 2) - uniform(s.key, signature, 3);
    let top = s.top[0] as f64 / 1e6;
    match kind {
        Kind::Patients => round_to(s.patients as f64 + e, settings.rounding),
        Kind::Distinct => round_to(distinct.unwrap_or(0) as f64 + e, settings.rounding),
        Kind::Rows => round_to(
            s.rows as f64 + e + s.top_rows[0] as f64 * settings.magnitude_noise * c,
            settings.rounding,
        ),
        Kind::Sum => (s.sum() + top * settings.magnitude_noise * c).round(),
        Kind::Avg => {
            let n = (s.rows as f64 + e).max(1.0);
            (s.sum() + top * settings.magnitude_noise * c) / n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_noise_is_unbiased_and_bounded() {
        let n = 100_000;
        let mut sum = 0.0;
        for i in 0..n {
            let v = count_noise(uniform(i, "rows", 1), 2);
            assert!((-2.0..=2.0).contains(&v));
            sum += v;
        }
        assert!((sum / n as f64).abs() < 0.02, "mean {}", sum / n as f64);
    }
}
