//! The `[personalization.custom]` section: users' own models (issue 19;
//! `docs/models.md` says what each setting does).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ConfigError;
use crate::domain::custom_model::TrainingPlan;
use crate::domain::tier::UserTier;

/// Users' own models (`[personalization.custom]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomConfig {
    /// Versions kept per user (and the pinned one).
    pub keep_versions: usize,
    /// Events of the listening log kept for training (older ones go when a training
    /// reads it).
    pub log_events: usize,
    /// Trainings that run at once, per tier ([`UserTier::ALL`] order); 0: none.
    pub concurrency: [usize; 4],
    /// How a model is fitted and judged.
    pub plan: TrainingPlan,
}

impl CustomConfig {
    /// Trainings of a tier's users that run at once.
    pub fn concurrency_of(&self, tier: UserTier) -> usize {
        let i = UserTier::ALL.iter().position(|t| *t == tier).unwrap_or(0);
        self.concurrency[i]
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCustom {
    keep_versions: usize,
    log_events: usize,
    concurrency: BTreeMap<String, usize>,
    holdout_share: f64,
    min_cases: u32,
    max_examples: u32,
    negatives: u32,
    epochs: u32,
    learning_rate: f64,
    l2: f64,
    k: u32,
    significance: f64,
}

impl RawCustom {
    /// The section, checked.
    pub(super) fn validate(&self) -> Result<CustomConfig, ConfigError> {
        let key = |k: &str| format!("personalization.custom.{k}");
        let count = |k: &str, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(v)
            } else {
                Err(ConfigError::new(
                    key(k),
                    format!("must be {lo} to {hi}, got {v}"),
                ))
            }
        };
        let within = |k: &str, v: f64, lo: f64, hi: f64| {
            if v.is_finite() && v > lo && v < hi {
                Ok(v)
            } else {
                Err(ConfigError::new(
                    key(k),
                    format!("must be above {lo} and below {hi}, got {v}"),
                ))
            }
        };
        let mut concurrency = [0usize; 4];
        for (name, n) in &self.concurrency {
            let Ok(tier) = name.parse::<UserTier>() else {
                return Err(ConfigError::new(
                    key("concurrency"),
                    format!("{name:?} is not a tier (free, premium, enterprise, vip)"),
                ));
            };
            let i = UserTier::ALL.iter().position(|t| *t == tier).unwrap_or(0);
            concurrency[i] = count("concurrency", *n as u64, 0, 64)? as usize;
        }
        Ok(CustomConfig {
            keep_versions: count("keep_versions", self.keep_versions as u64, 1, 100)? as usize,
            log_events: count("log_events", self.log_events as u64, 100, 1_000_000)? as usize,
            concurrency,
            plan: TrainingPlan {
                holdout_share: within("holdout_share", self.holdout_share, 0.0, 1.0)? as f32,
                min_cases: count("min_cases", self.min_cases.into(), 1, 100_000)? as u32,
                max_examples: count("max_examples", self.max_examples.into(), 1, 100_000)? as u32,
                negatives: count("negatives", self.negatives.into(), 1, 1_000)? as u32,
                epochs: count("epochs", self.epochs.into(), 1, 100_000)? as u32,
                learning_rate: within("learning_rate", self.learning_rate, 0.0, 100.0)? as f32,
                l2: within("l2", self.l2, -f64::MIN_POSITIVE, 100.0)? as f32,
                k: count("k", self.k.into(), 1, 100)? as u32,
                significance: within("significance", self.significance, 0.0, 1.0)?,
            },
        })
    }
}
