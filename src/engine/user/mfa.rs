//! Second factors in the user's actor: the authenticator, a phone number for codes by
//! SMS, passkeys, and the recovery codes that come with the first of them.

use std::sync::Arc;

use actix::prelude::*;

use super::*;

/// Gives `mfa` a fresh set of recovery codes; returns them, to show once.
fn fresh_recovery_codes(mfa: &mut crate::domain::mfa::MfaState) -> Vec<String> {
    let (codes, digests) = otp::recovery_codes();
    mfa.set_recovery(digests);
    codes
}

/// A phone number waiting for its texted code.
pub(crate) struct PendingPhone {
    number: String,
    code: SentCode,
    attempts: u32,
    sent_at: Timestamp,
}

impl PendingPhone {
    /// Whether its code expired (it can no longer be confirmed).
    pub(super) fn expired(&self, now: Timestamp) -> bool {
        self.code.expires_at <= now
    }
}

/// Texts a code to `phone` to verify it for SMS sign-in (needs a recent
/// authentication).
#[derive(Message, Clone)]
#[rtype(result = "Result<CodeSend, EngineError>")]
pub(crate) struct BeginSms {
    pub session: Option<SessionId>,
    pub phone: String,
}

/// Confirms the pending phone number with its code; replies recovery codes when the
/// user had none.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<Vec<String>>, EngineError>")]
pub(crate) struct ConfirmSms {
    pub code: String,
}

/// Removes the phone number (needs a recent authentication).
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<()>, EngineError>")]
pub(crate) struct RemoveSms {
    pub session: Option<SessionId>,
}

/// Starts authenticator enrollment (needs a recent authentication).
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<totp::TotpEnrollment>, EngineError>")]
pub(crate) struct BeginTotp {
    pub session: Option<SessionId>,
}

/// Confirms the pending authenticator with a first code; replies the recovery codes.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<Vec<String>>, EngineError>")]
pub(crate) struct ConfirmTotp {
    pub code: String,
}

/// Removes the authenticator (or a pending enrollment) and the recovery codes; an
/// operator's removal is written with its audit record.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<()>, EngineError>")]
pub(crate) struct RemoveTotp {
    pub session: Option<SessionId>,
    pub audit: Option<super::Audited>,
}

/// Replaces the recovery codes (needs a recent authentication).
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<Vec<String>>, EngineError>")]
pub(crate) struct RegenerateRecovery {
    pub session: Option<SessionId>,
}

/// The user's second factors.
#[derive(Message, Clone)]
#[rtype(result = "Result<MfaStatus, EngineError>")]
pub(crate) struct GetMfa;

/// Starts registering a passkey (needs a recent authentication).
#[derive(Message, Clone)]
#[rtype(result = "Result<CreationChallengeResponse, EngineError>")]
pub(crate) struct BeginPasskeyRegistration {
    pub session: Option<SessionId>,
}

/// Completes a passkey registration; replies new recovery codes when the user had none.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<Vec<String>>, EngineError>")]
pub(crate) struct FinishPasskeyRegistration {
    pub name: String,
    pub credential: Box<RegisterPublicKeyCredential>,
}

/// Removes a passkey (needs a recent authentication).
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<()>, EngineError>")]
pub(crate) struct RemovePasskey {
    pub session: Option<SessionId>,
    pub id: String,
}

/// Most passkeys one user may register.
const MAX_PASSKEYS: usize = 16;

impl UserActor {
    /// The common end of enrolling `factor` into `next`: recovery codes when the user
    /// has none (returned, to show once), the method added to the accepted ones, the
    /// event recorded.
    pub(super) fn enrolled(
        &mut self,
        next: &mut UserState,
        factor: SecondFactor,
        now: Timestamp,
    ) -> Vec<String> {
        use crate::domain::settings::MfaMethod;
        let codes = if next.mfa.recovery.is_empty() {
            fresh_recovery_codes(&mut next.mfa)
        } else {
            Vec::new()
        };
        let method = match factor {
            SecondFactor::Authenticator => Some(MfaMethod::Authenticator),
            SecondFactor::Webauthn => Some(MfaMethod::Webauthn),
            SecondFactor::Sms => Some(MfaMethod::Sms),
            SecondFactor::Email | SecondFactor::RecoveryCode => None,
        };
        let methods = &mut next.profile.make_mut().security_settings.mfa_methods;
        if let Some(m) = method
            && !methods.contains(&m)
        {
            methods.push(m);
        }
        let mut e = SecurityEvent::new(SecurityEventKind::MfaEnrolled, now);
        e.factor = Some(factor);
        self.record_event(next, e);
        codes
    }

