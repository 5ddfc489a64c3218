//! Per-address limits for the unauthenticated endpoints (sign-up, login), against
//! credential stuffing and sign-up floods. One token bucket per client address in a
//! dashmap; when the map grows past its bound, buckets idle for a whole period (which
//! are full again, so forgetting them changes nothing) are dropped.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;

use crate::domain::rate::{RateDecision, TokenBucket};
use crate::domain::tier::Limit;
use crate::domain::time::{Clock, Timestamp};

/// Addresses tracked before idle ones are swept.
const MAX_TRACKED: usize = 100_000;

/// The limiter.
pub(crate) struct IpLimiter {
    buckets: DashMap<IpAddr, (TokenBucket, Timestamp)>,
    limit: Limit,
    period: Duration,
    clock: Arc<dyn Clock>,
}

impl IpLimiter {
    /// `limit` requests per `period` per address.
    pub(crate) fn new(limit: Limit, period: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            buckets: DashMap::new(),
            limit,
            period,
            clock,
        }
    }

    /// Counts one request from `ip`.
    pub(crate) fn check(&self, ip: IpAddr) -> RateDecision {
        let now = self.clock.now();
        if self.buckets.len() >= MAX_TRACKED {
            let period = self.period;
            self.buckets
                .retain(|_, (_, seen)| now.since(*seen) < period);
        }
        let mut entry = self.buckets.entry(ip).or_default();
        entry.1 = now;
        entry.0.take(self.limit, self.period, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::ManualClock;

    #[test]
    fn each_address_has_its_own_allowance() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
        let l = IpLimiter::new(
            Limit::Limited(2),
            Duration::from_secs(60),
            Arc::new(clock.clone()),
        );
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(matches!(l.check(a), RateDecision::Allowed { .. }));
        assert!(matches!(l.check(a), RateDecision::Allowed { .. }));
        assert!(matches!(l.check(a), RateDecision::Limited { .. }));
        assert!(matches!(l.check(b), RateDecision::Allowed { .. }));
        clock.advance(Duration::from_secs(60));
        assert!(matches!(l.check(a), RateDecision::Allowed { .. }));
    }
}
