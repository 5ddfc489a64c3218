//! The risk scorer against learned login histories: known and new devices, networks, places and hours.

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
        denied: None,
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
        denied: None,
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
        denied: None,
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
        denied: None,
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
        denied: None,
        ..known(&loc)
    };
    assert!(!assess(&p, &devices, &a, &settings(0.5), &cfg, t0()).has(SignalKind::FailureVelocity));
    let a = Attempt {
        recent_failures: 3,
        denied: None,
        ..known(&loc)
    };
    assert!(assess(&p, &devices, &a, &settings(0.5), &cfg, t0()).has(SignalKind::FailureVelocity));
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
    // An operator's runtime entry denies the same way, naming its reason.
    let entry = crate::domain::denylist::DeniedNetwork {
        network: "198.51.100.0/24".parse().unwrap(),
        reason: "botnet".into(),
        added_by: "operator".into(),
        added_at: t0(),
        expires_at: None,
    };
    let runtime = Attempt {
        denied: Some(&entry),
        ..known(&loc)
    };
    let r = assess(
        &RiskProfile::default(),
        &[],
        &runtime,
        &s,
        &RiskConfig::default(),
        t0(),
    );
    assert_eq!(r.decision, RiskDecision::Deny);
    assert!(
        r.signals.iter().any(|x| x.reason.contains("botnet")),
        "{r:?}"
    );
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
