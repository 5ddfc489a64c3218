//! Tier analytics: how many users each tier had at the end of each of the last weeks,
//! and the migrations between tiers week by week — from the stored users (their tier
//! now and sign-up) and the audit log's tier changes.
//!
//! A user's tier at a moment is the `to` of its last change before it; before its first
//! change, that change's `from`; a user who never changed has always had its tier now.
//! Tier changes audited by earlier builds did not record `from`: a user whose first
//! change is one of them counts as `unknown` until that change. Users deleted since are
//! not in the store any more: they count in no week's figures, while their changes stay
//! among the migrations.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::domain::history::{day_of, day_start, week_start};
use crate::domain::ids::UserId;
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;

/// A tier change, as the audit log records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TierChange {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub user: UserId,
    /// The tier before, if recorded.
    pub from: Option<UserTier>,
    /// The tier after.
    pub to: UserTier,
}

/// Changes from one tier to another in a week.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Migration {
    /// The tier before (`null` where an earlier build did not record it).
    pub from: Option<UserTier>,
    /// The tier after.
    pub to: UserTier,
    /// How many changes.
    pub count: u64,
}

/// One week.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TierWeek {
    /// Its Monday, 00:00 UTC.
    pub start: Timestamp,
    /// Users by tier at the week's end (for the current week: now); every tier listed.
    pub users_by_tier: BTreeMap<UserTier, u64>,
    /// Users whose tier then is not known (see the module documentation).
    pub unknown: u64,
    /// The tier changes of the week.
    pub migrations: Vec<Migration>,
}

/// The report.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TierReport {
    /// The weeks, oldest first, up to the current one.
    pub weeks: Vec<TierWeek>,
}

/// Builds the report from members handed in one at a time.
#[derive(Debug)]
pub struct TierBuilder {
    /// Each week's start and the instant its figures are taken at.
    weeks: Vec<(u32, Timestamp)>,
    changes: HashMap<UserId, Vec<TierChange>>,
    counts: Vec<(BTreeMap<UserTier, u64>, u64)>,
    migrations: Vec<BTreeMap<(Option<UserTier>, UserTier), u64>>,
}

impl TierBuilder {
    /// The last `weeks` weeks as of `now`, with every tier change of the audit log (in
    /// any order).
    pub fn new(now: Timestamp, weeks: u32, mut changes: Vec<TierChange>) -> Self {
        let current = week_start(day_of(now));
        let first = current.saturating_sub(7 * (weeks.max(1) - 1));
        let weeks: Vec<(u32, Timestamp)> = (0..weeks.max(1))
            .map(|k| first + 7 * k)
            .filter(|s| *s <= current)
            .map(|s| {
                // The last instant of the week (a change at next Monday 00:00 is the
                // next week's, as its migration is).
                let end = Timestamp::from_millis(day_start(s + 7).as_millis() - 1);
                (s, end.min(now))
            })
            .collect();
        changes.sort_by_key(|c| c.at);
        let mut migrations = vec![BTreeMap::new(); weeks.len()];
        let mut by_user: HashMap<UserId, Vec<TierChange>> = HashMap::new();
        for c in changes {
            let w = week_start(day_of(c.at));
            if let Some(k) = weeks.iter().position(|(s, _)| *s == w) {
                *migrations[k].entry((c.from, c.to)).or_insert(0) += 1;
            }
            by_user.entry(c.user).or_default().push(c);
        }
        let tiers: BTreeMap<UserTier, u64> = UserTier::ALL.iter().map(|t| (*t, 0)).collect();
        Self {
            counts: vec![(tiers, 0); weeks.len()],
            weeks,
            changes: by_user,
            migrations,
        }
    }

