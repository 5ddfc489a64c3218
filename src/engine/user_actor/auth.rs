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
use crate::engine::state::UserState;
use crate::notify::{Email, EmailKind, Sms};
use crate::security::passkey::{
    self, CreationChallengeResponse, PasskeyAuthentication, PublicKeyCredential,
    RegisterPublicKeyCredential, RequestChallengeResponse,
};
use crate::security::token::SessionToken;
use crate::security::{otp, totp};

/// Gives `mfa` a fresh set of recovery codes; returns them, to show once.
fn fresh_recovery_codes(mfa: &mut crate::domain::mfa::MfaState) -> Vec<String> {
    let (codes, digests) = otp::recovery_codes();
    mfa.set_recovery(digests);
    codes
}

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
    /// A passwordless login: the passkey is the proof.
    Passwordless,
}

impl ChallengeReason {
    /// Stable name, as on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RequiredBySettings => "required_by_settings",
            Self::ZeroTrustTier => "zero_trust_tier",
            Self::Risk => "risk",
            Self::Passwordless => "passwordless",
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
    /// The WebAuthn options handed out for this login, once asked for.
    passkey_auth: Option<PasskeyAuthentication>,
}

struct SentCode {
    digest: [u8; 32],
    expires_at: Timestamp,
    /// `Email` or `Sms`: a code answers only for the channel it went through.
    channel: SecondFactor,
}

/// Sends a sign-in code by email or SMS (`channel`) for a pending login.
#[derive(Message, Clone)]
#[rtype(result = "Result<CodeSend, EngineError>")]
pub(crate) struct SendLoginCode {
    pub challenge: SessionToken,
    pub channel: SecondFactor,
}

/// A phone number waiting for its texted code.
pub(crate) struct PendingPhone {
    number: String,
    code: SentCode,
    attempts: u32,
    sent_at: Timestamp,
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
#[rtype(result = "Result<Vec<String>, EngineError>")]
pub(crate) struct ConfirmSms {
    pub code: String,
}

/// Removes the phone number (needs a recent authentication).
#[derive(Message, Clone)]
#[rtype(result = "Result<(), EngineError>")]
pub(crate) struct RemoveSms {
    pub session: Option<SessionId>,
}

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
    pub proof: FactorProof,
}

/// The answer to a second-factor question.
#[derive(Clone, Debug)]
pub enum FactorProof {
    /// A code: authenticator, email or recovery.
    Code(String),
    /// A WebAuthn assertion, for the options the server handed out.
    Assertion(Box<PublicKeyCredential>),
}

