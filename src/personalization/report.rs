//! The operators' report on the recommender (`GET /admin/recommendations/report`): what
//! the lists expose of the catalog and how accurate they are, measured on a uniform
//! sample of the consenting users' tastes with bias mitigation off and on, and the
//! click-through of the lists served, by level and by mitigation, from the shown and
//! clicked events every user's feedback counts.
//!
//! Accuracy is leave-newest-out: the newest track a sampled user is for (in the
//! catalog) is taken out of its heard tracks, and the list, made from the rest, is
//! looked through for it. That play is not out of everything: the taste's genre mix
//! and average sound still carry it, and the collaborative model in force was trained
//! with it. The figures flatter every signal somewhat; they are for comparing the two
//! sides (and reports over time), not for the absolute accuracy a fresh hold-out and
//! training would give (`cargo test --lib personalization`, the bench).
//!
//! Each side is the list as it is served: a list with mitigation is re-ranked from the
//! wider candidate set mitigated lists take (`recommend`), so the comparison is of the
//! two kinds of list users get.

use rand::rngs::Xoshiro256PlusPlus as Rng64;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use super::index::Index;
use super::mitigate::Mitigation;
use super::quality::{Exposure, Quality};
use super::recommend::{Ask, Context, Signals, recommend};
use crate::domain::feedback::{ListFeedback, ListTag};
use crate::domain::settings::PersonalizationLevel;
use crate::domain::taste::Taste;
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;

/// The learning rate a sampled user's recency is weighed with (the preferences are not
/// read by the scan; the default preference).
const SAMPLE_LEARNING_RATE: f64 = 0.1;

/// Reads the population and makes the report.
pub struct ReportBuilder {
    sample: Vec<(Taste, UserTier)>,
    size: usize,
    seen: u64,
    rng: Rng64,
    /// Shown and clicked per list tag.
    feedback: [[u64; 2]; 8],
    feedback_users: u64,
    /// The sound model the lists are scored with.
    sound: crate::personalization::federated::SoundModel,
}

/// Click-through of one kind of list, or of a group of kinds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ClickThrough {
    /// The level the lists were made at (none: all levels).
    pub level: Option<PersonalizationLevel>,
    /// Whether bias mitigation re-ranked them (none: both).
    pub bias_mitigation: Option<bool>,
    /// Items shown.
    pub shown: u64,
    /// Items followed.
    pub clicked: u64,
    /// Followed over shown (none before anything was shown).
    pub click_through: Option<f64>,
}

/// The same sample measured without and with bias mitigation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ExposureComparison {
    /// Lists as made without mitigation.
    pub without_mitigation: Quality,
    /// The same users' lists with the configured mitigation.
    pub with_mitigation: Quality,
}

/// The report (see the module documentation).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RecommenderReport {
    /// When it was made.
    pub generated_at: Timestamp,
    /// The collaborative model in force (none before a training).
    pub model_version: Option<u64>,
    /// Tracks in the catalog.
    pub catalog_tracks: usize,
    /// The level the sample's lists were made at (capped by each user's tier).
    pub level: PersonalizationLevel,
    /// Items per list measured.
    pub k: usize,
    /// Users with a taste under the consent to personalisation, of whom `sampled` were
    /// measured.
    pub eligible_users: u64,
    /// Users measured.
    pub sampled: u64,
    /// Exposure and accuracy, without and with mitigation.
    pub exposure: ExposureComparison,
    /// Users whose shown and clicked events count (the consent to analytics).
    pub feedback_users: u64,
    /// Click-through per kind of list (level and mitigation), for kinds ever shown.
    pub click_through: Vec<ClickThrough>,
    /// Click-through per level (mitigation on and off together).
    pub click_through_by_level: Vec<ClickThrough>,
    /// Click-through with mitigation off and on (all levels together).
    pub click_through_by_mitigation: Vec<ClickThrough>,
}

fn rate(level: Option<PersonalizationLevel>, mitigated: Option<bool>, c: [u64; 2]) -> ClickThrough {
    ClickThrough {
        level,
        bias_mitigation: mitigated,
        shown: c[0],
        clicked: c[1],
        click_through: (c[0] > 0).then(|| c[1] as f64 / c[0] as f64),
    }
}

/// The newest track in the catalog the user is for, and the taste without it.
fn hold_out_newest(index: &Index, taste: &Taste) -> Option<(Taste, u32)> {
    let (at, item) = taste
        .heard
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, h)| h.weight() > 0.0)
        .find_map(|(at, h)| index.item_of(h.track).map(|i| (at, i)))?;
    let mut rest = taste.clone();
    let mut heard = rest.heard.into_vec();
    heard.remove(at);
    rest.heard = heard.into_boxed_slice();
    Some((rest, item))
}

