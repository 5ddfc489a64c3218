//! A user's taste, learned online in its actor from every play, like and skip: the
//! distinct tracks it heard lately (for "not played yet", for the collaborative model's
//! training and for "because you played X"), an average of the audio features and of the
//! genres of what it played and liked, moving at the user's own `learning_rate`, and its
//! current mood. A few hundred bytes; soft state, snapshotted with the history and kept
//! only under the user's consent to personalisation (dropped when it is withdrawn).
//!
//! **The update rule.** For an event on a catalog track with audio features `x` (each
//! scaled to 0–1 over its range) and genres `G`, with `η` the learning rate and a signal
//! strength `s` (play 1, like 2, skip −½), `r = min(1, η·|s|)`:
//! - play or like: `audio ← audio + r·(x − audio)` per known feature, and the genre mix
//!   `w ← (1 − r)·w + r·1/|G|` on each genre of `G`, `(1 − r)·w` on every other;
//! - skip: `w ← (1 − r)·w` on each genre of `G` only (evidence against them).
//!
//! After `k` plays of a new genre its weight is `1 − (1 − η)^k`: at `η = 0.5` two plays
//! give it 0.75, at `η = 0.05` it takes fourteen to pass one half. The mood follows the
//! session's plays with a fixed rate of its own, and is forgotten after two quiet hours.
//!
//! **Moments.** The energy and valence of what the user plays are also kept per
//! situation: each part of the day (by the play's UTC hour, so it matches a request's
//! hour whatever the user's zone) and the platform its app was last opened on (while the
//! session lasts). A moment's average is the running mean of its plays until that moves
//! slower than `η`, then follows at `η`. Every situation the user played in is kept
//! (at most twelve: four parts of the day, eight platforms), most plays first.

use serde::{Deserialize, Serialize};

use super::activity::{ActivityEvent, Platform};
use super::history::fnv1a;
use super::time::Timestamp;

/// Distinct tracks remembered, most recent last.
pub const HEARD_KEPT: usize = 24;

/// Genres weighed (the strongest; a weaker one is dropped for a new one).
pub const GENRES_KEPT: usize = 8;

/// The mood's rate: a handful of plays set it.
const MOOD_RATE: f64 = 0.35;

/// How long the mood outlives the session's last play or skip.
pub const MOOD_TTL_MINUTES: u32 = 120;

/// Situations whose sound can be kept: every part of the day and every platform (the
/// slice holds only those the user played in).
pub const MOMENTS_KEPT: usize = 4 + 8;

/// Most skips counted per track.
const MAX_SKIPS: u8 = 0x3f;

/// A track as the taste knows it: 48 bits of a fixed hash of its id (collisions are a
/// few in a billion pairs; the id itself is not kept).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
pub struct TrackKey([u8; 6]);

impl TrackKey {
    /// The key of a track id.
    pub fn of(id: &str) -> Self {
        let h = fnv1a(id.as_bytes()).to_le_bytes();
        Self([h[0], h[1], h[2], h[3], h[4], h[5]])
    }

    /// As a number (for maps).
    pub fn as_u64(self) -> u64 {
        let b = self.0;
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], 0, 0])
    }
}

/// The key of an artist or genre name (32 bits of the same hash).
pub fn name_key(name: &str) -> u32 {
    let h = fnv1a(name.as_bytes());
    (h ^ (h >> 32)) as u32
}

/// What the taste reads of a catalog track.
#[derive(Clone, Copy, Debug)]
pub struct Traits<'a> {
    /// Audio features scaled to 0–65,535 over their range
    /// ([`super::catalog::AudioFeatures::fields`] order).
    pub audio: [u16; 8],
    /// Which features are known (bit i: the i-th).
    pub known: u8,
    /// Its genres' [`name_key`]s.
    pub genres: &'a [u32],
}

/// Index of energy and valence among the audio features.
pub const ENERGY: usize = 1;
/// See [`ENERGY`].
pub const VALENCE: usize = 2;

/// One track heard lately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heard {
    /// The track.
    pub track: TrackKey,
    /// Plays (saturating at 255).
    pub plays: u8,
    /// Bit 7: liked; bits 0–5: skips.
    marks: u8,
}

impl Heard {
    /// Whether the user liked it.
    pub fn liked(&self) -> bool {
        self.marks & 0x80 != 0
    }

    /// Times skipped (at most 63 counted).
    pub fn skips(&self) -> u8 {
        self.marks & MAX_SKIPS
    }

