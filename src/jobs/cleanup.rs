//! The `cleanup` job: retention. Security events older than
//! `privacy.security_event_retention_days` leave the users' records and the archive, as
//! `roster purge` does; invitations past their end are dropped.

use futures_util::future::BoxFuture;

use super::Job;
use crate::domain::job::JobReport;
use crate::engine::{Principal, UserManager};

pub(super) struct Cleanup;

impl Job for Cleanup {
    fn run<'a>(
        &'a self,
        m: &'a UserManager,
        by: &'a Principal,
    ) -> BoxFuture<'a, Result<JobReport, String>> {
        Box::pin(async move {
            let r = m
                .ops()
                .purge_security_events(by)
                .await
                .map_err(|e| e.to_string())?;
            let invitations = m
                .provisioning()
                .purge_invitations(by)
                .await
                .map_err(|e| e.to_string())?;
            let summary = format!(
                "security events before {} purged: {} from {} records, {} archived; {invitations} expired invitations dropped",
                r.cutoff, r.in_state, r.rewritten, r.archived
            );
            Ok(JobReport::new(summary)
                .count("users_read", r.users as u64)
                .count("records_rewritten", r.rewritten as u64)
                .count("events_purged", r.in_state as u64)
                .count("archived_purged", r.archived as u64)
                .count("invitations_purged", invitations as u64))
        })
    }
}
