//! A password login in the user's actor: the ticket the password is checked against
//! off the actor thread, then the decision ([`crate::domain::login`]) and, when every
//! factor passed, the session (`grant`), with what the login taught the risk engine.

use std::sync::Arc;

use actix::prelude::*;

use super::*;
use crate::domain::login;

/// First half of a login: what the password must be checked against.
#[derive(Message, Clone)]
#[rtype(result = "Result<LoginTicket, EngineError>")]
pub(crate) struct BeginLogin;

/// First half of a password change by the user in `session`: the ticket, once the
/// session has stepped up recently if the user has an authenticator (with one, the
/// password alone no longer proves the user).
#[derive(Message, Clone)]
#[rtype(result = "Result<LoginTicket, EngineError>")]
pub(crate) struct PasswordTicket {
    pub session: SessionId,
}

/// The stored credential handed out for verification off the actor thread.
pub(crate) struct LoginTicket {
    pub password_hash: String,
    pub credential_version: u64,
    pub locked: bool,
}

/// Second half of a login, once the password was checked on the worker pool.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<LoginDecision>, EngineError>")]
pub(crate) struct FinishLogin {
    pub password_ok: bool,
    pub credential_version: u64,
    pub context: LoginContext,
    /// Where the client is, if a trusted proxy said so.
    pub location: Option<Location>,
}

/// A login proved the password against `old` (bcrypt, or argon2 at another cost) and
/// the account let it through: `hash`, the same password at the configured cost,
/// replaces it — unless the credential changed meanwhile. The new hash changes no
/// session and no credential version.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<()>, EngineError>")]
pub(crate) struct Rehash {
    pub old: String,
    pub hash: String,
    pub credential_version: u64,
}

/// What the actor decided about a login.
pub(crate) enum LoginDecision {
    /// A session was created and written (the caller must commit).
    Granted {
        token: SessionToken,
        expires_at: Timestamp,
        profile: SharedProfile,
    },
    /// The password was right; a second factor must follow.
    Challenge(Box<ChallengeIssued>),
    /// Wrong password, or a stale credential version.
    Rejected,
    /// Locked by too many failures, whatever the password.
    Locked { until: Timestamp },
    /// The risk engine refused the login.
    RiskDenied,
    /// A wrong second factor; the challenge takes `attempts_left` more.
    FactorRejected { attempts_left: u32 },
    /// The challenge does not exist (never did, expired, used, or worn out).
    ChallengeGone,
}

impl Handler<BeginLogin> for UserActor {
    type Result = Result<LoginTicket, EngineError>;
    fn handle(&mut self, _: BeginLogin, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        Ok(LoginTicket {
            password_hash: self.state.password_hash.to_string(),
            credential_version: self.state.credential_version,
            locked: self.state.failures.is_locked(now),
        })
    }
}

impl Handler<PasswordTicket> for UserActor {
    type Result = Result<LoginTicket, EngineError>;
    fn handle(&mut self, msg: PasswordTicket, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        if self.state.mfa.totp.is_some() {
            self.require_recent(Some(msg.session), now)?;
        }
        Ok(LoginTicket {
            password_hash: self.state.password_hash.to_string(),
            credential_version: self.state.credential_version,
            locked: self.state.failures.is_locked(now),
        })
    }
}

impl Handler<FinishLogin> for UserActor {
    type Result = Result<Durable<LoginDecision>, EngineError>;
    fn handle(&mut self, msg: FinishLogin, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_finish_login(msg, ctx))
    }
}

impl Handler<Rehash> for UserActor {
    type Result = Result<Durable<()>, EngineError>;
    fn handle(&mut self, msg: Rehash, _: &mut Context<Self>) -> Self::Result {
        self.durably(|a| {
            let now = a.touch();
            if a.state.credential_version == msg.credential_version
                && *a.state.password_hash == *msg.old
            {
                let mut next = a.state.clone();
                next.password_hash = msg.hash.into();
                a.persist(next, now)?;
            }
            Ok(())
        })
    }
}

/// The refusal of a login, or of a session's use, from a network operators denied.
pub(crate) const DENIED_NETWORK: &str = "requests from this network are refused";

impl UserActor {
    /// Scores a login from `context` against what this user's logins taught.
    pub(super) fn assess(
        &self,
        context: &LoginContext,
        location: Option<&Location>,
        now: Timestamp,
    ) -> RiskAssessment {
        let cfg = &self.engine.config;
        let f = &self.state.failures;
        let recent_failures = if now.since(f.window_start) < cfg.lockout.window {
            f.failures
        } else {
            0
        };
        let deny = self.engine.deny.current();
        let attempt = Attempt {
            device_id: context.device_id.as_deref(),
            ip: context.ip_address,
            location,
            recent_failures,
            denied: context.ip_address.and_then(|ip| deny.find(ip, now)),
        };
        risk::assess(
            &self.state.risk,
            &self.state.known_devices,
            &attempt,
            &self.state.profile.security_settings,
            &cfg.risk,
            now,
        )
    }

    /// Opens a session for a login whose every factor passed: hands it to the writer (the
    /// reply is durable once its ticket is), learns the login's device, network, place and hour, records the event
    /// and tells the user's sockets.
    pub(super) fn grant(
        &mut self,
        context: LoginContext,
        location: Option<Location>,
        assessment: Option<RiskAssessment>,
        factor: Option<crate::domain::mfa::SecondFactor>,
        now: Timestamp,
    ) -> Result<LoginDecision, EngineError> {
        self.grant_with(context, location, assessment, factor, now, |_| {})
    }

