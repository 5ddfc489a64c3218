//! Settings, loaded and validated once at start-up, in ripgrep's staged shape:
//!
//! 1. [`raw`]: layers of TOML — the embedded `config/default.toml`, an optional file,
//!    `ROSTER_*` environment variables, the command line's [`Flags`] — merged, later
//!    over earlier, and read into raw values;
//! 2. [`validate`]: raw values → the typed [`Config`] the rest of the program receives
//!    (durations, socket addresses, non-zero counts), every error naming its key;
//! 3. [`tiers`]: each tier's policy, placement and profile template.
//!
//! The embedded defaults start anywhere: no file beside the binary is needed. The config
//! depends on the domain's plain types only.

mod automation;
mod custom;
mod federated;
mod integrations;
mod personalization;
mod raw;
mod sections;
mod tiers;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::domain::lockout::LockoutPolicy;
use crate::domain::mfa::TotpConfig;
use crate::domain::password::{HashParams, PasswordPolicy};
use crate::domain::profile::ProfileTemplate;
use crate::domain::risk::RiskConfig;
use crate::domain::tier::{Limit, TierPolicy, UserTier};

pub use automation::{AutomationConfig, BackupConfig, JobConfig, ProvisioningConfig, ScimConfig};
pub use custom::CustomConfig;
pub use federated::FederatedConfig;
pub(crate) use integrations::endpoint;
pub use integrations::{IntegrationsConfig, Issuer, ProviderConfig, TierLinks};
pub use personalization::PersonalizationConfig;
pub(crate) use raw::env_layer;
pub use raw::{Flags, parse_toml};
pub use sections::{AnalyticsConfig, EncryptionConfig};

/// The embedded default configuration.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Prefix of environment overrides.
pub(crate) const ENV_PREFIX: &str = "ROSTER_";

/// A configuration problem, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config {key}: {reason}")]
pub struct ConfigError {
    /// The key (`engine.mailbox_capacity`), file or variable at fault.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// A secret string that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// `value`, kept secret.
    pub(crate) fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP server.
    pub server: ServerConfig,
    /// Storage.
    pub store: StoreConfig,
    /// Actor engine.
    pub engine: EngineConfig,
    /// Password hashing and policy.
    pub passwords: PasswordConfig,
    /// Login lockout.
    pub lockout: LockoutPolicy,
    /// Per-tier policy, placement and template, indexed by [`UserTier::index`].
    pub tiers: [TierConfig; 4],
    /// Logging.
    pub log: LogConfig,
    /// Event sockets.
    pub websocket: WebSocketConfig,
    /// Second factors and step-up.
    pub mfa: MfaConfig,
    /// The risk engine.
    pub risk: RiskConfig,
    /// How users are sent codes and alerts.
    pub notify: NotifyConfig,
    /// The WebAuthn relying party.
    pub webauthn: WebauthnConfig,
    /// Consent, age and retention rules.
    pub privacy: PrivacyConfig,
    /// The analytics engine (`[analytics]`).
    pub analytics: AnalyticsConfig,
    /// Recommendations and the catalog (`[personalization]`).
    pub personalization: PersonalizationConfig,
    /// Encryption at rest (`[encryption]`).
    pub encryption: EncryptionConfig,
    /// The scheduler and its jobs (`[automation]`).
    pub automation: AutomationConfig,
    /// The integration hub (`[integrations]`).
    pub integrations: IntegrationsConfig,
}

/// Consent, age and retention rules (`[privacy]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrivacyConfig {
    /// Below this age an account needs a recorded parental consent before it may use
    /// features that collect activity data.
    pub min_age: u8,
    /// Security events older than this are purged by `roster purge`.
    pub security_event_retention: Duration,
    /// Tombstones of erased users older than this are dropped by `roster cleanup`;
    /// backups should be kept for less than this (a restore's erasures come from them).
    pub tombstone_retention: Duration,
}

