//! Per-user settings from the seed: `SecuritySettings` and `AIPreferences`, and the
//! partial updates (patches) clients send for them.

use serde::{Deserialize, Serialize};

use super::validation::{ValidationError, in_range};

/// Longest session idle timeout a user may choose: 30 days.
pub(crate) const MAX_SESSION_TIMEOUT_MINUTES: u32 = 30 * 24 * 60;

/// A second-factor method a user may enable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MfaMethod {
    /// A code sent by email.
    Email,
    /// A code sent by SMS.
    Sms,
    /// A TOTP authenticator app.
    Authenticator,
    /// A WebAuthn passkey or hardware key.
    Webauthn,
}

/// How a user's account is protected (the seed's `SecuritySettings`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// Whether login requires a second factor.
    pub require_mfa: bool,
    /// Second factors the user accepts.
    pub mfa_methods: Vec<MfaMethod>,
    /// Minutes of inactivity after which a session expires (capped by the tier's policy).
    pub session_timeout_minutes: u32,
    /// Risk score (0..1) above which a login needs extra checks.
    pub risk_score_threshold: f64,
    /// Whether logins are checked for anomalies (new device, new network).
    pub anomaly_detection_enabled: bool,
}

impl SecuritySettings {
    /// Checks every field.
    pub fn validate(&self, prefix: &str) -> Result<(), ValidationError> {
        if self.session_timeout_minutes == 0
            || self.session_timeout_minutes > MAX_SESSION_TIMEOUT_MINUTES
        {
            return Err(ValidationError::new(
                format!("{prefix}session_timeout_minutes"),
                format!("must be between 1 and {MAX_SESSION_TIMEOUT_MINUTES}"),
            ));
        }
        in_range(
            &format!("{prefix}risk_score_threshold"),
            self.risk_score_threshold,
            0.0,
            1.0,
        )?;
        if self.require_mfa && self.mfa_methods.is_empty() {
            return Err(ValidationError::new(
                format!("{prefix}mfa_methods"),
                "must name at least one method when require_mfa is true",
            ));
        }
        let mut seen = Vec::with_capacity(self.mfa_methods.len());
        for m in &self.mfa_methods {
            if seen.contains(m) {
                return Err(ValidationError::new(
                    format!("{prefix}mfa_methods"),
                    "must not repeat a method",
                ));
            }
            seen.push(*m);
        }
        Ok(())
    }
}

/// A partial update of [`SecuritySettings`]: absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettingsPatch {
    /// See [`SecuritySettings::require_mfa`].
    pub require_mfa: Option<bool>,
    /// See [`SecuritySettings::mfa_methods`].
    pub mfa_methods: Option<Vec<MfaMethod>>,
    /// See [`SecuritySettings::session_timeout_minutes`].
    pub session_timeout_minutes: Option<u32>,
    /// See [`SecuritySettings::risk_score_threshold`].
    pub risk_score_threshold: Option<f64>,
    /// See [`SecuritySettings::anomaly_detection_enabled`].
    pub anomaly_detection_enabled: Option<bool>,
}

impl SecuritySettingsPatch {
    /// `base` with this patch applied, validated as a whole.
    pub fn apply(&self, base: &SecuritySettings) -> Result<SecuritySettings, ValidationError> {
        let next = SecuritySettings {
            require_mfa: self.require_mfa.unwrap_or(base.require_mfa),
            mfa_methods: self
                .mfa_methods
                .clone()
                .unwrap_or_else(|| base.mfa_methods.clone()),
            session_timeout_minutes: self
                .session_timeout_minutes
                .unwrap_or(base.session_timeout_minutes),
            risk_score_threshold: self
                .risk_score_threshold
                .unwrap_or(base.risk_score_threshold),
            anomaly_detection_enabled: self
                .anomaly_detection_enabled
                .unwrap_or(base.anomaly_detection_enabled),
        };
        next.validate("security_settings.")?;
        Ok(next)
    }
}

/// How much the AI adapts to the user.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PersonalizationLevel {
    /// No personalization.
    Off,
    /// Popularity and genre only.
    Basic,
    /// Listening history.
    Standard,
    /// Multi-modal signals such as mood and context.
    Advanced,
}

/// The seed's `AIPreferences`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AIPreferences {
    /// How much recommendations adapt.
    pub personalization_level: PersonalizationLevel,
    /// How fast the model adapts to new behaviour, in (0, 1].
    pub learning_rate: f64,
    /// Train a model of the user's own (a tier feature: `custom_model_training`).
    pub custom_model_training: bool,
    /// Apply bias mitigation to recommendations.
    pub bias_mitigation_enabled: bool,
    /// Infer mood from listening.
    pub mood_detection_enabled: bool,
    /// Contribute to federated learning.
    pub federated_learning_enabled: bool,
    /// Attach an explanation to each recommendation.
    pub explanations_enabled: bool,
}