    /// [`Self::grant`], with a change of its own (`also`) written in the same record.
    pub(super) fn grant_with(
        &mut self,
        context: LoginContext,
        location: Option<Location>,
        assessment: Option<RiskAssessment>,
        factor: Option<crate::domain::mfa::SecondFactor>,
        now: Timestamp,
        also: impl FnOnce(&mut UserState),
    ) -> Result<LoginDecision, EngineError> {
        self.refuse_if_held()?;
        // A network denied after the login began (a challenge answered since).
        if context
            .ip_address
            .is_some_and(|ip| self.engine.deny.current().find(ip, now).is_some())
        {
            return Err(EngineError::Forbidden(DENIED_NETWORK));
        }
        let token = SessionToken::issue(self.id());
        let mut next = self.state.clone();
        also(&mut next);
        let policy = self.policy().clone();
        let cfg = Arc::clone(&self.engine.config);
        let max = cfg.engine.max_sessions_per_user;
        let known_device = self.knows_device(&context);
        let had_devices = !self.state.known_devices.is_empty();
        let before = self.state.session_ids_except(None);
        let attempt = Attempt {
            device_id: context.device_id.as_deref(),
            ip: context.ip_address,
            location: location.as_ref(),
            recent_failures: 0,
            denied: None,
        };
        next.risk.learn(&attempt, &cfg.risk, now);
        let origin = SessionOrigin {
            network: context.ip_address.map(|ip| cfg.risk.network_of(ip)),
            location: location.clone(),
            mfa: factor.is_some(),
        };
        let mut event = self.event_from(
            SecurityEventKind::LoginSucceeded,
            &context,
            location.as_ref(),
            now,
        );
        event.factor = factor;
        event.risk = assessment;
        let session = next.start_session(&token, context, origin, &policy, max, now);
        event.session_id = Some(session.id);
        self.record_event(&mut next, event);
        let evicted: Vec<SessionId> = before
            .into_iter()
            .filter(|id| !next.sessions.iter().any(|s| s.id == *id))
            .collect();
        // Sessions that were still live went because of the per-user cap.
        let cut: Vec<SessionId> = self
            .state
            .sessions
            .iter()
            .filter(|s| evicted.contains(&s.id) && s.is_active(now))
            .map(|s| s.id)
            .collect();
        for id in cut {
            let mut e = SecurityEvent::new(SecurityEventKind::SessionRevoked, now);
            e.session_id = Some(id);
            e.detail = Some(format!("evicted: over {max} sessions"));
            self.record_event(&mut next, e);
        }
        self.persist(next, now)?;
        let ctx = &session.context;
        self.publish(Event::SessionCreated {
            session_id: session.id,
            device_id: ctx.device_id.clone(),
            user_agent: ctx.user_agent.clone(),
            ip_address: ctx.ip_address,
        });
        if let Some(device) = ctx.device_id.clone()
            && had_devices
            && !known_device
        {
            self.publish(Event::NewDevice {
                session_id: session.id,
                device_id: device.clone(),
                ip_address: ctx.ip_address,
            });
            self.notify_new_device(&device, ctx.ip_address, now);
        }
        self.sessions_ended(&evicted, RevokeReason::Evicted);
        Ok(LoginDecision::Granted {
            token,
            expires_at: session.ends_at(),
            profile: self.state.profile.clone(),
        })
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
}

impl UserActor {
    fn on_finish_login(
        &mut self,
        msg: FinishLogin,
        _: &mut Context<Self>,
    ) -> Result<LoginDecision, EngineError> {
        let now = self.touch();
        let lockout = self.engine.config.lockout;
        let first = login::first_factor(
            &self.state.failures,
            msg.password_ok,
            msg.credential_version == self.state.credential_version,
            self.knows_device(&msg.context),
            now,
        );
        match first {
            login::FirstFactor::Locked => {
                if !msg.password_ok {
                    self.state.failures.record_failure(&lockout, now);
                }
                let kind = SecurityEventKind::LoginLocked;
                let e = self.event_from(kind, &msg.context, msg.location.as_ref(), now);
                self.record_soft(e);
                return Ok(LoginDecision::Locked {
                    until: self.state.failures.locked_until,
                });
            }
            login::FirstFactor::Rejected => {
                let was_locked = self.state.failures.is_locked(now);
                self.state.failures.record_failure(&lockout, now);
                let kind = SecurityEventKind::LoginFailed;
                let e = self.event_from(kind, &msg.context, msg.location.as_ref(), now);
                self.record_soft(e);
                self.lockout_alert(was_locked, now);
                return Ok(LoginDecision::Rejected);
            }
            login::FirstFactor::Passed => {}
        }
        self.refuse_if_held()?;
        let assessment = self.assess(&msg.context, msg.location.as_ref(), now);
        let require_mfa = self.state.profile.security_settings.require_mfa;
        match login::after_password(self.policy().zero_trust, require_mfa, assessment.decision) {
            login::AfterPassword::RiskDenied => {
                self.risk_denied(&msg.context, msg.location.as_ref(), assessment, None, now);
                Ok(LoginDecision::RiskDenied)
            }
            login::AfterPassword::Challenge(reason) => {
                if assessment.decision == RiskDecision::RequireMfa {
                    // The password was right but the login looks unusual: the user hears
                    // of it whether or not the second factor follows.
                    self.notify_unusual(&msg.context, &assessment, now);
                }
                Ok(self.challenge(msg.context, msg.location, assessment, reason, now))
            }
            login::AfterPassword::Grant => {
                self.grant(msg.context, msg.location, Some(assessment), None, now)
            }
        }
    }
}
