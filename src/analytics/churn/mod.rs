//! The churn model. Churn means no activity in the next `horizon` days. A training as of
//! `now` observes each consenting user up to the cutoff `T − H` (T = today, H = the
//! horizon), computes its [`features`] from the days before the cutoff, and labels it
//! churned if it did nothing in the `H` days from the cutoff to today. One in five users
//! (by a hash of the id, so the same ones every time) is held out; a logistic regression
//! is fitted on the rest and evaluated on them (AUC, log loss, reliability table).
//!
//! A prediction applies the model to a user's features as of today: a probability, a
//! band, and the features' exact contributions to its log-odds (`wᵢ·zᵢ`, `zᵢ` the
//! standardised value), largest first.

pub mod features;

use serde::{Deserialize, Serialize};

use self::features::{FEATURES, Group, N_FEATURES, features};
use super::Member;
use super::evaluate::{Evaluation, evaluate};
use super::logistic::Logistic;
use crate::domain::history::{day_of, day_start};
use crate::domain::ids::UserId;
use crate::domain::time::Timestamp;

/// A model below this held-out AUC is kept as a record but never used.
pub const MIN_USABLE_AUC: f64 = 0.6;

/// Fewest training rows (and of each class) a fit needs.
pub const MIN_ROWS: usize = 50;

/// Reasons a prediction lists.
pub const REASONS: usize = 5;

/// Where a probability falls.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// Below 0.3.
    Low,
    /// 0.3 to 0.6.
    Medium,
    /// 0.6 and above.
    High,
}

impl Band {
    /// The band of a probability.
    pub fn of(p: f64) -> Self {
        if p >= 0.6 {
            Band::High
        } else if p >= 0.3 {
            Band::Medium
        } else {
            Band::Low
        }
    }
}

/// One feature's part in a prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reason {
    /// The feature (see the model card's `features`).
    pub feature: String,
    /// What it is about.
    pub group: Group,
    /// Its value for this user, in its own units.
    pub value: f64,
    /// Its contribution to the log-odds of churning: positive pushes toward churn.
    pub contribution: f64,
}

/// A churn prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChurnPrediction {
    /// The model version that made it.
    pub model_version: u64,
    /// The probability of no activity in the next `horizon_days`.
    pub probability: f64,
    /// Low, medium or high.
    pub band: Band,
    /// The horizon, in days.
    pub horizon_days: u32,
    /// The largest contributions (by magnitude), largest first.
    pub reasons: Vec<Reason>,
}

/// A feature as the model card lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeatureCard {
    /// Its name.
    pub name: String,
    /// What it is about.
    pub group: Group,
    /// What it measures.
    pub description: String,
    /// Its mean over the training rows.
    pub mean: f64,
    /// Its standard deviation over them.
    pub scale: f64,
    /// Its weight on the standardised value.
    pub coefficient: f64,
}

/// A trained churn model with its card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChurnModel {
    /// Version, counting up from 1.
    pub version: u64,
    /// When it was trained.
    pub trained_at: Timestamp,
    /// The horizon, in days.
    pub horizon_days: u32,
    /// The cutoff: features from before it, labels from it to the training day.
    pub cutoff: Timestamp,
    /// Users read by the training.
    pub users_scanned: u64,
    /// Rows fitted.
    pub training_rows: u64,
    /// The share of churned rows in training.
    pub base_rate: f64,
    /// The features, their standardisation and coefficients.
    pub features: Vec<FeatureCard>,
    /// The intercept (log-odds at the mean user).
    pub intercept: f64,
    /// Newton steps the fit took.
    pub steps: u32,
    /// Held-out figures.
    pub evaluation: Evaluation,
    /// Whether it is good enough to be used (held-out AUC at least 0.6).
    pub usable: bool,
}

impl ChurnModel {
    /// Whether it was trained on this build's features (a model of another feature set
    /// is kept as a record but cannot score).
    pub fn fits(&self) -> bool {
        self.features.len() == N_FEATURES
            && self
                .features
                .iter()
                .zip(FEATURES.iter())
                .all(|(card, f)| card.name == f.name)
    }

    fn logistic(&self) -> Logistic {
        Logistic {
            means: self.features.iter().map(|f| f.mean).collect(),
            scales: self.features.iter().map(|f| f.scale).collect(),
            weights: self.features.iter().map(|f| f.coefficient).collect(),
            intercept: self.intercept,
        }
    }

    /// The prediction for a member as of `now` (its activity of today included).
    pub fn predict(&self, m: &Member<'_>, now: Timestamp) -> ChurnPrediction {
        let x = features(m.history, m.created_at, m.tier, day_of(now) + 1);
        let model = self.logistic();
        let contributions = model.contributions(&x);
        let probability = model.predict(&x);
        let mut reasons: Vec<Reason> = FEATURES
            .iter()
            .zip(x.iter().zip(&contributions))
            .map(|(f, (v, c))| Reason {
                feature: f.name.to_owned(),
                group: f.group,
                value: *v,
                contribution: *c,
            })
            .collect();
        reasons.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
        reasons.truncate(REASONS);
        ChurnPrediction {
            model_version: self.version,
            probability,
            band: Band::of(probability),
            horizon_days: self.horizon_days,
            reasons,
        }
    }
}

