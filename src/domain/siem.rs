//! Security events as a SIEM reads them: one JSON object per event with a stable schema
//! (`roster.security_event/1`), its field names taken from OCSF where one fits — `time`,
//! `time_dt`, `class_uid`/`class_name`, `activity_name`, `status`, `severity_id`/
//! `severity`, `message`, `user.uid`, `session.uid`, `src_endpoint.ip` and
//! `.location`, `device.uid`, `metadata` — and Roster's own under `roster` (the risk
//! assessment, the factor, the event's kind). New fields may be added; none is renamed
//! or removed within the schema's version.

use serde::Serialize;

use super::ids::UserId;
use super::security_log::{SecurityEvent, SecurityEventKind};
use super::time::Timestamp;

/// The schema's name and version, in every record.
pub const SCHEMA: &str = "roster.security_event/1";

/// One exported event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SiemEvent {
    /// See [`SCHEMA`].
    pub schema: &'static str,
    /// When, in milliseconds since the epoch (OCSF `time`).
    pub time: i64,
    /// The same, RFC 3339 (OCSF `time_dt`).
    pub time_dt: Timestamp,
    /// OCSF class: 3002 Authentication, 3001 Account Change, 3003 Authorize Session.
    pub class_uid: u32,
    /// The class's name.
    pub class_name: &'static str,
    /// What happened (Roster's event kind).
    pub activity_name: &'static str,
    /// `Success`, `Failure` or `Other`.
    pub status: &'static str,
    /// OCSF severity: 1 informational, 2 low, 3 medium, 4 high.
    pub severity_id: u8,
    /// Its name.
    pub severity: &'static str,
    /// Detail in words, when there is any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The account.
    pub user: Uid,
    /// The session concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<Uid>,
    /// Where the client was.
    pub src_endpoint: Endpoint,
    /// The client's device id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<Uid>,
    /// The product and the event's unique id (`<user>:<seq>`).
    pub metadata: Metadata,
    /// Roster's own fields.
    pub roster: Detail,
}

/// An object known by its id (OCSF `uid`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Uid {
    /// Its id.
    pub uid: String,
}

/// The client's side (OCSF `src_endpoint`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Endpoint {
    /// Its address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Where it was, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<GeoLocation>,
}

/// OCSF `location`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GeoLocation {
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// Degrees north.
    pub lat: f64,
    /// Degrees east.
    pub long: f64,
}

/// OCSF `metadata`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metadata {
    /// `<user>:<seq>`: the same event exported twice has the same id.
    pub uid: String,
    /// The product.
    pub product: Product,
}

/// OCSF `product`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Product {
    /// `Roster`.
    pub name: &'static str,
    /// The version that exported it.
    pub version: &'static str,
}

/// Roster's fields.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Detail {
    /// The event's kind.
    pub kind: SecurityEventKind,
    /// The user's sequence number of the event.
    pub seq: u64,
    /// The second factor involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor: Option<super::mfa::SecondFactor>,
    /// The risk score in [0, 1].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_score: Option<f64>,
    /// The risk engine's decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_decision: Option<super::risk::RiskDecision>,
    /// The signals that raised it, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub risk_signals: Vec<String>,
}

/// The OCSF class, status and severity of a kind of event.
fn classify(kind: SecurityEventKind) -> (u32, &'static str, &'static str, u8) {
    use SecurityEventKind as K;
    const AUTH: (u32, &str) = (3002, "Authentication");
    const ACCOUNT: (u32, &str) = (3001, "Account Change");
    const SESSION: (u32, &str) = (3003, "Authorize Session");
    let ((class, name), status, severity) = match kind {
        K::LoginSucceeded | K::StepUp | K::RecoveryCodeUsed => (AUTH, "Success", 1),
        K::LoginChallenged => (AUTH, "Other", 1),
        K::LoginFailed | K::MfaFailed => (AUTH, "Failure", 2),
        K::LoginLocked | K::MfaReplayed => (AUTH, "Failure", 3),
        K::LoginDenied => (AUTH, "Failure", 4),
        K::MfaEnrolled | K::RecoveryCodesRegenerated | K::PasswordChanged => {
            (ACCOUNT, "Success", 1)
        }
        K::MfaRemoved | K::AccountUnlocked => (ACCOUNT, "Success", 2),
        K::AccountLocked | K::PasswordResetRequired => (ACCOUNT, "Success", 3),
        K::SessionRevoked => (SESSION, "Other", 1),
        K::SessionContextChanged => (SESSION, "Other", 2),
        K::SessionBindingViolated => (SESSION, "Failure", 4),
    };
    (class, name, status, severity)
}

