//! Bulk session revocation, an operator's lever when accounts are under attack: every
//! live session a selector names ends, through each user's actor (passivated users are
//! activated for it), in bounded batches off the actor threads, each user's revocation
//! durable before it is counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::principal::Principal;
use super::{Sessions, UserManager};
use crate::domain::audit::AuditAction;
use crate::domain::ids::UserId;
use crate::domain::revocation::SessionSelector;
use crate::domain::time::Timestamp;
use crate::engine::state::UserState;
use crate::engine::user::RevokeMatching;
use crate::engine::{Engine, EngineError};

/// Users asked at once.
const IN_FLIGHT: usize = 128;
/// A progress report every this many users.
const PROGRESS_EVERY: u64 = 100;

/// What a bulk revocation did (or, in a dry run, would do).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BulkRevocation {
    /// Nothing was ended, only counted.
    pub dry_run: bool,
    /// When it started: sessions created later are not ended.
    pub started_at: Timestamp,
    /// Stored users read.
    pub scanned: u64,
    /// Users whose stored sessions could match, asked.
    pub users: u64,
    /// Live sessions the selector matched.
    pub matched: u64,
    /// Sessions ended (durably); 0 in a dry run.
    pub revoked: u64,
    /// Users whose stored record could not be read, or whose actor failed to answer:
    /// left as they were (logged with their ids); run again to retry them.
    pub failed: u64,
    /// An operator cancelled it: the users not yet asked were left alone.
    pub cancelled: bool,
}

/// How far a bulk revocation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RevocationProgress {
    /// Users asked so far.
    pub done: u64,
    /// Users to ask.
    pub users: u64,
    /// Sessions matched so far.
    pub matched: u64,
    /// Sessions ended so far: each is durable before it is counted here.
    pub revoked: u64,
}

/// Holds the engine's one bulk revocation slot while a revocation runs.
pub(super) struct Running<'a>(&'a Engine);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        *self
            .0
            .bulk_revocation
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// How every bulk operation starts: it takes the slot, makes `record` durable in the
/// audit log before anything changes (not for a dry run), and has the live actors write
/// their soft state, so the scan judges a session's last network as of now.
pub(super) async fn begin<'a>(
    m: &'a UserManager,
    by: &Principal,
    dry_run: bool,
    record: AuditAction,
) -> Result<(Running<'a>, Arc<AtomicBool>), EngineError> {
    let (running, cancel) = claim(&m.engine)?;
    if !dry_run && let Some(actor) = by.audit_actor() {
        m.audit(actor, record).await?;
    }
    m.snapshot_live().await?;
    Ok((running, cancel))
}

/// Takes the slot (one bulk revocation or account action at a time: two would ask the
/// same actors twice, and a cancel names one), or says who has it.
fn claim(e: &Engine) -> Result<(Running<'_>, Arc<AtomicBool>), EngineError> {
    let mut slot = e.bulk_revocation.lock().unwrap_or_else(|p| p.into_inner());
    if slot.is_some() {
        return Err(EngineError::Conflict(
            "a bulk revocation or account action is running: wait for it, or cancel it \
             (POST /api/v1/admin/sessions/revoke/cancel)"
                .into(),
        ));
    }
    let flag = Arc::new(AtomicBool::new(false));
    *slot = Some(Arc::clone(&flag));
    Ok((Running(e), flag))
}

/// The users whose stored record `keep` takes (a full read of the stored records over
/// every core, off the actor threads), how many were read, and how many could not be
/// (deleted meanwhile, or damaged: logged).
pub(super) async fn candidates(
    e: &Arc<Engine>,
    keep: impl Fn(UserId, &UserState) -> bool + Send + Sync + 'static,
) -> Result<(u64, Vec<UserId>, u64), EngineError> {
    let e = Arc::clone(e);
    tokio::task::spawn_blocking(move || crate::engine::population::select(&e, keep))
        .await
        .map_err(|err| EngineError::Internal(format!("bulk scan: {err}")))?
}

/// How [`ask_each`] went.
pub(super) struct Asked {
    /// Users whose actor failed to answer (logged with their ids).
    pub failed: u64,
    /// An operator cancelled it.
    pub cancelled: bool,
}

