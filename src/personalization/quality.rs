//! Measures of a recommender over many lists: accuracy against held-out plays (hit rate
//! and NDCG at k) and what the lists expose (catalog coverage, the Gini coefficient of
//! exposure, the share of slots given to the most popular fifth of the catalog, and
//! intra-list diversity).

use serde::Serialize;

use super::index::Index;

/// The figures of [`Exposure::report`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Quality {
    /// Lists measured.
    pub lists: u64,
    /// Held-out cases measured (0: no accuracy figures).
    pub cases: u64,
    /// Share of held-out tracks found in the first `k` items.
    pub hit_rate: f64,
    /// Mean NDCG at `k` of the held-out track (`1 / log2(rank + 2)` when found).
    pub ndcg: f64,
    /// Share of the catalog recommended at least once.
    pub coverage: f64,
    /// Gini coefficient of how often each catalog track was recommended (0: evenly, 1:
    /// all slots to one track).
    pub gini: f64,
    /// Share of slots given to the most popular 20% of tracks.
    pub head_share: f64,
    /// Mean dissimilarity of two items of a list: 1 for another main artist and no
    /// shared genre, ½ for one of the two, 0 for neither.
    pub intra_list_diversity: f64,
}

/// The figures of one list (`?debug=true` on a recommendations call).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ListFigures {
    /// Items in it.
    pub items: usize,
    /// Share of them among the most popular 20% of the catalog.
    pub head_share: f64,
    /// Mean dissimilarity of two of its items (as in [`Quality`]).
    pub intra_list_diversity: f64,
    /// Distinct main artists.
    pub artists: usize,
    /// Distinct genres.
    pub genres: usize,
    /// Mean popularity of its items, 0–1 (users over the most any track had, in the
    /// model's training).
    pub mean_popularity: f64,
}

impl ListFigures {
    /// The figures of `list`.
    pub fn of(index: &Index, list: &[u32]) -> Self {
        let n = list.len().max(1) as f64;
        let mut artists: Vec<u32> = list
            .iter()
            .filter_map(|i| index.items[*i as usize].artists.first().copied())
            .collect();
        artists.sort_unstable();
        artists.dedup();
        let mut genres: Vec<u32> = list
            .iter()
            .flat_map(|i| index.items[*i as usize].genres.iter().copied())
            .collect();
        genres.sort_unstable();
        genres.dedup();
        Self {
            items: list.len(),
            head_share: list.iter().filter(|i| index.head[**i as usize]).count() as f64 / n,
            intra_list_diversity: diversity(index, list).unwrap_or(0.0),
            artists: artists.len(),
            genres: genres.len(),
            mean_popularity: list
                .iter()
                .map(|i| f64::from(index.popularity(*i)))
                .sum::<f64>()
                / n,
        }
    }
}

/// The mean dissimilarity of the pairs of `list` (none for fewer than two items).
fn diversity(index: &Index, list: &[u32]) -> Option<f64> {
    let (mut sum, mut pairs) = (0.0, 0u32);
    for (a, &x) in list.iter().enumerate() {
        for &y in &list[a + 1..] {
            let (x, y) = (&index.items[x as usize], &index.items[y as usize]);
            let artist = x.artists.first() != y.artists.first() || x.artists.is_empty();
            let genre = !x.genres.iter().any(|g| y.genres.contains(g));
            sum += (f64::from(u8::from(artist)) + f64::from(u8::from(genre))) / 2.0;
            pairs += 1;
        }
    }
    (pairs > 0).then(|| sum / f64::from(pairs))
}

/// Accumulates lists and held-out cases.
#[derive(Clone, Debug)]
pub struct Exposure {
    counts: Vec<u32>,
    head: Vec<bool>,
    slots: u64,
    lists: u64,
    cases: u64,
    hits: u64,
    ndcg: f64,
    diversity: f64,
    k: usize,
}

impl Exposure {
    /// Measures at `k` over the catalog of `index` (its popularity decides the head).
    pub fn new(index: &Index, k: usize) -> Self {
        Self {
            counts: vec![0; index.len()],
            head: index.head.clone(),
            slots: 0,
            lists: 0,
            cases: 0,
            hits: 0,
            ndcg: 0.0,
            diversity: 0.0,
            k,
        }
    }

    /// Counts a list (its first `k` items).
    pub fn add_list(&mut self, index: &Index, list: &[u32]) {
        let list = &list[..list.len().min(self.k)];
        self.lists += 1;
        for &i in list {
            self.counts[i as usize] += 1;
            self.slots += 1;
        }
        if let Some(d) = diversity(index, list) {
            self.diversity += d;
        }
    }

    /// Counts a list made for a user whose held-out track is `held`.
    pub fn add_case(&mut self, index: &Index, list: &[u32], held: u32) {
        self.add_list(index, list);
        self.cases += 1;
        if let Some(rank) = list.iter().take(self.k).position(|i| *i == held) {
            self.hits += 1;
            self.ndcg += 1.0 / (rank as f64 + 2.0).log2();
        }
    }

    /// The figures.
    pub fn report(&self) -> Quality {
        let n = self.counts.len();
        let per = |x: f64, d: u64| if d == 0 { 0.0 } else { x / d as f64 };
        let mut sorted = self.counts.clone();
        sorted.sort_unstable();
        let total: f64 = sorted.iter().map(|c| f64::from(*c)).sum();
        // Gini = Σ (2i − n − 1)·x_i / (n·Σx), x ascending, i from 1.
        let gini = if total == 0.0 || n == 0 {
            0.0
        } else {
            sorted
                .iter()
                .enumerate()
                .map(|(i, c)| (2.0 * (i as f64 + 1.0) - n as f64 - 1.0) * f64::from(*c))
                .sum::<f64>()
                / (n as f64 * total)
        };
        let head: u64 = self
            .counts
            .iter()
            .zip(&self.head)
            .filter(|(_, h)| **h)
            .map(|(c, _)| u64::from(*c))
            .sum();
        Quality {
            lists: self.lists,
            cases: self.cases,
            hit_rate: per(self.hits as f64, self.cases),
            ndcg: per(self.ndcg, self.cases),
            coverage: if n == 0 {
                0.0
            } else {
                self.counts.iter().filter(|c| **c > 0).count() as f64 / n as f64
            },
            gini,
            head_share: per(head as f64, self.slots),
            intra_list_diversity: per(self.diversity, self.lists),
        }
    }
}