    /// The common end of removing `factor` from `next`: recovery codes stand in for an
    /// enrolled factor, so with none left they go; the event is recorded.
    pub(super) fn removed(&mut self, next: &mut UserState, factor: SecondFactor, now: Timestamp) {
        if !next.mfa.has_enrolled_factor() {
            next.mfa.recovery.clear();
        }
        let mut e = SecurityEvent::new(SecurityEventKind::MfaRemoved, now);
        e.factor = Some(factor);
        self.record_event(next, e);
    }
}

impl Handler<BeginTotp> for UserActor {
    type Result = Result<Durable<totp::TotpEnrollment>, EngineError>;
    fn handle(&mut self, msg: BeginTotp, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_begin_totp(msg, ctx))
    }
}

impl Handler<ConfirmTotp> for UserActor {
    type Result = Result<Durable<Vec<String>>, EngineError>;
    fn handle(&mut self, msg: ConfirmTotp, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_confirm_totp(msg, ctx))
    }
}

impl Handler<RemoveTotp> for UserActor {
    type Result = Result<Durable<()>, EngineError>;
    fn handle(&mut self, msg: RemoveTotp, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_remove_totp(msg, ctx))
    }
}

impl Handler<RegenerateRecovery> for UserActor {
    type Result = Result<Durable<Vec<String>>, EngineError>;
    fn handle(&mut self, msg: RegenerateRecovery, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_regenerate_recovery(msg, ctx))
    }
}

impl Handler<GetMfa> for UserActor {
    type Result = Result<MfaStatus, EngineError>;
    fn handle(&mut self, _: GetMfa, _: &mut Context<Self>) -> Self::Result {
        self.touch();
        Ok(self.state.mfa.status(&self.state.profile.security_settings))
    }
}

impl Handler<BeginPasskeyRegistration> for UserActor {
    type Result = Result<CreationChallengeResponse, EngineError>;
    fn handle(&mut self, msg: BeginPasskeyRegistration, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        self.require_recent(msg.session, now)?;
        let p = &self.state.profile;
        let exclude = passkey::all(&self.state.mfa)
            .iter()
            .map(|k| k.cred_id().clone())
            .collect::<Vec<_>>();
        let (options, state) = self
            .engine
            .webauthn
            .start_passkey_registration(
                passkey::Uuid::from_bytes(*p.id.as_bytes()),
                p.email.as_str(),
                &p.display_name,
                Some(exclude),
            )
            .map_err(|e| EngineError::Internal(format!("webauthn: {e}")))?;
        self.rare.make_mut().pending_registration = Some(Box::new((state, now)));
        Ok(options)
    }
}

impl Handler<FinishPasskeyRegistration> for UserActor {
    type Result = Result<Durable<Vec<String>>, EngineError>;
    fn handle(&mut self, msg: FinishPasskeyRegistration, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_finish_passkey_registration(msg, ctx))
    }
}

impl Handler<RemovePasskey> for UserActor {
    type Result = Result<Durable<()>, EngineError>;
    fn handle(&mut self, msg: RemovePasskey, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_remove_passkey(msg, ctx))
    }
}

impl Handler<BeginSms> for UserActor {
    type Result = Result<CodeSend, EngineError>;
    fn handle(&mut self, msg: BeginSms, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        self.require_recent(msg.session, now)?;
        let number = crate::domain::mfa::parse_phone(&msg.phone)?;
        if self
            .state
            .mfa
            .phone
            .as_ref()
            .is_some_and(|p| p.number == number)
        {
            return Err(EngineError::Conflict(
                "this number is already verified".into(),
            ));
        }
        let last = self
            .rare
            .get()
            .and_then(|r| r.pending_phone.as_ref())
            .map(|p| p.sent_at);
        let resend = self.engine.config.mfa.code_resend;
        if let Some(retry_after_secs) = crate::domain::challenge::resend_wait(last, resend, now) {
            return Ok(CodeSend::TooSoon { retry_after_secs });
        }
        let (code, sent) = self.new_code(SecondFactor::Sms, now);
        let expires_at = sent.expires_at;
        self.deliver_code(SecondFactor::Sms, Some(number.clone()), &code, now);
        self.rare.make_mut().pending_phone = Some(Box::new(PendingPhone {
            number,
            code: sent,
            attempts: 0,
            sent_at: now,
        }));
        Ok(CodeSend::Sent { expires_at })
    }
}

