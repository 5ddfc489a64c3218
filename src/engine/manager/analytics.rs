//! The analytics engine (issue 17): activity in from the user's clients, and the reports
//! over the stored population. Batch work reads the store off the actor threads, never
//! by activating every user.

use super::UserManager;
use super::principal::{Principal, UserSession};
use crate::domain::activity::ActivityEvent;
use crate::domain::ids::UserId;
use crate::engine::EngineError;
use crate::engine::outcomes::ActivityOutcome;
use crate::engine::user::RecordActivity;

/// See [`UserManager::analytics`].
#[derive(Clone, Copy)]
pub struct Analytics<'a> {
    pub(super) m: &'a UserManager,
}

impl Analytics<'_> {
    /// Counts activity events the user `id` reports over HTTP (a server-side client of
    /// its own): the same rules as the socket's frame — all or none, only with the
    /// user's consent to analytics — and the request counts once against the tier's
    /// rate (its authorization counted it).
    pub async fn record_activity(
        self,
        by: &Principal,
        id: UserId,
        events: Vec<ActivityEvent>,
    ) -> Result<ActivityOutcome, EngineError> {
        let session = by.own(id)?;
        let me = UserSession { user: id, session };
        self.record(me, events, false).await
    }

    /// Sends the events to the user's actor; `take_request` when the transport has not
    /// counted the request against the rate yet.
    pub(super) async fn record(
        self,
        me: UserSession,
        events: Vec<ActivityEvent>,
        take_request: bool,
    ) -> Result<ActivityOutcome, EngineError> {
        let msg = RecordActivity {
            session: me.session,
            events,
            take_request,
        };
        match self.m.engine.call(me.user, msg).await {
            Err(EngineError::NotFound) => Ok(ActivityOutcome::SessionInvalid),
            other => other,
        }
    }
}
