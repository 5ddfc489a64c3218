//! A registry shard: owns the live actors of the users that hash to it within one tier.
//!
//! The shard is the only place that starts a user actor, which is what makes activation
//! single: it checks its map, and while a user's snapshot is loading (on the blocking
//! pool, never on this Arbiter thread) further requests for that user queue behind the
//! load. Actors leave by sending [`Stopped`] before they stop, so an activation that
//! arrives after an actor's final snapshot is processed after its departure and reads
//! that snapshot. A crashed (panicked) actor is noticed by its closed mailbox and
//! restarted from its last snapshot on the next request.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use actix::WeakAddr;
use actix::prelude::*;
use futures_util::future::join_all;
use tokio::sync::oneshot;

use super::directory::LiveEntry;
use super::state::UserState;
use super::user::{Passivate, Tick, UserActor};
use super::{Engine, EngineError};
use crate::domain::ids::UserId;
use crate::domain::tier::UserTier;
use crate::security::keys::DataKey;
use crate::store::Revision;

/// Counters a shard keeps for operators; read without messaging the shard.
#[derive(Debug, Default)]
pub(crate) struct ShardCounters {
    /// Actors live now.
    pub resident: AtomicU64,
    /// Actors started from a snapshot.
    pub activations: AtomicU64,
    /// Actors that left (idle passivation, tier change, deletion, shutdown).
    pub passivations: AtomicU64,
    /// Actors found crashed and restarted.
    pub restarts: AtomicU64,
    /// Messages sent to this shard's user actors and not yet answered: the depth of
    /// their mailboxes together, plus the one being handled.
    pub in_flight: AtomicU64,
    /// Messages answered by this shard's user actors.
    pub messages: AtomicU64,
    /// Round-trip latencies of the current and the last completed sweep window.
    pub window: std::sync::Mutex<LatencyWindow>,
}

/// Latencies (µs) of messages to one shard's actors, in windows of one sweep interval,
/// so operators see the recent figures rather than an average since start.
#[derive(Debug)]
pub(crate) struct LatencyWindow {
    current: hdrhistogram::Histogram<u64>,
    last: hdrhistogram::Histogram<u64>,
    messages_at_rotation: u64,
    rotated_at: std::time::Instant,
    last_rate: f64,
}

impl Default for LatencyWindow {
    fn default() -> Self {
        let h = window_histogram;
        Self {
            current: h(),
            last: h(),
            messages_at_rotation: 0,
            rotated_at: std::time::Instant::now(),
            last_rate: 0.0,
        }
    }
}

/// 1 µs to 1 minute at 2 significant digits: a few KiB per shard.
#[allow(clippy::expect_used)]
fn window_histogram() -> hdrhistogram::Histogram<u64> {
    // Fails only for invalid bounds; these are constants.
    hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid histogram bounds")
}

/// The last window's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct WindowFigures {
    /// Messages answered per second.
    pub message_rate_per_sec: f64,
    /// Median round trip, µs.
    pub latency_p50_us: u64,
    /// 99th percentile, µs.
    pub latency_p99_us: u64,
    /// Slowest, µs.
    pub latency_max_us: u64,
}

impl ShardCounters {
    /// Records one message's round trip.
    pub(crate) fn record_latency(&self, took: std::time::Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        if let Ok(mut w) = self.window.lock() {
            w.current.saturating_record(us);
        }
    }

    /// Closes the current window (the shard's sweep calls this).
    pub(crate) fn rotate(&self) {
        let messages = self.messages.load(Ordering::Relaxed);
        if let Ok(mut w) = self.window.lock() {
            let secs = w.rotated_at.elapsed().as_secs_f64().max(1e-3);
            w.last_rate = messages.saturating_sub(w.messages_at_rotation) as f64 / secs;
            w.messages_at_rotation = messages;
            w.rotated_at = std::time::Instant::now();
            let w = &mut *w;
            std::mem::swap(&mut w.current, &mut w.last);
            w.current.reset();
        }
    }

    /// Rate and latency percentiles of the last completed window.
    pub(crate) fn last_window(&self) -> WindowFigures {
        match self.window.lock() {
            Ok(w) => WindowFigures {
                message_rate_per_sec: w.last_rate,
                latency_p50_us: w.last.value_at_quantile(0.5),
                latency_p99_us: w.last.value_at_quantile(0.99),
                latency_max_us: w.last.max(),
            },
            Err(_) => WindowFigures::default(),
        }
    }
}

