//! The settings of federated rounds that devices and the config share (the rounds
//! themselves are run by the personalization layer).

use serde::{Deserialize, Serialize};

/// How a device trains in a round (published with the model, so every device does the
/// same).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LocalPlan {
    /// Passes of full-batch gradient descent over the device's examples.
    pub epochs: u32,
    /// The step of each pass.
    pub learning_rate: f32,
    /// The newest examples used (older ones are left out).
    pub max_examples: u32,
}

/// The server's rules for a round's updates.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rules {
    /// `S`: the largest norm an update counts with (a larger one is scaled down to it).
    pub clip_norm: f32,
    /// `z`: the noise's standard deviation over `S`.
    pub noise_multiplier: f32,
    /// Example counts at or above it weigh 1; fewer weigh their share of it.
    pub example_cap: u32,
}
