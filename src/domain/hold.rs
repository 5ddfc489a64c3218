//! An operator's hold on an account, a lever of incident response (issue 24): the
//! account locked (no login completes until an operator unlocks it), or a new password
//! required (the old one no longer logs in; the user sets a new one through an emailed
//! link). Kept in the user's state; plain data and the rules over it.

use serde::{Deserialize, Serialize};

use super::time::Timestamp;

/// The refusal of a login to a locked account.
pub const LOCKED: &str = "this account is locked by an operator; contact support";
/// The refusal of a login to an account that must set a new password.
pub const RESET_REQUIRED: &str = "this account needs a new password: follow the link emailed to \
     it to set one";

/// What an operator holds an account to. Empty (and not stored) for almost every user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountHold {
    /// Locked by an operator since then: no login completes.
    pub locked_at: Option<Timestamp>,
    /// A new password required since then: no login completes until one is set.
    pub reset_required_at: Option<Timestamp>,
}

impl AccountHold {
    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.locked_at.is_none() && self.reset_required_at.is_none()
    }

    /// Why a login must not complete, if it must not: a lock first.
    pub fn refusal(&self) -> Option<&'static str> {
        match (self.locked_at, self.reset_required_at) {
            (Some(_), _) => Some(LOCKED),
            (None, Some(_)) => Some(RESET_REQUIRED),
            (None, None) => None,
        }
    }
}

/// What an operator does to every account a selector names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountAction {
    /// Lock: every session ends, no login completes until unlocked.
    Lock,
    /// Unlock a locked account (a required new password stays required).
    Unlock,
    /// Require a new password: every session ends, the old password no longer logs in,
    /// and a single-use link to set a new one is emailed.
    ResetPassword,
}

impl AccountAction {
    /// Stable name (logs, the audit log, metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lock => "lock",
            Self::Unlock => "unlock",
            Self::ResetPassword => "reset_password",
        }
    }

    /// Whether it ends the account's sessions.
    pub fn ends_sessions(self) -> bool {
        !matches!(self, Self::Unlock)
    }

    /// Applies it to `hold` at `now`; whether anything changed. A reset asked again
    /// changes the hold's time (a new link replaces the old one).
    pub fn apply(self, hold: &mut AccountHold, now: Timestamp) -> bool {
        match self {
            Self::Lock if hold.locked_at.is_none() => {
                hold.locked_at = Some(now);
                true
            }
            Self::Lock => false,
            Self::Unlock => hold.locked_at.take().is_some(),
            Self::ResetPassword => {
                hold.reset_required_at = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_holds_until_unlocked_and_a_reset_until_a_password_is_set() {
        let (t1, t2) = (Timestamp::from_millis(1_000), Timestamp::from_millis(2_000));
        let mut h = AccountHold::default();
        assert!(h.is_empty() && h.refusal().is_none());
        assert!(AccountAction::Lock.apply(&mut h, t1));
        assert!(!AccountAction::Lock.apply(&mut h, t2), "locked already");
        assert_eq!(h.locked_at, Some(t1), "the first lock's time is kept");
        assert_eq!(h.refusal(), Some(LOCKED));
        assert!(AccountAction::ResetPassword.apply(&mut h, t2));
        assert_eq!(h.refusal(), Some(LOCKED), "a lock is said first");
        assert!(AccountAction::Unlock.apply(&mut h, t2));
        assert!(!AccountAction::Unlock.apply(&mut h, t2), "unlocked already");
        assert_eq!(h.refusal(), Some(RESET_REQUIRED), "the reset stays");
        assert!(!h.is_empty());
        assert!(AccountAction::Lock.ends_sessions() && !AccountAction::Unlock.ends_sessions());
    }
}
