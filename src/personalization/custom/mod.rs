//! A user's own model: a [`Blend`] fitted to its listening history on top of the global
//! model (the same candidates, terms and collaborative model; only the weights are the
//! user's), and judged against the global blend on the user's newest plays.
//!
//! **The cases.** The history is replayed in time order into a fresh taste, exactly as
//! the user's actor learnt it. A *case* is the first play of a track the history had
//! not heard before and the catalog holds: what a recommender is for. The newest
//! `holdout_share` of the cases are held out; the model learns from the rest.
//!
//! **Fitting.** At up to `max_examples` cases spread over the trained part, the list's
//! candidates are worked out from the taste just before the play (under the global
//! blend, with room for 50 items); if the played track is among them, it is set against
//! `negatives` candidates the user did not play then. The weights `w` (each at least 0)
//! minimise the pairwise logistic loss `mean log(1 + exp(−w·(t₊ − t₋)))` plus
//! `l2·|w − w_global|²` (gradient descent from the global weights, `epochs` passes).
//!
//! **Judging.** At every held-out case, the list of `k` items under the global blend and
//! under the fitted one, from the taste just before the play: a hit when it holds a
//! track the user goes on to play for the first time in the held-out period (this play
//! or a later one; the hit rate at `k`). A next play is one track among the many a user
//! likes alike, so hits are few and two models' hit counts differ by chance more than by
//! skill; the judgement also reads where each blend ranks the played track among its
//! candidates. The model is *better* only if it has at least the global blend's
//! hits, and the cases it ranks higher (`b`) against those the global blend ranks higher
//! (`c`) pass the exact one-sided sign test `P(Bin(b + c, ½) ≥ b) ≤ significance`. A
//! model that is not better is kept (its figures are worth reading) but not used.

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use super::blend::Blend;
use super::federated::SoundModel;
use super::index::Index;
use super::mitigate::Mitigation;
use super::recommend::{Ask, Context, Signals, pool, recommend};
use crate::domain::activity::ActivityEvent;
pub use crate::domain::custom_model::TrainingPlan;
use crate::domain::taste::{Daypart, Taste, TrackKey};
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;

/// What a list of the user is made with, besides the weights.
#[derive(Clone, Copy)]
pub struct Setting<'a> {
    /// The serving index (the catalog and the collaborative model).
    pub index: &'a Index,
    /// The signals the user's level allows.
    pub signals: Signals,
    /// Its learning rate.
    pub learning_rate: f64,
    /// The published sound model.
    pub sound: SoundModel,
    /// Its tier.
    pub tier: UserTier,
    /// Its bias mitigation, if on.
    pub mitigation: Option<Mitigation>,
    /// The blend in force for everyone: what the user's own model starts from, is held
    /// to, and must beat.
    pub global: Blend,
}

/// How the fitted model did against the global one on the held-out cases.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Evaluation {
    /// Held-out cases.
    pub cases: u32,
    /// The list length measured.
    pub k: u32,
    /// Hits of the fitted model.
    pub hits: u32,
    /// Hits of the global blend.
    pub global_hits: u32,
    /// `hits / cases`.
    pub hit_rate: f64,
    /// `global_hits / cases`.
    pub global_hit_rate: f64,
    /// Cases where it ranked the played track higher than the global blend.
    pub ranked_higher: u32,
    /// Cases where the global blend ranked it higher.
    pub ranked_lower: u32,
    /// The sign test's one-sided p-value for "the fitted model ranks the plays higher".
    pub p_value: f64,
    /// Whether it beat the global blend (see the module documentation).
    pub better: bool,
}

impl Evaluation {
    /// In words: which one serves, and why.
    pub fn verdict(&self) -> String {
        let rates = format!(
            "hit rate @{} on {} held-out plays {:.3} against the global model's {:.3}, \
             the play ranked higher {} times and lower {}",
            self.k,
            self.cases,
            self.hit_rate,
            self.global_hit_rate,
            self.ranked_higher,
            self.ranked_lower
        );
        if self.better {
            format!("beats the global model ({rates}; p = {:.3})", self.p_value)
        } else {
            format!(
                "does not beat the global model clearly ({rates}; p = {:.3}): not used",
                self.p_value
            )
        }
    }
}

/// A fitted model and its figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Trained {
    /// The weights.
    pub blend: Blend,
    /// Its judgement.
    pub evaluation: Evaluation,
    /// Events replayed.
    pub events: u32,
    /// Cases of the trained part.
    pub trained_cases: u32,
    /// Pairs it learned from.
    pub pairs: u32,
}

/// Why a history cannot train a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the history holds {cases} first plays of catalog tracks; a model needs at least {needed} \
     (its newest share held out to judge it by)"
)]
pub struct TooLittle {
    /// First plays of new catalog tracks in the history.
    pub cases: u32,
    /// How many it needs.
    pub needed: u32,
}

