//! The integration hub's links that are not OAuth 2.0: Last.fm's web auth (a token
//! exchanged for a session key by a signed call) and Apple Music (a developer token the
//! server signs, and the Music User Token the client obtains with it). See
//! [`integrations`](super::integrations) for the flow they share.

use super::integrations::{Integrations, busy, key_refused, refused};
use super::principal::Principal;
use crate::domain::ids::UserId;
use crate::domain::integration::AuthMode;
use crate::domain::link::{LinkTokens, LinkView, LinkedAccount};
use crate::domain::time::Timestamp;
use crate::engine::EngineError;
use crate::engine::user::PutLink;
use crate::integrations::Provider;
use crate::integrations::apple::{self, DeveloperToken, UserTokenError};
use crate::integrations::lastfm::{self, LastfmError};

/// The longest Music User Token taken (Apple's are a few hundred characters).
const MAX_USER_TOKEN: usize = 4096;

impl Integrations<'_> {
    /// A developer token of `provider` (Apple Music) for a signed-in client to hand
    /// MusicKit; for a user, only if its tier includes the provider.
    pub fn developer_token(
        self,
        by: &Principal,
        provider: &str,
    ) -> Result<DeveloperToken, EngineError> {
        let listed = self.providers(by)?;
        let p = listed
            .iter()
            .find(|p| p.id == provider)
            .ok_or(EngineError::NoSuch("provider"))?;
        if p.auth != AuthMode::AppleMusic {
            return Err(EngineError::Conflict(format!(
                "{provider} links through {}: it has no developer token",
                p.auth.as_str()
            )));
        }
        if p.tier_allows == Some(false) {
            return Err(EngineError::TierLimit(format!(
                "your tier does not include the {provider} integration"
            )));
        }
        let e = &self.m.engine;
        let p = e.integrations.get(provider).cloned();
        super::integrations::ready(provider, p.ok_or(EngineError::NoSuch("provider"))?)?;
        e.integrations
            .developer_token(provider, e.clock.now())
            .ok_or_else(|| {
                EngineError::Conflict(format!("the {provider} integration cannot sign tokens"))
            })
    }

    /// Links Apple Music with the Music User Token the client obtained: checked at
    /// Apple's API with a developer token first, then kept like any link's token.
    pub(super) async fn link_apple(
        self,
        id: UserId,
        p: &Provider,
        user_token: String,
    ) -> Result<LinkView, EngineError> {
        let provider = p.config.id.as_str();
        let user_token = user_token.trim().to_owned();
        if user_token.is_empty()
            || user_token.len() > MAX_USER_TOKEN
            || user_token
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(refused(
                "music_user_token",
                format!(
                    "must be the token MusicKit gave, 1-{MAX_USER_TOKEN} characters without spaces"
                ),
            ));
        }
        let e = &self.m.engine;
        let now = e.clock.now();
        let developer = e
            .integrations
            .developer_token(provider, now)
            .ok_or_else(|| {
                EngineError::Conflict(format!("the {provider} integration cannot sign tokens"))
            })?;
        let base = p
            .config
            .api_base_url
            .as_ref()
            .ok_or_else(|| EngineError::Conflict(format!("{provider} has no api_base_url")))?;
        let storefront =
            apple::check_user_token(&e.integrations.http, base, &developer.token, &user_token)
                .await
                .map_err(|err| match err {
                    UserTokenError::Refused => refused(
                        "music_user_token",
                        format!("{provider} refused the token; ask MusicKit for a new one"),
                    ),
                    UserTokenError::Busy { retry_after, .. } => busy(provider, retry_after),
                    UserTokenError::Unreachable(m) => {
                        EngineError::Provider(format!("{provider}: {m}"))
                    }
                })?;
        let tokens = LinkTokens {
            access: user_token,
            refresh: None,
            expires_at: None,
        };
        let account = LinkedAccount {
            // Apple names no user: the storefront is what the link tells of it.
            account: storefront.map(|s| format!("storefront:{s}")),
            ..LinkedAccount::made(provider, p.config.scopes.clone(), now, tokens)
        };
        e.call_durable(id, PutLink { account }).await
    }

    /// The link Last.fm's `token` makes: exchanged for a session key by the signed
    /// `auth.getSession`.
    pub(super) async fn lastfm_session(
        self,
        p: &Provider,
        token: Option<String>,
        now: Timestamp,
    ) -> Result<LinkedAccount, EngineError> {
        let provider = p.config.id.as_str();
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| refused("token", "the callback has no token".into()))?;
        let e = &self.m.engine;
        let (Some(base), Some(key), Some(secret)) = (
            p.config.api_base_url.as_ref(),
            p.client_id.as_deref(),
            p.client_secret.as_ref(),
        ) else {
            return Err(EngineError::Conflict(format!(
                "the {provider} integration is not configured on this server"
            )));
        };
        let session = lastfm::get_session(&e.integrations.http, base, key, secret.expose(), &token)
            .await
            .map_err(|err| match err {
                LastfmError::Refused { .. } | LastfmError::Private(_) => {
                    refused("token", format!("{provider}: {err}; start the link again"))
                }
                LastfmError::Busy { retry_after } => busy(provider, retry_after),
                LastfmError::KeyRefused { .. } => key_refused(provider, &err),
                LastfmError::Unreachable(m) => EngineError::Provider(format!("{provider}: {m}")),
            })?;
        let tokens = LinkTokens {
            access: session.key,
            refresh: None,
            expires_at: None,
        };
        Ok(LinkedAccount {
            account: Some(session.name),
            ..LinkedAccount::made(provider, p.config.scopes.clone(), now, tokens)
        })
    }
}
