//! Realtime event streams: what a user's actor pushes to that user's WebSocket clients.
//!
//! Each user with a connected socket has one [`UserStream`]: a per-user sequence number,
//! a bounded buffer of recent events for resuming, and the subscribers (one per socket).
//! The user's actor is the only publisher: its handlers hand each event to the group
//! committer, which publishes it once the change is durable, in the order the actor
//! handed them over — so the stream's order is the order of the changes, and no client
//! hears of a change a crash could undo. Sockets subscribe through the
//! actor too (a [`super::user::Subscribe`] message), so a subscription and a
//! revocation of its session can never race.
//!
//! Streams live in a map beside the directory, not inside the actor: an actor that moves
//! tier, passivates or is restarted after a panic finds its stream (and its sockets)
//! again, and the socket's numbering carries on. A stream is dropped when neither an
//! actor nor a socket holds it; a client resuming after that is told to resync.
//!
//! Delivery never blocks the actor: each socket has a bounded queue, filled with
//! `try_send`; a socket whose queue is full is closed ([`CloseCode::SlowConsumer`]) and
//! can resume from its last sequence number on reconnect.

mod wire;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::domain::ids::{SessionId, UserId};
use crate::domain::time::Timestamp;
use crate::metrics::{CloseLabels, Metrics};

pub use wire::{CloseCode, Hello, Resume, StreamId};
pub(crate) use wire::{Event, RevokeReason};
use wire::{SecurityFrame, UserFrame};

pub(crate) use crate::config::StreamLimits;

struct Subscriber {
    id: u64,
    session: SessionId,
    tx: mpsc::Sender<Bytes>,
    close: oneshot::Sender<CloseCode>,
}

struct StreamInner {
    seq: u64,
    buffer: VecDeque<(u64, Bytes)>,
    buffered_bytes: usize,
    subscribers: Vec<Subscriber>,
}

/// One user's event stream.
pub(crate) struct UserStream {
    user: UserId,
    id: StreamId,
    inner: Mutex<StreamInner>,
}

