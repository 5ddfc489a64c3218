//! The collaborative model: item-to-item neighbours from co-listening, trained in batch
//! over the consenting users' tastes.
//!
//! For each user the tracks it is for (a positive [`Heard::weight`]: played or liked more
//! than skipped) form a set `L_u`. Two tracks' co-listening is `c_ij = Σ_u 1/ln(2 + |L_u|)`
//! over the users whose sets hold both (a user who heard everything says less about each
//! pair), and their similarity the shrunk cosine `c_ij / (√(n_i·n_j) + λ)`, `n_i` the
//! users of track `i` and `λ` ([`SHRINK`]) damping pairs seen by few users. Each track
//! keeps its [`NEIGHBOURS`] most similar. The cost is `Σ_u |L_u|²` additions: with the
//! taste's 24 tracks, under 600 per user, run on every core over a compact copy of the
//! sets (4 bytes per set member, both ways).
//!
//! Item-to-item neighbours were chosen over EASE and ALS for the catalog's size: EASE
//! inverts a tracks × tracks matrix (10¹⁰ entries at 100,000 tracks), and ALS scores a
//! user against every track at request time, where neighbours give a candidate set of
//! a few hundred tracks in microseconds (`docs/personalization.md` has the comparison).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::index::{Index, tier_slot};
use crate::domain::taste::{Heard, Taste};
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;

/// Neighbours kept per track.
pub const NEIGHBOURS: usize = 40;

/// The cosine's shrinkage (users).
pub const SHRINK: f32 = 5.0;

/// A trained model (see the module documentation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemModel {
    /// Its version (the next of the store's).
    pub version: u64,
    /// When it was trained.
    pub trained_at: Timestamp,
    /// Users whose tastes it learned from.
    pub users: u64,
    /// The (user, track) pairs it learned from.
    pub interactions: u64,
    /// Its tracks, as [`crate::domain::taste::TrackKey::as_u64`].
    pub tracks: Vec<u64>,
    /// Users for each track, overall and by tier.
    pub plays: Vec<u32>,
    /// See [`plays`](Self::plays).
    pub tier_plays: Vec<[u32; 4]>,
    /// Each track's neighbours: (track number, similarity), strongest first.
    pub neighbours: Vec<Vec<(u32, f32)>>,
}

impl ItemModel {
    /// Why a stored model cannot be served, if it cannot: its lists of different
    /// lengths, a neighbour naming no track, a similarity that is no number.
    pub fn check(&self) -> Result<(), String> {
        let n = self.tracks.len();
        if [
            self.plays.len(),
            self.tier_plays.len(),
            self.neighbours.len(),
        ] != [n; 3]
        {
            return Err(format!(
                "per-track lists of different lengths for {n} tracks"
            ));
        }
        for (i, list) in self.neighbours.iter().enumerate() {
            if let Some((j, s)) = list
                .iter()
                .find(|(j, s)| *j as usize >= n || !s.is_finite())
            {
                return Err(format!("track {i} has a bad neighbour ({j}, {s})"));
            }
        }
        Ok(())
    }
}

/// Collects the tastes to learn from, then trains (see the module documentation).
pub struct Trainer {
    index: Arc<Index>,
    /// The sets, one after another; `starts[u]..starts[u + 1]` is user `u`'s.
    sets: Vec<u32>,
    starts: Vec<u32>,
    tiers: Vec<u8>,
}

