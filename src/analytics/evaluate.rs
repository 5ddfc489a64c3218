//! How good a probabilistic classifier is on held-out rows: the area under the ROC
//! curve (ranking), log loss (sharpness and honesty together), and a reliability table
//! (calibration: of the users given about 30%, did about 30% churn?).

use serde::{Deserialize, Serialize};

/// Bins of the reliability table.
pub const BINS: usize = 10;

/// One bin of the reliability table: predictions in `[lower, lower + 0.1)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReliabilityBin {
    /// The bin's lower edge.
    pub lower: f64,
    /// Rows whose prediction fell in it.
    pub rows: u64,
    /// Their mean prediction (`null` for an empty bin).
    pub predicted: Option<f64>,
    /// The share of them that were positive (`null` for an empty bin).
    pub observed: Option<f64>,
}

/// The figures of an evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Evaluation {
    /// Rows evaluated.
    pub rows: u64,
    /// Of which positive.
    pub positives: u64,
    /// Area under the ROC curve: the chance that a random positive is ranked above a
    /// random negative (ties count half). 0.5 is guessing.
    pub auc: f64,
    /// Mean negative log-likelihood (natural log; lower is better).
    pub log_loss: f64,
    /// Mean squared error of the probabilities (Brier score).
    pub brier: f64,
    /// Reliability table, 10 equal-width bins.
    pub reliability: Vec<ReliabilityBin>,
    /// Row-weighted mean of |predicted − observed| over the bins (expected calibration
    /// error).
    pub calibration_gap: f64,
}

/// Area under the ROC curve of `scores` against `labels` (ties share their rank);
/// 0.5 when one class is missing.
pub fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let (mut rank_sum, mut pos) = (0.0, 0u64);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their mean.
        let mean_rank = (i + j + 2) as f64 / 2.0;
        for k in &order[i..=j] {
            if labels[*k] {
                rank_sum += mean_rank;
                pos += 1;
            }
        }
        i = j + 1;
    }
    let neg = scores.len() as u64 - pos;
    if pos == 0 || neg == 0 {
        return 0.5;
    }
    let (p, n) = (pos as f64, neg as f64);
    (rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

/// Evaluates predicted probabilities against labels.
pub fn evaluate(predicted: &[f64], labels: &[bool]) -> Evaluation {
    let n = predicted.len().max(1) as f64;
    let (mut log_loss, mut brier) = (0.0, 0.0);
    let mut bins = [(0u64, 0.0f64, 0u64); BINS];
    for (p, y) in predicted.iter().zip(labels) {
        let t = f64::from(u8::from(*y));
        let q = p.clamp(1e-15, 1.0 - 1e-15);
        log_loss -= t * q.ln() + (1.0 - t) * (1.0 - q).ln();
        brier += (p - t) * (p - t);
        let b = ((p * BINS as f64) as usize).min(BINS - 1);
        bins[b].0 += 1;
        bins[b].1 += p;
        bins[b].2 += u64::from(*y);
    }
    let mut gap = 0.0;
    let reliability = bins
        .iter()
        .enumerate()
        .map(|(i, (rows, sum, pos))| {
            let (predicted, observed) = if *rows == 0 {
                (None, None)
            } else {
                let (pr, ob) = (sum / *rows as f64, *pos as f64 / *rows as f64);
                gap += *rows as f64 * (pr - ob).abs();
                (Some(pr), Some(ob))
            };
            ReliabilityBin {
                lower: i as f64 / BINS as f64,
                rows: *rows,
                predicted,
                observed,
            }
        })
        .collect();
    Evaluation {
        rows: predicted.len() as u64,
        positives: labels.iter().filter(|y| **y).count() as u64,
        auc: auc(predicted, labels),
        log_loss: log_loss / n,
        brier: brier / n,
        reliability,
        calibration_gap: gap / n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_by_hand() {
        assert_eq!(
            auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            0.75
        );
        assert_eq!(auc(&[0.1, 0.2], &[false, true]), 1.0);
        assert_eq!(auc(&[0.2, 0.1], &[false, true]), 0.0);
        assert_eq!(auc(&[0.5, 0.5], &[false, true]), 0.5, "a tie counts half");
        assert_eq!(auc(&[0.5, 0.7], &[true, true]), 0.5, "one class only");
    }

    #[test]
    fn reliability_and_losses_by_hand() {
        let p = [0.05, 0.05, 0.95, 0.95, 0.55];
        let y = [false, false, true, true, false];
        let e = evaluate(&p, &y);
        assert_eq!((e.rows, e.positives), (5, 2));
        assert_eq!(e.reliability.len(), BINS);
        assert_eq!(e.reliability[0].rows, 2);
        assert_eq!(e.reliability[0].observed, Some(0.0));
        assert_eq!(e.reliability[5].predicted, Some(0.55));
        assert_eq!(e.reliability[9].observed, Some(1.0));
        assert_eq!(e.reliability[3].predicted, None);
        // Gaps: 0.05 (×2), 0.05 (×2), 0.55 (×1) → 0.75 / 5.
        assert!((e.calibration_gap - 0.15).abs() < 1e-12);
        let ll = -(4.0 * 0.95f64.ln() + 0.45f64.ln()) / 5.0;
        assert!((e.log_loss - ll).abs() < 1e-12);
        assert!((e.brier - (4.0 * 0.0025 + 0.3025) / 5.0).abs() < 1e-12);
    }
}
