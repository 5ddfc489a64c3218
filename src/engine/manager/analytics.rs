//! The analytics engine (issue 17): activity in from the user's clients, and the reports
//! over the stored population. Batch work reads the store off the actor threads, never
//! by activating every user.

use super::UserManager;
use super::principal::{Principal, UserSession};
use crate::analytics::Member;
use crate::analytics::cohorts::{CohortBuilder, CohortQuery, CohortTable, MAX_PERIODS};
use crate::analytics::overview::{Overview, OverviewBuilder};
use crate::domain::activity::ActivityEvent;
use crate::domain::ids::UserId;
use crate::domain::time::Timestamp;
use crate::domain::validation::ValidationError;
use crate::engine::EngineError;
use crate::engine::outcomes::ActivityOutcome;
use crate::engine::population;
use crate::engine::user::RecordActivity;

/// See [`UserManager::analytics`].
#[derive(Clone, Copy)]
pub struct Analytics<'a> {
    pub(super) m: &'a UserManager,
}

impl Analytics<'_> {
    /// Counts activity events the user `id` reports over HTTP (a server-side client of
    /// its own): the same rules as the socket's frame — all or none, only with the
    /// user's consent to analytics — and the request counts once against the tier's
    /// rate (its authorization counted it).
    pub async fn record_activity(
        self,
        by: &Principal,
        id: UserId,
        events: Vec<ActivityEvent>,
    ) -> Result<ActivityOutcome, EngineError> {
        let session = by.own(id)?;
        let me = UserSession { user: id, session };
        self.record(me, events, false).await
    }

    /// Sends the events to the user's actor; `take_request` when the transport has not
    /// counted the request against the rate yet.
    pub(super) async fn record(
        self,
        me: UserSession,
        events: Vec<ActivityEvent>,
        take_request: bool,
    ) -> Result<ActivityOutcome, EngineError> {
        let msg = RecordActivity {
            session: me.session,
            events,
            take_request,
        };
        match self.m.engine.call(me.user, msg).await {
            Err(EngineError::NotFound) => Ok(ActivityOutcome::SessionInvalid),
            other => other,
        }
    }

    /// The population at a glance: users by tier, DAU/WAU/MAU, events (operators).
    pub async fn overview(self, by: &Principal) -> Result<Overview, EngineError> {
        by.privileged()?;
        let now = self.m.now();
        let b = self
            .batch(OverviewBuilder::new(now), now, |b, m| b.add(m))
            .await?;
        Ok(b.finish())
    }

    /// The retention cohort table (operators); see `docs/analytics.md` for how to read it.
    pub async fn cohorts(
        self,
        by: &Principal,
        query: CohortQuery,
    ) -> Result<CohortTable, EngineError> {
        by.privileged()?;
        if !(1..=MAX_PERIODS).contains(&query.periods) {
            return Err(
                ValidationError::new("periods", format!("must be 1 to {MAX_PERIODS}")).into(),
            );
        }
        let now = self.m.now();
        let b = self
            .batch(CohortBuilder::new(query, now), now, |b, m| b.add(m))
            .await?;
        Ok(b.finish())
    }

    /// Runs a batch job over the stored population: live actors write their unsaved
    /// activity first (so the job sees what clients sent until now), then the store is
    /// scanned on the blocking pool, each member handed to `visit` with `acc`.
    async fn batch<A: Send + 'static>(
        self,
        mut acc: A,
        now: Timestamp,
        visit: fn(&mut A, &Member<'_>),
    ) -> Result<A, EngineError> {
        self.m.snapshot_live().await?;
        let engine = self.m.engine.clone();
        tokio::task::spawn_blocking(move || {
            population::scan(&engine, now, |m| visit(&mut acc, m)).map(|_| acc)
        })
        .await
        .map_err(|e| EngineError::Internal(format!("batch job failed: {e}")))?
    }
}