    /// Counts a stored user: its tier now and its sign-up.
    pub fn add(&mut self, user: UserId, tier: UserTier, created_at: Timestamp) {
        let changes = self.changes.get(&user).map_or(&[][..], Vec::as_slice);
        for (k, (_, at)) in self.weeks.iter().enumerate() {
            // Figures are taken at `at`, what happened at that instant included.
            if created_at > *at {
                continue;
            }
            let then = match changes.iter().rev().find(|c| c.at <= *at) {
                Some(c) => Some(c.to),
                None => match changes.first() {
                    Some(c) => c.from,
                    None => Some(tier),
                },
            };
            match then {
                Some(t) => *self.counts[k].0.entry(t).or_insert(0) += 1,
                None => self.counts[k].1 += 1,
            }
        }
    }

    /// The report.
    pub fn finish(self) -> TierReport {
        let weeks = self
            .weeks
            .iter()
            .zip(self.counts)
            .zip(self.migrations)
            .map(|(((start, _), (users_by_tier, unknown)), m)| TierWeek {
                start: day_start(*start),
                users_by_tier,
                unknown,
                migrations: m
                    .into_iter()
                    .map(|((from, to), count)| Migration { from, to, count })
                    .collect(),
            })
            .collect();
        TierReport { weeks }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-02, a Monday.
    const NOV_2: u32 = 20_759;

    fn at(day: u32) -> Timestamp {
        Timestamp::from_millis(day_start(day).as_millis() + 3_600_000)
    }

    #[test]
    fn weekly_tiers_and_migrations_by_hand() {
        let (a, b, c, d) = (
            UserId::generate(),
            UserId::generate(),
            UserId::generate(),
            UserId::generate(),
        );
        let changes = vec![
            // a: Free → Premium in week 2, → VIP in week 3.
            TierChange {
                at: at(NOV_2 + 15),
                user: a,
                from: Some(UserTier::Premium),
                to: UserTier::Vip,
            },
            TierChange {
                at: at(NOV_2 + 8),
                user: a,
                from: Some(UserTier::Free),
                to: UserTier::Premium,
            },
            // b: an old record without `from`, in week 1.
            TierChange {
                at: at(NOV_2 + 2),
                user: b,
                from: None,
                to: UserTier::Enterprise,
            },
        ];
        // Wednesday of the fourth week.
        let now = at(NOV_2 + 23);
        let mut t = TierBuilder::new(now, 4, changes);
        t.add(a, UserTier::Vip, at(NOV_2 - 30));
        t.add(b, UserTier::Enterprise, at(NOV_2 - 30));
        t.add(c, UserTier::Free, at(NOV_2 - 30));
        // d signs up in week 3.
        t.add(d, UserTier::Premium, at(NOV_2 + 16));
        let r = t.finish();
        assert_eq!(r.weeks.len(), 4);
        assert_eq!(day_of(r.weeks[0].start), NOV_2);
        let tiers = |k: usize| {
            let w = &r.weeks[k];
            (UserTier::ALL.map(|t| w.users_by_tier[&t]), w.unknown)
        };
        // End of week 1: a Free, b Enterprise, c Free.
        assert_eq!(tiers(0), ([2, 0, 1, 0], 0));
        // End of week 2: a Premium.
        assert_eq!(tiers(1), ([1, 1, 1, 0], 0));
        // End of week 3: a VIP, d Premium.
        assert_eq!(tiers(2), ([1, 1, 1, 1], 0));
        assert_eq!(tiers(3), ([1, 1, 1, 1], 0));
        assert_eq!(
            r.weeks[1].migrations,
            [Migration {
                from: Some(UserTier::Free),
                to: UserTier::Premium,
                count: 1
            }]
        );
        assert_eq!(r.weeks[0].migrations[0].from, None);
        assert!(r.weeks[3].migrations.is_empty());
        // Before b's unrecorded change its tier is unknown.
        let mut t = TierBuilder::new(
            at(NOV_2 + 1),
            1,
            vec![TierChange {
                at: at(NOV_2 + 2),
                user: b,
                from: None,
                to: UserTier::Enterprise,
            }],
        );
        t.add(b, UserTier::Enterprise, at(NOV_2 - 30));
        assert_eq!(t.finish().weeks[0].unknown, 1);
    }
}
