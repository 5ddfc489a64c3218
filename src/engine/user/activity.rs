//! Listening activity reported by the user's clients: counted under the tier's rate and
//! only with the user's consent to analytics (and, for a minor, a parent's).

use actix::prelude::*;

use super::*;

/// Counts activity events a socket reported, as one request against the tier's rate.
#[derive(Message, Clone)]
#[rtype(result = "Result<ActivityOutcome, EngineError>")]
pub(crate) struct RecordActivity {
    pub session: SessionId,
    pub events: Vec<ActivityEvent>,
}

/// Returns the activity counters.
#[derive(Message, Clone)]
#[rtype(result = "Result<ActivityCounters, EngineError>")]
pub(crate) struct GetActivity;

impl Handler<RecordActivity> for UserActor {
    type Result = Result<ActivityOutcome, EngineError>;
    fn handle(&mut self, msg: RecordActivity, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        if self.state.touch_session(msg.session, now).is_none() {
            return Ok(ActivityOutcome::SessionInvalid);
        }
        self.soft_dirty = true;
        let limit = self.policy().requests_per_hour;
        if let RateDecision::Limited {
            retry_after_secs, ..
        } = self.state.rate.take(limit, RATE_PERIOD, now)
        {
            let tier = crate::metrics::TierLabels {
                tier: self.state.profile.tier.into(),
            };
            self.engine.metrics.rate_limited.get_or_create(&tier).inc();
            return Ok(ActivityOutcome::RateLimited { retry_after_secs });
        }
        check_batch(&msg.events, now)?;
        let min_age = self.engine.config.privacy.min_age;
        match self
            .state
            .consents
            .allows(crate::domain::consent::Purpose::Analytics, min_age, now)
        {
            Ok(()) => {}
            Err(crate::domain::consent::ConsentRefusal::ParentalConsentRequired) => {
                return Ok(ActivityOutcome::ConsentRequired {
                    reason: "the account is under the minimum age and needs a recorded parental consent \
                             before activity is collected",
                });
            }
            Err(crate::domain::consent::ConsentRefusal::NotGranted(_)) => {
                return Ok(ActivityOutcome::ConsentRequired {
                    reason: "activity is collected only with the user's consent to analytics \
                             (PUT /api/v1/users/{id}/consents)",
                });
            }
        }
        self.state.activity.record(&msg.events);
        self.engine
            .metrics
            .activity_events
            .inc_by(msg.events.len() as u64);
        Ok(ActivityOutcome::Recorded {
            accepted: msg.events.len(),
        })
    }
}

impl Handler<GetActivity> for UserActor {
    type Result = Result<ActivityCounters, EngineError>;
    fn handle(&mut self, _: GetActivity, _: &mut Context<Self>) -> Self::Result {
        self.touch();
        Ok(self.state.activity.clone())
    }
}
