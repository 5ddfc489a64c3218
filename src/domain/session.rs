//! Sessions: what the user's actor keeps for each login, and the expiry rules.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ids::SessionId;
use super::risk::Location;
use super::tier::TierPolicy;
use super::time::Timestamp;
use super::validation::ValidationError;

/// Longest user agent kept, in characters; longer ones are cut (they are informational).
pub(crate) const MAX_USER_AGENT: usize = 512;
/// Longest device id accepted.
pub(crate) const MAX_DEVICE_ID: usize = 128;

/// Where a login comes from (the seed's `context`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginContext {
    /// The client's address (default: the connection's peer address).
    #[schema(value_type = Option<String>, example = "192.168.1.1")]
    pub ip_address: Option<IpAddr>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// A stable id of the client device.
    pub device_id: Option<String>,
}

impl LoginContext {
    /// Checks and normalises the context: a device id must be short printable text; a
    /// long user agent is cut rather than refused.
    pub fn sanitized(mut self) -> Result<Self, ValidationError> {
        if let Some(d) = &self.device_id
            && (d.is_empty()
                || d.chars().count() > MAX_DEVICE_ID
                || d.chars().any(char::is_control))
        {
            return Err(ValidationError::new(
                "context.device_id",
                format!("must be 1 to {MAX_DEVICE_ID} printable characters"),
            ));
        }
        if let Some(ua) = &mut self.user_agent {
            *ua = ua
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_USER_AGENT)
                .collect();
        }
        Ok(self)
    }
}

/// One live login. Only a hash of the token's secret is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The session's public id.
    pub id: SessionId,
    /// SHA-256 of the token secret.
    pub secret_hash: [u8; 32],
    /// When the session was created.
    pub created_at: Timestamp,
    /// When it was last used (soft state: snapshotted lazily).
    pub last_seen_at: Timestamp,
    /// Hard end of the session, however much it is used.
    pub expires_at: Timestamp,
    /// Inactivity after which it ends, in milliseconds.
    pub idle_timeout_ms: u64,
    /// Where the login came from.
    pub context: LoginContext,
    /// When the user last proved its credentials in this session (login or step-up).
    pub authenticated_at: Timestamp,
    /// Whether a second factor was checked at login.
    pub mfa: bool,
    /// The network (address prefix) the session was last used from.
    pub network: Option<String>,
    /// Where the client was at login, when known.
    pub location: Option<Location>,
    /// Zero-trust binding: requests must come from this device and network.
    pub binding: Option<SessionBinding>,
}

/// What a zero-trust session is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionBinding {
    /// The device id given at login, if any.
    pub device_id: Option<String>,
    /// The network (address prefix) of the login.
    pub network: Option<String>,
}

/// A session as format 2 stored it (before step-up, networks and binding).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionV2 {
    /// See [`Session::id`].
    pub id: SessionId,
    /// See [`Session::secret_hash`].
    pub secret_hash: [u8; 32],
    /// See [`Session::created_at`].
    pub created_at: Timestamp,
    /// See [`Session::last_seen_at`].
    pub last_seen_at: Timestamp,
    /// See [`Session::expires_at`].
    pub expires_at: Timestamp,
    /// See [`Session::idle_timeout_ms`].
    pub idle_timeout_ms: u64,
    /// See [`Session::context`].
    pub context: LoginContext,
}

impl From<SessionV2> for Session {
    fn from(v: SessionV2) -> Self {
        Self {
            id: v.id,
            secret_hash: v.secret_hash,
            created_at: v.created_at,
            last_seen_at: v.last_seen_at,
            expires_at: v.expires_at,
            idle_timeout_ms: v.idle_timeout_ms,
            // Older sessions count as authenticated when they began.
            authenticated_at: v.created_at,
            mfa: false,
            network: None,
            location: None,
            binding: None,
            context: v.context,
        }
    }
}

impl Session {
    /// Whether the session may still be used at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        now < self.expires_at
            && now.since(self.last_seen_at) < Duration::from_millis(self.idle_timeout_ms)
    }

    /// When the session ends if it is not used again.
    pub fn ends_at(&self) -> Timestamp {
        self.expires_at.min(
            self.last_seen_at
                .plus(Duration::from_millis(self.idle_timeout_ms)),
        )
    }

    /// Holds a live session to the policy of the tier its user just moved to, as if it
    /// had been opened there. A zero-trust tier demands a second factor: a session
    /// without one cannot meet it and must end (`Err`, with why); one with it, opened
    /// unbound, is bound to its login's device and the network it was last used from.
    /// Its lifetime and idle timeout become the stricter of what it was given and what
    /// the new tier gives: an upgrade into shorter sessions shortens it, a move to longer
    /// ones never lengthens it (a session keeps the limits of its login).
    pub fn hold_to(&mut self, policy: &TierPolicy) -> Result<(), &'static str> {
        if policy.zero_trust {
            if !self.mfa {
                return Err("the new tier is zero trust: its sessions need a second factor");
            }
            if self.binding.is_none() {
                self.binding = Some(SessionBinding {
                    device_id: self.context.device_id.clone(),
                    network: self.network.clone(),
                });
            }
        }
        let latest = self.created_at.plus(policy.session_absolute_lifetime);
        self.expires_at = self.expires_at.min(latest);
        let idle = u64::try_from(policy.session_idle_timeout.as_millis()).unwrap_or(u64::MAX);
        self.idle_timeout_ms = self.idle_timeout_ms.min(idle);
        Ok(())
    }
}