/// The WebAuthn relying party (`[webauthn]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnConfig {
    /// The domain credentials are scoped to.
    pub rp_id: String,
    /// The name authenticators show.
    pub rp_name: String,
    /// Web origins ceremonies may come from (the first is the primary one).
    pub origins: Vec<url::Url>,
}

/// Second-factor settings (`[mfa]`).
#[derive(Debug, Clone)]
pub struct MfaConfig {
    /// Authenticator codes.
    pub totp: TotpConfig,
    /// Time a login challenge may be answered in.
    pub challenge_ttl: Duration,
    /// Digits of codes sent by email.
    pub code_digits: u8,
    /// Life of a sent code.
    pub code_ttl: Duration,
    /// Wrong answers a challenge takes before it is void.
    pub code_max_attempts: u32,
    /// Least time between two sends for one challenge.
    pub code_resend: Duration,
    /// How recent a session's authentication must be for sensitive operations.
    pub step_up_window: Duration,
}

/// Where emails go (`[notify]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailTransport {
    /// Appended as JSON lines to a file (development; never the tracing log, which
    /// must not carry codes).
    Outbox(PathBuf),
    /// An SMTP relay.
    Smtp {
        /// Relay host.
        host: String,
        /// Relay port.
        port: u16,
        /// Sender address.
        from: String,
        /// Credentials, if the relay wants them.
        credentials: Option<(String, Secret)>,
    },
}

/// Where text messages go (`[notify] sms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsTransport {
    /// Appended to the outbox file with the emails (development).
    Outbox(PathBuf),
    /// POSTed as JSON `{"to", "body"}` to an SMS gateway's webhook.
    Webhook(String),
}

/// Notification settings.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Email transport.
    pub email: EmailTransport,
    /// SMS transport.
    pub sms: SmsTransport,
    /// Messages waiting to be sent; beyond this new ones are dropped (and counted).
    pub queue: usize,
}

/// Event socket settings (`[websocket]`).
#[derive(Debug, Clone)]
pub struct WebSocketConfig {
    /// Read buffer per connection.
    pub read_buffer_bytes: usize,
    /// Bytes buffered before a write goes to the socket.
    pub write_buffer_bytes: usize,
    /// Most bytes a connection may have waiting to be written.
    pub max_write_buffer_bytes: usize,
    /// Largest frame or message accepted from a client.
    pub max_message_bytes: usize,
    /// Stream limits: resume buffer, per-socket queue, sockets per user.
    pub limits: StreamLimits,
    /// Time a socket without an `Authorization` header has to send its `auth` frame.
    pub auth_timeout: Duration,
    /// How often the server pings.
    pub ping_interval: Duration,
    /// A socket silent this long is closed.
    pub idle_timeout: Duration,
    /// A write the client does not take within this is a dead client.
    pub write_timeout: Duration,
}

/// How logs are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// One JSON object per line instead of human-readable text.
    pub json: bool,
    /// `tracing` filter directives (overridden by `ROSTER_LOG` or `RUST_LOG`).
    pub filter: String,
}

/// HTTP server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Operator key; `None` closes operator endpoints.
    pub admin_key: Option<Secret>,
    /// Whether users may change their own tier (and sign up above Free).
    pub self_service_tier_changes: bool,
    /// Sign-up and login requests per hour per client address.
    pub anonymous_requests_per_hour: Limit,
    /// Whether HTTP requests are counted and timed per route.
    pub http_metrics: bool,
    /// A second listener serving only `GET /metrics`, without credentials (its bind
    /// address is the protection); `None`: metrics only on the API port, operator key.
    pub metrics_listen: Option<SocketAddr>,
    /// Peers whose `X-Forwarded-For` and location headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Header names a trusted proxy puts the client's location in (country, latitude,
    /// longitude); `None`: locations are not read from headers.
    pub geo_headers: Option<[String; 3]>,
}

/// Which store holds the data (`store.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// sled, embedded, in the data directory.
    Sled,
}

