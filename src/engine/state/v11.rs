//! The user state as format 11 stored it: before the linked accounts (format 12), which
//! it lacks at the end. (Older formats are in `legacy`.)

use serde::{Deserialize, Serialize};

use super::UserState;
use super::sparse::Sparse;
use crate::domain::consent::ConsentState;
use crate::domain::directory::DirectoryEntry;
use crate::domain::feedback::ListFeedback;
use crate::domain::history::ActivityHistory;
use crate::domain::hold::AccountHold;
use crate::domain::lockout::FailureState;
use crate::domain::mfa::MfaState;
use crate::domain::rate::{RateRefusals, TokenBucket};
use crate::domain::risk::RiskProfile;
use crate::domain::security_log::SecurityLog;
use crate::domain::session::Session;
use crate::domain::taste::Taste;
use crate::engine::shared_profile::SharedProfile;

/// See the module.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UserStateV11 {
    consents: ConsentState,
    history: ActivityHistory,
    taste: Option<Box<Taste>>,
    feedback: ListFeedback,
    refusals: Sparse<RateRefusals>,
    profile: SharedProfile,
    password_hash: Box<str>,
    credential_version: u64,
    sessions: Box<[Session]>,
    failures: Sparse<FailureState>,
    known_devices: Box<[String]>,
    rate: TokenBucket,
    mfa: Sparse<MfaState>,
    risk: Sparse<RiskProfile>,
    security: SecurityLog,
    directory: Option<Box<DirectoryEntry>>,
    hold: Option<Box<AccountHold>>,
}

impl UserStateV11 {
    /// `s` as format 11 held it (tests of older stores; the links are lost).
    #[cfg(test)]
    pub(crate) fn of(s: &UserState) -> Self {
        let s = s.clone();
        Self {
            consents: s.consents,
            history: s.history,
            taste: s.taste,
            feedback: s.feedback,
            refusals: s.refusals,
            profile: s.profile,
            password_hash: s.password_hash,
            credential_version: s.credential_version,
            sessions: s.sessions,
            failures: s.failures,
            known_devices: s.known_devices,
            rate: s.rate,
            mfa: s.mfa,
            risk: s.risk,
            security: s.security,
            directory: s.directory,
            hold: s.hold,
        }
    }
}

impl From<UserStateV11> for UserState {
    fn from(v: UserStateV11) -> Self {
        Self {
            consents: v.consents,
            history: v.history,
            taste: v.taste,
            feedback: v.feedback,
            refusals: v.refusals,
            profile: v.profile,
            password_hash: v.password_hash,
            credential_version: v.credential_version,
            sessions: v.sessions,
            failures: v.failures,
            known_devices: v.known_devices,
            rate: v.rate,
            mfa: v.mfa,
            risk: v.risk,
            security: v.security,
            directory: v.directory,
            hold: v.hold,
            links: None,
        }
    }
}
