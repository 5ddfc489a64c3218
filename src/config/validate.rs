//! Stage two: raw values → the typed [`Config`]. One function per section, each error
//! naming its key. Paths relative to the data directory are resolved here, once every
//! layer (the command line's included) has had its say about where that directory is.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::raw::{
    RawConfig, RawEngine, RawLimit, RawLog, RawMfa, RawNotify, RawPasswords, RawServer,
    RawWebSocket, RawWebauthn,
};
use super::tiers::{check_profiles_dir, tier_config};
use super::{
    AnalyticsConfig, Backend, Config, ConfigError, EmailTransport, EncryptionConfig, EngineConfig,
    LogConfig, MfaConfig, NotifyConfig, PasswordConfig, PrivacyConfig, Secret, ServerConfig,
    SmsTransport, StoreConfig, StreamLimits, WebSocketConfig, WebauthnConfig,
};
use crate::domain::lockout::LockoutPolicy;
use crate::domain::mfa::TotpConfig;
use crate::domain::password::{HashParams, MAX_PASSWORD_CHARS, PasswordPolicy};
use crate::domain::tier::{Limit, UserTier};

pub(super) fn positive<T: PartialOrd + Default + Copy>(key: &str, v: T) -> Result<T, ConfigError> {
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
    pub(super) fn to_limit(&self, key: &str, scale: u64) -> Result<Limit, ConfigError> {
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

/// `path` under the data directory, unless it is absolute: the one place data-relative
/// paths are resolved.
fn in_data_dir(data_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        data_dir.join(path)
    }
}

impl RawConfig {
    /// Turns raw values into the typed configuration.
    pub(crate) fn validate(self) -> Result<Config, ConfigError> {
        if self.store.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("store.data_dir", "must not be empty"));
        }
        let data_dir = self.store.data_dir;
        check_profiles_dir(&self.profiles.dir)?;
        let dir = self.profiles.dir;
        let t = self.tiers;
        let tiers = [
            tier_config(UserTier::Free, t.free, &dir)?,
            tier_config(UserTier::Premium, t.premium, &dir)?,
            tier_config(UserTier::Enterprise, t.enterprise, &dir)?,
            tier_config(UserTier::Vip, t.vip, &dir)?,
        ];
        self.risk
            .validate()
            .map_err(|e| ConfigError::new(e.field, e.reason))?;
        Ok(Config {
            server: server(&self.server)?,
            engine: engine(&self.engine)?,
            websocket: websocket(&self.websocket)?,
            passwords: passwords(&self.passwords)?,
            lockout: LockoutPolicy {
                free_attempts: self.lockout.free_attempts,
                base_delay: secs("lockout.base_delay_secs", self.lockout.base_delay_secs)?,
                max_delay: secs("lockout.max_delay_secs", self.lockout.max_delay_secs)?,
                window: secs("lockout.window_secs", self.lockout.window_secs)?,
            },
            log: log(self.log)?,
            mfa: mfa(&self.mfa)?,
            risk: self.risk,
            notify: notify(&self.notify, &data_dir)?,
            webauthn: webauthn(&self.webauthn)?,
            encryption: EncryptionConfig {
                master_key_file: Some(self.encryption.master_key_file)
                    .filter(|p| !p.as_os_str().is_empty()),
                master_key_env: self.encryption.master_key_env,
                generate_master_key: self.encryption.generate_master_key,
            },
            analytics: AnalyticsConfig {
                churn_horizon_days: match self.analytics.churn_horizon_days {
                    // Within the history's five weeks at day resolution, so that the
                    // features before the cutoff never see a week reaching past it.
                    d @ 1..=28 => d,
                    d => {
                        return Err(ConfigError::new(
                            "analytics.churn_horizon_days",
                            format!("must be 1 to 28 days, got {d}"),
                        ));
                    }
                },
                keep_models: positive("analytics.keep_models", self.analytics.keep_models)?,
                segments: match self.analytics.segments {
                    k @ 2..=20 => k,
                    k => {
                        return Err(ConfigError::new(
                            "analytics.segments",
                            format!("must be 2 to 20, got {k}"),
                        ));
                    }
                },
            },
            personalization: self.personalization.validate()?,
            automation: self.automation.validate()?,
            integrations: self.integrations.validate()?,
            privacy: PrivacyConfig {
                min_age: self.privacy.min_age,
                security_event_retention: Duration::from_secs(
                    positive(
                        "privacy.security_event_retention_days",
                        self.privacy.security_event_retention_days,
                    )?
                    .saturating_mul(86_400),
                ),
                tombstone_retention: Duration::from_secs(
                    positive(
                        "privacy.tombstone_retention_days",
                        self.privacy.tombstone_retention_days,
                    )?
                    .saturating_mul(86_400),
                ),
            },
            store: StoreConfig {
                backend: match self.store.backend.as_str() {
                    "sled" => Backend::Sled,
                    other => {
                        return Err(ConfigError::new(
                            "store.backend",
                            format!("expected \"sled\" (the embedded store), got {other:?}"),
                        ));
                    }
                },
                data_dir,
                cache_bytes: positive("store.cache_mb", self.store.cache_mb)?
                    .saturating_mul(1 << 20),
                fsync_data_file: self.store.fsync_data_file,
                verify_on_start: self.store.verify_on_start,
            },
            tiers,
        })
    }
}

