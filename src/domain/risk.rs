//! Risk-based authentication: a pure scorer over what a user's actor has learned about
//! its logins (devices, networks, countries, last location, usual hours), run at login
//! and when a session's context changes. Every decision carries its reasons.
//!
//! Signals combine as independent evidence, `score = 1 - Π(1 - weight)`, so several weak
//! signals add up but never pass 1, and one strong signal dominates.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::settings::SecuritySettings;
use super::time::Timestamp;
use super::validation::ValidationError;

/// Networks remembered per user, most recent last.
pub(crate) const MAX_KNOWN_NETWORKS: usize = 32;
/// Countries remembered per user.
pub(crate) const MAX_KNOWN_COUNTRIES: usize = 16;
/// Moves shorter than this are never "impossible travel": geolocation of addresses is
/// coarse, and a city-level error must not look like a flight.
const MIN_TRAVEL_KM: f64 = 200.0;
const EARTH_RADIUS_KM: f64 = 6371.0;

/// Where a client is, as far as the server can tell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: String,
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
}

impl Location {
    /// Checks the ranges and normalises the country code.
    pub fn new(country: &str, latitude: f64, longitude: f64) -> Result<Self, ValidationError> {
        let country = country.trim().to_ascii_uppercase();
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ValidationError::new(
                "location.country",
                "must be an ISO 3166-1 alpha-2 code",
            ));
        }
        if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
            return Err(ValidationError::new(
                "location",
                "latitude must be within ±90 and longitude within ±180",
            ));
        }
        Ok(Self {
            country,
            latitude,
            longitude,
        })
    }

    /// Great-circle distance in km (haversine).
    pub fn distance_km(&self, other: &Location) -> f64 {
        let (la1, la2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let dla = la2 - la1;
        let dlo = (other.longitude - self.longitude).to_radians();
        let a = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().atan2((1.0 - a).sqrt())
    }
}

/// A reason a login looks risky.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// A device id never seen at a successful login of this user.
    NewDevice,
    /// An address prefix never seen at a successful login.
    NewNetwork,
    /// A country never seen at a successful login.
    NewCountry,
    /// Too far from the last located login for the time since.
    ImpossibleTravel,
    /// Many failed attempts recently.
    FailureVelocity,
    /// An hour of day far from any at which the user logs in.
    UnusualHour,
    /// A network on the configured deny-list.
    DeniedNetwork,
}

impl SignalKind {
    /// Stable name (metrics label and event field).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NewDevice => "new_device",
            Self::NewNetwork => "new_network",
            Self::NewCountry => "new_country",
            Self::ImpossibleTravel => "impossible_travel",
            Self::FailureVelocity => "failure_velocity",
            Self::UnusualHour => "unusual_hour",
            Self::DeniedNetwork => "denied_network",
        }
    }
}

/// One contributing signal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RiskSignal {
    /// Which signal.
    pub kind: SignalKind,
    /// Its weight in the score, in [0, 1].
    pub weight: f64,
    /// Human-readable detail ("8,900 km in 1.0 h from FR to US").
    pub reason: String,
}

/// What to do about a login.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RiskDecision {
    /// Proceed (a second factor may still be required by settings or tier).
    Allow,
    /// Ask for a second factor.
    RequireMfa,
    /// Refuse.
    Deny,
}

impl RiskDecision {
    /// Stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::RequireMfa => "require_mfa",
            Self::Deny => "deny",
        }
    }
}

/// A scored login, with its reasons.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RiskAssessment {
    /// In [0, 1].
    pub score: f64,
    /// The threshold the decision was made against (the user's `risk_score_threshold`).
    pub threshold: f64,
    /// What contributed.
    pub signals: Vec<RiskSignal>,
    /// The outcome.
    pub decision: RiskDecision,
}

impl RiskAssessment {
    /// Whether `kind` contributed.
    pub fn has(&self, kind: SignalKind) -> bool {
        self.signals.iter().any(|s| s.kind == kind)
    }
}

