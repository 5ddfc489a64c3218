//! Listening activity reported by the user's clients: counted under the tier's rate and
//! only with the user's consent to analytics (and, for a minor, a parent's).

use actix::prelude::*;

use super::*;
use crate::domain::activity::EventRules;
use crate::domain::consent::ConsentRefusal;
use crate::domain::history::ActivityHistory;

/// Counts activity events a client reported over its socket (taking one request from
/// the tier's rate) or over HTTP (whose request the authorization counted already).
#[derive(Message, Clone)]
#[rtype(result = "Result<ActivityOutcome, EngineError>")]
pub(crate) struct RecordActivity {
    pub session: SessionId,
    pub events: Vec<ActivityEvent>,
    pub take_request: bool,
}

/// Returns the activity history, and whether it may be analysed now (the consent).
#[derive(Message, Clone)]
#[rtype(result = "Result<(ActivityHistory, bool), EngineError>")]
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
        if msg.take_request
            && let RateDecision::Limited {
                retry_after_secs, ..
            } = self.state.rate.take(limit, RATE_PERIOD, now)
        {
            let tier = crate::metrics::TierLabels {
                tier: self.state.profile.tier.into(),
            };
            self.engine.metrics.rate_limited.get_or_create(&tier).inc();
            return Ok(ActivityOutcome::RateLimited { retry_after_secs });
        }
        let rules = EventRules::live(now, self.state.profile.created_at, &self.policy().features);
        check_batch(&msg.events, &rules)?;
        if let Some(reason) = self.analytics_refusal(now) {
            return Ok(ActivityOutcome::ConsentRequired { reason });
        }
        self.state.history.record(&msg.events);
        self.engine
            .metrics
            .activity_events
            .inc_by(msg.events.len() as u64);
        Ok(ActivityOutcome::Recorded {
            accepted: msg.events.len(),
        })
    }
}

impl UserActor {
    /// Why activity may not be collected now, if it may not.
    fn analytics_refusal(&self, now: Timestamp) -> Option<&'static str> {
        let min_age = self.engine.config.privacy.min_age;
        match self.state.consents.allows(Purpose::Analytics, min_age, now) {
            Ok(()) => None,
            Err(ConsentRefusal::ParentalConsentRequired) => Some(
                "the account is under the minimum age and needs a recorded parental consent \
                 before activity is collected",
            ),
            Err(ConsentRefusal::NotGranted(_)) => Some(
                "activity is collected only with the user's consent to analytics \
                 (PUT /api/v1/users/{id}/consents)",
            ),
        }
    }
}

impl Handler<GetActivity> for UserActor {
    type Result = Result<(ActivityHistory, bool), EngineError>;
    fn handle(&mut self, _: GetActivity, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let allowed = self.analytics_refusal(now).is_none();
        Ok((self.state.history.clone(), allowed))
    }
}
