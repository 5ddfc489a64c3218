//! The user actor: one per live user, the only place that user's state changes.
//!
//! Its mailbox serialises every request for the user, so the state needs no locks.
//! Changes a client is promised (profile, tier, sessions, deletion) are written to the
//! store inside the handler, before the reply; the caller then awaits the group commit
//! before acknowledging, so the actor never waits on disk. Soft state (last-seen times,
//! failure counters) is written on the shard's sweep, on passivation and at shutdown.

use std::sync::Arc;

use actix::WeakAddr;
use actix::prelude::*;

use super::events::{
    CloseCode, Event, Resume, RevokeReason, SubscribeError, Subscription, UserStream,
};
use super::shard::{Shard, Stopped};
use super::shared_profile::SharedProfile;
use super::state::{SessionOrigin, UserState};
use super::{Engine, EngineError};
use crate::domain::activity::{ActivityCounters, ActivityEvent, check_batch};
use crate::domain::ids::{SessionId, UserId};
use crate::domain::profile::{ProfilePatch, QuotaDecision, QuotaKind, check_tier_features};
use crate::domain::rate::RateDecision;
use crate::domain::risk::{self, Attempt, Location, RiskAssessment, RiskDecision};
use crate::domain::security_log::{SecurityEvent, SecurityEventKind};
use crate::domain::session::{LoginContext, SessionView};
use crate::domain::tier::{TierPolicy, UserTier};
use crate::domain::time::Timestamp;
use crate::security::keys::DataKey;
use crate::security::token::SessionToken;
use crate::store::{Applied, Batch, Op, Revision, codec};

mod auth;
mod privacy;
pub use auth::*;
pub use privacy::*;

/// Counts quota usage against the tier's limit (durable when accepted).
#[derive(Message, Clone)]
#[rtype(result = "Result<QuotaDecision, EngineError>")]
pub(crate) struct RecordUsage {
    pub kind: QuotaKind,
    pub delta: i64,
}

/// Returns the profile.
#[derive(Message, Clone)]
#[rtype(result = "Result<SharedProfile, EngineError>")]
pub(crate) struct GetProfile;

/// Applies a validated partial update (durable).
#[derive(Message, Clone)]
#[rtype(result = "Result<SharedProfile, EngineError>")]
pub(crate) struct UpdateProfile(pub ProfilePatch);

/// Moves the user to another tier (durable, with its audit record); the actor then stops
/// so that the new tier's registry activates it.
#[derive(Message, Clone)]
#[rtype(result = "Result<SharedProfile, EngineError>")]
pub(crate) struct ChangeTier {
    pub tier: UserTier,
    pub audit: Option<Audited>,
}

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
#[rtype(result = "Result<LoginDecision, EngineError>")]
pub(crate) struct FinishLogin {
    pub password_ok: bool,
    pub credential_version: u64,
    pub context: LoginContext,
    /// Where the client is, if a trusted proxy said so.
    pub location: Option<Location>,
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

impl SessionInfo {
    fn of(user_id: UserId, tier: UserTier, s: &crate::domain::session::Session) -> Self {
        Self {
            user_id,
            session_id: s.id,
            tier,
            expires_at: s.ends_at(),
        }
    }
}

/// Checks a session token and counts one API request against the tier's hourly rate.
/// A zero-trust session must come from its device and network; another session used
/// from a new network is judged by the risk engine.
#[derive(Message, Clone)]
#[rtype(result = "Result<Option<AuthorizedRequest>, EngineError>")]
pub(crate) struct AuthorizeRequest(pub SessionToken, pub RequestOrigin);

/// Where a request comes from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestOrigin {
    /// The client's address.
    pub ip: Option<std::net::IpAddr>,
    /// The `X-Device-Id` the client sent.
    pub device_id: Option<String>,
    /// The client's location, if a trusted proxy said so.
    pub location: Option<Location>,
}

/// A request made with a valid session, and what the rate limiter decided about it.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthorizedRequest {
    /// The session.
    pub session: SessionInfo,
    /// Allowed (with the figures for `RateLimit-*` headers) or limited.
    pub rate: RateDecision,
    /// The user's profile as of this check: a shared snapshot, so that a request about
    /// the caller's own profile needs no second message to the actor.
    pub profile: SharedProfile,
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

