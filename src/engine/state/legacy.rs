//! The shapes older formats stored a user's state in, each converted into the current
//! [`UserState`] on load and written back in the current format at the next snapshot.
//! Read-only: this build never writes one (tests of migrations build them with
//! [`UserStateV3::of`]).

use serde::{Deserialize, Serialize};

use super::UserState;
use super::sparse::Sparse;
use crate::domain::consent::ConsentState;
use crate::domain::directory::DirectoryEntry;
use crate::domain::feedback::ListFeedback;
use crate::domain::history::{ActivityCounters, ActivityHistory};
use crate::domain::lockout::FailureState;
use crate::domain::mfa::MfaState;
use crate::domain::rate::{RateRefusals, TokenBucket};
use crate::domain::risk::RiskProfile;
use crate::domain::security_log::SecurityLog;
use crate::domain::session::{Session, SessionV2};
use crate::domain::taste::{GenreWeight, Heard, MoodState, Taste};
use crate::engine::shared_profile::SharedProfile;

/// The user state as format 10 stored it: before an operator's hold (format 11), which
/// it lacks at the end.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UserStateV10 {
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
}

impl UserStateV10 {
    /// `s` as format 10 held it (tests of older stores; the hold is lost).
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
        }
    }
}

impl From<UserStateV10> for UserState {
    fn from(v: UserStateV10) -> Self {
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
            hold: None,
            links: None,
        }
    }
}

/// The user state as format 9 stored it: before the days of rate refusals (format 10),
/// which it lacks between the feedback and the profile.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UserStateV9 {
    consents: ConsentState,
    history: ActivityHistory,
    taste: Option<Box<Taste>>,
    feedback: ListFeedback,
    profile: SharedProfile,
    password_hash: String,
    credential_version: u64,
    sessions: Box<[Session]>,
    failures: Sparse<FailureState>,
    known_devices: Box<[String]>,
    rate: TokenBucket,
    mfa: Sparse<MfaState>,
    risk: Sparse<RiskProfile>,
    security: SecurityLog,
    directory: Option<Box<DirectoryEntry>>,
}

impl UserStateV9 {
    /// `s` as format 9 held it (tests of older stores; the refusals are lost).
    #[cfg(test)]
    pub(crate) fn of(s: &UserState) -> Self {
        let s = s.clone();
        Self {
            consents: s.consents,
            history: s.history,
            taste: s.taste,
            feedback: s.feedback,
            profile: s.profile,
            password_hash: s.password_hash.into(),
            credential_version: s.credential_version,
            sessions: s.sessions,
            failures: s.failures,
            known_devices: s.known_devices,
            rate: s.rate,
            mfa: s.mfa,
            risk: s.risk,
            security: s.security,
            directory: s.directory,
        }
    }
}

impl From<UserStateV9> for UserState {
    fn from(v: UserStateV9) -> Self {
        Self {
            consents: v.consents,
            history: v.history,
            taste: v.taste,
            feedback: v.feedback,
            refusals: Sparse::default(),
            profile: v.profile,
            password_hash: v.password_hash.into(),
            credential_version: v.credential_version,
            sessions: v.sessions,
            failures: v.failures,
            known_devices: v.known_devices,
            rate: v.rate,
            mfa: v.mfa,
            risk: v.risk,
            security: v.security,
            directory: v.directory,
            hold: None,
            links: None,
        }
    }
}

/// The taste as format 7 stored it: before its moments and platform (format 8).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TasteV7 {
    heard: Box<[Heard]>,
    audio: [u16; 8],
    audio_known: u8,
    genres: Box<[GenreWeight]>,
    mood: MoodState,
    events: u32,
}

impl From<TasteV7> for Taste {
    fn from(v: TasteV7) -> Self {
        Self {
            heard: v.heard,
            audio: v.audio,
            audio_known: v.audio_known,
            genres: v.genres,
            mood: v.mood,
            events: v.events,
            ..Self::default()
        }
    }
}

/// The user state as format 8 stored it: before the identity provider's entry (format
/// 9), which it lacks at the end.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UserStateV8 {
    consents: ConsentState,
    history: ActivityHistory,
    taste: Option<Box<Taste>>,
    feedback: ListFeedback,
    profile: SharedProfile,
    password_hash: String,
    credential_version: u64,
    sessions: Box<[Session]>,
    failures: Sparse<FailureState>,
    known_devices: Box<[String]>,
    rate: TokenBucket,
    mfa: Sparse<MfaState>,
    risk: Sparse<RiskProfile>,
    security: SecurityLog,
}

impl UserStateV8 {
    /// `s` as format 8 held it (tests of older stores; the entry is lost).
    #[cfg(test)]
    pub(crate) fn of(s: &UserState) -> Self {
        let s = s.clone();
        Self {
            consents: s.consents,
            history: s.history,
            taste: s.taste,
            feedback: s.feedback,
            profile: s.profile,
            password_hash: s.password_hash.into(),
            credential_version: s.credential_version,
            sessions: s.sessions,
            failures: s.failures,
            known_devices: s.known_devices,
            rate: s.rate,
            mfa: s.mfa,
            risk: s.risk,
            security: s.security,
        }
    }
}

