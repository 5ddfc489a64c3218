//! Logins waiting for their second factor: the challenges ([`crate::domain::challenge`]
//! keeps their clock), codes sent by email or SMS, the answers, passkey assertions and
//! passwordless starts.

use actix::prelude::*;

use super::*;
use crate::domain::challenge::{AfterWrongAnswer, Challenge, Challenges};

/// Logins one user may have waiting for a second factor; the oldest gives way.
pub(super) const MAX_PENDING_LOGINS: usize = 8;

/// A challenge handed to the client.
pub(crate) struct ChallengeIssued {
    pub token: SessionToken,
    pub factors: Vec<SecondFactor>,
    pub expires_at: Timestamp,
    pub reason: ChallengeReason,
}

/// A login waiting for its second factor (its clock is the [`Challenge`] beside it in
/// [`Challenges`]).
pub(crate) struct PendingLogin {
    id: SessionId,
    secret_hash: [u8; 32],
    factors: Vec<SecondFactor>,
    context: LoginContext,
    location: Option<Location>,
    risk: RiskAssessment,
    credential_version: u64,
    code: Option<SentCode>,
    /// The WebAuthn options handed out for this login, once asked for.
    passkey_auth: Option<PasskeyAuthentication>,
}

/// The logins waiting for their second factor.
pub(crate) type PendingLogins = Challenges<PendingLogin>;

/// What is kept of a code sent by email or SMS: its digest.
pub(super) struct SentCode {
    pub(super) digest: [u8; 32],
    pub(super) expires_at: Timestamp,
    /// `Email` or `Sms`: a code answers only for the channel it went through.
    pub(super) channel: SecondFactor,
}

/// Sends a sign-in code by email or SMS (`channel`) for a pending login.
#[derive(Message, Clone)]
#[rtype(result = "Result<CodeSend, EngineError>")]
pub(crate) struct SendLoginCode {
    pub challenge: SessionToken,
    pub channel: SecondFactor,
}

/// Answers a pending login with a second factor.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<LoginDecision>, EngineError>")]
pub(crate) struct CompleteLogin {
    pub challenge: SessionToken,
    pub factor: SecondFactor,
    pub proof: FactorProof,
}

/// The WebAuthn options for a pending login that offers passkeys (`None`: no such
/// challenge, or it does not offer them).
#[derive(Message, Clone)]
#[rtype(result = "Result<Option<RequestChallengeResponse>, EngineError>")]
pub(crate) struct StartLoginAssertion(pub SessionToken);

/// Starts a passwordless login with a passkey.
#[derive(Message, Clone)]
#[rtype(result = "Result<PasswordlessStart, EngineError>")]
pub(crate) struct BeginPasswordless {
    pub context: LoginContext,
    pub location: Option<Location>,
}

/// What a passwordless start came to.
pub(crate) enum PasswordlessStart {
    /// A challenge, and the options to sign.
    Options(SessionToken, Box<RequestChallengeResponse>),
    /// The user has no passkey, is locked, or the risk engine refused.
    Refused,
}

impl UserActor {
    /// Opens a login challenge for a password that was right.
    pub(super) fn challenge(
        &mut self,
        context: LoginContext,
        location: Option<Location>,
        risk: RiskAssessment,
        reason: ChallengeReason,
        now: Timestamp,
    ) -> LoginDecision {
        let token = SessionToken::issue(self.id());
        let factors = self
            .state
            .mfa
            .challenge_factors(&self.state.profile.security_settings);
        let clock = Challenge::issued(now, self.engine.config.mfa.challenge_ttl);
        let expires_at = clock.expires_at;
        let mut event = self.event_from(
            SecurityEventKind::LoginChallenged,
            &context,
            location.as_ref(),
            now,
        );
        event.risk = Some(risk.clone());
        event.detail = Some(reason.as_str().into());
        self.record_soft(event);
        let pending = PendingLogin {
            id: token.session_id(),
            secret_hash: token.secret_hash(),
            factors: factors.clone(),
            context,
            location,
            risk,
            credential_version: self.state.credential_version,
            code: None,
            passkey_auth: None,
        };
        self.rare.make_mut().challenges.open(clock, pending, now);
        LoginDecision::Challenge(Box::new(ChallengeIssued {
            token,
            factors,
            expires_at,
            reason,
        }))
    }

