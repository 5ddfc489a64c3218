//! The `[personalization]` section: recommendations and the track catalog (issue 18;
//! it grows with the recommender's settings).

/// Recommendations and the track catalog (`[personalization]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PersonalizationConfig {
    /// The dimension of a catalog track's content embedding (0: tracks carry none).
    pub embedding_dim: usize,
    /// Most items per list on a tier with the `advanced_recommendations` feature.
    pub max_items: usize,
    /// Most items per list on any other tier.
    pub basic_max_items: usize,
    /// Bias mitigation's strengths: the popularity correction (β), diversity of
    /// artists and genres (γ), calibration to the user's genre mix (δ).
    pub mitigation_popularity: f32,
    /// See [`mitigation_popularity`](Self::mitigation_popularity).
    pub mitigation_diversity: f32,
    /// See [`mitigation_popularity`](Self::mitigation_popularity).
    pub mitigation_calibration: f32,
    /// Federated rounds of the sound model (`[personalization.federated]`).
    pub federated: super::FederatedConfig,
    /// Users' own models (`[personalization.custom]`).
    pub custom: super::CustomConfig,
}

impl super::raw::RawPersonalization {
    /// The section, checked.
    pub(super) fn validate(&self) -> Result<PersonalizationConfig, super::ConfigError> {
        use super::ConfigError;
        let max_dim = crate::domain::catalog::MAX_EMBEDDING_DIM;
        if self.embedding_dim > max_dim {
            return Err(ConfigError::new(
                "personalization.embedding_dim",
                format!("must be 0 to {max_dim}, got {}", self.embedding_dim),
            ));
        }
        let items = |key: &str, v: usize| {
            if (1..=500).contains(&v) {
                Ok(v)
            } else {
                Err(ConfigError::new(key, format!("must be 1 to 500, got {v}")))
            }
        };
        let strength = |key: &str, v: f64| {
            if v.is_finite() && (0.0..=100.0).contains(&v) {
                Ok(v as f32)
            } else {
                Err(ConfigError::new(key, format!("must be 0 to 100, got {v}")))
            }
        };
        let (max_items, basic_max_items) = (
            items("personalization.max_items", self.max_items)?,
            items("personalization.basic_max_items", self.basic_max_items)?,
        );
        if basic_max_items > max_items {
            return Err(ConfigError::new(
                "personalization.basic_max_items",
                format!("must be at most max_items ({max_items}), got {basic_max_items}"),
            ));
        }
        Ok(PersonalizationConfig {
            embedding_dim: self.embedding_dim,
            max_items,
            basic_max_items,
            mitigation_popularity: strength(
                "personalization.mitigation_popularity",
                self.mitigation_popularity,
            )?,
            mitigation_diversity: strength(
                "personalization.mitigation_diversity",
                self.mitigation_diversity,
            )?,
            mitigation_calibration: strength(
                "personalization.mitigation_calibration",
                self.mitigation_calibration,
            )?,
            federated: self.federated.validate()?,
            custom: self.custom.validate()?,
        })
    }
}