fn severity_name(id: u8) -> &'static str {
    match id {
        1 => "Informational",
        2 => "Low",
        3 => "Medium",
        _ => "High",
    }
}

impl SiemEvent {
    /// `event` of `user` in the export's form.
    pub fn of(user: UserId, event: &SecurityEvent) -> Self {
        let (class_uid, class_name, status, severity_id) = classify(event.kind);
        Self {
            schema: SCHEMA,
            time: event.at.as_millis(),
            time_dt: event.at,
            class_uid,
            class_name,
            activity_name: event.kind.as_str(),
            status,
            severity_id,
            severity: severity_name(severity_id),
            message: event.detail.clone(),
            user: Uid {
                uid: user.to_string(),
            },
            session: event.session_id.map(|s| Uid { uid: s.to_string() }),
            src_endpoint: Endpoint {
                ip: event.ip_address.map(|ip| ip.to_string()),
                location: event.location.as_ref().map(|l| GeoLocation {
                    country: l.country.clone(),
                    lat: l.latitude,
                    long: l.longitude,
                }),
            },
            device: event.device_id.clone().map(|uid| Uid { uid }),
            metadata: Metadata {
                uid: format!("{user}:{}", event.seq),
                product: Product {
                    name: "Roster",
                    version: env!("CARGO_PKG_VERSION"),
                },
            },
            roster: Detail {
                kind: event.kind,
                seq: event.seq,
                factor: event.factor,
                risk_score: event.risk.as_ref().map(|r| r.score),
                risk_decision: event.risk.as_ref().map(|r| r.decision),
                risk_signals: event
                    .risk
                    .iter()
                    .flat_map(|r| r.signals.iter())
                    .map(|s| s.kind.as_str().to_owned())
                    .collect(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_exports_with_ocsf_names_and_a_stable_id() {
        let user = UserId::generate();
        let mut e = SecurityEvent::new(
            SecurityEventKind::LoginDenied,
            Timestamp::from_millis(1_800_000_000_000),
        );
        e.seq = 7;
        e.ip_address = Some("203.0.113.5".parse().unwrap());
        e.device_id = Some("phone".into());
        e.detail = Some("impossible travel".into());
        let v = serde_json::to_value(SiemEvent::of(user, &e)).unwrap();
        assert_eq!(v["schema"], SCHEMA);
        assert_eq!(v["time"], 1_800_000_000_000i64);
        assert_eq!(v["time_dt"], "2027-01-15T08:00:00.000Z");
        assert_eq!(
            (v["class_uid"].as_u64(), v["status"].as_str()),
            (Some(3002), Some("Failure"))
        );
        assert_eq!(
            (v["severity_id"].as_u64(), v["severity"].as_str()),
            (Some(4), Some("High"))
        );
        assert_eq!(v["activity_name"], "login_denied");
        assert_eq!(v["user"]["uid"], user.to_string());
        assert_eq!(v["src_endpoint"]["ip"], "203.0.113.5");
        assert_eq!(v["device"]["uid"], "phone");
        assert_eq!(v["metadata"]["uid"], format!("{user}:7"));
        assert_eq!(v["message"], "impossible travel");
        assert!(v.get("session").is_none(), "absent, not null: {v}");
        // Every kind has a class.
        for kind in [
            SecurityEventKind::LoginSucceeded,
            SecurityEventKind::MfaRemoved,
            SecurityEventKind::SessionBindingViolated,
        ] {
            assert!(classify(kind).0 >= 3001);
        }
    }
}
