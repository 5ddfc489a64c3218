//! Forecasts of weekly series (users by tier, monthly active users) a number of weeks
//! ahead, by Holt's linear trend method (double exponential smoothing), with 95%
//! prediction intervals and a back-test.
//!
//! The level `ℓ` and trend `b` follow `ℓₜ = α·yₜ + (1−α)(ℓₜ₋₁ + bₜ₋₁)` and
//! `bₜ = β(ℓₜ − ℓₜ₋₁) + (1−β)·bₜ₋₁`, started from the first two points; the forecast
//! `h` steps ahead is `ℓ + h·b`. α and β are the pair of a grid (0.05 to 0.95 by 0.05)
//! with the smallest sum of squared one-step errors. The interval is
//! `±1.96·σ·√(1 + Σⱼ₌₁^{h−1} α²(1 + jβ)²)`, σ the one-step errors' standard deviation
//! (Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*, §8.7). There is no
//! seasonal term: a yearly season needs two years of weekly points, and two years is
//! all the history kept. The back-test fits on all but the last `horizon` points and
//! reports the mean absolute percentage error of its forecast of them, and how many
//! fell inside its interval.

use serde::Serialize;

use crate::domain::time::Timestamp;

/// Fewest points a series needs to be forecast (two to start, the rest to fit).
pub const MIN_POINTS: usize = 6;

/// One point of a series.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Point {
    /// The week (its Monday, as in the tier report; the figure is at its end).
    pub at: Timestamp,
    /// The value.
    pub value: f64,
}

/// One forecast point, with its 95% interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Predicted {
    /// The week (its Monday).
    pub at: Timestamp,
    /// The forecast.
    pub value: f64,
    /// The interval's low end (never below 0).
    pub low: f64,
    /// The interval's high end.
    pub high: f64,
}

/// How the method did on the series' own last weeks, fitted without them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Backtest {
    /// Weeks held out.
    pub weeks: usize,
    /// Mean absolute percentage error of their forecast (0.05 = 5%); `None` when a
    /// held-out value is 0.
    pub mape: Option<f64>,
    /// Share of held-out values inside the 95% interval.
    pub coverage: f64,
}

/// A series and its forecast.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SeriesForecast {
    /// What it counts (`users`, a tier, `mau`).
    pub name: String,
    /// The history, oldest first.
    pub history: Vec<Point>,
    /// The forecast, `horizon` weeks after the last point; empty when the history is
    /// shorter than [`MIN_POINTS`].
    pub forecast: Vec<Predicted>,
    /// The smoothing of the level.
    pub alpha: f64,
    /// The smoothing of the trend.
    pub beta: f64,
    /// The back-test, when the history is long enough to hold weeks out.
    pub backtest: Option<Backtest>,
}

/// Every forecast of a report.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ForecastReport {
    /// When it was computed.
    pub generated_at: Timestamp,
    /// The method, in words.
    pub method: String,
    /// Weeks forecast.
    pub horizon_weeks: u32,
    /// The series.
    pub series: Vec<SeriesForecast>,
}

/// Monthly active users — users consenting to analytics who were active on one of the
/// 28 days up to a day — at each of a list of days.
#[derive(Debug)]
pub struct MauBuilder {
    /// The days (since 1970-01-01), ascending.
    ends: Vec<u32>,
    counts: Vec<u64>,
}

impl MauBuilder {
    /// A builder for the days `ends` (ascending).
    pub fn new(ends: Vec<u32>) -> Self {
        let counts = vec![0; ends.len()];
        Self { ends, counts }
    }

    /// Counts a member at every day of the list it was active within 28 days before.
    pub fn add(&mut self, m: &super::Member<'_>) {
        if !m.consented {
            return;
        }
        let mut hit = vec![false; self.ends.len()];
        let ends = &self.ends;
        let mut mark = |day: u32| {
            let first = ends.partition_point(|&e| e < day);
            for (i, &e) in ends.iter().enumerate().skip(first) {
                if e >= day + 28 {
                    break;
                }
                hit[i] = true;
            }
        };
        for b in m.history.weeks.iter() {
            for i in 0..7u32 {
                if b.weekdays & (1 << i) != 0 {
                    mark(b.day + i);
                }
            }
        }
        for b in m.history.days.iter() {
            mark(b.day);
        }
        for (c, h) in self.counts.iter_mut().zip(hit) {
            *c += u64::from(h);
        }
    }

    /// The counts, in the order of the days.
    pub fn finish(self) -> Vec<u64> {
        self.counts
    }
}

/// A fitted model: its parameters, final level and trend, and one-step error spread.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Holt {
    /// α.
    pub alpha: f64,
    /// β.
    pub beta: f64,
    level: f64,
    trend: f64,
    sigma: f64,
}

/// The one-step squared-error sum, and the final level and trend, of (α, β) on `y`.
fn run(y: &[f64], alpha: f64, beta: f64) -> (f64, f64, f64, usize) {
    let (mut level, mut trend) = (y[1], y[1] - y[0]);
    let (mut sse, mut n) = (0.0, 0);
    for &v in &y[2..] {
        let predicted = level + trend;
        sse += (v - predicted).powi(2);
        n += 1;
        let previous = level;
        level = alpha * v + (1.0 - alpha) * (level + trend);
        trend = beta * (level - previous) + (1.0 - beta) * trend;
    }
    (sse, level, trend, n)
}

