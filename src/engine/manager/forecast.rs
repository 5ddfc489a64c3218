//! Forecasts for operators: users by tier and monthly active users, week by week from
//! the stored population, projected ahead by Holt's linear trend
//! ([`crate::analytics::forecast`]) with each series' back-test.

use super::Analytics;
use super::principal::Principal;
use crate::analytics::forecast::{ForecastReport, MIN_POINTS, MauBuilder, Point, forecast};
use crate::analytics::tiers::{TierBuilder, TierChange};
use crate::domain::audit::AuditAction;
use crate::domain::history::{day_of, week_start};
use crate::domain::tier::UserTier;
use crate::domain::validation::ValidationError;
use crate::engine::{EngineError, background, population};

/// The most weeks a forecast may look ahead.
pub const MAX_AHEAD: u32 = 26;
/// The most weeks of history a forecast reads (the history kept).
pub const MAX_HISTORY: u32 = crate::analytics::cohorts::MAX_PERIODS;

impl Analytics<'_> {
    /// Users (all, and each tier) and monthly active users at the end of each of the
    /// last `weeks` whole weeks (the current one, not over, is left out), each forecast
    /// `ahead` weeks on with its interval and back-test (operators). One read of the
    /// store, off the actor threads.
    pub async fn forecast(
        self,
        by: &Principal,
        weeks: u32,
        ahead: u32,
    ) -> Result<ForecastReport, EngineError> {
        by.privileged()?;
        let min = MIN_POINTS as u32 + 1;
        if !(min..=MAX_HISTORY).contains(&weeks) {
            let reason = format!("must be {min} to {MAX_HISTORY}");
            return Err(ValidationError::new("weeks", reason).into());
        }
        if !(1..=MAX_AHEAD).contains(&ahead) {
            let reason = format!("must be 1 to {MAX_AHEAD}");
            return Err(ValidationError::new("ahead", reason).into());
        }
        let now = self.m.now();
        let engine = self.m.engine.clone();
        background::run("roster-report", move || {
            let store = engine.store.as_ref();
            let mut changes = Vec::new();
            crate::store::audit::scan(store, |e| {
                if let AuditAction::TierChanged { user, to, from } = e.body.action {
                    let at = e.body.at;
                    changes.push(TierChange { at, user, from, to });
                }
            })?;
            let mut tiers = TierBuilder::new(now, weeks, changes);
            // The weeks the tier report counts, and their last days (today for this one).
            let today = day_of(now);
            let current = week_start(today);
            let first = current.saturating_sub(7 * (weeks - 1));
            let ends = (0..weeks)
                .map(|k| first + 7 * k)
                .filter(|s| *s <= current)
                .map(|s| (s + 6).min(today))
                .collect();
            let mut mau = MauBuilder::new(ends);
            population::scan(&engine, now, |m| {
                tiers.add(m.id, m.tier, m.created_at);
                mau.add(m);
            })?;
            let report = tiers.finish();
            let mau = mau.finish();
            let point = |i: usize, value: f64| Point {
                at: report.weeks[i].start,
                value,
            };
            // The current week is not over: its figure (as of now) would bend the trend
            // down, so only whole weeks are fitted.
            let whole = report.weeks.len().saturating_sub(1);
            let series = |f: &dyn Fn(usize) -> f64| -> Vec<Point> {
                (0..whole).map(|i| point(i, f(i))).collect()
            };
            let count =
                |i: usize, t: UserTier| report.weeks[i].users_by_tier.get(&t).copied().unwrap_or(0);
            let mut out = vec![forecast(
                "users",
                series(&|i| UserTier::ALL.iter().map(|&t| count(i, t)).sum::<u64>() as f64),
                ahead,
            )];
            for t in UserTier::ALL {
                out.push(forecast(t.as_str(), series(&|i| count(i, t) as f64), ahead));
            }
            out.push(forecast(
                "mau",
                series(&|i| mau.get(i).copied().unwrap_or(0) as f64),
                ahead,
            ));
            Ok(ForecastReport {
                generated_at: now,
                method: "Holt's linear trend (double exponential smoothing), α and β fitted on \
                         one-step errors, 95% intervals; no seasonal term"
                    .into(),
                horizon_weeks: ahead,
                series: out,
            })
        })
        .await?
    }
}
