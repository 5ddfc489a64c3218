//! The user actor: one per live user, the only place that user's state changes.
//!
//! Its mailbox serialises every request for the user, so the state needs no locks.
//! Changes a client is promised (profile, tier, sessions, deletion) are written to the
//! store inside the handler, before the reply; the caller then awaits the group commit
//! before acknowledging, so the actor never waits on disk. Soft state (last-seen times,
//! failure counters) is written on the shard's sweep, on passivation and at shutdown.

use std::sync::Arc;

use actix::prelude::*;

use super::shard::{Shard, Stopped};
use super::state::UserState;
use super::{Engine, EngineError};
use crate::domain::ids::{SessionId, UserId};
use crate::domain::profile::{
    ProfilePatch, QuotaDecision, QuotaKind, UserProfile, check_tier_features,
};
use crate::domain::rate::RateDecision;
use crate::domain::session::{LoginContext, SessionView};
use crate::domain::tier::{TierPolicy, UserTier};
use crate::domain::time::Timestamp;
use crate::security::token::SessionToken;
use crate::store::codec;

/// Counts quota usage against the tier's limit (durable when accepted).
#[derive(Message, Clone)]
#[rtype(result = "Result<QuotaDecision, EngineError>")]
pub(crate) struct RecordUsage {
    pub kind: QuotaKind,
    pub delta: i64,
}

/// Returns the profile.
#[derive(Message, Clone)]
#[rtype(result = "Result<Arc<UserProfile>, EngineError>")]
pub(crate) struct GetProfile;

/// Applies a validated partial update (durable).
#[derive(Message, Clone)]
#[rtype(result = "Result<Arc<UserProfile>, EngineError>")]
pub(crate) struct UpdateProfile(pub ProfilePatch);

/// Moves the user to another tier (durable); the actor then stops so that the new tier's
/// registry activates it.
#[derive(Message, Clone)]
#[rtype(result = "Result<Arc<UserProfile>, EngineError>")]
pub(crate) struct ChangeTier(pub UserTier);

/// First half of a login: what the password must be checked against.
#[derive(Message, Clone)]
#[rtype(result = "Result<LoginTicket, EngineError>")]
pub(crate) struct BeginLogin;

/// The stored credential handed out for verification off the actor thread.
pub(crate) struct LoginTicket {
    pub password_hash: String,
    pub credential_version: u64,
    pub locked: bool,
}

/// Second half of a login, once the password was checked on the worker pool.
#[derive(Message, Clone)]
#[rtype(result = "Result<LoginDecision, EngineError>")]
pub(crate) struct FinishLogin {
    pub password_ok: bool,
    pub credential_version: u64,
    pub context: LoginContext,
}

/// What the actor decided about a login.
pub(crate) enum LoginDecision {
    /// A session was created and written (the caller must commit).
    Granted {
        token: SessionToken,
        expires_at: Timestamp,
        profile: Arc<UserProfile>,
    },
    /// Wrong password, or a stale credential version.
    Rejected,
    /// Locked by too many failures, whatever the password.
    Locked { until: Timestamp },
}

/// Checks a session token; marks the session used.
#[derive(Message, Clone)]
#[rtype(result = "Result<Option<SessionInfo>, EngineError>")]
pub(crate) struct ValidateSession(pub SessionToken);

/// Who a valid session belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session's user.
    pub user_id: UserId,
    /// The session.
    pub session_id: SessionId,
    /// The user's tier now.
    pub tier: UserTier,
    /// When the session ends unless used again.
    pub expires_at: Timestamp,
}

/// Checks a session token and counts one API request against the tier's hourly rate.
#[derive(Message, Clone)]
#[rtype(result = "Result<Option<AuthorizedRequest>, EngineError>")]
pub(crate) struct AuthorizeRequest(pub SessionToken);

