//! The deny-list of networks operators change at run time (incident response): beside
//! the networks of `risk.deny_networks` in config, each entry refuses every login from
//! its network and ends any session used from there. Plain data and its rules; the
//! engine keeps the list, persisted, and applies it.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::time::Timestamp;
use super::validation::ValidationError;

/// The most entries the list holds.
pub const MAX_ENTRIES: usize = 10_000;
/// The longest reason, in characters.
pub const MAX_REASON: usize = 500;

/// One denied network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeniedNetwork {
    /// The network (its address bits past the prefix cleared).
    #[schema(value_type = String, example = "203.0.113.0/24")]
    pub network: IpNet,
    /// Why, as the operator wrote it.
    pub reason: String,
    /// Who added it (the audit log's actor).
    pub added_by: String,
    /// When.
    pub added_at: Timestamp,
    /// When it stops applying by itself; `None`: until removed.
    pub expires_at: Option<Timestamp>,
}

impl DeniedNetwork {
    /// Whether it applies at `now`.
    pub fn in_force(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }
}

/// A network to deny, as an operator asks it.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DenyRequest {
    /// `203.0.113.0/24`, `2001:db8::/32`, or one address.
    pub network: String,
    /// Why (required: the next operator reads it).
    pub reason: String,
    /// When it stops applying by itself (default: until removed).
    pub expires_at: Option<Timestamp>,
}

/// Reads a network in CIDR form or one address; its host bits are cleared.
pub fn parse_network(field: &str, text: &str) -> Result<IpNet, ValidationError> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| {
            ValidationError::new(
                field,
                format!("{text:?} is not a network in CIDR form (203.0.113.0/24) or an address"),
            )
        })
}

impl DenyRequest {
    /// The entry it makes at `now` for `by`, checked: a network, a reason, an end in the
    /// future.
    pub fn entry(&self, by: String, now: Timestamp) -> Result<DeniedNetwork, ValidationError> {
        let network = parse_network("network", &self.network)?;
        let reason = self.reason.trim();
        if reason.is_empty() {
            return Err(ValidationError::new("reason", "is required"));
        }
        if reason.chars().count() > MAX_REASON {
            return Err(ValidationError::new(
                "reason",
                format!("is longer than {MAX_REASON} characters"),
            ));
        }
        if self.expires_at.is_some_and(|t| t <= now) {
            return Err(ValidationError::new("expires_at", "is not in the future"));
        }
        Ok(DeniedNetwork {
            network,
            reason: reason.to_owned(),
            added_by: by,
            added_at: now,
            expires_at: self.expires_at,
        })
    }
}

/// The list, as stored (JSON) and held by the engine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenyList {
    /// The entries, in the order they were added.
    pub entries: Vec<DeniedNetwork>,
}

impl DenyList {
    /// The entry in force at `now` whose network holds `ip`, if one.
    pub fn find(&self, ip: IpAddr, now: Timestamp) -> Option<&DeniedNetwork> {
        self.entries
            .iter()
            .find(|e| e.in_force(now) && e.network.contains(&ip))
    }

    /// Adds `entry`, replacing the one of the same network (whether one was replaced),
    /// dropping the entries past their end; refused beyond [`MAX_ENTRIES`].
    pub fn put(&mut self, entry: DeniedNetwork, now: Timestamp) -> Result<bool, ValidationError> {
        self.entries.retain(|e| e.in_force(now));
        let replaced = self.remove(&entry.network);
        if self.entries.len() >= MAX_ENTRIES {
            return Err(ValidationError::new(
                "network",
                format!("the deny-list holds {MAX_ENTRIES} networks already: remove some"),
            ));
        }
        self.entries.push(entry);
        Ok(replaced)
    }

    /// Removes the entry of `network`; whether there was one.
    pub fn remove(&mut self, network: &IpNet) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.network != *network);
        self.entries.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + s * 1000)
    }

    fn ask(network: &str, reason: &str, expires_at: Option<Timestamp>) -> DenyRequest {
        DenyRequest {
            network: network.into(),
            reason: reason.into(),
            expires_at,
        }
    }

    #[test]
    fn entries_deny_their_network_until_they_end_or_are_removed() {
        let mut list = DenyList::default();
        let e = ask("203.0.113.77/24", "botnet", Some(at(60)))
            .entry("operator".into(), at(0))
            .unwrap();
        assert_eq!(e.network.to_string(), "203.0.113.0/24", "host bits cleared");
        assert!(!list.put(e, at(0)).unwrap());
        let one = ask("2001:db8::1", "one address", None)
            .entry("operator".into(), at(0))
            .unwrap();
        list.put(one, at(0)).unwrap();
        let inside: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(list.find(inside, at(10)).unwrap().reason, "botnet");
        assert!(list.find("198.51.100.1".parse().unwrap(), at(10)).is_none());
        assert!(list.find(inside, at(60)).is_none(), "ended");
        assert!(list.find("2001:db8::1".parse().unwrap(), at(10)).is_some());
        assert!(list.find("2001:db8::2".parse().unwrap(), at(10)).is_none());
        // The same network again replaces it; an ended one is dropped at the next put.
        let again = ask("203.0.113.0/24", "still", None)
            .entry("operator".into(), at(70))
            .unwrap();
        assert!(
            !list.put(again, at(70)).unwrap(),
            "the ended one was dropped first"
        );
        assert_eq!(list.entries.len(), 2);
        let net = parse_network("network", "203.0.113.0/24").unwrap();
        assert!(list.remove(&net));
        assert!(!list.remove(&net));
        assert!(list.find(inside, at(80)).is_none());
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let field = |r: DenyRequest| r.entry("o".into(), at(0)).unwrap_err().field;
        assert_eq!(field(ask("10.0.0.0/33", "x", None)), "network");
        assert_eq!(field(ask("ten", "x", None)), "network");
        assert_eq!(field(ask("10.0.0.0/8", "  ", None)), "reason");
        assert_eq!(field(ask("10.0.0.0/8", &"x".repeat(501), None)), "reason");
        assert_eq!(field(ask("10.0.0.0/8", "x", Some(at(0)))), "expires_at");
    }
}
