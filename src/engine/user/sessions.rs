//! Sessions in the user's actor: the per-request token check (with the origin rule of
//! [`crate::domain::binding`] and the tier's rate), password changes that end the others,
//! revocations, and the event sockets of a session.

use actix::prelude::*;

use super::*;
use crate::domain::binding::{self, OriginCheck};
use crate::engine::outcomes::RequestTaken;

/// Checks a session token; marks the session used.
#[derive(Message, Clone)]
#[rtype(result = "Result<Option<SessionInfo>, EngineError>")]
pub(crate) struct ValidateSession(pub SessionToken);

/// Checks a session token and counts one API request against the tier's hourly rate.
/// A zero-trust session must come from its device and network; another session used
/// from a new network is judged by the risk engine.
#[derive(Message, Clone)]
#[rtype(result = "Result<Option<AuthorizedRequest>, EngineError>")]
pub(crate) struct AuthorizeRequest(pub SessionToken, pub RequestOrigin);

/// Replaces the password if the credential is still the one verified; ends every other
/// session (durable). Replies how many sessions ended, or `None` if the credential had
/// changed meanwhile and nothing was done.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<Option<usize>>, EngineError>")]
pub(crate) struct SetPassword {
    pub expected_version: u64,
    pub password_hash: String,
    pub keep: Option<SessionId>,
}

/// Counts a failed password check made outside a login (e.g. a wrong current password).
#[derive(Message, Clone)]
#[rtype(result = "Result<(), EngineError>")]
pub(crate) struct RecordFailure;

/// Lists live sessions.
#[derive(Message, Clone)]
#[rtype(result = "Result<Vec<SessionView>, EngineError>")]
pub(crate) struct ListSessions;

/// Revokes one session (durable); replies whether it existed.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<bool>, EngineError>")]
pub(crate) struct RevokeSession(pub SessionId);

/// Revokes every session but one (durable); replies how many went.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<usize>, EngineError>")]
pub(crate) struct RevokeOtherSessions(pub Option<SessionId>);

/// Ends the user's live sessions that `selection` matches and that existed at `started`
/// (durable; an operator's bulk revocation); with a dry run only counts them. Replies
/// how many.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<usize>, EngineError>")]
pub(crate) struct RevokeMatching {
    pub selection: std::sync::Arc<crate::domain::revocation::Selection>,
    pub started: Timestamp,
}

/// Subscribes a socket of a live session to the user's events.
#[derive(Message, Clone)]
#[rtype(result = "Result<SubscribeOutcome, EngineError>")]
pub(crate) struct Subscribe {
    pub session: SessionId,
    pub resume: Option<Resume>,
}

/// Replies with a session if it is live; with `slide`, marks it used (a socket's
/// heartbeat) so that its idle timeout starts again.
#[derive(Message, Clone)]
#[rtype(result = "Result<Option<SessionInfo>, EngineError>")]
pub(crate) struct TouchSession {
    pub session: SessionId,
    pub slide: bool,
}

impl Handler<ValidateSession> for UserActor {
    type Result = Result<Option<SessionInfo>, EngineError>;
    fn handle(
        &mut self,
        ValidateSession(token): ValidateSession,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let now = self.touch();
        let user_id = self.id();
        let tier = self.state.profile.tier;
        let info = self
            .state
            .check_session(&token, now)
            .map(|s| SessionInfo::of(user_id, tier, s));
        if info.is_some() {
            self.soften();
        }
        Ok(info)
    }
}

impl Handler<AuthorizeRequest> for UserActor {
    type Result = Result<Option<AuthorizedRequest>, EngineError>;
    fn handle(
        &mut self,
        AuthorizeRequest(token, origin): AuthorizeRequest,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let now = self.touch();
        let user_id = self.id();
        let tier = self.state.profile.tier;
        let limit = self.policy().requests_per_hour;
        let Some(session) = self
            .state
            .check_session(&token, now)
            .map(|s| SessionInfo::of(user_id, tier, s))
        else {
            return Ok(None);
        };
        self.check_origin(session.session_id, &origin, now)?;
        let rate = self.state.rate.take(limit, RATE_PERIOD, now);
        if matches!(rate, RateDecision::Limited { .. }) {
            self.state.refusals.record(now);
        }
        self.soften();
        Ok(Some(AuthorizedRequest {
            session,
            rate,
            profile: self.state.profile.clone(),
        }))
    }
}