fn server(s: &RawServer) -> Result<ServerConfig, ConfigError> {
    let listen = s.listen.parse::<SocketAddr>().map_err(|e| {
        ConfigError::new(
            "server.listen",
            format!("{e} (expected host:port, e.g. 127.0.0.1:8080)"),
        )
    })?;
    let admin_key = match s.admin_key.trim() {
        "" => None,
        k if k.len() < 16 => {
            return Err(ConfigError::new(
                "server.admin_key",
                "must be at least 16 characters",
            ));
        }
        k => Some(Secret(k.to_owned())),
    };
    let metrics_listen = match s.metrics_listen.trim() {
        "" => None,
        a => Some(a.parse::<SocketAddr>().map_err(|e| {
            ConfigError::new(
                "server.metrics_listen",
                format!("{e} (expected host:port, e.g. 127.0.0.1:9090, or \"\" for none)"),
            )
        })?),
    };
    let trusted_proxies = s
        .trusted_proxies
        .iter()
        .map(|p| {
            p.parse::<IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|e| ConfigError::new("server.trusted_proxies", format!("{p:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let geo_headers = match (
        s.geo_country_header.trim(),
        s.geo_latitude_header.trim(),
        s.geo_longitude_header.trim(),
    ) {
        ("", "", "") => None,
        (c, la, lo) if !c.is_empty() && !la.is_empty() && !lo.is_empty() => {
            for (k, v) in [
                ("geo_country_header", c),
                ("geo_latitude_header", la),
                ("geo_longitude_header", lo),
            ] {
                if !is_header_name(v) {
                    return Err(ConfigError::new(
                        format!("server.{k}"),
                        "is not a valid header name",
                    ));
                }
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
    Ok(ServerConfig {
        listen,
        admin_key,
        self_service_tier_changes: s.self_service_tier_changes,
        anonymous_requests_per_hour: s
            .anonymous_requests_per_hour
            .to_limit("server.anonymous_requests_per_hour", 1)?,
        http_metrics: s.http_metrics,
        metrics_listen,
        trusted_proxies,
        geo_headers,
    })
}

/// An HTTP field name: one or more `tchar`s (RFC 9110, section 5.6.2).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn engine(e: &RawEngine) -> Result<EngineConfig, ConfigError> {
    Ok(EngineConfig {
        mailbox_capacity: positive("engine.mailbox_capacity", e.mailbox_capacity)?,
        passivate_after: secs("engine.passivate_after_secs", e.passivate_after_secs)?,
        sweep_interval: secs("engine.sweep_interval_secs", e.sweep_interval_secs)?,
        snapshot_interval: secs("engine.snapshot_interval_secs", e.snapshot_interval_secs)?,
        max_sessions_per_user: positive("engine.max_sessions_per_user", e.max_sessions_per_user)?,
        shutdown_timeout: secs("engine.shutdown_timeout_secs", e.shutdown_timeout_secs)?,
    })
}

fn websocket(w: &RawWebSocket) -> Result<WebSocketConfig, ConfigError> {
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
        limits: StreamLimits {
            resume_buffer: positive("websocket.resume_buffer", w.resume_buffer)?,
            resume_buffer_bytes: positive("websocket.resume_buffer_bytes", w.resume_buffer_bytes)?,
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
    Ok(websocket)
}

fn passwords(p: &RawPasswords) -> Result<PasswordConfig, ConfigError> {
    HashParams {
        memory_kib: p.memory_kib,
        iterations: p.iterations,
        parallelism: p.parallelism,
    }
    .check()
    .map_err(|err| ConfigError::new("passwords", format!("invalid argon2 parameters: {err}")))?;
    if p.min_strength > 4 {
        return Err(ConfigError::new(
            "passwords.min_strength",
            "must be between 0 and 4",
        ));
    }
    if !(1..=MAX_PASSWORD_CHARS).contains(&p.min_chars) {
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
    Ok(PasswordConfig {
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
    })
}

fn log(l: RawLog) -> Result<LogConfig, ConfigError> {
    let json = match l.format.as_str() {
        "json" => true,
        "pretty" => false,
        other => {
            return Err(ConfigError::new(
                "log.format",
                format!("expected \"pretty\" or \"json\", got {other:?}"),
            ));
        }
    };
    tracing_subscriber::EnvFilter::try_new(&l.filter)
        .map_err(|e| ConfigError::new("log.filter", e.to_string()))?;
    Ok(LogConfig {
        json,
        filter: l.filter,
    })
}

fn mfa(m: &RawMfa) -> Result<MfaConfig, ConfigError> {
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
    Ok(MfaConfig {
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
    })
}

fn notify(n: &RawNotify, data_dir: &Path) -> Result<NotifyConfig, ConfigError> {
    let outbox = || {
        if n.outbox_file.as_os_str().is_empty() {
            return Err(ConfigError::new("notify.outbox_file", "must not be empty"));
        }
        Ok(in_data_dir(data_dir, &n.outbox_file))
    };
    let email = match n.email.as_str() {
        "outbox" => EmailTransport::Outbox(outbox()?),
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
    let sms = match n.sms.as_str() {
        "outbox" => SmsTransport::Outbox(outbox()?),
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
    Ok(NotifyConfig {
        email,
        sms,
        queue: positive("notify.queue", n.queue)?,
    })
}

/// The relying party: every origin a URL whose host is `rp_id` or below it (WebAuthn's
/// rule for which origins may use an RP ID), so a relying party the library would refuse
/// stops start-up here, with the key's name.
fn webauthn(w: &RawWebauthn) -> Result<WebauthnConfig, ConfigError> {
    let rp_id = w.rp_id.trim().to_owned();
    if rp_id.is_empty() {
        return Err(ConfigError::new("webauthn.rp_id", "must not be empty"));
    }
    if w.origins.is_empty() {
        return Err(ConfigError::new(
            "webauthn.origins",
            "must name at least one web origin",
        ));
    }
    let origins = w
        .origins
        .iter()
        .map(|o| {
            let url = url::Url::parse(o).map_err(|e| {
                ConfigError::new("webauthn.origins", format!("{o:?} is not a URL: {e}"))
            })?;
            let host = url.host_str().unwrap_or_default();
            if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
                return Err(ConfigError::new(
                    "webauthn.origins",
                    format!("{o:?} is not on {rp_id:?} (webauthn.rp_id) or one of its subdomains"),
                ));
            }
            Ok(url)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(WebauthnConfig {
        rp_id,
        rp_name: w.rp_name.trim().to_owned(),
        origins,
    })
}
