//! [`UserHandle`]: the typed, cloneable way to talk to one user's actor. Callers never see
//! `Addr`, `MailboxError` or actix messages; every method returns our own `Result`, and
//! the ones that change durable state return only once their writes are durable
//! ([`Engine::call_durable`](super::Engine::call_durable)).

use std::sync::Arc;

use super::shared_profile::SharedProfile;
use super::user::{
    Audited, ChangeTier, DeleteUser, GetProfile, ListSessions, RecordUsage, RevokeOtherSessions,
    RevokeSession, UpdateProfile,
};
use super::{Engine, EngineError};
use crate::domain::ids::{SessionId, UserId};
use crate::domain::profile::{ProfilePatch, QuotaDecision, QuotaKind, UserProfile};
use crate::domain::session::SessionView;
use crate::domain::tier::UserTier;

/// A handle on one user, live or passivated: the engine activates the actor on demand.
#[derive(Clone)]
pub(crate) struct UserHandle {
    id: UserId,
    engine: Arc<Engine>,
}

impl UserHandle {
    pub(crate) fn new(id: UserId, engine: Arc<Engine>) -> Self {
        Self { id, engine }
    }

    /// The current profile.
    pub(crate) async fn profile(&self) -> Result<UserProfile, EngineError> {
        self.engine
            .call(self.id, GetProfile)
            .await
            .map(SharedProfile::into_inner)
    }

    /// Applies a partial update; durable when it returns.
    pub(crate) async fn update(&self, patch: ProfilePatch) -> Result<UserProfile, EngineError> {
        let p = self
            .engine
            .call_durable(self.id, UpdateProfile(patch))
            .await?;
        Ok(p.into_inner())
    }

    /// Counts `delta` of a quota resource (negative frees); an accepted change is durable
    /// when it returns, a refused one changes nothing.
    pub(crate) async fn record_usage(
        &self,
        kind: QuotaKind,
        delta: i64,
    ) -> Result<QuotaDecision, EngineError> {
        self.engine
            .call_durable(self.id, RecordUsage { kind, delta })
            .await
    }

    /// Moves the user to `tier` (and so to that tier's registry), with its audit record;
    /// durable when it returns.
    pub(crate) async fn change_tier(
        &self,
        tier: UserTier,
        audit: Option<Audited>,
    ) -> Result<UserProfile, EngineError> {
        let msg = ChangeTier { tier, audit };
        let p = self.engine.call_durable(self.id, msg).await?;
        Ok(p.into_inner())
    }

    /// Live sessions.
    pub(crate) async fn sessions(&self) -> Result<Vec<SessionView>, EngineError> {
        self.engine.call(self.id, ListSessions).await
    }

    /// Revokes one session; durable when it returns. `false` if there was no such session.
    pub(crate) async fn revoke_session(&self, session: SessionId) -> Result<bool, EngineError> {
        let existed = self
            .engine
            .call_durable(self.id, RevokeSession(session))
            .await?;
        if existed {
            self.engine.metrics.sessions_revoked.inc();
        }
        Ok(existed)
    }

    /// Revokes every session except `keep`; durable when it returns.
    pub(crate) async fn revoke_other_sessions(
        &self,
        keep: Option<SessionId>,
    ) -> Result<usize, EngineError> {
        let n = self
            .engine
            .call_durable(self.id, RevokeOtherSessions(keep))
            .await?;
        if n > 0 {
            self.engine.metrics.sessions_revoked.inc_by(n as u64);
        }
        Ok(n)
    }

    /// Deletes the user, its sessions and its email claim, with its audit record, if
    /// `recent` (the acting session; `None`: the operator) authenticated recently;
    /// durable when it returns. The linked accounts that went with it.
    pub(crate) async fn delete(
        &self,
        recent: Option<SessionId>,
        audit: Option<Audited>,
    ) -> Result<Vec<crate::domain::link::LinkedAccount>, EngineError> {
        let msg = DeleteUser { recent, audit };
        self.engine.call_durable(self.id, msg).await
    }
}