/// What a client sees of a session (session monitoring).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionView {
    /// The session's id.
    pub id: SessionId,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last used.
    pub last_seen_at: Timestamp,
    /// When it ends unless used again.
    pub expires_at: Timestamp,
    /// When the user last proved its credentials in it (login or step-up).
    pub authenticated_at: Timestamp,
    /// Whether a second factor was checked at login.
    pub mfa: bool,
    /// Client address at login.
    #[schema(value_type = Option<String>)]
    pub ip_address: Option<IpAddr>,
    /// Client user agent at login.
    pub user_agent: Option<String>,
    /// Client device at login.
    pub device_id: Option<String>,
    /// The network (address prefix) it was last used from.
    pub network: Option<String>,
    /// Where the client was at login, when known.
    pub location: Option<Location>,
    /// Whether it is bound to its device and network (zero trust).
    pub bound: bool,
}

impl From<&Session> for SessionView {
    fn from(s: &Session) -> Self {
        Self {
            id: s.id,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.ends_at(),
            authenticated_at: s.authenticated_at,
            mfa: s.mfa,
            ip_address: s.context.ip_address,
            user_agent: s.context.user_agent.clone(),
            device_id: s.context.device_id.clone(),
            network: s.network.clone(),
            location: s.location.clone(),
            bound: s.binding.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(now: Timestamp) -> Session {
        Session {
            id: SessionId::generate(),
            secret_hash: [0; 32],
            created_at: now,
            last_seen_at: now,
            expires_at: now.plus(Duration::from_secs(100)),
            idle_timeout_ms: 10_000,
            context: LoginContext::default(),
            authenticated_at: now,
            mfa: false,
            network: None,
            location: None,
            binding: None,
        }
    }

    #[test]
    fn a_tier_change_holds_sessions_to_the_new_tier() {
        let t0 = Timestamp::from_millis(1_000_000);
        let tier = |zero_trust: bool, idle: u64, life: u64| TierPolicy {
            zero_trust,
            session_idle_timeout: Duration::from_secs(idle),
            session_absolute_lifetime: Duration::from_secs(life),
            ..crate::domain::profile::tests::policy(crate::domain::tier::UserTier::Free, &[])
        };
        // Into zero trust: no second factor, no session.
        let mut plain = session(t0);
        assert!(plain.hold_to(&tier(true, 5, 50)).is_err());
        // With one, bound to its login's device and its last network, and shortened.
        let mut strong = session(t0);
        strong.mfa = true;
        strong.context.device_id = Some("laptop".into());
        strong.network = Some("203.0.113.0/24".into());
        strong.hold_to(&tier(true, 5, 50)).unwrap();
        assert_eq!(
            strong.binding,
            Some(SessionBinding {
                device_id: Some("laptop".into()),
                network: Some("203.0.113.0/24".into()),
            })
        );
        assert_eq!(strong.expires_at, t0.plus(Duration::from_secs(50)));
        assert_eq!(strong.idle_timeout_ms, 5_000);
        assert!(
            !strong.is_active(t0.plus(Duration::from_secs(6))),
            "idle sooner"
        );
        // To longer sessions, nothing is lengthened, and nothing is bound.
        let mut s = session(t0);
        s.hold_to(&tier(false, 3600, 86_400)).unwrap();
        assert_eq!(s, session_like(&s, t0));
        assert_eq!(s.binding, None);
    }

    /// `s` with the limits [`session`] gives at `t0`.
    fn session_like(s: &Session, t0: Timestamp) -> Session {
        Session {
            id: s.id,
            ..session(t0)
        }
    }

    #[test]
    fn idle_and_absolute_expiry() {
        let t0 = Timestamp::from_millis(1_000_000);
        let mut s = session(t0);
        assert!(s.is_active(t0.plus(Duration::from_millis(9_999))));
        assert!(
            !s.is_active(t0.plus(Duration::from_secs(10))),
            "idle expiry"
        );
        s.last_seen_at = t0.plus(Duration::from_secs(95));
        assert!(s.is_active(t0.plus(Duration::from_secs(99))));
        assert!(
            !s.is_active(t0.plus(Duration::from_secs(100))),
            "absolute expiry despite use"
        );
        assert_eq!(s.ends_at(), t0.plus(Duration::from_secs(100)));
    }

    #[test]
    fn context_is_sanitized() {
        let long = LoginContext {
            user_agent: Some("x".repeat(2000)),
            ..Default::default()
        };
        assert_eq!(
            long.sanitized().unwrap().user_agent.unwrap().len(),
            MAX_USER_AGENT
        );
        let bad = LoginContext {
            device_id: Some("a\nb".into()),
            ..Default::default()
        };
        assert_eq!(bad.sanitized().unwrap_err().field, "context.device_id");
    }
}
