//! Small sections of the configuration: encryption at rest and the analytics engine.

use std::path::PathBuf;

/// Where the master key of encryption at rest comes from (`[encryption]`).
#[derive(Clone, Debug, PartialEq)]
pub struct EncryptionConfig {
    /// The key file (a relative path from the working directory); `None`: `master.key`
    /// in the data directory (see [`Config::master_key_file`](super::Config::master_key_file)).
    pub master_key_file: Option<PathBuf>,
    /// An environment variable that, when set, holds the key instead (empty: none).
    pub master_key_env: String,
    /// Whether a first start without a key generates one.
    pub generate_master_key: bool,
}

/// The analytics engine (`[analytics]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnalyticsConfig {
    /// Churn means no activity in this many days (1–28).
    pub churn_horizon_days: u32,
    /// Trained models kept per kind (at least 1).
    pub keep_models: usize,
    /// Behaviour segments (k of k-means, 2–20).
    pub segments: usize,
}