impl Handler<SetPassword> for UserActor {
    type Result = Result<Durable<Option<usize>>, EngineError>;
    fn handle(&mut self, msg: SetPassword, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_set_password(msg, ctx))
    }
}

impl Handler<RecordFailure> for UserActor {
    type Result = Result<(), EngineError>;
    fn handle(&mut self, _: RecordFailure, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let lockout = self.engine.config.lockout;
        let was_locked = self.state.failures.is_locked(now);
        self.state.failures.record_failure(&lockout, now);
        self.soften();
        self.lockout_alert(was_locked, now);
        Ok(())
    }
}

impl Handler<ListSessions> for UserActor {
    type Result = Result<Vec<SessionView>, EngineError>;
    fn handle(&mut self, _: ListSessions, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        Ok(self
            .state
            .sessions
            .iter()
            .filter(|s| s.is_active(now))
            .map(SessionView::from)
            .collect())
    }
}

impl Handler<RevokeSession> for UserActor {
    type Result = Result<Durable<bool>, EngineError>;
    fn handle(&mut self, msg: RevokeSession, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_revoke_session(msg, ctx))
    }
}

impl Handler<RevokeOtherSessions> for UserActor {
    type Result = Result<Durable<usize>, EngineError>;
    fn handle(&mut self, msg: RevokeOtherSessions, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_revoke_other_sessions(msg, ctx))
    }
}

impl Handler<RevokeMatching> for UserActor {
    type Result = Result<Durable<usize>, EngineError>;
    fn handle(&mut self, msg: RevokeMatching, _: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_revoke_matching(&msg))
    }
}

impl Handler<Subscribe> for UserActor {
    type Result = Result<SubscribeOutcome, EngineError>;
    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        if self.state.touch_session(msg.session, now).is_none() {
            return Ok(SubscribeOutcome::SessionInvalid);
        }
        self.soften();
        let rt = &self.engine.realtime;
        let stream = self
            .stream
            .get_or_insert_with(|| rt.attach(self.state.profile.id));
        Ok(match rt.subscribe(stream, msg.session, msg.resume) {
            Ok(sub) => SubscribeOutcome::Subscribed(Box::new(sub)),
            Err(SubscribeError::TooManySockets) => SubscribeOutcome::TooManySockets,
        })
    }
}

impl Handler<TouchSession> for UserActor {
    type Result = Result<Option<SessionInfo>, EngineError>;
    fn handle(&mut self, msg: TouchSession, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let (user_id, tier) = (self.id(), self.state.profile.tier);
        let info = |s: &crate::domain::session::Session| SessionInfo::of(user_id, tier, s);
        if !msg.slide {
            return Ok(self
                .state
                .sessions
                .iter()
                .find(|s| s.id == msg.session && s.is_active(now))
                .map(info));
        }
        let found = self.state.touch_session(msg.session, now).map(info);
        if found.is_some() {
            self.soften();
        }
        Ok(found)
    }
}

/// Counts one request of a live session against the tier's hourly rate (a socket frame
/// that is a request over HTTP, where the front door counted it).
#[derive(Message, Clone)]
#[rtype(result = "Result<RequestTaken, EngineError>")]
pub(crate) struct TakeRequest {
    pub session: SessionId,
}

impl Handler<TakeRequest> for UserActor {
    type Result = Result<RequestTaken, EngineError>;
    fn handle(&mut self, msg: TakeRequest, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        if self.state.touch_session(msg.session, now).is_none() {
            return Ok(RequestTaken::SessionInvalid);
        }
        self.soften();
        Ok(match self.take_request(now) {
            Some(retry_after_secs) => RequestTaken::Limited { retry_after_secs },
            None => RequestTaken::Taken,
        })
    }
}