/// Asks each of `users` with `ask`, [`IN_FLIGHT`] at a time, until all are answered or
/// `cancel` is raised (the users already asked are answered and counted). Each answer
/// goes to `step` with the users done so far and whether to report progress now (every
/// [`PROGRESS_EVERY`] users, at the last, and once more after a cancel); a user deleted
/// meanwhile or whose actor failed gives `None` (a failure is logged and counted: one
/// user's failure does not stop the others).
pub(super) async fn ask_each<R, F>(
    users: Vec<UserId>,
    cancel: &AtomicBool,
    what: &str,
    ask: impl Fn(UserId) -> F,
    mut step: impl FnMut(Option<R>, u64, bool),
) -> Asked
where
    F: std::future::Future<Output = Result<R, EngineError>>,
{
    let total = users.len() as u64;
    let not_cancelled = |_: &UserId| std::future::ready(!cancel.load(Ordering::Relaxed));
    let mut asked = futures_util::stream::iter(users)
        .take_while(not_cancelled)
        .map(|id| {
            let answer = ask(id);
            async move { (id, answer.await) }
        })
        .buffer_unordered(IN_FLIGHT);
    let (mut done, mut failed) = (0u64, 0u64);
    while let Some((id, answer)) = asked.next().await {
        done += 1;
        let report = done.is_multiple_of(PROGRESS_EVERY) || done == total;
        match answer {
            Ok(r) => step(Some(r), done, report),
            Err(EngineError::NotFound) => step(None, done, report),
            Err(err) => {
                tracing::warn!(user = %id, error = %err, "a user's bulk {what} failed");
                failed += 1;
                step(None, done, report);
            }
        }
    }
    let cancelled = cancel.load(Ordering::Relaxed);
    if cancelled || done < total {
        step(None, done, true);
    }
    Asked { failed, cancelled }
}

impl Sessions<'_> {
    /// Ends every live session `selector` names that existed when the call started
    /// (operators and the system; audited before anything ends). Reports progress as
    /// users are done; a revocation reported is durable. Users deleted meanwhile are
    /// passed over.
    pub async fn revoke_matching(
        self,
        by: &Principal,
        selector: SessionSelector,
        mut progress: impl FnMut(RevocationProgress) + Send + 'static,
    ) -> Result<BulkRevocation, EngineError> {
        by.privileged()?;
        let selection = Arc::new(selector.validate()?);
        let started = self.m.now();
        let e = Arc::clone(&self.m.engine);
        let record = AuditAction::SessionsRevokedInBulk {
            selector: selector.clone(),
        };
        let (_running, cancel) = begin(self.m, by, selection.dry_run, record).await?;
        let (scanned, users, mut failed) = {
            let selection = Arc::clone(&selection);
            // Security events are judged by the actor: the stored ones may lag behind it.
            candidates(&e, move |id, s| {
                selection.tier_in_scope(id, s.profile.tier)
                    && s.sessions.iter().any(|x| selection.may_match(x, started))
            })
            .await?
        };
        let total = users.len() as u64;
        let mut p = RevocationProgress {
            done: 0,
            users: total,
            matched: 0,
            revoked: 0,
        };
        progress(p);
        let ask = |id| {
            let msg = RevokeMatching {
                selection: Arc::clone(&selection),
                started,
            };
            let e = Arc::clone(&e);
            async move { e.call_durable(id, msg).await }
        };
        let asked = ask_each(users, &cancel, "revocation", ask, |n, done, report| {
            let n = n.unwrap_or(0) as u64;
            p.matched += n;
            if !selection.dry_run {
                p.revoked += n;
            }
            p.done = done;
            if report {
                progress(p);
            }
        })
        .await;
        failed += asked.failed;
        let cancelled = asked.cancelled;
        if !selection.dry_run {
            tracing::warn!(
                matched = p.matched,
                revoked = p.revoked,
                cancelled,
                "bulk session revocation done"
            );
        }
        let done = BulkRevocation {
            dry_run: selection.dry_run,
            started_at: started,
            scanned,
            users: total,
            matched: p.matched,
            revoked: p.revoked,
            failed,
            cancelled,
        };
        if !done.dry_run {
            let data = serde_json::json!({ "selector": selector, "result": done });
            e.realtime
                .publish_operator("sessions_revoked", self.m.now(), data);
        }
        Ok(done)
    }

    /// Cancels the bulk revocation or account action running (operators and the
    /// system): it asks no more users, and reports what it did. `false` if none runs.
    pub fn cancel_revocation(self, by: &Principal) -> Result<bool, EngineError> {
        by.privileged()?;
        let slot = self
            .m
            .engine
            .bulk_revocation
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match slot.as_ref() {
            Some(flag) => {
                flag.store(true, Ordering::Relaxed);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
