//! The usage report of a period (`roster generate-analytics`): day by day, the sign-ups
//! by tier, the active users, the logins and the other security events, and the risk
//! engine's decisions; over the period, feature usage; as of now, the engagement
//! distribution.
//!
//! - **Sign-ups** count the stored users created that day (users deleted since are not
//!   in the store any more).
//! - **Active users** of a day are those consenting to analytics with activity that day.
//!   A history keeps days for five weeks before folding them into weeks, so a day more
//!   than [`DAYS_KEPT`] days ago has no exact figure: it is `null`.
//! - **Security events** are every user's recorded events of the day (those still in the
//!   record and those archived from it) by kind; `login_succeeded` are the logins. The
//!   **risk decisions** are the decisions of the events that carry the risk engine's
//!   assessment (logins and session context changes). These are security records, kept
//!   whatever the analytics consent; only their counts leave.
//! - **Feature usage** is per tier feature: consenting users who used it in the period
//!   (their latest use falls in it), and lifetime uses and users.
//! - **Engagement** is the distribution of the consenting users' scores now, in bins of
//!   ten (`docs/analytics.md` has the formula).

use std::collections::BTreeMap;

use serde::Serialize;

use super::Member;
use crate::domain::engagement;
use crate::domain::history::{DAYS_KEPT, day_of, day_start};
use crate::domain::security_log::SecurityEvent;
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;

/// Longest period a report covers, in days.
pub const MAX_DAYS: u32 = 366;

/// One day of the period.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UsageDay {
    /// Its start (00:00 UTC).
    pub day: Timestamp,
    /// Users who signed up that day, by tier (every tier listed).
    pub signups: BTreeMap<UserTier, u64>,
    /// Consenting users active that day; `null` where only weekly figures are kept.
    pub active_users: Option<u64>,
    /// Security events of the day by kind (kinds with none left out).
    pub security_events: BTreeMap<String, u64>,
    /// Risk decisions of the day: `allow`, `require_mfa`, `deny` (those with none left
    /// out).
    pub risk_decisions: BTreeMap<String, u64>,
}

/// One tier feature's use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FeatureUsage {
    /// The feature.
    pub feature: String,
    /// Consenting users whose latest use fell in the period.
    pub users_in_period: u64,
    /// Of them, by tier (tiers with none left out).
    pub users_in_period_by_tier: BTreeMap<UserTier, u64>,
    /// Consenting users who ever used it.
    pub users: u64,
    /// Their uses, all time.
    pub uses: u64,
}

/// A bin of the engagement distribution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EngagementBin {
    /// Lowest score in the bin.
    pub from: u8,
    /// Highest score in the bin.
    pub to: u8,
    /// Users.
    pub users: u64,
}

/// The engagement distribution.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EngagementDistribution {
    /// Users scored (consenting).
    pub users: u64,
    /// Their mean score (0 when none).
    pub mean: f64,
    /// Their median score (0 when none).
    pub median: u8,
    /// Bins 0–9, 10–19, …, 90–100.
    pub bins: Vec<EngagementBin>,
}

/// The report.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    /// When it was made.
    pub generated_at: Timestamp,
    /// The period's first day.
    pub from: Timestamp,
    /// The period's last day (included).
    pub to: Timestamp,
    /// Sign-ups in the period.
    pub signups: u64,
    /// Logins in the period.
    pub logins: u64,
    /// Each day of the period, oldest first.
    pub days: Vec<UsageDay>,
    /// Tier features by users in the period, most used first.
    pub features: Vec<FeatureUsage>,
    /// The engagement distribution now.
    pub engagement: EngagementDistribution,
}

/// Builds the report from members and security events handed in one at a time.
pub struct UsageBuilder {
    now: Timestamp,
    from: u32,
    days: Vec<UsageDay>,
    /// The first day with exact activity figures.
    exact_from: u32,
    features: BTreeMap<String, FeatureUsage>,
    scores: [u64; 101],
}