/// Deletes the user (durable, with its audit record), if `recent` (the acting session;
/// `None` for the operator) authenticated recently; the actor stops.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), EngineError>")]
pub(crate) struct DeleteUser {
    pub recent: Option<SessionId>,
    pub audit: Option<Audited>,
}

/// The shard's periodic check: passivate when idle, snapshot soft state when due.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub(crate) struct Tick;

/// Writes the snapshot and stops (shutdown, operator request).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub(crate) struct Passivate;

/// Subscribes a socket of a live session to the user's events.
#[derive(Message, Clone)]
#[rtype(result = "Result<SubscribeOutcome, EngineError>")]
pub(crate) struct Subscribe {
    pub session: SessionId,
    pub resume: Option<Resume>,
}

/// The answer to [`Subscribe`].
#[derive(Debug)]
pub enum SubscribeOutcome {
    /// Subscribed; the socket reads its events from here.
    Subscribed(Box<Subscription>),
    /// The session is not live.
    SessionInvalid,
    /// The user holds the most sockets allowed.
    TooManySockets,
}

/// Replies with a session if it is live; with `slide`, marks it used (a socket's
/// heartbeat) so that its idle timeout starts again.
#[derive(Message, Clone)]
#[rtype(result = "Result<Option<SessionInfo>, EngineError>")]
pub(crate) struct TouchSession {
    pub session: SessionId,
    pub slide: bool,
}

/// Counts activity events a socket reported, as one request against the tier's rate.
#[derive(Message, Clone)]
#[rtype(result = "Result<ActivityOutcome, EngineError>")]
pub(crate) struct RecordActivity {
    pub session: SessionId,
    pub events: Vec<ActivityEvent>,
}

/// The answer to [`RecordActivity`].
#[derive(Debug, Clone, PartialEq)]
pub enum ActivityOutcome {
    /// Counted.
    Recorded {
        /// Events counted.
        accepted: usize,
    },
    /// The session is not live; nothing counted.
    SessionInvalid,
    /// Over the tier's rate; nothing counted.
    RateLimited {
        /// Seconds until a request is allowed.
        retry_after_secs: u64,
    },
    /// The user has not consented to analytics (or is a minor without a recorded
    /// parental consent); nothing counted.
    ConsentRequired {
        /// Why, for the client.
        reason: &'static str,
    },
}

/// Returns the activity counters.
#[derive(Message, Clone)]
#[rtype(result = "Result<ActivityCounters, EngineError>")]
pub(crate) struct GetActivity;

/// Returns the whole state, for a data export, if `recent` (the acting session; `None`
/// for the operator) authenticated recently.
#[derive(Message, Clone)]
#[rtype(result = "Result<UserState, EngineError>")]
pub(crate) struct GetState {
    pub recent: Option<SessionId>,
}

/// Panics inside the handler: the restart-from-snapshot path in tests.
#[cfg(test)]
#[derive(Message, Clone)]
#[rtype(result = "Result<(), EngineError>")]
pub(crate) struct Crash;

/// Appends a security event to `state`, counts it (and its risk assessment), and hands
/// an event that no longer fits in the state to the store.
fn record_into(
    engine: &Engine,
    key: &DataKey,
    user: UserId,
    state: &mut UserState,
    event: SecurityEvent,
) {
    let m = &engine.metrics;
    m.security_events
        .get_or_create(&crate::metrics::SecurityLabels {
            kind: event.kind.as_str(),
        })
        .inc();
    if let Some(risk) = &event.risk {
        m.risk_decisions
            .get_or_create(&crate::metrics::RiskLabels {
                decision: risk.decision.as_str(),
            })
            .inc();
        for s in &risk.signals {
            m.risk_signals
                .get_or_create(&crate::metrics::SignalLabels {
                    signal: s.kind.as_str(),
                })
                .inc();
        }
    }
    if let Some(old) = state.record(event) {
        let stored = serde_json::to_vec(&old)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                let aad = super::state::event_aad(user, old.seq);
                let op = Op::ArchiveEvent {
                    user,
                    seq: old.seq,
                    blob: codec::seal_blob(key, &aad, &b),
                };
                engine
                    .store
                    .apply(&Batch::of(op))
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = stored {
            tracing::error!(%user, error = %e, "security event not archived");
        }
    }
}