/// The tier feature that [`AIPreferences::custom_model_training`] needs.
pub(crate) const CUSTOM_MODEL_TRAINING_FEATURE: &str = "custom_model_training";

impl AIPreferences {
    /// Checks every field.
    pub fn validate(&self, prefix: &str) -> Result<(), ValidationError> {
        if !(self.learning_rate.is_finite()
            && self.learning_rate > 0.0
            && self.learning_rate <= 1.0)
        {
            return Err(ValidationError::new(
                format!("{prefix}learning_rate"),
                "must be greater than 0 and at most 1",
            ));
        }
        Ok(())
    }
}

/// A partial update of [`AIPreferences`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AIPreferencesPatch {
    /// See [`AIPreferences::personalization_level`].
    pub personalization_level: Option<PersonalizationLevel>,
    /// See [`AIPreferences::learning_rate`].
    pub learning_rate: Option<f64>,
    /// See [`AIPreferences::custom_model_training`].
    pub custom_model_training: Option<bool>,
    /// See [`AIPreferences::bias_mitigation_enabled`].
    pub bias_mitigation_enabled: Option<bool>,
    /// See [`AIPreferences::mood_detection_enabled`].
    pub mood_detection_enabled: Option<bool>,
    /// See [`AIPreferences::federated_learning_enabled`].
    pub federated_learning_enabled: Option<bool>,
    /// See [`AIPreferences::explanations_enabled`].
    pub explanations_enabled: Option<bool>,
}

impl AIPreferencesPatch {
    /// `base` with this patch applied, validated as a whole.
    pub fn apply(&self, base: &AIPreferences) -> Result<AIPreferences, ValidationError> {
        let next = AIPreferences {
            personalization_level: self
                .personalization_level
                .unwrap_or(base.personalization_level),
            learning_rate: self.learning_rate.unwrap_or(base.learning_rate),
            custom_model_training: self
                .custom_model_training
                .unwrap_or(base.custom_model_training),
            bias_mitigation_enabled: self
                .bias_mitigation_enabled
                .unwrap_or(base.bias_mitigation_enabled),
            mood_detection_enabled: self
                .mood_detection_enabled
                .unwrap_or(base.mood_detection_enabled),
            federated_learning_enabled: self
                .federated_learning_enabled
                .unwrap_or(base.federated_learning_enabled),
            explanations_enabled: self
                .explanations_enabled
                .unwrap_or(base.explanations_enabled),
        };
        next.validate("ai_preferences.")?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn security() -> SecuritySettings {
        SecuritySettings {
            require_mfa: false,
            mfa_methods: vec![],
            session_timeout_minutes: 60,
            risk_score_threshold: 0.7,
            anomaly_detection_enabled: true,
        }
    }

    #[test]
    fn security_patch_applies_only_given_fields_and_validates_the_result() {
        let base = security();
        let p = SecuritySettingsPatch {
            session_timeout_minutes: Some(30),
            ..Default::default()
        };
        let next = p.apply(&base).unwrap();
        assert_eq!(next.session_timeout_minutes, 30);
        assert_eq!(next.risk_score_threshold, 0.7);

        let needs_method = SecuritySettingsPatch {
            require_mfa: Some(true),
            ..Default::default()
        };
        assert_eq!(
            needs_method.apply(&base).unwrap_err().field,
            "security_settings.mfa_methods"
        );

        let bad_risk = SecuritySettingsPatch {
            risk_score_threshold: Some(1.5),
            ..Default::default()
        };
        assert!(bad_risk.apply(&base).is_err());
    }

    #[test]
    fn ai_patch_rejects_out_of_range_learning_rates() {
        let base = AIPreferences {
            personalization_level: PersonalizationLevel::Standard,
            learning_rate: 0.1,
            custom_model_training: false,
            bias_mitigation_enabled: true,
            mood_detection_enabled: false,
            federated_learning_enabled: false,
            explanations_enabled: true,
        };
        for bad in [0.0, -0.1, 1.5, f64::INFINITY] {
            let p = AIPreferencesPatch {
                learning_rate: Some(bad),
                ..Default::default()
            };
            assert_eq!(
                p.apply(&base).unwrap_err().field,
                "ai_preferences.learning_rate"
            );
        }
        let p: AIPreferencesPatch = serde_json::from_str(
            r#"{"personalization_level":"advanced","mood_detection_enabled":true}"#,
        )
        .unwrap();
        let next = p.apply(&base).unwrap();
        assert_eq!(next.personalization_level, PersonalizationLevel::Advanced);
        assert!(next.mood_detection_enabled);
        assert!(serde_json::from_str::<AIPreferencesPatch>(r#"{"bogus":1}"#).is_err());
    }
}
