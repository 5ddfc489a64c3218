//! A sync of a linked account's listening history (issue 21): the recent plays read
//! with the link's token, matched to the catalog and imported into the user's history.
//!
//! A provider that refuses the access token (401) gets one forced refresh and one
//! retry: a token revoked early, or one the provider forgot, is renewed without the
//! user. Refused again, or refused for a scope the grant lacks (403), the link is
//! marked `reauth_required` and the user's sockets told, so the next sync answers at
//! once instead of calling the provider with a token it refuses. A refusal that finds
//! the link renewed meanwhile (by another caller's refresh) is retried with the newer
//! token instead, up to [`MAX_READS`] reads in all.

use super::integrations::{Integrations, Synced, busy, key_refused};
use super::principal::Principal;
use crate::domain::activity::ActivityEvent;
use crate::domain::ids::UserId;
use crate::domain::link::LinkReason;
use crate::engine::EngineError;
use crate::engine::outcomes::ImportOutcome;
use crate::engine::user::{ApiRefused, ImportHistory, Renew};
use crate::integrations::history::{self, HistoryError, Play};

/// The most reads of one sync: the first, one after a refresh, and one with a token
/// another caller brought meanwhile.
const MAX_READS: u32 = 3;

impl Integrations<'_> {
    /// Reads the recent listening of the user's link to `provider` (the user, or an
    /// operator) and imports it into the user's history: each play once, however often
    /// the same window is synced, matched to a catalog track by ISRC or by artist and
    /// title where the catalog has it. Needs the user's consent to analytics.
    pub async fn sync(
        self,
        by: &Principal,
        id: UserId,
        provider: &str,
    ) -> Result<Synced, EngineError> {
        by.on(id)?;
        let e = &self.m.engine;
        let p = e
            .integrations
            .get(provider)
            .ok_or(EngineError::NoSuch("provider"))?;
        // The server's own credentials first: a refusal for want of them is not the
        // user's grant and must not mark the link.
        super::integrations::ready(provider, p.clone())?;
        let (Some(api), Some(base)) = (p.config.history, p.config.api_base_url.as_ref()) else {
            return Err(EngineError::Conflict(format!(
                "the {provider} integration has no listening history to sync"
            )));
        };
        let mut access = self.access(id, provider, true).await?;
        let mut renewed = false;
        let mut reads = 0;
        let plays = loop {
            reads += 1;
            let reader = history::Reader {
                token: &access.token,
                account: access.account.as_deref(),
                api_key: p.client_id.as_deref(),
                secret: p.client_secret.as_ref().map(|s| s.expose()),
                synced_at: access.synced_at,
            };
            let read = history::recent_plays(&e.integrations.http, api, base, reader).await;
            let refusal = match read {
                Ok(plays) => break plays,
                Err(HistoryError::Unauthorized) if access.refreshable && !renewed => {
                    renewed = true;
                    let refused = Renew::Refused(access.token.clone());
                    access = self.access_as(id, provider, true, refused).await?;
                    continue;
                }
                Err(HistoryError::Unauthorized) => LinkReason::TokenRefused,
                Err(HistoryError::MissingScope) => LinkReason::ScopeMissing,
                Err(HistoryError::Private) => {
                    return Err(EngineError::Conflict(format!(
                        "{provider}: {}; the user can make it visible in its {provider} settings",
                        HistoryError::Private
                    )));
                }
                Err(HistoryError::Busy { retry_after, .. }) => {
                    return Err(busy(provider, retry_after));
                }
                Err(HistoryError::KeyRefused(m)) => return Err(key_refused(provider, &m)),
                Err(HistoryError::Unreachable(m)) => {
                    return Err(EngineError::Provider(format!("{provider}: {m}")));
                }
            };
            let refused = ApiRefused {
                provider: provider.to_owned(),
                access: access.token.clone(),
                reason: refusal,
            };
            if !e.call_durable(id, refused).await? {
                // The link holds another token by now (another caller refreshed since
                // this read), or is no longer active: the token it holds, or why not.
                if reads < MAX_READS {
                    access = self.access(id, provider, true).await?;
                    continue;
                }
                return Err(EngineError::Unavailable);
            }
            let why = match refusal {
                LinkReason::ScopeMissing => {
                    "the grant lacks the scope to read the listening history"
                }
                _ => "the provider refused the access token",
            };
            return Err(EngineError::ReauthRequired(format!(
                "{provider}: {why}; link again"
            )));
        };
        self.import_plays(by, id, provider, &plays).await
    }

    /// `plays` matched to the catalog and imported into the user's history.
    async fn import_plays(
        self,
        by: &Principal,
        id: UserId,
        provider: &str,
        plays: &[Play],
    ) -> Result<Synced, EngineError> {
        let e = &self.m.engine;
        let mut matched = 0;
        // Each play also by the provider's own track id: a play imported unmatched and
        // matched to a catalog track by a later sync is still the same play.
        let aliases = plays
            .iter()
            .map(|play| {
                // The play as an unmatched import keeps it (ids carry their provider).
                let own = ActivityEvent::TrackPlayed {
                    track_id: play.track_id.clone(),
                    at: play.played_at,
                    duration_ms: 0,
                };
                own.fingerprint()
            })
            .collect();
        let events: Vec<ActivityEvent> = plays
            .iter()
            .map(|play| {
                let track = e
                    .catalog
                    .match_track(play.isrc.as_deref(), &play.artists, &play.title);
                matched += usize::from(track.is_some());
                // A provider that reports no length (Last.fm): the catalog's.
                let duration_ms = match (&track, play.duration_ms) {
                    (Some(t), 0) => e
                        .catalog
                        .with(t, |entry, _| u64::from(entry.duration_ms))
                        .unwrap_or(0),
                    (_, d) => d,
                };
                ActivityEvent::TrackPlayed {
                    track_id: track.map_or_else(|| play.track_id.clone(), |t| t.to_string()),
                    at: play.played_at,
                    duration_ms,
                }
            })
            .collect();
        let import = ImportHistory {
            events,
            by: by.audit_actor(),
            synced: Some(provider.to_owned()),
            aliases,
        };
        match e.call_durable(id, import).await? {
            ImportOutcome::Imported {
                accepted,
                duplicates,
            } => Ok(Synced {
                provider: provider.to_owned(),
                fetched: plays.len(),
                matched,
                imported: accepted,
                duplicates,
                skipped: plays.len() - accepted - duplicates,
            }),
            ImportOutcome::ConsentRequired { reason } => Err(EngineError::ConsentRequired(reason)),
        }
    }
}