type Reply = oneshot::Sender<Result<Activation, EngineError>>;

/// The live actor of a user, and whether it was just restarted after a crash (so that a
/// caller re-sending a message that crashed it can tell a poison message from a move).
#[derive(Clone)]
pub(crate) struct Activation {
    pub addr: Addr<UserActor>,
    pub after_crash: bool,
    pub shard: usize,
}

/// Asks for the live actor of a user, starting it if needed.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Activate {
    pub id: UserId,
    /// The wrapped data key, if the sender read it with the route.
    pub key: Option<Vec<u8>>,
    pub reply: Reply,
}

/// Sent by an actor just before it stops.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Stopped {
    pub id: UserId,
    pub addr: Addr<UserActor>,
}

/// Runs a sweep now (tests and operators; the shard also sweeps on its own timer).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SweepNow;

/// Passivates every live actor and replies when all have written their snapshots.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct PassivateAll;

/// The shard actor.
pub(crate) struct Shard {
    tier: UserTier,
    index: usize,
    engine: Arc<Engine>,
    /// Live actors, held weakly: the directory's entry is the address that keeps an
    /// actor running, so the shard's costs no allocation of its own (a strong address
    /// is two, for each of a million live users).
    users: HashMap<UserId, WeakAddr<UserActor>>,
    /// Users being loaded (queued or in a batch), with the requests waiting for them.
    loading: HashMap<UserId, Vec<Reply>>,
    /// Users not yet handed to a load batch.
    queued: Vec<UserId>,
    /// Wrapped data keys that activation requests brought, by user being loaded.
    keys: HashMap<UserId, Vec<u8>>,
    /// Users whose actor was found crashed and is being reloaded.
    crashed: HashSet<UserId>,
    /// Whether a load batch is running on the blocking pool.
    batch_running: bool,
    counters: Arc<ShardCounters>,
    /// The live actors the current periodic sweep has not ticked yet.
    untickled: Vec<(UserId, WeakAddr<UserActor>)>,
    /// How many of them each slice ticks.
    per_slice: usize,
    /// The periodic sweep's next slice (0 starts a sweep) and how many make one.
    slice: u32,
    slices: u32,
}

/// Most snapshots one blocking-pool job loads.
const MAX_LOAD_BATCH: usize = 256;

/// How often a periodic sweep ticks its next slice of actors: the sweep interval is cut
/// into slices this long, so a shard with a million live actors does not queue a million
/// ticks at once ahead of the requests (each actor is still ticked once per interval; at
/// the default 15 s and 1M live actors a slice is about 1,300 ticks, a millisecond of
/// work).
const SWEEP_SLICE: std::time::Duration = std::time::Duration::from_millis(20);

impl Shard {
    pub(crate) fn new(
        tier: UserTier,
        index: usize,
        engine: Arc<Engine>,
        counters: Arc<ShardCounters>,
    ) -> Self {
        Self {
            tier,
            index,
            engine,
            users: HashMap::new(),
            loading: HashMap::new(),
            queued: Vec::new(),
            keys: HashMap::new(),
            crashed: HashSet::new(),
            batch_running: false,
            counters,
            untickled: Vec::new(),
            per_slice: 0,
            slice: 0,
            slices: 1,
        }
    }

    fn set_resident(&self) {
        self.counters
            .resident
            .store(self.users.len() as u64, Ordering::Relaxed);
    }

    fn forget(&mut self, id: UserId, addr: &Addr<UserActor>) {
        // A weak address that no longer upgrades is of an actor gone: this one, or
        // one before it whose goodbye was lost to a crash.
        if self
            .users
            .get(&id)
            .is_some_and(|w| w.upgrade().is_none_or(|a| a == *addr))
        {
            self.users.remove(&id);
        }
        self.engine.directory.remove_if_same(id, addr);
        self.set_resident();
    }

