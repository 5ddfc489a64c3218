//! What an identity provider says of the user (SCIM): read with the profile, written
//! whole. A deactivation ends every session at once; until the provider activates the
//! account again, no login completes ([`UserActor::refuse_if_held`]).

use actix::prelude::*;

use super::*;
use crate::domain::directory::DirectoryEntry;

/// Returns the profile and the provider's entry (empty if none wrote one).
#[derive(Message, Clone)]
#[rtype(result = "Result<(SharedProfile, DirectoryEntry), EngineError>")]
pub(crate) struct GetDirectory;

/// Replaces the provider's entry (durable, with its audit record). `active` false
/// deactivates the account, true activates it again; replies with the sessions ended.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<usize>, EngineError>")]
pub(crate) struct SetDirectory {
    pub entry: DirectoryEntry,
    pub active: bool,
    pub audit: Option<Audited>,
}

impl Handler<GetDirectory> for UserActor {
    type Result = Result<(SharedProfile, DirectoryEntry), EngineError>;
    fn handle(&mut self, _: GetDirectory, _: &mut Context<Self>) -> Self::Result {
        self.touch();
        let entry = self.state.directory.as_deref().cloned().unwrap_or_default();
        Ok((self.state.profile.clone(), entry))
    }
}

impl Handler<SetDirectory> for UserActor {
    type Result = Result<Durable<usize>, EngineError>;
    fn handle(&mut self, msg: SetDirectory, _: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_set_directory(msg))
    }
}

impl UserActor {
    fn on_set_directory(&mut self, msg: SetDirectory) -> Result<usize, EngineError> {
        let now = self.touch();
        let before = self.state.directory.as_deref().cloned().unwrap_or_default();
        let mut entry = msg.entry;
        // The time of a deactivation is the server's, kept while it lasts.
        entry.deactivated_at = match (msg.active, before.deactivated_at) {
            (true, _) => None,
            (false, Some(since)) => Some(since),
            (false, None) => Some(now),
        };
        if entry == before && self.state.directory.is_some() {
            return Ok(0);
        }
        let mut next = self.state.clone();
        next.profile.make_mut().updated_at = now;
        let deactivating = before.is_active() && !entry.is_active();
        next.directory = Some(Box::new(entry));
        let mut ids = Vec::new();
        if deactivating {
            ids = next.session_ids_except(None);
            next.revoke_all_except(None);
            let mut e = SecurityEvent::new(SecurityEventKind::SessionRevoked, now);
            e.detail = Some(format!(
                "account deactivated by its identity provider; {} sessions ended",
                ids.len()
            ));
            self.record_event(&mut next, e);
        }
        self.write(next, now, msg.audit.into_iter().collect())?;
        if !ids.is_empty() {
            self.sessions_ended(&ids, RevokeReason::Deactivated);
        }
        Ok(ids.len())
    }

    /// Refuses to open a session (or a login challenge) for an account its identity
    /// provider deactivated, or that an operator holds (locked, or a new password
    /// required).
    pub(super) fn refuse_if_held(&self) -> Result<(), EngineError> {
        if let Some(d) = self.state.directory.as_deref()
            && !d.is_active()
        {
            return Err(EngineError::Forbidden(DEACTIVATED));
        }
        match self.state.hold.as_deref().and_then(|h| h.refusal()) {
            Some(why) => Err(EngineError::Forbidden(why)),
            None => Ok(()),
        }
    }
}

/// The refusal of a login to a deactivated account.
pub(crate) const DEACTIVATED: &str = "this account is deactivated by its identity provider";
