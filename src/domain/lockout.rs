//! Brute-force protection for one account: failures within a window are counted, and
//! past a free allowance each failure locks the account for a doubling delay, capped.
//! The lock clears by itself, so an attacker cannot keep a real user out for long.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::time::Timestamp;

/// The lockout rule, from config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures allowed within the window before any delay.
    pub free_attempts: u32,
    /// The first lock's length; each further failure doubles it.
    pub base_delay: Duration,
    /// The longest lock.
    pub max_delay: Duration,
    /// Failures older than this are forgotten.
    pub window: Duration,
}

/// An account's failure record (soft state of the user's actor).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureState {
    /// Failures in the current window.
    pub failures: u32,
    /// When the current window began.
    pub window_start: Timestamp,
    /// The account refuses logins until then.
    pub locked_until: Timestamp,
}

impl FailureState {
    /// Whether the account is locked at `now`.
    pub fn is_locked(&self, now: Timestamp) -> bool {
        now < self.locked_until
    }

    /// Counts a failed login at `now`, locking the account when past the allowance.
    pub fn record_failure(&mut self, policy: &LockoutPolicy, now: Timestamp) {
        if now.since(self.window_start) >= policy.window {
            self.failures = 0;
            self.window_start = now;
        }
        self.failures = self.failures.saturating_add(1);
        if let Some(over) = self
            .failures
            .checked_sub(policy.free_attempts)
            .filter(|&n| n > 0)
        {
            let factor = 1u32.checked_shl(over - 1).unwrap_or(u32::MAX);
            let delay = policy
                .base_delay
                .saturating_mul(factor)
                .min(policy.max_delay);
            self.locked_until = now.plus(delay);
        }
    }

    /// Clears the record after a successful login.
    pub fn reset(&mut self) {
        *self = FailureState::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: LockoutPolicy = LockoutPolicy {
        free_attempts: 3,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(60),
        window: Duration::from_secs(3600),
    };

    #[test]
    fn locks_after_the_allowance_with_doubling_capped_delay() {
        let mut s = FailureState::default();
        let t = Timestamp::from_millis(10_000_000);
        for _ in 0..3 {
            s.record_failure(&POLICY, t);
            assert!(!s.is_locked(t));
        }
        s.record_failure(&POLICY, t);
        assert!(s.is_locked(t));
        assert_eq!(s.locked_until, t.plus(Duration::from_secs(1)));
        s.record_failure(&POLICY, t);
        assert_eq!(s.locked_until, t.plus(Duration::from_secs(2)));
        for _ in 0..40 {
            s.record_failure(&POLICY, t);
        }
        assert_eq!(s.locked_until, t.plus(Duration::from_secs(60)), "capped");
        assert!(
            !s.is_locked(t.plus(Duration::from_secs(60))),
            "clears by itself"
        );
    }

    #[test]
    fn the_default_policy_allows_far_fewer_than_a_hundred_guesses_an_hour() {
        // config/default.toml: 5 free attempts, 1 s doubling to 15 min, 1 h window.
        let policy = LockoutPolicy {
            free_attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(900),
            window: Duration::from_secs(3600),
        };
        // An attacker guesses the moment each lock ends, for an hour.
        let start = Timestamp::from_millis(1_000_000_000);
        let end = start.plus(Duration::from_secs(3600));
        let (mut s, mut now, mut guesses) = (FailureState::default(), start, 0);
        while now < end {
            if s.is_locked(now) {
                now = s.locked_until;
                continue;
            }
            s.record_failure(&policy, now);
            guesses += 1;
        }
        assert!(guesses <= 100, "{guesses} guesses in an hour");
        assert!(
            guesses >= 10,
            "the allowance is not absurdly strict either: {guesses}"
        );
        // And no lock outlasts the cap.
        assert!(s.locked_until <= end.plus(policy.max_delay));
    }

    #[test]
    fn window_expiry_and_success_reset_the_count() {
        let mut s = FailureState::default();
        let t = Timestamp::from_millis(10_000_000);
        for _ in 0..3 {
            s.record_failure(&POLICY, t);
        }
        let later = t.plus(Duration::from_secs(3600));
        s.record_failure(&POLICY, later);
        assert_eq!(s.failures, 1);
        assert!(!s.is_locked(later));
        s.reset();
        assert_eq!(s, FailureState::default());
    }
}
