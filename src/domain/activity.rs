//! Listening activity reported by clients (over the event socket or
//! `POST /api/v1/users/{id}/activity`), and the checks an event passes before it counts.
//! What the actor keeps from it is in [`history`](super::history).
//!
//! Data minimisation: a search is counted, its text is never received; a track is
//! referred to by the client's own id, which is checked and not kept (only a bit of a
//! per-day sketch of distinct tracks remembers it).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::time::Timestamp;
use super::validation::{ValidationError, text};

/// Most events one `activity` frame (or request) may carry.
pub(crate) const MAX_EVENTS_PER_FRAME: usize = 100;

/// Most events one line of a history import may carry.
pub const MAX_EVENTS_PER_IMPORT: usize = 1_000;

/// How far in the future an event's time may be (client clock skew).
const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// How old a live event may be (a client that was offline flushes its backlog). Imported
/// history may be older: anything after the user's creation.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(30 * 86_400);

/// Longest play or position counted for one event.
const MAX_TRACK_MS: u64 = 24 * 3_600_000;

/// Longest id of a track, a recommendation or a feature.
const MAX_ID: usize = 128;

/// The kind of client an app was opened on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// iPhone or iPad app.
    Ios,
    /// Android app.
    Android,
    /// Browser.
    Web,
    /// Desktop app.
    Desktop,
    /// Television or console.
    Tv,
    /// In-car system.
    Car,
    /// Smart speaker.
    Speaker,
    /// Anything else.
    Other,
}

impl Platform {
    /// Its name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ios => "ios",
            Self::Android => "android",
            Self::Web => "web",
            Self::Desktop => "desktop",
            Self::Tv => "tv",
            Self::Car => "car",
            Self::Speaker => "speaker",
            Self::Other => "other",
        }
    }
}

/// One thing the user did, as the client reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActivityEvent {
    /// A track was played for `duration_ms`.
    TrackPlayed {
        /// The client's id of the track (1–128 characters).
        track_id: String,
        /// When it happened.
        at: Timestamp,
        /// How long it played.
        duration_ms: u64,
    },
    /// A track was skipped at `position_ms`.
    TrackSkipped {
        /// The track.
        track_id: String,
        /// When.
        at: Timestamp,
        /// Where in the track.
        position_ms: u64,
    },
    /// A track was liked.
    TrackLiked {
        /// The track.
        track_id: String,
        /// When.
        at: Timestamp,
    },
    /// The user searched (the query itself is not sent).
    Searched {
        /// When.
        at: Timestamp,
    },
    /// The app was opened.
    AppOpened {
        /// When.
        at: Timestamp,
        /// On what.
        platform: Platform,
    },
    /// A playlist was created.
    PlaylistCreated {
        /// When.
        at: Timestamp,
    },
    /// A feature of the tier was used (one of the tier's `features`, e.g. `ai_composer`).
    FeatureUsed {
        /// When.
        at: Timestamp,
        /// The feature's name.
        feature: String,
    },
    /// A recommendation was shown to the user.
    RecommendationShown {
        /// When.
        at: Timestamp,
        /// The recommendation's id (as the recommendations answer gave it).
        recommendation_id: String,
        /// The recommended track, if the client knows it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        track_id: Option<String>,
    },
    /// A shown recommendation was followed.
    RecommendationClicked {
        /// When.
        at: Timestamp,
        /// The recommendation's id.
        recommendation_id: String,
        /// The recommended track, if the client knows it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        track_id: Option<String>,
    },
}

/// The kind of an event, without its data (for counting and idempotence keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// [`ActivityEvent::TrackPlayed`].
    Played,
    /// [`ActivityEvent::TrackSkipped`].
    Skipped,
    /// [`ActivityEvent::TrackLiked`].
    Liked,
    /// [`ActivityEvent::Searched`].
    Searched,
    /// [`ActivityEvent::AppOpened`].
    AppOpened,
    /// [`ActivityEvent::PlaylistCreated`].
    PlaylistCreated,
    /// [`ActivityEvent::FeatureUsed`].
    FeatureUsed,
    /// [`ActivityEvent::RecommendationShown`].
    RecommendationShown,
    /// [`ActivityEvent::RecommendationClicked`].
    RecommendationClicked,
}

/// What the checks of a batch need to know besides the events.
#[derive(Clone, Copy, Debug)]
pub struct EventRules<'a> {
    /// The check's time.
    pub now: Timestamp,
    /// The account's creation: no event precedes it.
    pub created_at: Timestamp,
    /// The oldest a live event may be (`None` for imported history).
    pub oldest: Option<Timestamp>,
    /// The features the user's tier unlocks (a `feature_used` must name one).
    pub features: &'a [String],
    /// Most events a batch may carry.
    pub max_events: usize,
}

impl<'a> EventRules<'a> {
    /// The rules for live events: at most [`MAX_AGE`] old, never before the account.
    pub fn live(now: Timestamp, created_at: Timestamp, features: &'a [String]) -> Self {
        let oldest = Timestamp::from_millis(now.as_millis() - MAX_AGE.as_millis() as i64);
        Self {
            now,
            created_at,
            oldest: Some(oldest),
            features,
            max_events: MAX_EVENTS_PER_FRAME,
        }
    }