/// Why a training produced no model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrainError {
    /// Too few rows, or of one class.
    #[error(
        "too little history to train on: {rows} users observed before the cutoff, {churned} of them churned (at least {MIN_ROWS} of each class are needed)"
    )]
    TooLittleData {
        /// Rows.
        rows: usize,
        /// Churned rows.
        churned: usize,
    },
    /// The fit did not converge (a degenerate matrix).
    #[error("the fit failed: the features are degenerate on this population")]
    Degenerate,
}

/// What a training reports as it goes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum TrainProgress {
    /// Users read so far.
    Reading {
        /// How many.
        users: u64,
    },
    /// The population was read.
    Scanned {
        /// Users read.
        users: u64,
        /// Rows for training.
        training_rows: u64,
        /// Rows held out.
        holdout_rows: u64,
    },
    /// A Newton step.
    Step {
        /// Its number.
        step: u32,
        /// Mean log loss before it.
        log_loss: f64,
    },
}

/// Whether a user is held out of the fit (one in five, by its id).
pub fn held_out(id: UserId) -> bool {
    let h = id.as_bytes().iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    h % 5 == 0
}

/// Collects training and held-out rows from members handed in one at a time.
#[derive(Debug)]
pub struct Trainer {
    horizon: u32,
    cutoff: u32,
    end: u32,
    users: u64,
    fit: (Vec<f32>, Vec<bool>),
    holdout: (Vec<f32>, Vec<bool>),
}

impl Trainer {
    /// A training as of `now` with a horizon of `horizon` days.
    pub fn new(now: Timestamp, horizon: u32) -> Self {
        let end = day_of(now);
        Self {
            horizon,
            cutoff: end.saturating_sub(horizon),
            end,
            users: 0,
            fit: (Vec::new(), Vec::new()),
            holdout: (Vec::new(), Vec::new()),
        }
    }

    /// The features and label of a member, if it is a row: it consents and signed up
    /// before the cutoff.
    pub fn row(&self, m: &Member<'_>) -> Option<([f64; N_FEATURES], bool)> {
        if !m.consented || day_of(m.created_at) >= self.cutoff {
            return None;
        }
        let x = features(m.history, m.created_at, m.tier, self.cutoff);
        Some((x, !m.history.active_between(self.cutoff, self.end)))
    }

    /// Counts a member.
    pub fn add(&mut self, m: &Member<'_>) {
        self.users += 1;
        let Some((x, churned)) = self.row(m) else {
            return;
        };
        let (xs, ys) = if held_out(m.id) {
            &mut self.holdout
        } else {
            &mut self.fit
        };
        xs.extend(x.iter().map(|v| *v as f32));
        ys.push(churned);
    }

    /// Users counted so far.
    pub fn users(&self) -> u64 {
        self.users
    }

    /// The rows collected so far: (training, held out).
    pub fn rows(&self) -> (usize, usize) {
        (self.fit.1.len(), self.holdout.1.len())
    }

    /// Fits and evaluates; the model is `version`, trained at `now`.
    pub fn train(
        self,
        version: u64,
        now: Timestamp,
        mut progress: impl FnMut(TrainProgress),
    ) -> Result<ChurnModel, TrainError> {
        let (x, y) = &self.fit;
        let churned = y.iter().filter(|v| **v).count();
        progress(TrainProgress::Scanned {
            users: self.users,
            training_rows: y.len() as u64,
            holdout_rows: self.holdout.1.len() as u64,
        });
        if churned < MIN_ROWS || y.len() - churned < MIN_ROWS {
            return Err(TrainError::TooLittleData {
                rows: y.len(),
                churned,
            });
        }
        let mut steps = 0;
        let model = Logistic::fit(x, N_FEATURES, y, |step, log_loss| {
            steps = step as u32;
            progress(TrainProgress::Step {
                step: steps,
                log_loss,
            });
        })
        .ok_or(TrainError::Degenerate)?;
        let (hx, hy) = &self.holdout;
        let predicted: Vec<f64> = hx
            .chunks_exact(N_FEATURES)
            .map(|row| {
                let r: Vec<f64> = row.iter().map(|v| f64::from(*v)).collect();
                model.predict(&r)
            })
            .collect();
        let evaluation = evaluate(&predicted, hy);
        let features = FEATURES
            .iter()
            .enumerate()
            .map(|(i, f)| FeatureCard {
                name: f.name.to_owned(),
                group: f.group,
                description: f.description.to_owned(),
                mean: model.means[i],
                scale: model.scales[i],
                coefficient: model.weights[i],
            })
            .collect();
        Ok(ChurnModel {
            version,
            trained_at: now,
            horizon_days: self.horizon,
            cutoff: day_start(self.cutoff),
            users_scanned: self.users,
            training_rows: y.len() as u64,
            base_rate: churned as f64 / y.len() as f64,
            features,
            intercept: model.intercept,
            steps,
            usable: evaluation.auc >= MIN_USABLE_AUC,
            evaluation,
        })
    }
}

#[cfg(test)]
mod tests;
