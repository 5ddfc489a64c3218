//! Sessions: listing and ending them, the event sockets they hold, and the activity those
//! sockets report.

use super::UserManager;
use super::principal::Principal;
use crate::domain::activity::ActivityEvent;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::session::SessionView;
use crate::engine::EngineError;
use crate::engine::events::Resume;
use crate::engine::outcomes::{ActivityOutcome, RequestTaken, SessionInfo, SubscribeOutcome};
use crate::engine::user::{Subscribe, TakeRequest, TouchSession};

/// See [`UserManager::sessions`].
#[derive(Clone, Copy)]
pub struct Sessions<'a> {
    pub(super) m: &'a UserManager,
}

impl Sessions<'_> {
    /// The user's live sessions (an operator's read is audited).
    pub async fn list(self, by: &Principal, id: UserId) -> Result<Vec<SessionView>, EngineError> {
        by.on(id)?;
        let sessions = self.m.user(id).sessions().await?;
        self.m.audit_read(by, id, "sessions").await?;
        Ok(sessions)
    }

    /// Ends one session; `false` if there was no such session. Durable when it returns.
    pub async fn revoke(
        self,
        by: &Principal,
        id: UserId,
        session: SessionId,
    ) -> Result<bool, EngineError> {
        by.on(id)?;
        self.audit_revocation(by, id, Some(session)).await?;
        self.m.user(id).revoke_session(session).await
    }

    /// An operator's revocation is on record before it happens (a user's own is in its
    /// security events).
    async fn audit_revocation(
        self,
        by: &Principal,
        user: UserId,
        session: Option<SessionId>,
    ) -> Result<(), EngineError> {
        if matches!(by, Principal::Operator) {
            let action = crate::domain::audit::AuditAction::SessionRevoked { user, session };
            let actor = crate::domain::audit::AuditActor::Operator;
            self.m.audit(actor, action).await?;
        }
        Ok(())
    }

    /// "Log out everywhere else": every session of the user but the calling one (all of
    /// them, for the operator). Durable when it returns; how many ended.
    pub async fn revoke_others(self, by: &Principal, id: UserId) -> Result<usize, EngineError> {
        let keep = by.on(id)?.session();
        self.audit_revocation(by, id, None).await?;
        self.m.user(id).revoke_other_sessions(keep).await
    }

    /// Subscribes a socket of the calling session to the user's events, resuming after
    /// `resume` if given. Goes through the user's actor, so a revocation cannot slip
    /// between the session check and the subscription.
    pub async fn subscribe(
        self,
        by: &Principal,
        resume: Option<Resume>,
    ) -> Result<SubscribeOutcome, EngineError> {
        let me = by.session()?;
        let msg = Subscribe {
            session: me.session,
            resume,
        };
        match self.m.engine.call(me.user, msg).await {
            Err(EngineError::NotFound) => Ok(SubscribeOutcome::SessionInvalid),
            other => other,
        }
    }

    /// The calling session if it is still live; with `slide`, marks it used (a socket's
    /// heartbeat). `None` if it ended.
    pub async fn touch(
        self,
        by: &Principal,
        slide: bool,
    ) -> Result<Option<SessionInfo>, EngineError> {
        let me = by.session()?;
        let msg = TouchSession {
            session: me.session,
            slide,
        };
        match self.m.engine.call(me.user, msg).await {
            Err(EngineError::NotFound) => Ok(None),
            other => other,
        }
    }

    /// Counts one request of the calling session against its tier's hourly rate: for a
    /// socket frame that is a request over HTTP (the front door counts those).
    pub async fn take_request(self, by: &Principal) -> Result<RequestTaken, EngineError> {
        let me = by.session()?;
        let msg = TakeRequest {
            session: me.session,
        };
        self.m.engine.call(me.user, msg).await
    }

    /// Counts activity events the calling session reports over its socket: all or none,
    /// one request against the tier's hourly rate, only with the user's consent to
    /// analytics.
    pub async fn record_activity(
        self,
        by: &Principal,
        events: Vec<ActivityEvent>,
    ) -> Result<ActivityOutcome, EngineError> {
        let me = by.session()?;
        self.m.analytics().record(me, events, true).await
    }
}
