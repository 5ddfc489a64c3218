//! The integration hub: linked accounts, their tokens encrypted per user and kept in
//! the user's actor (issue 21).
//!
//! A link is begun by the user's own session ([`Integrations::link`]): the actor keeps
//! the `state`'s secret and the PKCE verifier, and the user is sent to the provider.
//! The provider sends the user back to the fixed callback address with the `state`,
//! which names the user and proves the link begun ([`Integrations::callback`]); the code
//! is exchanged on this task (never on an actor thread) and the tokens go to the actor.
//!
//! A call that needs the provider's API asks the actor for a token
//! ([`Integrations::access`]); the actor is the single flight of refreshes, and the one
//! caller it hands the refresh to runs it on a task of its own, so a caller that goes
//! away does not leave the others waiting. A sync ([`Integrations::sync`]) reads the
//! recent plays with that token and imports them into the user's history, once each
//! (`history_sync.rs`).

use base64::Engine as _;
use serde::Serialize;

use super::UserManager;
use super::principal::Principal;
use crate::domain::ids::UserId;
use crate::domain::integration::AuthMode;
use crate::domain::link::{
    self, LinkTokens, LinkView, LinkedAccount, PendingLink, STATE_SECRET_LEN,
};
use crate::domain::validation::ValidationError;
use crate::engine::EngineError;
use crate::engine::user::{
    Access, AccessAnswer, AccessFor, BeginLink, GetLinks, PutLink, Refreshed, RemoveLink, Renew,
    TakeLink,
};
use crate::integrations::tokens::{self, TokenError};
use crate::integrations::{Availability, Provider, ProviderInfo, oauth};

/// See [`UserManager::integrations`].
#[derive(Clone, Copy)]
pub struct Integrations<'a> {
    pub(super) m: &'a UserManager,
}

/// A link begun: where to send the user.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct LinkStart {
    /// The provider's authorization address, with the `state` and PKCE challenge.
    pub authorization_url: String,
    /// The `state` the provider will bring back (single use).
    pub state: String,
    /// When the `state` stops being good.
    pub expires_at: crate::domain::time::Timestamp,
}

/// What a link is made with, besides the provider's consent.
#[derive(Clone, Default)]
pub struct LinkWith {
    /// Apple Music: the Music User Token MusicKit gave the client.
    pub music_user_token: Option<String>,
}

impl std::fmt::Debug for LinkWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkWith").finish_non_exhaustive()
    }
}

/// A link begun, or made at once.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum LinkAnswer {
    /// Send the user to the provider (OAuth 2.0, Last.fm).
    Started(LinkStart),
    /// The link is made (Apple Music).
    Linked(LinkView),
    /// The link is made, with the companion's key shown this once (the creative
    /// tools).
    Companion(super::CompanionKey),
}

/// What the provider sent the user back with.
#[derive(Clone, Debug, Default)]
pub struct Callback {
    /// The `state` of the link begun.
    pub state: Option<String>,
    /// The authorization code (OAuth 2.0).
    pub code: Option<String>,
    /// The token (Last.fm).
    pub token: Option<String>,
    /// The provider's error (the user declined: `access_denied`).
    pub error: Option<String>,
    /// Its description.
    pub error_description: Option<String>,
}

/// What an unlink did.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Unlinked {
    /// The provider's id.
    pub provider: String,
    /// Whether the provider confirmed the revocation of the tokens (false when it has
    /// no revocation endpoint, or failed: the link is deleted here either way).
    pub revoked: bool,
}

/// What a sync of a link's listening history brought.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Synced {
    /// The provider's id.
    pub provider: String,
    /// Plays the provider reported.
    pub fetched: usize,
    /// Of them, plays of a catalog track (by ISRC, or by artist and title).
    pub matched: usize,
    /// Plays new to the user's history.
    pub imported: usize,
    /// Plays an earlier sync imported already.
    pub duplicates: usize,
    /// Plays left out: from before the account existed, or that the history's rules
    /// refuse.
    pub skipped: usize,
}