/// Stops the actor without writing: its state turned out older than the store's (a write
/// was refused as stale), so the next message activates the user afresh from the store.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub(crate) struct Poisoned;

/// An audit record to write with a change, in the same atomic batch.
pub(crate) type Audited = (super::audit::AuditActor, super::audit::AuditAction);

/// The actor.
pub(crate) struct UserActor {
    state: UserState,
    /// The revision of the stored record `state` was last written as (or loaded from).
    revision: Revision,
    /// This actor, to poison itself from a refused write.
    me: Option<WeakAddr<UserActor>>,
    /// The user's data key: seals its snapshots and archived events.
    key: DataKey,
    engine: Arc<Engine>,
    shard: Addr<Shard>,
    last_active: Timestamp,
    last_snapshot: Timestamp,
    soft_dirty: bool,
    /// The user's event stream, once there is one (a socket subscribed, now or before
    /// this actor started).
    stream: Option<Arc<UserStream>>,
    /// Logins waiting for their second factor (memory only: a restart voids them and
    /// the user logs in again).
    challenges: Vec<PendingLogin>,
    /// A passkey registration waiting for the authenticator's answer.
    pending_registration: Option<(crate::security::passkey::PasskeyRegistration, Timestamp)>,
    /// A phone number waiting for its texted code.
    pending_phone: Option<PendingPhone>,
    /// WebAuthn options handed out for a step-up, per session.
    step_up_auth: Option<(
        SessionId,
        crate::security::passkey::PasskeyAuthentication,
        Timestamp,
    )>,
}

impl Drop for UserActor {
    fn drop(&mut self) {
        if let Some(s) = self.stream.take() {
            self.engine.realtime.release(s);
        }
    }
}

impl Actor for UserActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.engine.config.engine.mailbox_capacity);
        self.me = Some(ctx.address().downgrade());
    }
}

impl UserActor {
    pub(crate) fn new(
        (state, revision): (UserState, Revision),
        key: DataKey,
        engine: Arc<Engine>,
        shard: Addr<Shard>,
    ) -> Self {
        let now = engine.clock.now();
        let stream = engine.realtime.existing(state.profile.id);
        Self {
            state,
            revision,
            me: None,
            key,
            engine,
            shard,
            last_active: now,
            last_snapshot: now,
            soft_dirty: false,
            stream,
            challenges: Vec::new(),
            pending_registration: None,
            pending_phone: None,
            step_up_auth: None,
        }
    }

    /// Appends a security event to `state` (the next state, for events written with a
    /// change); see [`record_into`].
    fn record_event(&self, state: &mut UserState, event: SecurityEvent) {
        record_into(&self.engine, &self.key, self.id(), state, event);
    }

    /// A security event about the client of `context`.
    fn event_from(
        &self,
        kind: SecurityEventKind,
        context: &LoginContext,
        location: Option<&Location>,
        now: Timestamp,
    ) -> SecurityEvent {
        let mut e = SecurityEvent::new(kind, now);
        e.ip_address = context.ip_address;
        e.device_id = context.device_id.clone();
        e.location = location.cloned();
        e
    }

    /// Records a soft security event (written with the next snapshot).
    fn record_soft(&mut self, event: SecurityEvent) {
        let id = self.id();
        record_into(&self.engine, &self.key, id, &mut self.state, event);
        self.soft_dirty = true;
    }

