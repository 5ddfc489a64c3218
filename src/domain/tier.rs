//! Subscription tiers and the policy each one carries: quotas, request rate, session
//! lifetimes and the features it unlocks. Policies come from config, never from code.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The four subscription tiers, lowest first.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum UserTier {
    /// Basic analysis and recommendations, small quotas.
    Free,
    /// Unlimited playlists, advanced AI, API access.
    Premium,
    /// Teams, compliance tools, zero-trust security by default.
    Enterprise,
    /// Unlimited everything.
    Vip,
}

impl UserTier {
    /// Every tier, lowest first.
    pub const ALL: [UserTier; 4] = [Self::Free, Self::Premium, Self::Enterprise, Self::Vip];

    /// The lowercase name used in JSON, config and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Premium => "premium",
            Self::Enterprise => "enterprise",
            Self::Vip => "vip",
        }
    }

    /// A dense index (0..4), for per-tier arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for UserTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no tier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tier {0:?}: expected one of free, premium, enterprise, vip")]
pub struct UnknownTier(pub String);

impl FromStr for UserTier {
    type Err = UnknownTier;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserTier::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownTier(s.to_owned()))
    }
}

/// A quota or rate: a number, or no limit at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// At most this many.
    Limited(u64),
    /// No limit.
    Unlimited,
}

impl Limit {
    /// Whether `used + add` stays within the limit.
    pub fn allows(self, used: u64, add: u64) -> bool {
        match self {
            Limit::Limited(max) => used.checked_add(add).is_some_and(|total| total <= max),
            Limit::Unlimited => true,
        }
    }

    /// The limit as a number, `None` when unlimited.
    pub fn value(self) -> Option<u64> {
        match self {
            Limit::Limited(n) => Some(n),
            Limit::Unlimited => None,
        }
    }
}

/// What a tier grants. Built from `[tiers.<name>]` in config.
#[derive(Clone, Debug, PartialEq)]
pub struct TierPolicy {
    /// The tier this policy belongs to.
    pub tier: UserTier,
    /// Playlists a user may own.
    pub max_playlists: Limit,
    /// Bytes of storage a user may use.
    pub max_storage_bytes: Limit,
    /// API requests per hour.
    pub requests_per_hour: Limit,
    /// Feature flags the tier unlocks (e.g. `ai_composer`, `api_access`).
    pub features: Vec<String>,
    /// A session unused this long expires.
    pub session_idle_timeout: Duration,
    /// A session expires this long after login however much it is used.
    pub session_absolute_lifetime: Duration,
    /// Zero trust: every login needs a second factor, and sessions are bound to the
    /// device and network of their login, checked on every request.
    pub zero_trust: bool,
}

impl TierPolicy {
    /// Whether the tier unlocks `feature`.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_parse_case_insensitively_and_reject_unknown_names() {
        assert_eq!("VIP".parse::<UserTier>(), Ok(UserTier::Vip));
        assert_eq!(" premium ".parse::<UserTier>(), Ok(UserTier::Premium));
        assert!("gold".parse::<UserTier>().is_err());
        assert_eq!(
            serde_json::to_string(&UserTier::Enterprise).unwrap(),
            "\"enterprise\""
        );
        assert!(UserTier::Free < UserTier::Vip);
    }

    #[test]
    fn limits_allow_up_to_and_including_the_maximum() {
        let ten = Limit::Limited(10);
        assert!(ten.allows(9, 1));
        assert!(!ten.allows(10, 1));
        assert!(!ten.allows(u64::MAX, 1));
        assert!(Limit::Unlimited.allows(u64::MAX, u64::MAX));
    }
}