    fn finish_load(&mut self, id: UserId, loaded: Result<Loaded, EngineError>) {
        let waiters = self.loading.remove(&id).unwrap_or_default();
        let after_crash = self.crashed.remove(&id);
        let result = loaded.and_then(|loaded| {
            let Loaded {
                state,
                revision,
                key,
                outdated,
            } = loaded;
            if state.profile.tier != self.tier {
                // The user changed tier since the route was read; the caller retries there.
                return Err(EngineError::WrongShard(state.profile.tier));
            }
            let engine = Arc::clone(&self.engine);
            let home = (self.tier, u32::try_from(self.index).unwrap_or(u32::MAX));
            let unsaved = Arc::new(AtomicBool::new(outdated));
            let flag = Arc::clone(&unsaved);
            let addr = UserActor::create(move |_| {
                UserActor::new((state, revision), key, engine, (home, flag))
            });
            self.users.insert(id, addr.downgrade());
            self.engine.directory.insert(
                id,
                LiveEntry {
                    addr: addr.clone(),
                    tier: self.tier,
                    shard: self.index,
                    unsaved,
                },
            );
            self.counters.activations.fetch_add(1, Ordering::Relaxed);
            if after_crash {
                // Counted here, whoever noticed the crash first (a request or a sweep).
                self.counters.restarts.fetch_add(1, Ordering::Relaxed);
            }
            self.set_resident();
            Ok(Activation {
                addr,
                after_crash,
                shard: self.index,
            })
        });
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }

    /// Loads the queued users' snapshots in one job on the blocking pool. Requests that
    /// arrive meanwhile queue for the next batch, so under load one hand-off to the pool
    /// serves many activations, and when idle a lone activation is not delayed.
    fn start_load_batch(&mut self, ctx: &mut Context<Self>) {
        let n = self.queued.len().min(MAX_LOAD_BATCH);
        let ids: Vec<(UserId, Option<Vec<u8>>)> = self
            .queued
            .drain(..n)
            .map(|id| (id, self.keys.remove(&id)))
            .collect();
        if ids.is_empty() {
            return;
        }
        self.batch_running = true;
        let engine = Arc::clone(&self.engine);
        // A crashed actor may have handed writes to the store's writer that are not in
        // the store yet: its successor reads after them.
        let after_crash = ids.iter().any(|(id, _)| self.crashed.contains(id));
        let task = async move {
            let only_ids: Vec<UserId> = ids.iter().map(|(id, _)| *id).collect();
            let job = move || {
                if after_crash && let Err(e) = engine.commit.commit_blocking() {
                    tracing::warn!(error = %e, "loading after a crash without the writer's barrier");
                }
                ids.into_iter()
                    .map(|(id, key)| (id, load(&engine, id, key)))
                    .collect::<Vec<_>>()
            };
            tokio::task::spawn_blocking(job).await.unwrap_or_else(|e| {
                let err = EngineError::Internal(format!("snapshot load task: {e}"));
                only_ids.iter().map(|&id| (id, Err(err.clone()))).collect()
            })
        };
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(task).map(|loaded, act, ctx| {
                for (id, state) in loaded {
                    act.finish_load(id, state);
                }
                act.batch_running = false;
                act.start_load_batch(ctx);
            }),
        );
    }

    /// A whole sweep at once (on request): every live actor ticked now.
    fn sweep(&mut self) {
        self.counters.rotate();
        self.untickled.clear();
        let all: Vec<_> = self.users.iter().map(|(id, w)| (*id, w.clone())).collect();
        for (id, w) in all {
            self.tick(id, &w);
        }
    }

    /// One slice of the periodic sweep: the first starts a sweep, the last ticks what
    /// is left of it.
    fn sweep_slice(&mut self) {
        if self.slice == 0 {
            self.counters.rotate();
            self.untickled = self.users.iter().map(|(id, w)| (*id, w.clone())).collect();
            let interval = self.engine.config.engine.sweep_interval;
            self.slices = u32::try_from(interval.as_millis() / SWEEP_SLICE.as_millis())
                .unwrap_or(u32::MAX)
                .max(1);
            self.per_slice = self.untickled.len().div_ceil(self.slices as usize);
        }
        self.slice = (self.slice + 1) % self.slices;
        let from = match self.slice {
            0 => 0,
            _ => self.untickled.len().saturating_sub(self.per_slice),
        };
        let slice: Vec<_> = self.untickled.drain(from..).collect();
        for (id, w) in slice {
            self.tick(id, &w);
        }
    }

    /// Ticks a live actor; forgets one found gone without a goodbye.
    fn tick(&mut self, id: UserId, actor: &WeakAddr<UserActor>) {
        match actor.upgrade() {
            Some(addr) => addr.do_send(Tick),
            None => self.bury(id),
        }
    }

    /// Forgets `id` if its actor (the current one: it may have been reactivated since
    /// the sweep began) is gone: crashed, or stopped with its goodbye still queued
    /// behind this sweep. Either way its successor, whenever it comes, reads after the
    /// writes it left queued (the goodbye, when it arrives, clears the mark).
    fn bury(&mut self, id: UserId) {
        if self.users.get(&id).is_some_and(|w| w.upgrade().is_none()) {
            tracing::debug!(user = %id, tier = %self.tier, shard = self.index, "a user actor is gone");
            self.crashed.insert(id);
            self.users.remove(&id);
            self.engine.directory.remove_if_dead(id);
            self.set_resident();
        }
    }
}

