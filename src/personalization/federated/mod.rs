//! Federated learning of the sound model: how much each audio feature's distance from a
//! listener's own sound decides whether it plays a track or skips it. The parameters
//! are learned on the listeners' devices from the plays and skips they hold; the server
//! sees only each device's clipped change to the parameters, sums them with Gaussian
//! noise (DP-FedAvg) and publishes the result. The recommender's `sound` term weighs
//! the features by it (see [`SoundModel::sound`]).
//!
//! **The model.** For a track with audio features `x` and a listener whose own sound (the
//! running average of what it played, as the taste keeps it) is `a`, both scaled to 0–1,
//! `d_f = |x_f − a_f|` over the features known for both, and
//! `P(play rather than skip) = σ(b − Σ_f w_f·d_f)`. Nine parameters: eight weights and a
//! bias. Until a round is published, every weight is 1 and the bias 0, which makes the
//! sound term the plain mean closeness the recommender had before.
//!
//! **A round** (the engine's `federated` facade runs it):
//! 1. a device reads the model, the round id and the [`LocalPlan`];
//! 2. it runs [`train_locally`] from the published parameters over its own examples and
//!    sends the change `Δ_k` with its example count `n_k` ([`client::Device`] is the
//!    reference device);
//! 3. the server clips `Δ_k` to the norm `S` ([`Contribution::of`]) and weighs it by
//!    `w_k = min(n_k, cap)/cap` (at most 1, so no device moves the sum by more than `S`);
//! 4. at the round's close, [`aggregate`]: `θ ← θ + (Σ_k w_k·Δ_k + N(0, σ²·I)) / D`
//!    with `σ = z·S` and the fixed denominator `D` (the round's capacity, its
//!    `max_participants`), never the weight that arrived: dividing by `Σ_k w_k` would
//!    let the scale of the change tell whether one more user took part. A round of
//!    fewer devices takes a step of its share `Σ_k w_k / D` of their mean;
//! 5. the [`accountant`] adds the round to the privacy spent.

pub mod accountant;
pub mod client;
pub mod sim;

pub use crate::domain::federated::{LocalPlan, Rules};

use rand::Rng;
use serde::{Deserialize, Serialize};

/// The audio features, in the catalog's order
/// ([`crate::domain::catalog::AudioFeatures::fields`]).
pub const FEATURES: [&str; 8] = [
    "tempo",
    "energy",
    "valence",
    "danceability",
    "acousticness",
    "instrumentalness",
    "speechiness",
    "loudness",
];

/// Parameters: a weight per feature and the bias, in that order.
pub const DIM: usize = FEATURES.len() + 1;

/// The sound model's parameters (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SoundModel {
    /// How much a unit of distance on each feature counts against a play, in
    /// [`FEATURES`] order.
    pub weights: [f32; 8],
    /// The log-odds of a play at no distance.
    pub bias: f32,
}

impl Default for SoundModel {
    fn default() -> Self {
        Self {
            weights: [1.0; 8],
            bias: 0.0,
        }
    }
}

impl SoundModel {
    /// The parameters as one vector.
    pub fn params(&self) -> [f32; DIM] {
        let mut p = [0.0; DIM];
        p[..8].copy_from_slice(&self.weights);
        p[8] = self.bias;
        p
    }

    /// The model of a parameter vector.
    pub fn from_params(p: &[f32; DIM]) -> Self {
        let mut weights = [0.0; 8];
        weights.copy_from_slice(&p[..8]);
        Self {
            weights,
            bias: p[8],
        }
    }

    /// Whether every parameter is a finite number.
    pub fn is_finite(&self) -> bool {
        self.params().iter().all(|p| p.is_finite())
    }

    /// The log-odds that the listener plays the example's track rather than skips it.
    pub fn logit(&self, x: &Example) -> f32 {
        let mut z = self.bias;
        for (f, w) in self.weights.iter().enumerate() {
            if x.known & (1 << f) != 0 {
                z -= w * x.distance[f];
            }
        }
        z
    }