/// Items asked for when working out a case's candidates (fitting and ranking): the
/// pool kept is 20 times that, so nearly every candidate counts.
const POOL_LIMIT: usize = 100;

fn ask<'a>(
    s: &Setting<'_>,
    taste: &'a Taste,
    at: Timestamp,
    blend: Blend,
    limit: usize,
) -> Ask<'a> {
    Ask {
        taste: Some(taste),
        tier: s.tier,
        signals: s.signals,
        limit,
        include_played: false,
        context: Context {
            activity: None,
            daypart: Some(Daypart::of(at)),
            platform: None,
        },
        mitigation: s.mitigation,
        learning_rate: s.learning_rate,
        sound: s.sound,
        blend,
        deep: true,
        now: at,
    }
}

/// One held-out case: the taste just before the play, its time and the played item.
struct Case {
    taste: Taste,
    at: Timestamp,
    item: u32,
}

/// A history replayed: the pairs of its trained part, and its held-out cases.
struct Replayed {
    pairs: Vec<[f32; 9]>,
    held_out: Vec<Case>,
    events: usize,
    trained: usize,
}

/// Replays a history (see the module documentation), holding out the newest `share` of
/// its cases; `progress` hears the share done, 0–0.5.
fn replay(
    s: &Setting<'_>,
    history: &[ActivityEvent],
    plan: &TrainingPlan,
    share: f32,
    progress: &mut dyn FnMut(f32),
) -> Result<Replayed, TooLittle> {
    let teaches = |e: &&ActivityEvent| {
        matches!(
            e,
            ActivityEvent::TrackPlayed { .. }
                | ActivityEvent::TrackSkipped { .. }
                | ActivityEvent::TrackLiked { .. }
                | ActivityEvent::AppOpened { .. }
        )
    };
    let mut events: Vec<&ActivityEvent> = history.iter().filter(teaches).collect();
    events.sort_by_key(|e| e.at());
    // The cases: first plays of catalog tracks.
    let mut heard: HashSet<TrackKey> = HashSet::new();
    let mut cases: Vec<(usize, u32)> = Vec::new();
    for (j, e) in events.iter().enumerate() {
        let Some(id) = e.track_id() else { continue };
        let key = TrackKey::of(id);
        let new = heard.insert(key);
        if new
            && matches!(e, ActivityEvent::TrackPlayed { .. })
            && let Some(item) = s.index.item_of(key)
        {
            cases.push((j, item));
        }
    }
    let share = share.clamp(0.0, 1.0);
    let held = ((cases.len() as f32 * share).round() as usize).min(cases.len());
    let trained = cases.len() - held;
    let needed = plan.min_cases.max(1);
    if (share > 0.0 && (held as u32) < needed) || (trained as u32) < needed {
        let total = if share > 0.0 {
            (needed as f32 / share.min(1.0 - share).max(0.01)).ceil() as u32
        } else {
            needed
        };
        return Err(TooLittle {
            cases: cases.len() as u32,
            needed: total.max(2 * needed),
        });
    }
    // The trained cases learnt from, spread evenly.
    let every = trained.div_ceil(plan.max_examples.max(1) as usize).max(1);
    let mut rng = StdRng::seed_from_u64(0x5EED_C057);
    let mut pairs: Vec<[f32; 9]> = Vec::new();
    let mut held_out: Vec<Case> = Vec::with_capacity(held);
    let mut taste = Taste::default();
    let mut next = 0;
    for (j, e) in events.iter().enumerate() {
        if let Some(&(at_event, item)) = cases.get(next)
            && at_event == j
        {
            if next >= trained {
                held_out.push(Case {
                    taste: taste.clone(),
                    at: e.at(),
                    item,
                });
            } else if next % every == 0 && !taste.heard.is_empty() {
                let a = ask(s, &taste, e.at(), s.global, POOL_LIMIT);
                if let Some((_, candidates)) = pool(s.index, &a)
                    && let Some(pos) = candidates.iter().find(|(i, _)| *i == item)
                {
                    let p = pos.1.as_array();
                    // `negatives` others, drawn without replacement.
                    let mut others: Vec<usize> = (0..candidates.len())
                        .filter(|o| candidates[*o].0 != item)
                        .collect();
                    let take = (plan.negatives as usize).min(others.len());
                    for d in 0..take {
                        let pick = rng.random_range(d..others.len());
                        others.swap(d, pick);
                        let q = candidates[others[d]].1.as_array();
                        pairs.push(std::array::from_fn(|f| p[f] - q[f]));
                    }
                }
                progress(0.5 * next as f32 / trained as f32);
            }
            next += 1;
        }
        let traits = e.track_id().and_then(|id| s.index.traits_of(id));
        taste.learn(e, traits, s.learning_rate);
    }
    Ok(Replayed {
        pairs,
        held_out,
        events: events.len(),
        trained,
    })
}