impl Handler<ConfirmSms> for UserActor {
    type Result = Result<Durable<Vec<String>>, EngineError>;
    fn handle(&mut self, msg: ConfirmSms, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_confirm_sms(msg, ctx))
    }
}

impl Handler<RemoveSms> for UserActor {
    type Result = Result<Durable<()>, EngineError>;
    fn handle(&mut self, msg: RemoveSms, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_remove_sms(msg, ctx))
    }
}

impl UserActor {
    fn on_begin_totp(
        &mut self,
        msg: BeginTotp,
        _: &mut Context<Self>,
    ) -> Result<totp::TotpEnrollment, EngineError> {
        let now = self.touch();
        self.require_recent(msg.session, now)?;
        if self.state.mfa.totp.is_some() {
            return Err(EngineError::Conflict(
                "an authenticator is already enrolled; remove it first".into(),
            ));
        }
        let cfg = Arc::clone(&self.engine.config);
        if let Some(p) = &self.state.mfa.totp_pending
            && now.since(p.started_at) < cfg.mfa.code_ttl
        {
            return Err(EngineError::Conflict(
                "an enrollment is pending: confirm it with a code, or cancel it with \
                 DELETE .../mfa/totp"
                    .into(),
            ));
        }
        let secret = totp::generate_secret();
        let enrollment =
            totp::enrollment(&secret, self.state.profile.email.as_str(), &cfg.mfa.totp)
                .ok_or_else(|| EngineError::Internal("cannot build the TOTP enrollment".into()))?;
        let mut next = self.state.clone();
        next.mfa.totp_pending = Some(PendingTotp {
            secret,
            started_at: now,
        });
        self.persist(next, now)?;
        Ok(enrollment)
    }

    fn on_confirm_totp(
        &mut self,
        msg: ConfirmTotp,
        _: &mut Context<Self>,
    ) -> Result<Vec<String>, EngineError> {
        let now = self.touch();
        let cfg = Arc::clone(&self.engine.config);
        let Some(p) = self.state.mfa.totp_pending.clone() else {
            return Err(EngineError::Conflict(
                "no authenticator enrollment is pending".into(),
            ));
        };
        if !totp::well_formed(&msg.code, &cfg.mfa.totp) {
            return Err(ValidationError::new(
                "code",
                format!("must be {} digits", cfg.mfa.totp.digits),
            )
            .into());
        }
        let step = match totp::check(&p.secret, &msg.code, &cfg.mfa.totp, now.unix_secs(), None) {
            totp::TotpCheck::Valid { step } => step,
            _ => {
                return Err(ValidationError::new(
                    "code",
                    "does not match the authenticator; check the device's clock",
                )
                .into());
            }
        };
        let mut next = self.state.clone();
        next.mfa.totp_pending = None;
        next.mfa.totp = Some(TotpFactor {
            secret: p.secret,
            enrolled_at: now,
            last_step: Some(step),
        });
        let codes = self.enrolled(&mut next, SecondFactor::Authenticator, now);
        self.persist(next, now)?;
        Ok(codes)
    }

    fn on_remove_totp(
        &mut self,
        msg: RemoveTotp,
        _: &mut Context<Self>,
    ) -> Result<(), EngineError> {
        let now = self.touch();
        let mut next = self.state.clone();
        if next.mfa.totp.is_none() {
            if next.mfa.totp_pending.take().is_none() {
                return Err(EngineError::NotFound);
            }
            // Cancelling a pending enrollment removes nothing that protects the account.
            self.persist(next, now)?;
            return Ok(());
        }
        self.require_recent(msg.session, now)?;
        next.mfa.totp = None;
        next.mfa.totp_pending = None;
        self.removed(&mut next, SecondFactor::Authenticator, now);
        self.write(next, now, msg.audit.into_iter().collect())?;
        Ok(())
    }

    fn on_regenerate_recovery(
        &mut self,
        msg: RegenerateRecovery,
        _: &mut Context<Self>,
    ) -> Result<Vec<String>, EngineError> {
        let now = self.touch();
        self.require_recent(msg.session, now)?;
        if !self.state.mfa.has_enrolled_factor() {
            return Err(EngineError::Conflict(
                "recovery codes come with a second factor; enroll one first".into(),
            ));
        }
        let mut next = self.state.clone();
        let codes = fresh_recovery_codes(&mut next.mfa);
        let e = SecurityEvent::new(SecurityEventKind::RecoveryCodesRegenerated, now);
        self.record_event(&mut next, e);
        self.persist(next, now)?;
        Ok(codes)
    }