    /// How much it tells of the user's taste: plays, a like worth three, a skip minus
    /// one and a half; positive means the user is for it.
    pub fn weight(&self) -> f32 {
        f32::from(self.plays) + if self.liked() { 3.0 } else { 0.0 } - 1.5 * f32::from(self.skips())
    }
}

/// A genre's share of the user's taste.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenreWeight {
    /// The genre's [`name_key`].
    pub genre: u32,
    /// Its weight, 0–65,535 for 0–1.
    pub weight: u16,
}

/// The mood of the current session: energy and valence of what was played.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoodState {
    /// Energy, 0–65,535.
    pub energy: u16,
    /// Valence, 0–65,535.
    pub valence: u16,
    /// Plays and skips it rests on (saturating).
    pub plays: u8,
    /// Of which skips.
    pub skips: u8,
    /// The last one's time, in minutes since 1970.
    pub at_minute: u32,
}

/// A label for the mood, from the quadrant of energy and valence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mood {
    /// Low energy, high valence.
    Calm,
    /// High energy, high valence.
    Upbeat,
    /// High energy, low valence.
    Intense,
    /// Low energy, low valence.
    Melancholic,
}

impl Mood {
    /// The mood's word in explanations.
    pub fn word(self) -> &'static str {
        match self {
            Self::Calm => "calm",
            Self::Upbeat => "upbeat",
            Self::Intense => "intense",
            Self::Melancholic => "melancholic",
        }
    }

    /// The (energy, valence) the mood is centred on, 0–1.
    pub fn centre(self) -> (f64, f64) {
        match self {
            Self::Calm => (0.25, 0.75),
            Self::Upbeat => (0.75, 0.75),
            Self::Intense => (0.75, 0.25),
            Self::Melancholic => (0.25, 0.25),
        }
    }
}

/// The taste (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taste {
    /// Distinct tracks heard lately, most recent last (at most [`HEARD_KEPT`]).
    pub heard: Box<[Heard]>,
    /// The average audio features of what was played and liked, 0–65,535 each.
    pub audio: [u16; 8],
    /// Which of them any played track had.
    pub audio_known: u8,
    /// The genre mix, strongest first (at most [`GENRES_KEPT`]).
    pub genres: Box<[GenreWeight]>,
    /// The session's mood.
    pub mood: MoodState,
    /// Events learned from.
    pub events: u32,
    /// The sound of what the user plays in each situation it played in (at most
    /// [`MOMENTS_KEPT`], most plays first). New in format 8.
    pub moments: Box<[Moment]>,
    /// The platform the app was last opened on, and the session's last event on it
    /// (minutes since 1970); it ends with the mood's quiet time.
    pub platform: Option<(Platform, u32)>,
}

/// A part of the day, by UTC hour: night 0–5, morning 6–11, afternoon 12–17, evening
/// 18–23.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Daypart {
    /// 0–5.
    Night,
    /// 6–11.
    Morning,
    /// 12–17.
    Afternoon,
    /// 18–23.
    Evening,
}

impl Daypart {
    /// The part an hour (0–23) falls in.
    pub fn of_hour(hour: u8) -> Self {
        match hour % 24 {
            0..=5 => Self::Night,
            6..=11 => Self::Morning,
            12..=17 => Self::Afternoon,
            _ => Self::Evening,
        }
    }

    /// The part a time falls in.
    pub fn of(t: Timestamp) -> Self {
        Self::of_hour(t.utc_hour())
    }

    /// Its words in explanations.
    pub fn words(self) -> &'static str {
        match self {
            Self::Night => "at night",
            Self::Morning => "in the morning",
            Self::Afternoon => "in the afternoon",
            Self::Evening => "in the evening",
        }
    }
}

/// A situation the user listens in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub enum Situation {
    /// A part of the day.
    Daypart(Daypart),
    /// A platform.
    Platform(Platform),
}

/// The sound of what the user plays in one situation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moment {
    /// The situation.
    pub situation: Situation,
    /// Energy, 0–65,535.
    pub energy: u16,
    /// Valence, 0–65,535.
    pub valence: u16,
    /// Plays it rests on (saturating).
    pub plays: u16,
}

fn minute_of(t: Timestamp) -> u32 {
    (t.as_millis().max(0) / 60_000).min(i64::from(u32::MAX)) as u32
}

fn toward(v: u16, target: u16, r: f64) -> u16 {
    let v = f64::from(v);
    (v + r * (f64::from(target) - v))
        .round()
        .clamp(0.0, 65_535.0) as u16
}

