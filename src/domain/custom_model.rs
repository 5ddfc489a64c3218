//! How a user's own model is fitted and judged: the settings the config gives and the
//! personalization layer's training follows.

use serde::{Deserialize, Serialize};

/// See the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrainingPlan {
    /// The share of the history's first plays of new tracks (its newest) held out to
    /// judge the model on.
    pub holdout_share: f32,
    /// First plays of new tracks needed in each part, the trained and the held out.
    pub min_cases: u32,
    /// The most moments of the trained part the model learns from (spread over it).
    pub max_examples: u32,
    /// Candidates not played that each played one is set against.
    pub negatives: u32,
    /// Passes of gradient descent.
    pub epochs: u32,
    /// The step of each pass.
    pub learning_rate: f32,
    /// How strongly the weights are held to the global blend's.
    pub l2: f32,
    /// The list length the hit rate is measured at.
    pub k: u32,
    /// The one-sided significance at which the model must beat the global one (exact
    /// sign test on the held-out plays one of them ranks higher than the other).
    pub significance: f64,
}

impl Default for TrainingPlan {
    fn default() -> Self {
        Self {
            holdout_share: 0.2,
            min_cases: 10,
            max_examples: 400,
            negatives: 20,
            epochs: 200,
            learning_rate: 0.5,
            l2: 0.02,
            k: 10,
            significance: 0.05,
        }
    }
}
