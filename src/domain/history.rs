//! A user's activity history, compact enough to live in its actor: one bucket per active
//! day for the last [`DAYS_KEPT`] days, older days folded into weekly buckets (kept for
//! [`WEEKS_KEPT`] weeks), plays by hour of day, lifetime totals, first and last activity,
//! and how often each tier feature was used.
//!
//! Days and weeks are UTC: day `d` is the `d`-th day since 1970-01-01, a week starts on a
//! Monday. The horizon moves with the newest event recorded, not with a clock, so the
//! shape is a pure function of the events (in any order): an event older than the day
//! window lands straight in its week, one older than the week window only in the totals.
//! Soft state in the durability contract's sense: snapshotted on the sweep, on
//! passivation and at shutdown (imported history is written at once).

use serde::{Deserialize, Serialize};

use super::activity::ActivityEvent;
use super::time::Timestamp;

mod packed;
pub use packed::Buckets;

/// Days kept one bucket each (five weeks, so that a whole month is at day resolution).
pub const DAYS_KEPT: u32 = 35;

/// Weeks kept one bucket each beyond the day window (two years).
pub const WEEKS_KEPT: u32 = 104;

const DAY_MS: i64 = 86_400_000;

/// Bits of the per-bucket sketch of distinct tracks (linear counting).
const SKETCH_BITS: f64 = 64.0;

/// The day (since 1970-01-01, UTC) of a time.
pub fn day_of(t: Timestamp) -> u32 {
    t.as_millis()
        .div_euclid(DAY_MS)
        .clamp(0, i64::from(u32::MAX)) as u32
}

/// The Monday starting the week of `day`. 1970-01-01 was a Thursday.
pub fn week_start(day: u32) -> u32 {
    day - ((day + 3) % 7).min(day)
}

/// The start of day `day`.
pub fn day_start(day: u32) -> Timestamp {
    Timestamp::from_millis(i64::from(day) * DAY_MS)
}

/// The day of a `YYYY-MM-DD` date (UTC), if it is one, from 1970-01-01.
pub fn parse_day(text: &str) -> Option<u32> {
    let date: jiff::civil::Date = text.trim().parse().ok()?;
    let at = date.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    u32::try_from(at.as_second().div_euclid(86_400)).ok()
}

/// The `YYYY-MM-DD` date of day `day` (UTC).
pub fn format_day(day: u32) -> String {
    let t = day_start(day).to_string();
    t.get(..10).unwrap_or(&t).to_owned()
}

/// What happened on one day, or in one week. Counts saturate (at 65,535 a day).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Bucket {
    /// The day (days since 1970-01-01, UTC); for a weekly bucket, its Monday.
    pub day: u32,
    /// The weekdays with activity, bit 0 = Monday: one bit for a day's bucket, up to
    /// seven for a week's.
    pub weekdays: u8,
    /// Tracks played.
    pub plays: u16,
    /// Tracks skipped.
    pub skips: u16,
    /// Tracks liked.
    pub likes: u16,
    /// Searches.
    pub searches: u16,
    /// App opens.
    pub app_opens: u16,
    /// Playlists created.
    pub playlists: u16,
    /// Tier features used.
    pub features_used: u16,
    /// Recommendations shown.
    pub recs_shown: u16,
    /// Recommendations followed.
    pub recs_clicked: u16,
    /// Seconds listened.
    pub listening_secs: u32,
    /// A 64-bit linear-counting sketch of the distinct tracks involved (see
    /// [`Bucket::distinct_tracks`]); the ids themselves are not kept.
    pub tracks: u64,
}

fn bump(c: &mut u16) {
    *c = c.saturating_add(1);
}

impl Bucket {
    fn new(day: u32) -> Self {
        Self {
            day,
            ..Self::default()
        }
    }

    /// Days with activity in it.
    pub fn active_days(&self) -> u32 {
        self.weekdays.count_ones()
    }

