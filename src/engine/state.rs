//! A user's complete state, as held by its actor and written in its snapshot, with the
//! rules that change it. Plain data: every rule takes `now`, so it is tested without
//! actors or clocks.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::EngineError;
use super::shared_profile::SharedProfile;
use crate::domain::consent::ConsentState;
use crate::domain::directory::DirectoryEntry;
use crate::domain::feedback::ListFeedback;
use crate::domain::history::ActivityHistory;
use crate::domain::hold::AccountHold;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::link::Links;
use crate::domain::lockout::FailureState;
use crate::domain::mfa::MfaState;
use crate::domain::profile::UserProfile;
use crate::domain::rate::{RateRefusals, TokenBucket};
use crate::domain::risk::{Location, RiskProfile};
use crate::domain::security_log::{SecurityEvent, SecurityLog};
use crate::domain::session::{LoginContext, Session, SessionBinding};
use crate::domain::taste::Taste;
use crate::domain::tier::TierPolicy;
use crate::domain::time::Timestamp;
use crate::security::keys::DataKey;
use crate::security::token::SessionToken;
use crate::store::codec::{self, CodecError};
use sparse::Sparse;

mod legacy;
mod report;
pub(crate) mod sparse;
mod v11;
mod v12;
pub use legacy::UserStateV3;
use legacy::{UserStateV1, UserStateV2};
pub(crate) use legacy::{
    UserStateV5, UserStateV6, UserStateV7, UserStateV8, UserStateV9, UserStateV10,
};
pub(crate) use report::{ReportView, report_view};
pub(crate) use v11::UserStateV11;
pub(crate) use v12::UserStateV12;

/// Devices remembered per user (for new-device checks), most recent last.
pub(crate) const MAX_KNOWN_DEVICES: usize = 32;

/// Everything Roster keeps about one user. This is the snapshot payload: change it only
/// together with a new codec format version.
///
/// Since format 6 the fields a report over the population reads — consents, history,
/// then the profile, whose head holds the tier and sign-up time — come first, so that a
/// report decodes a prefix of the payload ([`report_view`]) instead of the whole state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserState {
    /// Consents per purpose, birth date, parental consent. New in format 3.
    pub consents: ConsentState,
    /// Listening activity reported by clients (soft state): counters since format 2,
    /// the history since format 5.
    pub history: ActivityHistory,
    /// What personalization learned of the user's taste (soft state; held only under
    /// the consent to personalisation). New in format 7.
    pub taste: Option<Box<Taste>>,
    /// Recommendations shown and followed, by how the lists were made (soft state;
    /// counted under the consent to analytics, like the history). New in format 8.
    pub feedback: ListFeedback,
    /// The days its requests were refused for its tier's rate (soft state, like the
    /// bucket; the tier analysis reads it under the consent to analytics). New in
    /// format 10, before the profile so that a report reads it with the head.
    pub refusals: Sparse<RateRefusals>,
    /// The profile clients see. Shared so that the actor can hand a read-only snapshot
    /// (with its JSON rendering) to a request without copying; changes copy on write
    /// ([`SharedProfile::make_mut`]).
    pub profile: SharedProfile,
    /// argon2id PHC string (boxed: 8 bytes less in every live actor than a `String`).
    pub password_hash: Box<str>,
    /// Bumped whenever the password changes, so a login verified against an older hash
    /// cannot complete.
    pub credential_version: u64,
    /// Live sessions (a slice of its exact length: 8 bytes less than a `Vec` in every
    /// live actor; a change reallocates, which a login's own cost dwarfs).
    pub sessions: Box<[Session]>,
    /// Failed-login record (soft state).
    pub failures: Sparse<FailureState>,
    /// Device ids seen at successful logins (soft state).
    pub known_devices: Box<[String]>,
    /// The per-tier request-rate bucket (soft state).
    pub rate: TokenBucket,
    /// Second factors. New in format 3.
    pub mfa: Sparse<MfaState>,
    /// What logins taught the risk engine. New in format 3.
    pub risk: Sparse<RiskProfile>,
    /// The newest security events (older ones are in the store). New in format 3.
    pub security: SecurityLog,
    /// What an identity provider says of the user (SCIM), once one wrote it. New in
    /// format 9.
    pub directory: Option<Box<DirectoryEntry>>,
    /// An operator's lock or required new password, while one holds. New in format 11.
    pub hold: Option<Box<AccountHold>>,
    /// Linked accounts at integration providers, with their tokens, and links begun.
    /// New in format 12; the accounts' names at the providers in format 13.
    pub links: Option<Box<Links>>,
}

/// What [`UserState::drop_expired`] removed from one record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Expired {
    /// Security events past retention.
    pub events: usize,
    /// Sessions that ended.
    pub sessions: usize,
    /// Links begun whose challenge expired.
    pub challenges: usize,
}

