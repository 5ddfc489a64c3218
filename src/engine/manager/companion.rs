//! The creative tools' links (Ableton Live, Logic Pro, FL Studio: no web API): a link
//! makes a per-link API key for a desktop companion, shown once, and the companion
//! pushes the sessions and exports it saw with it. See [`crate::domain::companion`].

use serde::Serialize;

use super::integrations::Integrations;
use crate::domain::companion::{self, CompanionOutcome, CreativeEvent, UNKNOWN_KEY};
use crate::domain::ids::UserId;
use crate::domain::integration::AuthMode;
use crate::domain::link::{LinkTokens, LinkView, LinkedAccount};
use crate::engine::EngineError;
use crate::engine::user::{CompanionPush, PutLink};
use crate::integrations::Provider;

/// A companion link made: its key, which is shown this once.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct CompanionKey {
    /// The key the companion sends as `X-Companion-Key` (`rck_…`).
    pub api_key: String,
    /// Where the companion pushes its events.
    pub events_url: String,
    /// The link.
    pub link: LinkView,
}

impl std::fmt::Debug for CompanionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompanionKey")
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl Integrations<'_> {
    /// Links a creative tool: a new key for its companion (linking again replaces the
    /// key, and the old one stops working).
    pub(super) async fn link_companion(
        self,
        id: UserId,
        p: &Provider,
    ) -> Result<CompanionKey, EngineError> {
        let e = &self.m.engine;
        let provider = p.config.id.as_str();
        let (api_key, hash) = companion::new_key(id);
        let tokens = LinkTokens {
            access: hash,
            refresh: None,
            expires_at: None,
        };
        let account = LinkedAccount::made(provider, Vec::new(), e.clock.now(), tokens);
        let link = e.call_durable(id, PutLink { account }).await?;
        let mut events_url = e.config.integrations.redirect_base_url.clone();
        let base = events_url.path().trim_end_matches('/').to_owned();
        events_url.set_path(&format!("{base}/api/v1/integrations/{provider}/events"));
        Ok(CompanionKey {
            api_key,
            events_url: events_url.to_string(),
            link,
        })
    }

    /// Counts what the companion holding `key` reports of `provider`: each event once
    /// (retries count nothing twice), durably when it answers.
    pub async fn companion_push(
        self,
        provider: &str,
        key: Option<&str>,
        events: Vec<CreativeEvent>,
    ) -> Result<CompanionOutcome, EngineError> {
        let p = self
            .m
            .engine
            .integrations
            .get(provider)
            .ok_or(EngineError::NoSuch("provider"))?;
        if p.config.auth != AuthMode::ApiKey {
            return Err(EngineError::Conflict(format!(
                "{provider} links through {}: it takes no companion events",
                p.config.auth.as_str()
            )));
        }
        let key = key.ok_or(EngineError::Unauthenticated(
            "the companion's key goes in the X-Companion-Key header",
        ))?;
        let (user, key_hash) =
            companion::read_key(key).ok_or(EngineError::Unauthenticated(UNKNOWN_KEY))?;
        let push = CompanionPush {
            provider: provider.to_owned(),
            key_hash,
            events,
        };
        match self.m.engine.call_durable(user, push).await {
            // A key naming no user is as unknown as a wrong one.
            Err(EngineError::NotFound) => Err(EngineError::Unauthenticated(UNKNOWN_KEY)),
            other => other,
        }
    }
}