    /// Publishes an event to the user's sockets (and security events to operators) once
    /// every store write made so far is durable: a client never hears of a change that
    /// a crash could still undo. The group committer runs the publications in the order
    /// this actor asked for them, so the stream's order is the order of the changes.
    fn publish(&mut self, event: Event) {
        let at = self.engine.clock.now();
        let user = self.state.profile.id;
        if event.is_security() {
            let kind = crate::metrics::SecurityLabels { kind: event.kind() };
            self.engine
                .metrics
                .security_events
                .get_or_create(&kind)
                .inc();
        }
        if self.stream.is_none() {
            self.stream = self.engine.realtime.existing(user);
        }
        let stream = self.stream.clone();
        let rt = Arc::clone(&self.engine.realtime);
        self.engine.commit.then(move |durable| {
            if let Err(e) = durable {
                tracing::warn!(%user, error = %e, "event dropped: its change is not durable");
            } else {
                if event.is_security() {
                    rt.publish_security(user, at, &event);
                }
                if let Some(s) = &stream {
                    rt.publish(s, at, &event);
                }
            }
            if let Some(s) = stream {
                rt.release(s);
            }
        });
    }

    /// Publishes `session.revoked` for each session and closes their sockets.
    fn sessions_ended(&mut self, ids: &[SessionId], reason: RevokeReason) {
        for &session_id in ids {
            self.publish(Event::SessionRevoked { session_id, reason });
            if let Some(s) = &self.stream {
                self.engine
                    .realtime
                    .close_session(s, session_id, CloseCode::SessionEnded);
            }
        }
    }