impl Expired {
    /// Whether anything went.
    pub(crate) fn any(&self) -> bool {
        self.events + self.sessions + self.challenges > 0
    }
}

/// Where a new session's client is, beyond what it said in its login context.
#[derive(Clone, Debug, Default)]
pub struct SessionOrigin {
    /// The client's network (address prefix).
    pub network: Option<String>,
    /// The client's location.
    pub location: Option<Location>,
    /// Whether a second factor was checked.
    pub mfa: bool,
}

/// Reads a stored user record of any supported format: formats 4 to 13 are sealed under
/// the user's data key, formats 1–3 are plaintext.
pub fn decode(record: &[u8], key: &DataKey, id: UserId) -> Result<UserState, CodecError> {
    codec::decode_versioned(
        record,
        key,
        id.as_bytes(),
        |version, payload| match version {
            1 => Some(payload.decode::<UserStateV1>().map(Into::into)),
            2 => Some(payload.decode::<UserStateV2>().map(Into::into)),
            3 | 4 => Some(payload.decode::<UserStateV3>().map(Into::into)),
            5 => Some(payload.decode::<UserStateV5>().map(Into::into)),
            6 => Some(payload.decode::<UserStateV6>().map(Into::into)),
            7 => Some(payload.decode::<UserStateV7>().map(Into::into)),
            8 => Some(payload.decode::<UserStateV8>().map(Into::into)),
            9 => Some(payload.decode::<UserStateV9>().map(Into::into)),
            10 => Some(payload.decode::<UserStateV10>().map(Into::into)),
            11 => Some(payload.decode::<UserStateV11>().map(Into::into)),
            12 => Some(payload.decode::<UserStateV12>().map(Into::into)),
            _ => None,
        },
    )
}

/// Writes a user record in the current format, sealed under the user's data key.
pub fn encode(state: &UserState, key: &DataKey, id: UserId) -> Result<Vec<u8>, EngineError> {
    codec::seal(state, key, id.as_bytes()).map_err(|e| EngineError::Internal(e.to_string()))
}

/// The associated data of a user's archived security event `seq`.
pub(crate) fn event_aad(user: UserId, seq: u64) -> [u8; 25] {
    let mut a = [0u8; 25];
    a[0] = b's';
    a[1..17].copy_from_slice(user.as_bytes());
    a[17..].copy_from_slice(&seq.to_be_bytes());
    a
}

impl UserState {
    /// The state of a freshly created user.
    pub fn new(profile: UserProfile, password_hash: String) -> Self {
        Self {
            profile: SharedProfile::new(profile),
            password_hash: password_hash.into(),
            credential_version: 1,
            sessions: Box::default(),
            failures: Sparse::default(),
            known_devices: Box::default(),
            rate: TokenBucket::default(),
            history: ActivityHistory::default(),
            taste: None,
            feedback: ListFeedback::default(),
            mfa: Sparse::default(),
            risk: Sparse::default(),
            security: SecurityLog::default(),
            consents: ConsentState::default(),
            directory: None,
            refusals: Sparse::default(),
            hold: None,
            links: None,
        }
    }

    /// Idle timeout of new sessions: the user's own setting, capped by the tier.
    pub(crate) fn session_idle_timeout(&self, policy: &TierPolicy) -> Duration {
        let own = Duration::from_secs(
            u64::from(self.profile.security_settings.session_timeout_minutes) * 60,
        );
        own.min(policy.session_idle_timeout)
    }

    /// Drops expired sessions; reports whether any were dropped.
    pub(crate) fn prune_sessions(&mut self, now: Timestamp) -> bool {
        self.retain_sessions(|s| s.is_active(now)) > 0
    }

    /// Drops what ran out in a stored record: security events from before `events_before`
    /// (retention), sessions no longer usable at `now`, and links begun whose challenge
    /// expired; says how many of each went. The cleanup job's rule, for the stored
    /// records it reads and for the actors it asks.
    pub(crate) fn drop_expired(&mut self, now: Timestamp, events_before: Timestamp) -> Expired {
        let recent = self.security.recent.len();
        self.security.recent.retain(|e| e.at >= events_before);
        let sessions = self.retain_sessions(|s| s.is_active(now));
        let challenges = match self.links.as_deref_mut() {
            Some(links) => links.drop_expired(now),
            None => 0,
        };
        Expired {
            events: recent - self.security.recent.len(),
            sessions,
            challenges,
        }
    }

    /// Keeps the sessions `keep` says to; returns how many went.
    fn retain_sessions(&mut self, keep: impl FnMut(&Session) -> bool) -> usize {
        let before = self.sessions.len();
        let mut all = std::mem::take(&mut self.sessions).into_vec();
        all.retain(keep);
        self.sessions = all.into_boxed_slice();
        before - self.sessions.len()
    }