    /// Checks `proof` of `factor`. On success `mfa` is updated (the authenticator's
    /// step, the recovery code used, the passkey's counter and last use) for the caller
    /// to write. `sent` is the code emailed for a login, `assertion` the WebAuthn
    /// options handed out; a factor whose question was never asked fails.
    pub(super) fn verify_factor(
        &self,
        mfa: &mut crate::domain::mfa::MfaState,
        factor: SecondFactor,
        proof: &FactorProof,
        sent: Option<&SentCode>,
        assertion: Option<&PasskeyAuthentication>,
        now: Timestamp,
    ) -> Result<(), SecurityEventKind> {
        let failed = SecurityEventKind::MfaFailed;
        match (factor, proof) {
            (SecondFactor::Authenticator, FactorProof::Code(code)) => {
                let t = mfa.totp.as_mut().ok_or(failed)?;
                let cfg = &self.engine.config.mfa.totp;
                match totp::check(&t.secret, code, cfg, now.unix_secs(), t.last_step) {
                    totp::TotpCheck::Valid { step } => {
                        t.last_step = Some(step);
                        Ok(())
                    }
                    totp::TotpCheck::Replayed => Err(SecurityEventKind::MfaReplayed),
                    totp::TotpCheck::Invalid => Err(failed),
                }
            }
            (SecondFactor::Email | SecondFactor::Sms, FactorProof::Code(code)) => match sent {
                Some(s)
                    if s.channel == factor
                        && s.expires_at > now
                        && otp::same(&s.digest, &otp::digest(code)) =>
                {
                    Ok(())
                }
                _ => Err(failed),
            },
            (SecondFactor::RecoveryCode, FactorProof::Code(code)) => {
                if otp::recovery_digest(code).is_some_and(|d| mfa.use_recovery(&d, now)) {
                    Ok(())
                } else {
                    Err(failed)
                }
            }
            (SecondFactor::Webauthn, FactorProof::Assertion(cred)) => {
                let state = assertion.ok_or(failed)?;
                let result = self
                    .engine
                    .webauthn
                    .finish_passkey_authentication(cred, state)
                    .map_err(|e| {
                        tracing::debug!(user = %self.id(), error = %e, "assertion refused");
                        failed
                    })?;
                passkey::record_use(mfa, &result, now);
                Ok(())
            }
            _ => Err(failed),
        }
    }

    /// The live challenge `token` names, if any.
    pub(super) fn pending(&mut self, token: &SessionToken, now: Timestamp) -> Option<usize> {
        self.rare.challenges()?.find(now, |c| {
            c.id == token.session_id() && token.matches(&c.secret_hash)
        })
    }

    /// A fresh numeric code for `channel`, and what is kept of it.
    pub(super) fn new_code(&self, channel: SecondFactor, now: Timestamp) -> (String, SentCode) {
        let mfa = &self.engine.config.mfa;
        let code = otp::numeric_code(mfa.code_digits);
        let sent = SentCode {
            digest: otp::digest(&code),
            expires_at: now.plus(mfa.code_ttl),
            channel,
        };
        (code, sent)
    }

    /// Sends `code` through `channel`: by email to the account's address, or by SMS to
    /// `phone` (the verified number, or the one being verified).
    pub(super) fn deliver_code(
        &self,
        channel: SecondFactor,
        phone: Option<String>,
        code: &str,
        now: Timestamp,
    ) {
        let minutes = self.engine.config.mfa.code_ttl.as_secs().div_ceil(60);
        let issuer = &self.engine.config.mfa.totp.issuer;
        match (channel, phone) {
            (SecondFactor::Sms, Some(to)) => {
                self.engine.notifier.send_sms(Sms {
                    kind: EmailKind::SmsCode,
                    at: now,
                    to,
                    body: format!("{code} is your {issuer} code. It expires in {minutes} minutes."),
                });
            }
            _ => {
                self.engine.notifier.send(Email {
                    kind: EmailKind::LoginCode,
                    at: now,
                    to: self.state.profile.email.as_str().to_owned(),
                    subject: format!("Your sign-in code: {code}"),
                    body: format!(
                        "Your sign-in code is {code}. It expires in {minutes} minutes.\n\
                         If you did not try to sign in, change your password."
                    ),
                });
            }
        }
    }