    /// The rules for imported history: anything since the account's creation.
    pub fn imported(now: Timestamp, created_at: Timestamp, features: &'a [String]) -> Self {
        Self {
            now,
            created_at,
            oldest: None,
            features,
            max_events: MAX_EVENTS_PER_IMPORT,
        }
    }
}

impl ActivityEvent {
    /// When it happened.
    pub fn at(&self) -> Timestamp {
        match self {
            ActivityEvent::TrackPlayed { at, .. }
            | ActivityEvent::TrackSkipped { at, .. }
            | ActivityEvent::TrackLiked { at, .. }
            | ActivityEvent::Searched { at }
            | ActivityEvent::AppOpened { at, .. }
            | ActivityEvent::PlaylistCreated { at }
            | ActivityEvent::FeatureUsed { at, .. }
            | ActivityEvent::RecommendationShown { at, .. }
            | ActivityEvent::RecommendationClicked { at, .. } => *at,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> EventKind {
        match self {
            ActivityEvent::TrackPlayed { .. } => EventKind::Played,
            ActivityEvent::TrackSkipped { .. } => EventKind::Skipped,
            ActivityEvent::TrackLiked { .. } => EventKind::Liked,
            ActivityEvent::Searched { .. } => EventKind::Searched,
            ActivityEvent::AppOpened { .. } => EventKind::AppOpened,
            ActivityEvent::PlaylistCreated { .. } => EventKind::PlaylistCreated,
            ActivityEvent::FeatureUsed { .. } => EventKind::FeatureUsed,
            ActivityEvent::RecommendationShown { .. } => EventKind::RecommendationShown,
            ActivityEvent::RecommendationClicked { .. } => EventKind::RecommendationClicked,
        }
    }

    /// The track it is about, if any.
    pub fn track_id(&self) -> Option<&str> {
        match self {
            ActivityEvent::TrackPlayed { track_id, .. }
            | ActivityEvent::TrackSkipped { track_id, .. }
            | ActivityEvent::TrackLiked { track_id, .. } => Some(track_id),
            ActivityEvent::RecommendationShown { track_id, .. }
            | ActivityEvent::RecommendationClicked { track_id, .. } => track_id.as_deref(),
            _ => None,
        }
    }

    /// What makes an event the same event again in an import: its time, kind and track
    /// (or recommendation, or feature), hashed (FNV-1a, fixed across processes).
    pub fn fingerprint(&self) -> u64 {
        let subject = match self {
            ActivityEvent::FeatureUsed { feature, .. } => Some(feature.as_str()),
            ActivityEvent::RecommendationShown {
                recommendation_id, ..
            }
            | ActivityEvent::RecommendationClicked {
                recommendation_id, ..
            } => Some(recommendation_id.as_str()),
            _ => self.track_id(),
        };
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
            }
        };
        eat(&self.at().as_millis().to_be_bytes());
        eat(&[self.kind() as u8]);
        eat(subject.unwrap_or_default().as_bytes());
        h
    }

    /// Checks one event; `index` names it in the error.
    fn check(&self, index: usize, rules: &EventRules<'_>) -> Result<(), ValidationError> {
        let field = |f: &str| format!("events[{index}].{f}");
        let at = self.at();
        if at > rules.now.plus(MAX_SKEW) {
            return Err(ValidationError::new(field("at"), "is in the future"));
        }
        if at < rules.created_at {
            return Err(ValidationError::new(
                field("at"),
                format!("precedes the account (created {})", rules.created_at),
            ));
        }
        if rules.oldest.is_some_and(|o| at < o) {
            return Err(ValidationError::new(
                field("at"),
                "is more than 30 days old (an operator imports older history through \
                 /api/v1/admin/activity/import)",
            ));
        }
        if let Some(t) = self.track_id() {
            text(&field("track_id"), t, MAX_ID)?;
        }
        match self {
            ActivityEvent::TrackPlayed { duration_ms: v, .. }
            | ActivityEvent::TrackSkipped { position_ms: v, .. }
                if *v > MAX_TRACK_MS =>
            {
                let name = if matches!(self, ActivityEvent::TrackPlayed { .. }) {
                    "duration_ms"
                } else {
                    "position_ms"
                };
                Err(ValidationError::new(field(name), "is longer than 24 hours"))
            }
            ActivityEvent::FeatureUsed { feature, .. } => {
                text(&field("feature"), feature, MAX_ID)?;
                if rules.features.iter().any(|f| f == feature) {
                    Ok(())
                } else {
                    Err(ValidationError::new(
                        field("feature"),
                        format!(
                            "is not a feature of the user's tier (its features: {})",
                            rules.features.join(", ")
                        ),
                    ))
                }
            }
            ActivityEvent::RecommendationShown {
                recommendation_id, ..
            }
            | ActivityEvent::RecommendationClicked {
                recommendation_id, ..
            } => text(&field("recommendation_id"), recommendation_id, MAX_ID).map(drop),
            _ => Ok(()),
        }
    }
}

