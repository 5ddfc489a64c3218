//! The user actor: one per live user, the only place that user's state changes.
//!
//! Its mailbox serialises every request for the user, so the state needs no locks.
//! Changes a client is promised (profile, tier, sessions, deletion) are written to the
//! store inside the handler, before the reply; the caller then awaits the group commit
//! before acknowledging, so the actor never waits on disk. Soft state (last-seen times,
//! failure counters) is written on the shard's sweep, on passivation and at shutdown.
//!
//! One file per capability, each with its messages at the top: [`profile`], [`login`]
//! (password logins), [`challenge`] (second factors of a login, passwordless starts),
//! [`sessions`], [`mfa`], [`step_up`], [`activity`], [`privacy`], [`directory`] (what an
//! identity provider says), [`hold`] (an operator's lock or required new password),
//! [`link`] (linked accounts at integration providers), [`refresh`] (their tokens).
//! This file holds the actor, its lifecycle (sweep ticks, passivation, poisoning) and
//! the helpers they share: writing a change ([`UserActor::write`]), recording and
//! publishing events.

mod activity;
mod challenge;
mod custom;
mod directory;
mod hold;
mod link;
mod login;
mod mfa;
mod privacy;
mod profile;
mod rare;
mod refresh;
mod sessions;
mod step_up;

pub(crate) use activity::*;
pub(crate) use challenge::*;
pub(crate) use custom::*;
pub(crate) use directory::*;
pub(crate) use hold::*;
pub(crate) use link::*;
pub(crate) use login::*;
pub(crate) use mfa::*;
pub(crate) use privacy::*;
pub(crate) use profile::*;
pub(crate) use refresh::*;
pub(crate) use sessions::*;
pub(crate) use step_up::*;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix::WeakAddr;
use actix::prelude::*;

// What the capability files share (they `use super::*`).
use super::durable::Durable;
use super::events::{CloseCode, Event, Resume, RevokeReason, SubscribeError, UserStream};
use super::outcomes::{
    ActivityOutcome, AuthorizedRequest, CodeSend, ConsentView, FactorProof, SessionInfo,
    StepUpOutcome, SubscribeOutcome,
};
use super::shard::Stopped;
use super::shared_profile::SharedProfile;
use super::state::{SessionOrigin, UserState};
use super::{Engine, EngineError};
use crate::domain::activity::{ActivityEvent, check_batch};
use crate::domain::audit::{AuditAction, AuditActor};
use crate::domain::binding::RequestOrigin;
use crate::domain::consent::{ConsentChange, ConsentState, Date, ParentalConsent, Purpose};
use crate::domain::ids::{SessionId, UserId};
use crate::domain::link::LinkReason;
use crate::domain::login::ChallengeReason;
use crate::domain::mfa::{MfaStatus, PendingTotp, SecondFactor, TotpFactor};
use crate::domain::profile::{ProfilePatch, QuotaDecision, QuotaKind, check_tier_features};
use crate::domain::rate::RateDecision;
use crate::domain::risk::{self, Attempt, Location, RiskAssessment, RiskDecision};
use crate::domain::security_log::{SecurityEvent, SecurityEventKind};
use crate::domain::session::{LoginContext, SessionView};
use crate::domain::settings::{AIPreferences, PersonalizationLevel};
use crate::domain::tier::{TierPolicy, UserTier};
use crate::domain::time::Timestamp;
use crate::domain::validation::ValidationError;
use crate::notify::{Email, EmailKind, Sms};
use crate::security::keys::DataKey;
use crate::security::passkey::{
    self, CreationChallengeResponse, PasskeyAuthentication, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};
use crate::security::token::SessionToken;
use crate::security::{otp, totp};
use crate::store::commit::Ticket;
use crate::store::{Batch, Op, Revision, codec};

/// The shard's periodic check: passivate when idle, snapshot soft state when due.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub(crate) struct Tick;

