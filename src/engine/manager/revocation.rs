//! Bulk session revocation, an operator's lever when accounts are under attack: every
//! live session a selector names ends, through each user's actor (passivated users are
//! activated for it), in bounded batches off the actor threads, each user's revocation
//! durable before it is counted.

use std::sync::Arc;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::Sessions;
use super::principal::Principal;
use crate::domain::audit::AuditAction;
use crate::domain::ids::UserId;
use crate::domain::revocation::{Selection, SessionSelector};
use crate::domain::time::Timestamp;
use crate::engine::durable::settled;
use crate::engine::user::RevokeMatching;
use crate::engine::{Engine, EngineError};
use crate::store::Batch;

/// Users asked at once.
const IN_FLIGHT: usize = 32;
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

/// The users whose stored sessions may match (a full read of the stored records, off
/// the actor threads), and how many were read.
fn candidates(
    e: &Engine,
    selection: &Selection,
    started: Timestamp,
) -> Result<(u64, Vec<UserId>), EngineError> {
    let store = e.store.as_ref();
    let (mut scanned, mut found) = (0, Vec::new());
    for item in store.scan_users() {
        let (id, record) = item?;
        scanned += 1;
        let corrupt = |reason: String| EngineError::Corrupt { user: id, reason };
        let key = e
            .keys
            .data_key(store, id)?
            .ok_or_else(|| corrupt("no data key".into()))?;
        let s = crate::engine::state::decode(&record, &key, id)
            .map_err(|err| corrupt(err.to_string()))?;
        // Security events are judged by the actor: the stored ones may lag behind it.
        if selection.tier_in_scope(s.profile.tier)
            && s.sessions.iter().any(|x| selection.may_match(x, started))
        {
            found.push(id);
        }
    }
    Ok((scanned, found))
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
        let (scanned, users) = {
            let (e, selection) = (Arc::clone(&e), Arc::clone(&selection));
            tokio::task::spawn_blocking(move || candidates(&e, &selection, started))
                .await
                .map_err(|err| EngineError::Internal(format!("revocation scan: {err}")))??
        };
        let total = users.len() as u64;
        let mut p = RevocationProgress {
            done: 0,
            users: total,
            matched: 0,
            revoked: 0,
        };
        progress(p);
        let mut asked = futures_util::stream::iter(users)
            .map(|id| {
                let msg = RevokeMatching {
                    selection: Arc::clone(&selection),
                    started,
                };
                let e = Arc::clone(&e);
                async move { e.call_durable(id, msg).await }
            })
            .buffer_unordered(IN_FLIGHT);
        while let Some(answer) = asked.next().await {
            match answer {
                Ok(n) => {
                    p.matched += n as u64;
                    if !selection.dry_run {
                        p.revoked += n as u64;
                    }
                }
                Err(EngineError::NotFound) => {}
                Err(err) => return Err(err),
            }
            p.done += 1;
            if p.done.is_multiple_of(PROGRESS_EVERY) || p.done == total {
                progress(p);
            }
        }
        if !selection.dry_run {
            tracing::warn!(
                matched = p.matched,
                revoked = p.revoked,
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
        })
    }
}