    /// The recommender's sound term for a track and a taste (audio features scaled to
    /// 0–65,535, `known` the features known for both): the closeness `1 − d_f` of each
    /// known feature, weighed by its weight (a negative one counts as 0). With the
    /// default model, the plain mean.
    pub fn sound(&self, item: &[u16; 8], taste: &[u16; 8], known: u8) -> f32 {
        let (mut sum, mut weight) = (0.0, 0.0);
        for f in 0..8 {
            if known & (1 << f) != 0 {
                let w = self.weights[f].max(0.0);
                let d = (f32::from(item[f]) - f32::from(taste[f])).abs() / 65_535.0;
                sum += w * (1.0 - d);
                weight += w;
            }
        }
        if weight > 0.0 { sum / weight } else { 0.0 }
    }
}

/// One play or skip as a device holds it: how far the track was from the listener's
/// own sound at the time, and which it was.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Example {
    /// `|x_f − a_f|` per feature, 0–1.
    pub distance: [f32; 8],
    /// Bit `f`: feature `f` was known for both.
    pub known: u8,
    /// Played (true) or skipped.
    pub played: bool,
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// A device's change to the parameters: gradient descent on the mean logistic loss of
/// its newest `plan.max_examples` examples, from `global`, for `plan.epochs` passes.
/// Zero without examples.
pub fn train_locally(global: &SoundModel, examples: &[Example], plan: &LocalPlan) -> [f32; DIM] {
    let from = examples.len().saturating_sub(plan.max_examples as usize);
    let examples = &examples[from..];
    let start = global.params();
    if examples.is_empty() {
        return [0.0; DIM];
    }
    let mut p = start;
    let n = examples.len() as f32;
    for _ in 0..plan.epochs {
        let model = SoundModel::from_params(&p);
        let mut grad = [0.0f32; DIM];
        for x in examples {
            // d loss / d logit = p − y; the logit is b − Σ w·d.
            let g = sigmoid(model.logit(x)) - if x.played { 1.0 } else { 0.0 };
            for (f, (gr, d)) in grad.iter_mut().zip(x.distance).enumerate() {
                if x.known & (1 << f) != 0 {
                    *gr -= g * d;
                }
            }
            grad[8] += g;
        }
        for (p, g) in p.iter_mut().zip(grad) {
            *p -= plan.learning_rate * g / n;
        }
    }
    let mut delta = [0.0; DIM];
    for ((d, p), s) in delta.iter_mut().zip(p).zip(start) {
        *d = p - s;
    }
    delta
}

/// Why an update cannot count.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadUpdate {
    /// The change has the wrong number of parameters.
    #[error("must hold {DIM} numbers (the model's parameters in order), got {0}")]
    Dimension(usize),
    /// A parameter is not a finite number.
    #[error("parameter {0} is not a finite number")]
    NotFinite(usize),
    /// No examples.
    #[error("an update must come from at least one example")]
    NoExamples,
}

/// One device's update as it counts: clipped and weighed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Contribution {
    /// The clipped change.
    pub delta: [f32; DIM],
    /// Its weight, 0–1.
    pub weight: f32,
    /// The norm it was sent with.
    pub norm: f32,
    /// Whether it was scaled down to the clipping norm.
    pub clipped: bool,
}

impl Contribution {
    /// Checks, clips and weighs an update of `examples` examples.
    pub fn of(delta: &[f32], examples: u64, rules: &Rules) -> Result<Self, BadUpdate> {
        let Ok(mut d) = <[f32; DIM]>::try_from(delta) else {
            return Err(BadUpdate::Dimension(delta.len()));
        };
        if let Some(i) = d.iter().position(|x| !x.is_finite()) {
            return Err(BadUpdate::NotFinite(i));
        }
        if examples == 0 {
            return Err(BadUpdate::NoExamples);
        }
        // In f64: the squares of finite f32s cannot overflow there.
        let norm = d.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        let clip = f64::from(rules.clip_norm);
        let clipped = norm > clip;
        if clipped {
            let scale = clip / norm;
            for x in &mut d {
                *x = (f64::from(*x) * scale) as f32;
            }
        }
        let cap = u64::from(rules.example_cap.max(1));
        Ok(Self {
            delta: d,
            weight: (examples.min(cap) as f64 / cap as f64) as f32,
            norm: norm as f32,
            clipped,
        })
    }
}

