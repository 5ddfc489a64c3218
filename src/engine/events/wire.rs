//! What event sockets carry: the events a user's actor publishes, their frames on the
//! wire, the close codes, and the handshake of a (re)connecting client.

use std::net::IpAddr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::domain::ids::{SessionId, UserId};
use crate::domain::link::{LinkReason, LinkStatus};
use crate::domain::profile::QuotaKind;
use crate::domain::settings::{AIPreferences, SecuritySettings};
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;
use crate::engine::shared_profile::SharedProfile;

/// Close codes the server uses on event sockets (documented in `docs/websocket.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1000: the client asked to close.
    Normal,
    /// 1001: the server is shutting down.
    ServerShutdown,
    /// 1008: too many invalid frames in a row.
    PolicyViolation,
    /// 1009: a frame or message over the configured size.
    TooBig,
    /// 1011: the server failed (details in its log).
    Internal,
    /// 4001: no valid credential (none within the auth timeout, or a bad token).
    Unauthenticated,
    /// 4003: the socket's session ended (revoked, logged out, password changed, expired).
    SessionEnded,
    /// 4004: the user was deleted.
    UserDeleted,
    /// 4008: the socket's outbound queue overflowed (the client reads too slowly).
    SlowConsumer,
    /// 4009: nothing received from the client within the heartbeat timeout.
    HeartbeatTimeout,
    /// 4029: the user already holds the configured maximum of sockets.
    TooManySockets,
}

impl CloseCode {
    /// Every code, for documentation and metrics.
    pub const ALL: [CloseCode; 11] = [
        CloseCode::Normal,
        CloseCode::ServerShutdown,
        CloseCode::PolicyViolation,
        CloseCode::TooBig,
        CloseCode::Internal,
        CloseCode::Unauthenticated,
        CloseCode::SessionEnded,
        CloseCode::UserDeleted,
        CloseCode::SlowConsumer,
        CloseCode::HeartbeatTimeout,
        CloseCode::TooManySockets,
    ];

    /// The numeric WebSocket close code.
    pub(crate) fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::ServerShutdown => 1001,
            CloseCode::PolicyViolation => 1008,
            CloseCode::TooBig => 1009,
            CloseCode::Internal => 1011,
            CloseCode::Unauthenticated => 4001,
            CloseCode::SessionEnded => 4003,
            CloseCode::UserDeleted => 4004,
            CloseCode::SlowConsumer => 4008,
            CloseCode::HeartbeatTimeout => 4009,
            CloseCode::TooManySockets => 4029,
        }
    }

    /// The reason text sent with the code (and the metric label).
    pub(crate) fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "normal",
            CloseCode::ServerShutdown => "server_shutdown",
            CloseCode::PolicyViolation => "policy_violation",
            CloseCode::TooBig => "message_too_big",
            CloseCode::Internal => "internal_error",
            CloseCode::Unauthenticated => "unauthenticated",
            CloseCode::SessionEnded => "session_ended",
            CloseCode::UserDeleted => "user_deleted",
            CloseCode::SlowConsumer => "slow_consumer",
            CloseCode::HeartbeatTimeout => "heartbeat_timeout",
            CloseCode::TooManySockets => "too_many_sockets",
        }
    }
}

/// Why a session ended, in `session.revoked` events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RevokeReason {
    /// Revoked by the user or an operator (including logout).
    Revoked,
    /// Ended by a password change.
    PasswordChanged,
    /// Dropped because the user opened more sessions than allowed.
    Evicted,
    /// Ended because the user moved to a tier whose policy it cannot meet (a zero-trust
    /// tier, for a session opened without a second factor).
    TierChanged,
    /// Ended because the user's identity provider deactivated the account (SCIM).
    Deactivated,
    /// Ended because an operator locked the account or required a new password.
    Held,
}

