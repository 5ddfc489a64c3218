//! The reference device: what a client app does to take part in federated rounds. It
//! keeps the listener's plays and skips as [`Example`]s, measured against its own
//! running sound exactly as the server's taste keeps it (the first play of a feature
//! sets it, each later play moves it by `min(1, η)` towards the track, a skip leaves it),
//! and computes a round's update from them with [`train_locally`]. Raw history never
//! leaves it; only the change to the nine parameters and the example count do.

use super::{DIM, Example, LocalPlan, SoundModel, train_locally};
use crate::domain::catalog::AudioFeatures;

/// A track's audio features scaled to 0–1 over their ranges (`None`: not known).
pub fn scaled(audio: &AudioFeatures) -> [Option<f32>; 8] {
    audio
        .fields()
        .map(|(_, value, lo, hi)| value.map(|v| ((v - lo) / (hi - lo)).clamp(0.0, 1.0)))
}

/// An update as sent: the parameters' change and the examples it came from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LocalUpdate {
    /// The change, in the model's parameter order.
    pub delta: [f32; DIM],
    /// Examples used.
    pub examples: u32,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Device {
    rate: f32,
    sound: [f32; 8],
    known: u8,
    examples: Vec<Example>,
}

impl Device {
    /// A device for a listener at `learning_rate`.
    pub fn new(learning_rate: f64) -> Self {
        Self {
            rate: learning_rate.clamp(0.0, 1.0) as f32,
            sound: [0.0; 8],
            known: 0,
            examples: Vec::new(),
        }
    }

    /// How far a track is from the listener's sound now (`None` when no feature is
    /// known for both); `played` is left false.
    pub fn measure(&self, audio: &[Option<f32>; 8]) -> Option<Example> {
        let mut x = Example {
            distance: [0.0; 8],
            known: 0,
            played: false,
        };
        for (f, value) in audio.iter().enumerate() {
            if let Some(v) = value
                && self.known & (1 << f) != 0
            {
                x.distance[f] = (v - self.sound[f]).abs();
                x.known |= 1 << f;
            }
        }
        (x.known != 0).then_some(x)
    }

    /// The listener played (`true`) or skipped a track with these features: an example
    /// is kept, and a play moves the sound.
    pub fn hear(&mut self, audio: &[Option<f32>; 8], played: bool) {
        if let Some(mut x) = self.measure(audio) {
            x.played = played;
            self.examples.push(x);
        }
        if played {
            for (f, value) in audio.iter().enumerate() {
                if let Some(v) = value {
                    self.sound[f] = if self.known & (1 << f) == 0 {
                        *v
                    } else {
                        self.sound[f] + self.rate * (v - self.sound[f])
                    };
                    self.known |= 1 << f;
                }
            }
        }
    }

    /// The examples held, oldest first.
    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    /// This round's update from the published model (`None` without examples).
    pub fn update(&self, model: &SoundModel, plan: &LocalPlan) -> Option<LocalUpdate> {
        if self.examples.is_empty() {
            return None;
        }
        let used = self.examples.len().min(plan.max_examples as usize);
        Some(LocalUpdate {
            delta: train_locally(model, &self.examples, plan),
            examples: used as u32,
        })
    }
}