/// Writes the snapshot now if soft state changed since the last one (before a batch job
/// reads the store), without stopping.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub(crate) struct SnapshotSoft;

/// Writes the snapshot and stops (shutdown, operator request).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub(crate) struct Passivate;

/// Panics inside the handler: the restart-from-snapshot path in tests.
#[cfg(test)]
#[derive(Message, Clone)]
#[rtype(result = "Result<(), EngineError>")]
pub(crate) struct Crash;

/// Stops the actor without writing: its state turned out older than the store's (a write
/// was refused as stale), so the next message activates the user afresh from the store.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub(crate) struct Poisoned;

/// An audit record to write with a change, in the same atomic batch (its time is the
/// change's).
pub(crate) type Audited = (
    crate::domain::audit::AuditActor,
    crate::domain::audit::AuditAction,
);

/// Appends a security event to `state`, counts it (and its risk assessment), and adds an
/// event that no longer fits in the state to `archive`, written with the next write of
/// the state.
fn record_into(
    engine: &Engine,
    key: &DataKey,
    user: UserId,
    state: &mut UserState,
    event: SecurityEvent,
    archive: &mut rare::Rare,
) {
    let m = &engine.metrics;
    m.security_events
        .get_or_create(&crate::metrics::SecurityLabels {
            kind: event.kind.as_str(),
        })
        .inc();
    if let Some(risk) = &event.risk {
        engine.live.risk(risk.decision);
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
        match serde_json::to_vec(&old) {
            Ok(b) => {
                let aad = super::state::event_aad(user, old.seq);
                archive.make_mut().archive.push(Op::ArchiveEvent {
                    user,
                    seq: old.seq,
                    blob: codec::seal_blob(key, &aad, &b),
                });
            }
            Err(e) => tracing::error!(%user, error = %e, "security event not archived"),
        }
    }
}

/// The actor.
pub(crate) struct UserActor {
    state: UserState,
    /// The revision of the stored record `state` was last written as (or loaded from).
    revision: Revision,
    /// This actor, to poison itself from a refused write.
    me: Option<WeakAddr<UserActor>>,
    /// The writes handed to the store's writer by the message being handled, for its
    /// [`Durable`] reply.
    tickets: Tickets,
    /// The latest write handed over: events wait for it, and the actor leaves only
    /// after it.
    last_write: Option<Ticket>,
    /// Events to archive, the import ledger, pending logins and ceremonies: empty
    /// nearly always, so held behind one pointer (see [`rare`]).
    rare: rare::Rare,
    /// The tier and minute this actor last counted its user as seen (live figures).
    seen_minute: Option<(UserTier, u32)>,
    /// The user's data key: seals its snapshots and archived events.
    key: DataKey,
    engine: Arc<Engine>,
    /// The tier and index of the shard that started it, to say goodbye to (looked up
    /// in the directory: an address of its own would be two allocations per actor).
    home: (UserTier, u32),
    last_active: Timestamp,
    last_snapshot: Timestamp,
    /// Whether soft state changed since the last write, shared with the directory so
    /// that a report asks only the actors with unsaved soft state to write it (only the
    /// actor sets or clears it; a flag of its own beside it would cost a word).
    unsaved: Arc<AtomicBool>,
    /// The user's event stream, once there is one (a socket subscribed, now or before
    /// this actor started).
    stream: Option<Arc<UserStream>>,
}

/// The writes of the message being handled: one or two, so a boxed slice, 8 bytes less
/// than a `Vec` in every live actor (see `a_live_user_actor_fits_a_one_kilobyte_task`);
/// a push reallocates, which a write's own cost dwarfs.
#[derive(Default)]
struct Tickets(Box<[Ticket]>);

impl Tickets {
    fn push(&mut self, ticket: Ticket) {
        let mut all = std::mem::take(&mut self.0).into_vec();
        all.push(ticket);
        self.0 = all.into_boxed_slice();
    }

    fn clear(&mut self) {
        self.0 = Box::default();
    }

