//! A recommendations list, as the engine answers it.

use serde::Serialize;

use super::MoodExport;
use crate::domain::activity::Platform;
use crate::domain::settings::PersonalizationLevel;
use crate::domain::taste::Daypart;
use crate::personalization::quality::ListFigures;
use crate::personalization::{Activity, ItemReason};

/// A list of recommendations (`GET /users/{id}/recommendations`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Recommendations {
    /// Ranked catalog tracks.
    pub items: Vec<RecommendedItem>,
    /// How the list was made.
    pub model: ListCard,
    /// The list's exposure figures, with and without mitigation (operators, with
    /// `debug=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debug: Option<ListDebug>,
}

/// What an operator sees of how a list exposes the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ListDebug {
    /// The figures of the list served.
    pub served: ListFigures,
    /// The figures of the same list made without bias mitigation (when it was on).
    pub without_mitigation: Option<ListFigures>,
    /// The figures of the same list made with mitigation (when it was off).
    pub with_mitigation: Option<ListFigures>,
}

/// The context a list was made for (used at the `advanced` level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ListContext {
    /// What the listener is doing, if the call said.
    pub activity: Option<Activity>,
    /// The UTC hour the list is for: the call's `hour`, or the time of the call.
    pub hour: u8,
    /// Its part of the day.
    pub daypart: Daypart,
    /// The platform, if the call said.
    pub platform: Option<Platform>,
}

/// One recommended track.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RecommendedItem {
    /// The catalog track.
    pub track_id: String,
    /// Its blended score (comparable within a list only).
    pub score: f32,
    /// The id to send back with `recommendation_shown` and `recommendation_clicked`
    /// events; it names the level and whether mitigation was on (`r1.<level><0|1>.<n>`),
    /// so click-through is counted without keeping the lists.
    pub recommendation_id: String,
    /// Its score's largest terms, in words and as data (empty unless the user's
    /// `explanations_enabled`).
    pub reasons: Vec<ItemReason>,
}

/// How a list was made.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ListCard {
    /// The level the list was made at: the user's, capped by its tier's features, and
    /// `off` without the consent to personalisation.
    pub level: PersonalizationLevel,
    /// The level the user asked for in its preferences.
    pub preferred_level: PersonalizationLevel,
    /// The most the tier allows.
    pub tier_level: PersonalizationLevel,
    /// The signals used.
    pub signals: SignalsUsed,
    /// Whether bias mitigation re-ranked the list.
    pub bias_mitigation: bool,
    /// The collaborative model's version (none before a training).
    pub model_version: Option<u64>,
    /// The federated sound model's version whose weights scored the tracks' sound
    /// (0: the default, before any round; none when the taste's sound was not used).
    pub sound_version: Option<u64>,
    /// Tracks in the catalog.
    pub catalog_tracks: usize,
    /// The session's mood, when the mood signal was used and one is known.
    pub mood: Option<MoodExport>,
    /// The context it was made for.
    pub context: ListContext,
    /// Whose blend scored it: `global`, or `custom` (the user's own model).
    pub served_by: &'static str,
    /// The user's own model's version, when it served.
    pub custom_version: Option<u64>,
    /// Why that one served.
    pub served_because: String,
}

/// The signals a list used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SignalsUsed {
    /// Popularity (always).
    pub popularity: bool,
    /// The taste's genres.
    pub genres: bool,
    /// The heard tracks: their artists and the model's neighbours.
    pub history: bool,
    /// The online taste's sound and embedding, and the context (activity, the user's
    /// sound at this part of the day and on this platform).
    pub taste_and_context: bool,
    /// The session's mood.
    pub mood: bool,
}

/// What a training of the recommender reports as it goes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum RecommenderProgress {
    /// Users read so far, and how many of them it learns from (consenting, with a
    /// taste).
    Reading {
        /// Users read.
        users: u64,
        /// Of which learned from.
        learning_from: u64,
    },
    /// The share of tracks whose neighbours are found (0–1).
    Training {
        /// The share.
        share: f64,
    },
}

/// What a training of the recommender made (the model is in force once this returns).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RecommenderTrained {
    /// The model's version.
    pub version: u64,
    /// When it was trained.
    pub trained_at: crate::domain::time::Timestamp,
    /// Users it learned from.
    pub users: u64,
    /// The (user, track) pairs it learned from.
    pub interactions: u64,
    /// Catalog tracks it covers.
    pub tracks: usize,
    /// Tracks with at least one neighbour.
    pub tracks_with_neighbours: usize,
}
