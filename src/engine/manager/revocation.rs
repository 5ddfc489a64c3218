//! Bulk session revocation, an operator's lever when accounts are under attack: every
//! live session a selector names ends, through each user's actor (passivated users are
//! activated for it), in bounded batches off the actor threads, each user's revocation
//! durable before it is counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::Sessions;
use super::principal::Principal;
use crate::domain::audit::AuditAction;
use crate::domain::ids::UserId;
use crate::domain::revocation::SessionSelector;
use crate::domain::time::Timestamp;
use crate::engine::durable::settled;
use crate::engine::state::UserState;
use crate::engine::user::RevokeMatching;
use crate::engine::{Engine, EngineError};
use crate::store::Batch;

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

/// Takes the slot (one bulk revocation or account action at a time: two would ask the
/// same actors twice, and a cancel names one), or says who has it.
pub(super) fn claim(e: &Engine) -> Result<(Running<'_>, Arc<AtomicBool>), EngineError> {
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

/// The users whose stored record `keep` takes (a full read of the stored records, off
/// the actor threads), how many were read, and how many could not be (deleted
/// meanwhile, or damaged: logged).
pub(super) async fn candidates(
    e: &Arc<Engine>,
    keep: impl Fn(UserId, &UserState) -> bool + Send + 'static,
) -> Result<(u64, Vec<UserId>, u64), EngineError> {
    let e = Arc::clone(e);
    tokio::task::spawn_blocking(move || scan(&e, keep))
        .await
        .map_err(|err| EngineError::Internal(format!("bulk scan: {err}")))?
}

fn scan(
    e: &Engine,
    keep: impl Fn(UserId, &UserState) -> bool,
) -> Result<(u64, Vec<UserId>, u64), EngineError> {
    let store = e.store.as_ref();
    let (mut scanned, mut found, mut unreadable) = (0, Vec::new(), 0);
    for item in store.scan_users() {
        let (id, record) = item?;
        scanned += 1;
        let opened = e
            .keys
            .data_key(store, id)?
            .ok_or_else(|| "no data key (deleted meanwhile?)".to_owned())
            .and_then(|key| {
                crate::engine::state::decode(&record, &key, id).map_err(|err| err.to_string())
            });
        let s = match opened {
            Ok(s) => s,
            Err(reason) => {
                tracing::warn!(user = %id, %reason, "a record a bulk operation could not read");
                unreadable += 1;
                continue;
            }
        };
        if keep(id, &s) {
            found.push(id);
        }
    }
    Ok((scanned, found, unreadable))
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
        let (_running, cancel) = claim(&self.m.engine)?;
        if !selection.dry_run
            && let Some(actor) = by.audit_actor()
        {
            let action = AuditAction::SessionsRevokedInBulk {
                selector: selector.clone(),
            };
            let ticket = e
                .commit
                .submit(Batch::default(), vec![(actor, action, started)], None);
            settled(e.commit.wait(&ticket).await)?;
        }
        // The network a session was last used from is soft state: the live actors write
        // theirs first, so the scan judges it as of now.
        self.m.snapshot_live().await?;
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
        // A cancel stops the asking; the users already asked are answered and counted.
        let not_cancelled = |_: &UserId| std::future::ready(!cancel.load(Ordering::Relaxed));
        let mut asked = futures_util::stream::iter(users)
            .take_while(not_cancelled)
            .map(|id| {
                let msg = RevokeMatching {
                    selection: Arc::clone(&selection),
                    started,
                };
                let e = Arc::clone(&e);
                async move { (id, e.call_durable(id, msg).await) }
            })
            .buffer_unordered(IN_FLIGHT);
        while let Some((id, answer)) = asked.next().await {
            match answer {
                Ok(n) => {
                    p.matched += n as u64;
                    if !selection.dry_run {
                        p.revoked += n as u64;
                    }
                }
                Err(EngineError::NotFound) => {}
                // One user's failure does not leave the others' sessions alive.
                Err(err) => {
                    tracing::warn!(user = %id, error = %err, "a user's bulk revocation failed");
                    failed += 1;
                }
            }
            p.done += 1;
            if p.done.is_multiple_of(PROGRESS_EVERY) || p.done == total {
                progress(p);
            }
        }
        let cancelled = cancel.load(Ordering::Relaxed);
        if cancelled || p.done < total {
            progress(p);
        }
        if !selection.dry_run {
            tracing::warn!(
                matched = p.matched,
                revoked = p.revoked,
                cancelled,
                "bulk session revocation done"
            );
        }
        Ok(BulkRevocation {
            dry_run: selection.dry_run,
            started_at: started,
            scanned,
            users: total,
            matched: p.matched,
            revoked: p.revoked,
            failed,
            cancelled,
        })
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