    /// Records a successful login: a new session for `token`, the oldest sessions
    /// dropped beyond `max_sessions`, the failure record cleared. `origin` says where
    /// the client is; on a zero-trust tier the session is bound to its device and
    /// network.
    pub(crate) fn start_session(
        &mut self,
        token: &SessionToken,
        context: LoginContext,
        origin: SessionOrigin,
        policy: &TierPolicy,
        max_sessions: usize,
        now: Timestamp,
    ) -> Session {
        self.prune_sessions(now);
        let binding = policy.zero_trust.then(|| SessionBinding {
            device_id: context.device_id.clone(),
            network: origin.network.clone(),
        });
        let session = Session {
            id: token.session_id(),
            secret_hash: token.secret_hash(),
            created_at: now,
            last_seen_at: now,
            expires_at: now.plus(policy.session_absolute_lifetime),
            idle_timeout_ms: u64::try_from(self.session_idle_timeout(policy).as_millis())
                .unwrap_or(u64::MAX),
            context,
            authenticated_at: now,
            mfa: origin.mfa,
            network: origin.network,
            location: origin.location,
            binding,
        };
        if let Some(device) = &session.context.device_id {
            let mut known = std::mem::take(&mut self.known_devices).into_vec();
            known.retain(|d| d != device);
            known.push(device.clone());
            let excess = known.len().saturating_sub(MAX_KNOWN_DEVICES);
            known.drain(..excess);
            self.known_devices = known.into_boxed_slice();
        }
        let mut all = std::mem::take(&mut self.sessions).into_vec();
        all.push(session.clone());
        let excess = all.len().saturating_sub(max_sessions);
        all.drain(..excess);
        self.sessions = all.into_boxed_slice();
        self.failures = Sparse::default();
        let profile = self.profile.make_mut();
        profile.usage.logins += 1;
        profile.usage.last_login_at = Some(now);
        session
    }

    /// The session `token` opens, if it is live at `now`; marks it used.
    ///
    /// Every authenticated request comes through here. Sessions are kept oldest first
    /// and a user may hold up to `engine.max_sessions_per_user` of them (~280 bytes
    /// each); the search starts from the newest, the ones in use (an older session
    /// usually lingers until it expires or gives way), so it touches one session
    /// instead of walking past every stale one.
    pub(crate) fn check_session(
        &mut self,
        token: &SessionToken,
        now: Timestamp,
    ) -> Option<&Session> {
        let s = self
            .sessions
            .iter_mut()
            .rev()
            .find(|s| s.id == token.session_id())?;
        if !token.matches(&s.secret_hash) || !s.is_active(now) {
            return None;
        }
        s.last_seen_at = now;
        Some(s)
    }

    /// The live session `id`, marked used at `now` (a socket's heartbeat or activity).
    pub(crate) fn touch_session(&mut self, id: SessionId, now: Timestamp) -> Option<&Session> {
        let s = self
            .sessions
            .iter_mut()
            .rev()
            .find(|s| s.id == id && s.is_active(now))?;
        s.last_seen_at = now;
        Some(s)
    }

    /// Ids of the live sessions other than `keep`.
    pub(crate) fn session_ids_except(&self, keep: Option<SessionId>) -> Vec<SessionId> {
        self.sessions
            .iter()
            .map(|s| s.id)
            .filter(|id| Some(*id) != keep)
            .collect()
    }

    /// Removes one session; reports whether it existed.
    pub fn revoke(&mut self, id: SessionId) -> bool {
        self.retain_sessions(|s| s.id != id) > 0
    }

    /// Replaces the password hash (bumping the credential version, so logins verified
    /// against the old hash cannot complete) and ends every session but `keep`.
    /// Returns how many sessions ended.
    pub(crate) fn set_password(
        &mut self,
        password_hash: String,
        keep: Option<SessionId>,
        now: Timestamp,
    ) -> usize {
        self.password_hash = password_hash.into();
        self.credential_version += 1;
        self.failures = Sparse::default();
        // A new password is what a required reset waited for.
        if let Some(hold) = &mut self.hold {
            hold.reset_required_at = None;
            if hold.is_empty() {
                self.hold = None;
            }
        }
        self.profile.make_mut().updated_at = now;
        self.revoke_all_except(keep)
    }

    /// Appends a security event; returns the one that no longer fits in the state (the
    /// caller hands it to the store).
    pub fn record(&mut self, event: SecurityEvent) -> Option<SecurityEvent> {
        self.security.push(event)
    }

    /// Removes every session but `keep`; returns how many went.
    pub(crate) fn revoke_all_except(&mut self, keep: Option<SessionId>) -> usize {
        self.retain_sessions(|s| Some(s.id) == keep)
    }
}

#[cfg(test)]
pub(crate) mod tests;