/// Storage settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The backend.
    pub backend: Backend,
    /// Data directory.
    pub data_dir: PathBuf,
    /// sled page cache size.
    pub cache_bytes: u64,
    /// `fdatasync` sled's data file after each flush.
    pub fsync_data_file: bool,
    /// Decode every record at start-up and report bad ones.
    pub verify_on_start: bool,
}

/// Actor engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// User actor mailbox size.
    pub mailbox_capacity: usize,
    /// Idle time before passivation.
    pub passivate_after: Duration,
    /// Shard sweep period.
    pub sweep_interval: Duration,
    /// Least time between soft-state snapshots of one user.
    pub snapshot_interval: Duration,
    /// Sessions kept per user.
    pub max_sessions_per_user: usize,
    /// Time allowed for the shutdown snapshot.
    pub shutdown_timeout: Duration,
}

/// Password settings.
#[derive(Debug, Clone)]
pub struct PasswordConfig {
    /// argon2id cost.
    pub params: HashParams,
    /// Hashing threads.
    pub workers: usize,
    /// Hash jobs allowed to wait.
    pub queue: usize,
    /// New-password policy.
    pub policy: PasswordPolicy,
}

/// One tier's configuration.
#[derive(Debug, Clone)]
pub struct TierConfig {
    /// What the tier grants.
    pub policy: TierPolicy,
    /// Registry shards.
    pub shards: usize,
    /// Arbiter threads for those shards.
    pub arbiters: usize,
    /// Defaults of a new profile.
    pub template: ProfileTemplate,
    /// Requests of this tier's users handled at once past authentication; the rest
    /// wait their turn (admission control: a flood from one tier cannot take all the
    /// CPU from the others).
    pub max_concurrent_requests: Limit,
}

/// Limits of the realtime layer (from the `[websocket]` section).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// Events kept per user for resuming.
    pub resume_buffer: usize,
    /// Bytes of events kept per user for resuming (whichever cap is hit first).
    pub resume_buffer_bytes: usize,
    /// Events queued per socket before it counts as too slow and is closed.
    pub outbound_queue: usize,
    /// Sockets one user may hold.
    pub max_sockets_per_user: usize,
    /// Security events buffered for the operators' feed.
    pub security_feed_buffer: usize,
}

impl Config {
    /// The embedded defaults, then `file` (only the keys it sets), then the environment,
    /// then the command line's `flags`.
    pub fn load(file: Option<&Path>, flags: &Flags) -> Result<Config, ConfigError> {
        let mut layers = vec![parse_toml("config/default.toml (embedded)", DEFAULT_TOML)?];
        if let Some(path) = file {
            layers.push(raw::file_layer(path)?);
        }
        layers.push(env_layer(std::env::vars())?);
        layers.push(flags.layer());
        Self::from_layers(layers)
    }

    /// The embedded defaults only: what tests and benches start from.
    pub fn defaults() -> Result<Config, ConfigError> {
        Self::from_layers(vec![parse_toml(
            "config/default.toml (embedded)",
            DEFAULT_TOML,
        )?])
    }

    /// Merges TOML layers (later wins) and validates the result.
    pub fn from_layers(layers: Vec<toml::Table>) -> Result<Config, ConfigError> {
        let mut merged = toml::Table::new();
        for layer in layers {
            raw::merge(&mut merged, layer);
        }
        let raw: raw::RawConfig = serde_path_to_error::deserialize(toml::Value::Table(merged))
            .map_err(|e| {
                let path = e.path().to_string();
                ConfigError::new(path, e.into_inner().to_string())
            })?;
        raw.validate()
    }

    /// The master key file in force: `encryption.master_key_file`, or `master.key` in
    /// the data directory.
    pub(crate) fn master_key_file(&self) -> PathBuf {
        self.encryption
            .master_key_file
            .clone()
            .unwrap_or_else(|| self.store.data_dir.join("master.key"))
    }

