//! The privacy accountant: what published rounds of the Gaussian mechanism cost, as
//! `(ε, δ)` user-level differential privacy.
//!
//! Each round adds `N(0, (z·S)²)` to a sum to which one user adds at most `S` (its
//! update is clipped to `S` and weighs at most 1, a user sends one update per round,
//! and the sum is divided by a fixed denominator, not by who took part). In Rényi
//! differential privacy that round costs `α·ρ` at every order `α > 1` with
//! `ρ = 1/(2z²)` (Mironov 2017, the Gaussian mechanism), and rounds add up: the spent
//! `ρ` is the sum over the published rounds, each at its own `z`. Turned into `(ε, δ)`:
//! `ε = α·ρ + ln(1/δ)/(α − 1)`, which is least at `α = 1 + √(ln(1/δ)/ρ)`, giving
//!
//! `ε(ρ) = ρ + 2·√(ρ·ln(1/δ))`, so `T` rounds at one `z`: `T/(2z²) + √(2·T·ln(1/δ))/z`.
//!
//! No amplification by sampling is claimed: the devices choose to take part, the server
//! does not sample them, so every round is counted as if every user took part in it.

/// The `ρ` one round at noise multiplier `z` costs; infinite with no noise.
pub fn round_cost(noise_multiplier: f64) -> f64 {
    if noise_multiplier > 0.0 {
        1.0 / (2.0 * noise_multiplier * noise_multiplier)
    } else {
        f64::INFINITY
    }
}

/// The `ε` at `δ` of a spent `ρ`.
pub fn epsilon_of(rho: f64, delta: f64) -> f64 {
    if rho <= 0.0 {
        return 0.0;
    }
    if !(delta > 0.0 && delta < 1.0 && rho.is_finite()) {
        return f64::INFINITY;
    }
    rho + 2.0 * (rho * (1.0 / delta).ln()).sqrt()
}

/// The `ε` spent by `rounds` rounds at noise multiplier `z` and the given `δ`.
pub fn epsilon(rounds: u64, noise_multiplier: f64, delta: f64) -> f64 {
    if rounds == 0 {
        return 0.0;
    }
    epsilon_of(rounds as f64 * round_cost(noise_multiplier), delta)
}

/// The most `ρ` whose `ε` at `δ` stays within `budget`: `ρ + 2√(ρL) ≤ B` is
/// `√ρ ≤ √(L + B) − √L` with `L = ln(1/δ)`.
pub fn rho_within(budget: f64, delta: f64) -> f64 {
    if !(delta > 0.0 && delta < 1.0) || budget <= 0.0 {
        return 0.0;
    }
    let l = (1.0 / delta).ln();
    ((l + budget).sqrt() - l.sqrt()).powi(2)
}

/// How many more rounds at noise multiplier `z` fit within `budget` after `spent`.
pub fn rounds_left(spent: f64, budget: f64, noise_multiplier: f64, delta: f64) -> u64 {
    let cost = round_cost(noise_multiplier);
    if !cost.is_finite() {
        return 0;
    }
    let room = rho_within(budget, delta) - spent;
    if room < 0.0 {
        return 0;
    }
    let mut k = (room / cost).floor().min(u64::MAX as f64 / 2.0) as u64;
    // The closed form to the rounding of floats: settle on the exact edge.
    while k > 0 && epsilon_of(spent + k as f64 * cost, delta) > budget {
        k -= 1;
    }
    while epsilon_of(spent + (k + 1) as f64 * cost, delta) <= budget {
        k += 1;
    }
    k
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
        // T rounds at one z, in the closed form of the module documentation.
        let (t, z, l) = (7.0f64, 3.0f64, (1e6f64).ln());
        let closed = t / (2.0 * z * z) + (2.0 * t * l).sqrt() / z;
        assert!((epsilon(7, 3.0, 1e-6) - closed).abs() < 1e-9);
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
    fn rounds_at_different_noise_add_their_own_costs() {
        // Two rounds at z = 3 then one at z = 1 cost more than three at z = 3.
        let mixed = 2.0 * round_cost(3.0) + round_cost(1.0);
        assert!(epsilon_of(mixed, 1e-6) > epsilon(3, 3.0, 1e-6));
        assert!((epsilon_of(3.0 * round_cost(3.0), 1e-6) - epsilon(3, 3.0, 1e-6)).abs() < 1e-12);
    }

    #[test]
    fn rounds_left_within_a_budget() {
        let n = rounds_left(0.0, 10.0, 3.0, 1e-6);
        assert!(n > 0);
        assert!(epsilon(n, 3.0, 1e-6) <= 10.0);
        assert!(epsilon(n + 1, 3.0, 1e-6) > 10.0);
        assert_eq!(rounds_left(0.0, 0.1, 3.0, 1e-6), 0);
        // After two rounds spent, two fewer are left.
        assert_eq!(rounds_left(2.0 * round_cost(3.0), 10.0, 3.0, 1e-6), n - 2);
        // Spent beyond the budget (a larger z before, say): none, not a wrap-around.
        assert_eq!(rounds_left(100.0, 10.0, 3.0, 1e-6), 0);
        assert_eq!(rounds_left(0.0, 10.0, 0.0, 1e-6), 0);
        let edge = rho_within(10.0, 1e-6);
        assert!((epsilon_of(edge, 1e-6) - 10.0).abs() < 1e-9);
    }
}
