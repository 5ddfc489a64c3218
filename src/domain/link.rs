//! A user's linked accounts at integration providers, and the links it has begun and
//! not finished. Held in the user's state, so sealed under the user's data key with the
//! rest of it: erasing the user (or shredding its key) takes the tokens with it.
//!
//! The rules are plain functions of `now`: a link begun is answered once, by the
//! provider it was begun with, before it expires, from the session that began it
//! ([`Links::take_pending`]); a tier allows so many links, of such providers
//! ([`Links::check_tier`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use super::companion::{CreativeStats, CreativeView};
use super::ids::SessionId;
use super::time::Timestamp;

/// Links begun and not answered, kept per user (the oldest goes first).
pub const MAX_PENDING: usize = 4;

/// Bytes of a `state`'s secret part.
pub const STATE_SECRET_LEN: usize = 32;

/// A link begun: what the callback must bring back, and what the code exchange proves.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLink {
    /// The provider's id.
    pub provider: String,
    /// The secret part of the `state` sent to the provider.
    pub secret: [u8; STATE_SECRET_LEN],
    /// The PKCE verifier, when the provider takes PKCE.
    pub verifier: Option<String>,
    /// The session that began it: the link is that session's to finish.
    pub session: SessionId,
    /// When the `state` stops being good.
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for PendingLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLink")
            .field("provider", &self.provider)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Whether a link can be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    /// Its tokens work (or can be refreshed).
    Active,
    /// The provider refused its grant: the user must link again.
    ReauthRequired,
    /// The user's tier no longer allows it (a downgrade): kept, not used.
    Suspended,
}

/// Why a link's status changed (in the `integration.link_changed` event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkReason {
    /// The user's tier changed: links over the new limit are suspended, those the new
    /// tier admits again are active.
    TierChanged,
    /// The provider refused the refresh token (`invalid_grant`): link again.
    GrantRefused,
    /// The provider's API refused the access token, also after a refresh (the user
    /// revoked the app at the provider): link again.
    TokenRefused,
    /// The provider's API refused a call for a scope the grant lacks (scopes revoked
    /// at the provider): link again, granting them.
    ScopeMissing,
}

/// The secrets of a link.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkTokens {
    /// The access token (Last.fm: the session key; a companion: its API key's hash).
    pub access: String,
    /// The refresh token, when the provider gave one.
    pub refresh: Option<String>,
    /// When the access token expires, when the provider said.
    pub expires_at: Option<Timestamp>,
}

impl std::fmt::Debug for LinkTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkTokens")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A linked account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedAccount {
    /// The provider's id.
    pub provider: String,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// Whether it can be used.
    pub status: LinkStatus,
    /// When it was linked (or last linked again).
    pub linked_at: Timestamp,
    /// When its tokens were last refreshed.
    pub refreshed_at: Option<Timestamp>,
    /// When its history was last synced.
    pub synced_at: Option<Timestamp>,
    /// A per-organisation API address (Salesforce's `instance_url`).
    pub instance_url: Option<String>,
    /// Who the account is at the provider, when the link told (Last.fm's user name,
    /// which its history is read by). New in format 13.
    pub account: Option<String>,
    /// What a desktop companion reported through it (the creative tools). New in
    /// format 13.
    pub creative: Option<Box<CreativeStats>>,
    /// Its secrets.
    pub tokens: LinkTokens,
}

impl LinkedAccount {
    /// A link to `provider` made at `now` with `tokens`: active, never refreshed or
    /// synced.
    pub fn made(provider: &str, scopes: Vec<String>, now: Timestamp, tokens: LinkTokens) -> Self {
        Self {
            provider: provider.to_owned(),
            scopes,
            status: LinkStatus::Active,
            linked_at: now,
            refreshed_at: None,
            synced_at: None,
            instance_url: None,
            account: None,
            creative: None,
            tokens,
        }
    }

    /// Whether its access token is good for `margin` more at `now` (a token the
    /// provider gave no lifetime for is good until the provider refuses it).
    pub fn is_fresh(&self, now: Timestamp, margin: Duration) -> bool {
        self.tokens.expires_at.is_none_or(|t| t > now.plus(margin))
    }