    /// The configuration of one tier.
    pub fn tier(&self, tier: UserTier) -> &TierConfig {
        &self.tiers[tier.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::tiers::{EMBEDDED_TEMPLATES, load_template};
    use super::*;

    fn with(extra: &str) -> Result<Config, ConfigError> {
        let mut layers = vec![parse_toml("default", DEFAULT_TOML).unwrap()];
        layers.push(parse_toml("extra", extra).unwrap());
        layers.push(parse_toml("embedded templates", "[profiles]\ndir = \"\"").unwrap());
        Config::from_layers(layers)
    }

    #[test]
    fn defaults_validate_and_carry_the_seed_limits() {
        let c = with("").unwrap();
        let free = &c.tier(UserTier::Free).policy;
        assert_eq!(free.max_playlists, Limit::Limited(10));
        assert_eq!(free.max_storage_bytes, Limit::Limited(100 << 20));
        assert_eq!(free.requests_per_hour, Limit::Limited(100));
        assert_eq!(
            c.tier(UserTier::Premium).policy.requests_per_hour,
            Limit::Limited(5000)
        );
        assert_eq!(
            c.tier(UserTier::Enterprise).policy.requests_per_hour,
            Limit::Limited(50_000)
        );
        assert_eq!(
            c.tier(UserTier::Vip).policy.requests_per_hour,
            Limit::Unlimited
        );
        assert_eq!(c.passwords.params.memory_kib, 19 * 1024);
        assert!(c.server.admin_key.is_none());
    }

    #[test]
    fn the_repository_templates_load_from_disk() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/profiles");
        for name in [
            "free_user_profile.json",
            "premium_user_profile.json",
            "complete_profile.json",
        ] {
            load_template(&dir, name).unwrap();
        }
    }

    #[test]
    fn errors_name_the_key() {
        let e = with("[engine]\nmailbox_capacity = 0").unwrap_err();
        assert_eq!(e.key, "engine.mailbox_capacity");
        let e = with("[engine]\nmailbox_capacity = \"lots\"").unwrap_err();
        assert_eq!(e.key, "engine.mailbox_capacity");
        let e = with("[tiers.free]\nrequests_per_hour = \"many\"").unwrap_err();
        assert_eq!(e.key, "tiers.free.requests_per_hour");
        let e = with("[server]\nlisten = \"nowhere\"").unwrap_err();
        assert_eq!(e.key, "server.listen");
        let e = with("[engine]\nbogus = 1").unwrap_err();
        assert!(e.reason.contains("bogus"), "{e}");
    }

    #[test]
    fn environment_overrides_and_shortcuts() {
        let vars = [
            ("ROSTER_LISTEN", "127.0.0.1:0"),
            ("ROSTER_DATA_DIR", "/tmp/r"),
            ("ROSTER_TIERS__FREE__SHARDS", "8"),
            ("ROSTER_ADMIN_KEY", "0123456789abcdef0123"),
            ("ROSTER_LOG", "debug"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let env = env_layer(vars.into_iter()).unwrap();
        let mut layers = vec![parse_toml("default", DEFAULT_TOML).unwrap(), env];
        layers.push(parse_toml("t", "[profiles]\ndir = \"\"").unwrap());
        let c = Config::from_layers(layers).unwrap();
        assert_eq!(c.server.listen.port(), 0);
        assert_eq!(c.store.data_dir, PathBuf::from("/tmp/r"));
        assert_eq!(c.tier(UserTier::Free).shards, 8);
        assert_eq!(
            c.server.admin_key.as_ref().map(Secret::expose),
            Some("0123456789abcdef0123")
        );
        assert!(
            !format!("{c:?}").contains("0123456789abcdef0123"),
            "key never printed"
        );
    }

    #[test]
    fn bad_templates_are_reported_with_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let good = EMBEDDED_TEMPLATES[0].1;
        std::fs::write(dir.path().join("bad.json"), good.replace("0.1", "7.0")).unwrap();
        let e = load_template(dir.path(), "bad.json").unwrap_err();
        assert!(
            e.key
                .ends_with("bad.json: field ai_preferences.learning_rate"),
            "{e}"
        );
        std::fs::write(
            dir.path().join("typo.json"),
            good.replace("\"timezone\"", "\"time_zone\""),
        )
        .unwrap();
        let e = load_template(dir.path(), "typo.json").unwrap_err();
        assert!(e.reason.contains("time_zone"), "{e}");
        assert!(
            load_template(dir.path(), "missing.json")
                .unwrap_err()
                .key
                .ends_with("missing.json")
        );
        // A template granting what its tier lacks is refused at start-up.
        let e = with("[tiers.free]\ntemplate = \"complete_profile.json\"").unwrap_err();
        assert!(e.reason.contains("custom model training"), "{e}");
    }

    #[test]
    fn the_shipped_defaults_need_no_files_beside_the_binary() {
        // No layer but the embedded default: the built-in templates.
        let c = Config::defaults().unwrap();
        assert_eq!(c.tier(UserTier::Free).template.language, "en");
    }

    #[test]
    fn a_relative_template_folder_in_a_file_is_taken_from_the_files_folder() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir_all(etc.join("templates")).unwrap();
        for (name, text) in EMBEDDED_TEMPLATES {
            std::fs::write(etc.join("templates").join(name), text).unwrap();
        }
        let file = etc.join("roster.toml");
        std::fs::write(&file, "[profiles]\ndir = \"templates\"\n").unwrap();
        // Whatever the working directory, the folder beside the file is read.
        let layer = raw::file_layer(&file).unwrap();
        let dir_value = layer["profiles"]["dir"].as_str().unwrap().to_owned();
        assert_eq!(PathBuf::from(&dir_value), etc.join("templates"));
        let layers = vec![parse_toml("default", DEFAULT_TOML).unwrap(), layer];
        Config::from_layers(layers).unwrap();
        // A folder that is not there names the key, the path and the way out.
        std::fs::write(&file, "[profiles]\ndir = \"nowhere\"\n").unwrap();
        let layers = vec![
            parse_toml("default", DEFAULT_TOML).unwrap(),
            raw::file_layer(&file).unwrap(),
        ];
        let e = Config::from_layers(layers).unwrap_err();
        assert_eq!(e.key, "profiles.dir");
        assert!(
            e.reason
                .contains(&etc.join("nowhere").display().to_string()),
            "{e}"
        );
        assert!(e.reason.contains("profiles.dir = \"\""), "{e}");
    }

    #[test]
    fn data_relative_paths_follow_the_data_dir_of_the_command_line() {
        let flags = Flags {
            listen: None,
            data_dir: Some(PathBuf::from("/srv/roster-a")),
        };
        let layers = vec![parse_toml("default", DEFAULT_TOML).unwrap(), flags.layer()];
        let c = Config::from_layers(layers).unwrap();
        assert_eq!(c.store.data_dir, PathBuf::from("/srv/roster-a"));
        assert_eq!(
            c.notify.email,
            EmailTransport::Outbox(PathBuf::from("/srv/roster-a/outbox.jsonl"))
        );
        assert_eq!(
            c.notify.sms,
            SmsTransport::Outbox(PathBuf::from("/srv/roster-a/outbox.jsonl"))
        );
        assert_eq!(
            c.master_key_file(),
            PathBuf::from("/srv/roster-a/master.key")
        );
    }

    #[test]
    fn origins_outside_the_relying_party_are_refused_with_the_key() {
        let e = with("[webauthn]\nrp_id = \"example.com\"\norigins = [\"https://evil.io\"]")
            .unwrap_err();
        assert_eq!(e.key, "webauthn.origins");
        with("[webauthn]\nrp_id = \"example.com\"\norigins = [\"https://id.example.com\"]")
            .unwrap();
        let e = with("[server]\ngeo_country_header = \"x country\"\ngeo_latitude_header = \"a\"\ngeo_longitude_header = \"b\"").unwrap_err();
        assert_eq!(e.key, "server.geo_country_header");
    }
}