/// A published round's figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Aggregated {
    /// The new parameters.
    pub model: SoundModel,
    /// Updates counted.
    pub participants: usize,
    /// The noise's standard deviation on each parameter's change, `z·S / D`.
    pub noise_std: f64,
    /// Updates that were clipped.
    pub clipped: usize,
}

/// One standard normal draw (Box–Muller).
pub fn gaussian(rng: &mut impl Rng) -> f64 {
    // 1 − u is in (0, 1], so its logarithm is finite.
    let u = 1.0 - f64::from(rng.next_u32()) / (f64::from(u32::MAX) + 1.0);
    let v = f64::from(rng.next_u32()) / (f64::from(u32::MAX) + 1.0);
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Adds a round's contributions to `global` over the fixed `denominator` (see the
/// module documentation): `None` without any contribution or a denominator.
pub fn aggregate<'a>(
    global: &SoundModel,
    contributions: impl IntoIterator<Item = &'a Contribution>,
    rules: &Rules,
    denominator: f64,
    rng: &mut impl Rng,
) -> Option<Aggregated> {
    let mut sum = [0.0f64; DIM];
    let (mut participants, mut clipped) = (0, 0);
    for c in contributions {
        for (s, d) in sum.iter_mut().zip(c.delta) {
            *s += f64::from(c.weight) * f64::from(d);
        }
        participants += 1;
        clipped += usize::from(c.clipped);
    }
    if participants == 0 || denominator.is_nan() || denominator <= 0.0 {
        return None;
    }
    let sigma = f64::from(rules.noise_multiplier) * f64::from(rules.clip_norm);
    let mut p = global.params();
    for (p, s) in p.iter_mut().zip(sum) {
        let noise = if sigma > 0.0 {
            sigma * gaussian(rng)
        } else {
            0.0
        };
        *p = (f64::from(*p) + (s + noise) / denominator) as f32;
    }
    Some(Aggregated {
        model: SoundModel::from_params(&p),
        participants,
        noise_std: sigma / denominator,
        clipped,
    })
}

/// A published version of the sound model, as the store keeps it (JSON) and operators
/// read it (devices read only its version and parameters: the counts are the
/// operator's, inside what the guarantee trusts). Version 0 is the default model,
/// published by no round and never stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FederatedModel {
    /// Its version (counting up from 1; 0: the default).
    pub version: u64,
    /// The round that published it (0: none).
    pub round: u64,
    /// When it was published.
    pub published_at: Option<crate::domain::time::Timestamp>,
    /// The parameters.
    pub model: SoundModel,
    /// Updates the round counted.
    pub participants: u64,
    /// Updates scaled down to the clipping norm.
    pub clipped: u64,
    /// The fixed denominator `D` the round's sum was divided by.
    #[serde(default)]
    pub denominator: f64,
    /// The noise's standard deviation on each parameter's change, `z·S / D`.
    pub noise_std: f64,
    /// Rounds published so far, this one included.
    pub rounds: u64,
    /// The Rényi cost `ρ = Σ 1/(2z²)` of those rounds, each at its own `z` (the
    /// [`accountant`]'s running total; 0 in a record stored before it was kept).
    #[serde(default)]
    pub rho: f64,
    /// The `ε` those rounds spent, at [`Self::delta`].
    pub epsilon: f64,
    /// The `δ` of the guarantee.
    pub delta: f64,
    /// The round's noise multiplier `z`.
    pub noise_multiplier: f64,
    /// The round's clipping norm `S`.
    pub clip_norm: f64,
}

impl Default for FederatedModel {
    fn default() -> Self {
        Self {
            version: 0,
            round: 0,
            published_at: None,
            model: SoundModel::default(),
            participants: 0,
            clipped: 0,
            denominator: 0.0,
            noise_std: 0.0,
            rounds: 0,
            rho: 0.0,
            epsilon: 0.0,
            delta: 0.0,
            noise_multiplier: 0.0,
            clip_norm: 0.0,
        }
    }
}

impl FederatedModel {
    /// The Rényi cost its rounds spent: its own record of it, or, for a record stored
    /// before that was kept, its rounds at its noise multiplier.
    pub fn spent(&self) -> f64 {
        if self.rho > 0.0 || self.rounds == 0 {
            self.rho
        } else {
            self.rounds as f64 * accountant::round_cost(self.noise_multiplier)
        }
    }
}

#[cfg(test)]
mod tests;