impl ReportBuilder {
    /// A report that measures at most `size` users.
    pub fn new(size: usize, seed: u64) -> Self {
        Self {
            sample: Vec::with_capacity(size.min(1 << 16)),
            size,
            seen: 0,
            rng: Rng64::seed_from_u64(seed),
            feedback: [[0; 2]; 8],
            feedback_users: 0,
            sound: Default::default(),
        }
    }

    /// Scores the sample's lists with the given sound model (the published one).
    pub fn with_sound(mut self, sound: crate::personalization::federated::SoundModel) -> Self {
        self.sound = sound;
        self
    }

    /// Reads a user: its taste (only under the consent to personalisation) and its
    /// feedback (only under the consent to analytics).
    pub fn add(&mut self, taste: Option<&Taste>, tier: UserTier, feedback: Option<&ListFeedback>) {
        if let Some(f) = feedback {
            self.feedback_users += 1;
            for c in f.counts() {
                let slot = &mut self.feedback[usize::from(c.tag.index())];
                slot[0] += u64::from(c.shown);
                // Clicks come from the client: a user counts for at most what it was
                // shown of that kind.
                slot[1] += u64::from(c.clicked.min(c.shown));
            }
        }
        let Some(taste) = taste.filter(|t| !t.heard.is_empty()) else {
            return;
        };
        self.seen += 1;
        // A uniform sample of what was read (Algorithm R).
        if self.sample.len() < self.size {
            self.sample.push((taste.clone(), tier));
        } else {
            let j = self.rng.random_range(0..self.seen);
            if let Some(slot) = self.sample.get_mut(j as usize) {
                *slot = (taste.clone(), tier);
            }
        }
    }

    /// The report: the sample's lists made at `level` (capped per tier by `cap`), `k`
    /// items each, without and with `mitigation`.
    pub fn finish(
        self,
        index: &Index,
        level: PersonalizationLevel,
        cap: impl Fn(UserTier) -> PersonalizationLevel,
        k: usize,
        mitigation: Mitigation,
        now: Timestamp,
    ) -> RecommenderReport {
        let mut without = Exposure::new(index, k);
        let mut with = Exposure::new(index, k);
        for (taste, tier) in &self.sample {
            let level = level.min(cap(*tier));
            let held = hold_out_newest(index, taste);
            let used = held.as_ref().map_or(taste, |(t, _)| t);
            let ask = Ask {
                taste: (level != PersonalizationLevel::Off).then_some(used),
                tier: *tier,
                signals: Signals::of(level, true),
                limit: k,
                include_played: false,
                context: Context::default(),
                mitigation: None,
                learning_rate: SAMPLE_LEARNING_RATE,
                sound: self.sound,
                blend: super::Blend::GLOBAL,
                deep: false,
                now,
            };
            for (e, m) in [(&mut without, None), (&mut with, Some(mitigation))] {
                let list: Vec<u32> = recommend(
                    index,
                    &Ask {
                        mitigation: m,
                        ..ask
                    },
                )
                .into_iter()
                .map(|s| s.item)
                .collect();
                match &held {
                    Some((_, item)) => e.add_case(index, &list, *item),
                    None => e.add_list(index, &list),
                }
            }
        }
        let tags = (0..8u8).map(ListTag::from_index);
        let f = &self.feedback;
        let by_level = [
            PersonalizationLevel::Off,
            PersonalizationLevel::Basic,
            PersonalizationLevel::Standard,
            PersonalizationLevel::Advanced,
        ]
        .into_iter()
        .map(|l| {
            let [a, b] = [false, true].map(|m| f[usize::from(ListTag::new(l, m).index())]);
            rate(Some(l), None, [a[0] + b[0], a[1] + b[1]])
        })
        .collect();
        let by_mitigation = [false, true]
            .into_iter()
            .map(|m| {
                let sum = tags
                    .clone()
                    .filter(|t| t.mitigated() == m)
                    .map(|t| f[usize::from(t.index())])
                    .fold([0, 0], |acc, c| [acc[0] + c[0], acc[1] + c[1]]);
                rate(None, Some(m), sum)
            })
            .collect();
        RecommenderReport {
            generated_at: now,
            model_version: index.model_version,
            catalog_tracks: index.len(),
            level,
            k,
            eligible_users: self.seen,
            sampled: self.sample.len() as u64,
            exposure: ExposureComparison {
                without_mitigation: without.report(),
                with_mitigation: with.report(),
            },
            feedback_users: self.feedback_users,
            click_through: tags
                .filter(|t| f[usize::from(t.index())] != [0, 0])
                .map(|t| {
                    rate(
                        Some(t.level()),
                        Some(t.mitigated()),
                        f[usize::from(t.index())],
                    )
                })
                .collect(),
            click_through_by_level: by_level,
            click_through_by_mitigation: by_mitigation,
        }
    }
}