    fn count(&mut self, e: &ActivityEvent) {
        let day = day_of(e.at());
        self.weekdays |= 1 << (day - week_start(day));
        match e {
            ActivityEvent::TrackPlayed { duration_ms, .. } => {
                bump(&mut self.plays);
                let secs = u32::try_from(duration_ms / 1000).unwrap_or(u32::MAX);
                self.listening_secs = self.listening_secs.saturating_add(secs);
            }
            ActivityEvent::TrackSkipped { .. } => bump(&mut self.skips),
            ActivityEvent::TrackLiked { .. } => bump(&mut self.likes),
            ActivityEvent::Searched { .. } => bump(&mut self.searches),
            ActivityEvent::AppOpened { .. } => bump(&mut self.app_opens),
            ActivityEvent::PlaylistCreated { .. } => bump(&mut self.playlists),
            ActivityEvent::FeatureUsed { .. } => bump(&mut self.features_used),
            ActivityEvent::RecommendationShown { .. } => bump(&mut self.recs_shown),
            ActivityEvent::RecommendationClicked { .. } => bump(&mut self.recs_clicked),
        }
        if let Some(t) = e.track_id() {
            self.tracks |= 1 << (fnv1a(t.as_bytes()) % 64);
        }
    }

    /// Adds another bucket's counts (a day folded into its week, or a sum over a window;
    /// the weekdays of a sum over several weeks mean nothing, see [`Span`]).
    pub fn absorb(&mut self, o: &Bucket) {
        self.weekdays |= o.weekdays;
        for (a, b) in [
            (&mut self.plays, o.plays),
            (&mut self.skips, o.skips),
            (&mut self.likes, o.likes),
            (&mut self.searches, o.searches),
            (&mut self.app_opens, o.app_opens),
            (&mut self.playlists, o.playlists),
            (&mut self.features_used, o.features_used),
            (&mut self.recs_shown, o.recs_shown),
            (&mut self.recs_clicked, o.recs_clicked),
        ] {
            *a = a.saturating_add(b);
        }
        self.listening_secs = self.listening_secs.saturating_add(o.listening_secs);
        self.tracks |= o.tracks;
    }

    /// The estimated number of distinct tracks (linear counting over 64 bits: exact-ish
    /// for a handful, within about 10% up to ~100, a floor of ~266 once saturated).
    pub fn distinct_tracks(&self) -> u32 {
        let zeros = f64::from(64 - self.tracks.count_ones()).max(1.0);
        (-SKETCH_BITS * (zeros / SKETCH_BITS).ln()).round() as u32
    }

    /// How many of the six kinds of things a user does itself it did: play, like,
    /// search, open the app, create a playlist, use a feature.
    pub fn kinds_used(&self) -> u32 {
        [
            self.plays,
            self.likes,
            self.searches,
            self.app_opens,
            self.playlists,
            self.features_used,
        ]
        .iter()
        .filter(|c| **c > 0)
        .count() as u32
    }
}

/// FNV-1a: a fixed, seedless hash, so a track lands on the same sketch bit in every
/// process (the sketch is stored).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The activity of a window of days (see [`ActivityHistory::window`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// The counts summed (its `weekdays` mean nothing).
    pub sum: Bucket,
    /// Days with activity.
    pub active_days: u32,
}

/// Lifetime counts (never folded, never dropped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Totals {
    /// Tracks played.
    pub plays: u64,
    /// Tracks skipped.
    pub skips: u64,
    /// Tracks liked.
    pub likes: u64,
    /// Searches.
    pub searches: u64,
    /// App opens.
    pub app_opens: u64,
    /// Playlists created.
    pub playlists: u64,
    /// Tier features used.
    pub features_used: u64,
    /// Recommendations shown.
    pub recs_shown: u64,
    /// Recommendations followed.
    pub recs_clicked: u64,
    /// Milliseconds listened.
    pub listening_ms: u64,
}

/// How often one tier feature was used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeatureUse {
    /// The feature.
    pub feature: String,
    /// Times used.
    pub count: u64,
    /// Latest use.
    pub last_used_at: Timestamp,
}