impl UserActor {
    /// Takes a request from the tier's hourly allowance: `Some(seconds to wait)` when it
    /// is spent (the refusal is counted, by day for the analytics and in the metrics).
    pub(super) fn take_request(&mut self, now: Timestamp) -> Option<u64> {
        let limit = self.policy().requests_per_hour;
        let RateDecision::Limited {
            retry_after_secs, ..
        } = self.state.rate.take(limit, RATE_PERIOD, now)
        else {
            return None;
        };
        self.state.refusals.record(now);
        let tier = crate::metrics::TierLabels {
            tier: self.state.profile.tier.into(),
        };
        self.engine.metrics.rate_limited.get_or_create(&tier).inc();
        Some(retry_after_secs)
    }

    /// Checks a request's origin against its session: one from a network operators
    /// denied ends it; then ([`binding::check`]) a zero-trust session must come from its
    /// device and network (else it ends); another session
    /// seen on a new network is scored, ended if the risk engine denies, and otherwise
    /// asked for a step-up before anything sensitive.
    pub(super) fn check_origin(
        &mut self,
        session: SessionId,
        origin: &RequestOrigin,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let Some(s) = self.state.sessions.iter().find(|s| s.id == session) else {
            return Ok(());
        };
        if let Some(entry) = origin
            .ip
            .and_then(|ip| self.engine.deny.current().find(ip, now).cloned())
        {
            let mut e = SecurityEvent::new(SecurityEventKind::SessionRevoked, now);
            e.session_id = Some(session);
            e.ip_address = origin.ip;
            e.detail = Some(format!(
                "used from {}, a network an operator denied ({}); session ended",
                entry.network, entry.reason
            ));
            self.end_session(session, e, now)?;
            return Err(EngineError::SessionRefused(
                "the session was ended: it was used from a network operators denied",
            ));
        }
        let network = match binding::check(s, origin, &self.engine.config.risk) {
            OriginCheck::Fine => return Ok(()),
            OriginCheck::Violated { what } => {
                let mut e = SecurityEvent::new(SecurityEventKind::SessionBindingViolated, now);
                e.session_id = Some(session);
                e.ip_address = origin.ip;
                e.device_id = origin.device_id.clone();
                e.location = origin.location.clone();
                e.detail = Some(format!("presented from another {what}"));
                self.end_session(session, e, now)?;
                return Err(EngineError::SessionRefused(
                    "the session is bound to the device and network of its login",
                ));
            }
            OriginCheck::FirstNetwork(network) => {
                if let Some(s) = self.state.sessions.iter_mut().find(|s| s.id == session) {
                    s.network = Some(network);
                }
                self.soften();
                return Ok(());
            }
            OriginCheck::Moved(network) => Some(network),
        };
        // A session moved to a new network: judge the move like a login from there.
        let context = LoginContext {
            ip_address: origin.ip,
            user_agent: None,
            device_id: origin
                .device_id
                .clone()
                .or_else(|| s.context.device_id.clone()),
        };
        let assessment = self.assess(&context, origin.location.as_ref(), now);
        let mut e = self.event_from(
            SecurityEventKind::SessionContextChanged,
            &context,
            origin.location.as_ref(),
            now,
        );
        e.session_id = Some(session);
        e.risk = Some(assessment.clone());
        if assessment.decision == RiskDecision::Deny {
            e.detail = Some("risk denied the new network; session ended".into());
            self.end_session(session, e, now)?;
            return Err(EngineError::SessionRefused(
                "the session was ended: its use from a new network was judged too risky",
            ));
        }
        let challenge = assessment.decision == RiskDecision::RequireMfa;
        if let Some(s) = self.state.sessions.iter_mut().find(|s| s.id == session) {
            s.network = network;
            if challenge {
                // Anything sensitive now needs the credentials again (step-up).
                s.authenticated_at = Timestamp::EPOCH;
            }
        }
        e.detail = Some(if challenge {
            "new network; step-up required for sensitive operations".into()
        } else {
            "new network".into()
        });
        self.record_soft(e);
        Ok(())
    }

