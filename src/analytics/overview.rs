//! The population at a glance: users by tier, daily, weekly and monthly active users,
//! and the events counted in the last day, week and month.
//!
//! Active means any event on a day (UTC): DAU counts today, WAU the last 7 days, MAU the
//! last 30, each window ending with today. Only members who consent to analytics can be
//! active; every stored user counts in the tier figures.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Member;
use crate::domain::history::{Bucket, day_of};
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;

/// Events of every kind in a bucket.
pub(crate) fn events(b: &Bucket) -> u64 {
    [
        b.plays,
        b.skips,
        b.likes,
        b.searches,
        b.app_opens,
        b.playlists,
        b.features_used,
        b.recs_shown,
        b.recs_clicked,
    ]
    .iter()
    .map(|c| u64::from(*c))
    .sum()
}

/// Events counted in a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WindowEvents {
    /// Today.
    pub today: u64,
    /// The last 7 days.
    pub last_7_days: u64,
    /// The last 30 days.
    pub last_30_days: u64,
}

/// The overview.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Overview {
    /// When it was computed.
    pub generated_at: Timestamp,
    /// Stored users.
    pub users: u64,
    /// Stored users by tier (every tier listed).
    pub users_by_tier: BTreeMap<UserTier, u64>,
    /// Users whose activity may be analysed (the `analytics` consent).
    pub consenting: u64,
    /// Active today.
    pub dau: u64,
    /// Active in the last 7 days.
    pub wau: u64,
    /// Active in the last 30 days.
    pub mau: u64,
    /// `dau / mau` (0 when nobody was active): how much of the month's audience comes
    /// back daily.
    pub stickiness: f64,
    /// Events counted.
    pub events: WindowEvents,
    /// Minutes listened in the last 30 days.
    pub listening_minutes_30_days: u64,
}

/// Builds the overview from members handed in one at a time.
#[derive(Debug)]
pub struct OverviewBuilder {
    today: u32,
    o: Overview,
}

impl OverviewBuilder {
    /// A builder as of `now`.
    pub fn new(now: Timestamp) -> Self {
        Self {
            today: day_of(now),
            o: Overview {
                generated_at: now,
                users_by_tier: UserTier::ALL.iter().map(|t| (*t, 0)).collect(),
                ..Overview::default()
            },
        }
    }

    /// Counts a member.
    pub fn add(&mut self, m: &Member<'_>) {
        let o = &mut self.o;
        o.users += 1;
        *o.users_by_tier.entry(m.tier).or_default() += 1;
        if !m.consented {
            return;
        }
        o.consenting += 1;
        let end = self.today + 1;
        let h = m.history;
        let [day, week, month] = h.windows([
            (self.today, end),
            (end.saturating_sub(7), end),
            (end.saturating_sub(30), end),
        ]);
        o.dau += u64::from(day.active_days > 0);
        o.wau += u64::from(week.active_days > 0);
        o.mau += u64::from(month.active_days > 0);
        o.events.today += events(&day.sum);
        o.events.last_7_days += events(&week.sum);
        o.events.last_30_days += events(&month.sum);
        o.listening_minutes_30_days += u64::from(month.sum.listening_secs) / 60;
    }

    /// The overview.
    pub fn finish(mut self) -> Overview {
        let o = &mut self.o;
        o.stickiness = if o.mau == 0 {
            0.0
        } else {
            o.dau as f64 / o.mau as f64
        };
        self.o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::activity::ActivityEvent;
    use crate::domain::history::ActivityHistory;
    use crate::domain::ids::UserId;

    const TODAY: u32 = 20_780;

    fn searches(days_ago: &[u32]) -> ActivityHistory {
        let mut h = ActivityHistory::default();
        for d in days_ago {
            let at = Timestamp::from_millis(i64::from(TODAY - d) * 86_400_000 + 1000);
            h.record(&[ActivityEvent::Searched { at }]);
        }
        h
    }

    #[test]
    fn dau_wau_mau_and_tiers() {
        let now = Timestamp::from_millis(i64::from(TODAY) * 86_400_000 + 3_600_000);
        let people = [
            (UserTier::Free, true, searches(&[0, 1])),
            (UserTier::Free, true, searches(&[6])),
            (UserTier::Premium, true, searches(&[29])),
            (UserTier::Vip, true, searches(&[30])),
            (UserTier::Vip, false, searches(&[0])),
        ];
        let mut b = OverviewBuilder::new(now);
        for (tier, consented, history) in &people {
            b.add(&Member {
                id: UserId::generate(),
                tier: *tier,
                created_at: Timestamp::EPOCH,
                consented: *consented,
                history,
                taste: None,
                feedback: None,
                usage: &crate::domain::profile::UsageCounters::ZERO,
                refusals: None,
            });
        }
        let o = b.finish();
        assert_eq!(o.users, 5);
        assert_eq!(o.users_by_tier[&UserTier::Free], 2);
        assert_eq!(o.users_by_tier[&UserTier::Enterprise], 0);
        assert_eq!(o.users_by_tier[&UserTier::Vip], 2);
        assert_eq!(o.consenting, 4);
        assert_eq!((o.dau, o.wau, o.mau), (1, 2, 3));
        assert_eq!(o.events.today, 1);
        assert_eq!(o.events.last_7_days, 3);
        assert_eq!(o.events.last_30_days, 4);
        assert!((o.stickiness - 1.0 / 3.0).abs() < 1e-12);
    }
}
