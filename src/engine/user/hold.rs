//! An operator's hold on the account (incident response): locked, unlocked, or a new
//! password required, for every account a bulk action's selector names. A lock or a
//! reset ends every session at once; until it is lifted (an unlock, a new password), no
//! login completes ([`UserActor::refuse_if_held`]).

use actix::prelude::*;

use super::*;
use crate::domain::hold::AccountAction;
use crate::domain::revocation::Selection;

/// Applies `action` to the account if `selection` selects it (durable); with a dry run
/// only says whether it would. Only accounts as they were at `started` are selected
/// through their sessions.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<Held>, EngineError>")]
pub(crate) struct HoldAccount {
    pub action: AccountAction,
    pub selection: Arc<Selection>,
    pub started: Timestamp,
}

/// What [`HoldAccount`] did.
#[derive(Clone, Debug, Default)]
pub(crate) struct Held {
    /// The selector selected the account (an unlock: a locked one).
    pub selected: bool,
    /// The hold changed (not in a dry run).
    pub changed: bool,
    /// Live sessions ended (in a dry run: that would end).
    pub sessions_ended: usize,
    /// The credential version after it: a reset link is good for this one only.
    pub credential_version: u64,
    /// Where to send a reset link (a reset done).
    pub email: Option<String>,
}

impl Handler<HoldAccount> for UserActor {
    type Result = Result<Durable<Held>, EngineError>;
    fn handle(&mut self, msg: HoldAccount, _: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_hold(&msg))
    }
}

impl UserActor {
    fn on_hold(&mut self, msg: &HoldAccount) -> Result<Held, EngineError> {
        // Not a use of the account: its idle time and the live figures stay as they were.
        let now = self.engine.clock.now();
        let s = &self.state;
        let locked = s.hold.as_ref().is_some_and(|h| h.locked_at.is_some());
        let selected = msg.selection.selects_account(
            self.id(),
            s.profile.tier,
            &s.security.recent,
            &s.sessions,
            msg.started,
            Some(now),
        ) && (msg.action != AccountAction::Unlock || locked);
        let live: Vec<SessionId> = match msg.action.ends_sessions() {
            true => s
                .sessions
                .iter()
                .filter(|x| x.is_active(now))
                .map(|x| x.id)
                .collect(),
            false => Vec::new(),
        };
        let mut held = Held {
            selected,
            credential_version: s.credential_version,
            ..Held::default()
        };
        if !selected {
            return Ok(held);
        }
        held.sessions_ended = live.len();
        if msg.selection.dry_run {
            return Ok(held);
        }
        let mut next = self.state.clone();
        let mut hold = next.hold.take().map(|h| *h).unwrap_or_default();
        held.changed = msg.action.apply(&mut hold, now);
        next.hold = (!hold.is_empty()).then(|| Box::new(hold));
        if msg.action.ends_sessions() {
            next.revoke_all_except(None);
        }
        let kind = match msg.action {
            AccountAction::Lock => SecurityEventKind::AccountLocked,
            AccountAction::Unlock => SecurityEventKind::AccountUnlocked,
            AccountAction::ResetPassword => {
                // A link or a login begun against the old credential cannot complete.
                next.credential_version += 1;
                held.credential_version = next.credential_version;
                held.email = Some(next.profile.email.as_str().to_owned());
                SecurityEventKind::PasswordResetRequired
            }
        };
        let mut e = SecurityEvent::new(kind, now);
        e.detail = Some(format!(
            "by an operator's bulk action; {} sessions ended",
            live.len()
        ));
        self.record_event(&mut next, e);
        self.persist(next, now)?;
        self.sessions_ended(&live, RevokeReason::Held);
        Ok(held)
    }
}
