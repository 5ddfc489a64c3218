//! Logins: by password (with the second factor a challenge asks for), by passkey alone,
//! step-up, logout, and the per-request check of a bearer token.
//!
//! Anonymous ceremonies answer the same shape whoever the email belongs to: an unknown
//! email costs one argon2 verification like a wrong password, and a passwordless start
//! for an account without a passkey gets decoy options.

use super::principal::Principal;
use super::{
    ChallengeOutcome, DenyReason, LoginChallenge, LoginOutcome, LoginSuccess,
    PasswordlessChallenge, UserManager,
};
use crate::domain::binding::RequestOrigin;
use crate::domain::email::Email;
use crate::domain::ids::UserId;
use crate::domain::mfa::SecondFactor;
use crate::domain::session::LoginContext;
use crate::domain::time::Timestamp;
use crate::domain::validation::ValidationError;
use crate::engine::EngineError;
use crate::engine::decoys::DecoyAnswer;
use crate::engine::outcomes::{
    AuthorizedRequest, CodeSend, FactorProof, SessionInfo, StepUpOutcome,
};
use crate::engine::shared_profile::SharedProfile;
use crate::engine::user::{
    AuthorizeRequest, BeginLogin, BeginPasswordless, CompleteLogin, FinishLogin, LoginDecision,
    PasswordlessStart, Rehash, SendLoginCode, StartLoginAssertion, StartStepUpAssertion, StepUp,
    UserActor, ValidateSession,
};
use crate::metrics::LoginResult;
use crate::security::otp;
use crate::security::passkey::{PublicKeyCredential, RequestChallengeResponse};
use crate::security::token::SessionToken;
use crate::security::totp;

/// A second factor as a client sends it: which factor, and its code — or, for
/// `webauthn`, the signed assertion. Its shape is checked before anything is counted,
/// so a typo in the format is a 400 and not a wasted attempt.
#[derive(Clone, Debug)]
pub struct FactorAnswer {
    /// Which factor answers.
    pub method: SecondFactor,
    /// The code, for every factor but `webauthn`.
    pub code: Option<String>,
    /// The assertion from `navigator.credentials.get()`, for `webauthn`.
    pub credential: Option<PublicKeyCredential>,
}

impl FactorAnswer {
    /// A code for `method`.
    pub fn code(method: SecondFactor, code: impl Into<String>) -> Self {
        Self {
            method,
            code: Some(code.into()),
            credential: None,
        }
    }

    /// A passkey's signed assertion.
    pub fn assertion(credential: PublicKeyCredential) -> Self {
        Self {
            method: SecondFactor::Webauthn,
            code: None,
            credential: Some(credential),
        }
    }
}

/// See [`UserManager::login`].
#[derive(Clone, Copy)]
pub struct Login<'a> {
    pub(super) m: &'a UserManager,
}

