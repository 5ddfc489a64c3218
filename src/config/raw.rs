//! Stage one of the configuration: raw values as written. TOML layers (the embedded
//! default, an optional file, `ROSTER_*` environment variables, the command line's flags)
//! are merged, later over earlier, and read into [`RawConfig`], which
//! [`super::validate`] turns into the typed [`super::Config`].
//!
//! Paths in a layer are resolved when the layer is made, against what the layer's
//! author meant them relative to: a file's `profiles.dir` against the file's folder,
//! everything else against the working directory. Paths relative to the data directory
//! (`notify.outbox_file`, the default master key file) wait for validation, when the
//! final data directory is known.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, ENV_PREFIX};
use crate::domain::risk::RiskConfig;

/// Configuration as written, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(super) server: RawServer,
    pub(super) store: RawStore,
    pub(super) engine: RawEngine,
    pub(super) passwords: RawPasswords,
    pub(super) lockout: RawLockout,
    pub(super) profiles: RawProfiles,
    pub(super) tiers: RawTiers,
    pub(super) log: RawLog,
    pub(super) websocket: RawWebSocket,
    pub(super) mfa: RawMfa,
    pub(super) risk: RiskConfig,
    pub(super) notify: RawNotify,
    pub(super) webauthn: RawWebauthn,
    pub(super) privacy: RawPrivacy,
    pub(super) analytics: RawAnalytics,
    pub(super) personalization: RawPersonalization,
    pub(super) encryption: RawEncryption,
    pub(super) automation: super::automation::RawAutomation,
    pub(super) integrations: super::integrations::RawIntegrations,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAnalytics {
    pub(super) churn_horizon_days: u32,
    pub(super) keep_models: usize,
    pub(super) segments: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPersonalization {
    pub(super) embedding_dim: usize,
    pub(super) max_items: usize,
    pub(super) basic_max_items: usize,
    pub(super) mitigation_popularity: f64,
    pub(super) mitigation_diversity: f64,
    pub(super) mitigation_calibration: f64,
    pub(super) federated: super::federated::RawFederated,
    pub(super) custom: super::custom::RawCustom,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEncryption {
    pub(super) master_key_file: PathBuf,
    pub(super) master_key_env: String,
    pub(super) generate_master_key: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrivacy {
    pub(super) min_age: u8,
    pub(super) security_event_retention_days: u64,
    pub(super) tombstone_retention_days: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebauthn {
    pub(super) rp_id: String,
    pub(super) rp_name: String,
    pub(super) origins: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMfa {
    pub(super) issuer: String,
    pub(super) totp_digits: u8,
    pub(super) totp_step_secs: u64,
    pub(super) totp_skew_steps: u8,
    pub(super) challenge_ttl_secs: u64,
    pub(super) code_digits: u8,
    pub(super) code_ttl_secs: u64,
    pub(super) code_max_attempts: u32,
    pub(super) code_resend_secs: u64,
    pub(super) step_up_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub(super) email: String,
    pub(super) outbox_file: PathBuf,
    pub(super) smtp_host: String,
    pub(super) smtp_port: u16,
    pub(super) smtp_from: String,
    pub(super) smtp_username: String,
    pub(super) smtp_password: String,
    pub(super) sms: String,
    pub(super) sms_webhook_url: String,
    pub(super) queue: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebSocket {
    pub(super) read_buffer_bytes: usize,
    pub(super) write_buffer_bytes: usize,
    pub(super) max_write_buffer_bytes: usize,
    pub(super) max_message_bytes: usize,
    pub(super) outbound_queue: usize,
    pub(super) resume_buffer: usize,
    pub(super) resume_buffer_bytes: usize,
    pub(super) max_sockets_per_user: usize,
    pub(super) auth_timeout_secs: u64,
    pub(super) ping_interval_secs: u64,
    pub(super) idle_timeout_secs: u64,
    pub(super) write_timeout_secs: u64,
    pub(super) security_feed_buffer: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) format: String,
    pub(super) filter: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: String,
    pub(super) admin_key: String,
    pub(super) self_service_tier_changes: bool,
    pub(super) anonymous_requests_per_hour: RawLimit,
    pub(super) http_metrics: bool,
    pub(super) metrics_listen: String,
    pub(super) trusted_proxies: Vec<String>,
    pub(super) geo_country_header: String,
    pub(super) geo_latitude_header: String,
    pub(super) geo_longitude_header: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) backend: String,
    pub(super) data_dir: PathBuf,
    pub(super) cache_mb: u64,
    pub(super) fsync_data_file: bool,
    pub(super) verify_on_start: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEngine {
    pub(super) mailbox_capacity: usize,
    pub(super) passivate_after_secs: u64,
    pub(super) sweep_interval_secs: u64,
    pub(super) snapshot_interval_secs: u64,
    pub(super) max_sessions_per_user: usize,
    pub(super) shutdown_timeout_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPasswords {
    pub(super) memory_kib: u32,
    pub(super) iterations: u32,
    pub(super) parallelism: u32,
    pub(super) workers: usize,
    pub(super) queue: usize,
    pub(super) min_chars: usize,
    pub(super) min_strength: u8,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLockout {
    pub(super) free_attempts: u32,
    pub(super) base_delay_secs: u64,
    pub(super) max_delay_secs: u64,
    pub(super) window_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfiles {
    pub(super) dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTiers {
    pub(super) free: RawTier,
    pub(super) premium: RawTier,
    pub(super) enterprise: RawTier,
    pub(super) vip: RawTier,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTier {
    pub(super) shards: usize,
    pub(super) arbiters: usize,
    pub(super) max_playlists: RawLimit,
    pub(super) max_storage_mb: RawLimit,
    pub(super) requests_per_hour: RawLimit,
    pub(super) session_idle_minutes: u64,
    pub(super) session_lifetime_hours: u64,
    pub(super) features: Vec<String>,
    pub(super) template: String,
    pub(super) max_concurrent_requests: RawLimit,
    pub(super) zero_trust: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum RawLimit {
    Number(u64),
    Word(String),
}

pub fn parse_toml(source: &str, text: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::new(source, e.to_string()))
}

/// Builds a layer from `ROSTER_*` variables: the contract shortcuts, and
/// `ROSTER_SECTION__KEY` paths. Values are read as TOML (numbers, booleans, arrays) and
/// fall back to plain strings.
pub(crate) fn env_layer(
    vars: impl Iterator<Item = (String, String)>,
) -> Result<toml::Table, ConfigError> {
    let mut table = toml::Table::new();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let path: Vec<String> = match rest {
            "LISTEN" => vec!["server".into(), "listen".into()],
            "DATA_DIR" => vec!["store".into(), "data_dir".into()],
            "ADMIN_KEY" => vec!["server".into(), "admin_key".into()],
            r if r.contains("__") => r.split("__").map(str::to_lowercase).collect(),
            _ => continue, // ROSTER_LOG and other variables that are not config keys
        };
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::new(name, "empty key segment"));
        }
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(value));
        set_path(&mut table, &path, parsed);
    }
    Ok(table)
}

pub(super) fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(t) = entry {
                set_path(t, rest, value);
            }
        }
    }
}

pub(super) fn merge(base: &mut toml::Table, layer: toml::Table) {
    for (k, v) in layer {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(l)) => merge(b, l),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Reads the config file at `path` as a layer. A relative `profiles.dir` in it names a
/// folder beside the file, wherever the program is started from.
pub(super) fn file_layer(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(path.display().to_string(), e.to_string()))?;
    let mut layer = parse_toml(&path.display().to_string(), &text)?;
    let folder = path.parent().unwrap_or(Path::new(""));
    if let Some(toml::Value::Table(profiles)) = layer.get_mut("profiles")
        && let Some(toml::Value::String(dir)) = profiles.get_mut("dir")
        && !dir.is_empty()
        && Path::new(dir.as_str()).is_relative()
    {
        *dir = folder.join(dir.as_str()).display().to_string();
    }
    Ok(layer)
}

/// The command line's settings, the last layer: `--listen` and `--data-dir`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// `--listen ADDR`.
    pub listen: Option<std::net::SocketAddr>,
    /// `--data-dir DIR`.
    pub data_dir: Option<PathBuf>,
}

impl Flags {
    /// The flags as a TOML layer.
    pub(super) fn layer(&self) -> toml::Table {
        let mut t = toml::Table::new();
        if let Some(l) = self.listen {
            set_path(
                &mut t,
                &["server".into(), "listen".into()],
                l.to_string().into(),
            );
        }
        if let Some(d) = &self.data_dir {
            let d = d.display().to_string();
            set_path(&mut t, &["store".into(), "data_dir".into()], d.into());
        }
        t
    }
}
