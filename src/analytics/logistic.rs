//! Logistic regression by Newton's method (iteratively reweighted least squares) with a
//! small ridge penalty, on standardised features.
//!
//! Written here rather than taken from a crate: the churn model has 19 features, so each
//! Newton step is one pass over the rows accumulating a 20×20 Hessian (the intercept's
//! row beside them), solved by Cholesky — exact, deterministic, converging in a handful
//! of passes, and streaming over a flat `f32` matrix (a million rows of 19 features is
//! 76 MB) instead of copying
//! it into a library's matrix type. smartcore's `LogisticRegression` would add its own
//! dense matrix copy and an L-BFGS loop for the same answer, and pulls a second `rand`
//! line into the build. The coefficients are what explanations are made of (`wᵢ·zᵢ`),
//! so they must be ours to read anyway.

use serde::{Deserialize, Serialize};

/// Ridge penalty on the standardised weights (not on the intercept), per row.
const L2_PER_ROW: f64 = 1e-4;

/// Newton steps at most.
const MAX_STEPS: usize = 30;

/// Converged when no weight moves more than this.
const TOLERANCE: f64 = 1e-7;

/// A fitted model: `p = σ(b + Σ wᵢ·(xᵢ − μᵢ)/σᵢ)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    /// The features' means over the training rows.
    pub means: Vec<f64>,
    /// Their standard deviations (1 where a feature was constant).
    pub scales: Vec<f64>,
    /// One weight per standardised feature.
    pub weights: Vec<f64>,
    /// The intercept.
    pub intercept: f64,
}

/// The logistic function.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

impl Logistic {
    /// The standardised value of feature `i`.
    pub fn standardise(&self, i: usize, x: f64) -> f64 {
        (x - self.means[i]) / self.scales[i]
    }

    /// `wᵢ·zᵢ` for each feature of `x`: what each contributes to the log-odds.
    pub fn contributions(&self, x: &[f64]) -> Vec<f64> {
        (0..self.weights.len())
            .map(|i| self.weights[i] * self.standardise(i, x[i]))
            .collect()
    }

    /// The probability of `x`.
    pub fn predict(&self, x: &[f64]) -> f64 {
        sigmoid(self.intercept + self.contributions(x).iter().sum::<f64>())
    }

