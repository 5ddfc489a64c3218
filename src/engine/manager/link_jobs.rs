//! The integration hub's scheduled work (the `integrations` job): every link whose
//! listening history is due is synced (its last sync older than
//! `integrations.sync_interval`, with the user's consent to analytics), and every link
//! whose refresh token has lain unused for `integrations.idle_refresh_after` is
//! refreshed before the provider expires it. The links are found by reading the stored
//! records off the actor threads; only users with something due are activated, a few
//! at a time.

use std::sync::Arc;

use futures_util::StreamExt as _;
use serde::Serialize;

use super::integrations::Integrations;
use super::principal::Principal;
use crate::domain::consent::Purpose;
use crate::domain::ids::UserId;
use crate::domain::link::LinkStatus;
use crate::domain::time::Timestamp;
use crate::engine::user::Renew;
use crate::engine::{Engine, EngineError};

/// Users worked on at once.
const AT_ONCE: usize = 8;

/// One link with work due.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Due {
    user: UserId,
    provider: String,
    sync: bool,
    refresh: bool,
}

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LinksRun {
    /// Stored users read.
    pub users_read: usize,
    /// Links synced.
    pub synced: usize,
    /// Plays those syncs brought into the histories.
    pub plays_imported: usize,
    /// Idle links whose tokens were refreshed.
    pub refreshed: usize,
    /// Links the provider refused (now `reauth_required`, or needing a new link).
    pub reauth_required: usize,
    /// Links whose provider was rate limiting or failing (tried again next run).
    pub busy: usize,
    /// Links that failed otherwise (tried again next run; the log says why).
    pub failed: usize,
}

/// The links due at `now` in the stored records.
fn due_links(e: &Engine, now: Timestamp) -> Result<(usize, Vec<Due>), EngineError> {
    let cfg = &e.config.integrations;
    let min_age = e.config.privacy.min_age;
    let mut due = Vec::new();
    let users = super::ops::each_stored_state(e, |id, s| {
        let Some(links) = s.links.as_deref() else {
            return;
        };
        let consented = s.consents.allows(Purpose::Analytics, min_age, now).is_ok();
        for a in links
            .accounts
            .iter()
            .filter(|a| a.status == LinkStatus::Active)
        {
            let Some(p) = e.integrations.get(&a.provider) else {
                continue;
            };
            let sync = consented
                && p.config.history.is_some()
                && a.synced_at
                    .is_none_or(|t| now.since(t) >= cfg.sync_interval);
            let last_refresh = a.refreshed_at.unwrap_or(a.linked_at);
            let refresh =
                a.tokens.refresh.is_some() && now.since(last_refresh) >= cfg.idle_refresh_after;
            if sync || refresh {
                due.push(Due {
                    user: id,
                    provider: a.provider.clone(),
                    sync,
                    refresh,
                });
            }
        }
    })?;
    Ok((users, due))
}

/// How a link's work ended, for the counts.
enum Ended {
    Done {
        synced: bool,
        plays: usize,
        refreshed: bool,
    },
    Reauth,
    Busy,
    Failed,
}

impl Integrations<'_> {
    /// Syncs and refreshes every link due now (the `integrations` job; an operator or
    /// the system).
    pub async fn run_due(self, by: &Principal) -> Result<LinksRun, EngineError> {
        by.privileged()?;
        let e = Arc::clone(&self.m.engine);
        let now = e.clock.now();
        let scan = Arc::clone(&e);
        let (users, due) = tokio::task::spawn_blocking(move || due_links(&scan, now))
            .await
            .map_err(|err| EngineError::Internal(format!("link scan: {err}")))??;
        let mut run = LinksRun {
            users_read: users,
            ..LinksRun::default()
        };
        let mut ends = futures_util::stream::iter(due)
            .map(|d| self.work(by, d))
            .buffer_unordered(AT_ONCE);
        while let Some(end) = ends.next().await {
            match end {
                Ended::Done {
                    synced,
                    plays,
                    refreshed,
                } => {
                    run.synced += usize::from(synced);
                    run.plays_imported += plays;
                    run.refreshed += usize::from(refreshed);
                }
                Ended::Reauth => run.reauth_required += 1,
                Ended::Busy => run.busy += 1,
                Ended::Failed => run.failed += 1,
            }
        }
        Ok(run)
    }

    /// One link's work: the idle refresh first, then the sync (with the new token).
    async fn work(self, by: &Principal, d: Due) -> Ended {
        let sorted = |err: EngineError| {
            tracing::warn!(user = %d.user, provider = d.provider, error = %err, "scheduled link work failed");
            match err {
                EngineError::ReauthRequired(_) => Ended::Reauth,
                EngineError::ProviderBusy { .. } | EngineError::Unavailable => Ended::Busy,
                _ => Ended::Failed,
            }
        };
        if d.refresh
            && let Err(err) = self.access_as(d.user, &d.provider, false, Renew::Now).await
        {
            return sorted(err);
        }
        let mut plays = 0;
        if d.sync {
            match self.sync(by, d.user, &d.provider).await {
                Ok(s) => plays = s.imported,
                // Withdrawn since the scan: nothing to do.
                Err(EngineError::ConsentRequired(_)) => {}
                Err(err) => return sorted(err),
            }
        }
        Ended::Done {
            synced: d.sync,
            plays,
            refreshed: d.refresh,
        }
    }
}
