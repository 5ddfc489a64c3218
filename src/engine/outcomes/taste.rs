//! What personalization learned of a user, as its export shows it.

use serde::Serialize;

use crate::domain::catalog::AudioFeatures;
use crate::domain::taste::{Mood, Taste};
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
        }
    }
}