    /// Fits rows `x` (row-major, `d` features each) to labels `y`; `progress` gets each
    /// step's number and mean log loss. `None` when there are no rows or only one class.
    pub fn fit(
        x: &[f32],
        d: usize,
        y: &[bool],
        mut progress: impl FnMut(usize, f64),
    ) -> Option<Logistic> {
        let n = y.len();
        if n == 0 || x.len() != n * d || y.iter().all(|v| *v) || !y.iter().any(|v| *v) {
            return None;
        }
        let (means, scales) = moments(x, d, n);
        let k = d + 1; // the intercept is the last coefficient
        let prior = y.iter().filter(|v| **v).count() as f64 / n as f64;
        let mut w = vec![0.0; k];
        w[d] = (prior / (1.0 - prior)).ln();
        let lambda = L2_PER_ROW * n as f64;
        let mut z = vec![0.0; k];
        z[d] = 1.0;
        for step in 1..=MAX_STEPS {
            let mut grad = vec![0.0; k];
            let mut hess = vec![0.0; k * k];
            let mut loss = 0.0;
            for (r, label) in y.iter().enumerate() {
                let row = &x[r * d..(r + 1) * d];
                for i in 0..d {
                    z[i] = (f64::from(row[i]) - means[i]) / scales[i];
                }
                let p = sigmoid(dot(&w, &z));
                let t = f64::from(u8::from(*label));
                loss -= t * p.max(1e-15).ln() + (1.0 - t) * (1.0 - p).max(1e-15).ln();
                let s = p * (1.0 - p);
                for i in 0..k {
                    grad[i] += (t - p) * z[i];
                    let zi = s * z[i];
                    for j in 0..=i {
                        hess[i * k + j] += zi * z[j];
                    }
                }
            }
            for i in 0..d {
                grad[i] -= lambda * w[i];
                hess[i * k + i] += lambda;
            }
            for i in 0..k {
                for j in 0..i {
                    hess[j * k + i] = hess[i * k + j];
                }
            }
            progress(step, loss / n as f64);
            let delta = solve_spd(&mut hess, k, &grad)?;
            let moved = delta.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (wi, di) in w.iter_mut().zip(&delta) {
                *wi += di;
            }
            if moved < TOLERANCE {
                break;
            }
        }
        let intercept = w[d];
        w.truncate(d);
        Some(Logistic {
            means,
            scales,
            weights: w,
            intercept,
        })
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Means and standard deviations of each column.
fn moments(x: &[f32], d: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; d];
    let mut sq = vec![0.0; d];
    for row in x.chunks_exact(d) {
        for i in 0..d {
            let v = f64::from(row[i]);
            mean[i] += v;
            sq[i] += v * v;
        }
    }
    let n = n as f64;
    let scales = (0..d)
        .map(|i| {
            let m = mean[i] / n;
            let var = (sq[i] / n - m * m).max(0.0);
            if var > 1e-12 { var.sqrt() } else { 1.0 }
        })
        .collect();
    (mean.iter().map(|m| m / n).collect(), scales)
}

/// Solves `A·x = b` for a symmetric positive definite `A` (`k×k`, row-major, destroyed)
/// by Cholesky; `None` if `A` is not positive definite.
fn solve_spd(a: &mut [f64], k: usize, b: &[f64]) -> Option<Vec<f64>> {
    for j in 0..k {
        let mut diag = a[j * k + j];
        for m in 0..j {
            diag -= a[j * k + m] * a[j * k + m];
        }
        if diag <= 0.0 || !diag.is_finite() {
            return None;
        }
        let l = diag.sqrt();
        a[j * k + j] = l;
        for i in j + 1..k {
            let mut v = a[i * k + j];
            for m in 0..j {
                v -= a[i * k + m] * a[j * k + m];
            }
            a[i * k + j] = v / l;
        }
    }
    let mut y = vec![0.0; k];
    for i in 0..k {
        let mut v = b[i];
        for m in 0..i {
            v -= a[i * k + m] * y[m];
        }
        y[i] = v / a[i * k + i];
    }
    let mut x = vec![0.0; k];
    for i in (0..k).rev() {
        let mut v = y[i];
        for m in i + 1..k {
            v -= a[m * k + i] * x[m];
        }
        x[i] = v / a[i * k + i];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn recovers_planted_coefficients() {
        // y ~ Bernoulli(σ(0.5 + 2·x0 − 1·x1)), x0 ~ U(−1, 1), x1 ~ U(0, 4), x2 noise.
        let mut rng = StdRng::seed_from_u64(7);
        let n = 40_000;
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let (a, b, c): (f64, f64, f64) = (
                rng.random_range(-1.0..1.0),
                rng.random_range(0.0..4.0),
                rng.random_range(0.0..1.0),
            );
            x.extend([a as f32, b as f32, c as f32]);
            y.push(rng.random::<f64>() < sigmoid(0.5 + 2.0 * a - b));
        }
        let mut steps = 0;
        let m = Logistic::fit(&x, 3, &y, |s, _| steps = s).unwrap();
        assert!(steps < 15, "Newton converges quickly ({steps} steps)");
        // Back to the raw scale: w_raw = w / σ.
        let raw: Vec<f64> = (0..3).map(|i| m.weights[i] / m.scales[i]).collect();
        assert!((raw[0] - 2.0).abs() < 0.1, "{raw:?}");
        assert!((raw[1] + 1.0).abs() < 0.05, "{raw:?}");
        assert!(raw[2].abs() < 0.1, "{raw:?}");
        let b = m.intercept
            - (0..3)
                .map(|i| m.weights[i] * m.means[i] / m.scales[i])
                .sum::<f64>();
        assert!((b - 0.5).abs() < 0.1, "{b}");
        // Contributions add up to the log-odds.
        let row = [0.3, 1.0, 0.5];
        let logit = m.intercept + m.contributions(&row).iter().sum::<f64>();
        assert!((sigmoid(logit) - m.predict(&row)).abs() < 1e-12);
    }

    #[test]
    fn refuses_what_it_cannot_fit() {
        assert!(Logistic::fit(&[], 1, &[], |_, _| ()).is_none());
        assert!(Logistic::fit(&[1.0, 2.0], 1, &[true, true], |_, _| ()).is_none());
        assert!(Logistic::fit(&[1.0], 2, &[true], |_, _| ()).is_none());
        // A constant feature is harmless.
        let m = Logistic::fit(&[1.0, 0.0, 1.0, 1.0], 2, &[false, true], |_, _| ()).unwrap();
        assert_eq!(m.scales[0], 1.0);
        assert!(sigmoid(-800.0) >= 0.0 && sigmoid(800.0) <= 1.0);
    }
}