/// Fits and judges a model (see the module documentation); `progress` hears the share
/// done, 0–1.
pub fn train(
    s: &Setting<'_>,
    history: &[ActivityEvent],
    plan: &TrainingPlan,
    progress: &mut dyn FnMut(f32),
) -> Result<Trained, TooLittle> {
    let r = replay(s, history, plan, plan.holdout_share, progress)?;
    let blend = fit(&r.pairs, plan, s.global);
    progress(0.6);
    let evaluation = judge(s, &r.held_out, blend, plan, progress);
    progress(1.0);
    Ok(Trained {
        blend,
        evaluation,
        events: r.events as u32,
        trained_cases: r.trained as u32,
        pairs: r.pairs.len() as u32,
    })
}

/// The blend that best orders the plays of many users' histories (each replayed whole;
/// one too short is left out): the population's, that a user's own model competes
/// with.
pub fn fit_population(
    s: &Setting<'_>,
    histories: &[&[ActivityEvent]],
    plan: &TrainingPlan,
) -> Blend {
    let mut pairs = Vec::new();
    for h in histories {
        if let Ok(r) = replay(s, h, plan, 0.0, &mut |_| {}) {
            pairs.extend(r.pairs);
        }
    }
    // Many more pairs than one user has, fitted to convergence.
    let converge = TrainingPlan {
        epochs: plan.epochs.saturating_mul(5),
        ..*plan
    };
    fit(&pairs, &converge, s.global)
}

/// The weights that best order the pairs, held to the prior's.
fn fit(pairs: &[[f32; 9]], plan: &TrainingPlan, prior: Blend) -> Blend {
    let g = prior.as_array();
    let mut w = g;
    if pairs.is_empty() {
        return prior;
    }
    let n = pairs.len() as f32;
    for _ in 0..plan.epochs {
        let mut grad = [0f32; 9];
        for d in pairs {
            let margin: f32 = w.iter().zip(d).map(|(w, d)| w * d).sum();
            // d/dw log(1 + e^(−m)) = −σ(−m)·d.
            let s = 1.0 / (1.0 + margin.exp());
            for (gr, d) in grad.iter_mut().zip(d) {
                *gr -= s * d / n;
            }
        }
        for f in 0..9 {
            let step = grad[f] + 2.0 * plan.l2 * (w[f] - g[f]);
            w[f] -= plan.learning_rate * step;
        }
        w = Blend::from_array(w).as_array();
    }
    Blend::from_array(w)
}

fn judge(
    s: &Setting<'_>,
    cases: &[Case],
    blend: Blend,
    plan: &TrainingPlan,
    progress: &mut dyn FnMut(f32),
) -> Evaluation {
    let k = plan.k.max(1) as usize;
    let (mut hits, mut global_hits, mut higher, mut lower) = (0u32, 0u32, 0u32, 0u32);
    for (n, c) in cases.iter().enumerate() {
        // Where a blend ranks the play among its candidates (past them all: last), and
        // whether its list holds it.
        // The tracks the user goes on to play first from here to the period's end.
        let ahead: HashSet<u32> = cases[n..].iter().map(|c| c.item).collect();
        let place = |b: Blend| {
            let a = ask(s, &c.taste, c.at, b, POOL_LIMIT);
            let candidates = pool(s.index, &a).map(|p| p.1).unwrap_or_default();
            let rank =
                (candidates.iter().position(|(i, _)| *i == c.item)).unwrap_or(candidates.len());
            let hit = match s.mitigation {
                None => candidates.iter().take(k).any(|(i, _)| ahead.contains(i)),
                Some(_) => recommend(s.index, &Ask { limit: k, ..a })
                    .iter()
                    .any(|x| ahead.contains(&x.item)),
            };
            (rank, hit)
        };
        let ((mine, hit), (global, global_hit)) = (place(blend), place(s.global));
        hits += u32::from(hit);
        global_hits += u32::from(global_hit);
        higher += u32::from(mine < global);
        lower += u32::from(global < mine);
        progress(0.6 + 0.4 * n as f32 / cases.len() as f32);
    }
    let p_value = sign_test(higher, lower);
    let cases_n = cases.len().max(1) as f64;
    Evaluation {
        cases: cases.len() as u32,
        k: k as u32,
        hits,
        global_hits,
        hit_rate: f64::from(hits) / cases_n,
        global_hit_rate: f64::from(global_hits) / cases_n,
        ranked_higher: higher,
        ranked_lower: lower,
        p_value,
        better: hits >= global_hits && higher > lower && p_value <= plan.significance,
    }
}

/// `P(Bin(b + c, ½) ≥ b)`, exactly (in logarithms, so any count works).
pub fn sign_test(b: u32, c: u32) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let ln_choose = |k: u32| -> f64 {
        (1..=k)
            .map(|i| f64::from(n - k + i).ln() - f64::from(i).ln())
            .sum()
    };
    let half = -f64::from(n) * std::f64::consts::LN_2;
    (b..=n)
        .map(|k| (ln_choose(k) + half).exp())
        .sum::<f64>()
        .min(1.0)
}

#[cfg(test)]
mod tests;