/// `state` = base64url(user id ‖ secret): the callback finds the user from it, and the
/// user's actor checks the secret.
fn encode_state(user: UserId, secret: &[u8; STATE_SECRET_LEN]) -> String {
    let mut raw = Vec::with_capacity(16 + STATE_SECRET_LEN);
    raw.extend_from_slice(user.as_bytes());
    raw.extend_from_slice(secret);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_state(state: &str) -> Result<(UserId, Vec<u8>), EngineError> {
    let bad = || EngineError::Validation(ValidationError::new("state", "the state is malformed"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(state.trim())
        .map_err(|_| bad())?;
    if raw.len() != 16 + STATE_SECRET_LEN {
        return Err(bad());
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&raw[..16]);
    Ok((UserId::from_bytes(id), raw[16..].to_vec()))
}

/// Last.fm's authorization address: the API key and a callback carrying the `state`
/// (Last.fm adds its `token` to it).
fn lastfm_authorization(
    p: &Provider,
    mut cb: url::Url,
    state: &str,
) -> Result<url::Url, EngineError> {
    let base = p.config.authorization_url.as_ref().ok_or_else(|| {
        EngineError::Conflict(format!("{} has no authorization_url", p.config.id))
    })?;
    let key = p.client_id.as_deref().unwrap_or_default();
    cb.query_pairs_mut().append_pair("state", state);
    Ok(crate::integrations::lastfm::authorization_url(
        base, key, &cb,
    ))
}

/// A provider's 429 or 5xx: retry after its `Retry-After` (30 s without one).
pub(super) fn busy(provider: &str, retry_after: Option<std::time::Duration>) -> EngineError {
    let retry_after = retry_after.map_or(30, |d| d.as_secs().max(1));
    EngineError::ProviderBusy {
        message: format!("{provider} is rate limiting or failing; retry in {retry_after} s"),
        retry_after,
    }
}

/// The provider refused the server's own credentials (`err`): logged for the
/// operator, and a provider failure for the caller that blames neither the user nor
/// its link.
pub(super) fn key_refused(provider: &str, err: &dyn std::fmt::Display) -> EngineError {
    tracing::error!(provider, error = %err, "the provider refused this server's credentials");
    EngineError::Provider(format!(
        "{provider} refused this server's credentials; the operator must check them"
    ))
}

/// `p` (the provider `id`) if it can be linked, or why not.
pub(super) fn ready(id: &str, p: Provider) -> Result<Provider, EngineError> {
    match p.availability() {
        Availability::Available => Ok(p),
        Availability::MissingClientId => Err(EngineError::Conflict(format!(
            "the {id} integration is not configured on this server (no client id)"
        ))),
        Availability::MissingClientSecret => Err(EngineError::Conflict(format!(
            "the {id} integration is not configured on this server (no client secret)"
        ))),
        Availability::MissingTeamId => Err(EngineError::Conflict(format!(
            "the {id} integration is not configured on this server (no team id)"
        ))),
        Availability::InvalidSigningKey => Err(EngineError::Conflict(format!(
            "the {id} integration is misconfigured on this server (its signing key is not a P-256 PKCS#8 PEM)"
        ))),
    }
}

pub(super) fn refused(field: &str, reason: String) -> EngineError {
    EngineError::Validation(ValidationError::new(field, reason))
}

impl Integrations<'_> {
    /// Every configured provider (never its credentials); for a user, whether its tier
    /// may link each.
    pub fn providers(self, by: &Principal) -> Result<Vec<ProviderInfo>, EngineError> {
        let tier = match by {
            Principal::Anonymous => return Err(EngineError::Unauthenticated("sign in first")),
            Principal::User(u) => Some(
                self.m
                    .placement(u.user)
                    .map(|(tier, _)| tier)
                    .ok_or(EngineError::NotFound)?,
            ),
            Principal::Operator | Principal::System(_) => None,
        };
        let config = &self.m.engine.config.integrations;
        let mut all = self.m.engine.integrations.list();
        if let Some(tier) = tier {
            let limits = config.tier(tier);
            for p in &mut all {
                p.tier_allows = Some(limits.max_links > 0 && limits.allows(&p.id));
            }
        }
        Ok(all)
    }

    /// The provider `id`, ready to link, with its endpoints.
    pub(super) async fn available(self, id: &str) -> Result<Provider, EngineError> {
        ready(id, self.resolve(id).await?)
    }

    /// The provider `id` with every endpoint (an operator's provider discovers those
    /// config leaves out from its issuer).
    pub(super) async fn resolve(self, id: &str) -> Result<Provider, EngineError> {
        let e = &self.m.engine;
        match e.integrations.resolve(id, e.clock.now()).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(EngineError::NoSuch("provider")),
            // What the issuer served is the operator's to read, in the log.
            Err(_) => Err(EngineError::Provider(format!(
                "{id}: its endpoints could not be discovered from its issuer; retry later"
            ))),
        }
    }

    /// Begins a link of the user's account at `provider`, from the user's own session:
    /// the address to send the user to (OAuth 2.0, Last.fm), or the link made at once
    /// (Apple Music, with the Music User Token the client obtained; a creative tool,
    /// with its companion's key). The tier's limits
    /// are checked now and again when the link is made.
    pub async fn link(
        self,
        by: &Principal,
        id: UserId,
        provider: &str,
        with: LinkWith,
    ) -> Result<LinkAnswer, EngineError> {
        let session = by.own(id)?;
        let p = self.available(provider).await?;
        let cfg = &self.m.engine.config.integrations;
        let mut secret = [0u8; STATE_SECRET_LEN];
        rand::fill(&mut secret);
        let state = encode_state(id, &secret);
        let redirect = cfg.redirect_uri(provider);
        let (url, verifier) = match p.config.auth {
            AuthMode::Oauth2 => {
                let auth = oauth::authorization(&p, &redirect, &state)
                    .map_err(|e| EngineError::Conflict(e.to_string()))?;
                (auth.url, auth.verifier)
            }
            AuthMode::Lastfm => (lastfm_authorization(&p, redirect, &state)?, None),
            AuthMode::AppleMusic => {
                let token = with.music_user_token.ok_or_else(|| {
                    refused(
                        "music_user_token",
                        "linking Apple Music takes the Music User Token MusicKit gave the client \
                         (with the developer token from GET /api/v1/integrations/apple_music/developer-token)"
                            .into(),
                    )
                })?;
                let link = self.link_apple(id, &p, token).await?;
                return Ok(LinkAnswer::Linked(link));
            }
            AuthMode::ApiKey => {
                let key = self.link_companion(id, &p).await?;
                return Ok(LinkAnswer::Companion(key));
            }
        };
        let expires_at = self.m.engine.clock.now().plus(cfg.state_ttl);
        let pending = PendingLink {
            provider: provider.to_owned(),
            secret,
            verifier,
            session,
            expires_at,
        };
        self.m
            .engine
            .call_durable(id, BeginLink { pending })
            .await?;
        Ok(LinkAnswer::Started(LinkStart {
            authorization_url: url.to_string(),
            state,
            expires_at,
        }))
    }

    /// Finishes a link when the provider sends the user back: the `state` is taken
    /// (once), the code (OAuth 2.0) or token (Last.fm) exchanged, and what it brought
    /// kept in the user's state.
    pub async fn callback(self, provider: &str, back: Callback) -> Result<LinkView, EngineError> {
        let p = self.available(provider).await?;
        let state = back
            .state
            .as_deref()
            .ok_or_else(|| refused("state", "the callback has no state".into()))?;
        let (user, secret) = decode_state(state)?;
        let e = &self.m.engine;
        let take = TakeLink {
            provider: provider.to_owned(),
            secret,
        };
        // An unknown user reads as an unknown state: the state names nothing.
        let pending = match e.call_durable(user, take).await {
            Err(EngineError::NotFound) => {
                return Err(refused(
                    "state",
                    "the state is unknown or was used already; start the link again".into(),
                ));
            }
            other => other?,
        };
        if let Some(error) = back.error {
            let more = back
                .error_description
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            return Err(refused(
                "error",
                format!("the provider did not grant the link: {error}{more}"),
            ));
        }
        let now = e.clock.now();
        let account = match p.config.auth {
            AuthMode::Lastfm => self.lastfm_session(&p, back.token, now).await?,
            _ => {
                let code = back
                    .code
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| refused("code", "the callback has no code".into()))?;
                let redirect = e.config.integrations.redirect_uri(provider);
                let http = &e.integrations.http;
                let verifier = pending.verifier.as_deref();
                let grant = tokens::exchange_code(http, &p, &redirect, &code, verifier)
                    .await
                    .map_err(|err| match err {
                        TokenError::Refused { .. } => refused("code", err.to_string()),
                        other => EngineError::Provider(format!("{provider}: {other}")),
                    })?;
                let tokens = LinkTokens {
                    access: grant.access_token,
                    refresh: grant.refresh_token,
                    expires_at: link::expiry(now, grant.expires_in),
                };
                let scopes = grant.scopes.unwrap_or_else(|| p.config.scopes.clone());
                LinkedAccount {
                    instance_url: grant.instance_url,
                    ..LinkedAccount::made(provider, scopes, now, tokens)
                }
            }
        };
        let link = e.call_durable(user, PutLink { account }).await?;
        if p.config.history.is_some() {
            self.sync_soon(user, provider);
        }
        Ok(link)
    }

    /// Syncs the new link's history on a task of its own (the browser waiting for the
    /// callback's answer does not wait for the provider's history), as the
    /// `integrations` job; without the consent to analytics nothing is read.
    fn sync_soon(self, user: UserId, provider: &str) {
        let m = self.m.clone();
        let provider = provider.to_owned();
        tokio::spawn(async move {
            let by = Principal::System(crate::domain::job::JobKind::Integrations.name());
            match m.integrations().sync(&by, user, &provider).await {
                Ok(_) | Err(EngineError::ConsentRequired(_)) => {}
                Err(err) => {
                    tracing::warn!(user = %user, provider, error = %err, "the sync of a new link failed; the integrations job tries again");
                }
            }
        });
    }

    /// The user's links (never their tokens).
    pub async fn links(self, by: &Principal, id: UserId) -> Result<Vec<LinkView>, EngineError> {
        by.on(id)?;
        self.m.engine.call(id, GetLinks).await
    }

    /// Removes the link to `provider` (the user, or an operator) and revokes its tokens
    /// at the provider where it has a revocation endpoint.
    pub async fn unlink(
        self,
        by: &Principal,
        id: UserId,
        provider: &str,
    ) -> Result<Unlinked, EngineError> {
        by.on(id)?;
        let e = &self.m.engine;
        let msg = RemoveLink {
            provider: provider.to_owned(),
        };
        let removed = e.call_durable(id, msg).await?;
        let revoked = self.revoke_grant(id, provider, &removed.tokens).await;
        Ok(Unlinked {
            provider: provider.to_owned(),
            revoked,
        })
    }

    /// Revokes the grant behind `tokens` (the user's link to `provider`, deleted here)
    /// at the provider, where it has a revocation endpoint; whether it did. A failure
    /// is logged: the link is gone here either way.
    pub(super) async fn revoke_grant(self, id: UserId, provider: &str, t: &LinkTokens) -> bool {
        let p = match self.resolve(provider).await {
            Ok(p) => p,
            Err(err) => {
                tracing::warn!(user = %id, provider, error = %err, "no endpoints to revoke at; the link is deleted here");
                return false;
            }
        };
        // The refresh token first: revoking it ends the grant, access tokens too.
        let (token, is_refresh) = match &t.refresh {
            Some(r) => (r.as_str(), true),
            None => (t.access.as_str(), false),
        };
        let http = &self.m.engine.integrations.http;
        match tokens::revoke(http, &p, token, is_refresh).await {
            Ok(done) => done,
            Err(err) => {
                tracing::warn!(user = %id, provider, error = %err, "revocation at the provider failed; the link is deleted here");
                false
            }
        }
    }

    /// Revokes at the providers the grants of a deleted user's `links`, on a task of
    /// its own (the deletion does not wait for providers); failures are logged.
    pub(super) fn revoke_all(self, id: UserId, links: Vec<LinkedAccount>) {
        let m = self.m.clone();
        tokio::spawn(async move {
            let i = m.integrations();
            let all = links
                .iter()
                .map(|l| i.revoke_grant(id, &l.provider, &l.tokens));
            let revoked = futures_util::future::join_all(all).await;
            let n = revoked.iter().filter(|r| **r).count();
            tracing::info!(user = %id, links = links.len(), revoked = n, "a deleted user's grants revoked at the providers");
        });
    }

    /// An access token for the user's link to `provider`, good for the provider's
    /// margin; refreshed first when it is not, once however many callers ask at the
    /// same time. `history`: to read the listening history (only with the consent to
    /// analytics).
    pub(crate) async fn access(
        self,
        id: UserId,
        provider: &str,
        history: bool,
    ) -> Result<Access, EngineError> {
        self.access_as(id, provider, history, Renew::WhenDue).await
    }

    /// [`access`](Self::access); `renew`: whether a token good for the margin is
    /// refreshed all the same.
    pub(super) async fn access_as(
        self,
        id: UserId,
        provider: &str,
        history: bool,
        renew: Renew,
    ) -> Result<Access, EngineError> {
        let e = std::sync::Arc::clone(&self.m.engine);
        let ask = AccessFor {
            provider: provider.to_owned(),
            history,
            renew,
        };
        let lease = match e.call(id, ask).await? {
            AccessAnswer::Ready(access) => return Ok(access),
            AccessAnswer::Wait(outcome) => {
                let wait = e.config.integrations.http_timeout * 2;
                return match tokio::time::timeout(wait, outcome).await {
                    Ok(Ok(outcome)) => outcome,
                    // The holder's refresh outlived its bounds: retry later.
                    _ => Err(EngineError::Unavailable),
                };
            }
            AccessAnswer::Refresh(lease) => lease,
        };
        let provider = provider.to_owned();
        let integrations = self.m.clone();
        // A task of its own: the lease and its waiters outlive this caller, and every
        // way it ends hands the outcome back to the actor.
        let refresh = tokio::spawn(async move {
            // The token endpoint of a discovered provider, within one provider call's
            // time: with the refresh's own, the lease stays short of being stale.
            let timeout = e.config.integrations.http_timeout;
            let resolved =
                tokio::time::timeout(timeout, integrations.integrations().resolve(&provider));
            let outcome = match resolved.await {
                Ok(Ok(p)) => tokens::refresh(&e.integrations.http, &p, &lease.refresh_token).await,
                Ok(Err(_)) | Err(_) => Err(TokenError::Unreachable(
                    "its endpoints could not be discovered from its issuer".into(),
                )),
            };
            if let Err(err) = &outcome {
                tracing::warn!(user = %id, provider, error = %err, "a token refresh failed");
            }
            let done = Refreshed {
                provider,
                lease: lease.id,
                outcome,
            };
            e.call_durable(id, done).await
        });
        refresh
            .await
            .map_err(|err| EngineError::Internal(format!("token refresh task: {err}")))?
    }
}