/// A user's activity history (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActivityHistory {
    /// One bucket per active day, oldest first, within [`DAYS_KEPT`] of the newest.
    #[schema(value_type = Vec<Bucket>)]
    pub days: Buckets,
    /// One bucket per active week before the day window, oldest first.
    #[schema(value_type = Vec<Bucket>)]
    pub weeks: Buckets,
    /// Plays by hour of day (UTC), halved together whenever one would overflow, so the
    /// shape stays and old habits weigh less.
    #[schema(value_type = Vec<u16>)]
    pub hours: [u16; 24],
    /// Lifetime counts.
    pub totals: Totals,
    /// The earliest event's time.
    pub first_active: Option<Timestamp>,
    /// The latest event's time.
    pub last_active: Option<Timestamp>,
    /// Tier features used, by feature (a slice of its exact length: a few entries at
    /// most, one added at a user's first use of a feature).
    #[schema(value_type = Vec<FeatureUse>)]
    pub features: Box<[FeatureUse]>,
}

impl ActivityHistory {
    /// Counts checked events.
    pub fn record(&mut self, events: &[ActivityEvent]) {
        if events.is_empty() {
            return;
        }
        // The buckets are unpacked once for the batch; the weeks only if it reaches
        // them.
        let mut open = Open {
            days: self.days.to_vec(),
            weeks: None,
        };
        for e in events {
            self.record_one(&mut open, e);
        }
        self.days = Buckets::pack(&open.days);
        if let Some(weeks) = open.weeks {
            self.weeks = Buckets::pack(&weeks);
        }
    }

    fn record_one(&mut self, open: &mut Open, e: &ActivityEvent) {
        let at = e.at();
        let day = day_of(at);
        let last = open.days.last().map(|b| b.day);
        let newest = last.map_or(day, |l| l.max(day));
        if day + DAYS_KEPT > newest {
            bucket_for(&mut open.days, day, e);
            // Only a new newest day moves the windows.
            if last.is_some_and(|l| day > l) {
                let weeks = open.weeks.get_or_insert_with(|| self.weeks.to_vec());
                fold(&mut open.days, weeks, newest);
            }
        } else if week_start(day) + 7 * WEEKS_KEPT > week_start(newest) {
            let weeks = open.weeks.get_or_insert_with(|| self.weeks.to_vec());
            bucket_for(weeks, week_start(day), e);
        }
        self.total(e);
        if self.first_active.is_none_or(|f| at < f) {
            self.first_active = Some(at);
        }
        if self.last_active.is_none_or(|l| at > l) {
            self.last_active = Some(at);
        }
    }

    fn total(&mut self, e: &ActivityEvent) {
        let t = &mut self.totals;
        match e {
            ActivityEvent::TrackPlayed {
                duration_ms, at, ..
            } => {
                t.plays += 1;
                t.listening_ms = t.listening_ms.saturating_add(*duration_ms);
                let hour = usize::from(at.utc_hour());
                if self.hours[hour] == u16::MAX {
                    self.hours.iter_mut().for_each(|h| *h /= 2);
                }
                self.hours[hour] += 1;
            }
            ActivityEvent::TrackSkipped { .. } => t.skips += 1,
            ActivityEvent::TrackLiked { .. } => t.likes += 1,
            ActivityEvent::Searched { .. } => t.searches += 1,
            ActivityEvent::AppOpened { .. } => t.app_opens += 1,
            ActivityEvent::PlaylistCreated { .. } => t.playlists += 1,
            ActivityEvent::FeatureUsed { feature, at } => {
                t.features_used += 1;
                match self.features.iter_mut().find(|f| &f.feature == feature) {
                    Some(f) => {
                        f.count += 1;
                        f.last_used_at = f.last_used_at.max(*at);
                    }
                    None => {
                        let mut all = std::mem::take(&mut self.features).into_vec();
                        all.push(FeatureUse {
                            feature: feature.clone(),
                            count: 1,
                            last_used_at: *at,
                        });
                        self.features = all.into_boxed_slice();
                    }
                }
            }
            ActivityEvent::RecommendationShown { .. } => t.recs_shown += 1,
            ActivityEvent::RecommendationClicked { .. } => t.recs_clicked += 1,
        }
    }

    /// The sum of the buckets in days `[from, to)`: day buckets exactly, weekly buckets
    /// only if the whole week lies in the window (so a window reaching past the day
    /// window has week resolution, and nothing from `to` on ever counts).
    pub fn window(&self, from: u32, to: u32) -> Span {
        let [span] = self.windows([(from, to)]);
        span
    }

