//! The integration hub: linked accounts, their tokens encrypted per user and refreshed in the user's actor, listening history flowing in (issue 21).
//!
//! So far the provider registry: which providers the operator configured, how each is
//! linked, whether it can be (credentials present), and whether the caller's tier may
//! use it.

use super::UserManager;
use super::principal::Principal;
use crate::engine::EngineError;
use crate::integrations::ProviderInfo;

/// See [`UserManager::integrations`].
#[derive(Clone, Copy)]
pub struct Integrations<'a> {
    pub(super) m: &'a UserManager,
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
}
