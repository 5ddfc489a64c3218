//! Request-rate limiting: a token bucket per user (and per client address for
//! unauthenticated endpoints). The bucket holds up to `limit` requests and refills at
//! `limit` per period, so a user may burst to the hourly allowance and then continues at
//! the average rate; unlike a fixed window it never allows twice the limit across a
//! window boundary.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
}