impl UsageBuilder {
    /// A report of days `from..=to` as of `now` (callers check the period).
    pub fn new(now: Timestamp, from: u32, to: u32) -> Self {
        let today = day_of(now);
        let exact_from = (today + 1).saturating_sub(DAYS_KEPT);
        let days = (from..=to)
            .map(|d| UsageDay {
                day: day_start(d),
                signups: UserTier::ALL.iter().map(|t| (*t, 0)).collect(),
                active_users: (d >= exact_from).then_some(0),
                security_events: BTreeMap::new(),
                risk_decisions: BTreeMap::new(),
            })
            .collect();
        Self {
            now,
            from,
            days,
            exact_from,
            features: BTreeMap::new(),
            scores: [0; 101],
        }
    }

    fn day(&mut self, d: u32) -> Option<&mut UsageDay> {
        let i = usize::try_from(d.checked_sub(self.from)?).ok()?;
        self.days.get_mut(i)
    }

    /// Counts a stored user.
    pub fn add(&mut self, m: &Member<'_>) {
        if let Some(day) = self.day(day_of(m.created_at)) {
            *day.signups.entry(m.tier).or_insert(0) += 1;
        }
        if !m.consented {
            return;
        }
        let first = self.from.max(self.exact_from);
        let last = self.from + self.days.len() as u32;
        for b in m.history.days.iter() {
            if (first..last).contains(&b.day)
                && b.active_days() > 0
                && let Some(n) = self.day(b.day).and_then(|d| d.active_users.as_mut())
            {
                *n += 1;
            }
        }
        let (start, end) = (day_start(self.from), day_start(last));
        for u in m.history.features.iter() {
            let f = self
                .features
                .entry(u.feature.clone())
                .or_insert_with(|| FeatureUsage {
                    feature: u.feature.clone(),
                    users_in_period: 0,
                    users_in_period_by_tier: BTreeMap::new(),
                    users: 0,
                    uses: 0,
                });
            f.users += 1;
            f.uses += u.count;
            if u.last_used_at >= start && u.last_used_at < end {
                f.users_in_period += 1;
                *f.users_in_period_by_tier.entry(m.tier).or_insert(0) += 1;
            }
        }
        let score = engagement::score(m.history, self.now).score;
        self.scores[usize::from(score.min(100))] += 1;
    }

    /// Counts a recorded security event (any user's, in the record or archived).
    pub fn add_security(&mut self, e: &SecurityEvent) {
        let Some(day) = self.day(day_of(e.at)) else {
            return;
        };
        *day.security_events
            .entry(e.kind.as_str().to_owned())
            .or_insert(0) += 1;
        if let Some(r) = &e.risk {
            *day.risk_decisions
                .entry(r.decision.as_str().to_owned())
                .or_insert(0) += 1;
        }
    }

    /// The report.
    pub fn finish(self) -> UsageReport {
        let users: u64 = self.scores.iter().sum();
        let total: u64 = self
            .scores
            .iter()
            .enumerate()
            .map(|(s, n)| s as u64 * n)
            .sum();
        let median = {
            let (mut seen, half) = (0, users.div_ceil(2));
            self.scores
                .iter()
                .position(|n| {
                    seen += n;
                    users > 0 && seen >= half
                })
                .unwrap_or(0) as u8
        };
        let bins = (0..10u8)
            .map(|b| {
                let (from, to) = (b * 10, if b == 9 { 100 } else { b * 10 + 9 });
                EngagementBin {
                    from,
                    to,
                    users: self.scores[usize::from(from)..=usize::from(to)]
                        .iter()
                        .sum(),
                }
            })
            .collect();
        let mut features: Vec<FeatureUsage> = self.features.into_values().collect();
        features.sort_by(|a, b| {
            b.users_in_period
                .cmp(&a.users_in_period)
                .then(b.users.cmp(&a.users))
                .then(a.feature.cmp(&b.feature))
        });
        UsageReport {
            generated_at: self.now,
            from: day_start(self.from),
            to: day_start(self.from + self.days.len() as u32 - 1),
            signups: self.days.iter().flat_map(|d| d.signups.values()).sum(),
            logins: self
                .days
                .iter()
                .filter_map(|d| d.security_events.get("login_succeeded"))
                .sum(),
            days: self.days,
            features,
            engagement: EngagementDistribution {
                users,
                mean: if users == 0 {
                    0.0
                } else {
                    total as f64 / users as f64
                },
                median,
                bins,
            },
        }
    }
}

#[cfg(test)]
mod tests;