impl Taste {
    /// Learns from one event; `traits` is the track's, if it is in the catalog (an
    /// unknown track is remembered as heard, and teaches nothing else). Events other
    /// than plays, likes and skips are ignored.
    pub fn learn(&mut self, event: &ActivityEvent, traits: Option<Traits<'_>>, rate: f64) {
        let (track, signal) = match event {
            ActivityEvent::AppOpened { platform, at } => {
                let minute = minute_of(*at);
                // A late one from a backlog does not replace the live session's.
                if self.platform.is_none_or(|(_, last)| minute >= last) {
                    self.platform = Some((*platform, minute));
                }
                return;
            }
            ActivityEvent::TrackPlayed { track_id, .. } => (track_id, 1.0),
            ActivityEvent::TrackLiked { track_id, .. } => (track_id, 2.0),
            ActivityEvent::TrackSkipped { track_id, .. } => (track_id, -0.5),
            _ => return,
        };
        self.events = self.events.saturating_add(1);
        self.hear(TrackKey::of(track), event);
        let platform = self.platform_at(minute_of(event.at()));
        let Some(t) = traits else {
            return;
        };
        let r = (rate * f64::abs(signal)).clamp(0.0, 1.0);
        if signal > 0.0 {
            for i in 0..8 {
                if t.known & (1 << i) != 0 {
                    self.audio[i] = if self.audio_known & (1 << i) == 0 {
                        t.audio[i]
                    } else {
                        toward(self.audio[i], t.audio[i], r)
                    };
                }
            }
            self.audio_known |= t.known;
            self.mix_genres(t.genres, r);
            self.sense_moments(event.at(), platform, &t, rate);
        } else {
            self.weaken_genres(t.genres, r);
        }
        self.sense_mood(event.at(), &t, signal < 0.0);
    }

    fn hear(&mut self, track: TrackKey, event: &ActivityEvent) {
        let mut heard = std::mem::take(&mut self.heard).into_vec();
        let mut h = match heard.iter().position(|h| h.track == track) {
            Some(i) => heard.remove(i),
            None => {
                if heard.len() >= HEARD_KEPT {
                    // The oldest not liked goes first; if all are, the oldest.
                    let i = heard.iter().position(|h| !h.liked()).unwrap_or(0);
                    heard.remove(i);
                }
                Heard {
                    track,
                    plays: 0,
                    marks: 0,
                }
            }
        };
        match event {
            ActivityEvent::TrackPlayed { .. } => h.plays = h.plays.saturating_add(1),
            ActivityEvent::TrackLiked { .. } => h.marks |= 0x80,
            _ => h.marks = (h.marks & 0x80) | (h.skips() + 1).min(MAX_SKIPS),
        }
        heard.push(h);
        self.heard = heard.into_boxed_slice();
    }

    fn mix_genres(&mut self, genres: &[u32], r: f64) {
        let mut mix: Vec<(u32, f64)> = self
            .genres
            .iter()
            .map(|g| (g.genre, f64::from(g.weight) / 65_535.0 * (1.0 - r)))
            .collect();
        let share = r / genres.len().max(1) as f64;
        for g in genres {
            match mix.iter_mut().find(|(k, _)| k == g) {
                Some((_, w)) => *w += share,
                None => mix.push((*g, share)),
            }
        }
        self.set_genres(mix);
    }

    fn weaken_genres(&mut self, genres: &[u32], r: f64) {
        let mix = self
            .genres
            .iter()
            .map(|g| {
                let w = f64::from(g.weight) / 65_535.0;
                (
                    g.genre,
                    if genres.contains(&g.genre) {
                        w * (1.0 - r)
                    } else {
                        w
                    },
                )
            })
            .collect();
        self.set_genres(mix);
    }

    fn set_genres(&mut self, mut mix: Vec<(u32, f64)>) {
        mix.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        mix.truncate(GENRES_KEPT);
        self.genres = mix
            .into_iter()
            .map(|(genre, w)| GenreWeight {
                genre,
                weight: (w * 65_535.0).round().clamp(0.0, 65_535.0) as u16,
            })
            .filter(|g| g.weight > 0)
            .collect();
    }