/// An event about a user, as pushed to that user's sockets. On the wire:
/// `{"type": "...", "seq": n, "at": "RFC 3339", "data": {...}}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", content = "data")]
pub(crate) enum Event {
    /// A login created a session.
    #[serde(rename = "session.created")]
    SessionCreated {
        /// The new session.
        session_id: SessionId,
        /// Its device, if the client named one.
        device_id: Option<String>,
        /// Its user agent.
        user_agent: Option<String>,
        /// Its client address.
        ip_address: Option<IpAddr>,
    },
    /// A session ended before its time; its sockets are closed with 4003.
    #[serde(rename = "session.revoked")]
    SessionRevoked {
        /// The session.
        session_id: SessionId,
        /// Why.
        reason: RevokeReason,
    },
    /// A login from a device this account had not used before.
    #[serde(rename = "security.new_device")]
    NewDevice {
        /// The session it opened.
        session_id: SessionId,
        /// The device.
        device_id: String,
        /// Its client address.
        ip_address: Option<IpAddr>,
    },
    /// Too many failed logins: the account is locked until `until` (except for the
    /// owner's known devices).
    #[serde(rename = "security.lockout")]
    Lockout {
        /// When the lock ends.
        until: Timestamp,
    },
    /// The password changed; every other session ended.
    #[serde(rename = "security.password_changed")]
    PasswordChanged {
        /// Sessions that ended with it.
        sessions_ended: usize,
    },
    /// Display name, language or time zone changed; the whole profile as it is now.
    #[serde(rename = "profile.updated")]
    ProfileUpdated {
        /// The profile.
        profile: SharedProfile,
    },
    /// AI preferences changed.
    #[serde(rename = "preferences.updated")]
    PreferencesUpdated {
        /// The preferences now.
        ai_preferences: AIPreferences,
    },
    /// Security settings changed.
    #[serde(rename = "security_settings.updated")]
    SecuritySettingsUpdated {
        /// The settings now.
        security_settings: SecuritySettings,
    },
    /// The user moved tier.
    #[serde(rename = "tier.changed")]
    TierChanged {
        /// Tier before.
        from: UserTier,
        /// Tier now.
        to: UserTier,
    },
    /// A quota crossed 80% or reached 100% of the tier's limit.
    #[serde(rename = "quota.warning")]
    QuotaWarning {
        /// Which quota.
        quota: QuotaKind,
        /// Used now.
        used: u64,
        /// The tier's limit.
        limit: u64,
        /// The threshold crossed: 80 or 100.
        percent: u8,
    },
    /// A linked account's status changed: suspended by a downgrade, active again after
    /// an upgrade, or `reauth_required` when the provider refused its grant.
    #[serde(rename = "integration.link_changed")]
    LinkChanged {
        /// The provider's id.
        provider: String,
        /// The status now.
        status: LinkStatus,
        /// Why.
        reason: LinkReason,
    },
    /// A training of the user's own model moved on: queued, running (with its
    /// progress), done (the version made and whether it serves) or failed.
    #[serde(rename = "model.training")]
    ModelTraining {
        /// The job (`GET /api/v1/users/{id}/models/{job}`).
        job: u64,
        /// `queued`, `running`, `done` or `failed`.
        state: &'static str,
        /// 0–1.
        progress: f32,
        /// The version made, when done.
        version: Option<u64>,
        /// Whether it serves the user's lists, when done.
        serving: Option<bool>,
    },
    /// The user was deleted; every socket closes with 4004.
    #[serde(rename = "user.deleted")]
    UserDeleted {},
}

impl Event {
    /// The event's `type` on the wire.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Event::SessionCreated { .. } => "session.created",
            Event::SessionRevoked { .. } => "session.revoked",
            Event::NewDevice { .. } => "security.new_device",
            Event::Lockout { .. } => "security.lockout",
            Event::PasswordChanged { .. } => "security.password_changed",
            Event::ProfileUpdated { .. } => "profile.updated",
            Event::PreferencesUpdated { .. } => "preferences.updated",
            Event::SecuritySettingsUpdated { .. } => "security_settings.updated",
            Event::TierChanged { .. } => "tier.changed",
            Event::QuotaWarning { .. } => "quota.warning",
            Event::LinkChanged { .. } => "integration.link_changed",
            Event::ModelTraining { .. } => "model.training",
            Event::UserDeleted {} => "user.deleted",
        }
    }

    /// Whether operators' security feed carries this event.
    pub(crate) fn is_security(&self) -> bool {
        matches!(
            self,
            Event::NewDevice { .. } | Event::Lockout { .. } | Event::PasswordChanged { .. }
        )
    }
}

/// A user's event as its sockets receive it.
#[derive(Serialize)]
pub(super) struct UserFrame<'a> {
    pub(super) seq: u64,
    pub(super) at: Timestamp,
    #[serde(flatten)]
    pub(super) event: &'a Event,
}

/// A security event as the operators' feed receives it.
#[derive(Serialize)]
pub(super) struct SecurityFrame<'a> {
    pub(super) user_id: UserId,
    pub(super) at: Timestamp,
    #[serde(flatten)]
    pub(super) event: &'a Event,
}

/// Where a reconnecting client left off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct Resume {
    /// The `stream` value from the previous connection's `hello`.
    pub stream: StreamId,
    /// The last `seq` the client processed.
    pub last_seq: u64,
}

/// Identifies one life of a user's stream (sequence numbers restart with a new one).
/// Sent as 16 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamId(pub u64);

impl Serialize for StreamId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:016x}", self.0))
    }
}

impl<'de> Deserialize<'de> for StreamId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        u64::from_str_radix(&s, 16)
            .map(StreamId)
            .map_err(|_| serde::de::Error::custom("stream must be 16 hex digits"))
    }
}

/// What a new subscriber is told first, and the events it missed.
#[derive(Debug)]
pub struct Hello {
    /// The stream's id, for resuming.
    pub stream: StreamId,
    /// The latest sequence number published.
    pub seq: u64,
    /// The client's resume point was honoured; `replay` holds what it missed.
    pub resumed: bool,
    /// The client asked to resume but the events are gone (another stream, or older
    /// than the buffer): it must refetch state over HTTP.
    pub resync_required: bool,
    /// Missed events, oldest first, as wire frames.
    pub replay: Vec<Bytes>,
}