    /// Takes the tokens a refresh at `now` granted: a new access token, a new refresh
    /// token when the answer carried one (a rotating provider) or else the old one
    /// kept, and the scopes when the answer named them.
    pub fn refreshed(
        &mut self,
        access: String,
        refresh: Option<String>,
        lifetime: Option<Duration>,
        scopes: Option<Vec<String>>,
        now: Timestamp,
    ) {
        self.tokens.access = access;
        if let Some(r) = refresh {
            self.tokens.refresh = Some(r);
        }
        self.tokens.expires_at = expiry(now, lifetime);
        if let Some(s) = scopes {
            self.scopes = s;
        }
        self.refreshed_at = Some(now);
        self.status = LinkStatus::Active;
    }
}

/// What a client sees of a link: never its tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LinkView {
    /// The provider's id.
    pub provider: String,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// Whether it can be used.
    pub status: LinkStatus,
    /// When it was linked.
    pub linked_at: Timestamp,
    /// When its access token expires, when the provider said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// When its tokens were last refreshed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refreshed_at: Option<Timestamp>,
    /// When its history was last synced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synced_at: Option<Timestamp>,
    /// Who the account is at the provider, when the link told (a user name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// What a desktop companion reported through it (the creative tools).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creative: Option<CreativeView>,
    /// Whether the provider gave a refresh token.
    pub refreshable: bool,
}

impl LinkedAccount {
    /// What a client sees of it.
    pub fn view(&self) -> LinkView {
        LinkView {
            provider: self.provider.clone(),
            scopes: self.scopes.clone(),
            status: self.status,
            linked_at: self.linked_at,
            expires_at: self.tokens.expires_at,
            refreshed_at: self.refreshed_at,
            synced_at: self.synced_at,
            account: self.account.clone(),
            creative: self.creative.as_deref().map(CreativeStats::view),
            refreshable: self.tokens.refresh.is_some(),
        }
    }
}

/// Why a callback's `state` is not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateRefusal {
    /// Unknown, used already, or of another provider or user.
    #[error("the state is unknown or was used already; start the link again")]
    Unknown,
    /// Too old.
    #[error("the state expired; start the link again")]
    Expired,
}

/// Why a tier refuses a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TierRefusal {
    /// The tier does not offer the provider.
    Provider,
    /// The tier's links are used up.
    Count {
        /// How many it allows.
        limit: usize,
    },
}

/// A user's links, begun and made.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    /// Links begun, oldest first.
    pub pending: Vec<PendingLink>,
    /// Links made, in the order they were made.
    pub accounts: Vec<LinkedAccount>,
}

