//! Which sessions an operator's bulk revocation ends: a selector as the operator writes
//! it, checked into a [`Selection`], and the pure rules that say whether a user is in its
//! scope and whether one of its sessions matches. Criteria are combined with "and"; a
//! revocation only ends sessions that were live when it started.

use std::collections::HashSet;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::denylist::parse_network;
use super::ids::UserId;
use super::security_log::{SecurityEvent, SecurityEventKind};
use super::session::Session;
use super::tier::UserTier;
use super::time::Timestamp;
use super::validation::ValidationError;

/// The most users a selector lists by id.
pub const MAX_USER_IDS: usize = 10_000;

/// The sessions to end, as an operator names them. At least one criterion, or `all`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionSelector {
    /// Every session (required when no other criterion is given).
    #[serde(default)]
    pub all: bool,
    /// Sessions of users of this tier.
    pub tier: Option<UserTier>,
    /// Sessions that logged in from, or were last used from, this network
    /// (`203.0.113.0/24`, `2001:db8::/32`, or one address).
    pub cidr: Option<String>,
    /// Sessions created at or after this time.
    pub created_after: Option<Timestamp>,
    /// Sessions created before this time.
    pub created_before: Option<Timestamp>,
    /// Sessions of users with a security event of this kind at or after `since`.
    pub event_kind: Option<SecurityEventKind>,
    /// See `event_kind` (required with it).
    pub since: Option<Timestamp>,
    /// Only these users (at most 10,000 ids).
    pub user_ids: Option<Vec<UserId>>,
    /// Count what would end, end nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// A checked selector.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    tier: Option<UserTier>,
    network: Option<IpNet>,
    created_after: Option<Timestamp>,
    created_before: Option<Timestamp>,
    event: Option<(SecurityEventKind, Timestamp)>,
    users: Option<HashSet<UserId>>,
    /// Whether nothing is to be ended, only counted.
    pub dry_run: bool,
}

impl SessionSelector {
    /// Checks the selector: at least one criterion (or `all`), a well-formed network, a
    /// time window that is not empty, `event_kind` and `since` together.
    pub fn validate(&self) -> Result<Selection, ValidationError> {
        let criteria = self.tier.is_some()
            || self.cidr.is_some()
            || self.created_after.is_some()
            || self.created_before.is_some()
            || self.event_kind.is_some()
            || self.since.is_some()
            || self.user_ids.is_some();
        if !criteria && !self.all {
            return Err(ValidationError::new(
                "selector",
                "names no session: give all: true, or one of tier, cidr, created_after, \
                 created_before, event_kind with since, user_ids",
            ));
        }
        if let (Some(after), Some(before)) = (self.created_after, self.created_before)
            && after >= before
        {
            return Err(ValidationError::new(
                "created_before",
                "must be later than created_after",
            ));
        }
        let event = match (self.event_kind, self.since) {
            (Some(kind), Some(since)) => Some((kind, since)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ValidationError::new("since", "is required with event_kind"));
            }
            (None, Some(_)) => {
                return Err(ValidationError::new("event_kind", "is required with since"));
            }
        };
        let users = match &self.user_ids {
            Some(ids) if ids.is_empty() => {
                return Err(ValidationError::new(
                    "user_ids",
                    "is empty: name a user, or leave it out",
                ));
            }
            Some(ids) if ids.len() > MAX_USER_IDS => {
                return Err(ValidationError::new(
                    "user_ids",
                    format!("names {} users, more than {MAX_USER_IDS}", ids.len()),
                ));
            }
            Some(ids) => Some(ids.iter().copied().collect()),
            None => None,
        };
        Ok(Selection {
            users,
            tier: self.tier,
            network: self
                .cidr
                .as_deref()
                .map(|text| parse_network("cidr", text))
                .transpose()?,
            created_after: self.created_after,
            created_before: self.created_before,
            event,
            dry_run: self.dry_run,
        })
    }
}

impl Selection {
    /// Whether user `id` of `tier` may be in scope (its security events aside).
    pub fn tier_in_scope(&self, id: UserId, tier: UserTier) -> bool {
        self.tier.is_none_or(|t| t == tier) && self.users.as_ref().is_none_or(|u| u.contains(&id))
    }

