//! Where a request comes from, and the rule that checks it against its session.
//!
//! A zero-trust session is bound to the device and network of its login: a request
//! from anywhere else ends it. Any other session may roam, but a move to a new network
//! is judged by the risk engine like a login from there (the engine does that part: it
//! needs the user's history).
//!
//! ```text
//! bound session ── same device and network ──▶ Fine
//!               └─ anything else ────────────▶ Violated (the session ends)
//! free session ── no address, or same network ─▶ Fine
//!              ├─ no network recorded yet ────▶ FirstNetwork (recorded, not a move)
//!              └─ another network ────────────▶ Moved (scored by the risk engine)
//! ```

use std::net::IpAddr;

use super::risk::{Location, RiskConfig};
use super::session::Session;

/// Where a request comes from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestOrigin {
    /// The client's address.
    pub ip: Option<IpAddr>,
    /// The `X-Device-Id` the client sent.
    pub device_id: Option<String>,
    /// The client's location, if a trusted proxy said so.
    pub location: Option<Location>,
}

/// What a request's origin means for its session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginCheck {
    /// Nothing to do.
    Fine,
    /// A bound session presented from elsewhere: `what` differs (`device`,
    /// `network`, `device and network`).
    Violated {
        /// What did not match.
        what: &'static str,
    },
    /// A session without a recorded network gets this one (no move).
    FirstNetwork(String),
    /// The session moved to this network.
    Moved(String),
}

/// Checks `origin` against `session`.
pub fn check(session: &Session, origin: &RequestOrigin, risk: &RiskConfig) -> OriginCheck {
    // Every authenticated request comes through here: the common case (same network)
    // parses the stored prefix and allocates nothing.
    let on = |known: &Option<String>| match (known, origin.ip) {
        (Some(net), Some(ip)) => risk.in_network(net, ip),
        (known, ip) => known.is_none() && ip.is_none(),
    };
    if let Some(b) = &session.binding {
        let device_ok = b.device_id.is_none() || b.device_id == origin.device_id;
        let network_ok = b.network.is_none() || on(&b.network);
        return match (device_ok, network_ok) {
            (true, true) => OriginCheck::Fine,
            (false, false) => OriginCheck::Violated {
                what: "device and network",
            },
            (false, true) => OriginCheck::Violated { what: "device" },
            (true, false) => OriginCheck::Violated { what: "network" },
        };
    }
    let Some(ip) = origin.ip else {
        return OriginCheck::Fine;
    };
    if on(&session.network) {
        return OriginCheck::Fine;
    }
    let network = risk.network_of(ip);
    if session.network.is_none() {
        // A session from before networks were recorded (or opened without an address):
        // this is its first network, not a move.
        return OriginCheck::FirstNetwork(network);
    }
    OriginCheck::Moved(network)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::SessionId;
    use crate::domain::session::{LoginContext, SessionBinding};
    use crate::domain::time::Timestamp;

    fn risk() -> RiskConfig {
        toml::from_str(include_str!("../../config/default.toml"))
            .map(|t: toml::Table| t["risk"].clone())
            .and_then(|v| v.try_into())
            .unwrap()
    }

    fn session(network: Option<&str>, binding: Option<SessionBinding>) -> Session {
        let t = Timestamp::from_millis(1_000);
        Session {
            id: SessionId::generate(),
            secret_hash: [0; 32],
            created_at: t,
            last_seen_at: t,
            expires_at: t,
            idle_timeout_ms: 1,
            context: LoginContext::default(),
            authenticated_at: t,
            mfa: false,
            network: network.map(str::to_owned),
            location: None,
            binding,
        }
    }

    fn from(ip: &str, device: Option<&str>) -> RequestOrigin {
        RequestOrigin {
            ip: Some(ip.parse().unwrap()),
            device_id: device.map(str::to_owned),
            location: None,
        }
    }

    #[test]
    fn a_bound_session_answers_only_from_its_device_and_network() {
        let r = risk();
        let home = r.network_of("203.0.113.7".parse().unwrap());
        let bound = session(
            Some(&home),
            Some(SessionBinding {
                device_id: Some("laptop".into()),
                network: Some(home.clone()),
            }),
        );
        assert_eq!(
            check(&bound, &from("203.0.113.9", Some("laptop")), &r),
            OriginCheck::Fine
        );
        assert_eq!(
            check(&bound, &from("203.0.113.9", Some("phone")), &r),
            OriginCheck::Violated { what: "device" }
        );
        assert_eq!(
            check(&bound, &from("198.51.100.1", Some("laptop")), &r),
            OriginCheck::Violated { what: "network" }
        );
        assert_eq!(
            check(&bound, &from("198.51.100.1", None), &r),
            OriginCheck::Violated {
                what: "device and network"
            }
        );
    }

    #[test]
    fn a_free_session_roams_and_a_move_is_reported() {
        let r = risk();
        let home = r.network_of("203.0.113.7".parse().unwrap());
        let free = session(Some(&home), None);
        assert_eq!(
            check(&free, &from("203.0.113.200", None), &r),
            OriginCheck::Fine
        );
        assert_eq!(
            check(&free, &RequestOrigin::default(), &r),
            OriginCheck::Fine
        );
        let away = r.network_of("198.51.100.1".parse().unwrap());
        assert_eq!(
            check(&free, &from("198.51.100.1", None), &r),
            OriginCheck::Moved(away.clone())
        );
        let fresh = session(None, None);
        assert_eq!(
            check(&fresh, &from("198.51.100.1", None), &r),
            OriginCheck::FirstNetwork(away)
        );
    }
}