    pub(super) fn end_session(
        &mut self,
        session: SessionId,
        event: SecurityEvent,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let mut next = self.state.clone();
        next.revoke(session);
        self.record_event(&mut next, event);
        self.persist(next, now)?;
        // Publishes the revocation and closes the session's sockets.
        self.sessions_ended(&[session], RevokeReason::Revoked);
        Ok(())
    }
}

impl UserActor {
    fn on_set_password(
        &mut self,
        msg: SetPassword,
        _: &mut Context<Self>,
    ) -> Result<Option<usize>, EngineError> {
        let now = self.touch();
        if msg.expected_version != self.state.credential_version {
            return Ok(None);
        }
        let mut next = self.state.clone();
        let ids = next.session_ids_except(msg.keep);
        let ended = next.set_password(msg.password_hash, msg.keep, now);
        let mut e = SecurityEvent::new(SecurityEventKind::PasswordChanged, now);
        e.session_id = msg.keep;
        e.detail = Some(format!("{ended} other sessions ended"));
        self.record_event(&mut next, e);
        self.persist(next, now)?;
        self.publish(Event::PasswordChanged {
            sessions_ended: ended,
        });
        self.sessions_ended(&ids, RevokeReason::PasswordChanged);
        Ok(Some(ended))
    }

    fn on_revoke_session(
        &mut self,
        RevokeSession(id): RevokeSession,
        _: &mut Context<Self>,
    ) -> Result<bool, EngineError> {
        let now = self.touch();
        let mut next = self.state.clone();
        if !next.revoke(id) {
            return Ok(false);
        }
        let mut e = SecurityEvent::new(SecurityEventKind::SessionRevoked, now);
        e.session_id = Some(id);
        self.record_event(&mut next, e);
        self.persist(next, now)?;
        self.sessions_ended(&[id], RevokeReason::Revoked);
        Ok(true)
    }

    fn on_revoke_other_sessions(
        &mut self,
        RevokeOtherSessions(keep): RevokeOtherSessions,
        _: &mut Context<Self>,
    ) -> Result<usize, EngineError> {
        let now = self.touch();
        let mut next = self.state.clone();
        let ids = next.session_ids_except(keep);
        let n = next.revoke_all_except(keep);
        if n > 0 {
            let mut e = SecurityEvent::new(SecurityEventKind::SessionRevoked, now);
            e.session_id = keep;
            e.detail = Some(format!("{n} sessions other than this one ended"));
            self.record_event(&mut next, e);
            self.persist(next, now)?;
            self.sessions_ended(&ids, RevokeReason::Revoked);
        }
        Ok(n)
    }

    fn on_revoke_matching(&mut self, msg: &RevokeMatching) -> Result<usize, EngineError> {
        // Not a use of the account: its idle time and the live figures stay as they were.
        let now = self.engine.clock.now();
        if !msg.selection.user_in_scope(
            self.id(),
            self.state.profile.tier,
            &self.state.security.recent,
        ) {
            return Ok(0);
        }
        let ids: Vec<SessionId> = self
            .state
            .sessions
            .iter()
            .filter(|s| msg.selection.matches(s, msg.started, now))
            .map(|s| s.id)
            .collect();
        if ids.is_empty() || msg.selection.dry_run {
            return Ok(ids.len());
        }
        let mut next = self.state.clone();
        for id in &ids {
            next.revoke(*id);
        }
        let mut e = SecurityEvent::new(SecurityEventKind::SessionRevoked, now);
        e.detail = Some(format!(
            "{} sessions ended by an operator's bulk revocation",
            ids.len()
        ));
        self.record_event(&mut next, e);
        self.persist(next, now)?;
        self.sessions_ended(&ids, RevokeReason::Revoked);
        Ok(ids.len())
    }
}
