//! What personalization learned of a user, as its export shows it.

use serde::Serialize;

use crate::domain::activity::Platform;
use crate::domain::catalog::AudioFeatures;
use crate::domain::feedback::ListFeedback;
use crate::domain::settings::PersonalizationLevel;
use crate::domain::taste::{Daypart, Mood, Situation, Taste};
use crate::personalization::Index;

/// The taste in an export (`docs/export.md`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TasteExport {
    /// Tracks heard lately, most recent last.
    pub heard: Vec<HeardExport>,
    /// The genre mix, strongest first.
    pub genres: Vec<GenreExport>,
    /// The average audio features of what was played and liked.
    pub audio: AudioFeatures,
    /// The session's mood when exported, if there is one.
    pub mood: Option<MoodExport>,
    /// Plays, likes and skips learned from.
    pub events: u32,
    /// The sound of what the user plays at each part of the day and on each platform.
    pub moments: Vec<MomentExport>,
}

/// The user's sound in one situation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MomentExport {
    /// The part of the day (UTC), if the moment is one.
    pub daypart: Option<Daypart>,
    /// The platform, if the moment is one.
    pub platform: Option<Platform>,
    /// Energy, 0–1.
    pub energy: f64,
    /// Valence, 0–1.
    pub valence: f64,
    /// Plays it rests on.
    pub plays: u16,
}

/// Recommendations shown to the user and followed, for one kind of list.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FeedbackExport {
    /// The level the lists were made at.
    pub level: PersonalizationLevel,
    /// Whether bias mitigation re-ranked them.
    pub bias_mitigation: bool,
    /// Items shown.
    pub shown: u32,
    /// Items followed.
    pub clicked: u32,
}

impl FeedbackExport {
    /// The export of a user's feedback.
    pub(crate) fn of(f: &ListFeedback) -> Vec<Self> {
        f.counts()
            .into_iter()
            .map(|c| Self {
                level: c.tag.level(),
                bias_mitigation: c.tag.mitigated(),
                shown: c.shown,
                clicked: c.clicked,
            })
            .collect()
    }
}

/// One heard track.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HeardExport {
    /// The 48-bit key Roster keeps instead of the track's id (hex).
    pub track_key: String,
    /// The catalog track of that key, if the catalog has it.
    pub track_id: Option<String>,
    /// Plays.
    pub plays: u8,
    /// Skips.
    pub skips: u8,
    /// Whether it was liked.
    pub liked: bool,
}

/// One genre of the mix.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GenreExport {
    /// The genre (its key in hex if no catalog track has it now).
    pub genre: String,
    /// Its share, 0–1.
    pub weight: f64,
}

/// The mood in an export.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MoodExport {
    /// Its label.
    pub mood: Mood,
    /// Energy, 0–1.
    pub energy: f64,
    /// Valence, 0–1.
    pub valence: f64,
}

impl TasteExport {
    /// The export of `t`, naming what the catalog in `index` knows.
    pub(crate) fn of(t: &Taste, index: &Index, now: crate::domain::time::Timestamp) -> Self {
        Self {
            heard: t
                .heard
                .iter()
                .map(|h| HeardExport {
                    track_key: format!("{:012x}", h.track.as_u64()),
                    track_id: index.item_of(h.track).map(|i| index.id(i).to_string()),
                    plays: h.plays,
                    skips: h.skips(),
                    liked: h.liked(),
                })
                .collect(),
            genres: t
                .genres
                .iter()
                .map(|g| GenreExport {
                    genre: index
                        .name_of(g.genre)
                        .map_or_else(|| format!("{:08x}", g.genre), |n| n.to_string()),
                    weight: f64::from(g.weight) / 65_535.0,
                })
                .collect(),
            audio: AudioFeatures::from_quantized(t.audio, t.audio_known),
            mood: t.mood_at(now).map(|(mood, energy, valence)| MoodExport {
                mood,
                energy,
                valence,
            }),
            events: t.events,
            moments: t
                .moments
                .iter()
                .map(|m| {
                    let (daypart, platform) = match m.situation {
                        Situation::Daypart(d) => (Some(d), None),
                        Situation::Platform(p) => (None, Some(p)),
                    };
                    MomentExport {
                        daypart,
                        platform,
                        energy: f64::from(m.energy) / 65_535.0,
                        valence: f64::from(m.valence) / 65_535.0,
                        plays: m.plays,
                    }
                })
                .collect(),
        }
    }
}
