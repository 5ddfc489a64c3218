//! k-means: k-means++ seeding from a fixed seed, then Lloyd's iterations until no point
//! changes cluster. Deterministic for a seed and an input order.

use rand::rngs::Xoshiro256PlusPlus as Rng64;
use rand::{RngExt, SeedableRng};

/// Most Lloyd iterations.
const MAX_ITERATIONS: usize = 100;

/// A clustering.
#[derive(Clone, Debug, PartialEq)]
pub struct Clustering {
    /// `k` centroids of `d` values each, row-major.
    pub centroids: Vec<f64>,
    /// Each point's cluster.
    pub assignment: Vec<usize>,
    /// Points per cluster.
    pub sizes: Vec<u64>,
    /// Sum of squared distances to the assigned centroids.
    pub inertia: f64,
    /// Lloyd iterations run.
    pub iterations: usize,
}

fn dist2(a: &[f64], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = x - f64::from(*y);
            d * d
        })
        .sum()
}

/// The nearest of `k` centroids (row-major, `d` each) to `x`.
pub fn nearest(centroids: &[f64], d: usize, x: &[f32]) -> (usize, f64) {
    centroids
        .chunks_exact(d)
        .enumerate()
        .map(|(i, c)| (i, dist2(c, x)))
        .fold(
            (0, f64::INFINITY),
            |best, c| if c.1 < best.1 { c } else { best },
        )
}

/// Clusters `n` points of `d` values (row-major) into `k`; `None` with fewer points than
/// clusters.
pub fn kmeans(points: &[f32], d: usize, k: usize, seed: u64) -> Option<Clustering> {
    let n = points.len() / d.max(1);
    if k == 0 || d == 0 || n < k {
        return None;
    }
    let row = |i: usize| &points[i * d..(i + 1) * d];
    let mut rng = Rng64::seed_from_u64(seed);
    // k-means++: each next centre drawn with probability proportional to the squared
    // distance to the nearest centre so far.
    let mut centroids: Vec<f64> = row(rng.random_range(0..n))
        .iter()
        .map(|v| f64::from(*v))
        .collect();
    let mut best: Vec<f64> = (0..n).map(|i| dist2(&centroids, row(i))).collect();
    while centroids.len() < k * d {
        let total: f64 = best.iter().sum();
        let pick = if total > 0.0 {
            let mut target = rng.random::<f64>() * total;
            best.iter()
                .position(|w| {
                    target -= w;
                    target <= 0.0
                })
                .unwrap_or(n - 1)
        } else {
            rng.random_range(0..n)
        };
        let start = centroids.len();
        centroids.extend(row(pick).iter().map(|v| f64::from(*v)));
        for (i, b) in best.iter_mut().enumerate() {
            *b = b.min(dist2(&centroids[start..], row(i)));
        }
    }
    let mut assignment = vec![usize::MAX; n];
    let mut iterations = 0;
    loop {
        iterations += 1;
        let mut moved = false;
        let mut sums = vec![0.0; k * d];
        let mut sizes = vec![0u64; k];
        for (i, a) in assignment.iter_mut().enumerate() {
            let (c, _) = nearest(&centroids, d, row(i));
            if *a != c {
                *a = c;
                moved = true;
            }
            sizes[c] += 1;
            for (s, v) in sums[c * d..(c + 1) * d].iter_mut().zip(row(i)) {
                *s += f64::from(*v);
            }
        }
        for c in 0..k {
            if sizes[c] == 0 {
                // An empty cluster takes the point farthest from its centre, which then
                // belongs to it (so a second empty cluster takes another point).
                let far = (0..n).filter(|i| sizes[assignment[*i]] > 1).max_by(|a, b| {
                    let da = dist2(&centroids[assignment[*a] * d..][..d], row(*a));
                    let db = dist2(&centroids[assignment[*b] * d..][..d], row(*b));
                    da.total_cmp(&db)
                });
                if let Some(far) = far {
                    sizes[assignment[far]] -= 1;
                    assignment[far] = c;
                    sizes[c] = 1;
                    for (j, v) in row(far).iter().enumerate() {
                        centroids[c * d + j] = f64::from(*v);
                    }
                    moved = true;
                }
                continue;
            }
            for j in 0..d {
                centroids[c * d + j] = sums[c * d + j] / sizes[c] as f64;
            }
        }
        if !moved || iterations >= MAX_ITERATIONS {
            let inertia = (0..n)
                .map(|i| dist2(&centroids[assignment[i] * d..][..d], row(i)))
                .sum();
            return Some(Clustering {
                centroids,
                assignment,
                sizes,
                inertia,
                iterations,
            });
        }
    }
}

