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

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::domain::ids::{SessionId, UserId};
use crate::domain::profile::QuotaKind;
use crate::domain::settings::{AIPreferences, SecuritySettings};
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;
use crate::engine::shared_profile::SharedProfile;
use crate::metrics::{CloseLabels, Metrics};

/// Close codes the server uses on event sockets (documented in `docs/websocket.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1000: the client asked to close.
    Normal,
    /// 1001: the server is shutting down.
    ServerShutdown,
    /// 1008: too many invalid frames in a row.
    PolicyViolation,
    /// 1009: a frame or message over the configured size.
    TooBig,
    /// 1011: the server failed (details in its log).
    Internal,
    /// 4001: no valid credential (none within the auth timeout, or a bad token).
    Unauthenticated,
    /// 4003: the socket's session ended (revoked, logged out, password changed, expired).
    SessionEnded,
    /// 4004: the user was deleted.
    UserDeleted,
    /// 4008: the socket's outbound queue overflowed (the client reads too slowly).
    SlowConsumer,
    /// 4009: nothing received from the client within the heartbeat timeout.
    HeartbeatTimeout,
    /// 4029: the user already holds the configured maximum of sockets.
    TooManySockets,
}

impl CloseCode {
    /// Every code, for documentation and metrics.
    pub const ALL: [CloseCode; 11] = [
        CloseCode::Normal,
        CloseCode::ServerShutdown,
        CloseCode::PolicyViolation,
        CloseCode::TooBig,
        CloseCode::Internal,
        CloseCode::Unauthenticated,
        CloseCode::SessionEnded,
        CloseCode::UserDeleted,
        CloseCode::SlowConsumer,
        CloseCode::HeartbeatTimeout,
        CloseCode::TooManySockets,
    ];

    /// The numeric WebSocket close code.
    pub(crate) fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::ServerShutdown => 1001,
            CloseCode::PolicyViolation => 1008,
            CloseCode::TooBig => 1009,
            CloseCode::Internal => 1011,
            CloseCode::Unauthenticated => 4001,
            CloseCode::SessionEnded => 4003,
            CloseCode::UserDeleted => 4004,
            CloseCode::SlowConsumer => 4008,
            CloseCode::HeartbeatTimeout => 4009,
            CloseCode::TooManySockets => 4029,
        }
    }

    /// The reason text sent with the code (and the metric label).
    pub(crate) fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "normal",
            CloseCode::ServerShutdown => "server_shutdown",
            CloseCode::PolicyViolation => "policy_violation",
            CloseCode::TooBig => "message_too_big",
            CloseCode::Internal => "internal_error",
            CloseCode::Unauthenticated => "unauthenticated",
            CloseCode::SessionEnded => "session_ended",
            CloseCode::UserDeleted => "user_deleted",
            CloseCode::SlowConsumer => "slow_consumer",
            CloseCode::HeartbeatTimeout => "heartbeat_timeout",
            CloseCode::TooManySockets => "too_many_sockets",
        }
    }
}

/// Why a session ended, in `session.revoked` events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RevokeReason {
    /// Revoked by the user or an operator (including logout).
    Revoked,
    /// Ended by a password change.
    PasswordChanged,
    /// Dropped because the user opened more sessions than allowed.
    Evicted,
}

/// An event about a user, as pushed to that user's sockets. On the wire:
/// `{"type": "...", "seq": n, "at": "RFC 3339", "data": {...}}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", content = "data")]
pub(crate) enum Event {
    /// A login created a session.
    #[serde(rename = "session.created")]
    SessionCreated {
        /// The new session.
        session_id: SessionId,
        /// Its device, if the client named one.
        device_id: Option<String>,
        /// Its user agent.
        user_agent: Option<String>,
        /// Its client address.
        ip_address: Option<IpAddr>,
    },
    /// A session ended before its time; its sockets are closed with 4003.
    #[serde(rename = "session.revoked")]
    SessionRevoked {
        /// The session.
        session_id: SessionId,
        /// Why.
        reason: RevokeReason,
    },
    /// A login from a device this account had not used before.
    #[serde(rename = "security.new_device")]
    NewDevice {
        /// The session it opened.
        session_id: SessionId,
        /// The device.
        device_id: String,
        /// Its client address.
        ip_address: Option<IpAddr>,
    },
    /// Too many failed logins: the account is locked until `until` (except for the
    /// owner's known devices).
    #[serde(rename = "security.lockout")]
    Lockout {
        /// When the lock ends.
        until: Timestamp,
    },
    /// The password changed; every other session ended.
    #[serde(rename = "security.password_changed")]
    PasswordChanged {
        /// Sessions that ended with it.
        sessions_ended: usize,
    },
    /// Display name, language or time zone changed; the whole profile as it is now.
    #[serde(rename = "profile.updated")]
    ProfileUpdated {
        /// The profile.
        profile: SharedProfile,
    },
    /// AI preferences changed.
    #[serde(rename = "preferences.updated")]
    PreferencesUpdated {
        /// The preferences now.
        ai_preferences: AIPreferences,
    },
    /// Security settings changed.
    #[serde(rename = "security_settings.updated")]
    SecuritySettingsUpdated {
        /// The settings now.
        security_settings: SecuritySettings,
    },
    /// The user moved tier.
    #[serde(rename = "tier.changed")]
    TierChanged {
        /// Tier before.
        from: UserTier,
        /// Tier now.
        to: UserTier,
    },
    /// A quota crossed 80% or reached 100% of the tier's limit.
    #[serde(rename = "quota.warning")]
    QuotaWarning {
        /// Which quota.
        quota: QuotaKind,
        /// Used now.
        used: u64,
        /// The tier's limit.
        limit: u64,
        /// The threshold crossed: 80 or 100.
        percent: u8,
    },
    /// The user was deleted; every socket closes with 4004.
    #[serde(rename = "user.deleted")]
    UserDeleted {},
}