impl Login<'_> {
    /// Checks a code's shape for `factor`.
    pub(crate) fn check_code(self, factor: SecondFactor, code: &str) -> Result<(), EngineError> {
        let cfg = &self.m.engine.config.mfa;
        let code = code.trim();
        let (ok, want) = match factor {
            SecondFactor::Authenticator => (
                totp::well_formed(code, &cfg.totp),
                format!("{} digits", cfg.totp.digits),
            ),
            SecondFactor::Email | SecondFactor::Sms => (
                otp::numeric_well_formed(code, cfg.code_digits),
                format!("{} digits", cfg.code_digits),
            ),
            SecondFactor::RecoveryCode => (
                otp::normalize_recovery(code).is_some(),
                "a recovery code (xxxx-xxxx-xxxx-xxxx)".to_owned(),
            ),
            SecondFactor::Webauthn => (false, "sent as `credential`, not `code`".to_owned()),
        };
        if ok {
            Ok(())
        } else {
            Err(ValidationError::new("code", format!("must be {want}")).into())
        }
    }

    /// The proof an answer carries: a well-formed code, or for `webauthn` an assertion;
    /// never both.
    fn proof(self, answer: FactorAnswer) -> Result<FactorProof, EngineError> {
        match (answer.method, answer.code, answer.credential) {
            (SecondFactor::Webauthn, None, Some(c)) => Ok(FactorProof::Assertion(Box::new(c))),
            (SecondFactor::Webauthn, _, _) => Err(ValidationError::new(
                "credential",
                "webauthn is answered with `credential` (the assertion), and no `code`",
            )
            .into()),
            (m, Some(code), None) => {
                self.check_code(m, &code)?;
                Ok(FactorProof::Code(code.trim().to_owned()))
            }
            (_, _, _) => Err(ValidationError::new(
                "code",
                "this method is answered with `code`, and no `credential`",
            )
            .into()),
        }
    }

    /// The login context a login records: what the client said of itself, except its
    /// address, which is the connection's (`origin`) unless a trusted front end (the
    /// operator or the system) says otherwise — the risk checks must not take a client's
    /// word for where it is.
    fn context(by: &Principal, mut context: LoginContext, origin: &RequestOrigin) -> LoginContext {
        if !by.is_privileged() || context.ip_address.is_none() {
            context.ip_address = origin.ip;
        }
        if context.device_id.is_none() {
            context.device_id = origin.device_id.clone();
        }
        context
    }

    /// The user an email names, if any.
    fn lookup(self, email: &str) -> Result<Option<UserId>, EngineError> {
        let e = &self.m.engine;
        match Email::parse_for_lookup(email) {
            Ok(email) => Ok(e
                .store
                .lookup_email(&e.keys.email_index(&email.normalized()))?),
            Err(_) => Ok(None),
        }
    }

    /// A password login. Unknown email, wrong password, a locked account and a login the
    /// risk engine refuses are all [`LoginOutcome::Denied`], each after one argon2
    /// verification. A second factor needed (the user's settings, a zero-trust tier, the
    /// risk score) is a [`LoginOutcome::Challenge`], answered with [`Self::complete`].
    pub async fn password(
        self,
        by: &Principal,
        email: &str,
        password: &str,
        context: LoginContext,
        origin: RequestOrigin,
    ) -> Result<LoginOutcome, EngineError> {
        let context = Self::context(by, context, &origin).sanitized()?;
        let e = &self.m.engine;
        let ticket = match self.lookup(email)? {
            Some(id) => match e.call(id, BeginLogin).await {
                Ok(t) => Some((id, t)),
                Err(EngineError::NotFound) => None,
                Err(err) => return Err(err),
            },
            None => None,
        };
        let Some((id, ticket)) = ticket else {
            e.hasher.verify(password.to_owned(), None).await?;
            self.m.count_login(LoginResult::WrongCredentials);
            return Ok(LoginOutcome::Denied(DenyReason::InvalidCredentials));
        };
        let stored = ticket.password_hash;
        let ok = e
            .hasher
            .verify(password.to_owned(), Some(stored.clone()))
            .await?;
        let finish = FinishLogin {
            password_ok: ok,
            credential_version: ticket.credential_version,
            context,
            location: origin.location,
        };
        let decision = e.call_durable(id, finish).await?;
        if matches!(
            decision,
            LoginDecision::Granted { .. } | LoginDecision::Challenge(_)
        ) && e.hasher.needs_rehash(&stored)
        {
            self.rehash(id, password, stored, ticket.credential_version)
                .await;
        }
        match decision {
            LoginDecision::Granted {
                token,
                expires_at,
                profile,
            } => Ok(LoginOutcome::Success(Box::new(
                self.granted(token, expires_at, profile).await?,
            ))),
            LoginDecision::Challenge(c) => {
                self.m.count_login(LoginResult::MfaChallenged);
                Ok(LoginOutcome::Challenge(Box::new(LoginChallenge {
                    status: "mfa_required",
                    challenge: e.challenges.seal(&c.token),
                    methods: c.factors,
                    reason: c.reason,
                    expires_at: c.expires_at,
                })))
            }
            LoginDecision::Rejected
            | LoginDecision::FactorRejected { .. }
            | LoginDecision::ChallengeGone => {
                self.m.count_login(LoginResult::WrongCredentials);
                Ok(LoginOutcome::Denied(DenyReason::InvalidCredentials))
            }
            LoginDecision::Locked { until } => {
                self.m.count_login(LoginResult::Locked);
                Ok(LoginOutcome::Denied(DenyReason::Locked { until }))
            }
            LoginDecision::RiskDenied => {
                self.m.count_login(LoginResult::RiskDenied);
                Ok(LoginOutcome::Denied(DenyReason::RiskDenied))
            }
        }
    }

    /// Replaces the stored hash `old` of a password a login just proved with one at the
    /// configured cost. Only after the account let the login through, so a locked
    /// account's answer takes the same time whether the password was right; a failure
    /// is logged and the login goes on (the old hash still verifies).
    async fn rehash(self, id: UserId, password: &str, old: String, credential_version: u64) {
        let e = &self.m.engine;
        let written = match e.hasher.hash(password.to_owned()).await {
            Ok(hash) => {
                let msg = Rehash {
                    old,
                    hash,
                    credential_version,
                };
                e.call_durable(id, msg).await
            }
            Err(err) => Err(err.into()),
        };
        if let Err(err) = written {
            tracing::warn!(user = %id, %err, "a migrated password hash was not replaced");
        }
    }

    /// Counts a granted login (already durable) and hands out its session.
    async fn granted(
        self,
        token: SessionToken,
        expires_at: Timestamp,
        profile: SharedProfile,
    ) -> Result<LoginSuccess, EngineError> {
        let e = &self.m.engine;
        self.m.count_login(LoginResult::Success);
        e.metrics.sessions_created.inc();
        Ok(LoginSuccess {
            token: token.expose(),
            session_id: token.session_id(),
            expires_at,
            user: profile.into_inner(),
        })
    }

    /// Answers a login challenge with a second factor. A malformed or unknown challenge
    /// token is [`ChallengeOutcome::Gone`]; a malformed answer is refused before it counts.
    pub async fn complete(
        self,
        challenge: &str,
        answer: FactorAnswer,
    ) -> Result<ChallengeOutcome, EngineError> {
        let factor = answer.method;
        let proof = self.proof(answer)?;
        let Ok(token) = self.m.engine.challenges.open(challenge) else {
            return Ok(ChallengeOutcome::Gone);
        };
        if self.m.engine.decoys.is_decoy(&token) {
            return self.answer_decoy(&token, factor);
        }
        let msg = CompleteLogin {
            challenge: token.clone(),
            factor,
            proof,
        };
        let decision = match self.m.engine.call_durable(token.user_id(), msg).await {
            Err(EngineError::NotFound) => return Ok(ChallengeOutcome::Gone),
            other => other?,
        };
        match decision {
            LoginDecision::Granted {
                token,
                expires_at,
                profile,
            } => Ok(ChallengeOutcome::Success(Box::new(
                self.granted(token, expires_at, profile).await?,
            ))),
            LoginDecision::FactorRejected { attempts_left } => {
                self.m.count_login(LoginResult::MfaFailed);
                Ok(ChallengeOutcome::Rejected { attempts_left })
            }
            _ => {
                self.m.count_login(LoginResult::MfaFailed);
                Ok(ChallengeOutcome::Gone)
            }
        }
    }

    /// Sends a sign-in code for a login challenge through `channel` (`Email` or `Sms`).
    pub async fn send_code(
        self,
        challenge: &str,
        channel: SecondFactor,
    ) -> Result<CodeSend, EngineError> {
        let Ok(token) = self.m.engine.challenges.open(challenge) else {
            return Ok(CodeSend::Gone);
        };
        let decoys = &self.m.engine.decoys;
        if decoys.is_decoy(&token) {
            // A passkey challenge offers no codes.
            let live = decoys.email_of(&token, self.m.now()).is_some();
            return Ok(if live {
                CodeSend::NotOffered
            } else {
                CodeSend::Gone
            });
        }
        let msg = SendLoginCode {
            challenge: token.clone(),
            channel,
        };
        match self.m.engine.call(token.user_id(), msg).await {
            Err(EngineError::NotFound) => Ok(CodeSend::Gone),
            other => other,
        }
    }

    /// The WebAuthn options for answering a login challenge with a passkey; `None` if
    /// the challenge is gone or does not offer passkeys.
    pub async fn assertion_options(
        self,
        challenge: &str,
    ) -> Result<Option<RequestChallengeResponse>, EngineError> {
        let Ok(token) = self.m.engine.challenges.open(challenge) else {
            return Ok(None);
        };
        let decoys = &self.m.engine.decoys;
        if decoys.is_decoy(&token) {
            let email = decoys.email_of(&token, self.m.now());
            return Ok(email.map(|e| self.decoy_request(&e)));
        }
        match self
            .m
            .engine
            .call(token.user_id(), StartLoginAssertion(token))
            .await
        {
            Err(EngineError::NotFound) => Ok(None),
            other => other,
        }
    }

    /// Starts a passwordless login with a passkey: a challenge and the options to sign,
    /// answered with [`Self::complete`]. An unknown email, a user without passkeys, a
    /// locked account or a refusal by the risk engine get options of the same shape, with
    /// a credential id derived from the email (stable across calls) and a challenge that
    /// never completes: the answer tells nothing about the account.
    pub async fn passkey_start(
        self,
        by: &Principal,
        email: &str,
        context: LoginContext,
        origin: RequestOrigin,
    ) -> Result<PasswordlessChallenge, EngineError> {
        let context = Self::context(by, context, &origin).sanitized()?;
        let normalized = Email::parse_for_lookup(email).map(|e| e.normalized()).ok();
        if let Some(id) = self.lookup(email)? {
            let msg = BeginPasswordless {
                context,
                location: origin.location,
            };
            match self.m.engine.call(id, msg).await {
                Ok(PasswordlessStart::Options(token, options)) => {
                    self.m.count_login(LoginResult::MfaChallenged);
                    return Ok(PasswordlessChallenge {
                        challenge: self.m.engine.challenges.seal(&token),
                        options: *options,
                    });
                }
                Ok(PasswordlessStart::Refused) | Err(EngineError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        self.m.count_login(LoginResult::WrongCredentials);
        Ok(self.decoy_options(normalized.as_deref().unwrap_or(email)))
    }

    /// What a passwordless start answers when there is no passkey to offer: a sealed
    /// challenge naming a made-up user, kept as a decoy so that its follow-ups answer as
    /// a real passkey challenge's would (options, no codes, wrong answers counted down
    /// to gone), and never completes.
    fn decoy_options(self, email: &str) -> PasswordlessChallenge {
        let e = &self.m.engine;
        let token = SessionToken::issue(UserId::generate());
        let now = self.m.now();
        let clock = crate::domain::challenge::Challenge::issued(now, e.config.mfa.challenge_ttl);
        e.decoys.open(&token, email, clock, now);
        PasswordlessChallenge {
            challenge: e.challenges.seal(&token),
            options: self.decoy_request(email),
        }
    }

    /// The answer to a decoy: every one is wrong. A method other than a passkey is
    /// refused as a real passkey challenge refuses it.
    fn answer_decoy(
        self,
        token: &SessionToken,
        factor: SecondFactor,
    ) -> Result<ChallengeOutcome, EngineError> {
        let e = &self.m.engine;
        let now = self.m.now();
        if factor != SecondFactor::Webauthn && e.decoys.email_of(token, now).is_some() {
            return Err(ValidationError::new("method", "this challenge accepts webauthn").into());
        }
        self.m.count_login(LoginResult::MfaFailed);
        let max = e.config.mfa.code_max_attempts;
        Ok(match e.decoys.wrong_answer(token, max, now) {
            DecoyAnswer::Rejected(attempts_left) => ChallengeOutcome::Rejected { attempts_left },
            DecoyAnswer::Gone => ChallengeOutcome::Gone,
        })
    }

    /// WebAuthn options for a decoy: one credential id of a passkey's usual 32 bytes,
    /// derived from the email with a key of the server's (the same on every call and
    /// after a restart), and a fresh random challenge.
    fn decoy_request(self, email: &str) -> RequestChallengeResponse {
        let e = &self.m.engine;
        let id = e.keys.passkey_decoy(email, 0);
        let mut challenge = vec![0u8; 32];
        rand::fill(&mut challenge[..]);
        RequestChallengeResponse {
            public_key: webauthn_rs_proto::PublicKeyCredentialRequestOptions {
                challenge,
                timeout: Some(
                    u32::try_from(webauthn_rs::DEFAULT_AUTHENTICATOR_TIMEOUT.as_millis())
                        .unwrap_or(u32::MAX),
                ),
                rp_id: e.config.webauthn.rp_id.clone(),
                allow_credentials: vec![webauthn_rs_proto::AllowCredentials {
                    type_: "public-key".into(),
                    id: id.to_vec(),
                    transports: None,
                }],
                user_verification: webauthn_rs_proto::UserVerificationPolicy::Required,
                hints: None,
                extensions: None,
            },
            mediation: None,
        }
    }

    /// Step-up: the calling session proves the password again (and a factor of its own,
    /// if the user has enrolled one), so that sensitive operations are allowed for
    /// `mfa.step_up_secs`. Codes sent by email or SMS do not step up.
    pub async fn step_up(
        self,
        by: &Principal,
        password: &str,
        answer: Option<FactorAnswer>,
    ) -> Result<StepUpOutcome, EngineError> {
        let me = by.session()?;
        let factor = match answer {
            Some(a) if matches!(a.method, SecondFactor::Email | SecondFactor::Sms) => {
                return Err(ValidationError::new(
                    "method",
                    "step-up accepts authenticator, webauthn or recovery_code",
                )
                .into());
            }
            Some(a) => Some((a.method, self.proof(a)?)),
            None => None,
        };
        let e = &self.m.engine;
        let ticket = e.call(me.user, BeginLogin).await?;
        let ok = e
            .hasher
            .verify(password.to_owned(), Some(ticket.password_hash))
            .await?;
        let msg = StepUp {
            session: me.session,
            password_ok: ok,
            credential_version: ticket.credential_version,
            factor,
        };
        let out = e.call_durable(me.user, msg).await?;
        Ok(out)
    }

    /// WebAuthn options for a step-up of the calling session with a passkey.
    pub async fn step_up_assertion_options(
        self,
        by: &Principal,
    ) -> Result<RequestChallengeResponse, EngineError> {
        let me = by.session()?;
        let msg = StartStepUpAssertion {
            session: me.session,
        };
        self.m.engine.call(me.user, msg).await
    }

    /// Ends the calling session; durable when it returns.
    pub async fn logout(self, by: &Principal) -> Result<(), EngineError> {
        let me = by.session()?;
        self.m.user(me.user).revoke_session(me.session).await?;
        Ok(())
    }

    /// Who a bearer token belongs to, if it is a live session. Malformed tokens and
    /// unknown users are simply not valid.
    pub async fn validate(self, token: &str) -> Result<Option<SessionInfo>, EngineError> {
        self.call_for_token(token, ValidateSession).await
    }

    /// Checks a bearer token from `origin` and counts the request against the user's
    /// hourly rate (a zero-trust session must come from its device and network).
    /// `None` for anything that is not a live session.
    pub async fn authorize(
        self,
        token: &str,
        origin: RequestOrigin,
    ) -> Result<Option<AuthorizedRequest>, EngineError> {
        self.call_for_token(token, |t| AuthorizeRequest(t, origin))
            .await
    }

    /// Sends the message `make` builds from a parsed token to the token's user. A token
    /// that does not parse, or names no user, is simply not valid: `Ok(None)`.
    async fn call_for_token<M, R>(
        self,
        token: &str,
        make: impl FnOnce(SessionToken) -> M,
    ) -> Result<Option<R>, EngineError>
    where
        M: actix::Message<Result = Result<Option<R>, EngineError>> + Clone + Send + 'static,
        R: Send + 'static,
        UserActor: actix::Handler<M>,
        <UserActor as actix::Actor>::Context: actix::dev::ToEnvelope<UserActor, M>,
    {
        let Ok(token) = SessionToken::parse(token) else {
            return Ok(None);
        };
        match self.m.engine.call(token.user_id(), make(token)).await {
            Err(EngineError::NotFound) => Ok(None),
            other => other,
        }
    }
}
