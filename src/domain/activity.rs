//! Listening activity reported by clients (over the event socket) and the counters the
//! user's actor keeps from it for analytics and personalisation.
//!
//! Data minimisation: a search is counted, its text is never received; a track is
//! referred to by the client's own id, which is checked and not kept.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::time::Timestamp;
use super::validation::{ValidationError, text};

/// Most events one `activity` frame may carry.
pub(crate) const MAX_EVENTS_PER_FRAME: usize = 100;

/// How far in the future an event's time may be (client clock skew).
const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// How old an event may be (a client that was offline flushes its backlog).
const MAX_AGE: Duration = Duration::from_secs(30 * 86_400);

/// Longest play or position counted for one event.
const MAX_TRACK_MS: u64 = 24 * 3_600_000;

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
}

impl ActivityEvent {
    fn at(&self) -> Timestamp {
        match self {
            ActivityEvent::TrackPlayed { at, .. }
            | ActivityEvent::TrackSkipped { at, .. }
            | ActivityEvent::TrackLiked { at, .. }
            | ActivityEvent::Searched { at } => *at,
        }
    }

    /// Checks one event at `now`; `index` names it in the error.
    fn check(&self, index: usize, now: Timestamp) -> Result<(), ValidationError> {
        let field = |f: &str| format!("events[{index}].{f}");
        let at = self.at();
        if at > now.plus(MAX_SKEW) {
            return Err(ValidationError::new(field("at"), "is in the future"));
        }
        if now.since(at) > MAX_AGE {
            return Err(ValidationError::new(field("at"), "is older than 30 days"));
        }
        let (track, ms) = match self {
            ActivityEvent::TrackPlayed {
                track_id,
                duration_ms,
                ..
            } => (Some(track_id), Some(("duration_ms", *duration_ms))),
            ActivityEvent::TrackSkipped {
                track_id,
                position_ms,
                ..
            } => (Some(track_id), Some(("position_ms", *position_ms))),
            ActivityEvent::TrackLiked { track_id, .. } => (Some(track_id), None),
            ActivityEvent::Searched { .. } => (None, None),
        };
        if let Some(t) = track {
            text(&field("track_id"), t, 128)?;
        }
        if let Some((name, v)) = ms
            && v > MAX_TRACK_MS
        {
            return Err(ValidationError::new(field(name), "is longer than 24 hours"));
        }
        Ok(())
    }
}

/// Checks a frame's events: 1 to [`MAX_EVENTS_PER_FRAME`], each valid. All or nothing.
pub(crate) fn check_batch(events: &[ActivityEvent], now: Timestamp) -> Result<(), ValidationError> {
    if events.is_empty() {
        return Err(ValidationError::new("events", "must not be empty"));
    }
    if events.len() > MAX_EVENTS_PER_FRAME {
        return Err(ValidationError::new(
            "events",
            format!("at most {MAX_EVENTS_PER_FRAME} events per frame"),
        ));
    }
    events
        .iter()
        .enumerate()
        .try_for_each(|(i, e)| e.check(i, now))
}

/// What the actor counts from activity events (soft state: snapshotted on the sweep).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActivityCounters {
    /// Tracks played.
    pub tracks_played: u64,
    /// Tracks skipped.
    pub tracks_skipped: u64,
    /// Tracks liked.
    pub tracks_liked: u64,
    /// Searches made.
    pub searches: u64,
    /// Total listening time, in milliseconds.
    pub listening_ms: u64,
    /// The latest event's time.
    pub last_activity_at: Option<Timestamp>,
}

impl ActivityCounters {
    /// Counts checked events.
    pub fn record(&mut self, events: &[ActivityEvent]) {
        for e in events {
            match e {
                ActivityEvent::TrackPlayed { duration_ms, .. } => {
                    self.tracks_played += 1;
                    self.listening_ms = self.listening_ms.saturating_add(*duration_ms);
                }
                ActivityEvent::TrackSkipped { .. } => self.tracks_skipped += 1,
                ActivityEvent::TrackLiked { .. } => self.tracks_liked += 1,
                ActivityEvent::Searched { .. } => self.searches += 1,
            }
            let at = e.at();
            if self.last_activity_at.is_none_or(|l| l < at) {
                self.last_activity_at = Some(at);
            }
        }
    }

    /// Share of started tracks that were skipped (0 when nothing was played).
    pub fn skip_rate(&self) -> f64 {
        let total = self.tracks_played + self.tracks_skipped;
        if total == 0 {
            0.0
        } else {
            self.tracks_skipped as f64 / total as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);

    fn parse(json: &str) -> Result<Vec<ActivityEvent>, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn counts_each_kind() {
        let at = NOW.to_string();
        let events = parse(&format!(
            r#"[{{"kind":"track_played","track_id":"t1","at":"{at}","duration_ms":1000}},
                {{"kind":"track_skipped","track_id":"t2","at":"{at}","position_ms":5}},
                {{"kind":"track_liked","track_id":"t1","at":"{at}"}},
                {{"kind":"searched","at":"{at}"}}]"#
        ))
        .unwrap();
        check_batch(&events, NOW).unwrap();
        let mut c = ActivityCounters::default();
        c.record(&events);
        assert_eq!(
            (
                c.tracks_played,
                c.tracks_skipped,
                c.tracks_liked,
                c.searches
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(c.listening_ms, 1000);
        assert_eq!(c.last_activity_at, Some(NOW));
        assert!((c.skip_rate() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn bad_events_name_the_field() {
        let future = NOW.plus(Duration::from_secs(3600));
        let e = vec![
            ActivityEvent::Searched { at: NOW },
            ActivityEvent::Searched { at: future },
        ];
        assert_eq!(check_batch(&e, NOW).unwrap_err().field, "events[1].at");
        let e = vec![ActivityEvent::TrackLiked {
            track_id: " ".into(),
            at: NOW,
        }];
        assert_eq!(
            check_batch(&e, NOW).unwrap_err().field,
            "events[0].track_id"
        );
        let e = vec![ActivityEvent::TrackPlayed {
            track_id: "x".into(),
            at: NOW,
            duration_ms: MAX_TRACK_MS + 1,
        }];
        assert_eq!(
            check_batch(&e, NOW).unwrap_err().field,
            "events[0].duration_ms"
        );
        assert!(check_batch(&[], NOW).is_err());
        assert!(parse(r#"[{"kind":"hummed","at":"2026-01-01T00:00:00Z"}]"#).is_err());
    }
}
