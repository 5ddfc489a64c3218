//! The `[personalization]` section: recommendations and the track catalog (issue 18;
//! it grows with the recommender's settings).

/// Recommendations and the track catalog (`[personalization]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonalizationConfig {
    /// The dimension of a catalog track's content embedding (0: tracks carry none).
    pub embedding_dim: usize,
}