impl Links {
    /// Whether there is nothing to keep.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.accounts.is_empty()
    }

    /// Drops the links begun whose time ran out before `now`; returns how many went.
    pub fn drop_expired(&mut self, now: Timestamp) -> usize {
        let before = self.pending.len();
        self.pending.retain(|p| p.expires_at > now);
        before - self.pending.len()
    }

    /// The link to `provider`.
    pub fn get(&self, provider: &str) -> Option<&LinkedAccount> {
        self.accounts.iter().find(|a| a.provider == provider)
    }

    /// The link to `provider`, to change.
    pub fn get_mut(&mut self, provider: &str) -> Option<&mut LinkedAccount> {
        self.accounts.iter_mut().find(|a| a.provider == provider)
    }

    /// Whether a tier allowing `max` links of the providers `allows` admits one more
    /// (or a new one in place of the existing) link to `provider`. Suspended links do
    /// not count: they are the ones over the limit.
    pub fn check_tier(
        &self,
        provider: &str,
        max: usize,
        allows: impl Fn(&str) -> bool,
    ) -> Result<(), TierRefusal> {
        if !allows(provider) {
            return Err(TierRefusal::Provider);
        }
        let others = self
            .accounts
            .iter()
            .filter(|a| a.provider != provider && a.status != LinkStatus::Suspended)
            .count();
        match others < max {
            true => Ok(()),
            false => Err(TierRefusal::Count { limit: max }),
        }
    }

    /// Remembers a link begun (in place of one begun earlier with the same provider),
    /// dropping expired ones and the oldest beyond [`MAX_PENDING`].
    pub fn begin(&mut self, link: PendingLink, now: Timestamp) {
        self.pending
            .retain(|p| p.provider != link.provider && p.expires_at > now);
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
        }
        self.pending.push(link);
    }

    /// Takes the link begun with `provider` whose secret is `secret` (compared in
    /// constant time), once. A wrong secret leaves the link begun in place, so a
    /// foreign callback cannot cancel it; an expired one is dropped.
    pub fn take_pending(
        &mut self,
        provider: &str,
        secret: &[u8],
        now: Timestamp,
    ) -> Result<PendingLink, StateRefusal> {
        let at = self
            .pending
            .iter()
            .position(|p| p.provider == provider && bool::from(p.secret.ct_eq(secret)))
            .ok_or(StateRefusal::Unknown)?;
        let link = self.pending.remove(at);
        match link.expires_at > now {
            true => Ok(link),
            false => Err(StateRefusal::Expired),
        }
    }

    /// Adds or replaces the link to `provider`. A companion's counts stay when its
    /// link is made again (a new key), so what it pushes again counts once.
    pub fn put(&mut self, mut account: LinkedAccount) {
        match self.get_mut(&account.provider) {
            Some(a) => {
                if account.creative.is_none() {
                    account.creative = a.creative.take();
                }
                *a = account;
            }
            None => self.accounts.push(account),
        }
    }

    /// Removes the link to `provider`.
    pub fn remove(&mut self, provider: &str) -> Option<LinkedAccount> {
        let at = self.accounts.iter().position(|a| a.provider == provider)?;
        Some(self.accounts.remove(at))
    }

    /// Fits the links to a tier allowing `max` of the providers `allows` (after a tier
    /// change): the oldest links the tier admits stay or become active again, the rest
    /// are suspended, never deleted. Answers the links whose status changed.
    pub fn fit_tier(
        &mut self,
        max: usize,
        allows: impl Fn(&str) -> bool,
    ) -> Vec<(String, LinkStatus)> {
        let mut kept = 0;
        let mut changed = Vec::new();
        for a in &mut self.accounts {
            let admitted = allows(&a.provider) && kept < max;
            let next = match (admitted, a.status) {
                (true, LinkStatus::Suspended) => LinkStatus::Active,
                (true, s) => s,
                (false, _) => LinkStatus::Suspended,
            };
            if admitted {
                kept += 1;
            }
            if next != a.status {
                a.status = next;
                changed.push((a.provider.clone(), next));
            }
        }
        changed
    }
}