    fn take(&mut self) -> Vec<Ticket> {
        std::mem::take(&mut self.0).into_vec()
    }
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
        (home, unsaved): ((UserTier, u32), Arc<AtomicBool>),
    ) -> Self {
        let now = engine.clock.now();
        let stream = engine.realtime.existing(state.profile.id);
        Self {
            state,
            revision,
            me: None,
            tickets: Tickets::default(),
            last_write: None,
            rare: rare::Rare::default(),
            seen_minute: None,
            key,
            engine,
            home,
            last_active: now,
            last_snapshot: now,
            // A record of an older format is rewritten as soon as soft state would be.
            unsaved,
            stream,
        }
    }

    /// Appends a security event to `state` (the next state, for events written with a
    /// change); see [`record_into`].
    fn record_event(&mut self, state: &mut UserState, event: SecurityEvent) {
        let id = self.id();
        record_into(&self.engine, &self.key, id, state, event, &mut self.rare);
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
        let state = &mut self.state;
        record_into(&self.engine, &self.key, id, state, event, &mut self.rare);
        self.soften();
    }

    /// Notes soft state changed since the last snapshot: written at the snapshot
    /// interval, at passivation, or when a report asks the live actors for it.
    fn soften(&mut self) {
        if !self.soft_dirty() {
            self.unsaved.store(true, Ordering::Release);
        }
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
        self.engine
            .commit
            .then(self.last_write.clone(), move |durable| {
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

    /// Whether soft state changed since the last write.
    fn soft_dirty(&self) -> bool {
        self.unsaved.load(Ordering::Acquire)
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
        let (tier, minute) = (self.state.profile.tier, crate::engine::live::minute_of(now));
        if self.seen_minute != Some((tier, minute)) {
            if let Some((was, m)) = self.seen_minute.filter(|(was, _)| *was != tier) {
                // Moved tiers: leave the old tier's wheel.
                self.engine.live.unseen(was, m);
                self.seen_minute = None;
            }
            let previous = self.seen_minute.map(|(_, m)| m);
            self.engine.live.seen(tier, previous, minute);
            self.seen_minute = Some((tier, minute));
        }
        now
    }

    /// Hands `next` to the store's writer and adopts it. No store call is made here: the
    /// writer applies it off this thread, and the message's reply ([`Self::durable`])
    /// carries the ticket its caller waits for. If the store refuses the write (another
    /// writer got there first) or fails, the actor is poisoned: it stops, and the user is
    /// activated afresh from what the store holds.
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
        let revision = crate::store::next_revision(self.revision);
        let tier = (next.profile.tier != self.state.profile.tier).then_some(next.profile.tier);
        let mut batch = Batch::of(Op::PutUser {
            id,
            record,
            expect: self.revision,
            revision,
            tier,
        });
        for op in self.rare.take_archive() {
            batch.push(op);
        }
        self.leave_processing_turned_off(&next, &mut batch);
        for op in self.take_listens(revision) {
            batch.push(op);
        }
        self.rare.release_if_empty();
        let audit = audit.into_iter().map(|(a, b)| (a, b, now)).collect();
        self.submit(batch, audit);
        self.revision = revision;
        self.state = next;
        // What a change emptied (the last second factor removed, say) holds nothing.
        self.state.mfa.release_if_empty();
        self.state.failures.release_if_empty();
        self.last_snapshot = now;
        self.unsaved.store(false, Ordering::Release);
        Ok(())
    }

    /// Hands a batch of this user's to the writer; a refusal or failure poisons the
    /// actor.
    fn submit(&mut self, batch: Batch, audit: Vec<crate::store::audit::Draft>) {
        let me = self.me.clone();
        let user = self.id();
        let on_failure = Box::new(move || {
            tracing::warn!(%user, "a write of this user was refused or failed: reloading it");
            if let Some(me) = me.as_ref().and_then(WeakAddr::upgrade) {
                me.do_send(Poisoned);
            }
        });
        let ticket = self.engine.commit.submit(batch, audit, Some(on_failure));
        self.tickets.push(ticket.clone());
        self.last_write = Some(ticket);
    }

    /// The reply of a message that changed what a client is promised: `value`, to be
    /// handed out once the writes this message made are durable.
    fn durable<R>(&mut self, value: R) -> Durable<R> {
        Durable::new(value, self.tickets.take())
    }

    /// Runs a mutating message's handler and replies [`Self::durable`] with exactly the
    /// writes it made: tickets left by messages no client waits on (a snapshot, a session
    /// ended by a request check) are dropped first, and a handler that fails hands none
    /// on to the next reply.
    fn durably<R>(
        &mut self,
        run: impl FnOnce(&mut Self) -> Result<R, EngineError>,
    ) -> Result<Durable<R>, EngineError> {
        self.tickets.clear();
        match run(self) {
            Ok(value) => Ok(self.durable(value)),
            Err(e) => {
                self.tickets.clear();
                Err(e)
            }
        }
    }

    /// Writes the current state (soft-state snapshot); no client waits for it.
    fn snapshot(&mut self, now: Timestamp) {
        let next = self.state.clone();
        if let Err(e) = self.persist(next, now) {
            tracing::error!(user = %self.id(), error = %e, "snapshot failed");
        }
        self.tickets.clear();
    }

    /// Tells the shard that started this actor that it leaves.
    fn goodbye(&self, notice: Stopped) {
        let (tier, index) = self.home;
        match self.engine.directory.shard_at(tier, index as usize) {
            Some(s) => s.addr.do_send(notice),
            None => tracing::error!(user = %notice.id, %tier, index, "an actor's shard is unknown"),
        }
    }

    /// Leaves the shard once its last write is in the store (so that the next
    /// activation reads it): tells the shard first (so a new activation queues behind
    /// this notice), then stops. Messages arriving meanwhile wait, then find the actor
    /// gone and are routed to its successor.
    fn leave(&mut self, ctx: &mut Context<Self>) {
        let notice = Stopped {
            id: self.id(),
            addr: ctx.address(),
        };
        match self.last_write.take().filter(|t| t.outcome().is_none()) {
            None => {
                self.goodbye(notice);
                ctx.stop();
            }
            Some(pending) => {
                let written = async move { pending.wait().await };
                ctx.wait(
                    actix::fut::wrap_future::<_, Self>(written).map(move |_, act, ctx| {
                        act.goodbye(notice);
                        ctx.stop();
                    }),
                );
            }
        }
    }
}

impl Handler<Tick> for UserActor {
    type Result = ();
    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        let now = self.engine.clock.now();
        let cfg = &self.engine.config.engine;
        // The import ledger is cold state: the next import reads it again (after this
        // actor's last write is in the store); expired logins and ceremonies go too.
        let config = &self.engine.config;
        let stale = refresh::stale_after(config.integrations.http_timeout);
        self.rare.tidy(now, config.mfa.challenge_ttl, stale);
        // Sockets do not keep an idle actor: their stream outlives it (see `events`).
        if now.since(self.last_active) >= cfg.passivate_after {
            // The record already holds everything but unsaved soft state.
            if self.state.prune_sessions(now) || self.soft_dirty() {
                self.snapshot(now);
            }
            self.leave(ctx);
        } else if self.soft_dirty() && now.since(self.last_snapshot) >= cfg.snapshot_interval {
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

impl Handler<SnapshotSoft> for UserActor {
    type Result = ();
    fn handle(&mut self, _: SnapshotSoft, _: &mut Context<Self>) {
        if self.soft_dirty() {
            let now = self.engine.clock.now();
            self.snapshot(now);
        }
    }
}

impl Handler<Passivate> for UserActor {
    type Result = ();
    fn handle(&mut self, _: Passivate, ctx: &mut Context<Self>) {
        if self.soft_dirty() {
            let now = self.engine.clock.now();
            self.snapshot(now);
        }
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