impl From<UserStateV8> for UserState {
    fn from(v: UserStateV8) -> Self {
        Self {
            consents: v.consents,
            history: v.history,
            taste: v.taste,
            feedback: v.feedback,
            profile: v.profile,
            password_hash: v.password_hash.into(),
            credential_version: v.credential_version,
            sessions: v.sessions,
            failures: v.failures,
            known_devices: v.known_devices,
            rate: v.rate,
            mfa: v.mfa,
            risk: v.risk,
            security: v.security,
            directory: None,
            refusals: Sparse::default(),
            hold: None,
            links: None,
        }
    }
}

/// The user state as format 7 stored it: before the recommendation feedback and the
/// taste's moments (format 8).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UserStateV7 {
    consents: ConsentState,
    history: ActivityHistory,
    taste: Option<Box<TasteV7>>,
    profile: SharedProfile,
    password_hash: String,
    credential_version: u64,
    sessions: Box<[Session]>,
    failures: Sparse<FailureState>,
    known_devices: Vec<String>,
    rate: TokenBucket,
    mfa: Sparse<MfaState>,
    risk: Sparse<RiskProfile>,
    security: SecurityLog,
}

impl UserStateV7 {
    /// `s` as format 7 held it (tests of older stores; the taste's moments are lost).
    #[cfg(test)]
    pub(crate) fn of(s: &UserState) -> Self {
        let s = s.clone();
        Self {
            consents: s.consents,
            history: s.history,
            taste: s.taste.map(|t| {
                Box::new(TasteV7 {
                    heard: t.heard,
                    audio: t.audio,
                    audio_known: t.audio_known,
                    genres: t.genres,
                    mood: t.mood,
                    events: t.events,
                })
            }),
            profile: s.profile,
            password_hash: s.password_hash.into(),
            credential_version: s.credential_version,
            sessions: s.sessions,
            failures: s.failures,
            known_devices: s.known_devices.into(),
            rate: s.rate,
            mfa: s.mfa,
            risk: s.risk,
            security: s.security,
        }
    }
}

impl From<UserStateV7> for UserState {
    fn from(v: UserStateV7) -> Self {
        Self {
            consents: v.consents,
            history: v.history,
            taste: v.taste.map(|t| Box::new(Taste::from(*t))),
            feedback: ListFeedback::default(),
            profile: v.profile,
            password_hash: v.password_hash.into(),
            credential_version: v.credential_version,
            sessions: v.sessions,
            failures: v.failures,
            known_devices: v.known_devices.into(),
            rate: v.rate,
            mfa: v.mfa,
            risk: v.risk,
            security: v.security,
            directory: None,
            refusals: Sparse::default(),
            hold: None,
            links: None,
        }
    }
}

/// The user state as format 6 stored it: before the taste (format 7).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UserStateV6 {
    consents: ConsentState,
    history: ActivityHistory,
    profile: SharedProfile,
    password_hash: String,
    credential_version: u64,
    sessions: Box<[Session]>,
    failures: Sparse<FailureState>,
    known_devices: Vec<String>,
    rate: TokenBucket,
    mfa: Sparse<MfaState>,
    risk: Sparse<RiskProfile>,
    security: SecurityLog,
}

impl UserStateV6 {
    /// `s` as format 6 held it (tests of older stores).
    #[cfg(test)]
    pub(crate) fn of(s: &UserState) -> Self {
        let s = s.clone();
        Self {
            consents: s.consents,
            history: s.history,
            profile: s.profile,
            password_hash: s.password_hash.into(),
            credential_version: s.credential_version,
            sessions: s.sessions,
            failures: s.failures,
            known_devices: s.known_devices.into(),
            rate: s.rate,
            mfa: s.mfa,
            risk: s.risk,
            security: s.security,
        }
    }
}

impl From<UserStateV6> for UserState {
    fn from(v: UserStateV6) -> Self {
        Self {
            consents: v.consents,
            history: v.history,
            taste: None,
            feedback: ListFeedback::default(),
            profile: v.profile,
            password_hash: v.password_hash.into(),
            credential_version: v.credential_version,
            sessions: v.sessions,
            failures: v.failures,
            known_devices: v.known_devices.into(),
            rate: v.rate,
            mfa: v.mfa,
            risk: v.risk,
            security: v.security,
            directory: None,
            refusals: Sparse::default(),
            hold: None,
            links: None,
        }
    }
}

/// The user state as format 5 stored it: the fields in their order before format 6 put
/// what reports read first.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UserStateV5 {
    profile: SharedProfile,
    password_hash: String,
    credential_version: u64,
    sessions: Box<[Session]>,
    failures: FailureState,
    known_devices: Vec<String>,
    rate: TokenBucket,
    history: ActivityHistory,
    mfa: MfaState,
    risk: RiskProfile,
    security: SecurityLog,
    consents: ConsentState,
}