/// A request made with a valid session, and what the rate limiter decided about it.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthorizedRequest {
    /// The session.
    pub session: SessionInfo,
    /// Allowed (with the figures for `RateLimit-*` headers) or limited.
    pub rate: RateDecision,
    /// The user's profile as of this check: a shared snapshot, so that a request about
    /// the caller's own profile needs no second message to the actor.
    pub profile: Arc<UserProfile>,
}

/// Replaces the password if the credential is still the one verified; ends every other
/// session (durable). Replies how many sessions ended, or `None` if the credential had
/// changed meanwhile and nothing was done.
#[derive(Message, Clone)]
#[rtype(result = "Result<Option<usize>, EngineError>")]
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
#[rtype(result = "Result<bool, EngineError>")]
pub(crate) struct RevokeSession(pub SessionId);

/// Revokes every session but one (durable); replies how many went.
#[derive(Message, Clone)]
#[rtype(result = "Result<usize, EngineError>")]
pub(crate) struct RevokeOtherSessions(pub Option<SessionId>);

/// Deletes the user (durable); the actor stops.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), EngineError>")]
pub(crate) struct DeleteUser;

/// The shard's periodic check: passivate when idle, snapshot soft state when due.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub(crate) struct Tick;

/// Writes the snapshot and stops (shutdown, operator request).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub(crate) struct Passivate;

/// Panics inside the handler: the restart-from-snapshot path in tests.
#[cfg(test)]
#[derive(Message, Clone)]
#[rtype(result = "Result<(), EngineError>")]
pub(crate) struct Crash;

/// The actor.
pub(crate) struct UserActor {
    state: UserState,
    engine: Arc<Engine>,
    shard: Addr<Shard>,
    last_active: Timestamp,
    last_snapshot: Timestamp,
    soft_dirty: bool,
}

impl Actor for UserActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.engine.config.engine.mailbox_capacity);
    }
}

impl UserActor {
    pub(crate) fn new(state: UserState, engine: Arc<Engine>, shard: Addr<Shard>) -> Self {
        let now = engine.clock.now();
        Self {
            state,
            engine,
            shard,
            last_active: now,
            last_snapshot: now,
            soft_dirty: false,
        }
    }

    fn id(&self) -> UserId {
        self.state.profile.id
    }

    fn policy(&self) -> &TierPolicy {
        &self.engine.config.tier(self.state.profile.tier).policy
    }

    fn touch(&mut self) -> Timestamp {
        let now = self.engine.clock.now();
        self.last_active = now;
        now
    }

    /// Writes `next` to the store and only then adopts it, so a failed write leaves the
    /// live state equal to the stored one.
    fn persist(&mut self, next: UserState, now: Timestamp) -> Result<(), EngineError> {
        let record = codec::encode(&next).map_err(|e| EngineError::Internal(e.to_string()))?;
        self.engine
            .metrics
            .snapshot_bytes
            .inc_by(record.len() as u64);
        if next.profile.tier != self.state.profile.tier {
            self.engine
                .store
                .save_user_with_tier(self.id(), next.profile.tier, &record)?;
        } else {
            self.engine.store.save_user(self.id(), &record)?;
        }
        self.state = next;
        self.last_snapshot = now;
        self.soft_dirty = false;
        Ok(())
    }

    /// Writes the current state (soft-state snapshot); failures are logged, not fatal.
    fn snapshot(&mut self, now: Timestamp) {
        let next = self.state.clone();
        if let Err(e) = self.persist(next, now) {
            tracing::error!(user = %self.id(), error = %e, "snapshot failed");
        }
    }

    /// Leaves the shard: tells it first (so a new activation queues behind this notice),
    /// then stops.
    fn leave(&mut self, ctx: &mut Context<Self>) {
        self.shard.do_send(Stopped {
            id: self.id(),
            addr: ctx.address(),
        });
        ctx.stop();
    }
}

impl Handler<GetProfile> for UserActor {
    type Result = Result<Arc<UserProfile>, EngineError>;
    fn handle(&mut self, _: GetProfile, _: &mut Context<Self>) -> Self::Result {
        self.touch();
        Ok(Arc::clone(&self.state.profile))
    }
}

