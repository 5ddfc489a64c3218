//! The `[personalization.federated]` section: federated rounds of the sound model
//! (issue 19; `docs/models.md` says what each setting means for privacy).

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::domain::federated::{LocalPlan, Rules};

/// Federated learning (`[personalization.federated]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FederatedConfig {
    /// Whether the server runs rounds at all.
    pub enabled: bool,
    /// Updates a round needs to be published at its deadline (fewer: abandoned).
    pub min_participants: usize,
    /// Updates at which a round closes before its deadline.
    pub max_participants: usize,
    /// How long a round stays open.
    pub round_duration: Duration,
    /// Clipping, noise and example weights.
    pub rules: Rules,
    /// `δ` of the `(ε, δ)` guarantee.
    pub delta: f64,
    /// The `ε` all rounds together may spend; no round opens that would pass it.
    pub epsilon_budget: f64,
    /// How devices train.
    pub plan: LocalPlan,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFederated {
    enabled: bool,
    min_participants: usize,
    max_participants: usize,
    round_duration: String,
    clip_norm: f64,
    noise_multiplier: f64,
    example_cap: u32,
    delta: f64,
    epsilon_budget: f64,
    local_epochs: u32,
    local_learning_rate: f64,
    local_max_examples: u32,
}

impl RawFederated {
    /// The section, checked.
    pub(super) fn validate(&self) -> Result<FederatedConfig, ConfigError> {
        let key = |k: &str| format!("personalization.federated.{k}");
        let within = |k: &str, v: f64, lo: f64, hi: f64| {
            if v.is_finite() && v > lo && v <= hi {
                Ok(v)
            } else {
                Err(ConfigError::new(
                    key(k),
                    format!("must be above {lo} and at most {hi}, got {v}"),
                ))
            }
        };
        if !(1..=1_000_000).contains(&self.min_participants) {
            return Err(ConfigError::new(
                key("min_participants"),
                format!("must be 1 to 1000000, got {}", self.min_participants),
            ));
        }
        if !(self.min_participants..=1_000_000).contains(&self.max_participants) {
            return Err(ConfigError::new(
                key("max_participants"),
                format!(
                    "must be min_participants ({}) to 1000000, got {}",
                    self.min_participants, self.max_participants
                ),
            ));
        }
        let round_duration =
            super::automation::duration(&key("round_duration"), &self.round_duration)?;
        if round_duration < Duration::from_secs(1) {
            return Err(ConfigError::new(
                key("round_duration"),
                "must be at least one second",
            ));
        }
        let count = |k: &str, v: u32, hi: u32| {
            if (1..=hi).contains(&v) {
                Ok(v)
            } else {
                Err(ConfigError::new(
                    key(k),
                    format!("must be 1 to {hi}, got {v}"),
                ))
            }
        };
        Ok(FederatedConfig {
            enabled: self.enabled,
            min_participants: self.min_participants,
            max_participants: self.max_participants,
            round_duration,
            rules: Rules {
                clip_norm: within("clip_norm", self.clip_norm, 0.0, 1e3)? as f32,
                noise_multiplier: within("noise_multiplier", self.noise_multiplier, 0.0, 1e3)?
                    as f32,
                example_cap: count("example_cap", self.example_cap, 1_000_000)?,
            },
            delta: within("delta", self.delta, 0.0, 0.01)?,
            epsilon_budget: within("epsilon_budget", self.epsilon_budget, 0.0, 1e6)?,
            plan: LocalPlan {
                epochs: count("local_epochs", self.local_epochs, 1_000)?,
                learning_rate: within("local_learning_rate", self.local_learning_rate, 0.0, 100.0)?
                    as f32,
                max_examples: count("local_max_examples", self.local_max_examples, 1_000_000)?,
            },
        })
    }
}
