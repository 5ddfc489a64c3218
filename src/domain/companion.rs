//! A desktop companion's link: the creative tools with no web API (Ableton Live, Logic
//! Pro, FL Studio) are linked by a per-link API key that a small companion on the
//! user's machine keeps, and with which it pushes what happened in the tool — sessions
//! worked and exports made — to `POST /api/v1/integrations/{provider}/events`.
//!
//! The key is `rck_` + base64url(user id ‖ 32 random bytes): the user's id finds the
//! actor, which keeps only the SHA-256 of the random part (as the link's access
//! token) and compares it in constant time. Linking again makes a new key; the old one
//! stops working. Each event carries the companion's own id, so a push retried after a
//! lost answer counts nothing twice.

use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::ids::UserId;
use super::time::Timestamp;
use super::validation::ValidationError;

/// What every companion key starts with.
pub const KEY_PREFIX: &str = "rck_";
/// Bytes of a key's random part.
pub const KEY_SECRET_LEN: usize = 32;
/// Events in one push at most.
pub const MAX_EVENTS: usize = 100;
/// The longest session counted.
const MAX_SESSION: Duration = Duration::from_secs(86_400);
/// How far ahead of the server's clock an event may be (a companion's clock drifts).
const SKEW: Duration = Duration::from_secs(300);
/// Event ids remembered per link, for retries.
const SEEN: usize = 512;
/// Longest event id.
const MAX_ID: usize = 64;
/// The refusal of anything that is not a live companion key (the same words for every
/// case, so a caller learns nothing of which).
pub const UNKNOWN_KEY: &str =
    "the companion key is unknown or was replaced; link the companion again";

/// A new key for `user`: the key to hand the companion, and the hash to keep.
pub fn new_key(user: UserId) -> (String, String) {
    let mut secret = [0u8; KEY_SECRET_LEN];
    rand::fill(&mut secret);
    let mut raw = Vec::with_capacity(16 + KEY_SECRET_LEN);
    raw.extend_from_slice(user.as_bytes());
    raw.extend_from_slice(&secret);
    let key = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    (key, key_hash(&secret))
}

/// The user a key names and the hash of its random part; `None` for what is not a key.
pub fn read_key(key: &str) -> Option<(UserId, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key.trim().strip_prefix(KEY_PREFIX)?)
        .ok()?;
    if raw.len() != 16 + KEY_SECRET_LEN {
        return None;
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&raw[..16]);
    Some((UserId::from_bytes(id), key_hash(&raw[16..])))
}

/// The hex SHA-256 of a key's random part: what the link keeps.
fn key_hash(secret: &[u8]) -> String {
    super::hex::encode(&sha2::Sha256::digest(secret))
}

/// One thing a companion reports. Fields it sends beyond these are ignored (a newer
/// companion may say more).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CreativeEvent {
    /// The user worked in the tool from `started_at` to `ended_at`.
    Session {
        /// The companion's id of the event (1–64 characters), the same on a retry.
        id: String,
        /// When the session began.
        started_at: Timestamp,
        /// When it ended (at most 24 hours later).
        ended_at: Timestamp,
    },
    /// The user exported (rendered) a piece.
    Export {
        /// The companion's id of the event.
        id: String,
        /// When.
        at: Timestamp,
        /// How long the piece is.
        #[serde(default)]
        duration_ms: u64,
    },
}

impl CreativeEvent {
    /// The companion's id of it.
    pub fn id(&self) -> &str {
        match self {
            Self::Session { id, .. } | Self::Export { id, .. } => id,
        }
    }

    /// When it happened (a session: when it ended).
    pub fn at(&self) -> Timestamp {
        match self {
            Self::Session { ended_at, .. } => *ended_at,
            Self::Export { at, .. } => *at,
        }
    }

    /// Whether it may be counted at `now` for an account created at `created`: `field`
    /// prefixes the names in errors (`events[3].`).
    fn check(
        &self,
        field: &str,
        now: Timestamp,
        created: Timestamp,
    ) -> Result<(), ValidationError> {
        let f = |name: &str| format!("{field}{name}");
        let id = self.id();
        if id.is_empty() || id.chars().count() > MAX_ID || id.chars().any(char::is_control) {
            return Err(ValidationError::new(
                f("id"),
                format!("must be 1-{MAX_ID} characters"),
            ));
        }
        let (start, at_name) = match self {
            Self::Session { started_at, .. } => (*started_at, "started_at"),
            Self::Export { at, .. } => (*at, "at"),
        };
        if start < created {
            return Err(ValidationError::new(
                f(at_name),
                "is before the account was created",
            ));
        }
        if self.at() > now.plus(SKEW) {
            let name = if matches!(self, Self::Session { .. }) {
                "ended_at"
            } else {
                "at"
            };
            return Err(ValidationError::new(f(name), "is in the future"));
        }
        match self {
            Self::Session {
                started_at,
                ended_at,
                ..
            } if ended_at < started_at || ended_at.since(*started_at) > MAX_SESSION => Err(
                ValidationError::new(f("ended_at"), "must be after started_at, at most 24 hours"),
            ),
            Self::Export { duration_ms, .. } if *duration_ms > MAX_SESSION.as_millis() as u64 => {
                Err(ValidationError::new(
                    f("duration_ms"),
                    "is longer than 24 hours",
                ))
            }
            _ => Ok(()),
        }
    }
}