    /// Whether it names sessions by their own criteria (network, creation time): then
    /// an account is selected only through a session that matches.
    pub fn names_sessions(&self) -> bool {
        self.network.is_some() || self.created_after.is_some() || self.created_before.is_some()
    }

    /// Whether an action on accounts (lock, reset) selects user `id`, of `tier`, with
    /// recent security `events` and `sessions`: in scope, and, when the selector names
    /// sessions, with one that matches (as a stored record holds them when `now` is
    /// `None`, see [`Self::may_match`]).
    pub fn selects_account<'a>(
        &self,
        id: UserId,
        tier: UserTier,
        events: impl IntoIterator<Item = &'a SecurityEvent>,
        sessions: &[Session],
        started: Timestamp,
        now: Option<Timestamp>,
    ) -> bool {
        let session_matches = |s: &Session| match now {
            Some(now) => self.matches(s, started, now),
            None => self.may_match(s, started),
        };
        self.user_in_scope(id, tier, events)
            && (!self.names_sessions() || sessions.iter().any(session_matches))
    }

    /// Whether user `id` of `tier` whose recent security events are `events` is in
    /// scope.
    pub fn user_in_scope<'a>(
        &self,
        id: UserId,
        tier: UserTier,
        events: impl IntoIterator<Item = &'a SecurityEvent>,
    ) -> bool {
        self.tier_in_scope(id, tier)
            && self.event.is_none_or(|(kind, since)| {
                events.into_iter().any(|e| e.kind == kind && e.at >= since)
            })
    }

    /// Whether `s` is to end: live at `now`, created by `started` (when the revocation
    /// began), and within every criterion.
    pub fn matches(&self, s: &Session, started: Timestamp, now: Timestamp) -> bool {
        s.is_active(now) && self.may_match(s, started)
    }

    /// Whether `s`, as a stored record holds it, may be one to end: as [`Self::matches`]
    /// but for the idle timeout, which the stored last use (soft state, behind the live
    /// one) cannot judge.
    pub fn may_match(&self, s: &Session, started: Timestamp) -> bool {
        started < s.expires_at
            && s.created_at <= started
            && self.created_after.is_none_or(|t| s.created_at >= t)
            && self.created_before.is_none_or(|t| s.created_at < t)
            && self.network.is_none_or(|net| {
                s.context.ip_address.is_some_and(|ip| net.contains(&ip))
                    || s.network
                        .as_deref()
                        .and_then(|n| n.parse::<IpNet>().ok())
                        .is_some_and(|used| net.contains(&used.addr()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::session::LoginContext;

    fn at(min: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + min * 60_000)
    }

    fn session(created: i64, ip: &str) -> Session {
        Session {
            id: crate::domain::ids::SessionId::generate(),
            secret_hash: [0; 32],
            created_at: at(created),
            last_seen_at: at(created),
            expires_at: at(created + 600),
            idle_timeout_ms: 3_600_000,
            context: LoginContext {
                ip_address: Some(ip.parse().unwrap()),
                user_agent: None,
                device_id: None,
            },
            authenticated_at: at(created),
            mfa: false,
            network: None,
            location: None,
            binding: None,
        }
    }

    fn select(json: serde_json::Value) -> Result<Selection, ValidationError> {
        serde_json::from_value::<SessionSelector>(json)
            .unwrap()
            .validate()
    }

    #[test]
    fn bad_selectors_say_what_is_wrong() {
        let field = |j| select(j).unwrap_err().field;
        assert_eq!(field(serde_json::json!({})), "selector");
        assert_eq!(field(serde_json::json!({"dry_run": true})), "selector");
        assert_eq!(field(serde_json::json!({"cidr": "10.0.0.0/33"})), "cidr");
        assert_eq!(field(serde_json::json!({"cidr": "ten"})), "cidr");
        assert_eq!(
            field(serde_json::json!({"event_kind": "login_failed"})),
            "since"
        );
        assert_eq!(
            field(serde_json::json!({"since": "2027-01-01T00:00:00Z"})),
            "event_kind"
        );
        assert_eq!(
            field(serde_json::json!({
                "created_after": "2027-01-02T00:00:00Z",
                "created_before": "2027-01-01T00:00:00Z"
            })),
            "created_before"
        );
        assert!(
            serde_json::from_value::<SessionSelector>(serde_json::json!({"tiers": "free"}))
                .is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn sessions_match_by_network_window_and_start() {
        let net = select(serde_json::json!({"cidr": "203.0.113.0/24"})).unwrap();
        let inside = session(0, "203.0.113.9");
        let outside = session(0, "198.51.100.9");
        assert!(net.matches(&inside, at(10), at(10)));
        assert!(!net.matches(&outside, at(10), at(10)));
        let mut roamed = outside.clone();
        roamed.network = Some("203.0.113.0/24".into());
        assert!(net.matches(&roamed, at(10), at(10)), "last used from there");
        let one = select(serde_json::json!({"cidr": "203.0.113.9"})).unwrap();
        assert!(one.matches(&inside, at(10), at(10)));

        let all = select(serde_json::json!({"all": true})).unwrap();
        assert!(
            !all.matches(&session(20, "203.0.113.9"), at(10), at(30)),
            "created after the revocation began"
        );
        assert!(
            !all.matches(&inside, at(10), at(700)),
            "expired already: not counted"
        );
        let window = select(serde_json::json!({
            "created_after": at(5).to_string(),
            "created_before": at(15).to_string()
        }))
        .unwrap();
        assert!(!window.matches(&session(4, "1.1.1.1"), at(30), at(30)));
        assert!(window.matches(&session(5, "1.1.1.1"), at(30), at(30)));
        assert!(!window.matches(&session(15, "1.1.1.1"), at(30), at(30)));
    }

    #[test]
    fn users_are_in_scope_by_tier_and_recent_events() {
        let s = select(serde_json::json!({
            "tier": "premium", "event_kind": "login_failed", "since": at(10).to_string()
        }))
        .unwrap();
        let id = UserId::generate();
        let failed = |min| SecurityEvent::new(SecurityEventKind::LoginFailed, at(min));
        assert!(s.user_in_scope(id, UserTier::Premium, &[failed(12)]));
        assert!(
            !s.user_in_scope(id, UserTier::Premium, &[failed(8)]),
            "too early"
        );
        assert!(
            !s.user_in_scope(id, UserTier::Free, &[failed(12)]),
            "another tier"
        );
        assert!(!s.user_in_scope(id, UserTier::Premium, &[]));
    }

    #[test]
    fn accounts_are_selected_by_list_and_through_a_matching_session() {
        let (listed, other) = (UserId::generate(), UserId::generate());
        let by_id = select(serde_json::json!({"user_ids": [listed.to_string()]})).unwrap();
        assert!(by_id.selects_account(listed, UserTier::Free, &[], &[], at(10), None));
        assert!(!by_id.selects_account(other, UserTier::Free, &[], &[], at(10), None));
        // A tier selects its accounts with or without a session...
        let tier = select(serde_json::json!({"tier": "free"})).unwrap();
        assert!(!tier.names_sessions());
        assert!(tier.selects_account(other, UserTier::Free, &[], &[], at(10), Some(at(10))));
        // ...a network only those with a session from there.
        let net = select(serde_json::json!({"cidr": "203.0.113.0/24"})).unwrap();
        assert!(net.names_sessions());
        let inside = [session(0, "203.0.113.9")];
        assert!(net.selects_account(other, UserTier::Free, &[], &inside, at(10), Some(at(10))));
        assert!(!net.selects_account(other, UserTier::Free, &[], &[], at(10), Some(at(10))));
        let outside = [session(0, "198.51.100.1")];
        assert!(!net.selects_account(other, UserTier::Free, &[], &outside, at(10), None));
        let field = |j| select(j).unwrap_err().field;
        assert_eq!(field(serde_json::json!({"user_ids": []})), "user_ids");
        let many: Vec<String> = (0..=MAX_USER_IDS)
            .map(|_| UserId::generate().to_string())
            .collect();
        assert_eq!(field(serde_json::json!({ "user_ids": many })), "user_ids");
    }
}