impl Handler<UpdateProfile> for UserActor {
    type Result = Result<Arc<UserProfile>, EngineError>;
    fn handle(
        &mut self,
        UpdateProfile(patch): UpdateProfile,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let now = self.touch();
        let mut next = self.state.clone();
        next.profile = Arc::new(patch.apply(&self.state.profile, self.policy(), now)?);
        self.persist(next, now)?;
        Ok(Arc::clone(&self.state.profile))
    }
}

impl Handler<RecordUsage> for UserActor {
    type Result = Result<QuotaDecision, EngineError>;
    fn handle(&mut self, msg: RecordUsage, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let mut next = self.state.clone();
        let policy = &self.engine.config.tier(next.profile.tier).policy;
        let decision = Arc::make_mut(&mut next.profile)
            .usage
            .apply(msg.kind, msg.delta, policy);
        if let QuotaDecision::Accepted { .. } = decision {
            self.persist(next, now)?;
        }
        Ok(decision)
    }
}

impl Handler<ChangeTier> for UserActor {
    type Result = Result<Arc<UserProfile>, EngineError>;
    fn handle(&mut self, ChangeTier(tier): ChangeTier, ctx: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        if tier == self.state.profile.tier {
            return Ok(Arc::clone(&self.state.profile));
        }
        let mut next = self.state.clone();
        let profile = Arc::make_mut(&mut next.profile);
        profile.tier = tier;
        profile.updated_at = now;
        // A downgrade turns off what the new tier does not include.
        let policy = &self.engine.config.tier(tier).policy;
        if check_tier_features(profile, policy).is_err() {
            profile.ai_preferences.custom_model_training = false;
        }
        let from = self.state.profile.tier;
        self.persist(next, now)?;
        let change = crate::metrics::TierChangeLabels {
            from: from.into(),
            to: tier.into(),
        };
        self.engine
            .metrics
            .tier_changes
            .get_or_create(&change)
            .inc();
        self.leave(ctx);
        Ok(Arc::clone(&self.state.profile))
    }
}

impl Handler<BeginLogin> for UserActor {
    type Result = Result<LoginTicket, EngineError>;
    fn handle(&mut self, _: BeginLogin, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        Ok(LoginTicket {
            password_hash: self.state.password_hash.clone(),
            credential_version: self.state.credential_version,
            locked: self.state.failures.is_locked(now),
        })
    }
}

impl Handler<FinishLogin> for UserActor {
    type Result = Result<LoginDecision, EngineError>;
    fn handle(&mut self, msg: FinishLogin, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let lockout = self.engine.config.lockout;
        // A lock stops guessing, but must not let an attacker keep the real user out:
        // the right password from a device this account has logged in from before
        // still gets in.
        let known_device = msg
            .context
            .device_id
            .as_ref()
            .is_some_and(|d| self.state.known_devices.contains(d));
        if self.state.failures.is_locked(now) && !(msg.password_ok && known_device) {
            if !msg.password_ok {
                self.state.failures.record_failure(&lockout, now);
                self.soft_dirty = true;
            }
            return Ok(LoginDecision::Locked {
                until: self.state.failures.locked_until,
            });
        }
        if !msg.password_ok || msg.credential_version != self.state.credential_version {
            self.state.failures.record_failure(&lockout, now);
            self.soft_dirty = true;
            return Ok(LoginDecision::Rejected);
        }
        let token = SessionToken::issue(self.id());
        let mut next = self.state.clone();
        let policy = self.policy().clone();
        let max = self.engine.config.engine.max_sessions_per_user;
        let session = next.start_session(&token, msg.context, &policy, max, now);
        self.persist(next, now)?;
        Ok(LoginDecision::Granted {
            token,
            expires_at: session.ends_at(),
            profile: Arc::clone(&self.state.profile),
        })
    }
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
        let info = self.state.check_session(&token, now).map(|s| SessionInfo {
            user_id,
            session_id: s.id,
            tier,
            expires_at: s.ends_at(),
        });
        self.soft_dirty |= info.is_some();
        Ok(info)
    }
}

