//! Behaviour segments: users clustered by k-means (k from `analytics.segments`, a fixed
//! seed) over standardised features of their last four weeks and their hours, each
//! segment named from how its centroid differs from the population ("evening heavy
//! listeners", "lapsing"). The model is stored like the churn model; a user's segment is
//! the nearest centroid to its features now.

use serde::{Deserialize, Serialize};

use super::Member;
use super::kmeans::{kmeans, nearest};
use crate::domain::history::{ActivityHistory, day_of};
use crate::domain::time::Timestamp;

/// The seed of every segmentation: the same population gives the same segments.
pub const SEED: u64 = 0x5E67_3E47;

/// The features, with their units.
pub const FEATURES: [(&str, &str); 8] = [
    ("active_days_28", "days of the last 28"),
    ("minutes_per_active_day", "minutes"),
    ("plays_per_active_day", "plays"),
    ("skip_rate", "share of started tracks"),
    ("evening_share", "share of plays 18:00–23:59 UTC"),
    ("morning_share", "share of plays 05:00–11:59 UTC"),
    ("days_since_active", "days (at most 60)"),
    ("kinds_used", "kinds of activity of 6"),
];

const D: usize = FEATURES.len();

/// A member's segment features as of `now`.
pub fn features(h: &ActivityHistory, now: Timestamp) -> [f64; D] {
    let end = day_of(now) + 1;
    let w = h.window(end.saturating_sub(28), end);
    let active = f64::from(w.active_days.max(1));
    let started = u32::from(w.sum.plays) + u32::from(w.sum.skips);
    let plays: f64 = h.hours.iter().map(|v| f64::from(*v)).sum();
    let share = |hours: std::ops::Range<usize>| {
        if plays == 0.0 {
            0.0
        } else {
            h.hours[hours].iter().map(|v| f64::from(*v)).sum::<f64>() / plays
        }
    };
    let quiet = h
        .last_active_day_before(end)
        .map_or(60, |d| (end - 1 - d).min(60));
    [
        f64::from(w.active_days),
        f64::from(w.sum.listening_secs) / 60.0 / active,
        f64::from(w.sum.plays) / active,
        if started == 0 {
            0.0
        } else {
            f64::from(w.sum.skips) / f64::from(started)
        },
        share(18..24),
        share(5..12),
        f64::from(quiet),
        f64::from(w.sum.kinds_used()),
    ]
}

/// One segment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Segment {
    /// Its number, from 0.
    pub id: usize,
    /// Its generated name.
    pub name: String,
    /// Members at training.
    pub size: u64,
    /// The centroid in the features' own units, in the order of the model's `features`.
    pub centroid: Vec<f64>,
}

/// A trained segmentation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SegmentModel {
    /// Version, counting up from 1.
    pub version: u64,
    /// When it was trained.
    pub trained_at: Timestamp,
    /// The features: name and unit.
    pub features: Vec<(String, String)>,
    /// Their means over the members (for standardising).
    pub means: Vec<f64>,
    /// Their standard deviations.
    pub scales: Vec<f64>,
    /// The segments.
    pub segments: Vec<Segment>,
    /// Sum of squared standardised distances to the centroids.
    pub inertia: f64,
    /// Lloyd iterations.
    pub iterations: usize,
}

/// A user's segment, as insights show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SegmentRef {
    /// The segment's number.
    pub id: usize,
    /// Its name.
    pub name: String,
    /// The segmentation's version.
    pub model_version: u64,
}

impl SegmentModel {
    /// Whether it was trained on this build's features.
    pub fn fits(&self) -> bool {
        self.features.len() == D
            && self
                .features
                .iter()
                .zip(FEATURES.iter())
                .all(|(a, b)| a.0 == b.0)
            && self.means.len() == D
            && self.scales.len() == D
            && !self.segments.is_empty()
            && self.segments.iter().all(|s| s.centroid.len() == D)
    }

    fn standardise(&self, x: &[f64; D]) -> Vec<f32> {
        (0..D)
            .map(|i| ((x[i] - self.means[i]) / self.scales[i]) as f32)
            .collect()
    }

