//! A desktop companion's pushes through its link (the creative tools): the key checked
//! against the hash the link keeps, in constant time; one request taken from the
//! tier's rate; the events counted once each, durably; and, with the consent to
//! analytics, each new session counted in the history as the desktop app opened.

use actix::prelude::*;
use subtle::ConstantTimeEq as _;

use super::*;
use crate::domain::activity::Platform;
use crate::domain::companion::{CompanionOutcome, CreativeEvent, UNKNOWN_KEY, check_push};
use crate::domain::link::LinkStatus;

/// Counts a companion's events for the link to `provider` whose key hashes to
/// `key_hash` (durable when it replies).
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<CompanionOutcome>, EngineError>")]
pub(crate) struct CompanionPush {
    pub provider: String,
    pub key_hash: String,
    pub events: Vec<CreativeEvent>,
}

impl Handler<CompanionPush> for UserActor {
    type Result = Result<Durable<CompanionOutcome>, EngineError>;
    fn handle(&mut self, msg: CompanionPush, _: &mut Context<Self>) -> Self::Result {
        self.durably(|a| {
            let now = a.touch();
            let link = a
                .state
                .links
                .as_deref()
                .and_then(|l| l.get(&msg.provider))
                .ok_or(EngineError::Unauthenticated(UNKNOWN_KEY))?;
            let same = link.tokens.access.as_bytes().ct_eq(msg.key_hash.as_bytes());
            if !bool::from(same) {
                return Err(EngineError::Unauthenticated(UNKNOWN_KEY));
            }
            if link.status == LinkStatus::Suspended {
                return Err(EngineError::TierLimit(format!(
                    "the {} link is suspended: the {} tier does not include it",
                    msg.provider, a.state.profile.tier
                )));
            }
            a.soften();
            let limit = a.policy().requests_per_hour;
            if let RateDecision::Limited {
                retry_after_secs, ..
            } = a.state.rate.take(limit, RATE_PERIOD, now)
            {
                a.state.refusals.record(now);
                return Ok(CompanionOutcome::RateLimited {
                    retry_after_secs,
                    limit: limit.value().unwrap_or(u64::MAX),
                });
            }
            check_push(&msg.events, now, a.state.profile.created_at)?;
            let analytics = a.analytics_refusal(now).is_none();
            let mut next = a.state.clone();
            let Some(link) = next.links.as_mut().and_then(|l| l.get_mut(&msg.provider)) else {
                return Err(EngineError::Unauthenticated(UNKNOWN_KEY));
            };
            let (fresh, counted) = link
                .creative
                .get_or_insert_with(Box::default)
                .record(&msg.events);
            if analytics {
                let opened: Vec<ActivityEvent> = fresh
                    .iter()
                    .filter_map(|&i| match &msg.events[i] {
                        CreativeEvent::Session { started_at, .. } => {
                            Some(ActivityEvent::AppOpened {
                                at: *started_at,
                                platform: Platform::Desktop,
                            })
                        }
                        CreativeEvent::Export { .. } => None,
                    })
                    .collect();
                next.history.record(&opened);
            }
            a.persist(next, now)?;
            Ok(CompanionOutcome::Counted(counted))
        })
    }
}