    /// Publishes a lockout alert if `was_locked` is false and the account is locked now.
    fn lockout_alert(&mut self, was_locked: bool, now: Timestamp) {
        if !was_locked && self.state.failures.is_locked(now) {
            let until = self.state.failures.locked_until;
            self.publish(Event::Lockout { until });
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
        self.write(next, now, Vec::new())
    }

    /// [`Self::persist`], with audit records in the same atomic batch: the change and its
    /// records are stored together or not at all.
    fn write(
        &mut self,
        next: UserState,
        now: Timestamp,
        audit: Vec<Audited>,
    ) -> Result<(), EngineError> {
        let id = self.id();
        let record = super::state::encode(&next, &self.key, id)?;
        self.engine
            .metrics
            .snapshot_bytes
            .inc_by(record.len() as u64);
        let revision = self.revision + 1;
        let tier = (next.profile.tier != self.state.profile.tier).then_some(next.profile.tier);
        let batch = Batch::of(Op::PutUser {
            id,
            record,
            revision,
            tier,
        });
        let (applied, _) = self.engine.audit.apply_with(batch, now, audit)?;
        self.accepted(applied)?;
        self.revision = revision;
        self.state = next;
        self.last_snapshot = now;
        self.soft_dirty = false;
        Ok(())
    }

    /// `Ok` if the store took a write; a stale write poisons the actor (it stops, and the
    /// user is activated afresh from the store).
    fn accepted(&mut self, applied: Applied) -> Result<(), EngineError> {
        match applied {
            Applied::Done => Ok(()),
            Applied::Stale { stored, .. } => {
                tracing::error!(
                    user = %self.id(),
                    live = self.revision,
                    ?stored,
                    "the stored record is newer than this actor's: reloading it"
                );
                if let Some(me) = self.me.as_ref().and_then(WeakAddr::upgrade) {
                    me.do_send(Poisoned);
                }
                Err(EngineError::Conflict(
                    "the account changed meanwhile; retry".into(),
                ))
            }
            Applied::EmailTaken => Err(EngineError::Internal(
                "a user write was refused as a sign-up".into(),
            )),
        }
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
    type Result = Result<SharedProfile, EngineError>;
    fn handle(&mut self, _: GetProfile, _: &mut Context<Self>) -> Self::Result {
        self.touch();
        Ok(self.state.profile.clone())
    }
}

impl Handler<UpdateProfile> for UserActor {
    type Result = Result<SharedProfile, EngineError>;
    fn handle(
        &mut self,
        UpdateProfile(patch): UpdateProfile,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let now = self.touch();
        let mut next = self.state.clone();
        next.profile = SharedProfile::new(patch.apply(&self.state.profile, self.policy(), now)?);
        privacy::check_preferences(
            &self.state.profile.ai_preferences,
            &next.profile.ai_preferences,
            &self.state.consents,
        )?;
        let before = self.state.profile.clone();
        self.persist(next, now)?;
        let after = self.state.profile.clone();
        if (&after.display_name, &after.language, &after.timezone)
            != (&before.display_name, &before.language, &before.timezone)
        {
            self.publish(Event::ProfileUpdated {
                profile: after.clone(),
            });
        }
        if after.ai_preferences != before.ai_preferences {
            self.publish(Event::PreferencesUpdated {
                ai_preferences: after.ai_preferences.clone(),
            });
        }
        if after.security_settings != before.security_settings {
            self.publish(Event::SecuritySettingsUpdated {
                security_settings: after.security_settings.clone(),
            });
        }
        Ok(after)
    }
}

impl Handler<RecordUsage> for UserActor {
    type Result = Result<QuotaDecision, EngineError>;
    fn handle(&mut self, msg: RecordUsage, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let mut next = self.state.clone();
        let policy = &self.engine.config.tier(next.profile.tier).policy;
        let decision = next
            .profile
            .make_mut()
            .usage
            .apply(msg.kind, msg.delta, policy);
        if let QuotaDecision::Accepted { used, limit } = decision {
            let before = match msg.kind {
                QuotaKind::Playlists => self.state.profile.usage.playlists,
                QuotaKind::StorageBytes => self.state.profile.usage.storage_bytes,
            };
            self.persist(next, now)?;
            if let Some(limit) = limit
                && let Some(percent) = crossed_threshold(before, used, limit)
            {
                self.publish(Event::QuotaWarning {
                    quota: msg.kind,
                    used,
                    limit,
                    percent,
                });
            }
        }
        Ok(decision)
    }
}

impl Handler<ChangeTier> for UserActor {
    type Result = Result<SharedProfile, EngineError>;
    fn handle(&mut self, msg: ChangeTier, ctx: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let tier = msg.tier;
        if tier == self.state.profile.tier {
            return Ok(self.state.profile.clone());
        }
        let mut next = self.state.clone();
        let profile = next.profile.make_mut();
        profile.tier = tier;
        profile.updated_at = now;
        // A downgrade turns off what the new tier does not include.
        let policy = &self.engine.config.tier(tier).policy;
        if check_tier_features(profile, policy).is_err() {
            profile.ai_preferences.custom_model_training = false;
        }
        let from = self.state.profile.tier;
        self.write(next, now, msg.audit.into_iter().collect())?;
        let change = crate::metrics::TierChangeLabels {
            from: from.into(),
            to: tier.into(),
        };
        self.engine
            .metrics
            .tier_changes
            .get_or_create(&change)
            .inc();
        self.publish(Event::TierChanged { from, to: tier });
        self.leave(ctx);
        Ok(self.state.profile.clone())
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

impl Handler<PasswordTicket> for UserActor {
    type Result = Result<LoginTicket, EngineError>;
    fn handle(&mut self, msg: PasswordTicket, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        if self.state.mfa.totp.is_some() {
            self.require_recent(Some(msg.session), now)?;
        }
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
        let known_device = self.knows_device(&msg.context);
        if self.state.failures.is_locked(now) && !(msg.password_ok && known_device) {
            if !msg.password_ok {
                self.state.failures.record_failure(&lockout, now);
            }
            let e = self.event_from(
                SecurityEventKind::LoginLocked,
                &msg.context,
                msg.location.as_ref(),
                now,
            );
            self.record_soft(e);
            return Ok(LoginDecision::Locked {
                until: self.state.failures.locked_until,
            });
        }
        if !msg.password_ok || msg.credential_version != self.state.credential_version {
            let was_locked = self.state.failures.is_locked(now);
            self.state.failures.record_failure(&lockout, now);
            let e = self.event_from(
                SecurityEventKind::LoginFailed,
                &msg.context,
                msg.location.as_ref(),
                now,
            );
            self.record_soft(e);
            self.lockout_alert(was_locked, now);
            return Ok(LoginDecision::Rejected);
        }
        let assessment = self.assess(&msg.context, msg.location.as_ref(), now);
        if assessment.decision == RiskDecision::Deny {
            self.risk_denied(&msg.context, msg.location.as_ref(), assessment, None, now);
            return Ok(LoginDecision::RiskDenied);
        }
        let settings = &self.state.profile.security_settings;
        let reason = if self.policy().zero_trust {
            Some(ChallengeReason::ZeroTrustTier)
        } else if settings.require_mfa {
            Some(ChallengeReason::RequiredBySettings)
        } else if assessment.decision == RiskDecision::RequireMfa {
            Some(ChallengeReason::Risk)
        } else {
            None
        };
        if let Some(reason) = reason {
            if assessment.decision == RiskDecision::RequireMfa {
                // The password was right but the login looks unusual: the user hears of
                // it whether or not the second factor follows.
                self.notify_unusual(&msg.context, &assessment, now);
            }
            return Ok(self.challenge(msg.context, msg.location, assessment, reason, now));
        }
        self.grant(msg.context, msg.location, Some(assessment), None, now)
    }
}

impl UserActor {
    /// Scores a login from `context` against what this user's logins taught.
    fn assess(
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
        let attempt = Attempt {
            device_id: context.device_id.as_deref(),
            ip: context.ip_address,
            location,
            recent_failures,
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

    /// Opens a session for a login whose every factor passed: writes it (the caller
    /// commits), learns the login's device, network, place and hour, records the event
    /// and tells the user's sockets.
    fn grant(
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
    fn grant_with(
        &mut self,
        context: LoginContext,
        location: Option<Location>,
        assessment: Option<RiskAssessment>,
        factor: Option<crate::domain::mfa::SecondFactor>,
        now: Timestamp,
        also: impl FnOnce(&mut UserState),
    ) -> Result<LoginDecision, EngineError> {
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
        for s in &self.state.sessions {
            // Sessions that were still live went because of the per-user cap.
            if evicted.contains(&s.id) && s.is_active(now) {
                let mut e = SecurityEvent::new(SecurityEventKind::SessionRevoked, now);
                e.session_id = Some(s.id);
                e.detail = Some(format!("evicted: over {max} sessions"));
                record_into(&self.engine, &self.key, self.state.profile.id, &mut next, e);
            }
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
        self.soft_dirty = true;
        Ok(Some(AuthorizedRequest {
            session,
            rate,
            profile: self.state.profile.clone(),
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
}

impl Handler<RecordFailure> for UserActor {
    type Result = Result<(), EngineError>;
    fn handle(&mut self, _: RecordFailure, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let lockout = self.engine.config.lockout;
        let was_locked = self.state.failures.is_locked(now);
        self.state.failures.record_failure(&lockout, now);
        self.soft_dirty = true;
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
    type Result = Result<bool, EngineError>;
    fn handle(&mut self, RevokeSession(id): RevokeSession, _: &mut Context<Self>) -> Self::Result {
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
}

impl Handler<DeleteUser> for UserActor {
    type Result = Result<(), EngineError>;
    fn handle(&mut self, msg: DeleteUser, ctx: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        self.require_recent(msg.recent, now)?;
        let email_index = self
            .engine
            .keys
            .email_index(&self.state.profile.email.normalized());
        let batch = Batch::of(Op::DeleteUser {
            id: self.id(),
            email_index,
        });
        let audit = msg.audit.into_iter().collect();
        let (applied, _) = self.engine.audit.apply_with(batch, now, audit)?;
        self.accepted(applied)?;
        self.state.sessions.clear();
        self.publish(Event::UserDeleted {});
        if let Some(s) = &self.stream {
            self.engine.realtime.close_all(s, CloseCode::UserDeleted);
        }
        self.leave(ctx);
        Ok(())
    }
}

impl Handler<Subscribe> for UserActor {
    type Result = Result<SubscribeOutcome, EngineError>;
    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        if self.state.touch_session(msg.session, now).is_none() {
            return Ok(SubscribeOutcome::SessionInvalid);
        }
        self.soft_dirty = true;
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
        self.soft_dirty |= found.is_some();
        Ok(found)
    }
}

impl Handler<RecordActivity> for UserActor {
    type Result = Result<ActivityOutcome, EngineError>;
    fn handle(&mut self, msg: RecordActivity, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        if self.state.touch_session(msg.session, now).is_none() {
            return Ok(ActivityOutcome::SessionInvalid);
        }
        self.soft_dirty = true;
        let limit = self.policy().requests_per_hour;
        if let RateDecision::Limited {
            retry_after_secs, ..
        } = self.state.rate.take(limit, RATE_PERIOD, now)
        {
            let tier = crate::metrics::TierLabels {
                tier: self.state.profile.tier.into(),
            };
            self.engine.metrics.rate_limited.get_or_create(&tier).inc();
            return Ok(ActivityOutcome::RateLimited { retry_after_secs });
        }
        check_batch(&msg.events, now)?;
        let min_age = self.engine.config.privacy.min_age;
        match self
            .state
            .consents
            .allows(crate::domain::consent::Purpose::Analytics, min_age, now)
        {
            Ok(()) => {}
            Err(crate::domain::consent::ConsentRefusal::ParentalConsentRequired) => {
                return Ok(ActivityOutcome::ConsentRequired {
                    reason: "the account is under the minimum age and needs a recorded                              parental consent before activity is collected",
                });
            }
            Err(crate::domain::consent::ConsentRefusal::NotGranted(_)) => {
                return Ok(ActivityOutcome::ConsentRequired {
                    reason: "activity is collected only with the user's consent to                              analytics (PUT /api/v1/users/{id}/consents)",
                });
            }
        }
        self.state.activity.record(&msg.events);
        self.engine
            .metrics
            .activity_events
            .inc_by(msg.events.len() as u64);
        Ok(ActivityOutcome::Recorded {
            accepted: msg.events.len(),
        })
    }
}

impl Handler<GetState> for UserActor {
    type Result = Result<UserState, EngineError>;
    fn handle(&mut self, msg: GetState, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        self.require_recent(msg.recent, now)?;
        self.state.prune_sessions(now);
        Ok(self.state.clone())
    }
}

impl Handler<GetActivity> for UserActor {
    type Result = Result<ActivityCounters, EngineError>;
    fn handle(&mut self, _: GetActivity, _: &mut Context<Self>) -> Self::Result {
        self.touch();
        Ok(self.state.activity.clone())
    }
}

/// The warning threshold (80 or 100 percent of `limit`) that going from `before` to
/// `after` crossed, the higher one if both.
fn crossed_threshold(before: u64, after: u64, limit: u64) -> Option<u8> {
    if limit == 0 || after <= before {
        return None;
    }
    let at = |p: u64| (u128::from(limit) * u128::from(p)).div_ceil(100);
    [100u8, 80].into_iter().find(|&p| {
        let mark = at(u64::from(p));
        u128::from(before) < mark && u128::from(after) >= mark
    })
}

impl Handler<Tick> for UserActor {
    type Result = ();
    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        let now = self.engine.clock.now();
        let cfg = &self.engine.config.engine;
        // Sockets do not keep an idle actor: their stream outlives it (see `events`).
        if now.since(self.last_active) >= cfg.passivate_after {
            self.state.prune_sessions(now);
            self.snapshot(now);
            self.leave(ctx);
        } else if self.soft_dirty && now.since(self.last_snapshot) >= cfg.snapshot_interval {
            self.snapshot(now);
        }
    }
}

impl Handler<Poisoned> for UserActor {
    type Result = ();
    fn handle(&mut self, _: Poisoned, ctx: &mut Context<Self>) {
        self.leave(ctx);
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
        self.state.profile.make_mut().display_name = "never persisted".into();
        panic!("test-induced panic in user actor {}", self.id());
    }
}

#[cfg(test)]
mod tests {
    use super::crossed_threshold;

    #[test]
    fn quota_warnings_fire_once_per_threshold() {
        assert_eq!(crossed_threshold(7, 8, 10), Some(80));
        assert_eq!(crossed_threshold(8, 9, 10), None);
        assert_eq!(crossed_threshold(9, 10, 10), Some(100));
        assert_eq!(crossed_threshold(0, 10, 10), Some(100));
        assert_eq!(crossed_threshold(10, 9, 10), None);
        assert_eq!(crossed_threshold(0, 1, 3), None); // 80% of 3 is 2.4 -> 3
        assert_eq!(crossed_threshold(1, 2, 3), None);
        assert_eq!(crossed_threshold(2, 3, 3), Some(100));
        assert_eq!(crossed_threshold(0, 5, 0), None);
    }
}
