//! Stage three: the tiers. Each tier's policy (quotas, rate, session lifetimes, zero
//! trust), its placement (shards, Arbiters, admission budget) and the profile template
//! its new users start from, checked against the policy so that a template can never
//! grant what its tier lacks.

use std::path::Path;
use std::time::Duration;

use super::raw::RawTier;
use super::validate::positive;
use super::{ConfigError, TierConfig};
use crate::domain::profile::{ProfileTemplate, UsageCounters, UserProfile, check_tier_features};
use crate::domain::tier::{Limit, TierPolicy, UserTier};
use crate::domain::time::Timestamp;

/// The templates compiled into the binary: what `profiles.dir = ""` (the default) uses,
/// so the server starts anywhere without files beside it.
pub(super) const EMBEDDED_TEMPLATES: [(&str, &str); 3] = [
    (
        "free_user_profile.json",
        include_str!("../../config/profiles/free_user_profile.json"),
    ),
    (
        "premium_user_profile.json",
        include_str!("../../config/profiles/premium_user_profile.json"),
    ),
    (
        "complete_profile.json",
        include_str!("../../config/profiles/complete_profile.json"),
    ),
];

pub(super) fn tier_config(
    tier: UserTier,
    raw: RawTier,
    dir: &Path,
) -> Result<TierConfig, ConfigError> {
    let key = |k: &str| format!("tiers.{tier}.{k}");
    let policy = TierPolicy {
        tier,
        max_playlists: raw.max_playlists.to_limit(&key("max_playlists"), 1)?,
        max_storage_bytes: raw
            .max_storage_mb
            .to_limit(&key("max_storage_mb"), 1 << 20)?,
        requests_per_hour: raw
            .requests_per_hour
            .to_limit(&key("requests_per_hour"), 1)?,
        features: raw.features,
        session_idle_timeout: Duration::from_secs(
            positive(&key("session_idle_minutes"), raw.session_idle_minutes)?.saturating_mul(60),
        ),
        session_absolute_lifetime: Duration::from_secs(
            positive(&key("session_lifetime_hours"), raw.session_lifetime_hours)?
                .saturating_mul(3600),
        ),
        zero_trust: raw.zero_trust,
    };
    if raw.shards > 1024 {
        return Err(ConfigError::new(key("shards"), "must be at most 1024"));
    }
    if raw.arbiters > 64 {
        return Err(ConfigError::new(key("arbiters"), "must be at most 64"));
    }
    let template = load_template(dir, &raw.template)?;
    // The template must be something a user of this tier could choose.
    let probe = UserProfile {
        id: crate::domain::ids::UserId::generate(),
        email: crate::domain::email::Email::parse("probe@example.com")
            .map_err(|e| ConfigError::new("internal", e.to_string()))?,
        display_name: "probe".into(),
        language: template.language.clone(),
        timezone: template.timezone.clone(),
        tier,
        created_at: Timestamp::EPOCH,
        updated_at: Timestamp::EPOCH,
        security_settings: template.security_settings.clone(),
        ai_preferences: template.ai_preferences.clone(),
        usage: UsageCounters::default(),
    };
    check_tier_features(&probe, &policy).map_err(|e| {
        ConfigError::new(
            format!("{} ({})", raw.template, key("template")),
            e.to_string(),
        )
    })?;
    Ok(TierConfig {
        policy,
        shards: positive(&key("shards"), raw.shards)?,
        arbiters: positive(&key("arbiters"), raw.arbiters)?,
        template,
        max_concurrent_requests: match raw
            .max_concurrent_requests
            .to_limit(&key("max_concurrent_requests"), 1)?
        {
            Limit::Limited(0) => {
                return Err(ConfigError::new(
                    key("max_concurrent_requests"),
                    "must be at least 1 (or \"unlimited\")",
                ));
            }
            l => l,
        },
    })
}

/// Reads and checks a profile template; errors name the file and the field.
pub(super) fn load_template(dir: &Path, name: &str) -> Result<ProfileTemplate, ConfigError> {
    let (source, text) = if dir.as_os_str().is_empty() {
        let text = EMBEDDED_TEMPLATES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| (*t).to_owned())
            .ok_or_else(|| ConfigError::new(name, "no embedded template of that name"))?;
        (format!("{name} (embedded)"), text)
    } else {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigError::new(
                path.display().to_string(),
                format!("{e} (set profiles.dir = \"\" to use the built-in templates)"),
            )
        })?;
        (path.display().to_string(), text)
    };
    let mut de = serde_json::Deserializer::from_str(&text);
    let template: ProfileTemplate = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        ConfigError::new(
            format!("{source}: field {field}"),
            e.into_inner().to_string(),
        )
    })?;
    de.end()
        .map_err(|e| ConfigError::new(source.clone(), e.to_string()))?;
    template
        .validate()
        .map_err(|e| ConfigError::new(format!("{source}: field {}", e.field), e.reason))?;
    Ok(template)
}

/// Checks the configured template folder: empty means the built-in templates; anything
/// else must be a folder (a relative path was resolved when its layer was read).
pub(super) fn check_profiles_dir(dir: &Path) -> Result<(), ConfigError> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    Err(ConfigError::new(
        "profiles.dir",
        format!(
            "{} is not a folder. A relative path in a config file is taken from that \
             file's folder; set profiles.dir = \"\" to use the templates built into the \
             binary",
            dir.display()
        ),
    ))
}
