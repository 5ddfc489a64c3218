//! Batch analytics over the stored population: retention cohorts, the overview, the
//! churn model (features, fit, evaluation), segments, and a seeded population
//! simulator with a planted truth for tests, benches and demos.
//!
//! Pure computation over [`Member`]s: the engine scans the store off the actor threads,
//! opens each record and hands the members in one at a time, so nothing here knows
//! about actors, storage or keys, and a report over a million users holds accumulators,
//! not a million histories.

pub mod churn;
pub mod cohorts;
pub mod compliance;
pub mod evaluate;
pub mod forecast;
pub mod kmeans;
pub mod logistic;
pub mod opportunities;
pub mod overview;
pub mod segments;
pub mod sim;
pub mod tiers;
pub mod usage;

use crate::domain::feedback::ListFeedback;
use crate::domain::history::ActivityHistory;
use crate::domain::ids::UserId;
use crate::domain::profile::UsageCounters;
use crate::domain::rate::RateRefusals;
use crate::domain::taste::Taste;
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;

/// One stored user, as a batch job sees it.
#[derive(Clone, Copy, Debug)]
pub struct Member<'a> {
    /// The user.
    pub id: UserId,
    /// Its tier now.
    pub tier: UserTier,
    /// When it signed up.
    pub created_at: Timestamp,
    /// Whether its activity may be analysed now: the `analytics` consent given (and for
    /// a minor, a parent's). Without it only the user's existence counts.
    pub consented: bool,
    /// Its activity history (empty without the consent).
    pub history: &'a ActivityHistory,
    /// What personalization learned of its taste, if it consents to personalisation
    /// now (the recommender's training reads it; the analytics reports do not).
    pub taste: Option<&'a Taste>,
    /// What became of the recommendations it was shown (only with the `analytics`
    /// consent).
    pub feedback: Option<&'a ListFeedback>,
    /// Its quota counters (playlists, storage, logins).
    pub usage: &'a UsageCounters,
    /// The days its requests were refused for its tier's rate (only with the
    /// `analytics` consent).
    pub refusals: Option<&'a RateRefusals>,
}