impl UserStateV5 {
    /// `s` as format 5 held it (tests of older stores).
    #[cfg(test)]
    pub(crate) fn of(s: &UserState) -> Self {
        Self {
            profile: s.profile.clone(),
            password_hash: s.password_hash.to_string(),
            credential_version: s.credential_version,
            sessions: s.sessions.clone(),
            failures: (*s.failures).clone(),
            known_devices: s.known_devices.to_vec(),
            rate: s.rate.clone(),
            history: s.history.clone(),
            mfa: (*s.mfa).clone(),
            risk: (*s.risk).clone(),
            security: s.security.clone(),
            consents: s.consents.clone(),
        }
    }
}

impl From<UserStateV5> for UserState {
    fn from(v: UserStateV5) -> Self {
        Self {
            consents: v.consents,
            history: v.history,
            taste: None,
            feedback: ListFeedback::default(),
            profile: v.profile,
            password_hash: v.password_hash.into(),
            credential_version: v.credential_version,
            sessions: v.sessions,
            failures: v.failures.into(),
            known_devices: v.known_devices.into(),
            rate: v.rate,
            mfa: v.mfa.into(),
            risk: v.risk.into(),
            security: v.security,
            directory: None,
            refusals: Sparse::default(),
            hold: None,
            links: None,
        }
    }
}

/// The user state as formats 3 (in clear) and 4 (sealed) stored it: activity counters
/// where the history is now.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserStateV3 {
    profile: SharedProfile,
    password_hash: String,
    credential_version: u64,
    sessions: Box<[Session]>,
    failures: FailureState,
    known_devices: Vec<String>,
    rate: TokenBucket,
    activity: ActivityCounters,
    mfa: MfaState,
    risk: RiskProfile,
    security: SecurityLog,
    consents: ConsentState,
}

impl UserStateV3 {
    /// `s` as format 3 or 4 would have held it (its history reduced to the counters), for
    /// tests and benches of older stores.
    #[doc(hidden)]
    pub fn of(s: &UserState) -> Self {
        Self {
            profile: s.profile.clone(),
            password_hash: s.password_hash.to_string(),
            credential_version: s.credential_version,
            sessions: s.sessions.clone(),
            failures: (*s.failures).clone(),
            known_devices: s.known_devices.to_vec(),
            rate: s.rate.clone(),
            activity: s.history.counters(),
            mfa: (*s.mfa).clone(),
            risk: (*s.risk).clone(),
            security: s.security.clone(),
            consents: s.consents.clone(),
        }
    }
}

impl From<UserStateV3> for UserState {
    fn from(v: UserStateV3) -> Self {
        Self {
            profile: v.profile,
            password_hash: v.password_hash.into(),
            credential_version: v.credential_version,
            sessions: v.sessions,
            failures: v.failures.into(),
            known_devices: v.known_devices.into(),
            rate: v.rate,
            history: ActivityHistory::from(v.activity),
            taste: None,
            feedback: ListFeedback::default(),
            mfa: v.mfa.into(),
            risk: v.risk.into(),
            security: v.security,
            directory: None,
            refusals: Sparse::default(),
            hold: None,
            links: None,
            consents: v.consents,
        }
    }
}

/// The user state as format 2 stored it (before MFA, risk and security events).
#[derive(Deserialize)]
pub(crate) struct UserStateV2 {
    profile: SharedProfile,
    password_hash: String,
    credential_version: u64,
    sessions: Vec<SessionV2>,
    failures: FailureState,
    known_devices: Vec<String>,
    rate: TokenBucket,
    activity: ActivityCounters,
}

impl From<UserStateV2> for UserState {
    fn from(v: UserStateV2) -> Self {
        UserStateV3 {
            profile: v.profile,
            password_hash: v.password_hash,
            credential_version: v.credential_version,
            sessions: v.sessions.into_iter().map(Session::from).collect(),
            failures: v.failures,
            known_devices: v.known_devices,
            rate: v.rate,
            activity: v.activity,
            mfa: MfaState::default(),
            risk: RiskProfile::default(),
            security: SecurityLog::default(),
            consents: ConsentState::default(),
        }
        .into()
    }
}

/// The user state as format 1 stored it (before activity counters). Read-only: records
/// of this shape are converted on load and written back in the current format.
#[derive(Deserialize)]
pub(crate) struct UserStateV1 {
    profile: SharedProfile,
    password_hash: String,
    credential_version: u64,
    sessions: Vec<SessionV2>,
    failures: FailureState,
    known_devices: Vec<String>,
    rate: TokenBucket,
}

impl From<UserStateV1> for UserState {
    fn from(v: UserStateV1) -> Self {
        UserStateV2 {
            profile: v.profile,
            password_hash: v.password_hash,
            credential_version: v.credential_version,
            sessions: v.sessions,
            failures: v.failures,
            known_devices: v.known_devices,
            rate: v.rate,
            activity: ActivityCounters::default(),
        }
        .into()
    }
}