impl FactorProof {
    /// The proof with surrounding spaces taken off a code.
    pub fn trimmed(self) -> Self {
        match self {
            Self::Code(c) => Self::Code(c.trim().to_owned()),
            a => a,
        }
    }
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

/// Removes the authenticator (or a pending enrollment) and the recovery codes; an
/// operator's removal is written with its audit record.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), EngineError>")]
pub(crate) struct RemoveTotp {
    pub session: Option<SessionId>,
    pub audit: Option<super::Audited>,
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
    pub factor: Option<(SecondFactor, FactorProof)>,
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
            passkey_auth: None,
        });
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
    fn verify_factor(
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

    /// Whether the device of `context` has logged in to this account before.
    pub(super) fn knows_device(&self, context: &LoginContext) -> bool {
        context
            .device_id
            .as_ref()
            .is_some_and(|d| self.state.known_devices.contains(d))
    }

    /// Records a login the risk engine refused, and tells the user.
    pub(super) fn risk_denied(
        &mut self,
        context: &LoginContext,
        location: Option<&Location>,
        risk: RiskAssessment,
        factor: Option<SecondFactor>,
        now: Timestamp,
    ) {
        let mut e = self.event_from(SecurityEventKind::LoginDenied, context, location, now);
        e.risk = Some(risk);
        e.factor = factor;
        self.record_soft(e);
        self.notify_blocked(context, now);
    }

    pub(super) fn notify_unusual(
        &self,
        context: &LoginContext,
        risk: &RiskAssessment,
        now: Timestamp,
    ) {
        let from = context
            .ip_address
            .map_or_else(String::new, |ip| format!(" from {ip}"));
        let why: Vec<&str> = risk.signals.iter().map(|s| s.reason.as_str()).collect();
        self.engine.notifier.send(Email {
            kind: EmailKind::UnusualSignIn,
            at: now,
            to: self.state.profile.email.as_str().to_owned(),
            subject: "Unusual sign-in to your account".into(),
            body: format!(
                "Someone signed in with your correct password{from}, which looked unusual \
                 ({}), so we asked for a second factor. If this was not you, change your \
                 password now.",
                why.join("; ")
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

    /// The common end of enrolling `factor` into `next`: recovery codes when the user
    /// has none (returned, to show once), the method added to the accepted ones, the
    /// event recorded.
    fn enrolled(&self, next: &mut UserState, factor: SecondFactor, now: Timestamp) -> Vec<String> {
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
    fn removed(&self, next: &mut UserState, factor: SecondFactor, now: Timestamp) {
        if !next.mfa.has_enrolled_factor() {
            next.mfa.recovery.clear();
        }
        let mut e = SecurityEvent::new(SecurityEventKind::MfaRemoved, now);
        e.factor = Some(factor);
        self.record_event(next, e);
    }

    /// A fresh numeric code for `channel`, and what is kept of it.
    fn new_code(&self, channel: SecondFactor, now: Timestamp) -> (String, SentCode) {
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
    fn deliver_code(
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
    fn handle(&mut self, msg: SendLoginCode, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let Some(i) = self.pending(&msg.challenge, now) else {
            return Ok(CodeSend::Gone);
        };
        let channel = msg.channel;
        let c = &self.challenges[i];
        if !matches!(channel, SecondFactor::Email | SecondFactor::Sms)
            || !c.factors.contains(&channel)
        {
            return Ok(CodeSend::NotOffered);
        }
        if let Some(wait) = too_soon(c.last_sent, self.engine.config.mfa.code_resend, now) {
            return Ok(wait);
        }
        // A code never outlives its challenge.
        let (code, mut sent) = self.new_code(channel, now);
        sent.expires_at = sent.expires_at.min(c.expires_at);
        let expires_at = sent.expires_at;
        let c = &mut self.challenges[i];
        c.code = Some(sent);
        c.last_sent = Some(now);
        let to = match channel {
            SecondFactor::Sms => self.state.mfa.phone.as_ref().map(|p| p.number.clone()),
            _ => None,
        };
        self.deliver_code(channel, to, &code, now);
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
        let c = &self.challenges[i];
        let verdict = self.verify_factor(
            &mut mfa,
            msg.factor,
            &msg.proof,
            c.code.as_ref(),
            c.passkey_auth.as_ref(),
            now,
        );
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
        let codes = self.enrolled(&mut next, SecondFactor::Authenticator, now);
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
        self.removed(&mut next, SecondFactor::Authenticator, now);
        self.write(next, now, msg.audit.into_iter().collect())?;
        Ok(())
    }
}

impl Handler<RegenerateRecovery> for UserActor {
    type Result = Result<Vec<String>, EngineError>;
    fn handle(&mut self, msg: RegenerateRecovery, _: &mut Context<Self>) -> Self::Result {
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
            let Some((factor, proof)) = msg.factor else {
                return Ok(StepUpOutcome::FactorRequired);
            };
            let pending = self
                .step_up_auth
                .take()
                .filter(|(sid, _, at)| {
                    *sid == msg.session && now.since(*at) < cfg.mfa.challenge_ttl
                })
                .map(|(_, state, _)| state);
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

/// Starts registering a passkey (needs a recent authentication).
#[derive(Message, Clone)]
#[rtype(result = "Result<CreationChallengeResponse, EngineError>")]
pub(crate) struct BeginPasskeyRegistration {
    pub session: Option<SessionId>,
}

/// Completes a passkey registration; replies new recovery codes when the user had none.
#[derive(Message, Clone)]
#[rtype(result = "Result<Vec<String>, EngineError>")]
pub(crate) struct FinishPasskeyRegistration {
    pub name: String,
    pub credential: Box<RegisterPublicKeyCredential>,
}

/// Removes a passkey (needs a recent authentication).
#[derive(Message, Clone)]
#[rtype(result = "Result<(), EngineError>")]
pub(crate) struct RemovePasskey {
    pub session: Option<SessionId>,
    pub id: String,
}

/// WebAuthn options for a step-up of `session`.
#[derive(Message, Clone)]
#[rtype(result = "Result<RequestChallengeResponse, EngineError>")]
pub(crate) struct StartStepUpAssertion {
    pub session: SessionId,
}

impl UserActor {
    fn start_assertion(
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

impl Handler<StartLoginAssertion> for UserActor {
    type Result = Result<Option<RequestChallengeResponse>, EngineError>;
    fn handle(&mut self, msg: StartLoginAssertion, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let Some(i) = self.pending(&msg.0, now) else {
            return Ok(None);
        };
        if !self.challenges[i].factors.contains(&SecondFactor::Webauthn) {
            return Ok(None);
        }
        let (options, state) = self.start_assertion()?;
        self.challenges[i].passkey_auth = Some(state);
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
        if let Some(p) = self.challenges.last_mut() {
            p.factors = vec![SecondFactor::Webauthn];
            p.passkey_auth = Some(state);
        }
        Ok(PasswordlessStart::Options(c.token, Box::new(options)))
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
        self.pending_registration = Some((state, now));
        Ok(options)
    }
}

/// Most passkeys one user may register.
const MAX_PASSKEYS: usize = 16;

impl Handler<FinishPasskeyRegistration> for UserActor {
    type Result = Result<Vec<String>, EngineError>;
    fn handle(&mut self, msg: FinishPasskeyRegistration, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let ttl = self.engine.config.mfa.challenge_ttl;
        let Some((state, _)) = self
            .pending_registration
            .take()
            .filter(|(_, at)| now.since(*at) < ttl)
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
}

impl Handler<RemovePasskey> for UserActor {
    type Result = Result<(), EngineError>;
    fn handle(&mut self, msg: RemovePasskey, _: &mut Context<Self>) -> Self::Result {
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

impl Handler<StartStepUpAssertion> for UserActor {
    type Result = Result<RequestChallengeResponse, EngineError>;
    fn handle(&mut self, msg: StartStepUpAssertion, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let (options, state) = self.start_assertion()?;
        self.step_up_auth = Some((msg.session, state, now));
        Ok(options)
    }
}

/// `Some(TooSoon)` when a code went out less than `resend` ago.
fn too_soon(
    last: Option<Timestamp>,
    resend: std::time::Duration,
    now: Timestamp,
) -> Option<CodeSend> {
    let waited = now.since(last?);
    (waited < resend).then(|| CodeSend::TooSoon {
        retry_after_secs: (resend - waited).as_secs().max(1),
    })
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
        let last = self.pending_phone.as_ref().map(|p| p.sent_at);
        if let Some(wait) = too_soon(last, self.engine.config.mfa.code_resend, now) {
            return Ok(wait);
        }
        let (code, sent) = self.new_code(SecondFactor::Sms, now);
        let expires_at = sent.expires_at;
        self.deliver_code(SecondFactor::Sms, Some(number.clone()), &code, now);
        self.pending_phone = Some(PendingPhone {
            number,
            code: sent,
            attempts: 0,
            sent_at: now,
        });
        Ok(CodeSend::Sent { expires_at })
    }
}

impl Handler<ConfirmSms> for UserActor {
    type Result = Result<Vec<String>, EngineError>;
    fn handle(&mut self, msg: ConfirmSms, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let max = self.engine.config.mfa.code_max_attempts;
        let Some(p) = self
            .pending_phone
            .as_mut()
            .filter(|p| p.code.expires_at > now)
        else {
            self.pending_phone = None;
            return Err(EngineError::Conflict(
                "no phone number is waiting for its code (or the code expired): start again".into(),
            ));
        };
        if !otp::same(&p.code.digest, &otp::digest(&msg.code)) {
            p.attempts += 1;
            if p.attempts >= max {
                self.pending_phone = None;
            }
            return Err(ValidationError::new("code", "does not match the texted code").into());
        }
        let Some(p) = self.pending_phone.take() else {
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
}

impl Handler<RemoveSms> for UserActor {
    type Result = Result<(), EngineError>;
    fn handle(&mut self, msg: RemoveSms, _: &mut Context<Self>) -> Self::Result {
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
}