    pub(super) fn factor_failed(
        &mut self,
        kind: SecurityEventKind,
        factor: Option<SecondFactor>,
        now: Timestamp,
    ) {
        let lockout = self.engine.config.lockout;
        let was_locked = self.state.failures.is_locked(now);
        self.state.failures.record_failure(&lockout, now);
        let mut e = SecurityEvent::new(kind, now);
        e.factor = factor;
        self.record_soft(e);
        self.lockout_alert(was_locked, now);
    }

    pub(super) fn start_assertion(
        &self,
    ) -> Result<(RequestChallengeResponse, PasskeyAuthentication), EngineError> {
        let keys = passkey::all(&self.state.mfa);
        if keys.is_empty() {
            return Err(EngineError::Conflict("no passkey is registered".into()));
        }
        self.engine
            .webauthn
            .start_passkey_authentication(&keys)
            .map_err(|e| EngineError::Internal(format!("webauthn: {e}")))
    }
}

impl Handler<SendLoginCode> for UserActor {
    type Result = Result<CodeSend, EngineError>;
    fn handle(&mut self, msg: SendLoginCode, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let Some(i) = self.pending(&msg.challenge, now) else {
            return Ok(CodeSend::Gone);
        };
        let channel = msg.channel;
        let cfg = &self.engine.config.mfa;
        let (resend, code_ttl) = (cfg.code_resend, cfg.code_ttl);
        let Some((clock, c)) = self.rare.challenges().and_then(|c| c.get_mut(i)) else {
            return Ok(CodeSend::Gone);
        };
        if !matches!(channel, SecondFactor::Email | SecondFactor::Sms)
            || !c.factors.contains(&channel)
        {
            return Ok(CodeSend::NotOffered);
        }
        let expires_at = match clock.send_code(resend, code_ttl, now) {
            Ok(at) => at,
            Err(retry_after_secs) => return Ok(CodeSend::TooSoon { retry_after_secs }),
        };
        let code = otp::numeric_code(cfg.code_digits);
        c.code = Some(SentCode {
            digest: otp::digest(&code),
            expires_at,
            channel,
        });
        let to = match channel {
            SecondFactor::Sms => self.state.mfa.phone.as_ref().map(|p| p.number.clone()),
            _ => None,
        };
        self.deliver_code(channel, to, &code, now);
        Ok(CodeSend::Sent { expires_at })
    }
}

impl Handler<CompleteLogin> for UserActor {
    type Result = Result<Durable<LoginDecision>, EngineError>;
    fn handle(&mut self, msg: CompleteLogin, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_complete_login(msg, ctx))
    }
}

impl Handler<StartLoginAssertion> for UserActor {
    type Result = Result<Option<RequestChallengeResponse>, EngineError>;
    fn handle(&mut self, msg: StartLoginAssertion, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let Some(i) = self.pending(&msg.0, now) else {
            return Ok(None);
        };
        let offers = |c: &PendingLogin| c.factors.contains(&SecondFactor::Webauthn);
        if !self
            .rare
            .challenges()
            .and_then(|c| c.get_mut(i))
            .is_some_and(|(_, c)| offers(c))
        {
            return Ok(None);
        }
        let (options, state) = self.start_assertion()?;
        if let Some((_, c)) = self.rare.challenges().and_then(|c| c.get_mut(i)) {
            c.passkey_auth = Some(state);
        }
        Ok(Some(options))
    }
}