/// Checks a batch's events: 1 to `rules.max_events`, each valid. All or nothing.
pub(crate) fn check_batch(
    events: &[ActivityEvent],
    rules: &EventRules<'_>,
) -> Result<(), ValidationError> {
    if events.is_empty() {
        return Err(ValidationError::new("events", "must not be empty"));
    }
    if events.len() > rules.max_events {
        return Err(ValidationError::new(
            "events",
            format!("at most {} events at once", rules.max_events),
        ));
    }
    events
        .iter()
        .enumerate()
        .try_for_each(|(i, e)| e.check(i, rules))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);
    const CREATED: Timestamp = Timestamp::from_millis(1_700_000_000_000);

    fn features() -> Vec<String> {
        vec!["ai_composer".into()]
    }

    fn parse(json: &str) -> Result<Vec<ActivityEvent>, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn every_kind_parses_and_passes() {
        let at = NOW.to_string();
        let events = parse(&format!(
            r#"[{{"kind":"track_played","track_id":"t1","at":"{at}","duration_ms":1000}},
                {{"kind":"track_skipped","track_id":"t2","at":"{at}","position_ms":5}},
                {{"kind":"track_liked","track_id":"t1","at":"{at}"}},
                {{"kind":"searched","at":"{at}"}},
                {{"kind":"app_opened","at":"{at}","platform":"android"}},
                {{"kind":"playlist_created","at":"{at}"}},
                {{"kind":"feature_used","at":"{at}","feature":"ai_composer"}},
                {{"kind":"recommendation_shown","at":"{at}","recommendation_id":"r1","track_id":"t9"}},
                {{"kind":"recommendation_clicked","at":"{at}","recommendation_id":"r1"}}]"#
        ))
        .unwrap();
        let f = features();
        check_batch(&events, &EventRules::live(NOW, CREATED, &f)).unwrap();
        let kinds: Vec<_> = events.iter().map(ActivityEvent::kind).collect();
        assert_eq!(kinds.len(), 9);
        assert_eq!(kinds[4], EventKind::AppOpened);
        assert_eq!(events[7].track_id(), Some("t9"));
        assert_eq!(events[8].track_id(), None);
    }

    #[test]
    fn bad_events_name_the_field() {
        let f = features();
        let live = EventRules::live(NOW, CREATED, &f);
        let future = NOW.plus(Duration::from_secs(3600));
        let e = vec![
            ActivityEvent::Searched { at: NOW },
            ActivityEvent::Searched { at: future },
        ];
        assert_eq!(check_batch(&e, &live).unwrap_err().field, "events[1].at");
        let e = vec![ActivityEvent::TrackLiked {
            track_id: " ".into(),
            at: NOW,
        }];
        assert_eq!(
            check_batch(&e, &live).unwrap_err().field,
            "events[0].track_id"
        );
        let e = vec![ActivityEvent::TrackPlayed {
            track_id: "x".into(),
            at: NOW,
            duration_ms: MAX_TRACK_MS + 1,
        }];
        assert_eq!(
            check_batch(&e, &live).unwrap_err().field,
            "events[0].duration_ms"
        );
        let e = vec![ActivityEvent::FeatureUsed {
            at: NOW,
            feature: "time_travel".into(),
        }];
        let err = check_batch(&e, &live).unwrap_err();
        assert_eq!(err.field, "events[0].feature");
        assert!(err.reason.contains("ai_composer"), "{}", err.reason);
        let e = vec![ActivityEvent::RecommendationClicked {
            at: NOW,
            recommendation_id: String::new(),
            track_id: None,
        }];
        assert_eq!(
            check_batch(&e, &live).unwrap_err().field,
            "events[0].recommendation_id"
        );
        assert!(check_batch(&[], &live).is_err());
        assert!(parse(r#"[{"kind":"hummed","at":"2026-01-01T00:00:00Z"}]"#).is_err());
        assert!(
            parse(r#"[{"kind":"app_opened","at":"2026-01-01T00:00:00Z","platform":"fridge"}]"#)
                .is_err()
        );
    }

    #[test]
    fn live_events_are_recent_and_imported_ones_follow_the_account() {
        let f = features();
        let old = Timestamp::from_millis(NOW.as_millis() - 40 * 86_400_000);
        let e = vec![ActivityEvent::Searched { at: old }];
        assert!(check_batch(&e, &EventRules::live(NOW, CREATED, &f)).is_err());
        assert!(check_batch(&e, &EventRules::imported(NOW, CREATED, &f)).is_ok());
        let before = Timestamp::from_millis(CREATED.as_millis() - 1);
        let e = vec![ActivityEvent::Searched { at: before }];
        assert!(check_batch(&e, &EventRules::imported(NOW, CREATED, &f)).is_err());
        // A young account's live window starts at its creation.
        let young = Timestamp::from_millis(NOW.as_millis() - 86_400_000);
        let e = vec![ActivityEvent::Searched {
            at: Timestamp::from_millis(young.as_millis() - 1),
        }];
        assert!(check_batch(&e, &EventRules::live(NOW, young, &f)).is_err());
    }
}