    fn sense_mood(&mut self, at: Timestamp, t: &Traits<'_>, skipped: bool) {
        let both = (1 << ENERGY) | (1 << VALENCE);
        if t.known & both != both {
            return;
        }
        let minute = minute_of(at);
        let m = &mut self.mood;
        if minute < m.at_minute {
            // A late event from a client's backlog: the session has moved on.
            return;
        }
        if minute - m.at_minute > MOOD_TTL_MINUTES {
            *m = MoodState::default();
        }
        m.at_minute = minute;
        m.plays = m.plays.saturating_add(1);
        if skipped {
            m.skips = m.skips.saturating_add(1);
            return;
        }
        if m.plays == 1 || m.plays == m.skips + 1 {
            m.energy = t.audio[ENERGY];
            m.valence = t.audio[VALENCE];
        } else {
            m.energy = toward(m.energy, t.audio[ENERGY], MOOD_RATE);
            m.valence = toward(m.valence, t.audio[VALENCE], MOOD_RATE);
        }
    }

    /// The session's platform for an event at `minute` (every play, like or skip keeps
    /// the session alive; two quiet hours end it; a late event from a backlog is not
    /// the session's).
    fn platform_at(&mut self, minute: u32) -> Option<Platform> {
        match self.platform {
            Some((p, last)) if minute >= last && minute - last <= MOOD_TTL_MINUTES => {
                self.platform = Some((p, minute));
                Some(p)
            }
            Some((_, last)) if minute < last => None,
            _ => {
                self.platform = None;
                None
            }
        }
    }

    fn sense_moments(
        &mut self,
        at: Timestamp,
        platform: Option<Platform>,
        t: &Traits<'_>,
        rate: f64,
    ) {
        let both = (1 << ENERGY) | (1 << VALENCE);
        if t.known & both != both {
            return;
        }
        let mut moments = std::mem::take(&mut self.moments).into_vec();
        let situations = [
            Some(Situation::Daypart(Daypart::of(at))),
            platform.map(Situation::Platform),
        ];
        for s in situations.into_iter().flatten() {
            let i = match moments.iter().position(|m| m.situation == s) {
                Some(i) => i,
                None => {
                    moments.push(Moment {
                        situation: s,
                        energy: t.audio[ENERGY],
                        valence: t.audio[VALENCE],
                        plays: 0,
                    });
                    moments.len() - 1
                }
            };
            let m = &mut moments[i];
            m.plays = m.plays.saturating_add(1);
            let r = (1.0 / f64::from(m.plays)).max(rate).min(1.0);
            m.energy = toward(m.energy, t.audio[ENERGY], r);
            m.valence = toward(m.valence, t.audio[VALENCE], r);
        }
        moments.sort_by_key(|m| std::cmp::Reverse(m.plays));
        self.moments = moments.into_boxed_slice();
    }

    /// The user's sound in a situation: energy and valence (0–1) and the plays they rest
    /// on.
    pub fn moment(&self, s: Situation) -> Option<(f64, f64, u16)> {
        self.moments.iter().find(|m| m.situation == s).map(|m| {
            (
                f64::from(m.energy) / 65_535.0,
                f64::from(m.valence) / 65_535.0,
                m.plays,
            )
        })
    }

    /// The mood at `now`, if the session's plays (at least three, not all skips) are
    /// recent enough to say: the label, and energy and valence (0–1).
    pub fn mood_at(&self, now: Timestamp) -> Option<(Mood, f64, f64)> {
        let m = &self.mood;
        let played = m.plays.saturating_sub(m.skips);
        if played < 3 || minute_of(now).saturating_sub(m.at_minute) > MOOD_TTL_MINUTES {
            return None;
        }
        let (e, v) = (
            f64::from(m.energy) / 65_535.0,
            f64::from(m.valence) / 65_535.0,
        );
        let mood = match (e >= 0.5, v >= 0.5) {
            (false, true) => Mood::Calm,
            (true, true) => Mood::Upbeat,
            (true, false) => Mood::Intense,
            (false, false) => Mood::Melancholic,
        };
        Some((mood, e, v))
    }

    /// A genre's weight, 0–1 (0 if it is not among the strongest).
    pub fn genre_weight(&self, genre: u32) -> f64 {
        self.genres
            .iter()
            .find(|g| g.genre == genre)
            .map_or(0.0, |g| f64::from(g.weight) / 65_535.0)
    }

    /// Whether the user heard (played, liked or skipped) the track lately.
    pub fn has_heard(&self, track: TrackKey) -> bool {
        self.heard.iter().any(|h| h.track == track)
    }

    /// Bytes it takes, with what it points to.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + std::mem::size_of_val(&*self.heard)
            + std::mem::size_of_val(&*self.genres)
            + std::mem::size_of_val(&*self.moments)
    }
}

#[cfg(test)]
mod tests;
