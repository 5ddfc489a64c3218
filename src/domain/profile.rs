//! The user profile (the seed's `UserProfile`), the tier templates new profiles start
//! from, and the partial update clients send (`profile_data` at creation, `updates` later).

use serde::{Deserialize, Serialize};

use super::email::Email;
use super::ids::UserId;
use super::settings::{
    AIPreferences, AIPreferencesPatch, CUSTOM_MODEL_TRAINING_FEATURE, SecuritySettings,
    SecuritySettingsPatch,
};
use super::tier::{TierPolicy, UserTier};
use super::time::Timestamp;
use super::validation::{self, ValidationError};

/// Longest display name, in characters.
pub(crate) const MAX_DISPLAY_NAME: usize = 64;

/// Quota usage and activity counters kept with the profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageCounters {
    /// Playlists the user owns (counted against the tier's `max_playlists`).
    pub playlists: u64,
    /// Bytes of storage used (counted against `max_storage_bytes`).
    pub storage_bytes: u64,
    /// Successful logins.
    pub logins: u64,
    /// The latest successful login.
    pub last_login_at: Option<Timestamp>,
}

impl UsageCounters {
    /// Nothing used, no login.
    pub const ZERO: Self = Self {
        playlists: 0,
        storage_bytes: 0,
        logins: 0,
        last_login_at: None,
    };
}

/// A counted resource with a per-tier quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuotaKind {
    /// Playlists owned.
    Playlists,
    /// Bytes stored.
    StorageBytes,
}

/// The answer to a usage change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum QuotaDecision {
    /// Counted; `used` is the new total.
    Accepted {
        /// Total after the change.
        used: u64,
        /// The tier's limit, `None` when unlimited.
        limit: Option<u64>,
    },
    /// Refused because the total would leave what a counter holds: below zero (freeing
    /// more than is counted) or past [`MAX_USAGE`]; nothing was counted.
    OutOfRange {
        /// Total before the change.
        used: u64,
        /// What was asked for.
        delta: i64,
    },
    /// Refused because it would pass the limit; nothing was counted.
    Exceeded {
        /// Total before the change.
        used: u64,
        /// The tier's limit.
        limit: Option<u64>,
        /// What was asked for.
        requested: u64,
    },
}

/// The most a usage counter holds: 2⁶³ − 1, the API's `int64`.
pub const MAX_USAGE: u64 = i64::MAX as u64;

impl UsageCounters {
    /// Adds `delta` of `kind` (negative frees), checking an increase against the tier's
    /// limit. Only a change applied in full is accepted: freeing more than is counted,
    /// or a total past [`MAX_USAGE`] (an unlimited tier), is refused, and a refused
    /// change leaves the counters untouched.
    pub fn apply(&mut self, kind: QuotaKind, delta: i64, policy: &TierPolicy) -> QuotaDecision {
        let (counter, limit) = match kind {
            QuotaKind::Playlists => (&mut self.playlists, policy.max_playlists),
            QuotaKind::StorageBytes => (&mut self.storage_bytes, policy.max_storage_bytes),
        };
        let add = delta.unsigned_abs();
        if delta > 0 && !limit.allows(*counter, add) {
            return QuotaDecision::Exceeded {
                used: *counter,
                limit: limit.value(),
                requested: add,
            };
        }
        let total = match delta {
            0 => Some(*counter),
            1.. => counter.checked_add(add).filter(|&t| t <= MAX_USAGE),
            _ => counter.checked_sub(add),
        };
        let Some(total) = total else {
            return QuotaDecision::OutOfRange {
                used: *counter,
                delta,
            };
        };
        *counter = total;
        QuotaDecision::Accepted {
            used: *counter,
            limit: limit.value(),
        }
    }
}

/// The warning threshold (80 or 100 percent of `limit`) that going from `before` to
/// `after` crossed, the higher one if both.
pub(crate) fn crossed_threshold(before: u64, after: u64, limit: u64) -> Option<u8> {
    if limit == 0 || after <= before {
        return None;
    }
    let at = |p: u64| (u128::from(limit) * u128::from(p)).div_ceil(100);
    [100u8, 80].into_iter().find(|&p| {
        let mark = at(u64::from(p));
        u128::from(before) < mark && u128::from(after) >= mark
    })
}

