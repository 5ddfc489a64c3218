//! The streams' numbering, resuming, back-pressure and lifetimes.

use super::*;
use crate::domain::tier::UserTier;

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
