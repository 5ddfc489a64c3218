//! The `cleanup` job: retention. Security events older than
//! `privacy.security_event_retention_days` leave the users' records and the archive, as
//! `roster purge` does, with the records' ended sessions and expired link challenges;
//! invitations past their end are dropped, and tombstones older than
//! `privacy.tombstone_retention_days`.

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
            let tombstones = m
                .ops()
                .purge_tombstones(by)
                .await
                .map_err(|e| e.to_string())?;
            let summary = format!(
                "security events before {} purged: {} from {} records, {} archived; {} ended sessions, {} expired link challenges, {invitations} expired invitations and {tombstones} tombstones past retention dropped",
                r.cutoff, r.in_state, r.rewritten, r.archived, r.sessions, r.challenges
            );
            Ok(JobReport::new(summary)
                .count("users_read", r.users as u64)
                .count("records_rewritten", r.rewritten as u64)
                .count("events_purged", r.in_state as u64)
                .count("archived_purged", r.archived as u64)
                .count("sessions_purged", r.sessions as u64)
                .count("challenges_purged", r.challenges as u64)
                .count("invitations_purged", invitations as u64)
                .count("tombstones_purged", tombstones as u64))
        })
    }
}
