//! The directory: user id → live actor (a dashmap, so lookups never wait on an actor),
//! and the routing that finds or activates a user's actor and delivers a message to it.
//!
//! The directory is a cache: the owning shard alone inserts and removes entries. A
//! stale entry (the actor passivated, moved tier or crashed) shows up as a closed
//! mailbox; the message is then re-routed through the owning shard, which reactivates
//! the user from its snapshot.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use actix::dev::ToEnvelope;
use actix::prelude::*;
use dashmap::DashMap;
use tokio::sync::oneshot;
use tracing::Instrument;

use super::shard::{Activate, Activation, Shard, ShardCounters};
use super::user::UserActor;
use super::{Engine, EngineError};
use crate::domain::ids::UserId;
use crate::domain::tier::UserTier;
use crate::metrics::ShardLabels;

/// How many times a message is re-routed after finding its actor stopped. Each retry
/// follows a real departure (passivation, a tier move, a crash); a user moved back and forth
/// under load can see several in a row.
const MAX_ROUTING_ATTEMPTS: usize = 32;

/// Restarts after a crash that one request may cause before it is refused: once could be
/// bad luck, twice is a request that kills the actor.
const MAX_CRASH_RETRIES: usize = 1;

/// Tier moves followed while activating one user. Each hop follows a move the store
/// shows (the snapshot names another tier than the route read did); a user moved back
/// and forth under load can need several in a row, as many as its mover makes meanwhile.
const MAX_TIER_HOPS: usize = 32;

/// A live actor and where it lives.
#[derive(Clone)]
pub(crate) struct LiveEntry {
    pub addr: Addr<UserActor>,
    pub tier: UserTier,
    pub shard: usize,
    /// Whether the actor holds soft state not yet in the store.
    pub unsaved: Arc<std::sync::atomic::AtomicBool>,
}

/// One registry shard, as the router sees it.
#[derive(Clone)]
pub(crate) struct ShardRef {
    pub addr: Addr<Shard>,
    pub counters: Arc<ShardCounters>,
}

/// Live actors by user id, and the shards by tier.
#[derive(Default)]
pub(crate) struct Directory {
    live: DashMap<UserId, LiveEntry>,
    shards: OnceLock<[Vec<ShardRef>; 4]>,
}

impl Directory {
    pub(crate) fn set_shards(&self, shards: [Vec<ShardRef>; 4]) -> Result<(), EngineError> {
        self.shards
            .set(shards)
            .map_err(|_| EngineError::Internal("shards already set".into()))
    }

    pub(crate) fn shards(&self) -> &[Vec<ShardRef>] {
        self.shards.get().map(|s| s.as_slice()).unwrap_or(&[])
    }

    /// The shard that owns `id` within `tier`: `hash(id) % shards(tier)`.
    pub(crate) fn shard_for(&self, tier: UserTier, id: UserId) -> Result<&ShardRef, EngineError> {
        let list = self
            .shards()
            .get(tier.index())
            .filter(|l| !l.is_empty())
            .ok_or(EngineError::Unavailable)?;
        let i = (id.shard_hash() % list.len() as u64) as usize;
        Ok(&list[i])
    }

    pub(crate) fn get(&self, id: UserId) -> Option<LiveEntry> {
        self.live.get(&id).map(|e| e.value().clone())
    }

    pub(crate) fn insert(&self, id: UserId, entry: LiveEntry) {
        self.live.insert(id, entry);
    }

    pub(crate) fn remove_if_same(&self, id: UserId, addr: &Addr<UserActor>) {
        self.live.remove_if(&id, |_, e| &e.addr == addr);
    }

    /// Enqueues `msg` for the live actor of `id`, if there is one; with the actor's tier
    /// and shard.
    pub(crate) fn send_if_live<M>(
        &self,
        id: UserId,
        msg: M,
    ) -> Option<(actix::dev::Request<UserActor, M>, UserTier, usize)>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        UserActor: Handler<M>,
        <UserActor as Actor>::Context: ToEnvelope<UserActor, M>,
    {
        self.live
            .get(&id)
            .map(|e| (e.addr.send(msg), e.tier, e.shard))
    }

    /// Hands `msg` to the live actor of `id` without waiting, if there is one.
    pub(crate) fn tell_if_live<M>(&self, id: UserId, msg: M)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        UserActor: Handler<M>,
        <UserActor as Actor>::Context: ToEnvelope<UserActor, M>,
    {
        if let Some(e) = self.live.get(&id) {
            e.addr.do_send(msg);
        }
    }

    /// Drops the entry of `id` if its actor has stopped.
    pub(crate) fn remove_if_dead(&self, id: UserId) {
        self.live.remove_if(&id, |_, e| !e.addr.connected());
    }

    /// Shard `index` of `tier`.
    pub(crate) fn shard_at(&self, tier: UserTier, index: usize) -> Option<&ShardRef> {
        self.shards().get(tier.index()).and_then(|l| l.get(index))
    }

    /// The counters of one shard.
    pub(crate) fn counters(&self, tier: UserTier, shard: usize) -> Option<&ShardCounters> {
        self.shard_at(tier, shard).map(|s| s.counters.as_ref())
    }