/// Weight of each signal.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskWeights {
    /// See [`SignalKind::NewDevice`].
    pub new_device: f64,
    /// See [`SignalKind::NewNetwork`].
    pub new_network: f64,
    /// See [`SignalKind::NewCountry`].
    pub new_country: f64,
    /// See [`SignalKind::ImpossibleTravel`].
    pub impossible_travel: f64,
    /// See [`SignalKind::FailureVelocity`].
    pub failure_velocity: f64,
    /// See [`SignalKind::UnusualHour`].
    pub unusual_hour: f64,
}

/// The scorer's configuration (`[risk]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskConfig {
    /// Signal weights.
    pub weights: RiskWeights,
    /// Fastest plausible travel between two logins, km/h.
    pub max_travel_kmh: f64,
    /// Failed attempts in the lockout window that raise `failure_velocity`.
    pub velocity_failures: u32,
    /// Successful logins needed before `unusual_hour` is judged.
    pub unusual_hour_min_logins: u32,
    /// Hours from the nearest usual hour that count as unusual.
    pub unusual_hour_gap: u32,
    /// Scores at or above this are denied whatever the user's threshold.
    pub deny_score: f64,
    /// Networks whose logins are always denied (CIDR).
    pub deny_networks: Vec<IpNet>,
    /// Prefix length that makes an IPv4 address's "network".
    pub network_prefix_v4: u8,
    /// Prefix length that makes an IPv6 address's "network".
    pub network_prefix_v6: u8,
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            weights: RiskWeights {
                new_device: 0.25,
                new_network: 0.2,
                new_country: 0.35,
                impossible_travel: 0.8,
                failure_velocity: 0.4,
                unusual_hour: 0.15,
            },
            max_travel_kmh: 1000.0,
            velocity_failures: 3,
            unusual_hour_min_logins: 10,
            unusual_hour_gap: 3,
            deny_score: 0.95,
            deny_networks: Vec::new(),
            network_prefix_v4: 24,
            network_prefix_v6: 48,
        }
    }
}

impl RiskConfig {
    /// Checks ranges; errors name the key.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let w = &self.weights;
        for (k, v) in [
            ("new_device", w.new_device),
            ("new_network", w.new_network),
            ("new_country", w.new_country),
            ("impossible_travel", w.impossible_travel),
            ("failure_velocity", w.failure_velocity),
            ("unusual_hour", w.unusual_hour),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(ValidationError::new(
                    format!("risk.weights.{k}"),
                    "must be within 0 and 1",
                ));
            }
        }
        if !(self.deny_score > 0.0 && self.deny_score <= 1.0) {
            return Err(ValidationError::new("risk.deny_score", "must be in (0, 1]"));
        }
        if self.max_travel_kmh.is_nan() || self.max_travel_kmh <= 0.0 {
            return Err(ValidationError::new(
                "risk.max_travel_kmh",
                "must be positive",
            ));
        }
        if self.network_prefix_v4 > 32 || self.network_prefix_v6 > 128 {
            return Err(ValidationError::new(
                "risk.network_prefix_v4",
                "prefixes must be at most 32 (IPv4) and 128 (IPv6)",
            ));
        }
        if !(1..=12).contains(&self.unusual_hour_gap) {
            return Err(ValidationError::new(
                "risk.unusual_hour_gap",
                "must be between 1 and 12",
            ));
        }
        Ok(())
    }

    /// Whether `ip` is in `network`, a prefix [`Self::network_of`] made (one of another
    /// prefix length, from before a configuration change, never matches). Allocates
    /// nothing: this runs on every request of a session.
    pub fn in_network(&self, network: &str, ip: IpAddr) -> bool {
        let len = match ip {
            IpAddr::V4(_) => self.network_prefix_v4,
            IpAddr::V6(_) => self.network_prefix_v6,
        };
        network
            .parse::<IpNet>()
            .is_ok_and(|n| n.prefix_len() == len && n.contains(&ip))
    }

    /// The network (address prefix) `ip` belongs to, e.g. `203.0.113.0/24`.
    pub fn network_of(&self, ip: IpAddr) -> String {
        let len = match ip {
            IpAddr::V4(_) => self.network_prefix_v4,
            IpAddr::V6(_) => self.network_prefix_v6,
        };
        IpNet::new(ip, len).map_or_else(|_| ip.to_string(), |n| n.trunc().to_string())
    }
}

