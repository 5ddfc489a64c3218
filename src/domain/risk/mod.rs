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
    /// The entry of the operators' runtime deny-list whose network holds the address.
    pub denied: Option<&'a super::denylist::DeniedNetwork>,
}

fn remember(list: &mut Vec<String>, item: &str, cap: usize) {
    list.retain(|x| x != item);
    list.push(item.to_owned());
    let excess = list.len().saturating_sub(cap);
    list.drain(..excess);
}

fn hour_of(t: Timestamp) -> usize {
    usize::from(t.utc_hour())
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
    if let Some(entry) = attempt.denied {
        add(
            SignalKind::DeniedNetwork,
            1.0,
            format!(
                "address in the network {} an operator denied: {}",
                entry.network, entry.reason
            ),
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
    let decision = if denied.is_some() || attempt.denied.is_some() || score >= cfg.deny_score {
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
mod tests;