/// Checks a push: 1–[`MAX_EVENTS`] events, each well formed, all or none.
pub fn check_push(
    events: &[CreativeEvent],
    now: Timestamp,
    created: Timestamp,
) -> Result<(), ValidationError> {
    if events.is_empty() || events.len() > MAX_EVENTS {
        return Err(ValidationError::new(
            "events",
            format!("must hold 1-{MAX_EVENTS} events"),
        ));
    }
    for (i, e) in events.iter().enumerate() {
        e.check(&format!("events[{i}]."), now, created)?;
    }
    Ok(())
}

/// What a companion link has reported, counted (the events themselves are not kept).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreativeStats {
    /// Sessions reported.
    pub sessions: u32,
    /// Their time, in seconds.
    pub session_secs: u64,
    /// Exports reported.
    pub exports: u32,
    /// When the newest event happened.
    pub last_event_at: Option<Timestamp>,
    /// The ids of the newest events (a stable 64-bit hash of each), oldest first.
    seen: Vec<u64>,
}

/// What counting a push did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PushCounted {
    /// Events counted now.
    pub accepted: usize,
    /// Events counted by an earlier push (a retry).
    pub duplicates: usize,
}

/// What a push did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompanionOutcome {
    /// Counted.
    Counted(PushCounted),
    /// The tier's request rate is used up: nothing counted.
    RateLimited {
        /// Seconds until a request is allowed.
        retry_after_secs: u64,
        /// The tier's requests per hour.
        limit: u64,
    },
}

fn id_hash(id: &str) -> u64 {
    let d = sha2::Sha256::digest(id.as_bytes());
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

impl CreativeStats {
    /// Counts the events not counted before; answers the new ones' positions with the
    /// counts.
    pub fn record(&mut self, events: &[CreativeEvent]) -> (Vec<usize>, PushCounted) {
        let mut fresh = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let h = id_hash(e.id());
            if self.seen.contains(&h) {
                continue;
            }
            if self.seen.len() >= SEEN {
                self.seen.remove(0);
            }
            self.seen.push(h);
            fresh.push(i);
            match e {
                CreativeEvent::Session {
                    started_at,
                    ended_at,
                    ..
                } => {
                    self.sessions = self.sessions.saturating_add(1);
                    self.session_secs += ended_at.since(*started_at).as_secs();
                }
                CreativeEvent::Export { .. } => self.exports = self.exports.saturating_add(1),
            }
            self.last_event_at = self.last_event_at.max(Some(e.at()));
        }
        let counted = PushCounted {
            accepted: fresh.len(),
            duplicates: events.len() - fresh.len(),
        };
        (fresh, counted)
    }

    /// What a client sees of it.
    pub fn view(&self) -> CreativeView {
        CreativeView {
            sessions: self.sessions,
            session_minutes: self.session_secs / 60,
            exports: self.exports,
            last_event_at: self.last_event_at,
        }
    }
}

/// A companion link's counts, as the link list shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CreativeView {
    /// Sessions reported.
    pub sessions: u32,
    /// Their time, in minutes.
    pub session_minutes: u64,
    /// Exports reported.
    pub exports: u32,
    /// When the newest event happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000 + secs * 1000)
    }

    #[test]
    fn a_key_names_its_user_and_hashes_its_secret() {
        let user = UserId::from_bytes([5; 16]);
        let (key, hash) = new_key(user);
        assert!(key.starts_with(KEY_PREFIX));
        assert_eq!(read_key(&key), Some((user, hash.clone())));
        let (other, other_hash) = new_key(user);
        assert_ne!(other, key);
        assert_ne!(other_hash, hash);
        for bad in ["", "rck_", "rck_!!", "abc", &key[1..]] {
            assert_eq!(read_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn events_are_checked_and_counted_once() {
        let events: Vec<CreativeEvent> = serde_json::from_value(serde_json::json!([
            {"kind": "session", "id": "s1", "started_at": t(0).to_string(),
             "ended_at": t(3_600).to_string(), "project": "ignored"},
            {"kind": "export", "id": "e1", "at": t(3_700).to_string(), "duration_ms": 215_000},
        ]))
        .unwrap();
        let now = t(4_000);
        assert!(check_push(&events, now, t(-10)).is_ok());
        assert_eq!(
            check_push(&events, now, t(10)).unwrap_err().field,
            "events[0].started_at"
        );
        assert_eq!(
            check_push(&events, t(0), t(-10)).unwrap_err().field,
            "events[0].ended_at"
        );
        assert_eq!(check_push(&[], now, t(-10)).unwrap_err().field, "events");
        let long = CreativeEvent::Session {
            id: "s2".into(),
            started_at: t(0),
            ended_at: t(90_000),
        };
        assert_eq!(
            check_push(&[long], t(100_000), t(-10)).unwrap_err().field,
            "events[0].ended_at"
        );

        let mut stats = CreativeStats::default();
        let (fresh, counted) = stats.record(&events);
        assert_eq!(
            (fresh, counted.accepted, counted.duplicates),
            (vec![0, 1], 2, 0)
        );
        let (fresh, counted) = stats.record(&events);
        assert_eq!(
            (fresh.len(), counted.duplicates),
            (0, 2),
            "a retry counts nothing"
        );
        let v = stats.view();
        assert_eq!((v.sessions, v.session_minutes, v.exports), (1, 60, 1));
        assert_eq!(v.last_event_at, Some(t(3_700)));
    }
}
