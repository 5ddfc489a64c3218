//! Devices with a planted truth: every simulated listener plays or skips random tracks
//! as a planted [`SoundModel`] says (`P(play) = σ(b* − Σ w*_f·d_f)` against its own
//! running sound), so rounds over their updates can be checked to move the published
//! parameters towards the planted ones. Used by the tests, the bench and the HTTP test.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::client::Device;
use super::{Example, LocalPlan, Rules, SoundModel};

/// The planted truth of the tests: energy and valence decide most, acousticness some,
/// tempo and the rest little.
pub fn planted() -> SoundModel {
    SoundModel {
        weights: [0.5, 6.0, 5.0, 1.0, 3.0, 0.5, 0.5, 0.5],
        bias: 4.0,
    }
}

/// A random track's scaled audio features (each known, uniform in 0–1).
pub fn random_track(rng: &mut StdRng) -> [Option<f32>; 8] {
    std::array::from_fn(|_| Some(rng.random::<f32>()))
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Whether a listener following `truth` plays a track at `x`'s distances.
pub fn decide(truth: &SoundModel, x: &Example, rng: &mut StdRng) -> bool {
    rng.random::<f32>() < sigmoid(truth.logit(x))
}

/// `devices` listeners of `events` plays and skips each, following `truth`, at
/// learning rate 0.2 (seeded).
pub fn devices(seed: u64, devices: usize, events: usize, truth: &SoundModel) -> Vec<Device> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..devices)
        .map(|_| {
            let mut d = Device::new(0.2);
            for _ in 0..events {
                let track = random_track(&mut rng);
                let played = match d.measure(&track) {
                    Some(x) => decide(truth, &x, &mut rng),
                    // The first track: a play sets the sound.
                    None => true,
                };
                d.hear(&track, played);
            }
            d
        })
        .collect()
}

/// The distance between two models' parameters.
pub fn error(a: &SoundModel, b: &SoundModel) -> f32 {
    a.params()
        .iter()
        .zip(b.params())
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f32>()
        .sqrt()
}

/// The plan the server publishes by default.
pub fn default_plan() -> LocalPlan {
    LocalPlan {
        epochs: 20,
        learning_rate: 2.0,
        max_examples: 500,
    }
}

/// Runs `rounds` rounds in process, every device taking part in each (the denominator
/// is their number), from the default model: the model after each round.
pub fn run_rounds(
    devices: &[Device],
    rounds: usize,
    plan: &LocalPlan,
    rules: &Rules,
    seed: u64,
) -> Vec<SoundModel> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = SoundModel::default();
    let mut after = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let contributions: Vec<_> = devices
            .iter()
            .filter_map(|d| d.update(&model, plan))
            .filter_map(|u| super::Contribution::of(&u.delta, u64::from(u.examples), rules).ok())
            .collect();
        let d = devices.len() as f64;
        if let Some(a) = super::aggregate(&model, &contributions, rules, d, &mut rng) {
            model = a.model;
        }
        after.push(model);
    }
    after
}