    /// [`window`](Self::window) for several windows, in one pass over the buckets.
    pub fn windows<const N: usize>(&self, ranges: [(u32, u32); N]) -> [Span; N] {
        let mut spans = ranges.map(|(from, _)| Span {
            sum: Bucket::new(from),
            active_days: 0,
        });
        let mut add = |b: &Bucket, len: u32| {
            for (span, (from, to)) in spans.iter_mut().zip(ranges) {
                if b.day >= from && u64::from(b.day) + u64::from(len) <= u64::from(to) {
                    span.sum.absorb(b);
                    span.active_days += b.active_days();
                }
            }
        };
        self.weeks.iter().for_each(|b| add(&b, 7));
        self.days.iter().for_each(|b| add(&b, 1));
        spans
    }

    /// The last day with activity before day `before` (the last active weekday of a
    /// week, where only its week is known; a week reaching `before` does not count).
    pub fn last_active_day_before(&self, before: u32) -> Option<u32> {
        if let Some(b) = self.days.iter().take_while(|b| b.day < before).last() {
            return Some(b.day);
        }
        self.weeks
            .iter()
            .take_while(|b| b.day + 7 <= before)
            .filter(|b| b.weekdays != 0)
            .last()
            .map(|b| b.day + (7 - b.weekdays.leading_zeros()))
    }

    /// Whether there was activity in days `[from, to)` (weeks wholly inside only).
    pub fn active_between(&self, from: u32, to: u32) -> bool {
        self.weeks.iter().any(|b| b.day >= from && b.day + 7 <= to)
            || self.days.iter().any(|b| (from..to).contains(&b.day))
    }

    /// The lifetime counters in the shape insights and exports have always had.
    pub fn counters(&self) -> ActivityCounters {
        ActivityCounters {
            tracks_played: self.totals.plays,
            tracks_skipped: self.totals.skips,
            tracks_liked: self.totals.likes,
            searches: self.totals.searches,
            listening_ms: self.totals.listening_ms,
            last_activity_at: self.last_active,
        }
    }
}

impl From<ActivityCounters> for ActivityHistory {
    /// History from the counters of formats 2–4, which kept no days.
    fn from(c: ActivityCounters) -> Self {
        Self {
            totals: Totals {
                plays: c.tracks_played,
                skips: c.tracks_skipped,
                likes: c.tracks_liked,
                searches: c.searches,
                listening_ms: c.listening_ms,
                ..Totals::default()
            },
            // Formats 2–4 kept only the latest event's time.
            first_active: None,
            last_active: c.last_activity_at,
            ..Self::default()
        }
    }
}

/// The buckets of [`ActivityHistory::record`] while it counts a batch.
struct Open {
    days: Vec<Bucket>,
    weeks: Option<Vec<Bucket>>,
}

/// Moves the days that fell out of the day window into their weeks, and drops weeks
/// that fell out of the week window.
fn fold(days: &mut Vec<Bucket>, weeks: &mut Vec<Bucket>, newest: u32) {
    let keep_from = (newest + 1).saturating_sub(DAYS_KEPT);
    let old = days.partition_point(|b| b.day < keep_from);
    for d in days.drain(..old) {
        let w = week_start(d.day);
        match weeks.binary_search_by_key(&w, |b| b.day) {
            Ok(i) => weeks[i].absorb(&d),
            Err(i) => weeks.insert(i, Bucket { day: w, ..d }),
        }
    }
    let weeks_from = week_start(newest).saturating_sub(7 * (WEEKS_KEPT - 1));
    let gone = weeks.partition_point(|b| b.day < weeks_from);
    weeks.drain(..gone);
}

/// Counts `e` into the bucket starting on `day` in the sorted `buckets`.
fn bucket_for(buckets: &mut Vec<Bucket>, day: u32, e: &ActivityEvent) {
    let i = match buckets.binary_search_by_key(&day, |b| b.day) {
        Ok(i) => i,
        Err(i) => {
            buckets.insert(i, Bucket::new(day));
            i
        }
    };
    buckets[i].count(e);
}

/// Lifetime counts of the four kinds the first formats knew, with the latest event
/// (the `activity` of insights and exports; stored by formats 2–4).
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
mod tests;
