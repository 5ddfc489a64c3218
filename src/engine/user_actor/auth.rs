//! The user actor's second-factor work: login challenges and their answers, codes by
//! email, authenticator enrollment, recovery codes, step-up, and the per-request checks
//! of zero-trust binding and session context.

use std::sync::Arc;

use actix::prelude::*;

use super::{LoginDecision, RequestOrigin, UserActor};
use crate::domain::ids::SessionId;
use crate::domain::mfa::{MfaStatus, PendingTotp, SecondFactor, TotpFactor};
use crate::domain::risk::{Location, RiskAssessment, RiskDecision};
use crate::domain::security_log::{SecurityEvent, SecurityEventKind};
use crate::domain::session::LoginContext;
use crate::domain::time::Timestamp;
use crate::domain::validation::ValidationError;
use crate::engine::EngineError;
use crate::engine::events::RevokeReason;
use crate::notify::{Email, EmailKind};
use crate::security::token::SessionToken;
use crate::security::{otp, totp};

/// Logins one user may have waiting for a second factor; the oldest gives way.
const MAX_PENDING_LOGINS: usize = 8;

/// Why a login needs a second factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeReason {
    /// The user's settings require MFA.
    RequiredBySettings,
    /// The user's tier is zero-trust: every login needs MFA.
    ZeroTrustTier,
    /// The risk engine scored the login at or above the user's threshold.
    Risk,
}

impl ChallengeReason {
    /// Stable name, as on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RequiredBySettings => "required_by_settings",
            Self::ZeroTrustTier => "zero_trust_tier",
            Self::Risk => "risk",
        }
    }
}

/// A challenge handed to the client.
pub(crate) struct ChallengeIssued {
    pub token: SessionToken,
    pub factors: Vec<SecondFactor>,
    pub expires_at: Timestamp,
    pub reason: ChallengeReason,
}

/// A login waiting for its second factor.
pub(crate) struct PendingLogin {
    id: SessionId,
    secret_hash: [u8; 32],
    expires_at: Timestamp,
    attempts: u32,
    factors: Vec<SecondFactor>,
    context: LoginContext,
    location: Option<Location>,
    risk: RiskAssessment,
    credential_version: u64,
    code: Option<SentCode>,
    last_sent: Option<Timestamp>,
}

struct SentCode {
    digest: [u8; 32],
    expires_at: Timestamp,
}

/// Sends a sign-in code by email for a pending login.
#[derive(Message, Clone)]
#[rtype(result = "Result<CodeSend, EngineError>")]
pub(crate) struct SendLoginCode(pub SessionToken);

/// What became of a code request.
#[derive(Debug)]
pub enum CodeSend {
    /// A code was made and queued for sending; it expires then.
    Sent {
        /// When the code stops working.
        expires_at: Timestamp,
    },
    /// A code was sent moments ago; ask again after this many seconds.
    TooSoon {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// This challenge does not offer email.
    NotOffered,
    /// No such challenge (expired, used, or never issued).
    Gone,
}

/// Answers a pending login with a second factor.
#[derive(Message, Clone)]
#[rtype(result = "Result<LoginDecision, EngineError>")]
pub(crate) struct CompleteLogin {
    pub challenge: SessionToken,
    pub factor: SecondFactor,
    pub code: String,
}

/// Starts authenticator enrollment (needs a recent authentication).
#[derive(Message, Clone)]
#[rtype(result = "Result<totp::TotpEnrollment, EngineError>")]
pub(crate) struct BeginTotp {
    pub session: Option<SessionId>,
}

/// Confirms the pending authenticator with a first code; replies the recovery codes.
#[derive(Message, Clone)]
#[rtype(result = "Result<Vec<String>, EngineError>")]
pub(crate) struct ConfirmTotp {
    pub code: String,
}

/// Removes the authenticator (or a pending enrollment) and the recovery codes.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), EngineError>")]
pub(crate) struct RemoveTotp {
    pub session: Option<SessionId>,
}

/// Replaces the recovery codes (needs a recent authentication).
#[derive(Message, Clone)]
#[rtype(result = "Result<Vec<String>, EngineError>")]
pub(crate) struct RegenerateRecovery {
    pub session: Option<SessionId>,
}

/// The user's second factors.
#[derive(Message, Clone)]
#[rtype(result = "Result<MfaStatus, EngineError>")]
pub(crate) struct GetMfa;

/// Proves the credentials again in a session (step-up).
#[derive(Message, Clone)]
#[rtype(result = "Result<StepUpOutcome, EngineError>")]
pub(crate) struct StepUp {
    pub session: SessionId,
    pub password_ok: bool,
    pub credential_version: u64,
    pub factor: Option<(SecondFactor, String)>,
}

/// What a step-up achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepUpOutcome {
    /// The session counts as freshly authenticated until `valid_until`.
    Done {
        /// When sensitive operations need another step-up.
        valid_until: Timestamp,
    },
    /// Wrong password or factor (counted as a failure).
    Rejected,
    /// The user has an authenticator: a code from it (or a recovery code) must come too.
    FactorRequired,
}