/// Everything a client may see of a user. Holds no credential.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserProfile {
    /// The user's id.
    pub id: UserId,
    /// The login email, as the user gave it.
    pub email: Email,
    /// Name shown to others.
    pub display_name: String,
    /// Preferred language (BCP 47).
    pub language: String,
    /// IANA time zone.
    pub timezone: String,
    /// Subscription tier.
    pub tier: UserTier,
    /// When the account was created.
    pub created_at: Timestamp,
    /// When the profile last changed.
    pub updated_at: Timestamp,
    /// Security settings.
    pub security_settings: SecuritySettings,
    /// AI preferences.
    pub ai_preferences: AIPreferences,
    /// Quota usage and activity.
    pub usage: UsageCounters,
}

/// The defaults a new profile of a tier starts from, read from
/// `config/profiles/*.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileTemplate {
    /// Language when `profile_data` gives none.
    pub language: String,
    /// Time zone when `profile_data` gives none.
    pub timezone: String,
    /// Starting security settings.
    pub security_settings: SecuritySettings,
    /// Starting AI preferences.
    pub ai_preferences: AIPreferences,
}

impl ProfileTemplate {
    /// Checks every field, naming the offending one.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validation::language("language", &self.language)?;
        validation::timezone("timezone", &self.timezone)?;
        self.security_settings.validate("security_settings.")?;
        self.ai_preferences.validate("ai_preferences.")
    }
}

/// A partial profile: `profile_data` at creation and `updates` afterwards. Absent fields
/// keep their value; unknown fields are refused rather than silently ignored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    /// New display name.
    pub display_name: Option<String>,
    /// New language.
    pub language: Option<String>,
    /// New time zone.
    pub timezone: Option<String>,
    /// Changes to the AI preferences.
    pub ai_preferences: Option<AIPreferencesPatch>,
    /// Changes to the security settings.
    pub security_settings: Option<SecuritySettingsPatch>,
}

impl ProfilePatch {
    /// Reads a patch from untyped JSON, reporting the path of the first bad field.
    pub fn from_json(value: serde_json::Value) -> Result<Self, ValidationError> {
        if !value.is_object() {
            return Err(ValidationError::new(
                "profile_data",
                "must be a JSON object",
            ));
        }
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "profile_data".to_owned()
            } else {
                path
            };
            ValidationError::new(field, e.into_inner().to_string())
        })
    }

    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &ProfilePatch::default()
    }

    /// `profile` with this patch applied for a user on `policy`'s tier, validated as a
    /// whole; `profile` itself is untouched, so a rejected patch changes nothing.
    pub fn apply(
        &self,
        profile: &UserProfile,
        policy: &TierPolicy,
        now: Timestamp,
    ) -> Result<UserProfile, ValidationError> {
        let mut next = profile.clone();
        if let Some(n) = &self.display_name {
            next.display_name = validation::text("display_name", n, MAX_DISPLAY_NAME)?;
        }
        if let Some(l) = &self.language {
            next.language = validation::language("language", l)?;
        }
        if let Some(t) = &self.timezone {
            next.timezone = validation::timezone("timezone", t)?;
        }
        if let Some(p) = &self.ai_preferences {
            next.ai_preferences = p.apply(&profile.ai_preferences)?;
        }
        if let Some(p) = &self.security_settings {
            next.security_settings = p.apply(&profile.security_settings)?;
        }
        check_tier_features(&next, policy)?;
        next.updated_at = now;
        Ok(next)
    }
}

/// Refuses settings the tier does not unlock.
pub(crate) fn check_tier_features(
    profile: &UserProfile,
    policy: &TierPolicy,
) -> Result<(), ValidationError> {
    if profile.ai_preferences.custom_model_training
        && !policy.has_feature(CUSTOM_MODEL_TRAINING_FEATURE)
    {
        return Err(ValidationError::new(
            "ai_preferences.custom_model_training",
            format!(
                "the {} tier does not include custom model training",
                policy.tier
            ),
        ));
    }
    Ok(())
}