/// The period of the per-tier request allowance.
const RATE_PERIOD: std::time::Duration = std::time::Duration::from_secs(3600);

impl Handler<AuthorizeRequest> for UserActor {
    type Result = Result<Option<AuthorizedRequest>, EngineError>;
    fn handle(
        &mut self,
        AuthorizeRequest(token): AuthorizeRequest,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let now = self.touch();
        let user_id = self.id();
        let tier = self.state.profile.tier;
        let limit = self.policy().requests_per_hour;
        let Some(session) = self.state.check_session(&token, now).map(|s| SessionInfo {
            user_id,
            session_id: s.id,
            tier,
            expires_at: s.ends_at(),
        }) else {
            return Ok(None);
        };
        let rate = self.state.rate.take(limit, RATE_PERIOD, now);
        self.soft_dirty = true;
        Ok(Some(AuthorizedRequest {
            session,
            rate,
            profile: Arc::clone(&self.state.profile),
        }))
    }
}

impl Handler<SetPassword> for UserActor {
    type Result = Result<Option<usize>, EngineError>;
    fn handle(&mut self, msg: SetPassword, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        if msg.expected_version != self.state.credential_version {
            return Ok(None);
        }
        let mut next = self.state.clone();
        let ended = next.set_password(msg.password_hash, msg.keep, now);
        self.persist(next, now)?;
        Ok(Some(ended))
    }
}

impl Handler<RecordFailure> for UserActor {
    type Result = Result<(), EngineError>;
    fn handle(&mut self, _: RecordFailure, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let lockout = self.engine.config.lockout;
        self.state.failures.record_failure(&lockout, now);
        self.soft_dirty = true;
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
    type Result = Result<bool, EngineError>;
    fn handle(&mut self, RevokeSession(id): RevokeSession, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let mut next = self.state.clone();
        if !next.revoke(id) {
            return Ok(false);
        }
        self.persist(next, now)?;
        Ok(true)
    }
}

impl Handler<RevokeOtherSessions> for UserActor {
    type Result = Result<usize, EngineError>;
    fn handle(
        &mut self,
        RevokeOtherSessions(keep): RevokeOtherSessions,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let now = self.touch();
        let mut next = self.state.clone();
        let n = next.revoke_all_except(keep);
        if n > 0 {
            self.persist(next, now)?;
        }
        Ok(n)
    }
}

impl Handler<DeleteUser> for UserActor {
    type Result = Result<(), EngineError>;
    fn handle(&mut self, _: DeleteUser, ctx: &mut Context<Self>) -> Self::Result {
        self.touch();
        let email_key = self.state.profile.email.normalized();
        self.engine.store.delete_user(self.id(), &email_key)?;
        self.state.sessions.clear();
        self.leave(ctx);
        Ok(())
    }
}

impl Handler<Tick> for UserActor {
    type Result = ();
    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        let now = self.engine.clock.now();
        let cfg = &self.engine.config.engine;
        if now.since(self.last_active) >= cfg.passivate_after {
            self.state.prune_sessions(now);
            self.snapshot(now);
            self.leave(ctx);
        } else if self.soft_dirty && now.since(self.last_snapshot) >= cfg.snapshot_interval {
            self.snapshot(now);
        }
    }
}

impl Handler<Passivate> for UserActor {
    type Result = ();
    fn handle(&mut self, _: Passivate, ctx: &mut Context<Self>) {
        let now = self.engine.clock.now();
        self.snapshot(now);
        self.leave(ctx);
    }
}

#[cfg(test)]
impl Handler<Crash> for UserActor {
    type Result = Result<(), EngineError>;
    #[allow(clippy::panic)]
    fn handle(&mut self, _: Crash, _: &mut Context<Self>) -> Self::Result {
        // Unsaved soft state is lost with the actor; the restart reads the last snapshot.
        Arc::make_mut(&mut self.state.profile).display_name = "never persisted".into();
        panic!("test-induced panic in user actor {}", self.id());
    }
}