/// The items of a taste the user is for, as index numbers (tracks not in the catalog
/// left out), at most once each.
pub(crate) fn liked_items<'t>(
    index: &'t Index,
    heard: &'t [Heard],
) -> impl Iterator<Item = (u32, &'t Heard)> + 't {
    heard
        .iter()
        .filter(|h| h.weight() > 0.0)
        .filter_map(|h| index.item_of(h.track).map(|i| (i, h)))
}

impl Trainer {
    /// A trainer over the tracks of `index`.
    pub fn new(index: Arc<Index>) -> Self {
        Self {
            index,
            sets: Vec::new(),
            starts: vec![0],
            tiers: Vec::new(),
        }
    }

    /// Learns from one user's taste (a user with nothing positive adds nothing).
    pub fn add(&mut self, taste: &Taste, tier: UserTier) {
        let before = self.sets.len();
        self.sets
            .extend(liked_items(&self.index, &taste.heard).map(|(i, _)| i));
        let set = &mut self.sets[before..];
        set.sort_unstable();
        let unique = {
            let mut n = 0;
            for k in 0..set.len() {
                if k == 0 || set[k] != set[k - 1] {
                    set[n] = set[k];
                    n += 1;
                }
            }
            n
        };
        self.sets.truncate(before + unique);
        if unique == 0 {
            return;
        }
        self.starts.push(self.sets.len() as u32);
        self.tiers.push(tier_slot(tier) as u8);
    }

    /// Users with something to learn from so far.
    pub fn users(&self) -> usize {
        self.tiers.len()
    }

    fn set(&self, u: usize) -> &[u32] {
        &self.sets[self.starts[u] as usize..self.starts[u + 1] as usize]
    }

    /// Trains on `threads` threads as model `version`; `progress` is told the share of
    /// tracks done (0–1) now and then.
    pub fn train(
        self,
        version: u64,
        now: Timestamp,
        threads: usize,
        progress: &(dyn Fn(f64) + Sync),
    ) -> ItemModel {
        let n = self.index.len();
        let users = self.users();
        let (mut plays, mut tier_plays) = (vec![0u32; n], vec![[0u32; 4]; n]);
        for u in 0..users {
            for &i in self.set(u) {
                plays[i as usize] += 1;
                tier_plays[i as usize][self.tiers[u] as usize] += 1;
            }
        }
        // Users by track (the other way round), as one flat list.
        let mut starts = vec![0u32; n + 1];
        for &i in &self.sets {
            starts[i as usize + 1] += 1;
        }
        for i in 0..n {
            starts[i + 1] += starts[i];
        }
        let mut fill = starts.clone();
        let mut by_item = vec![0u32; self.sets.len()];
        for u in 0..users {
            for &i in self.set(u) {
                by_item[fill[i as usize] as usize] = u as u32;
                fill[i as usize] += 1;
            }
        }
        let damp: Vec<f32> = (0..users)
            .map(|u| 1.0 / (2.0 + self.set(u).len() as f32).ln())
            .collect();
        let threads = threads.clamp(1, 16);
        let done = std::sync::atomic::AtomicUsize::new(0);
        let chunk = n.div_ceil(threads).max(1);
        let mut neighbours: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
        std::thread::scope(|s| {
            for (c, out) in neighbours.chunks_mut(chunk).enumerate() {
                let (this, starts, by_item, damp, plays, done) =
                    (&self, &starts, &by_item, &damp, &plays, &done);
                s.spawn(move || {
                    let mut co = vec![0f32; n];
                    let mut touched = Vec::new();
                    for (k, slot) in out.iter_mut().enumerate() {
                        let i = c * chunk + k;
                        for &u in &by_item[starts[i] as usize..starts[i + 1] as usize] {
                            let w = damp[u as usize];
                            for &j in this.set(u as usize) {
                                if j as usize == i {
                                    continue;
                                }
                                if co[j as usize] == 0.0 {
                                    touched.push(j);
                                }
                                co[j as usize] += w;
                            }
                        }
                        let ni = plays[i] as f32;
                        let mut sims: Vec<(u32, f32)> = touched
                            .iter()
                            .map(|&j| {
                                let nj = plays[j as usize] as f32;
                                (j, co[j as usize] / ((ni * nj).sqrt() + SHRINK))
                            })
                            .collect();
                        for &j in &touched {
                            co[j as usize] = 0.0;
                        }
                        touched.clear();
                        if sims.len() > NEIGHBOURS {
                            sims.select_nth_unstable_by(NEIGHBOURS, |a, b| {
                                b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
                            });
                            sims.truncate(NEIGHBOURS);
                        }
                        sims.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                        *slot = sims;
                        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        if d % 4096 == 0 {
                            progress(d as f64 / n as f64);
                        }
                    }
                });
            }
        });
        progress(1.0);
        ItemModel {
            version,
            trained_at: now,
            users: users as u64,
            interactions: self.sets.len() as u64,
            tracks: self.index.items.iter().map(|i| i.key.as_u64()).collect(),
            plays,
            tier_plays,
            neighbours,
        }
    }
}
