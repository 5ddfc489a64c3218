//! The `integrations` job: links' listening histories synced when due, idle links'
//! tokens refreshed before their providers expire them (see
//! [`Integrations::run_due`](crate::engine::Integrations::run_due)).

use futures_util::future::BoxFuture;

use super::Job;
use crate::domain::job::JobReport;
use crate::engine::{Principal, UserManager};

pub(super) struct LinksJob;

impl Job for LinksJob {
    fn run<'a>(
        &'a self,
        m: &'a UserManager,
        by: &'a Principal,
    ) -> BoxFuture<'a, Result<JobReport, String>> {
        Box::pin(async move {
            let r = m
                .integrations()
                .run_due(by)
                .await
                .map_err(|e| e.to_string())?;
            let summary = format!(
                "{} links synced ({} plays imported), {} idle links refreshed; {} need a new link, {} providers busy, {} failed",
                r.synced, r.plays_imported, r.refreshed, r.reauth_required, r.busy, r.failed
            );
            Ok(JobReport::new(summary)
                .count("users_read", r.users_read as u64)
                .count("links_synced", r.synced as u64)
                .count("plays_imported", r.plays_imported as u64)
                .count("links_refreshed", r.refreshed as u64)
                .count("reauth_required", r.reauth_required as u64)
                .count("busy", r.busy as u64)
                .count("failed", r.failed as u64))
        })
    }
}