impl Holt {
    /// The best (α, β) of the grid for `y` (at least [`MIN_POINTS`] points).
    pub fn fit(y: &[f64]) -> Option<Holt> {
        if y.len() < MIN_POINTS || y.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let grid: Vec<f64> = (1..=19).map(|i| f64::from(i) * 0.05).collect();
        let mut best: Option<(f64, Holt)> = None;
        for &alpha in &grid {
            for &beta in &grid {
                let (sse, level, trend, n) = run(y, alpha, beta);
                if best.as_ref().is_none_or(|(s, _)| sse < *s) {
                    let sigma = (sse / n.max(1) as f64).sqrt();
                    let model = Holt {
                        alpha,
                        beta,
                        level,
                        trend,
                        sigma,
                    };
                    best = Some((sse, model));
                }
            }
        }
        best.map(|(_, m)| m)
    }

    /// The forecast `h` steps ahead (h ≥ 1) and its 95% interval.
    pub fn predict(&self, h: usize) -> (f64, f64, f64) {
        let value = self.level + h as f64 * self.trend;
        let spread: f64 = (1..h)
            .map(|j| (self.alpha * (1.0 + j as f64 * self.beta)).powi(2))
            .sum();
        let half = 1.96 * self.sigma * (1.0 + spread).sqrt();
        (value, (value - half).max(0.0), value + half)
    }
}

/// Forecasts `history` (weekly points, oldest first) `horizon` weeks ahead.
pub fn forecast(name: &str, history: Vec<Point>, horizon: u32) -> SeriesForecast {
    const WEEK_MS: i64 = 7 * 86_400_000;
    let y: Vec<f64> = history.iter().map(|p| p.value).collect();
    let Some(model) = Holt::fit(&y) else {
        return SeriesForecast {
            name: name.to_owned(),
            history,
            forecast: Vec::new(),
            alpha: 0.0,
            beta: 0.0,
            backtest: None,
        };
    };
    let last = history.last().map_or(0, |p| p.at.as_millis());
    let forecast = (1..=horizon as usize)
        .map(|h| {
            let (value, low, high) = model.predict(h);
            Predicted {
                at: Timestamp::from_millis(last + h as i64 * WEEK_MS),
                value,
                low,
                high,
            }
        })
        .collect();
    SeriesForecast {
        name: name.to_owned(),
        backtest: backtest(&y, horizon as usize),
        history,
        forecast,
        alpha: model.alpha,
        beta: model.beta,
    }
}

/// Fits on all but the last `horizon` points (fewer when the series is short: at most
/// a quarter of it) and judges the forecast of them.
pub fn backtest(y: &[f64], horizon: usize) -> Option<Backtest> {
    let held = horizon.min(y.len() / 4);
    if held == 0 {
        return None;
    }
    let (fit, out) = y.split_at(y.len() - held);
    let model = Holt::fit(fit)?;
    let (mut ape, mut inside, mut zero) = (0.0, 0usize, false);
    for (i, &actual) in out.iter().enumerate() {
        let (value, low, high) = model.predict(i + 1);
        if actual == 0.0 {
            zero = true;
        } else {
            ape += ((actual - value) / actual).abs();
        }
        inside += usize::from((low..=high).contains(&actual));
    }
    Some(Backtest {
        weeks: held,
        mape: (!zero).then(|| ape / held as f64),
        coverage: inside as f64 / held as f64,
    })
}

#[cfg(test)]
mod tests {
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::{RngExt, SeedableRng};

    use super::*;

    /// A planted trend with noise: 1,000 + 25 a week, σ = 10.
    fn planted(weeks: usize, seed: u64) -> Vec<f64> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        (0..weeks)
            .map(|t| {
                let noise: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
                1000.0 + 25.0 * t as f64 + 10.0 * noise
            })
            .collect()
    }

    #[test]
    fn a_planted_trend_is_learned_and_forecast_within_its_interval() {
        let y = planted(60, 7);
        let model = Holt::fit(&y).unwrap();
        // 13 weeks past the last point the truth is 1,000 + 25·72.
        let truth = 1000.0 + 25.0 * 72.0;
        let (value, low, high) = model.predict(13);
        assert!(
            (value - truth).abs() / truth < 0.03,
            "{value} against {truth}"
        );
        assert!(low < truth && truth < high, "{low}..{high} holds {truth}");
        // The interval widens with the horizon.
        let (_, l1, h1) = model.predict(1);
        assert!(high - low > h1 - l1);
        let bt = backtest(&y, 13).unwrap();
        assert_eq!(bt.weeks, 13);
        assert!(bt.mape.unwrap() < 0.02, "{bt:?}");
        assert!(bt.coverage >= 0.75, "{bt:?}");
    }

    #[test]
    fn a_flat_series_stays_flat_and_short_ones_are_not_forecast() {
        let y = vec![500.0; 20];
        let (value, low, high) = Holt::fit(&y).unwrap().predict(10);
        assert!((value - 500.0).abs() < 1e-6 && low <= 500.0 && high >= 500.0);
        assert!(Holt::fit(&y[..MIN_POINTS - 1]).is_none());
        let points: Vec<Point> = (0..3)
            .map(|i| Point {
                at: Timestamp::from_millis(i * 1000),
                value: 1.0,
            })
            .collect();
        let f = forecast("users", points, 13);
        assert!(f.forecast.is_empty() && f.backtest.is_none());
        // A series with a zero in its held-out weeks has no percentage error.
        let mut z = planted(40, 1);
        z[39] = 0.0;
        assert_eq!(backtest(&z, 8).unwrap().mape, None);
    }
}
