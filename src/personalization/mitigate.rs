//! Bias mitigation (`bias_mitigation_enabled`): a popularity correction and a greedy
//! re-ranking for diversity and calibration, each with a strength from config
//! (`[personalization]`).
//!
//! From the best `20 × limit` candidates the list is built one slot at a time, taking
//! the candidate with the highest
//!
//! `score − β·log-popularity − γ·(same main artist + ½·share of the list in its main
//! genre) − δ·calibration excess`
//!
//! where log-popularity is `ln(1 + users) / ln(1 + most users)` (0–1), and the
//! calibration excess is how far the list's genre mix would pass the user's own genre
//! mix (the taste's weights, normalised) with the candidate in it, summed over its genres.

use std::collections::HashMap;

use super::index::Index;
use super::recommend::{NumberMap, Terms, W_POPULARITY};
use crate::domain::taste::Taste;

/// The strengths (config `personalization.mitigation_*`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mitigation {
    /// β: the popularity correction.
    pub popularity: f32,
    /// γ: diversity of artists and genres.
    pub diversity: f32,
    /// δ: calibration to the user's genre mix.
    pub calibration: f32,
}

/// Most items per main artist in a non-personal list.
const ARTIST_CAP: usize = 2;

pub(crate) fn log_popularity(index: &Index, i: u32) -> f32 {
    if index.top_plays == 0 {
        return 0.0;
    }
    (1.0 + index.plays[i as usize] as f32).ln() / (1.0 + index.top_plays as f32).ln()
}

/// The mitigated list (see the module documentation).
pub(crate) fn rerank(
    index: &Index,
    taste: Option<&Taste>,
    scored: &[(u32, Terms)],
    limit: usize,
    m: &Mitigation,
) -> Vec<(u32, Terms)> {
    let pool = scored;
    let base: Vec<f32> = pool
        .iter()
        .map(|(i, t)| {
            // What the user's own history says for the item is not corrected.
            let own = t.artist.max(t.collaborative).clamp(0.0, 1.0);
            t.total()
                - W_POPULARITY * t.popularity
                - m.popularity * log_popularity(index, *i) * (1.0 - own)
        })
        .collect();
    // The user's genre mix, normalised (empty: no calibration).
    let target: HashMap<u32, f32> = taste
        .map(|t| {
            let sum: f32 = t.genres.iter().map(|g| f32::from(g.weight)).sum();
            t.genres
                .iter()
                .map(|g| (g.genre, f32::from(g.weight) / sum.max(1.0)))
                .collect()
        })
        .unwrap_or_default();
    let mut artists: NumberMap<u32> = NumberMap::default();
    let mut genres: NumberMap<f32> = NumberMap::default();
    let mut main_genres: NumberMap<u32> = NumberMap::default();
    let mut out = Vec::with_capacity(limit);
    let mut taken = vec![false; pool.len()];
    while out.len() < limit {
        let k = out.len() as f32;
        let mut best: Option<(usize, f32)> = None;
        for (p, (i, _)) in pool.iter().enumerate() {
            if taken[p] {
                continue;
            }
            let item = &index.items[*i as usize];
            let mut v = base[p];
            if let Some(a) = item.artists.first() {
                v -= m.diversity * artists.get(a).copied().unwrap_or(0) as f32;
            }
            if let Some(g) = item.genres.first()
                && k > 0.0
            {
                v -= m.diversity * 0.5 * main_genres.get(g).copied().unwrap_or(0) as f32 / k;
            }
            if !target.is_empty() && !item.genres.is_empty() {
                let share = 1.0 / item.genres.len() as f32;
                let excess: f32 = item
                    .genres
                    .iter()
                    .map(|g| {
                        let after = (genres.get(g).copied().unwrap_or(0.0) + share) / (k + 1.0);
                        (after - target.get(g).copied().unwrap_or(0.0)).max(0.0)
                    })
                    .sum();
                v -= m.calibration * excess;
            }
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((p, v));
            }
        }
        let Some((p, _)) = best else { break };
        taken[p] = true;
        let (i, t) = pool[p];
        let item = &index.items[i as usize];
        if let Some(a) = item.artists.first() {
            *artists.entry(*a).or_default() += 1;
        }
        if let Some(g) = item.genres.first() {
            *main_genres.entry(*g).or_default() += 1;
        }
        for g in item.genres.iter() {
            *genres.entry(*g).or_default() += 1.0 / item.genres.len() as f32;
        }
        out.push((i, t));
    }
    out
}

/// The best items with at most [`ARTIST_CAP`] per main artist (a non-personal list),
/// filled up from the rest if the catalog has too few artists.
pub(crate) fn spread_artists(
    index: &Index,
    scored: &[(u32, Terms)],
    limit: usize,
) -> Vec<(u32, Terms)> {
    let mut per: HashMap<u32, usize> = HashMap::new();
    let mut out = Vec::with_capacity(limit);
    let mut rest = Vec::new();
    for &(i, t) in scored {
        if out.len() == limit {
            break;
        }
        let artist = index.items[i as usize].artists.first().copied();
        let n = artist.map_or(0, |a| *per.entry(a).or_default());
        if n < ARTIST_CAP {
            if let Some(a) = artist {
                *per.entry(a).or_default() += 1;
            }
            out.push((i, t));
        } else {
            rest.push((i, t));
        }
    }
    out.extend(rest.into_iter().take(limit - out.len()));
    out
}
