//! Bulk account actions, levers of incident response beside the bulk revocation: lock,
//! unlock, or require a new password of every account a selector names — through each
//! user's actor (passivated users are activated for it), in bounded batches off the
//! actor threads, each change durable before it is counted. A reset emails each user a
//! single-use link to set the new password.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::principal::Principal;
use super::revocation::{ask_each, begin, candidates};
use super::{Accounts, UserManager};
use crate::domain::audit::AuditAction;
use crate::domain::hold::AccountAction;
use crate::domain::ids::UserId;
use crate::domain::revocation::SessionSelector;
use crate::domain::time::Timestamp;
use crate::engine::EngineError;
use crate::engine::user::{Held, HoldAccount};

/// What a bulk account action did (or, in a dry run, would do).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BulkHold {
    /// What was done.
    pub action: AccountAction,
    /// Nothing was changed, only counted.
    pub dry_run: bool,
    /// When it started: accounts are selected through the sessions live then.
    pub started_at: Timestamp,
    /// Stored users read.
    pub scanned: u64,
    /// Users that could be selected, asked.
    pub users: u64,
    /// Accounts the selector selected (an unlock: the locked ones).
    pub matched: u64,
    /// Accounts changed (durably): locked, unlocked, or made to set a new password; 0
    /// in a dry run. An account locked already is matched but not changed.
    pub changed: u64,
    /// Live sessions ended (in a dry run: that would end).
    pub sessions_ended: u64,
    /// Reset links emailed (queued to the notifier).
    pub links_sent: u64,
    /// Reset links that could not be queued: ask the reset again for those users.
    pub links_unsent: u64,
    /// Users whose stored record could not be read, or whose actor failed to answer:
    /// left as they were (logged with their ids); run again to retry them.
    pub failed: u64,
    /// An operator cancelled it: the users not yet asked were left alone.
    pub cancelled: bool,
}

/// How far a bulk account action is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HoldProgress {
    /// Users asked so far.
    pub done: u64,
    /// Users to ask.
    pub users: u64,
    /// Accounts selected so far.
    pub matched: u64,
    /// Accounts changed so far: each is durable before it is counted here.
    pub changed: u64,
}

/// Asks one user, and emails its reset link when a reset was done.
async fn hold_one(
    m: UserManager,
    id: UserId,
    msg: HoldAccount,
) -> Result<(Held, Option<bool>), EngineError> {
    let held = m.engine.call_durable(id, msg.clone()).await?;
    let sent = match (&held.email, held.changed, msg.action) {
        (Some(to), true, AccountAction::ResetPassword) => Some(
            m.provisioning()
                .send_reset(id, held.credential_version, to.clone())
                .await?,
        ),
        _ => None,
    };
    Ok((held, sent))
}

impl Accounts<'_> {
    /// Applies `action` to every account `selector` selects (operators and the
    /// system; audited before anything changes): the users it names by tier, id and
    /// security events, and — when it names sessions by network or creation time —
    /// those with a session it matches. Reports progress as users are done; a change
    /// reported is durable. Users deleted meanwhile are passed over.
    pub async fn hold_matching(
        self,
        by: &Principal,
        action: AccountAction,
        selector: SessionSelector,
        mut progress: impl FnMut(HoldProgress) + Send + 'static,
    ) -> Result<BulkHold, EngineError> {
        by.privileged()?;
        let selection = Arc::new(selector.validate()?);
        let started = self.m.now();
        let e = Arc::clone(&self.m.engine);
        let record = AuditAction::AccountsHeldInBulk {
            action,
            selector: selector.clone(),
        };
        let (_running, cancel) = begin(self.m, by, selection.dry_run, record).await?;
        let (scanned, users, mut failed) = {
            let selection = Arc::clone(&selection);
            candidates(&e, move |id, s| {
                let locked = s.hold.as_ref().is_some_and(|h| h.locked_at.is_some());
                // Security events are judged by the actor: the stored ones may lag.
                selection.tier_in_scope(id, s.profile.tier)
                    && (!selection.names_sessions()
                        || s.sessions.iter().any(|x| selection.may_match(x, started)))
                    && (action != AccountAction::Unlock || locked)
            })
            .await?
        };
        let total = users.len() as u64;
        let mut p = HoldProgress {
            done: 0,
            users: total,
            matched: 0,
            changed: 0,
        };
        let (mut sessions_ended, mut links_sent, mut links_unsent) = (0, 0, 0);
        progress(p);
        let ask = |id| {
            let msg = HoldAccount {
                action,
                selection: Arc::clone(&selection),
                started,
            };
            hold_one(self.m.clone(), id, msg)
        };
        let asked = ask_each(
            users,
            &cancel,
            action.as_str(),
            ask,
            |answer, done, report| {
                if let Some((held, sent)) = answer {
                    p.matched += u64::from(held.selected);
                    p.changed += u64::from(held.changed);
                    sessions_ended += held.sessions_ended as u64;
                    match sent {
                        Some(true) => links_sent += 1,
                        Some(false) => links_unsent += 1,
                        None => {}
                    }
                }
                p.done = done;
                if report {
                    progress(p);
                }
            },
        )
        .await;
        failed += asked.failed;
        let cancelled = asked.cancelled;
        if !selection.dry_run {
            tracing::warn!(
                action = action.as_str(),
                matched = p.matched,
                changed = p.changed,
                sessions_ended,
                cancelled,
                "bulk account action done"
            );
        }
        let done = BulkHold {
            action,
            dry_run: selection.dry_run,
            started_at: started,
            scanned,
            users: total,
            matched: p.matched,
            changed: p.changed,
            sessions_ended,
            links_sent,
            links_unsent,
            failed,
            cancelled,
        };
        if !done.dry_run {
            let data = serde_json::json!({ "selector": selector, "result": done });
            e.realtime
                .publish_operator("accounts_held", self.m.now(), data);
        }
        Ok(done)
    }
}
