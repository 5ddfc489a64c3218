//! Settings, loaded and validated once at start-up.
//!
//! Two stages, as in ripgrep's flags: layers of raw TOML (the embedded
//! `config/default.toml`, an optional file, `ROSTER_*` environment variables) are merged
//! and read into [`RawConfig`]; [`RawConfig::validate`] turns that into the typed
//! [`Config`] the rest of the program receives. Every error names the key and the reason.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use ipnet::IpNet;

use crate::domain::lockout::LockoutPolicy;
use crate::domain::profile::{ProfileTemplate, UsageCounters, UserProfile, check_tier_features};
use crate::domain::risk::RiskConfig;
use crate::domain::tier::{Limit, TierPolicy, UserTier};
use crate::domain::time::Timestamp;
use crate::security::password::{HashParams, PasswordPolicy};
use crate::security::totp::TotpConfig;

/// The embedded default configuration.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

const EMBEDDED_TEMPLATES: [(&str, &str); 3] = [
    (
        "free_user_profile.json",
        include_str!("../config/profiles/free_user_profile.json"),
    ),
    (
        "premium_user_profile.json",
        include_str!("../config/profiles/premium_user_profile.json"),
    ),
    (
        "complete_profile.json",
        include_str!("../config/profiles/complete_profile.json"),
    ),
];

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "ROSTER_";

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
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
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
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

// ---- stage 1: raw values -------------------------------------------------------------