impl UserStream {
    fn new(user: UserId) -> Self {
        let mut id = [0u8; 8];
        rand::fill(&mut id);
        Self {
            user,
            id: StreamId(u64::from_le_bytes(id)),
            inner: Mutex::new(StreamInner {
                seq: 0,
                buffer: VecDeque::new(),
                buffered_bytes: 0,
                subscribers: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, StreamInner> {
        // The critical sections below cannot panic half-way; a poisoned lock still holds
        // consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sockets subscribed now.
    #[cfg(test)]
    pub(crate) fn subscribers(&self) -> usize {
        self.lock().subscribers.len()
    }
}

/// Every user stream in the process, and the operators' security feed.
pub struct Realtime {
    streams: DashMap<UserId, Arc<UserStream>>,
    limits: StreamLimits,
    security: broadcast::Sender<Bytes>,
    next_subscriber: AtomicU64,
    metrics: Arc<Metrics>,
    shutdown: watch::Sender<bool>,
}

/// A subscription refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubscribeError {
    /// The user holds `max_sockets_per_user` sockets already.
    TooManySockets,
}

impl Realtime {
    pub(crate) fn new(limits: StreamLimits, metrics: Arc<Metrics>) -> Self {
        let (security, _) = broadcast::channel(limits.security_feed_buffer.max(1));
        Self {
            streams: DashMap::new(),
            limits,
            security,
            next_subscriber: AtomicU64::new(1),
            metrics,
            shutdown: watch::Sender::new(false),
        }
    }

    /// The user's stream if one exists (some actor or socket holds it).
    pub(crate) fn existing(&self, user: UserId) -> Option<Arc<UserStream>> {
        self.streams.get(&user).map(|s| Arc::clone(&s))
    }

    /// The user's stream, created if needed.
    pub(crate) fn attach(&self, user: UserId) -> Arc<UserStream> {
        Arc::clone(
            &self
                .streams
                .entry(user)
                .or_insert_with(|| Arc::new(UserStream::new(user))),
        )
    }

    /// Gives up a holder's reference; the stream goes when nobody else holds it.
    pub(crate) fn release(&self, stream: Arc<UserStream>) {
        let user = stream.user;
        drop(stream);
        // Under the map's shard lock: a concurrent `attach`/`existing` either cloned it
        // already (count > 1, kept) or will find it gone and start a new stream.
        self.streams
            .remove_if(&user, |_, s| Arc::strong_count(s) == 1);
    }

    /// Streams in memory (users with a live actor that published, or a socket).
    #[cfg(test)]
    pub(crate) fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Publishes `event` on `stream` at `now`: numbers it, buffers it for resuming and
    /// queues it to every subscriber without waiting. Returns its sequence number.
    pub(crate) fn publish(&self, stream: &UserStream, now: Timestamp, event: &Event) -> u64 {
        let mut inner = stream.lock();
        inner.seq += 1;
        let seq = inner.seq;
        let frame = match serde_json::to_vec(&UserFrame {
            seq,
            at: now,
            event,
        }) {
            Ok(v) => Bytes::from(v),
            Err(e) => {
                tracing::error!(user = %stream.user, error = %e, "event not serialisable");
                return seq;
            }
        };
        inner.buffered_bytes += frame.len();
        inner.buffer.push_back((seq, frame.clone()));
        while inner.buffer.len() > self.limits.resume_buffer
            || inner.buffered_bytes > self.limits.resume_buffer_bytes
        {
            match inner.buffer.pop_front() {
                Some((_, f)) => inner.buffered_bytes -= f.len(),
                None => break,
            }
        }
        self.metrics.ws_events_published.inc();
        let metrics = &self.metrics;
        let subscribers = std::mem::take(&mut inner.subscribers);
        for s in subscribers {
            match s.tx.try_send(frame.clone()) {
                Ok(()) => inner.subscribers.push(s),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    metrics.ws_events_dropped.inc();
                    let _ = s.close.send(CloseCode::SlowConsumer);
                }
                // The socket is gone; its subscription is being dropped.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        seq
    }

    /// Sends a security event to the operators' feed (lossy for lagging readers).
    pub(crate) fn publish_security(&self, user: UserId, now: Timestamp, event: &Event) {
        if self.security.receiver_count() == 0 {
            return;
        }
        let frame = SecurityFrame {
            user_id: user,
            at: now,
            event,
        };
        if let Ok(v) = serde_json::to_vec(&frame) {
            let _ = self.security.send(Bytes::from(v));
        }
    }

    /// Sends an operator's incident action to the operators' feed (lossy for lagging
    /// readers), once it is durable: `{"type": "operator.<kind>", "at", "data"}`.
    pub(crate) fn publish_operator(&self, kind: &str, now: Timestamp, data: serde_json::Value) {
        if self.security.receiver_count() == 0 {
            return;
        }
        let frame = serde_json::json!({
            "type": format!("operator.{kind}"),
            "at": now,
            "data": data,
        });
        if let Ok(v) = serde_json::to_vec(&frame) {
            let _ = self.security.send(Bytes::from(v));
        }
    }

    /// A receiver of the operators' security feed.
    pub(crate) fn security_feed(&self) -> broadcast::Receiver<Bytes> {
        self.security.subscribe()
    }

    /// Registers a socket of `session` on `stream`, with the events it missed since
    /// `resume`. The caller (the user's actor) has checked the session.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        stream: &Arc<UserStream>,
        session: SessionId,
        resume: Option<Resume>,
    ) -> Result<Subscription, SubscribeError> {
        let mut inner = stream.lock();
        if inner.subscribers.len() >= self.limits.max_sockets_per_user {
            return Err(SubscribeError::TooManySockets);
        }
        let (replay, resync_required) = match resume {
            None => (Vec::new(), false),
            Some(r) if r.stream != stream.id || r.last_seq > inner.seq => (Vec::new(), true),
            Some(r) => {
                let oldest = inner.buffer.front().map_or(inner.seq + 1, |(s, _)| *s);
                if r.last_seq + 1 < oldest {
                    (Vec::new(), true)
                } else {
                    let missed = inner
                        .buffer
                        .iter()
                        .filter(|(s, _)| *s > r.last_seq)
                        .map(|(_, f)| f.clone())
                        .collect();
                    (missed, false)
                }
            }
        };
        let (tx, rx) = mpsc::channel(self.limits.outbound_queue.max(1));
        let (close_tx, close_rx) = oneshot::channel();
        let id = self.next_subscriber.fetch_add(1, Ordering::Relaxed);
        inner.subscribers.push(Subscriber {
            id,
            session,
            tx,
            close: close_tx,
        });
        let hello = Hello {
            stream: stream.id,
            seq: inner.seq,
            resumed: resume.is_some() && !resync_required,
            resync_required,
            replay,
        };
        drop(inner);
        self.metrics.ws_connections.inc();
        Ok(Subscription {
            realtime: Arc::clone(self),
            stream: Some(Arc::clone(stream)),
            id,
            session,
            hello: Some(hello),
            events: rx,
            close: close_rx,
        })
    }

    /// Closes the sockets of `session` with `code`.
    pub(crate) fn close_session(&self, stream: &UserStream, session: SessionId, code: CloseCode) {
        self.close_where(stream, code, |s| s.session == session);
    }

    /// Closes every socket of the stream with `code`.
    pub(crate) fn close_all(&self, stream: &UserStream, code: CloseCode) {
        self.close_where(stream, code, |_| true);
    }

    fn close_where(
        &self,
        stream: &UserStream,
        code: CloseCode,
        pick: impl Fn(&Subscriber) -> bool,
    ) {
        let mut inner = stream.lock();
        let subscribers = std::mem::take(&mut inner.subscribers);
        for s in subscribers {
            if pick(&s) {
                let _ = s.close.send(code);
            } else {
                inner.subscribers.push(s);
            }
        }
    }

    /// Changes to `true` when the server shuts down (for sockets not tied to a stream).
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Closes every socket of every user and the operators' feeds (server shutdown).
    pub fn close_everything(&self, code: CloseCode) {
        self.shutdown.send_replace(true);
        let streams: Vec<_> = self.streams.iter().map(|e| Arc::clone(e.value())).collect();
        for s in streams {
            self.close_all(&s, code);
        }
    }

    /// Counts a socket closed by the server or the client, by reason.
    pub(crate) fn count_close(&self, code: CloseCode) {
        self.metrics
            .ws_closes
            .get_or_create(&CloseLabels {
                reason: code.reason(),
            })
            .inc();
    }

    /// Counts a frame written to a socket.
    pub(crate) fn count_sent(&self) {
        self.metrics.ws_events_sent.inc();
    }
}

/// One socket's subscription: its queue of event frames and the server's close signal.
/// Dropping it unsubscribes.
pub struct Subscription {
    realtime: Arc<Realtime>,
    stream: Option<Arc<UserStream>>,
    id: u64,
    session: SessionId,
    hello: Option<Hello>,
    /// Event frames, in sequence order.
    pub events: mpsc::Receiver<Bytes>,
    /// Fires when the server closes this socket (revocation, deletion, overflow).
    pub close: oneshot::Receiver<CloseCode>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The hello and missed events (once).
    pub(crate) fn take_hello(&mut self) -> Option<Hello> {
        self.hello.take()
    }

    /// The session this socket belongs to.
    pub(crate) fn session(&self) -> SessionId {
        self.session
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.realtime.metrics.ws_connections.dec();
        if let Some(stream) = self.stream.take() {
            stream.lock().subscribers.retain(|s| s.id != self.id);
            self.realtime.release(stream);
        }
    }
}
