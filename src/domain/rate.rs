//! Request-rate limiting: a token bucket per user (and per client address for
//! unauthenticated endpoints). The bucket holds up to `limit` requests and refills at
//! `limit` per period, so a user may burst to the hourly allowance and then continues at
//! the average rate; unlike a fixed window it never allows twice the limit across a
//! window boundary.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::history::day_of;
use super::tier::Limit;
use super::time::Timestamp;

/// The outcome of taking one request from a bucket, with what the `RateLimit-*` headers
/// report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    /// Allowed.
    Allowed {
        /// The allowance per period; `None` when unlimited.
        limit: Option<u64>,
        /// Requests left right now.
        remaining: u64,
        /// Seconds until the bucket is full again.
        reset_secs: u64,
    },
    /// Refused.
    Limited {
        /// The allowance per period.
        limit: u64,
        /// Seconds until one request is allowed.
        retry_after_secs: u64,
    },
}

/// A token bucket. Starts full.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenBucket {
    /// Tokens spent below full (0 = full). Stored this way so a default bucket is full.
    spent: f64,
    /// When `spent` was last brought up to date.
    updated: Timestamp,
}

impl TokenBucket {
    /// Takes one request at `now` under `limit` per `period`.
    pub fn take(&mut self, limit: Limit, period: Duration, now: Timestamp) -> RateDecision {
        let Limit::Limited(cap) = limit else {
            return RateDecision::Allowed {
                limit: None,
                remaining: u64::MAX,
                reset_secs: 0,
            };
        };
        let cap_f = cap as f64;
        let per_sec = cap_f / period.as_secs_f64().max(1e-9);
        let elapsed = now.since(self.updated).as_secs_f64();
        self.spent = (self.spent - elapsed * per_sec).max(0.0);
        self.updated = now;
        if cap == 0 || self.spent + 1.0 > cap_f {
            let wait = if cap == 0 {
                period.as_secs_f64()
            } else {
                (self.spent + 1.0 - cap_f) / per_sec
            };
            return RateDecision::Limited {
                limit: cap,
                retry_after_secs: wait.ceil().max(1.0) as u64,
            };
        }
        self.spent += 1.0;
        RateDecision::Allowed {
            limit: Some(cap),
            remaining: (cap_f - self.spent).floor().max(0.0) as u64,
            reset_secs: (self.spent / per_sec).ceil() as u64,
        }
    }
}

/// The days on which a user's requests were refused for its tier's rate, and how often
/// each: what a tier analysis reads as "at its rate limit" over weeks, where the bucket
/// tells only of now. Soft state, like the bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateRefusals {
    /// (day since the epoch, refusals that day), oldest first, within
    /// [`RateRefusals::DAYS_KEPT`] of the newest.
    pub(crate) days: Vec<(u32, u32)>,
}

impl RateRefusals {
    /// Days kept.
    pub const DAYS_KEPT: u32 = 56;

    /// Counts a refusal at `now`. A day's count grows in place: a client hammering
    /// the limit costs no allocation.
    pub fn record(&mut self, now: Timestamp) {
        let day = day_of(now);
        if let Some(last) = self.days.last_mut()
            && last.0 >= day
        {
            // The same day (or a clock that stepped back): that day's count.
            last.1 = last.1.saturating_add(1);
            return;
        }
        let from = day.saturating_sub(Self::DAYS_KEPT - 1);
        self.days.retain(|d| d.0 >= from);
        self.days.push((day, 1));
    }

    /// Days with a refusal among days `from..end` (days since the epoch), and the
    /// refusals on them.
    pub fn within(&self, from: u32, end: u32) -> (u32, u64) {
        self.days
            .iter()
            .filter(|d| (from..end).contains(&d.0))
            .fold((0, 0), |(n, sum), d| (n + 1, sum + u64::from(d.1)))
    }

    /// Each day with a refusal among the [`RateRefusals::DAYS_KEPT`] ending at `now`,
    /// oldest first: (day since the epoch, refusals). Older ones are dropped only at the
    /// next refusal, so they are left out here.
    pub fn recent(&self, now: Timestamp) -> impl Iterator<Item = (u32, u32)> + '_ {
        let from = day_of(now).saturating_sub(Self::DAYS_KEPT - 1);
        self.days.iter().copied().filter(move |d| d.0 >= from)
    }

    /// Whether none is recorded.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_hundred_per_hour_refuses_the_hundred_and_first() {
        let mut b = TokenBucket::default();
        let t = Timestamp::from_millis(1_800_000_000_000);
        for i in 1..=100u64 {
            match b.take(Limit::Limited(100), HOUR, t) {
                RateDecision::Allowed { remaining, .. } => assert_eq!(remaining, 100 - i),
                other => panic!("request {i}: {other:?}"),
            }
        }
        assert_eq!(
            b.take(Limit::Limited(100), HOUR, t),
            RateDecision::Limited {
                limit: 100,
                retry_after_secs: 36
            }
        );
        // One request's worth refills in 36 seconds.
        let later = t.plus(Duration::from_secs(36));
        assert!(matches!(
            b.take(Limit::Limited(100), HOUR, later),
            RateDecision::Allowed { remaining: 0, .. }
        ));
        // An hour later the bucket is full again.
        let full = later.plus(HOUR);
        assert!(matches!(
            b.take(Limit::Limited(100), HOUR, full),
            RateDecision::Allowed { remaining: 99, .. }
        ));
    }

    #[test]
    fn unlimited_never_refuses() {
        let mut b = TokenBucket::default();
        let t = Timestamp::from_millis(5);
        for _ in 0..10_000 {
            assert!(matches!(
                b.take(Limit::Unlimited, HOUR, t),
                RateDecision::Allowed { limit: None, .. }
            ));
        }
    }

    #[test]
    fn refusals_are_counted_per_day_and_forgotten_after_the_days_kept() {
        let day = |d: i64| Timestamp::from_millis(d * 86_400_000 + 3_600_000);
        let mut r = RateRefusals::default();
        assert!(r.is_empty());
        for _ in 0..3 {
            r.record(day(20_000));
        }
        r.record(day(20_002));
        assert_eq!(r.within(20_000, 20_003), (2, 4));
        assert_eq!(r.within(20_001, 20_003), (1, 1));
        assert_eq!(r.within(19_000, 20_000), (0, 0));
        // A day past the days kept drops the oldest.
        r.record(day(20_000 + i64::from(RateRefusals::DAYS_KEPT)));
        assert_eq!(r.within(0, u32::MAX), (2, 2));
        // Days older than the days kept are not shown, even before the next refusal.
        let later = day(20_001 + 2 * i64::from(RateRefusals::DAYS_KEPT));
        assert_eq!(r.recent(later).count(), 0);
        assert_eq!(r.recent(day(20_056)).count(), 2);
    }
}