/// Fails with [`EngineError::StepUpRequired`] unless `session` authenticated recently
/// (the operator, `None`, always passes).
#[derive(Message, Clone)]
#[rtype(result = "Result<(), EngineError>")]
pub(crate) struct CheckStepUp(pub Option<SessionId>);

/// The newest security events numbered below `before`.
#[derive(Message, Clone)]
#[rtype(result = "Result<(Vec<SecurityEvent>, Option<u64>), EngineError>")]
pub(crate) struct GetSecurityEvents {
    pub before: u64,
    pub limit: usize,
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
        self.challenges.retain(|c| c.expires_at > now);
        if self.challenges.len() >= MAX_PENDING_LOGINS {
            self.challenges.remove(0);
        }
        let token = SessionToken::issue(self.id());
        let factors = self
            .state
            .mfa
            .challenge_factors(&self.state.profile.security_settings);
        let expires_at = now.plus(self.engine.config.mfa.challenge_ttl);
        let mut event = self.event_from(
            SecurityEventKind::LoginChallenged,
            &context,
            location.as_ref(),
            now,
        );
        event.risk = Some(risk.clone());
        event.detail = Some(reason.as_str().into());
        self.record_soft(event);
        self.challenges.push(PendingLogin {
            id: token.session_id(),
            secret_hash: token.secret_hash(),
            expires_at,
            attempts: 0,
            factors: factors.clone(),
            context,
            location,
            risk: risk.clone(),
            credential_version: self.state.credential_version,
            code: None,
            last_sent: None,
        });
        LoginDecision::Challenge(Box::new(ChallengeIssued {
            token,
            factors,
            expires_at,
            reason,
        }))
    }

    fn pending(&mut self, token: &SessionToken, now: Timestamp) -> Option<usize> {
        self.challenges.retain(|c| c.expires_at > now);
        self.challenges
            .iter()
            .position(|c| c.id == token.session_id() && token.matches(&c.secret_hash))
    }

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

    /// Checks a request's origin against its session: a zero-trust session must come
    /// from its device and network (else it ends); another session seen on a new
    /// network is scored, ended if the risk engine denies, and otherwise asked for a
    /// step-up before anything sensitive.
    pub(super) fn check_origin(
        &mut self,
        session: SessionId,
        origin: &RequestOrigin,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        // Every authenticated request comes through here: the common case (same network)
        // parses the stored prefix and allocates nothing.
        let risk_cfg = &self.engine.config.risk;
        let on = |known: &Option<String>| match (known, origin.ip) {
            (Some(net), Some(ip)) => risk_cfg.in_network(net, ip),
            (known, ip) => known.is_none() && ip.is_none(),
        };
        let Some(s) = self.state.sessions.iter().find(|s| s.id == session) else {
            return Ok(());
        };
        if let Some(b) = &s.binding {
            let device_ok = b.device_id.is_none() || b.device_id == origin.device_id;
            let network_ok = b.network.is_none() || on(&b.network);
            if device_ok && network_ok {
                return Ok(());
            }
            let what = match (device_ok, network_ok) {
                (false, false) => "device and network",
                (false, true) => "device",
                _ => "network",
            };
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
        if origin.ip.is_none() || on(&s.network) {
            return Ok(());
        }
        let network = origin.ip.map(|ip| risk_cfg.network_of(ip));
        if s.network.is_none() {
            // A session from before networks were recorded (or opened without an
            // address): this is its first network, not a move.
            if let Some(s) = self.state.sessions.iter_mut().find(|s| s.id == session) {
                s.network = network;
            }
            self.soft_dirty = true;
            return Ok(());
        }
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

    fn end_session(
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

    pub(super) fn notify_new_device(
        &self,
        device: &str,
        ip: Option<std::net::IpAddr>,
        now: Timestamp,
    ) {
        let from = ip.map_or_else(String::new, |ip| format!(" from {ip}"));
        self.engine.notifier.send(Email {
            kind: EmailKind::NewDevice,
            at: now,
            to: self.state.profile.email.as_str().to_owned(),
            subject: "New sign-in to your account".into(),
            body: format!(
                "Your account was signed in to from a new device ({device}){from}.\n\
                 If this was not you, change your password and end your other sessions."
            ),
        });
    }

    pub(super) fn notify_blocked(&self, context: &LoginContext, now: Timestamp) {
        let from = context
            .ip_address
            .map_or_else(String::new, |ip| format!(" from {ip}"));
        self.engine.notifier.send(Email {
            kind: EmailKind::LoginBlocked,
            at: now,
            to: self.state.profile.email.as_str().to_owned(),
            subject: "A sign-in to your account was blocked".into(),
            body: format!(
                "We blocked a sign-in with your correct password{from} because it looked \
                 risky. If this was you, try again from a usual device or network. If it \
                 was not, change your password now."
            ),
        });
    }

    fn factor_failed(
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
}

impl Handler<SendLoginCode> for UserActor {
    type Result = Result<CodeSend, EngineError>;
    fn handle(
        &mut self,
        SendLoginCode(token): SendLoginCode,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let now = self.touch();
        let Some(i) = self.pending(&token, now) else {
            return Ok(CodeSend::Gone);
        };
        let mfa = &self.engine.config.mfa;
        let (resend, ttl, digits) = (mfa.code_resend, mfa.code_ttl, mfa.code_digits);
        let c = &mut self.challenges[i];
        if !c.factors.contains(&SecondFactor::Email) {
            return Ok(CodeSend::NotOffered);
        }
        if let Some(last) = c.last_sent {
            let waited = now.since(last);
            if waited < resend {
                return Ok(CodeSend::TooSoon {
                    retry_after_secs: (resend - waited).as_secs().max(1),
                });
            }
        }
        let code = otp::numeric_code(digits);
        // A code never outlives its challenge.
        let expires_at = now.plus(ttl).min(c.expires_at);
        c.code = Some(SentCode {
            digest: otp::digest(&code),
            expires_at,
        });
        c.last_sent = Some(now);
        let minutes = ttl.as_secs().div_ceil(60);
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
        Ok(CodeSend::Sent { expires_at })
    }
}

impl Handler<CompleteLogin> for UserActor {
    type Result = Result<LoginDecision, EngineError>;
    fn handle(&mut self, msg: CompleteLogin, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let Some(i) = self.pending(&msg.challenge, now) else {
            return Ok(LoginDecision::ChallengeGone);
        };
        if self.challenges[i].credential_version != self.state.credential_version {
            // The password changed since: this login's password is no longer right.
            self.challenges.remove(i);
            return Ok(LoginDecision::ChallengeGone);
        }
        if !self.challenges[i].factors.contains(&msg.factor) {
            return Err(ValidationError::new(
                "method",
                format!(
                    "this challenge accepts {}",
                    self.challenges[i]
                        .factors
                        .iter()
                        .map(|f| f.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .into());
        }
        let cfg = Arc::clone(&self.engine.config);
        let mut mfa = self.state.mfa.clone();
        let verdict = match msg.factor {
            SecondFactor::Authenticator => match &mut mfa.totp {
                None => Err(SecurityEventKind::MfaFailed),
                Some(t) => match totp::check(
                    &t.secret,
                    &msg.code,
                    &cfg.mfa.totp,
                    now.unix_secs(),
                    t.last_step,
                ) {
                    totp::TotpCheck::Valid { step } => {
                        t.last_step = Some(step);
                        Ok(())
                    }
                    totp::TotpCheck::Replayed => Err(SecurityEventKind::MfaReplayed),
                    totp::TotpCheck::Invalid => Err(SecurityEventKind::MfaFailed),
                },
            },
            SecondFactor::Email => {
                let c = &self.challenges[i];
                match &c.code {
                    Some(sent)
                        if sent.expires_at > now
                            && otp::same(&sent.digest, &otp::digest(&msg.code)) =>
                    {
                        Ok(())
                    }
                    _ => Err(SecurityEventKind::MfaFailed),
                }
            }
            SecondFactor::RecoveryCode => {
                if mfa.use_recovery(&msg.code, now) {
                    Ok(())
                } else {
                    Err(SecurityEventKind::MfaFailed)
                }
            }
        };
        match verdict {
            Err(kind) => {
                self.factor_failed(kind, Some(msg.factor), now);
                let c = &mut self.challenges[i];
                c.attempts += 1;
                let left = cfg.mfa.code_max_attempts.saturating_sub(c.attempts);
                if left == 0 {
                    self.challenges.remove(i);
                    return Ok(LoginDecision::ChallengeGone);
                }
                Ok(LoginDecision::FactorRejected {
                    attempts_left: left,
                })
            }
            Ok(()) => {
                let c = self.challenges.remove(i);
                let used_recovery = msg.factor == SecondFactor::RecoveryCode;
                let decision = self.grant_with(
                    c.context,
                    c.location,
                    Some(c.risk),
                    Some(msg.factor),
                    now,
                    |next| next.mfa = mfa,
                )?;
                if used_recovery {
                    let mut e = SecurityEvent::new(SecurityEventKind::RecoveryCodeUsed, now);
                    e.factor = Some(SecondFactor::RecoveryCode);
                    e.detail = Some(format!("{} left", self.state.mfa.recovery_left()));
                    self.record_soft(e);
                }
                Ok(decision)
            }
        }
    }
}

impl Handler<BeginTotp> for UserActor {
    type Result = Result<totp::TotpEnrollment, EngineError>;
    fn handle(&mut self, msg: BeginTotp, _: &mut Context<Self>) -> Self::Result {
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
}

impl Handler<ConfirmTotp> for UserActor {
    type Result = Result<Vec<String>, EngineError>;
    fn handle(&mut self, msg: ConfirmTotp, _: &mut Context<Self>) -> Self::Result {
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
        let codes = next.mfa.regenerate_recovery();
        let profile = Arc::make_mut(&mut next.profile);
        let methods = &mut profile.security_settings.mfa_methods;
        if !methods.contains(&crate::domain::settings::MfaMethod::Authenticator) {
            methods.push(crate::domain::settings::MfaMethod::Authenticator);
        }
        let mut e = SecurityEvent::new(SecurityEventKind::MfaEnrolled, now);
        e.factor = Some(SecondFactor::Authenticator);
        self.record_event(&mut next, e);
        self.persist(next, now)?;
        Ok(codes)
    }
}

impl Handler<RemoveTotp> for UserActor {
    type Result = Result<(), EngineError>;
    fn handle(&mut self, msg: RemoveTotp, _: &mut Context<Self>) -> Self::Result {
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
        next.mfa.recovery.clear();
        let mut e = SecurityEvent::new(SecurityEventKind::MfaRemoved, now);
        e.factor = Some(SecondFactor::Authenticator);
        self.record_event(&mut next, e);
        self.persist(next, now)?;
        Ok(())
    }
}

impl Handler<RegenerateRecovery> for UserActor {
    type Result = Result<Vec<String>, EngineError>;
    fn handle(&mut self, msg: RegenerateRecovery, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        self.require_recent(msg.session, now)?;
        if self.state.mfa.totp.is_none() {
            return Err(EngineError::Conflict(
                "recovery codes come with an authenticator; enroll one first".into(),
            ));
        }
        let mut next = self.state.clone();
        let codes = next.mfa.regenerate_recovery();
        let e = SecurityEvent::new(SecurityEventKind::RecoveryCodesRegenerated, now);
        self.record_event(&mut next, e);
        self.persist(next, now)?;
        Ok(codes)
    }
}

impl Handler<GetMfa> for UserActor {
    type Result = Result<MfaStatus, EngineError>;
    fn handle(&mut self, _: GetMfa, _: &mut Context<Self>) -> Self::Result {
        self.touch();
        Ok(self.state.mfa.status(&self.state.profile.security_settings))
    }
}

impl Handler<StepUp> for UserActor {
    type Result = Result<StepUpOutcome, EngineError>;
    fn handle(&mut self, msg: StepUp, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        if !msg.password_ok || msg.credential_version != self.state.credential_version {
            self.factor_failed(SecurityEventKind::LoginFailed, None, now);
            return Ok(StepUpOutcome::Rejected);
        }
        let cfg = Arc::clone(&self.engine.config);
        let mut mfa = self.state.mfa.clone();
        let mut used = None;
        if mfa.has_enrolled_factor() {
            let Some((factor, code)) = msg.factor else {
                return Ok(StepUpOutcome::FactorRequired);
            };
            let ok = match factor {
                SecondFactor::Authenticator => match &mut mfa.totp {
                    Some(t) => match totp::check(
                        &t.secret,
                        &code,
                        &cfg.mfa.totp,
                        now.unix_secs(),
                        t.last_step,
                    ) {
                        totp::TotpCheck::Valid { step } => {
                            t.last_step = Some(step);
                            true
                        }
                        _ => false,
                    },
                    None => false,
                },
                SecondFactor::RecoveryCode => mfa.use_recovery(&code, now),
                SecondFactor::Email => false,
            };
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

impl Handler<CheckStepUp> for UserActor {
    type Result = Result<(), EngineError>;
    fn handle(&mut self, CheckStepUp(session): CheckStepUp, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        self.require_recent(session, now)
    }
}

impl Handler<GetSecurityEvents> for UserActor {
    type Result = Result<(Vec<SecurityEvent>, Option<u64>), EngineError>;
    fn handle(&mut self, msg: GetSecurityEvents, _: &mut Context<Self>) -> Self::Result {
        self.touch();
        let log = &self.state.security;
        Ok((log.newest_before(msg.before, msg.limit), log.oldest_seq()))
    }
}