impl Handler<BeginPasswordless> for UserActor {
    type Result = Result<PasswordlessStart, EngineError>;
    fn handle(&mut self, msg: BeginPasswordless, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        if self.state.mfa.passkeys.is_empty() {
            return Ok(PasswordlessStart::Refused);
        }
        if self.state.failures.is_locked(now) && !self.knows_device(&msg.context) {
            return Ok(PasswordlessStart::Refused);
        }
        let assessment = self.assess(&msg.context, msg.location.as_ref(), now);
        if assessment.decision == RiskDecision::Deny {
            let factor = Some(SecondFactor::Webauthn);
            self.risk_denied(&msg.context, msg.location.as_ref(), assessment, factor, now);
            return Ok(PasswordlessStart::Refused);
        }
        let (options, state) = self.start_assertion()?;
        // A passkey is possession and (verified) biometrics or PIN in one: it answers a
        // challenge of any reason, zero trust included.
        let LoginDecision::Challenge(c) = self.challenge(
            msg.context,
            msg.location,
            assessment,
            ChallengeReason::Passwordless,
            now,
        ) else {
            return Err(EngineError::Internal("challenge not issued".into()));
        };
        if let Some((_, p)) = self.rare.challenges().and_then(|c| c.last_mut()) {
            p.factors = vec![SecondFactor::Webauthn];
            p.passkey_auth = Some(state);
        }
        Ok(PasswordlessStart::Options(c.token, Box::new(options)))
    }
}

impl UserActor {
    fn on_complete_login(
        &mut self,
        msg: CompleteLogin,
        _: &mut Context<Self>,
    ) -> Result<LoginDecision, EngineError> {
        let now = self.touch();
        let Some(i) = self.pending(&msg.challenge, now) else {
            return Ok(LoginDecision::ChallengeGone);
        };
        let credential_version = self.state.credential_version;
        let Some((_, c)) = self.rare.challenges().and_then(|c| c.get_mut(i)) else {
            return Ok(LoginDecision::ChallengeGone);
        };
        if c.credential_version != credential_version {
            // The password changed since: this login's password is no longer right.
            self.rare.challenges().and_then(|c| c.take(i));
            return Ok(LoginDecision::ChallengeGone);
        }
        if !c.factors.contains(&msg.factor) {
            let accepted: Vec<&str> = c.factors.iter().map(|f| f.as_str()).collect();
            return Err(ValidationError::new(
                "method",
                format!("this challenge accepts {}", accepted.join(", ")),
            )
            .into());
        }
        let (code, assertion) = (c.code.take(), c.passkey_auth.take());
        let mut mfa = self.state.mfa.clone();
        let verdict = self.verify_factor(
            &mut mfa,
            msg.factor,
            &msg.proof,
            code.as_ref(),
            assertion.as_ref(),
            now,
        );
        let Err(kind) = verdict else {
            let Some((_, c)) = self.rare.challenges().and_then(|c| c.take(i)) else {
                return Ok(LoginDecision::ChallengeGone);
            };
            let decision = self.grant_with(
                c.context,
                c.location,
                Some(c.risk),
                Some(msg.factor),
                now,
                |next| next.mfa = mfa,
            )?;
            if msg.factor == SecondFactor::RecoveryCode {
                let mut e = SecurityEvent::new(SecurityEventKind::RecoveryCodeUsed, now);
                e.factor = Some(SecondFactor::RecoveryCode);
                e.detail = Some(format!("{} left", self.state.mfa.recovery_left()));
                self.record_soft(e);
            }
            return Ok(decision);
        };
        self.factor_failed(kind, Some(msg.factor), now);
        let max = self.engine.config.mfa.code_max_attempts;
        let Some((clock, c)) = self.rare.challenges().and_then(|c| c.get_mut(i)) else {
            return Ok(LoginDecision::ChallengeGone);
        };
        // The question stays asked for the next try.
        c.code = code;
        c.passkey_auth = assertion;
        match clock.wrong_answer(max) {
            AfterWrongAnswer::TriesLeft(attempts_left) => {
                Ok(LoginDecision::FactorRejected { attempts_left })
            }
            AfterWrongAnswer::WornOut => {
                self.rare.challenges().and_then(|c| c.take(i));
                Ok(LoginDecision::ChallengeGone)
            }
        }
    }
}
