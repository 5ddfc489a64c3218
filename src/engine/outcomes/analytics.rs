//! The analytics engine's outcome types: the listening profile and days of insights,
//! a history import's line, the churn report and what a training made.

use serde::Serialize;

use super::GenreExport;
use crate::analytics::churn::ChurnPrediction;
use crate::domain::history::{ActivityHistory, Bucket, day_start};
use crate::domain::ids::UserId;
use crate::domain::taste::GenreWeight;
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;
use crate::personalization::Index;

/// When a user listens.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ListeningProfile {
    /// Plays by hour of day, UTC (index 0 = 00:00–00:59), as relative weights: older
    /// habits are halved away once a count would overflow.
    pub hours: Vec<u16>,
    /// The hour with the most plays, if any.
    pub peak_hour: Option<u8>,
    /// The earliest activity.
    pub first_active: Option<Timestamp>,
    /// The latest activity.
    pub last_active: Option<Timestamp>,
    /// The genres the user's taste leans to, strongest first (at most
    /// [`TOP_GENRES`]), named by the catalog; empty without the consent to
    /// personalisation, at level `off`, or before a catalog track was played.
    pub top_genres: Vec<GenreExport>,
}

/// How many genres a listening profile names.
pub const TOP_GENRES: usize = 5;

impl ListeningProfile {
    /// The profile of a history, with the genres of a taste named by `index` (a genre
    /// no catalog track has now is left out).
    pub fn of(h: &ActivityHistory, genres: &[GenreWeight], index: &Index) -> Self {
        let peak = (0..24)
            .max_by_key(|i| (h.hours[*i], std::cmp::Reverse(*i)))
            .filter(|i| h.hours[*i] > 0);
        Self {
            hours: h.hours.to_vec(),
            peak_hour: peak.map(|i| i as u8),
            first_active: h.first_active,
            last_active: h.last_active,
            top_genres: genres
                .iter()
                .filter_map(|g| {
                    index.name_of(g.genre).map(|name| GenreExport {
                        genre: name.to_string(),
                        weight: f64::from(g.weight) / 65_535.0,
                    })
                })
                .take(TOP_GENRES)
                .collect(),
        }
    }
}

/// One day of a user's activity.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DayActivity {
    /// The day's start (00:00 UTC).
    pub date: Timestamp,
    /// Tracks played.
    pub plays: u16,
    /// Minutes listened.
    pub listening_minutes: u32,
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
    pub recommendations_shown: u16,
    /// Recommendations followed.
    pub recommendations_clicked: u16,
    /// Distinct tracks (an estimate, see `docs/analytics.md`).
    pub distinct_tracks: u32,
}

impl From<&Bucket> for DayActivity {
    fn from(b: &Bucket) -> Self {
        Self {
            date: day_start(b.day),
            plays: b.plays,
            listening_minutes: b.listening_secs / 60,
            skips: b.skips,
            likes: b.likes,
            searches: b.searches,
            app_opens: b.app_opens,
            playlists: b.playlists,
            features_used: b.features_used,
            recommendations_shown: b.recs_shown,
            recommendations_clicked: b.recs_clicked,
            distinct_tracks: b.distinct_tracks(),
        }
    }
}

/// What became of one line of a history import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// Counted: `accepted` new events, `duplicates` already imported before.
    Imported {
        /// New events counted.
        accepted: usize,
        /// Events already imported (or repeated in the line), not counted again.
        duplicates: usize,
    },
    /// The user has not consented to analytics; nothing counted.
    ConsentRequired {
        /// Why, for the operator.
        reason: &'static str,
    },
}

/// A user the churn model flags, with its prediction.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AtRisk {
    /// The user.
    pub user_id: UserId,
    /// Its tier.
    pub tier: UserTier,
    /// The prediction with its reasons.
    pub prediction: ChurnPrediction,
}

/// How many users of a tier the churn model puts in a band.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BandCount {
    /// The tier.
    pub tier: UserTier,
    /// The band.
    pub band: crate::analytics::churn::Band,
    /// Its users.
    pub users: u64,
}

/// One stored version of the churn model, in brief.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ModelVersion {
    /// The version.
    pub version: u64,
    /// When it was trained.
    pub trained_at: Timestamp,
    /// Its held-out AUC.
    pub auc: f64,
    /// Rows it was fitted on.
    pub training_rows: u64,
    /// Whether it was good enough to be used.
    pub usable: bool,
}

impl ModelVersion {
    /// The brief of a model.
    pub fn of(m: &crate::analytics::churn::ChurnModel) -> Self {
        Self {
            version: m.version,
            trained_at: m.trained_at,
            auc: m.evaluation.auc,
            training_rows: m.training_rows,
            usable: m.usable,
        }
    }
}

/// `GET /admin/analytics/churn`: the model card and the users most at risk.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChurnReport {
    /// The model in force (its card: version, when, rows, metrics, coefficients);
    /// `null` before a usable model exists.
    pub model: Option<crate::analytics::churn::ChurnModel>,
    /// Every stored version, oldest first.
    pub versions: Vec<ModelVersion>,
    /// Users scored (consenting ones).
    pub scored: u64,
    /// Users scored, by tier and band (tiers in order, each band low to high; only
    /// the pairs with users).
    pub bands: Vec<BandCount>,
    /// The page of users most likely to churn, highest probability first.
    pub at_risk: Vec<AtRisk>,
}

/// What a training made.
#[derive(Debug, Clone, PartialEq)]
pub struct Trained {
    /// The churn model (in force if usable).
    pub churn: crate::analytics::churn::ChurnModel,
    /// The segmentation, unless fewer members were active than segments wanted.
    pub segments: Option<crate::analytics::segments::SegmentModel>,
}
