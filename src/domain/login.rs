//! The login decision: what a password login comes to, as a pure rule over what the
//! user's actor knows at that moment.
//!
//! ```text
//!               locked? ── yes, and not (right password from a known device) ──▶ Locked
//!                 │ no
//!   right password, current credential? ── no ──▶ Rejected
//!                 │ yes
//!       risk engine denies? ── yes ──▶ RiskDenied
//!                 │ no
//!   zero-trust tier ▶ Challenge(ZeroTrustTier)
//!   settings require MFA ▶ Challenge(RequiredBySettings)
//!   risk asks for MFA ▶ Challenge(Risk)
//!   otherwise ▶ Grant
//! ```
//!
//! The lock never keeps the real user out: the right password from a device the account
//! has logged in from before still gets through (kanidm's softlock makes the same choice
//! for its trusted devices).

use serde::Serialize;

use super::lockout::FailureState;
use super::risk::RiskDecision;
use super::time::Timestamp;

/// Why a login needs a second factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeReason {
    /// The user's settings require MFA.
    RequiredBySettings,
    /// The user's tier is zero-trust: every login needs MFA.
    ZeroTrustTier,
    /// The risk engine scored the login at or above the user's threshold.
    Risk,
    /// A passwordless login: the passkey is the proof.
    Passwordless,
}

impl ChallengeReason {
    /// Stable name, as on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RequiredBySettings => "required_by_settings",
            Self::ZeroTrustTier => "zero_trust_tier",
            Self::Risk => "risk",
            Self::Passwordless => "passwordless",
        }
    }
}

/// What the first factor came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstFactor {
    /// The password was right for the current credential: the risk engine is next.
    Passed,
    /// The account is locked (the attempt counts as a failure if the password was
    /// wrong).
    Locked,
    /// Wrong password, or one checked against a credential that changed since.
    Rejected,
}

/// The first step of the ladder: the lock, then the password. `password_ok` is the
/// outcome of the argon2 check, `credential_current` whether the hash it was checked
/// against is still the user's, `known_device` whether the client's device has logged in
/// to this account before.
pub(crate) fn first_factor(
    failures: &FailureState,
    password_ok: bool,
    credential_current: bool,
    known_device: bool,
    now: Timestamp,
) -> FirstFactor {
    if failures.is_locked(now) && !(password_ok && known_device) {
        return FirstFactor::Locked;
    }
    if !password_ok || !credential_current {
        return FirstFactor::Rejected;
    }
    FirstFactor::Passed
}

/// What a login whose password passed comes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterPassword {
    /// The risk engine refused it.
    RiskDenied,
    /// A second factor must follow, for this reason.
    Challenge(ChallengeReason),
    /// A session may be opened.
    Grant,
}

/// The rest of the ladder, once the risk engine has scored the login.
pub(crate) fn after_password(
    zero_trust: bool,
    require_mfa: bool,
    risk: RiskDecision,
) -> AfterPassword {
    if risk == RiskDecision::Deny {
        return AfterPassword::RiskDenied;
    }
    let reason = if zero_trust {
        Some(ChallengeReason::ZeroTrustTier)
    } else if require_mfa {
        Some(ChallengeReason::RequiredBySettings)
    } else if risk == RiskDecision::RequireMfa {
        Some(ChallengeReason::Risk)
    } else {
        None
    };
    reason.map_or(AfterPassword::Grant, AfterPassword::Challenge)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::lockout::LockoutPolicy;

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            free_attempts: 2,
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(60),
            window: Duration::from_secs(3600),
        }
    }

    #[test]
    fn a_lock_stops_guessing_but_not_the_owner_on_a_known_device() {
        let t0 = Timestamp::from_millis(1_000_000);
        let mut f = FailureState::default();
        assert_eq!(first_factor(&f, true, true, false, t0), FirstFactor::Passed);
        assert_eq!(
            first_factor(&f, false, true, false, t0),
            FirstFactor::Rejected
        );
        for _ in 0..3 {
            f.record_failure(&policy(), t0);
        }
        assert!(f.is_locked(t0));
        // Locked: the right password from a new device, and any wrong one, are refused…
        assert_eq!(first_factor(&f, true, true, false, t0), FirstFactor::Locked);
        assert_eq!(first_factor(&f, false, true, true, t0), FirstFactor::Locked);
        // …the right one from a device the account knows gets through.
        assert_eq!(first_factor(&f, true, true, true, t0), FirstFactor::Passed);
        // The lock clears by itself.
        let later = t0.plus(Duration::from_secs(61));
        assert_eq!(
            first_factor(&f, true, true, false, later),
            FirstFactor::Passed
        );
        // A password checked against a credential changed since does not pass.
        assert_eq!(
            first_factor(&f, true, false, true, later),
            FirstFactor::Rejected
        );
    }

    #[test]
    fn the_strictest_reason_for_a_second_factor_is_named() {
        use RiskDecision::{Allow, Deny, RequireMfa};
        assert_eq!(after_password(false, false, Allow), AfterPassword::Grant);
        assert_eq!(
            after_password(false, false, RequireMfa),
            AfterPassword::Challenge(ChallengeReason::Risk)
        );
        assert_eq!(
            after_password(false, true, RequireMfa),
            AfterPassword::Challenge(ChallengeReason::RequiredBySettings)
        );
        assert_eq!(
            after_password(true, true, Allow),
            AfterPassword::Challenge(ChallengeReason::ZeroTrustTier)
        );
        // A denial wins over everything, zero trust included.
        assert_eq!(after_password(true, true, Deny), AfterPassword::RiskDenied);
    }
}
