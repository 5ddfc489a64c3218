//! The engagement score: 0–100 from five parts of a user's last four weeks, each part a
//! share in [0, 1] times its weight (the weights add up to 100).
//!
//! With `n` the day of `now` and the window the 28 days ending today:
//!
//! | part | weight | share |
//! |---|---|---|
//! | recency | 30 | `exp(−d / 7)`, `d` = whole days since the last active day (0 if never active) |
//! | frequency | 25 | `min(1, active days / 20)` |
//! | depth | 20 | `min(1, listening minutes per active day / 60)` |
//! | breadth | 10 | kinds of things done / 6 (play, like, search, open the app, make a playlist, use a feature) |
//! | trend | 15 | `a / (a + b)` with `a` the active days of the last 14 days and `b` of the 14 before (0 when both are 0; 0.5 is steady) |
//!
//! The score is the sum of the parts' points, rounded. Each part reports the measure it
//! came from, so a client can say "you listened 12 of the last 28 days".

use serde::Serialize;

use super::history::{ActivityHistory, day_of};
use super::time::Timestamp;

/// Days the score looks back on.
pub const WINDOW_DAYS: u32 = 28;

/// One part of the score.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Part {
    /// What was measured (days since, active days, minutes per day, kinds, or the trend
    /// share); `null` for the recency of a user never active.
    pub measure: Option<f64>,
    /// The share of the part's weight earned, in [0, 1].
    pub share: f64,
    /// The part's weight.
    pub weight: f64,
    /// `share × weight`.
    pub points: f64,
}

impl Part {
    fn new(measure: Option<f64>, share: f64, weight: f64) -> Self {
        let share = share.clamp(0.0, 1.0);
        Self {
            measure,
            share,
            weight,
            points: share * weight,
        }
    }
}

/// The five parts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Parts {
    /// Days since the last active day.
    pub recency: Part,
    /// Active days of the last 28.
    pub frequency: Part,
    /// Listening minutes per active day.
    pub depth: Part,
    /// Kinds of activity used.
    pub breadth: Part,
    /// Last 14 days against the 14 before.
    pub trend: Part,
}

/// A user's engagement score with its parts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Engagement {
    /// 0–100.
    pub score: u8,
    /// What it is made of.
    pub parts: Parts,
}

/// The score of `h` at `now`.
pub fn score(h: &ActivityHistory, now: Timestamp) -> Engagement {
    let end = day_of(now) + 1;
    let from = end.saturating_sub(WINDOW_DAYS);
    let mid = end.saturating_sub(WINDOW_DAYS / 2);
    let [w, recent, earlier] = h.windows([(from, end), (mid, end), (from, mid)]);
    let recency = match h.last_active_day_before(end) {
        Some(d) => {
            let days = f64::from(end - 1 - d);
            Part::new(Some(days), (-days / 7.0).exp(), 30.0)
        }
        None => Part::new(None, 0.0, 30.0),
    };
    let active = f64::from(w.active_days);
    let frequency = Part::new(Some(active), active / 20.0, 25.0);
    let minutes = if w.active_days == 0 {
        0.0
    } else {
        f64::from(w.sum.listening_secs) / 60.0 / active
    };
    let depth = Part::new(Some(minutes), minutes / 60.0, 20.0);
    let kinds = f64::from(w.sum.kinds_used());
    let breadth = Part::new(Some(kinds), kinds / 6.0, 10.0);
    let (a, b) = (
        f64::from(recent.active_days),
        f64::from(earlier.active_days),
    );
    let t = if a + b == 0.0 { 0.0 } else { a / (a + b) };
    let trend = Part::new(Some(t), t, 15.0);
    let parts = Parts {
        recency,
        frequency,
        depth,
        breadth,
        trend,
    };
    let total = recency.points + frequency.points + depth.points + breadth.points + trend.points;
    Engagement {
        score: total.round().clamp(0.0, 100.0) as u8,
        parts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::activity::ActivityEvent;

    const DAY: i64 = 86_400_000;
    const TODAY: u32 = 20_420;

    fn now() -> Timestamp {
        Timestamp::from_millis(i64::from(TODAY) * DAY + 20 * 3_600_000)
    }

    fn on(day: u32, events: impl Fn(Timestamp) -> Vec<ActivityEvent>) -> Vec<ActivityEvent> {
        events(Timestamp::from_millis(i64::from(day) * DAY + 3_600_000))
    }

    fn play(at: Timestamp, minutes: u64) -> ActivityEvent {
        ActivityEvent::TrackPlayed {
            track_id: "t".into(),
            at,
            duration_ms: minutes * 60_000,
        }
    }

    #[test]
    fn nobody_scores_zero() {
        let e = score(&ActivityHistory::default(), now());
        assert_eq!(e.score, 0);
        assert_eq!(e.parts.recency.points, 0.0);
        assert_eq!(e.parts.recency.measure, None, "never active");
        assert_eq!(e.parts.trend.share, 0.0);
    }

    #[test]
    fn a_daily_hour_long_listener_of_everything_scores_full_marks_but_the_trend() {
        let mut h = ActivityHistory::default();
        for d in TODAY - 27..=TODAY {
            h.record(&on(d, |at| {
                vec![
                    play(at, 60),
                    ActivityEvent::TrackLiked {
                        track_id: "t".into(),
                        at,
                    },
                    ActivityEvent::Searched { at },
                    ActivityEvent::AppOpened {
                        at,
                        platform: crate::domain::activity::Platform::Ios,
                    },
                    ActivityEvent::PlaylistCreated { at },
                    ActivityEvent::FeatureUsed {
                        at,
                        feature: "ai_composer".into(),
                    },
                ]
            }));
        }
        let e = score(&h, now());
        let p = e.parts;
        assert_eq!(p.recency.measure, Some(0.0));
        assert_eq!(p.recency.points, 30.0);
        assert_eq!(
            (p.frequency.measure, p.frequency.points),
            (Some(28.0), 25.0)
        );
        assert_eq!((p.depth.measure, p.depth.points), (Some(60.0), 20.0));
        assert_eq!((p.breadth.measure, p.breadth.points), (Some(6.0), 10.0));
        // Steady: 14 days against 14.
        assert_eq!((p.trend.share, p.trend.points), (0.5, 7.5));
        assert_eq!(e.score, 93);
    }

    #[test]
    fn a_lapsing_listener_loses_recency_and_trend() {
        let mut h = ActivityHistory::default();
        // Ten days of 30 minutes, the last one 20 days ago.
        for d in TODAY - 29..=TODAY - 20 {
            h.record(&on(d, |at| vec![play(at, 30)]));
        }
        let e = score(&h, now());
        let p = e.parts;
        assert_eq!(p.recency.measure, Some(20.0));
        let recency = 30.0 * (-20.0f64 / 7.0).exp();
        assert!((p.recency.points - recency).abs() < 1e-9);
        // Days TODAY-27..=TODAY-20 are in the window: 8 of them.
        assert_eq!(p.frequency.measure, Some(8.0));
        assert!((p.frequency.points - 25.0 * 8.0 / 20.0).abs() < 1e-9);
        assert_eq!(p.depth.measure, Some(30.0));
        assert_eq!(p.depth.points, 10.0);
        assert!((p.breadth.points - 10.0 / 6.0).abs() < 1e-9);
        assert_eq!(p.trend.share, 0.0, "nothing in the last 14 days");
        let total = recency + 10.0 + 10.0 + 10.0 / 6.0;
        assert_eq!(f64::from(e.score), total.round());
        assert_eq!(e.score, 23);
    }
}
