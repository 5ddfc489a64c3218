//! Linked accounts at integration providers: a link begun (its `state` and PKCE
//! verifier kept here until the callback), finished (its tokens kept here, sealed under
//! the user's data key with the rest of the state), listed and removed. The tier's
//! limits are checked here, against the links the actor holds, so two links begun at
//! once cannot both pass a limit of one.
//!
//! A desktop companion's pushes through its link (the creative tools) are counted here
//! too: the key checked against the hash the link keeps, in constant time; one request
//! taken from the tier's rate; each event once, durably; and, with the consent to
//! analytics, each new session counted in the history as the desktop app opened.
//!
//! No network here: the manager talks to the provider on the request's task, between
//! these messages.

use actix::prelude::*;
use subtle::ConstantTimeEq as _;

use super::*;
use crate::domain::activity::Platform;
use crate::domain::companion::{CompanionOutcome, CreativeEvent, UNKNOWN_KEY, check_push};
use crate::domain::link::{
    LinkStatus, LinkView, LinkedAccount, Links, PendingLink, StateRefusal, TierRefusal,
};

/// Remembers a link begun (durable: the callback may come after a restart).
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<()>, EngineError>")]
pub(crate) struct BeginLink {
    pub pending: PendingLink,
}

/// Takes the link begun with `provider` whose `state` secret is `secret`, once
/// (durable, so a replay after a restart is refused too). Refused if the session that
/// began it has ended.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<PendingLink>, EngineError>")]
pub(crate) struct TakeLink {
    pub provider: String,
    pub secret: Vec<u8>,
}

/// Keeps a link made (durable), in place of an earlier link to the same provider.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<LinkView>, EngineError>")]
pub(crate) struct PutLink {
    pub account: LinkedAccount,
}

/// The user's links (never their tokens).
#[derive(Message, Clone)]
#[rtype(result = "Result<Vec<LinkView>, EngineError>")]
pub(crate) struct GetLinks;

/// Removes the link to `provider` (durable); answers it, tokens and all, so that the
/// manager can revoke them at the provider.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<LinkedAccount>, EngineError>")]
pub(crate) struct RemoveLink {
    pub provider: String,
}

impl Handler<BeginLink> for UserActor {
    type Result = Result<Durable<()>, EngineError>;
    fn handle(&mut self, msg: BeginLink, _: &mut Context<Self>) -> Self::Result {
        self.durably(|a| {
            let now = a.touch();
            a.check_link_tier(&msg.pending.provider)?;
            let mut next = a.state.clone();
            next.links
                .get_or_insert_with(Box::default)
                .begin(msg.pending, now);
            a.persist(next, now)
        })
    }
}

impl Handler<TakeLink> for UserActor {
    type Result = Result<Durable<PendingLink>, EngineError>;
    fn handle(&mut self, msg: TakeLink, _: &mut Context<Self>) -> Self::Result {
        self.durably(|a| {
            let now = a.touch();
            let mut next = a.state.clone();
            let links = next.links.get_or_insert_with(Box::default);
            let taken = links.take_pending(&msg.provider, &msg.secret, now);
            if taken == Err(StateRefusal::Unknown) {
                return Err(state_refused(StateRefusal::Unknown));
            }
            // Used or expired, it is gone for good.
            tidy(&mut next.links);
            a.persist(next, now)?;
            let pending = taken.map_err(state_refused)?;
            if !a
                .state
                .sessions
                .iter()
                .any(|s| s.id == pending.session && s.is_active(now))
            {
                return Err(EngineError::Forbidden(
                    "the session that began this link has ended; sign in and link again",
                ));
            }
            Ok(pending)
        })
    }
}

impl Handler<PutLink> for UserActor {
    type Result = Result<Durable<LinkView>, EngineError>;
    fn handle(&mut self, msg: PutLink, _: &mut Context<Self>) -> Self::Result {
        self.durably(|a| {
            let now = a.touch();
            // The tier may have changed since the link began.
            a.check_link_tier(&msg.account.provider)?;
            let view = msg.account.view();
            let mut next = a.state.clone();
            next.links.get_or_insert_with(Box::default).put(msg.account);
            a.persist(next, now)?;
            Ok(view)
        })
    }
}

impl Handler<GetLinks> for UserActor {
    type Result = Result<Vec<LinkView>, EngineError>;
    fn handle(&mut self, _: GetLinks, _: &mut Context<Self>) -> Self::Result {
        self.touch();
        let links = self.state.links.as_deref();
        Ok(links
            .map(|l| l.accounts.iter().map(LinkedAccount::view).collect())
            .unwrap_or_default())
    }
}

impl Handler<RemoveLink> for UserActor {
    type Result = Result<Durable<LinkedAccount>, EngineError>;
    fn handle(&mut self, msg: RemoveLink, _: &mut Context<Self>) -> Self::Result {
        self.durably(|a| {
            let now = a.touch();
            let mut next = a.state.clone();
            let removed = next
                .links
                .as_mut()
                .and_then(|l| l.remove(&msg.provider))
                .ok_or(EngineError::NoSuch("link"))?;
            tidy(&mut next.links);
            a.persist(next, now)?;
            Ok(removed)
        })
    }
}

impl UserActor {
    /// Whether the user's tier admits a link to `provider`: a 403 naming the tier and
    /// its limit if not.
    fn check_link_tier(&self, provider: &str) -> Result<(), EngineError> {
        let tier = self.state.profile.tier;
        let rule = self.engine.config.integrations.tier(tier);
        let links = self.state.links.as_deref();
        let none = Links::default();
        match links
            .unwrap_or(&none)
            .check_tier(provider, rule.max_links, |p| rule.allows(p))
        {
            Ok(()) => Ok(()),
            Err(TierRefusal::Provider) => Err(EngineError::TierLimit(format!(
                "the {tier} tier does not include the {provider} integration"
            ))),
            Err(TierRefusal::Count { limit }) => Err(EngineError::TierLimit(format!(
                "the {tier} tier allows {limit} linked account{}; unlink one first",
                if limit == 1 { "" } else { "s" }
            ))),
        }
    }
}

/// Drops an empty link record.
fn tidy(links: &mut Option<Box<Links>>) {
    if links.as_ref().is_some_and(|l| l.is_empty()) {
        *links = None;
    }
}

fn state_refused(r: StateRefusal) -> EngineError {
    EngineError::Validation(ValidationError::new("state", r.to_string()))
}

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