/// Builds the profile of a new user: the tier's template, then `data` over it.
pub fn new_profile(
    id: UserId,
    email: Email,
    policy: &TierPolicy,
    template: &ProfileTemplate,
    data: &ProfilePatch,
    now: Timestamp,
) -> Result<UserProfile, ValidationError> {
    let default_name = email
        .as_str()
        .split('@')
        .next()
        .unwrap_or("user")
        .to_owned();
    let base = UserProfile {
        id,
        email,
        display_name: default_name,
        language: template.language.clone(),
        timezone: template.timezone.clone(),
        tier: policy.tier,
        created_at: now,
        updated_at: now,
        security_settings: template.security_settings.clone(),
        ai_preferences: template.ai_preferences.clone(),
        usage: UsageCounters::default(),
    };
    data.apply(&base, policy, now)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::settings::PersonalizationLevel;
    use crate::domain::tier::Limit;
    use std::time::Duration;

    pub(crate) fn policy(tier: UserTier, features: &[&str]) -> TierPolicy {
        TierPolicy {
            tier,
            max_playlists: Limit::Limited(10),
            max_storage_bytes: Limit::Limited(100),
            requests_per_hour: Limit::Limited(100),
            features: features.iter().map(|s| s.to_string()).collect(),
            session_idle_timeout: Duration::from_secs(3600),
            session_absolute_lifetime: Duration::from_secs(86400),
            zero_trust: false,
        }
    }

    pub(crate) fn template() -> ProfileTemplate {
        serde_json::from_str(
            r#"{"language":"en","timezone":"UTC",
                "security_settings":{"require_mfa":false,"mfa_methods":[],"session_timeout_minutes":1440,
                  "risk_score_threshold":0.7,"anomaly_detection_enabled":true},
                "ai_preferences":{"personalization_level":"basic","learning_rate":0.1,
                  "custom_model_training":false,"bias_mitigation_enabled":true,"mood_detection_enabled":false,
                  "federated_learning_enabled":false,"explanations_enabled":true}}"#,
        )
        .unwrap()
    }

    fn fresh(data: &ProfilePatch, features: &[&str]) -> Result<UserProfile, ValidationError> {
        new_profile(
            UserId::generate(),
            Email::parse("ann@example.com").unwrap(),
            &policy(UserTier::Free, features),
            &template(),
            data,
            Timestamp::from_millis(5),
        )
    }

    #[test]
    fn profile_data_overrides_the_template() {
        let data = ProfilePatch::from_json(serde_json::json!({
            "display_name": "John Doe", "language": "fr", "timezone": "Europe/Paris",
            "ai_preferences": {"personalization_level": "advanced"}
        }))
        .unwrap();
        let p = fresh(&data, &[]).unwrap();
        assert_eq!(p.display_name, "John Doe");
        assert_eq!(p.language, "fr");
        assert_eq!(
            p.ai_preferences.personalization_level,
            PersonalizationLevel::Advanced
        );
        assert_eq!(
            p.ai_preferences.learning_rate, 0.1,
            "untouched template value kept"
        );
        assert_eq!(
            fresh(&ProfilePatch::default(), &[]).unwrap().display_name,
            "ann"
        );
    }

    #[test]
    fn malformed_profile_data_names_the_field() {
        let e = ProfilePatch::from_json(serde_json::json!({"display_name": 7})).unwrap_err();
        assert_eq!(e.field, "display_name");
        let e =
            ProfilePatch::from_json(serde_json::json!({"ai_preferences": {"learning_rate": "x"}}))
                .unwrap_err();
        assert_eq!(e.field, "ai_preferences.learning_rate");
        let e = ProfilePatch::from_json(serde_json::json!({"shoe_size": 44})).unwrap_err();
        assert!(e.reason.contains("shoe_size"), "{e}");
        let e = ProfilePatch::from_json(serde_json::json!([1, 2])).unwrap_err();
        assert_eq!(e.field, "profile_data");
    }

    #[test]
    fn custom_model_training_needs_the_tier_feature() {
        let data = ProfilePatch::from_json(
            serde_json::json!({"ai_preferences": {"custom_model_training": true}}),
        )
        .unwrap();
        assert_eq!(
            fresh(&data, &[]).unwrap_err().field,
            "ai_preferences.custom_model_training"
        );
        assert!(fresh(&data, &[CUSTOM_MODEL_TRAINING_FEATURE]).is_ok());
    }

    #[test]
    fn quotas_count_up_to_the_limit_and_free_on_negative_deltas() {
        let pol = policy(UserTier::Free, &[]); // 10 playlists, 100 bytes
        let mut u = UsageCounters::default();
        for i in 1..=10 {
            assert_eq!(
                u.apply(QuotaKind::Playlists, 1, &pol),
                QuotaDecision::Accepted {
                    used: i,
                    limit: Some(10)
                }
            );
        }
        assert_eq!(
            u.apply(QuotaKind::Playlists, 1, &pol),
            QuotaDecision::Exceeded {
                used: 10,
                limit: Some(10),
                requested: 1
            }
        );
        assert_eq!(u.playlists, 10, "refused change counted nothing");
        assert!(matches!(
            u.apply(QuotaKind::StorageBytes, 101, &pol),
            QuotaDecision::Exceeded { .. }
        ));
        assert!(
            matches!(
                u.apply(QuotaKind::StorageBytes, i64::MAX, &pol),
                QuotaDecision::Exceeded { .. }
            ),
            "past a tier's limit is the limit's refusal, however far past"
        );
        assert_eq!(
            u.apply(QuotaKind::Playlists, -20, &pol),
            QuotaDecision::OutOfRange {
                used: 10,
                delta: -20
            },
            "freeing more than is counted is refused, not clamped"
        );
        assert_eq!(
            u.apply(QuotaKind::Playlists, -10, &pol),
            QuotaDecision::Accepted {
                used: 0,
                limit: Some(10)
            }
        );
    }

    #[test]
    fn an_unlimited_counter_stops_at_the_apis_int64() {
        let pol = TierPolicy {
            max_storage_bytes: Limit::Unlimited,
            ..policy(UserTier::Vip, &[])
        };
        let mut u = UsageCounters::default();
        assert!(matches!(
            u.apply(QuotaKind::StorageBytes, i64::MAX, &pol),
            QuotaDecision::Accepted {
                used: MAX_USAGE,
                ..
            }
        ));
        for delta in [1, i64::MAX] {
            assert_eq!(
                u.apply(QuotaKind::StorageBytes, delta, &pol),
                QuotaDecision::OutOfRange {
                    used: MAX_USAGE,
                    delta
                }
            );
        }
        assert_eq!(u.storage_bytes, MAX_USAGE, "nothing counted past the bound");
        // A counter an older build let run past the bound still answers a zero.
        u.storage_bytes = u64::MAX;
        assert!(matches!(
            u.apply(QuotaKind::StorageBytes, 0, &pol),
            QuotaDecision::Accepted { used: u64::MAX, .. }
        ));
        u.storage_bytes = MAX_USAGE;
        assert!(matches!(
            u.apply(QuotaKind::StorageBytes, i64::MIN, &pol),
            QuotaDecision::OutOfRange { .. }
        ));
    }

    #[test]
    fn rejected_update_leaves_the_profile_untouched() {
        let p = fresh(&ProfilePatch::default(), &[]).unwrap();
        let bad = ProfilePatch {
            display_name: Some("ok".into()),
            timezone: Some("not a zone".into()),
            ..Default::default()
        };
        let before = p.clone();
        assert!(
            bad.apply(&p, &policy(UserTier::Free, &[]), Timestamp::from_millis(9))
                .is_err()
        );
        assert_eq!(p, before);
    }

    #[test]
    fn quota_warnings_fire_once_per_threshold() {
        assert_eq!(crossed_threshold(7, 8, 10), Some(80));
        assert_eq!(crossed_threshold(8, 9, 10), None);
        assert_eq!(crossed_threshold(9, 10, 10), Some(100));
        assert_eq!(crossed_threshold(0, 10, 10), Some(100));
        assert_eq!(crossed_threshold(10, 9, 10), None);
        assert_eq!(crossed_threshold(0, 1, 3), None); // 80% of 3 is 2.4 -> 3
        assert_eq!(crossed_threshold(1, 2, 3), None);
        assert_eq!(crossed_threshold(2, 3, 3), Some(100));
        assert_eq!(crossed_threshold(0, 5, 0), None);
    }
}
