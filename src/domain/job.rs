//! The scheduler's vocabulary: which jobs exist, why a run started, how it ended, and
//! what is kept of it. Plain data; the scheduler is the `jobs` layer, the history's keeper
//! the engine's jobs facade.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::time::Timestamp;

/// A job the server knows how to run. Each is code (the `jobs` layer); the configuration
/// sets when it runs, and whether.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Provisions the files dropped in the inbox folder.
    Provisioning,
    /// Trains the analytics models (churn and segments) on the stored population.
    Analytics,
    /// Retrains the recommender's collaborative model.
    Recommendations,
    /// Retention: security events past their time are purged.
    Cleanup,
    /// Tier analysis: candidates for a move between tiers, written as a report.
    TierAnalysis,
    /// A point-in-time backup of the store, the newest few kept.
    Backup,
    /// The integration hub: links' listening synced, idle links' tokens refreshed.
    Integrations,
}

impl JobKind {
    /// Every job, in the order `run-all` and listings use.
    pub const ALL: [JobKind; 7] = [
        JobKind::Provisioning,
        JobKind::Analytics,
        JobKind::TierAnalysis,
        JobKind::Recommendations,
        JobKind::Cleanup,
        JobKind::Backup,
        JobKind::Integrations,
    ];

    /// Its name in configuration, URLs, metrics and the audit log.
    pub const fn name(self) -> &'static str {
        match self {
            JobKind::Provisioning => "provisioning",
            JobKind::Analytics => "analytics",
            JobKind::Recommendations => "recommendations",
            JobKind::Cleanup => "cleanup",
            JobKind::TierAnalysis => "tier_analysis",
            JobKind::Backup => "backup",
            JobKind::Integrations => "integrations",
        }
    }

    /// The job named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The names of every job, for messages.
    pub fn names() -> String {
        Self::ALL.map(JobKind::name).join(", ")
    }
}

/// Why a run started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Its schedule was due.
    Schedule,
    /// It was due while the server was down, and started when the server came back.
    CatchUp,
    /// An operator asked for it.
    Operator,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Still running.
    Running,
    /// It did its work.
    Succeeded,
    /// It failed; `message` says why. The schedule tries again at its next time.
    Failed,
    /// The server stopped while it ran (found so at the next start).
    Interrupted,
}

impl Outcome {
    /// Its name in metrics and the audit log.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// What a job reports of a run: a line for people and counts for tools.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    /// One line on what was done.
    pub summary: String,
    /// Named counts (`users_read`, `events_purged`...).
    pub counts: BTreeMap<String, u64>,
}

impl JobReport {
    /// A report of `summary` and no counts yet.
    pub fn new(summary: impl Into<String>) -> Self {
        Self {
            summary: summary.into(),
            counts: BTreeMap::new(),
        }
    }

    /// Adds the count `name`.
    pub fn count(mut self, name: &str, n: u64) -> Self {
        self.counts.insert(name.to_owned(), n);
        self
    }
}

/// One run of a job, as its history keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobRun {
    /// The job's name.
    pub job: String,
    /// Its number among the job's runs, from 1.
    pub run: u64,
    /// Why it started.
    pub trigger: Trigger,
    /// The schedule time it was for (none for an operator's run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<Timestamp>,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// How it ended.
    pub outcome: Outcome,
    /// The job's summary, or why it failed.
    pub message: String,
    /// The job's counts.
    pub counts: BTreeMap<String, u64>,
}

/// What the store keeps of a job between runs and restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobState {
    /// The schedule time it waits for; one in the past at start-up was missed while the
    /// server was down.
    #[serde(default)]
    pub next_due: Option<Timestamp>,
    /// The run in progress; one found at start-up was interrupted.
    #[serde(default)]
    pub running: Option<JobRun>,
    /// The number of the last run started.
    #[serde(default)]
    pub last_run: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in JobKind::ALL {
            assert_eq!(JobKind::from_name(k.name()), Some(k));
        }
        assert_eq!(JobKind::from_name("vacuum"), None);
        assert_eq!(
            JobKind::names(),
            "provisioning, analytics, tier_analysis, recommendations, cleanup, backup, integrations"
        );
    }
}
