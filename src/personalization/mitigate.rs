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
use super::recommend::{Ask, NumberMap, Terms};

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

/// A candidate as the greedy loop reads it: its score before the list's terms, and its
/// main artist, main genre and genres as dense numbers (`NONE` if it has none).
struct Candidate {
    base: f32,
    artist: u32,
    main_genre: u32,
    /// Its genres in [`Dense::genres`] order: `genres[from..to]`.
    from: u32,
    to: u32,
}

const NONE: u32 = u32::MAX;

/// Numbers the artists and genres of the pool densely, so the loop counts in arrays.
#[derive(Default)]
struct Dense {
    numbers: NumberMap<u32>,
    next: u32,
}

impl Dense {
    fn of(&mut self, key: u32) -> u32 {
        let next = &mut self.next;
        *self.numbers.entry(key).or_insert_with(|| {
            *next += 1;
            *next - 1
        })
    }
}

/// The mitigated list (see the module documentation).
pub(crate) fn rerank(
    index: &Index,
    ask: &Ask<'_>,
    scored: &[(u32, Terms)],
    m: &Mitigation,
) -> Vec<(u32, Terms)> {
    let (taste, limit) = (ask.taste, ask.limit);
    let pool = scored;
    let (mut artist_numbers, mut genre_numbers) = (Dense::default(), Dense::default());
    let mut genres_of: Vec<u32> = Vec::with_capacity(pool.len() * 2);
    let candidates: Vec<Candidate> = pool
        .iter()
        .map(|(i, t)| {
            let item = &index.items[*i as usize];
            // What the user's own history says for the item is not corrected.
            let own = t.artist.max(t.collaborative).clamp(0.0, 1.0);
            let from = genres_of.len() as u32;
            genres_of.extend(item.genres.iter().map(|g| genre_numbers.of(*g)));
            Candidate {
                base: t.total(&ask.blend)
                    - ask.blend.popularity * t.popularity
                    - m.popularity * log_popularity(index, *i) * (1.0 - own),
                artist: item.artists.first().map_or(NONE, |a| artist_numbers.of(*a)),
                main_genre: item
                    .genres
                    .first()
                    .map_or(NONE, |_| genres_of[from as usize]),
                from,
                to: genres_of.len() as u32,
            }
        })
        .collect();
    // The user's genre mix, normalised, per dense genre (none: no calibration).
    let mut target = vec![0f32; genre_numbers.next as usize];
    let calibrate = match taste {
        Some(t) if !t.genres.is_empty() => {
            let sum: f32 = t.genres.iter().map(|g| f32::from(g.weight)).sum();
            for g in t.genres.iter() {
                if let Some(n) = genre_numbers.numbers.get(&g.genre) {
                    target[*n as usize] = f32::from(g.weight) / sum.max(1.0);
                }
            }
            true
        }
        _ => false,
    };
    let mut artists = vec![0u32; artist_numbers.next as usize];
    let mut main_genres = vec![0u32; genre_numbers.next as usize];
    let mut genres = vec![0f32; genre_numbers.next as usize];
    let mut out = Vec::with_capacity(limit);
    let mut taken = vec![false; pool.len()];
    while out.len() < limit {
        let k = out.len() as f32;
        let mut best: Option<(usize, f32)> = None;
        for (p, c) in candidates.iter().enumerate() {
            if taken[p] {
                continue;
            }
            let mut v = c.base;
            if c.artist != NONE {
                v -= m.diversity * artists[c.artist as usize] as f32;
            }
            if c.main_genre != NONE && k > 0.0 {
                v -= m.diversity * 0.5 * main_genres[c.main_genre as usize] as f32 / k;
            }
            if calibrate && c.to > c.from {
                let own = &genres_of[c.from as usize..c.to as usize];
                let share = 1.0 / own.len() as f32;
                let excess: f32 = own
                    .iter()
                    .map(|g| {
                        let after = (genres[*g as usize] + share) / (k + 1.0);
                        (after - target[*g as usize]).max(0.0)
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
        let c = &candidates[p];
        if c.artist != NONE {
            artists[c.artist as usize] += 1;
        }
        if c.main_genre != NONE {
            main_genres[c.main_genre as usize] += 1;
        }
        let own = &genres_of[c.from as usize..c.to as usize];
        for g in own {
            genres[*g as usize] += 1.0 / own.len() as f32;
        }
        out.push(pool[p]);
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