/// Configuration as written, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    server: RawServer,
    store: RawStore,
    engine: RawEngine,
    passwords: RawPasswords,
    lockout: RawLockout,
    profiles: RawProfiles,
    tiers: RawTiers,
    log: RawLog,
    websocket: RawWebSocket,
    mfa: RawMfa,
    risk: RiskConfig,
    notify: RawNotify,
    webauthn: RawWebauthn,
    privacy: RawPrivacy,
    encryption: RawEncryption,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncryption {
    master_key_file: PathBuf,
    master_key_env: String,
    generate_master_key: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrivacy {
    min_age: u8,
    security_event_retention_days: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebauthn {
    rp_id: String,
    rp_name: String,
    origins: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMfa {
    issuer: String,
    totp_digits: u8,
    totp_step_secs: u64,
    totp_skew_steps: u8,
    challenge_ttl_secs: u64,
    code_digits: u8,
    code_ttl_secs: u64,
    code_max_attempts: u32,
    code_resend_secs: u64,
    step_up_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    email: String,
    outbox_file: PathBuf,
    smtp_host: String,
    smtp_port: u16,
    smtp_from: String,
    smtp_username: String,
    smtp_password: String,
    sms: String,
    sms_webhook_url: String,
    queue: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebSocket {
    read_buffer_bytes: usize,
    write_buffer_bytes: usize,
    max_write_buffer_bytes: usize,
    max_message_bytes: usize,
    outbound_queue: usize,
    resume_buffer: usize,
    resume_buffer_bytes: usize,
    max_sockets_per_user: usize,
    auth_timeout_secs: u64,
    ping_interval_secs: u64,
    idle_timeout_secs: u64,
    write_timeout_secs: u64,
    security_feed_buffer: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: String,
    filter: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: String,
    admin_key: String,
    self_service_tier_changes: bool,
    anonymous_requests_per_hour: RawLimit,
    http_metrics: bool,
    metrics_listen: String,
    trusted_proxies: Vec<String>,
    geo_country_header: String,
    geo_latitude_header: String,
    geo_longitude_header: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    data_dir: PathBuf,
    cache_mb: u64,
    fsync_data_file: bool,
    verify_on_start: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    mailbox_capacity: usize,
    passivate_after_secs: u64,
    sweep_interval_secs: u64,
    snapshot_interval_secs: u64,
    max_sessions_per_user: usize,
    shutdown_timeout_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPasswords {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    workers: usize,
    queue: usize,
    min_chars: usize,
    min_strength: u8,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLockout {
    free_attempts: u32,
    base_delay_secs: u64,
    max_delay_secs: u64,
    window_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfiles {
    dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTiers {
    free: RawTier,
    premium: RawTier,
    enterprise: RawTier,
    vip: RawTier,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    shards: usize,
    arbiters: usize,
    max_playlists: RawLimit,
    max_storage_mb: RawLimit,
    requests_per_hour: RawLimit,
    session_idle_minutes: u64,
    session_lifetime_hours: u64,
    features: Vec<String>,
    template: String,
    max_concurrent_requests: RawLimit,
    zero_trust: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawLimit {
    Number(u64),
    Word(String),
}

// ---- stage 2: typed ------------------------------------------------------------------

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
    /// Encryption at rest (`[encryption]`).
    pub encryption: EncryptionConfig,
}

/// Where the master key of encryption at rest comes from (`[encryption]`).
#[derive(Clone, Debug, PartialEq)]
pub struct EncryptionConfig {
    /// The key file (relative paths from the working directory); `None`: `master.key`
    /// in the data directory (see [`Config::master_key_file`]).
    pub master_key_file: Option<PathBuf>,
    /// An environment variable that, when set, holds the key instead (empty: none).
    pub master_key_env: String,
    /// Whether a first start without a key generates one.
    pub generate_master_key: bool,
}

/// Consent, age and retention rules (`[privacy]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrivacyConfig {
    /// Below this age an account needs a recorded parental consent before it may use
    /// features that collect activity data.
    pub min_age: u8,
    /// Security events older than this are purged by `roster purge`.
    pub security_event_retention: Duration,
}

/// The WebAuthn relying party (`[webauthn]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnConfig {
    /// The domain credentials are scoped to.
    pub rp_id: String,
    /// The name authenticators show.
    pub rp_name: String,
    /// Web origins ceremonies may come from (the first is the primary one).
    pub origins: Vec<webauthn_rs::prelude::Url>,
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
    pub limits: crate::engine::events::StreamLimits,
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

/// Storage settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
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

impl Config {
    /// The embedded defaults with the environment applied (no file, no flags).
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut layers = vec![parse_toml("config/default.toml (embedded)", DEFAULT_TOML)?];
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::new(path.display().to_string(), e.to_string()))?;
            layers.push(parse_toml(&path.display().to_string(), &text)?);
        }
        layers.push(env_layer(std::env::vars())?);
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
            merge(&mut merged, layer);
        }
        let raw: RawConfig =
            serde_path_to_error::deserialize(toml::Value::Table(merged)).map_err(|e| {
                let path = e.path().to_string();
                ConfigError::new(path, e.into_inner().to_string())
            })?;
        raw.validate()
    }

    /// The master key file in force: `encryption.master_key_file`, or `master.key` in
    /// the data directory.
    pub fn master_key_file(&self) -> PathBuf {
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

/// Parses one TOML layer, naming its source on error.
pub fn parse_toml(source: &str, text: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::new(source, e.to_string()))
}

/// Builds a layer from `ROSTER_*` variables: the contract shortcuts, and
/// `ROSTER_SECTION__KEY` paths. Values are read as TOML (numbers, booleans, arrays) and
/// fall back to plain strings.
pub fn env_layer(vars: impl Iterator<Item = (String, String)>) -> Result<toml::Table, ConfigError> {
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

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
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

fn merge(base: &mut toml::Table, layer: toml::Table) {
    for (k, v) in layer {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(l)) => merge(b, l),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn positive<T: PartialOrd + Default + Copy>(key: &str, v: T) -> Result<T, ConfigError> {
    if v > T::default() {
        Ok(v)
    } else {
        Err(ConfigError::new(key, "must be greater than 0"))
    }
}

fn secs(key: &str, v: u64) -> Result<Duration, ConfigError> {
    positive(key, v).map(Duration::from_secs)
}

impl RawLimit {
    fn to_limit(&self, key: &str, scale: u64) -> Result<Limit, ConfigError> {
        match self {
            RawLimit::Number(n) => n
                .checked_mul(scale)
                .map(Limit::Limited)
                .ok_or_else(|| ConfigError::new(key, "too large")),
            RawLimit::Word(w) if w == "unlimited" => Ok(Limit::Unlimited),
            RawLimit::Word(w) => Err(ConfigError::new(
                key,
                format!("expected a number or \"unlimited\", got {w:?}"),
            )),
        }
    }
}

impl RawConfig {
    /// Turns raw values into the typed configuration.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let listen = self.server.listen.parse::<SocketAddr>().map_err(|e| {
            ConfigError::new(
                "server.listen",
                format!("{e} (expected host:port, e.g. 127.0.0.1:8080)"),
            )
        })?;
        let admin_key = match self.server.admin_key.trim() {
            "" => None,
            k if k.len() < 16 => {
                return Err(ConfigError::new(
                    "server.admin_key",
                    "must be at least 16 characters",
                ));
            }
            k => Some(Secret(k.to_owned())),
        };
        let metrics_listen = match self.server.metrics_listen.trim() {
            "" => None,
            a => Some(a.parse::<SocketAddr>().map_err(|e| {
                ConfigError::new(
                    "server.metrics_listen",
                    format!("{e} (expected host:port, e.g. 127.0.0.1:9090, or \"\" for none)"),
                )
            })?),
        };
        if self.store.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("store.data_dir", "must not be empty"));
        }
        let e = &self.engine;
        let engine = EngineConfig {
            mailbox_capacity: positive("engine.mailbox_capacity", e.mailbox_capacity)?,
            passivate_after: secs("engine.passivate_after_secs", e.passivate_after_secs)?,
            sweep_interval: secs("engine.sweep_interval_secs", e.sweep_interval_secs)?,
            snapshot_interval: secs("engine.snapshot_interval_secs", e.snapshot_interval_secs)?,
            max_sessions_per_user: positive(
                "engine.max_sessions_per_user",
                e.max_sessions_per_user,
            )?,
            shutdown_timeout: secs("engine.shutdown_timeout_secs", e.shutdown_timeout_secs)?,
        };
        let w = &self.websocket;
        if w.max_write_buffer_bytes <= w.write_buffer_bytes + w.max_message_bytes {
            return Err(ConfigError::new(
                "websocket.max_write_buffer_bytes",
                "must exceed write_buffer_bytes + max_message_bytes",
            ));
        }
        let websocket = WebSocketConfig {
            read_buffer_bytes: positive("websocket.read_buffer_bytes", w.read_buffer_bytes)?,
            write_buffer_bytes: w.write_buffer_bytes,
            max_write_buffer_bytes: w.max_write_buffer_bytes,
            max_message_bytes: positive("websocket.max_message_bytes", w.max_message_bytes)?,
            limits: crate::engine::events::StreamLimits {
                resume_buffer: positive("websocket.resume_buffer", w.resume_buffer)?,
                resume_buffer_bytes: positive(
                    "websocket.resume_buffer_bytes",
                    w.resume_buffer_bytes,
                )?,
                outbound_queue: positive("websocket.outbound_queue", w.outbound_queue)?,
                max_sockets_per_user: positive(
                    "websocket.max_sockets_per_user",
                    w.max_sockets_per_user,
                )?,
                security_feed_buffer: positive(
                    "websocket.security_feed_buffer",
                    w.security_feed_buffer,
                )?,
            },
            auth_timeout: secs("websocket.auth_timeout_secs", w.auth_timeout_secs)?,
            ping_interval: secs("websocket.ping_interval_secs", w.ping_interval_secs)?,
            idle_timeout: secs("websocket.idle_timeout_secs", w.idle_timeout_secs)?,
            write_timeout: secs("websocket.write_timeout_secs", w.write_timeout_secs)?,
        };
        if websocket.idle_timeout <= websocket.ping_interval {
            return Err(ConfigError::new(
                "websocket.idle_timeout_secs",
                "must be longer than ping_interval_secs",
            ));
        }
        let p = &self.passwords;
        argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, None).map_err(|err| {
            ConfigError::new("passwords", format!("invalid argon2 parameters: {err}"))
        })?;
        if p.min_strength > 4 {
            return Err(ConfigError::new(
                "passwords.min_strength",
                "must be between 0 and 4",
            ));
        }
        if !(1..=crate::security::password::MAX_PASSWORD_CHARS).contains(&p.min_chars) {
            return Err(ConfigError::new(
                "passwords.min_chars",
                "must be between 1 and 128",
            ));
        }
        let workers = if p.workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            p.workers
        };
        let passwords = PasswordConfig {
            params: HashParams {
                memory_kib: p.memory_kib,
                iterations: p.iterations,
                parallelism: p.parallelism,
            },
            workers,
            queue: positive("passwords.queue", p.queue)?,
            policy: PasswordPolicy {
                min_chars: p.min_chars,
                min_strength: p.min_strength,
            },
        };
        let l = &self.lockout;
        let lockout = LockoutPolicy {
            free_attempts: l.free_attempts,
            base_delay: secs("lockout.base_delay_secs", l.base_delay_secs)?,
            max_delay: secs("lockout.max_delay_secs", l.max_delay_secs)?,
            window: secs("lockout.window_secs", l.window_secs)?,
        };
        let dir = self.profiles.dir;
        let t = self.tiers;
        let tiers = [
            tier_config(UserTier::Free, t.free, &dir)?,
            tier_config(UserTier::Premium, t.premium, &dir)?,
            tier_config(UserTier::Enterprise, t.enterprise, &dir)?,
            tier_config(UserTier::Vip, t.vip, &dir)?,
        ];
        let json = match self.log.format.as_str() {
            "json" => true,
            "pretty" => false,
            other => {
                return Err(ConfigError::new(
                    "log.format",
                    format!("expected \"pretty\" or \"json\", got {other:?}"),
                ));
            }
        };
        tracing_subscriber::EnvFilter::try_new(&self.log.filter)
            .map_err(|e| ConfigError::new("log.filter", e.to_string()))?;
        let log = LogConfig {
            json,
            filter: self.log.filter,
        };
        let m = &self.mfa;
        if !(6..=8).contains(&m.totp_digits) {
            return Err(ConfigError::new(
                "mfa.totp_digits",
                "must be between 6 and 8",
            ));
        }
        if !(6..=10).contains(&m.code_digits) {
            return Err(ConfigError::new(
                "mfa.code_digits",
                "must be between 6 and 10",
            ));
        }
        if m.totp_skew_steps > 2 {
            return Err(ConfigError::new("mfa.totp_skew_steps", "must be at most 2"));
        }
        if m.issuer.trim().is_empty() || m.issuer.contains(':') {
            return Err(ConfigError::new(
                "mfa.issuer",
                "must be a non-empty name without ':'",
            ));
        }
        let mfa = MfaConfig {
            totp: TotpConfig {
                digits: m.totp_digits,
                step_secs: secs("mfa.totp_step_secs", m.totp_step_secs)?.as_secs(),
                skew_steps: m.totp_skew_steps,
                issuer: m.issuer.trim().to_owned(),
            },
            challenge_ttl: secs("mfa.challenge_ttl_secs", m.challenge_ttl_secs)?,
            code_digits: m.code_digits,
            code_ttl: secs("mfa.code_ttl_secs", m.code_ttl_secs)?,
            code_max_attempts: positive("mfa.code_max_attempts", m.code_max_attempts)?,
            code_resend: Duration::from_secs(m.code_resend_secs),
            step_up_window: secs("mfa.step_up_secs", m.step_up_secs)?,
        };
        self.risk
            .validate()
            .map_err(|e| ConfigError::new(e.field, e.reason))?;
        let n = &self.notify;
        let email = match n.email.as_str() {
            "outbox" => {
                if n.outbox_file.as_os_str().is_empty() {
                    return Err(ConfigError::new("notify.outbox_file", "must not be empty"));
                }
                let path = if n.outbox_file.is_absolute() {
                    n.outbox_file.clone()
                } else {
                    self.store.data_dir.join(&n.outbox_file)
                };
                EmailTransport::Outbox(path)
            }
            "smtp" => {
                if n.smtp_host.trim().is_empty() {
                    return Err(ConfigError::new("notify.smtp_host", "must be set for smtp"));
                }
                if !n.smtp_from.contains('@') {
                    return Err(ConfigError::new(
                        "notify.smtp_from",
                        "must be an email address",
                    ));
                }
                EmailTransport::Smtp {
                    host: n.smtp_host.trim().to_owned(),
                    port: n.smtp_port,
                    from: n.smtp_from.clone(),
                    credentials: (!n.smtp_username.is_empty())
                        .then(|| (n.smtp_username.clone(), Secret(n.smtp_password.clone()))),
                }
            }
            other => {
                return Err(ConfigError::new(
                    "notify.email",
                    format!("expected \"outbox\" or \"smtp\", got {other:?}"),
                ));
            }
        };
        let w = &self.webauthn;
        let origins = w
            .origins
            .iter()
            .map(|o| {
                webauthn_rs::prelude::Url::parse(o).map_err(|e| {
                    ConfigError::new("webauthn.origins", format!("{o:?} is not a URL: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let webauthn = WebauthnConfig {
            rp_id: w.rp_id.trim().to_owned(),
            rp_name: w.rp_name.trim().to_owned(),
            origins,
        };
        // Build it once here, so that a relying party the library refuses (an origin
        // outside rp_id) stops start-up with the key's name.
        crate::security::passkey::relying_party(&webauthn)
            .map_err(|e| ConfigError::new("webauthn", e))?;
        let outbox = if n.outbox_file.is_absolute() {
            n.outbox_file.clone()
        } else {
            self.store.data_dir.join(&n.outbox_file)
        };
        let sms = match n.sms.as_str() {
            "outbox" => SmsTransport::Outbox(outbox),
            "webhook" => {
                let url = n.sms_webhook_url.trim();
                if !url.starts_with("http://") {
                    return Err(ConfigError::new(
                        "notify.sms_webhook_url",
                        "must be an http:// URL (a gateway on a private network; this build \
                         has no TLS client)",
                    ));
                }
                SmsTransport::Webhook(url.to_owned())
            }
            other => {
                return Err(ConfigError::new(
                    "notify.sms",
                    format!("expected \"outbox\" or \"webhook\", got {other:?}"),
                ));
            }
        };
        let notify = NotifyConfig {
            email,
            sms,
            queue: positive("notify.queue", n.queue)?,
        };
        let trusted_proxies = self
            .server
            .trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|e| ConfigError::new("server.trusted_proxies", format!("{p:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sv = &self.server;
        let geo_headers = match (
            sv.geo_country_header.trim(),
            sv.geo_latitude_header.trim(),
            sv.geo_longitude_header.trim(),
        ) {
            ("", "", "") => None,
            (c, la, lo) if !c.is_empty() && !la.is_empty() && !lo.is_empty() => {
                for (k, v) in [
                    ("geo_country_header", c),
                    ("geo_latitude_header", la),
                    ("geo_longitude_header", lo),
                ] {
                    axum::http::HeaderName::from_bytes(v.as_bytes()).map_err(|_| {
                        ConfigError::new(format!("server.{k}"), "is not a valid header name")
                    })?;
                }
                Some([
                    c.to_ascii_lowercase(),
                    la.to_ascii_lowercase(),
                    lo.to_ascii_lowercase(),
                ])
            }
            _ => {
                return Err(ConfigError::new(
                    "server.geo_country_header",
                    "set all three geo headers or none",
                ));
            }
        };
        Ok(Config {
            log,
            websocket,
            mfa,
            risk: self.risk,
            notify,
            webauthn,
            encryption: EncryptionConfig {
                master_key_file: Some(self.encryption.master_key_file)
                    .filter(|p| !p.as_os_str().is_empty()),
                master_key_env: self.encryption.master_key_env,
                generate_master_key: self.encryption.generate_master_key,
            },
            privacy: PrivacyConfig {
                min_age: self.privacy.min_age,
                security_event_retention: Duration::from_secs(
                    positive(
                        "privacy.security_event_retention_days",
                        self.privacy.security_event_retention_days,
                    )?
                    .saturating_mul(86_400),
                ),
            },
            server: ServerConfig {
                listen,
                admin_key,
                self_service_tier_changes: self.server.self_service_tier_changes,
                trusted_proxies,
                geo_headers,
                http_metrics: self.server.http_metrics,
                metrics_listen,
                anonymous_requests_per_hour: self
                    .server
                    .anonymous_requests_per_hour
                    .to_limit("server.anonymous_requests_per_hour", 1)?,
            },
            store: StoreConfig {
                data_dir: self.store.data_dir,
                cache_bytes: positive("store.cache_mb", self.store.cache_mb)?
                    .saturating_mul(1 << 20),
                fsync_data_file: self.store.fsync_data_file,
                verify_on_start: self.store.verify_on_start,
            },
            engine,
            passwords,
            lockout,
            tiers,
        })
    }
}

fn tier_config(tier: UserTier, raw: RawTier, dir: &Path) -> Result<TierConfig, ConfigError> {
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
fn load_template(dir: &Path, name: &str) -> Result<ProfileTemplate, ConfigError> {
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
                format!("{e} (profiles.dir is relative to the working directory; set it to \"\" to use the built-in templates)"),
            )
        })?;
        (path.display().to_string(), text)
    };
    let de = &mut serde_json::Deserializer::from_str(&text);
    let template: ProfileTemplate = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        ConfigError::new(
            format!("{source}: field {field}"),
            e.into_inner().to_string(),
        )
    })?;
    template
        .validate()
        .map_err(|e| ConfigError::new(format!("{source}: field {}", e.field), e.reason))?;
    Ok(template)
}

#[cfg(test)]
mod tests {
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
}
