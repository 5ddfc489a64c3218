//! The privacy accountant: what `T` published rounds of the Gaussian mechanism cost, as
//! `(ε, δ)` user-level differential privacy.
//!
//! Each round adds `N(0, (z·S)²)` to a sum to which one user adds at most `S` (its
//! update is clipped to `S` and weighs at most 1, and a user sends one update per
//! round). In Rényi differential privacy that is `α / (2z²)` per round at every order
//! `α > 1` (Mironov 2017, the Gaussian mechanism), and rounds add up: `T·α / (2z²)`.
//! Turned into `(ε, δ)`: `ε = T·α/(2z²) + ln(1/δ)/(α − 1)`, which is least at
//! `α = 1 + z·√(2·ln(1/δ)/T)`, giving
//!
//! `ε(T) = T/(2z²) + √(2·T·ln(1/δ)) / z`.
//!
//! No amplification by sampling is claimed: the devices choose to take part, the server
//! does not sample them, so every round is counted as if every user took part in it.

/// The `ε` spent by `rounds` rounds at noise multiplier `z` and the given `δ`; infinite
/// with no noise.
pub fn epsilon(rounds: u64, noise_multiplier: f64, delta: f64) -> f64 {
    if rounds == 0 {
        return 0.0;
    }
    if noise_multiplier <= 0.0 || delta <= 0.0 || delta >= 1.0 {
        return f64::INFINITY;
    }
    let t = rounds as f64;
    let z = noise_multiplier;
    t / (2.0 * z * z) + (2.0 * t * (1.0 / delta).ln()).sqrt() / z
}

/// The most rounds whose `ε` stays within `budget`.
pub fn rounds_within(budget: f64, noise_multiplier: f64, delta: f64) -> u64 {
    if epsilon(1, noise_multiplier, delta) > budget {
        return 0;
    }
    // ε grows with T: double, then bisect.
    let (mut lo, mut hi) = (1u64, 2u64);
    while epsilon(hi, noise_multiplier, delta) <= budget {
        lo = hi;
        hi = hi.saturating_mul(2);
        if hi == u64::MAX {
            return u64::MAX;
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if epsilon(mid, noise_multiplier, delta) <= budget {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epsilon_grows_with_rounds_and_falls_with_noise() {
        let e: Vec<f64> = (0..=10).map(|t| epsilon(t, 3.0, 1e-6)).collect();
        assert_eq!(e[0], 0.0);
        assert!(e.windows(2).all(|w| w[1] > w[0]), "{e:?}");
        assert!(epsilon(10, 6.0, 1e-6) < epsilon(10, 3.0, 1e-6));
        assert!(epsilon(10, 3.0, 1e-9) > epsilon(10, 3.0, 1e-6));
        assert_eq!(epsilon(1, 0.0, 1e-6), f64::INFINITY);
    }

    #[test]
    fn the_closed_form_is_the_best_order() {
        // The minimum over a fine grid of orders is the closed form.
        let (t, z, d) = (7u64, 2.5f64, 1e-5f64);
        let grid = (1..20_000)
            .map(|i| 1.0 + f64::from(i) * 0.001)
            .map(|a| t as f64 * a / (2.0 * z * z) + (1.0 / d).ln() / (a - 1.0))
            .fold(f64::INFINITY, f64::min);
        let closed = epsilon(t, z, d);
        assert!(
            closed <= grid + 1e-9 && grid - closed < 1e-3,
            "{closed} {grid}"
        );
    }

    #[test]
    fn rounds_within_a_budget() {
        let n = rounds_within(10.0, 3.0, 1e-6);
        assert!(n > 0);
        assert!(epsilon(n, 3.0, 1e-6) <= 10.0);
        assert!(epsilon(n + 1, 3.0, 1e-6) > 10.0);
        assert_eq!(rounds_within(0.1, 3.0, 1e-6), 0);
    }
}