/// The adjusted Rand index of two labelings of the same points: 1 for the same
/// partition (whatever the labels), about 0 for chance agreement.
pub fn adjusted_rand_index(a: &[usize], b: &[usize]) -> f64 {
    use std::collections::HashMap;
    let pairs = |n: u64| (n * n.saturating_sub(1) / 2) as f64;
    let mut table: HashMap<(usize, usize), u64> = HashMap::new();
    let (mut rows, mut cols): (HashMap<usize, u64>, HashMap<usize, u64>) = Default::default();
    for (x, y) in a.iter().zip(b) {
        *table.entry((*x, *y)).or_default() += 1;
        *rows.entry(*x).or_default() += 1;
        *cols.entry(*y).or_default() += 1;
    }
    let index: f64 = table.values().map(|n| pairs(*n)).sum();
    let (ra, cb): (f64, f64) = (
        rows.values().map(|n| pairs(*n)).sum(),
        cols.values().map(|n| pairs(*n)).sum(),
    );
    let expected = ra * cb / pairs(a.len() as u64).max(1.0);
    let max = (ra + cb) / 2.0;
    if (max - expected).abs() < f64::EPSILON {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four planted blobs in five dimensions, `per` points each.
    fn blobs(per: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
        let mut rng = Rng64::seed_from_u64(seed);
        let centres = [
            [0.0, 0.0, 0.0, 0.0, 0.0],
            [4.0, 4.0, 0.0, 0.0, 0.0],
            [0.0, 4.0, 4.0, 0.0, 4.0],
            [4.0, 0.0, 0.0, 4.0, 0.0],
        ];
        let (mut points, mut truth) = (Vec::new(), Vec::new());
        for _ in 0..per {
            for (c, centre) in centres.iter().enumerate() {
                for v in centre {
                    points.push((v + rng.random_range(-1.0..1.0)) as f32);
                }
                truth.push(c);
            }
        }
        (points, truth)
    }

    #[test]
    fn recovers_planted_clusters_the_same_way_every_time() {
        let (points, truth) = blobs(250, 3);
        let c = kmeans(&points, 5, 4, 42).unwrap();
        let ari = adjusted_rand_index(&c.assignment, &truth);
        assert!(ari >= 0.9, "adjusted Rand index {ari}");
        assert_eq!(c.sizes.iter().sum::<u64>(), 1000);
        assert_eq!(
            kmeans(&points, 5, 4, 42),
            Some(c.clone()),
            "stable for a seed"
        );
        assert!(c.iterations < MAX_ITERATIONS);
    }

    #[test]
    fn the_index_by_hand_and_the_refusals() {
        assert_eq!(adjusted_rand_index(&[0, 0, 1, 1], &[5, 5, 9, 9]), 1.0);
        let ari = adjusted_rand_index(&[0, 0, 1, 1], &[0, 1, 0, 1]);
        assert!(ari < 0.0, "worse than chance: {ari}");
        assert!(kmeans(&[1.0, 2.0], 1, 3, 0).is_none());
        assert!(kmeans(&[], 2, 1, 0).is_none());
        // Identical points: one cluster takes them all, the other is filled anyway.
        let same = vec![1.0f32; 20];
        let c = kmeans(&same, 2, 2, 0).unwrap();
        assert_eq!(c.inertia, 0.0);
    }
}