/// A login whose location was known.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocatedLogin {
    /// Where.
    pub location: Location,
    /// When.
    pub at: Timestamp,
}

/// What a user's actor has learned from its successful logins (part of the snapshot).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RiskProfile {
    /// Address prefixes seen, most recent last.
    pub networks: Vec<String>,
    /// Countries seen, most recent last.
    pub countries: Vec<String>,
    /// The latest login with a known location.
    pub last_location: Option<LocatedLogin>,
    /// Successful logins per UTC hour of day.
    pub hours: [u32; 24],
    /// Successful logins learned from.
    pub logins: u64,
}

/// What is known about a login attempt.
#[derive(Clone, Copy, Debug, Default)]
pub struct Attempt<'a> {
    /// The client's device id.
    pub device_id: Option<&'a str>,
    /// The client's address.
    pub ip: Option<IpAddr>,
    /// The client's location.
    pub location: Option<&'a Location>,
    /// Failed attempts in the current lockout window.
    pub recent_failures: u32,
}

fn remember(list: &mut Vec<String>, item: &str, cap: usize) {
    list.retain(|x| x != item);
    list.push(item.to_owned());
    let excess = list.len().saturating_sub(cap);
    list.drain(..excess);
}

fn hour_of(t: Timestamp) -> usize {
    usize::try_from(t.as_millis().rem_euclid(86_400_000) / 3_600_000).unwrap_or(0)
}

impl RiskProfile {
    /// Learns from a completed login (after every factor passed, so that a stolen
    /// password alone cannot teach the profile a new "usual").
    pub fn learn(&mut self, attempt: &Attempt<'_>, cfg: &RiskConfig, now: Timestamp) {
        if let Some(ip) = attempt.ip {
            remember(&mut self.networks, &cfg.network_of(ip), MAX_KNOWN_NETWORKS);
        }
        if let Some(loc) = attempt.location {
            remember(&mut self.countries, &loc.country, MAX_KNOWN_COUNTRIES);
            self.last_location = Some(LocatedLogin {
                location: loc.clone(),
                at: now,
            });
        }
        self.hours[hour_of(now)] = self.hours[hour_of(now)].saturating_add(1);
        self.logins += 1;
    }
}