    fn standard_centroids(&self) -> Vec<f64> {
        self.segments
            .iter()
            .flat_map(|s| (0..D).map(|i| (s.centroid[i] - self.means[i]) / self.scales[i]))
            .collect()
    }

    /// The segment of a history now.
    pub fn assign(&self, h: &ActivityHistory, now: Timestamp) -> SegmentRef {
        let z = self.standardise(&features(h, now));
        let (i, _) = nearest(&self.standard_centroids(), D, &z);
        SegmentRef {
            id: i,
            name: self.segments[i].name.clone(),
            model_version: self.version,
        }
    }
}

/// Collects members' features.
#[derive(Debug)]
pub struct Segmenter {
    now: Timestamp,
    rows: Vec<[f64; D]>,
}

impl Segmenter {
    /// A segmentation as of `now`.
    pub fn new(now: Timestamp) -> Self {
        Self {
            now,
            rows: Vec::new(),
        }
    }

    /// Counts a consenting member who was ever active.
    pub fn add(&mut self, m: &Member<'_>) {
        if m.consented && m.history.last_active.is_some() {
            self.rows.push(features(m.history, self.now));
        }
    }

    /// Clusters into `k` segments; `None` with fewer members than segments.
    pub fn train(self, k: usize, version: u64) -> Option<SegmentModel> {
        let n = self.rows.len() as f64;
        let mut means = [0.0; D];
        let mut sq = [0.0; D];
        for r in &self.rows {
            for i in 0..D {
                means[i] += r[i] / n;
                sq[i] += r[i] * r[i] / n;
            }
        }
        let scales: Vec<f64> = (0..D)
            .map(|i| {
                let var = sq[i] - means[i] * means[i];
                if var > 1e-12 { var.sqrt() } else { 1.0 }
            })
            .collect();
        let points: Vec<f32> = self
            .rows
            .iter()
            .flat_map(|r| {
                (0..D)
                    .map(|i| ((r[i] - means[i]) / scales[i]) as f32)
                    .collect::<Vec<_>>()
            })
            .collect();
        let c = kmeans(&points, D, k, SEED)?;
        let mut names = Vec::new();
        let segments = (0..k)
            .map(|s| {
                let z = &c.centroids[s * D..(s + 1) * D];
                let centroid: Vec<f64> = (0..D).map(|i| means[i] + z[i] * scales[i]).collect();
                let mut name = name_of(z, &centroid);
                if names.contains(&name) {
                    name = format!("{name} ({})", s + 1);
                }
                names.push(name.clone());
                Segment {
                    id: s,
                    name,
                    size: c.sizes[s],
                    centroid,
                }
            })
            .collect();
        Some(SegmentModel {
            version,
            trained_at: self.now,
            features: FEATURES
                .iter()
                .map(|(n, u)| ((*n).to_owned(), (*u).to_owned()))
                .collect(),
            means: means.to_vec(),
            scales,
            segments,
            inertia: c.inertia,
            iterations: c.iterations,
        })
    }
}

/// A name from a centroid: `z` its standardised values, `own` in the features' units.
fn name_of(z: &[f64], own: &[f64]) -> String {
    if own[6] >= 14.0 || z[6] > 1.0 {
        return "lapsing".into();
    }
    let when = if own[4] >= 0.5 {
        "evening "
    } else if own[5] >= 0.5 {
        "morning "
    } else {
        ""
    };
    let how = if z[1] > 0.5 {
        "heavy listeners"
    } else if z[1] < -0.5 {
        "light listeners"
    } else {
        "listeners"
    };
    let often = if z[0] > 0.5 {
        "daily "
    } else if z[0] < -0.5 {
        "occasional "
    } else {
        ""
    };
    let restless = if own[3] >= 0.3 {
        ", skipping a lot"
    } else {
        ""
    };
    format!("{often}{when}{how}{restless}")
}

#[cfg(test)]
mod tests;