    /// The live actors holding soft state not yet in the store.
    pub(crate) fn unsaved(&self) -> Vec<Addr<UserActor>> {
        self.live
            .iter()
            .filter(|e| e.unsaved.load(Ordering::Acquire))
            .map(|e| e.addr.clone())
            .collect()
    }

    pub(crate) fn live_count(&self) -> usize {
        self.live.len()
    }
}

impl Engine {
    /// The live actor of `id`, activating it through its owning shard if needed.
    async fn resolve(&self, id: UserId) -> Result<(Activation, UserTier), EngineError> {
        if let Some(e) = self.directory.get(id) {
            let live = Activation {
                addr: e.addr,
                after_crash: false,
                shard: e.shard,
            };
            return Ok((live, e.tier));
        }
        // The route read also brings the wrapped data key, handed to the activation so
        // that it reads only the record.
        let (mut tier, mut key) = self.store.route_of(id)?.ok_or(EngineError::NotFound)?;
        // Each retry follows a tier move seen in the snapshot.
        for _ in 0..MAX_TIER_HOPS {
            let shard = self.directory.shard_for(tier, id)?;
            let (tx, rx) = oneshot::channel();
            shard
                .addr
                .send(Activate {
                    id,
                    key: key.take(),
                    reply: tx,
                })
                .await
                .map_err(|_| EngineError::Unavailable)?;
            match rx.await.map_err(|_| EngineError::Unavailable)? {
                Err(EngineError::WrongShard(actual)) => tier = actual,
                other => return other.map(|live| (live, tier)),
            }
        }
        Err(EngineError::Unavailable)
    }

    /// Delivers `msg` to the actor of `id` and returns its reply, re-routing when the
    /// actor it found has stopped.
    pub(crate) async fn call<M, R>(&self, id: UserId, msg: M) -> Result<R, EngineError>
    where
        M: Message<Result = Result<R, EngineError>> + Clone + Send + 'static,
        R: Send + 'static,
        UserActor: Handler<M>,
        <UserActor as Actor>::Context: ToEnvelope<UserActor, M>,
    {
        // One span per actor message, at debug level (free when debug is off).
        let message = std::any::type_name::<M>()
            .rsplit("::")
            .next()
            .unwrap_or("message");
        let span = tracing::debug_span!("actor_message", user = %id, message);
        self.route(id, msg).instrument(span).await
    }

    async fn route<M, R>(&self, id: UserId, msg: M) -> Result<R, EngineError>
    where
        M: Message<Result = Result<R, EngineError>> + Clone + Send + 'static,
        R: Send + 'static,
        UserActor: Handler<M>,
        <UserActor as Actor>::Context: ToEnvelope<UserActor, M>,
    {
        let mut crashes = 0;
        for _ in 0..MAX_ROUTING_ATTEMPTS {
            // The hot path enqueues straight from the directory entry (no address clone);
            // the guard is released before anything is awaited.
            let (request, tier, shard) = match self.directory.send_if_live(id, msg.clone()) {
                Some(sent) => sent,
                None => {
                    let (live, tier) = self.resolve(id).await?;
                    if live.after_crash {
                        crashes += 1;
                        if crashes > MAX_CRASH_RETRIES {
                            // The same request keeps killing the actor: stop feeding it.
                            return Err(EngineError::Internal(format!(
                                "a request crashed the actor of user {id} repeatedly"
                            )));
                        }
                    }
                    (live.addr.send(msg.clone()), tier, live.shard)
                }
            };
            let in_flight = InFlight::enter(self.directory.counters(tier, shard));
            let started = std::time::Instant::now();
            let answered = request.await;
            drop(in_flight);
            let labels = ShardLabels {
                tier: tier.into(),
                shard: u32::try_from(shard).unwrap_or(u32::MAX),
            };
            let took = started.elapsed();
            self.metrics
                .message_latency
                .get_or_create(&labels)
                .observe(took.as_secs_f64());
            if let Some(c) = self.directory.counters(tier, shard) {
                c.record_latency(took);
            }
            match answered {
                Ok(reply) => {
                    tracing::debug!(%tier, shard, "actor answered");
                    return reply;
                }
                Err(MailboxError::Closed) => {
                    // Stopped (passivated, moved tier) or crashed; forget it so the next
                    // resolve asks its shard.
                    self.directory.remove_if_dead(id);
                    tokio::task::yield_now().await;
                }
                Err(MailboxError::Timeout) => return Err(EngineError::Unavailable),
            }
        }
        Err(EngineError::Unavailable)
    }
}

/// Counts one message in flight to a shard's actors for as long as it lives, so that a
/// caller that gives up (its future dropped) does not leave the count inflated.
struct InFlight<'a>(Option<&'a ShardCounters>);

impl<'a> InFlight<'a> {
    fn enter(counters: Option<&'a ShardCounters>) -> Self {
        if let Some(c) = counters {
            c.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        Self(counters)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0 {
            c.in_flight.fetch_sub(1, Ordering::Relaxed);
            c.messages.fetch_add(1, Ordering::Relaxed);
        }
    }
}
