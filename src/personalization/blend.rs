//! The blend's weights: how much each term of an item's score counts. The global blend
//! ([`Blend::GLOBAL`]) serves every user; a user's own model ([`super::custom`]) is a
//! blend fitted to its history, used for it only when it beats the global one.

use serde::{Deserialize, Serialize};

/// The global blend's weights (see [`super::recommend`]'s table).
pub(crate) const W_POPULARITY: f32 = 0.15;
pub(crate) const W_GENRE: f32 = 0.35;
pub(crate) const W_ARTIST: f32 = 0.5;
pub(crate) const W_COLLABORATIVE: f32 = 1.0;
pub(crate) const W_SOUND: f32 = 0.25;
pub(crate) const W_EMBEDDING: f32 = 0.25;
pub(crate) const W_CONTEXT: f32 = 0.3;
pub(crate) const W_MOOD: f32 = 0.3;
pub(crate) const W_MOMENT: f32 = 0.5;

/// The terms, in the order of [`Blend::as_array`].
pub const TERMS: [&str; 9] = [
    "popularity",
    "genre",
    "artist",
    "collaborative",
    "sound",
    "embedding",
    "context",
    "mood",
    "moment",
];

/// The least the popularity weight may be: a user's own model may learn that it goes
/// against the popular, never the other terms (each at least 0).
pub const MIN_POPULARITY: f32 = -1.0;

/// A weight per term: popularity at least [`MIN_POPULARITY`], the others at least 0.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Blend {
    /// The track's popularity (negative: the user goes against it).
    pub popularity: f32,
    /// The taste's weight of its genres.
    pub genre: f32,
    /// The user's share of its main artist.
    pub artist: f32,
    /// Its closeness to the tracks the user is for (the collaborative model).
    pub collaborative: f32,
    /// Its sound's closeness to the user's.
    pub sound: f32,
    /// Its content embedding's closeness to the heard tracks'.
    pub embedding: f32,
    /// Its closeness to the asked context.
    pub context: f32,
    /// Its closeness to the session's mood.
    pub mood: f32,
    /// Its closeness to what the user plays at this moment.
    pub moment: f32,
}

impl Blend {
    /// The blend every user is served by default.
    pub const GLOBAL: Self = Self {
        popularity: W_POPULARITY,
        genre: W_GENRE,
        artist: W_ARTIST,
        collaborative: W_COLLABORATIVE,
        sound: W_SOUND,
        embedding: W_EMBEDDING,
        context: W_CONTEXT,
        mood: W_MOOD,
        moment: W_MOMENT,
    };

    /// The weights in [`TERMS`] order.
    pub fn as_array(&self) -> [f32; 9] {
        [
            self.popularity,
            self.genre,
            self.artist,
            self.collaborative,
            self.sound,
            self.embedding,
            self.context,
            self.mood,
            self.moment,
        ]
    }

    /// The blend of weights in [`TERMS`] order, each brought within its bounds (a
    /// non-finite one counts 0).
    pub fn from_array(w: [f32; 9]) -> Self {
        let mut w = w.map(|x| if x.is_finite() { x } else { 0.0 });
        w[0] = w[0].max(MIN_POPULARITY);
        for x in &mut w[1..] {
            *x = x.max(0.0);
        }
        Self {
            popularity: w[0],
            genre: w[1],
            artist: w[2],
            collaborative: w[3],
            sound: w[4],
            embedding: w[5],
            context: w[6],
            mood: w[7],
            moment: w[8],
        }
    }
}

impl Default for Blend {
    fn default() -> Self {
        Self::GLOBAL
    }
}
