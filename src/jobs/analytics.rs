//! The `analytics` job: trains the analytics models (churn and segments) on the stored
//! population, as an operator's `POST /api/v1/admin/analytics/train` does.

use futures_util::future::BoxFuture;

use super::{Job, when_training_free};
use crate::domain::job::JobReport;
use crate::engine::{Principal, UserManager};

pub(super) struct Analytics;

impl Job for Analytics {
    fn run<'a>(
        &'a self,
        m: &'a UserManager,
        by: &'a Principal,
    ) -> BoxFuture<'a, Result<JobReport, String>> {
        Box::pin(async move {
            let trained = when_training_free(|| m.analytics().train(by, |_| {}))
                .await
                .map_err(|e| e.to_string())?;
            let churn = &trained.churn;
            let segments = trained.segments.as_ref().map_or(0, |s| s.segments.len());
            let summary = format!(
                "churn model v{} (AUC {:.3}{}) from {} users, {} segments",
                churn.version,
                churn.evaluation.auc,
                if churn.usable {
                    ""
                } else {
                    ", not usable: the one before stays in force"
                },
                churn.training_rows,
                segments
            );
            Ok(JobReport::new(summary)
                .count("users_read", churn.users_scanned)
                .count("training_rows", churn.training_rows)
                .count("churn_version", churn.version)
                .count("usable", u64::from(churn.usable))
                .count("segments", segments as u64))
        })
    }
}