impl Event {
    /// The event's `type` on the wire.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Event::SessionCreated { .. } => "session.created",
            Event::SessionRevoked { .. } => "session.revoked",
            Event::NewDevice { .. } => "security.new_device",
            Event::Lockout { .. } => "security.lockout",
            Event::PasswordChanged { .. } => "security.password_changed",
            Event::ProfileUpdated { .. } => "profile.updated",
            Event::PreferencesUpdated { .. } => "preferences.updated",
            Event::SecuritySettingsUpdated { .. } => "security_settings.updated",
            Event::TierChanged { .. } => "tier.changed",
            Event::QuotaWarning { .. } => "quota.warning",
            Event::UserDeleted {} => "user.deleted",
        }
    }

    /// Whether operators' security feed carries this event.
    pub(crate) fn is_security(&self) -> bool {
        matches!(
            self,
            Event::NewDevice { .. } | Event::Lockout { .. } | Event::PasswordChanged { .. }
        )
    }
}

#[derive(Serialize)]
struct UserFrame<'a> {
    seq: u64,
    at: Timestamp,
    #[serde(flatten)]
    event: &'a Event,
}

#[derive(Serialize)]
struct SecurityFrame<'a> {
    user_id: UserId,
    at: Timestamp,
    #[serde(flatten)]
    event: &'a Event,
}

/// Where a reconnecting client left off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct Resume {
    /// The `stream` value from the previous connection's `hello`.
    pub stream: StreamId,
    /// The last `seq` the client processed.
    pub last_seq: u64,
}

/// Identifies one life of a user's stream (sequence numbers restart with a new one).
/// Sent as 16 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamId(pub u64);

impl Serialize for StreamId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:016x}", self.0))
    }
}

impl<'de> Deserialize<'de> for StreamId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        u64::from_str_radix(&s, 16)
            .map(StreamId)
            .map_err(|_| serde::de::Error::custom("stream must be 16 hex digits"))
    }
}

/// What a new subscriber is told first, and the events it missed.
#[derive(Debug)]
pub struct Hello {
    /// The stream's id, for resuming.
    pub stream: StreamId,
    /// The latest sequence number published.
    pub seq: u64,
    /// The client's resume point was honoured; `replay` holds what it missed.
    pub resumed: bool,
    /// The client asked to resume but the events are gone (another stream, or older
    /// than the buffer): it must refetch state over HTTP.
    pub resync_required: bool,
    /// Missed events, oldest first, as wire frames.
    pub replay: Vec<Bytes>,
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn realtime(queue: usize, buffer: usize) -> Arc<Realtime> {
        let limits = StreamLimits {
            resume_buffer: buffer,
            resume_buffer_bytes: 1 << 20,
            outbound_queue: queue,
            max_sockets_per_user: 2,
            security_feed_buffer: 8,
        };
        Arc::new(Realtime::new(limits, Arc::new(Metrics::new())))
    }

    fn seq_of(frame: &Bytes) -> u64 {
        let v: serde_json::Value = serde_json::from_slice(frame).unwrap();
        v["seq"].as_u64().unwrap()
    }

    const T: Timestamp = Timestamp::EPOCH;

    #[test]
    fn frames_are_numbered_and_typed() {
        let rt = realtime(8, 8);
        let user = UserId::generate();
        let stream = rt.attach(user);
        let mut sub = rt.subscribe(&stream, SessionId::generate(), None).unwrap();
        rt.publish(&stream, T, &Event::Lockout { until: T });
        rt.publish(&stream, T, &Event::UserDeleted {});
        let a: serde_json::Value = serde_json::from_slice(&sub.events.try_recv().unwrap()).unwrap();
        assert_eq!(a["type"], "security.lockout");
        assert_eq!(a["seq"], 1);
        assert!(a["data"]["until"].is_string());
        let b: serde_json::Value = serde_json::from_slice(&sub.events.try_recv().unwrap()).unwrap();
        assert_eq!(
            (b["type"].as_str(), b["seq"].as_u64()),
            (Some("user.deleted"), Some(2))
        );
    }

