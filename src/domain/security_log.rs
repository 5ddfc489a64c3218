//! A user's security events: every login (success, failure, challenge, risk decision),
//! MFA change, session revocation and lockout, append-only. The newest are kept in the
//! actor's state; older ones are handed to the store.

use std::collections::VecDeque;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::ids::SessionId;
use super::mfa::SecondFactor;
use super::risk::{Location, RiskAssessment};
use super::time::Timestamp;

/// Events kept in the actor's state; older ones go to the store.
pub(crate) const RECENT_EVENTS: usize = 50;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecurityEventKind {
    /// A login completed and a session began.
    LoginSucceeded,
    /// A wrong password (or a stale credential).
    LoginFailed,
    /// A login refused because the account is locked.
    LoginLocked,
    /// The password was right; a second factor was asked for.
    LoginChallenged,
    /// The password was right but the risk engine refused the login.
    LoginDenied,
    /// A wrong second-factor code.
    MfaFailed,
    /// An authenticator code that was already used.
    MfaReplayed,
    /// An authenticator was enrolled (confirmed).
    MfaEnrolled,
    /// An authenticator was removed.
    MfaRemoved,
    /// New recovery codes replaced the old ones.
    RecoveryCodesRegenerated,
    /// A recovery code was used.
    RecoveryCodeUsed,
    /// The user proved its credentials again for a sensitive operation.
    StepUp,
    /// A session ended by revocation, logout, password change or eviction.
    SessionRevoked,
    /// A zero-trust session was presented from another device or network; it ended.
    SessionBindingViolated,
    /// A session was used from a new network; the risk engine judged it.
    SessionContextChanged,
    /// The password changed.
    PasswordChanged,
    /// An operator locked the account.
    AccountLocked,
    /// An operator unlocked the account.
    AccountUnlocked,
    /// An operator required a new password: the old one no longer logs in.
    PasswordResetRequired,
}

impl SecurityEventKind {
    /// Stable name (metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::LoginLocked => "login_locked",
            Self::LoginChallenged => "login_challenged",
            Self::LoginDenied => "login_denied",
            Self::MfaFailed => "mfa_failed",
            Self::MfaReplayed => "mfa_replayed",
            Self::MfaEnrolled => "mfa_enrolled",
            Self::MfaRemoved => "mfa_removed",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::StepUp => "step_up",
            Self::SessionRevoked => "session_revoked",
            Self::SessionBindingViolated => "session_binding_violated",
            Self::SessionContextChanged => "session_context_changed",
            Self::PasswordChanged => "password_changed",
            Self::AccountLocked => "account_locked",
            Self::AccountUnlocked => "account_unlocked",
            Self::PasswordResetRequired => "password_reset_required",
        }
    }
}

/// One recorded event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecurityEvent {
    /// Per-user sequence number, from 1.
    pub seq: u64,
    /// When.
    pub at: Timestamp,
    /// What.
    pub kind: SecurityEventKind,
    /// The session concerned.
    pub session_id: Option<SessionId>,
    /// The client's address.
    #[schema(value_type = Option<String>)]
    pub ip_address: Option<IpAddr>,
    /// The client's device.
    pub device_id: Option<String>,
    /// The client's location.
    pub location: Option<Location>,
    /// The second factor involved.
    pub factor: Option<SecondFactor>,
    /// The risk engine's assessment, with its reasons.
    pub risk: Option<RiskAssessment>,
    /// More detail (e.g. why a session was revoked).
    pub detail: Option<String>,
}

impl SecurityEvent {
    /// An event of `kind` at `at`, numbered when recorded.
    pub fn new(kind: SecurityEventKind, at: Timestamp) -> Self {
        Self {
            seq: 0,
            at,
            kind,
            session_id: None,
            ip_address: None,
            device_id: None,
            location: None,
            factor: None,
            risk: None,
            detail: None,
        }
    }
}

/// The newest events of a user, with the numbering.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SecurityLog {
    /// The number the next event gets.
    pub next_seq: u64,
    /// The newest events, oldest first.
    pub recent: VecDeque<SecurityEvent>,
}

impl SecurityLog {
    /// Numbers and appends `event`; returns the event that no longer fits, which the
    /// caller writes to the store.
    pub fn push(&mut self, mut event: SecurityEvent) -> Option<SecurityEvent> {
        self.next_seq = self.next_seq.max(1);
        event.seq = self.next_seq;
        self.next_seq += 1;
        self.recent.push_back(event);
        if self.recent.len() > RECENT_EVENTS {
            self.recent.pop_front()
        } else {
            None
        }
    }

    /// Events with `seq < before`, newest first, at most `limit`.
    pub fn newest_before(&self, before: u64, limit: usize) -> Vec<SecurityEvent> {
        self.recent
            .iter()
            .rev()
            .filter(|e| e.seq < before)
            .take(limit)
            .cloned()
            .collect()
    }

    /// The oldest sequence number still held here.
    pub fn oldest_seq(&self) -> Option<u64> {
        self.recent.front().map(|e| e.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_and_overflow() {
        let mut log = SecurityLog::default();
        let t = Timestamp::from_millis(5);
        let mut spilled = Vec::new();
        for _ in 0..RECENT_EVENTS + 3 {
            spilled.extend(log.push(SecurityEvent::new(SecurityEventKind::LoginFailed, t)));
        }
        assert_eq!(spilled.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(log.oldest_seq(), Some(4));
        let page = log.newest_before(u64::MAX, 2);
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [53, 52]);
        let page = log.newest_before(6, 10);
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [5, 4]);
    }
}