/// When a token granted at `now` for `lifetime` expires.
pub fn expiry(now: Timestamp, lifetime: Option<Duration>) -> Option<Timestamp> {
    lifetime.map(|d| now.plus(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(provider: &str, secret: u8, expires: i64) -> PendingLink {
        PendingLink {
            provider: provider.into(),
            secret: [secret; STATE_SECRET_LEN],
            verifier: Some("v".into()),
            session: SessionId::from_bytes([1; 16]),
            expires_at: Timestamp::from_millis(expires),
        }
    }

    fn account(provider: &str, status: LinkStatus) -> LinkedAccount {
        LinkedAccount {
            provider: provider.into(),
            scopes: vec![],
            status,
            linked_at: Timestamp::from_millis(0),
            refreshed_at: None,
            synced_at: None,
            instance_url: None,
            account: None,
            creative: None,
            tokens: LinkTokens {
                access: "a".into(),
                refresh: None,
                expires_at: None,
            },
        }
    }

    #[test]
    fn a_state_is_taken_once_by_its_provider_before_it_expires() {
        let now = Timestamp::from_millis(1_000);
        let mut l = Links::default();
        l.begin(pending("spotify", 7, 5_000), now);
        // A foreign secret or provider is refused and leaves the link begun in place.
        assert_eq!(
            l.take_pending("spotify", &[8; 32], now),
            Err(StateRefusal::Unknown)
        );
        assert_eq!(
            l.take_pending("discord", &[7; 32], now),
            Err(StateRefusal::Unknown)
        );
        assert!(l.take_pending("spotify", &[7; 32], now).is_ok());
        assert_eq!(
            l.take_pending("spotify", &[7; 32], now),
            Err(StateRefusal::Unknown)
        );
        l.begin(pending("spotify", 7, 5_000), now);
        let late = Timestamp::from_millis(5_000);
        assert_eq!(
            l.take_pending("spotify", &[7; 32], late),
            Err(StateRefusal::Expired)
        );
        assert!(l.pending.is_empty());
    }

    #[test]
    fn cleanup_drops_only_the_links_begun_whose_challenge_expired() {
        let mut l = Links::default();
        let start = Timestamp::from_millis(0);
        l.begin(pending("spotify", 1, 100), start);
        l.begin(pending("discord", 2, 300), start);
        l.put(account("lastfm", LinkStatus::Active));
        assert_eq!(l.drop_expired(Timestamp::from_millis(99)), 0);
        assert_eq!(l.drop_expired(Timestamp::from_millis(100)), 1);
        let left: Vec<&str> = l.pending.iter().map(|p| p.provider.as_str()).collect();
        assert_eq!(left, ["discord"]);
        assert_eq!(l.accounts.len(), 1, "links made are not challenges");
    }

    #[test]
    fn a_new_begin_replaces_the_providers_old_one_and_the_oldest_goes_first() {
        let now = Timestamp::from_millis(0);
        let mut l = Links::default();
        l.begin(pending("spotify", 1, 10), now);
        l.begin(pending("spotify", 2, 10), now);
        assert_eq!(l.pending.len(), 1);
        assert_eq!(l.pending[0].secret[0], 2);
        for p in ["a", "b", "c", "d"] {
            l.begin(pending(p, 3, 10), now);
        }
        let left: Vec<&str> = l.pending.iter().map(|p| p.provider.as_str()).collect();
        assert_eq!(left, ["a", "b", "c", "d"]);
    }

    #[test]
    fn a_tier_counts_other_live_links_and_names_its_limit() {
        let mut l = Links::default();
        let any = |_: &str| true;
        assert_eq!(l.check_tier("spotify", 1, any), Ok(()));
        l.put(account("spotify", LinkStatus::Active));
        // Linking the same provider again replaces it.
        assert_eq!(l.check_tier("spotify", 1, any), Ok(()));
        assert_eq!(
            l.check_tier("lastfm", 1, any),
            Err(TierRefusal::Count { limit: 1 })
        );
        assert_eq!(
            l.check_tier("slack", 5, |p| p != "slack"),
            Err(TierRefusal::Provider)
        );
        l.get_mut("spotify").unwrap().status = LinkStatus::Suspended;
        assert_eq!(l.check_tier("lastfm", 1, any), Ok(()));
        assert!(l.remove("spotify").is_some());
        assert!(l.is_empty());
    }

    #[test]
    fn a_refresh_without_a_refresh_token_keeps_the_old_one() {
        let mut a = account("spotify", LinkStatus::Active);
        a.tokens.refresh = Some("r1".into());
        let now = Timestamp::from_millis(10_000);
        a.refreshed("a2".into(), None, Some(Duration::from_secs(60)), None, now);
        assert_eq!(a.tokens.refresh.as_deref(), Some("r1"));
        assert_eq!(a.tokens.access, "a2");
        a.refreshed(
            "a3".into(),
            Some("r2".into()),
            None,
            Some(vec!["x".into()]),
            now,
        );
        assert_eq!(a.tokens.refresh.as_deref(), Some("r2"));
        assert_eq!((a.scopes.len(), a.tokens.expires_at), (1, None));
        // Fresh while the margin fits before the expiry, stale from then on.
        a.tokens.expires_at = Some(Timestamp::from_millis(70_000));
        let margin = Duration::from_secs(30);
        assert!(a.is_fresh(Timestamp::from_millis(39_999), margin));
        assert!(!a.is_fresh(Timestamp::from_millis(40_000), margin));
    }

    #[test]
    fn a_downgrade_suspends_the_newest_links_and_an_upgrade_brings_them_back() {
        let mut l = Links::default();
        for p in ["spotify", "lastfm", "discord"] {
            l.put(account(p, LinkStatus::Active));
        }
        let changed = l.fit_tier(1, |p| p == "spotify" || p == "lastfm");
        assert_eq!(
            changed,
            [
                ("lastfm".to_owned(), LinkStatus::Suspended),
                ("discord".to_owned(), LinkStatus::Suspended)
            ]
        );
        assert_eq!(l.accounts.len(), 3, "suspended, not deleted");
        let changed = l.fit_tier(5, |_| true);
        assert_eq!(changed.len(), 2);
        assert!(l.accounts.iter().all(|a| a.status == LinkStatus::Active));
        assert!(l.fit_tier(5, |_| true).is_empty());
    }
}