/// A user's state as read from the store.
struct Loaded {
    state: UserState,
    revision: Revision,
    key: DataKey,
    /// Whether the record is of an older format (to be rewritten in the current one).
    outdated: bool,
}

/// Reads a user's snapshot and opens it with its data key; blocking, so it runs on the
/// blocking pool. `wrapped` is the key as the route read found it; a key rewrapped since
/// by a master key rotation is read again.
fn load(engine: &Engine, id: UserId, wrapped: Option<Vec<u8>>) -> Result<Loaded, EngineError> {
    let (revision, record) = engine
        .store
        .load_user_at(id)?
        .ok_or(EngineError::NotFound)?;
    let no_key = || EngineError::Corrupt {
        user: id,
        reason: "the record has no data key".into(),
    };
    let key = match wrapped.map(|w| engine.keys.unwrap(id, &w)) {
        Some(Ok(k)) => Ok(k),
        _ => engine
            .keys
            .data_key(engine.store.as_ref(), id)
            .and_then(|k| k.ok_or_else(no_key)),
    }
    .inspect_err(|e| tracing::error!(user = %id, error = %e, "unusable data key"))?;
    let state = super::state::decode(&record, &key, id).map_err(|e| {
        tracing::error!(user = %id, error = %e, "unreadable snapshot record");
        EngineError::Corrupt {
            user: id,
            reason: e.to_string(),
        }
    })?;
    Ok(Loaded {
        outdated: crate::store::codec::version_of(&record)
            != Some(crate::store::codec::FORMAT_VERSION),
        state,
        revision,
        key,
    })
}

impl Actor for Shard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(SWEEP_SLICE, |act, _| act.sweep_slice());
    }
}

impl Handler<Activate> for Shard {
    type Result = ();
    fn handle(&mut self, msg: Activate, ctx: &mut Context<Self>) {
        if let Some(actor) = self.users.get(&msg.id) {
            if let Some(addr) = actor.upgrade() {
                let live = Activation {
                    addr,
                    after_crash: false,
                    shard: self.index,
                };
                let _ = msg.reply.send(Ok(live));
                return;
            }
            // Its mailbox closed without a goodbye: the actor panicked.
            tracing::warn!(user = %msg.id, tier = %self.tier, shard = self.index, "restarting crashed user actor");
            self.bury(msg.id);
        }
        if let Some(waiters) = self.loading.get_mut(&msg.id) {
            waiters.push(msg.reply);
            return;
        }
        self.loading.insert(msg.id, vec![msg.reply]);
        self.queued.push(msg.id);
        if let Some(key) = msg.key {
            self.keys.insert(msg.id, key);
        }
        if !self.batch_running {
            self.start_load_batch(ctx);
        }
    }
}

impl Handler<Stopped> for Shard {
    type Result = ();
    fn handle(&mut self, msg: Stopped, _: &mut Context<Self>) {
        self.counters.passivations.fetch_add(1, Ordering::Relaxed);
        // It left after its last write: no crash, whatever a sweep took it for.
        self.crashed.remove(&msg.id);
        self.forget(msg.id, &msg.addr);
    }
}

impl Handler<SweepNow> for Shard {
    type Result = ();
    fn handle(&mut self, _: SweepNow, _: &mut Context<Self>) {
        self.sweep();
    }
}

impl Handler<PassivateAll> for Shard {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: PassivateAll, _: &mut Context<Self>) -> Self::Result {
        let sends: Vec<_> = self
            .users
            .values()
            .filter_map(WeakAddr::upgrade)
            .map(|a| a.send(Passivate))
            .collect();
        Box::pin(async move {
            join_all(sends).await;
        })
    }
}