    #[test]
    fn kind_matches_the_serialised_type() {
        let events = [
            Event::Lockout { until: T },
            Event::UserDeleted {},
            Event::TierChanged {
                from: UserTier::Free,
                to: UserTier::Vip,
            },
            Event::PasswordChanged { sessions_ended: 1 },
        ];
        for e in events {
            let v = serde_json::to_value(&e).unwrap();
            assert_eq!(v["type"], e.kind());
        }
    }

    #[test]
    fn resume_replays_exactly_the_missed_events_or_asks_for_resync() {
        let rt = realtime(8, 3);
        let user = UserId::generate();
        let stream = rt.attach(user);
        for _ in 0..5 {
            rt.publish(&stream, T, &Event::UserDeleted {});
        }
        let id = stream.id;
        let session = SessionId::generate();
        let resume = |last_seq, stream| {
            let mut s = rt
                .subscribe(
                    &Arc::clone(&stream_of(&rt, user)),
                    session,
                    Some(Resume { stream, last_seq }),
                )
                .unwrap();
            s.take_hello().unwrap()
        };
        // Buffer holds 3..=5.
        let h = resume(3, id);
        assert!(h.resumed && !h.resync_required);
        assert_eq!(h.replay.iter().map(seq_of).collect::<Vec<_>>(), vec![4, 5]);
        let h = resume(2, id);
        assert_eq!(
            h.replay.iter().map(seq_of).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert!(resume(5, id).replay.is_empty());
        assert!(resume(1, id).resync_required, "event 2 is gone");
        assert!(resume(6, id).resync_required, "ahead of the stream");
        assert!(
            resume(5, StreamId(id.0 ^ 1)).resync_required,
            "another stream"
        );
    }

    #[test]
    fn the_resume_buffer_is_capped_in_bytes_too() {
        let limits = StreamLimits {
            resume_buffer: 1000,
            resume_buffer_bytes: 300,
            outbound_queue: 8,
            max_sockets_per_user: 2,
            security_feed_buffer: 8,
        };
        let rt = Arc::new(Realtime::new(limits, Arc::new(Metrics::new())));
        let stream = rt.attach(UserId::generate());
        for _ in 0..20 {
            rt.publish(&stream, T, &Event::UserDeleted {});
        }
        let inner = stream.lock();
        let bytes: usize = inner.buffer.iter().map(|(_, f)| f.len()).sum();
        assert!(bytes <= 300 && bytes == inner.buffered_bytes, "{bytes}");
        assert!(!inner.buffer.is_empty());
        assert_eq!(inner.buffer.back().map(|(s, _)| *s), Some(20));
    }

    fn stream_of(rt: &Realtime, user: UserId) -> Arc<UserStream> {
        rt.existing(user).unwrap()
    }

    #[test]
    fn a_full_queue_closes_only_that_socket() {
        let rt = realtime(2, 8);
        let stream = rt.attach(UserId::generate());
        let mut slow = rt.subscribe(&stream, SessionId::generate(), None).unwrap();
        let mut fast = rt.subscribe(&stream, SessionId::generate(), None).unwrap();
        for _ in 0..3 {
            rt.publish(&stream, T, &Event::UserDeleted {});
            fast.events.try_recv().unwrap();
        }
        assert_eq!(slow.close.try_recv(), Ok(CloseCode::SlowConsumer));
        assert!(fast.close.try_recv().is_err());
        assert_eq!(stream.subscribers(), 1);
    }

    #[test]
    fn streams_live_while_held_and_cap_sockets() {
        let rt = realtime(2, 8);
        let user = UserId::generate();
        let stream = rt.attach(user);
        let s1 = rt.subscribe(&stream, SessionId::generate(), None).unwrap();
        let s2 = rt.subscribe(&stream, SessionId::generate(), None).unwrap();
        assert_eq!(
            rt.subscribe(&stream, SessionId::generate(), None).err(),
            Some(SubscribeError::TooManySockets)
        );
        rt.release(stream);
        assert_eq!(rt.stream_count(), 1, "the sockets still hold it");
        drop(s1);
        drop(s2);
        assert_eq!(rt.stream_count(), 0);
        assert!(rt.existing(user).is_none());
    }

    #[test]
    fn closing_a_session_leaves_its_siblings() {
        let rt = realtime(2, 8);
        let stream = rt.attach(UserId::generate());
        let (a, b) = (SessionId::generate(), SessionId::generate());
        let mut sa = rt.subscribe(&stream, a, None).unwrap();
        let mut sb = rt.subscribe(&stream, b, None).unwrap();
        rt.close_session(&stream, a, CloseCode::SessionEnded);
        assert_eq!(sa.close.try_recv(), Ok(CloseCode::SessionEnded));
        assert!(sb.close.try_recv().is_err());
    }
}