    fn on_confirm_sms(
        &mut self,
        msg: ConfirmSms,
        _: &mut Context<Self>,
    ) -> Result<Vec<String>, EngineError> {
        let now = self.touch();
        let max = self.engine.config.mfa.code_max_attempts;
        let Some(p) = self
            .rare
            .held_mut()
            .and_then(|r| r.pending_phone.as_mut())
            .filter(|p| !p.expired(now))
        else {
            if let Some(r) = self.rare.held_mut() {
                r.pending_phone = None;
            }
            return Err(EngineError::Conflict(
                "no phone number is waiting for its code (or the code expired): start again".into(),
            ));
        };
        if !otp::same(&p.code.digest, &otp::digest(&msg.code)) {
            p.attempts += 1;
            if p.attempts >= max
                && let Some(r) = self.rare.held_mut()
            {
                r.pending_phone = None;
            }
            return Err(ValidationError::new("code", "does not match the texted code").into());
        }
        let Some(p) = self.rare.held_mut().and_then(|r| r.pending_phone.take()) else {
            return Err(EngineError::Internal("pending phone vanished".into()));
        };
        let mut next = self.state.clone();
        next.mfa.phone = Some(crate::domain::mfa::VerifiedPhone {
            number: p.number,
            verified_at: now,
        });
        let codes = self.enrolled(&mut next, SecondFactor::Sms, now);
        self.persist(next, now)?;
        Ok(codes)
    }

    fn on_remove_sms(&mut self, msg: RemoveSms, _: &mut Context<Self>) -> Result<(), EngineError> {
        let now = self.touch();
        if self.state.mfa.phone.is_none() {
            return Err(EngineError::NotFound);
        }
        self.require_recent(msg.session, now)?;
        let mut next = self.state.clone();
        next.mfa.phone = None;
        self.removed(&mut next, SecondFactor::Sms, now);
        self.persist(next, now)?;
        Ok(())
    }

    fn on_finish_passkey_registration(
        &mut self,
        msg: FinishPasskeyRegistration,
        _: &mut Context<Self>,
    ) -> Result<Vec<String>, EngineError> {
        let now = self.touch();
        let ttl = self.engine.config.mfa.challenge_ttl;
        let Some(state) = self
            .rare
            .held_mut()
            .and_then(|r| r.pending_registration.take())
            .filter(|p| now.since(p.1) < ttl)
            .map(|p| p.0)
        else {
            return Err(EngineError::Conflict(
                "no passkey registration is pending (or it expired): start again".into(),
            ));
        };
        let key = self
            .engine
            .webauthn
            .finish_passkey_registration(&msg.credential, &state)
            .map_err(|e| {
                ValidationError::new("credential", format!("the registration is not valid: {e}"))
            })?;
        if self.state.mfa.passkeys.len() >= MAX_PASSKEYS {
            return Err(EngineError::Conflict(format!(
                "at most {MAX_PASSKEYS} passkeys; remove one first"
            )));
        }
        let stored = passkey::store(&key, msg.name, now).map_err(EngineError::Internal)?;
        if self.state.mfa.passkeys.iter().any(|p| p.id == stored.id) {
            return Err(EngineError::Conflict(
                "this passkey is already registered".into(),
            ));
        }
        let mut next = self.state.clone();
        next.mfa.passkeys.push(stored);
        let codes = self.enrolled(&mut next, SecondFactor::Webauthn, now);
        self.persist(next, now)?;
        Ok(codes)
    }

    fn on_remove_passkey(
        &mut self,
        msg: RemovePasskey,
        _: &mut Context<Self>,
    ) -> Result<(), EngineError> {
        let now = self.touch();
        if !self.state.mfa.passkeys.iter().any(|p| p.id == msg.id) {
            return Err(EngineError::NotFound);
        }
        self.require_recent(msg.session, now)?;
        let mut next = self.state.clone();
        next.mfa.passkeys.retain(|p| p.id != msg.id);
        self.removed(&mut next, SecondFactor::Webauthn, now);
        self.persist(next, now)?;
        Ok(())
    }
}
