//! Step-up: a session proving its credentials again, and the recency check that
//! sensitive operations make.

use std::sync::Arc;

use actix::prelude::*;

use super::*;

/// Proves the credentials again in a session (step-up).
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<StepUpOutcome>, EngineError>")]
pub(crate) struct StepUp {
    pub session: SessionId,
    pub password_ok: bool,
    pub credential_version: u64,
    pub factor: Option<(SecondFactor, FactorProof)>,
}

/// WebAuthn options for a step-up of `session`.
#[derive(Message, Clone)]
#[rtype(result = "Result<RequestChallengeResponse, EngineError>")]
pub(crate) struct StartStepUpAssertion {
    pub session: SessionId,
}

impl UserActor {
    /// Fails unless `session` proved its credentials within the step-up window.
    pub(super) fn require_recent(
        &self,
        session: Option<SessionId>,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let Some(id) = session else {
            return Ok(());
        };
        let window = self.engine.config.mfa.step_up_window;
        match self.state.sessions.iter().find(|s| s.id == id) {
            Some(s) if now.since(s.authenticated_at) <= window => Ok(()),
            _ => Err(EngineError::StepUpRequired),
        }
    }
}

impl Handler<StepUp> for UserActor {
    type Result = Result<Durable<StepUpOutcome>, EngineError>;
    fn handle(&mut self, msg: StepUp, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_step_up(msg, ctx))
    }
}

impl Handler<StartStepUpAssertion> for UserActor {
    type Result = Result<RequestChallengeResponse, EngineError>;
    fn handle(&mut self, msg: StartStepUpAssertion, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let (options, state) = self.start_assertion()?;
        self.rare.make_mut().step_up_auth = Some(Box::new((msg.session, state, now)));
        Ok(options)
    }
}

impl UserActor {
    fn on_step_up(
        &mut self,
        msg: StepUp,
        _: &mut Context<Self>,
    ) -> Result<StepUpOutcome, EngineError> {
        let now = self.touch();
        if !msg.password_ok || msg.credential_version != self.state.credential_version {
            self.factor_failed(SecurityEventKind::LoginFailed, None, now);
            return Ok(StepUpOutcome::Rejected);
        }
        let cfg = Arc::clone(&self.engine.config);
        let mut mfa = self.state.mfa.clone();
        let mut used = None;
        if mfa.has_enrolled_factor() {
            let Some((factor, proof)) = msg.factor else {
                return Ok(StepUpOutcome::FactorRequired);
            };
            let pending = self
                .rare
                .held_mut()
                .and_then(|r| r.step_up_auth.take())
                .filter(|p| p.0 == msg.session && now.since(p.2) < cfg.mfa.challenge_ttl)
                .map(|p| p.1);
            let ok = factor != SecondFactor::Email
                && self
                    .verify_factor(&mut mfa, factor, &proof, None, pending.as_ref(), now)
                    .is_ok();
            if !ok {
                self.factor_failed(SecurityEventKind::MfaFailed, Some(factor), now);
                return Ok(StepUpOutcome::Rejected);
            }
            used = Some(factor);
        }
        let mut next = self.state.clone();
        next.mfa = mfa;
        let Some(s) = next.sessions.iter_mut().find(|s| s.id == msg.session) else {
            return Err(EngineError::SessionRefused("the session has ended"));
        };
        s.authenticated_at = now;
        let mut e = SecurityEvent::new(SecurityEventKind::StepUp, now);
        e.session_id = Some(msg.session);
        e.factor = used;
        self.record_event(&mut next, e);
        self.persist(next, now)?;
        Ok(StepUpOutcome::Done {
            valid_until: now.plus(cfg.mfa.step_up_window),
        })
    }
}
