//! Retention cohorts: users grouped by the calendar week (Monday, UTC) or month of their
//! sign-up; for each cohort, the share of its members active in each period after it.
//!
//! The convention is Amplitude's and PostHog's N-period retention on calendar periods:
//! period 0 is the sign-up period itself and is 100% by definition; period `i` is the
//! `i`-th calendar period after it, and a member counts in it if it did anything in it.
//! A period that has not ended yet (today is inside it or before it) has no figure
//! (`null`), so the table is the familiar triangle. Activity older than five weeks is
//! kept by week, so for month cohorts such a week counts in the month of its Monday.
//! The tier filter is on the member's tier now.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Member;
use crate::domain::consent::Date;
use crate::domain::history::{day_of, day_start, week_start};
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;

/// Most periods a table may have (weeks: the two years of history kept).
pub const MAX_PERIODS: u32 = 104;

/// Most periods of a month table.
pub const MAX_MONTHS: u32 = 24;

/// The length of a cohort and of its periods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Calendar weeks, Monday to Sunday, UTC.
    Week,
    /// Calendar months, UTC.
    Month,
}

/// Which table to build.
#[derive(Clone, Copy, Debug)]
pub struct CohortQuery {
    /// Weeks or months.
    pub unit: Unit,
    /// How many periods (columns) and cohorts (rows): 1 to [`MAX_PERIODS`].
    pub periods: u32,
    /// Only members of this tier (now).
    pub tier: Option<UserTier>,
}

/// One cohort's row.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Cohort {
    /// The first instant of the cohort's period.
    pub start: Timestamp,
    /// Members who signed up in it.
    pub size: u64,
    /// `retention[i]`: the share of the members active in period `i` (period 0 is 1.0);
    /// `null` where the period has not ended or the cohort is empty.
    pub retention: Vec<Option<f64>>,
    /// `active[i]`: how many members were active in period `i` (counted so far for a
    /// period still running).
    pub active: Vec<u64>,
}

/// The table.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CohortTable {
    /// Weeks or months.
    pub unit: Unit,
    /// Periods per row.
    pub periods: u32,
    /// The tier filter, if any.
    pub tier: Option<UserTier>,
    /// The cohorts, oldest first: the last `periods` ones, up to the current.
    pub cohorts: Vec<Cohort>,
}

/// A period: the day it starts, as days since 1970-01-01.
fn period_start(unit: Unit, origin: u32, i: u32) -> u32 {
    match unit {
        Unit::Week => origin + 7 * i,
        Unit::Month => {
            let d = Date::of(day_start(origin));
            let months = i64::from(d.year) * 12 + i64::from(d.month) - 1 + i64::from(i);
            first_of_month(
                months.div_euclid(12) as i32,
                (months.rem_euclid(12) + 1) as u8,
            )
        }
    }
}

/// The start of the period holding `day`.
fn period_of(unit: Unit, day: u32) -> u32 {
    match unit {
        Unit::Week => week_start(day),
        Unit::Month => {
            let d = Date::of(day_start(day));
            first_of_month(d.year, d.month)
        }
    }
}

/// Days since 1970-01-01 of the first of a month (the inverse of Howard Hinnant's
/// civil-from-days, as [`Date::of`] uses).
fn first_of_month(year: i32, month: u8) -> u32 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468).clamp(0, i64::from(u32::MAX)) as u32
}

/// Builds a table from members handed in one at a time.
#[derive(Debug)]
pub struct CohortBuilder {
    query: CohortQuery,
    today: u32,
    /// Cohort start day → (size, members active per period).
    rows: BTreeMap<u32, (u64, Vec<u64>)>,
}

impl CohortBuilder {
    /// A builder for `query` as of `now`. `periods` must be 1 to [`MAX_PERIODS`].
    pub fn new(query: CohortQuery, now: Timestamp) -> Self {
        let today = day_of(now);
        let current = period_of(query.unit, today);
        let mut rows = BTreeMap::new();
        let periods = query.periods.clamp(1, MAX_PERIODS);
        // The first cohort: `periods − 1` periods before the current one.
        let mut start = current;
        for _ in 1..periods {
            start = period_of(query.unit, start.saturating_sub(1));
        }
        let mut s = start;
        while s <= current {
            rows.insert(s, (0, vec![0; periods as usize]));
            s = period_start(query.unit, s, 1);
        }
        Self {
            query: CohortQuery { periods, ..query },
            today,
            rows,
        }
    }

    /// Counts a member (ignored unless it consented, matches the tier filter and
    /// signed up within the table).
    pub fn add(&mut self, m: &Member<'_>) {
        if !m.consented || self.query.tier.is_some_and(|t| t != m.tier) {
            return;
        }
        let unit = self.query.unit;
        let cohort = period_of(unit, day_of(m.created_at));
        let Some((size, active)) = self.rows.get_mut(&cohort) else {
            return;
        };
        *size += 1;
        active[0] += 1;
        let mut seen = vec![false; active.len()];
        seen[0] = true;
        for b in m.history.weeks.iter().chain(m.history.days.iter()) {
            if b.day < cohort {
                continue;
            }
            let p = period_of(unit, b.day);
            let i = match unit {
                Unit::Week => (p - cohort) / 7,
                Unit::Month => months_between(cohort, p),
            } as usize;
            if let Some(s) = seen.get_mut(i)
                && !*s
            {
                *s = true;
                active[i] += 1;
            }
        }
    }

    /// The table.
    pub fn finish(self) -> CohortTable {
        let unit = self.query.unit;
        let cohorts = self
            .rows
            .into_iter()
            .map(|(start, (size, active))| {
                let retention = active
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        let end = period_start(unit, start, i as u32 + 1);
                        (size > 0 && end <= self.today).then(|| *a as f64 / size as f64)
                    })
                    .enumerate()
                    .map(|(i, r)| if i == 0 && size > 0 { Some(1.0) } else { r })
                    .collect();
                Cohort {
                    start: day_start(start),
                    size,
                    retention,
                    active,
                }
            })
            .collect();
        CohortTable {
            unit,
            periods: self.query.periods,
            tier: self.query.tier,
            cohorts,
        }
    }
}

fn months_between(from: u32, to: u32) -> u32 {
    let (a, b) = (Date::of(day_start(from)), Date::of(day_start(to)));
    let m = (i64::from(b.year) - i64::from(a.year)) * 12 + i64::from(b.month) - i64::from(a.month);
    m.max(0) as u32
}

#[cfg(test)]
mod tests;