/// Scores `attempt` against what `profile` has learned and the user's `settings`.
/// `known_devices` are the device ids of the user's earlier successful logins.
pub fn assess(
    profile: &RiskProfile,
    known_devices: &[String],
    attempt: &Attempt<'_>,
    settings: &SecuritySettings,
    cfg: &RiskConfig,
    now: Timestamp,
) -> RiskAssessment {
    let mut signals = Vec::new();
    let mut add = |kind, weight: f64, reason: String| {
        if weight > 0.0 {
            signals.push(RiskSignal {
                kind,
                weight,
                reason,
            });
        }
    };
    let denied = attempt
        .ip
        .and_then(|ip| cfg.deny_networks.iter().find(|n| n.contains(&ip)));
    if let Some(net) = denied {
        add(
            SignalKind::DeniedNetwork,
            1.0,
            format!("address in the denied network {net}"),
        );
    }
    // Anomalies are judged against a history; a first login has none.
    if settings.anomaly_detection_enabled && profile.logins > 0 {
        let w = &cfg.weights;
        if let Some(d) = attempt.device_id
            && !known_devices.iter().any(|k| k == d)
        {
            add(
                SignalKind::NewDevice,
                w.new_device,
                "device not seen before".into(),
            );
        }
        if let Some(ip) = attempt.ip {
            let net = cfg.network_of(ip);
            if !profile.networks.contains(&net) {
                add(
                    SignalKind::NewNetwork,
                    w.new_network,
                    format!("network {net} not seen before"),
                );
            }
        }
        if let Some(loc) = attempt.location {
            if !profile.countries.is_empty() && !profile.countries.contains(&loc.country) {
                add(
                    SignalKind::NewCountry,
                    w.new_country,
                    format!("country {} not seen before", loc.country),
                );
            }
            if let Some(last) = &profile.last_location {
                let km = last.location.distance_km(loc);
                // At least a minute apart, so that two logins in the same second do not
                // divide by zero.
                let hours = now
                    .since(last.at)
                    .max(Duration::from_secs(60))
                    .as_secs_f64()
                    / 3600.0;
                let speed = km / hours;
                if km >= MIN_TRAVEL_KM && speed > cfg.max_travel_kmh {
                    add(
                        SignalKind::ImpossibleTravel,
                        w.impossible_travel,
                        format!(
                            "impossible travel: {km:.0} km in {hours:.1} h ({speed:.0} km/h) from {} to {}",
                            last.location.country, loc.country
                        ),
                    );
                }
            }
        }
        if attempt.recent_failures >= cfg.velocity_failures {
            add(
                SignalKind::FailureVelocity,
                w.failure_velocity,
                format!("{} failed attempts recently", attempt.recent_failures),
            );
        }
        let total: u64 = profile.hours.iter().map(|&n| u64::from(n)).sum();
        if total >= u64::from(cfg.unusual_hour_min_logins) {
            let h = hour_of(now);
            let gap = (0..24usize)
                .filter(|&k| profile.hours[k] > 0)
                .map(|k| {
                    let d = h.abs_diff(k);
                    d.min(24 - d)
                })
                .min()
                .unwrap_or(0);
            if gap >= cfg.unusual_hour_gap as usize {
                add(
                    SignalKind::UnusualHour,
                    w.unusual_hour,
                    format!("{h:02}:00 UTC is {gap} h from any usual login hour"),
                );
            }
        }
    }
    let score = 1.0 - signals.iter().map(|s| 1.0 - s.weight).product::<f64>();
    let threshold = settings.risk_score_threshold;
    let decision = if denied.is_some() || score >= cfg.deny_score {
        RiskDecision::Deny
    } else if score > 0.0 && score >= threshold {
        RiskDecision::RequireMfa
    } else {
        RiskDecision::Allow
    };
    RiskAssessment {
        score,
        threshold,
        signals,
        decision,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::settings::MfaMethod;

    const HOUR: Duration = Duration::from_secs(3600);

    fn settings(threshold: f64) -> SecuritySettings {
        SecuritySettings {
            require_mfa: false,
            mfa_methods: vec![MfaMethod::Authenticator],
            session_timeout_minutes: 60,
            risk_score_threshold: threshold,
            anomaly_detection_enabled: true,
        }
    }

    fn paris() -> Location {
        Location::new("fr", 48.8566, 2.3522).unwrap()
    }
    fn new_york() -> Location {
        Location::new("US", 40.7128, -74.0060).unwrap()
    }
    fn lyon() -> Location {
        Location::new("FR", 45.7640, 4.8357).unwrap()
    }

    /// A 10:00 UTC start on some day.
    fn t0() -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000 - 1_700_000_000_000 % 86_400_000 + 10 * 3_600_000)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    /// A profile that has seen "laptop" on 198.51.100.0/24 in Paris at `t0`.
    fn learned(cfg: &RiskConfig) -> (RiskProfile, Vec<String>) {
        let mut p = RiskProfile::default();
        let loc = paris();
        let a = Attempt {
            device_id: Some("laptop"),
            ip: ip("198.51.100.7"),
            location: Some(&loc),
            recent_failures: 0,
        };
        p.learn(&a, cfg, t0());
        (p, vec!["laptop".into()])
    }

    fn known(loc: &Location) -> Attempt<'_> {
        Attempt {
            device_id: Some("laptop"),
            ip: ip("198.51.100.99"),
            location: Some(loc),
            recent_failures: 0,
        }
    }

    #[test]
    fn known_device_network_and_place_are_allowed_with_no_signal() {
        let cfg = RiskConfig::default();
        let (p, devices) = learned(&cfg);
        let loc = paris();
        let r = assess(
            &p,
            &devices,
            &known(&loc),
            &settings(0.5),
            &cfg,
            t0().plus(HOUR),
        );
        assert_eq!((r.score, r.decision), (0.0, RiskDecision::Allow));
        assert!(r.signals.is_empty());
    }

    #[test]
    fn first_login_has_no_history_to_be_anomalous_against() {
        let cfg = RiskConfig::default();
        let loc = new_york();
        let a = Attempt {
            device_id: Some("x"),
            ip: ip("203.0.113.1"),
            location: Some(&loc),
            recent_failures: 0,
        };
        let r = assess(&RiskProfile::default(), &[], &a, &settings(0.5), &cfg, t0());
        assert_eq!(r.decision, RiskDecision::Allow);
    }

    #[test]
    fn new_device_signal() {
        let cfg = RiskConfig::default();
        let (p, devices) = learned(&cfg);
        let loc = paris();
        let a = Attempt {
            device_id: Some("phone"),
            ..known(&loc)
        };
        let r = assess(&p, &devices, &a, &settings(0.5), &cfg, t0().plus(HOUR));
        assert_eq!(r.signals.len(), 1);
        assert!(r.has(SignalKind::NewDevice));
        assert_eq!(r.score, cfg.weights.new_device);
        assert_eq!(r.decision, RiskDecision::Allow);
    }

    #[test]
    fn new_network_signal_uses_the_prefix() {
        let cfg = RiskConfig::default();
        let (p, devices) = learned(&cfg);
        let loc = paris();
        let same_net = assess(&p, &devices, &known(&loc), &settings(0.5), &cfg, t0());
        assert!(!same_net.has(SignalKind::NewNetwork));
        let a = Attempt {
            ip: ip("198.51.101.7"),
            ..known(&loc)
        };
        let r = assess(&p, &devices, &a, &settings(0.5), &cfg, t0().plus(HOUR));
        assert!(r.has(SignalKind::NewNetwork));
        assert!(r.signals[0].reason.contains("198.51.101.0/24"));
        assert_eq!(
            cfg.network_of("2001:db8:1:2::1".parse().unwrap()),
            "2001:db8:1::/48"
        );
        // Membership agrees with the prefix, without formatting one.
        assert!(cfg.in_network("198.51.100.0/24", "198.51.100.250".parse().unwrap()));
        assert!(!cfg.in_network("198.51.100.0/24", "198.51.101.1".parse().unwrap()));
        assert!(!cfg.in_network("198.51.0.0/16", "198.51.100.1".parse().unwrap()));
        assert!(!cfg.in_network("garbage", "198.51.100.1".parse().unwrap()));
    }

    #[test]
    fn new_country_signal_without_travel_when_time_allows() {
        let cfg = RiskConfig::default();
        let (p, devices) = learned(&cfg);
        let loc = new_york();
        // A day later: a flight is plausible, a new country is still a signal.
        let r = assess(
            &p,
            &devices,
            &known(&loc),
            &settings(0.5),
            &cfg,
            t0().plus(24 * HOUR),
        );
        assert!(r.has(SignalKind::NewCountry));
        assert!(!r.has(SignalKind::ImpossibleTravel));
    }

    #[test]
    fn impossible_travel_an_hour_after_another_continent() {
        let cfg = RiskConfig::default();
        let (p, devices) = learned(&cfg);
        let loc = new_york();
        let a = Attempt {
            device_id: Some("phone"),
            ip: ip("203.0.113.5"),
            location: Some(&loc),
            recent_failures: 0,
        };
        let r = assess(&p, &devices, &a, &settings(0.5), &cfg, t0().plus(HOUR));
        assert!(r.has(SignalKind::ImpossibleTravel), "{r:?}");
        let reason = &r
            .signals
            .iter()
            .find(|s| s.kind == SignalKind::ImpossibleTravel)
            .unwrap()
            .reason;
        assert!(
            reason.contains("impossible travel") && reason.contains("FR to US"),
            "{reason}"
        );
        assert!(r.score > 0.9, "{}", r.score);
        assert_ne!(r.decision, RiskDecision::Allow);
        // The same move within France in an hour is a train ride, not a signal.
        let near = lyon();
        let r = assess(
            &p,
            &devices,
            &known(&near),
            &settings(0.5),
            &cfg,
            t0().plus(HOUR),
        );
        assert!(!r.has(SignalKind::ImpossibleTravel));
    }

    #[test]
    fn failure_velocity_signal() {
        let cfg = RiskConfig::default();
        let (p, devices) = learned(&cfg);
        let loc = paris();
        let a = Attempt {
            recent_failures: 2,
            ..known(&loc)
        };
        assert!(
            !assess(&p, &devices, &a, &settings(0.5), &cfg, t0()).has(SignalKind::FailureVelocity)
        );
        let a = Attempt {
            recent_failures: 3,
            ..known(&loc)
        };
        assert!(
            assess(&p, &devices, &a, &settings(0.5), &cfg, t0()).has(SignalKind::FailureVelocity)
        );
    }

    #[test]
    fn unusual_hour_signal_needs_a_history() {
        let cfg = RiskConfig::default();
        let (mut p, devices) = learned(&cfg);
        let loc = paris();
        let night = t0().plus(12 * HOUR); // 22:00 UTC
        assert!(
            !assess(&p, &devices, &known(&loc), &settings(0.5), &cfg, night)
                .has(SignalKind::UnusualHour)
        );
        for _ in 0..9 {
            p.learn(&known(&loc), &cfg, t0());
        }
        let r = assess(&p, &devices, &known(&loc), &settings(0.5), &cfg, night);
        assert!(r.has(SignalKind::UnusualHour), "{r:?}");
        // Two hours off the usual 10:00 is not unusual with a 3-hour gap.
        let near = t0().plus(2 * HOUR);
        assert!(
            !assess(&p, &devices, &known(&loc), &settings(0.5), &cfg, near)
                .has(SignalKind::UnusualHour)
        );
    }

    #[test]
    fn denied_networks_are_denied_even_without_anomaly_detection() {
        let cfg = RiskConfig {
            deny_networks: vec!["192.0.2.0/24".parse().unwrap()],
            ..RiskConfig::default()
        };
        let loc = paris();
        let a = Attempt {
            ip: ip("192.0.2.10"),
            ..known(&loc)
        };
        let mut s = settings(0.9);
        s.anomaly_detection_enabled = false;
        let r = assess(&RiskProfile::default(), &[], &a, &s, &cfg, t0());
        assert_eq!(r.decision, RiskDecision::Deny);
        assert!(r.has(SignalKind::DeniedNetwork));
    }

    #[test]
    fn disabled_anomaly_detection_ignores_anomalies() {
        let cfg = RiskConfig::default();
        let (p, devices) = learned(&cfg);
        let loc = new_york();
        let mut s = settings(0.1);
        s.anomaly_detection_enabled = false;
        let r = assess(&p, &devices, &known(&loc), &s, &cfg, t0().plus(HOUR));
        assert_eq!((r.score, r.decision), (0.0, RiskDecision::Allow));
    }

    #[test]
    fn decision_follows_the_users_threshold() {
        let cfg = RiskConfig::default();
        let (p, devices) = learned(&cfg);
        let loc = paris();
        let a = Attempt {
            device_id: Some("phone"),
            ip: ip("203.0.113.5"),
            ..known(&loc)
        };
        // new device + new network = 1 - 0.75 * 0.8 = 0.4
        let r = assess(&p, &devices, &a, &settings(0.5), &cfg, t0().plus(HOUR));
        assert!((r.score - 0.4).abs() < 1e-9, "{}", r.score);
        assert_eq!(r.decision, RiskDecision::Allow);
        let r = assess(&p, &devices, &a, &settings(0.3), &cfg, t0().plus(HOUR));
        assert_eq!(r.decision, RiskDecision::RequireMfa);
        assert_eq!(r.threshold, 0.3);
    }

    #[test]
    fn locations_are_validated() {
        assert!(Location::new("FRA", 0.0, 0.0).is_err());
        assert!(Location::new("F1", 0.0, 0.0).is_err());
        assert!(Location::new("FR", 91.0, 0.0).is_err());
        assert!(Location::new("FR", 0.0, -181.0).is_err());
        let d = paris().distance_km(&new_york());
        assert!((5800.0..5900.0).contains(&d), "{d}");
    }

    #[test]
    fn config_validation_names_the_key() {
        let mut c = RiskConfig::default();
        c.weights.new_country = 1.5;
        assert_eq!(c.validate().unwrap_err().field, "risk.weights.new_country");
        let c = RiskConfig {
            deny_score: 0.0,
            ..RiskConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "risk.deny_score");
    }
}
