//! The writer: shared flushes, outcomes of their own, groups that refuse alone.

use super::*;
use crate::domain::audit::{AuditAction, AuditActor};
use crate::domain::ids::UserId;
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;
use crate::store::{ArchiveStore, Op, SledStore, UserStore};

/// The email claim of a test user: its id, padded.
fn email_of(id: UserId) -> [u8; 32] {
    let mut email_index = [0u8; 32];
    email_index[..16].copy_from_slice(id.as_bytes());
    email_index
}

/// Creates `id` claiming the email of `email`.
fn create_as(id: UserId, email: UserId) -> Op {
    Op::CreateUser {
        id,
        revision: 1,
        email_index: email_of(email),
        tier: UserTier::Free,
        wrapped_key: Vec::new(),
        record: b"record".to_vec(),
    }
}

fn create(id: UserId) -> Batch {
    Batch::of(create_as(id, id))
}

fn write(batch: Batch, user: UserId) -> Job {
    Job::Write {
        batch,
        audit: vec![(
            AuditActor::Operator,
            AuditAction::UserImported { user },
            Timestamp::EPOCH,
        )],
        ticket: Ticket::new(),
        on_failure: None,
    }
}

#[test]
fn a_round_applies_in_groups_and_a_refused_batch_is_taken_back_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), 1 << 20).unwrap();
    let mut chain = Some(Chain::open(&store).unwrap());
    let ids: Vec<_> = (0..5).map(|_| UserId::generate()).collect();
    let (x, a, b, c, d) = (ids[0], ids[1], ids[2], ids[3], ids[4]);
    let mut first = vec![write(create(x), x)];
    let applied = Writes::new(&mut first).apply(&store, &mut chain);
    assert_eq!(applied, vec![Outcome::Durable]);
    let put = |expect, revision| Op::PutUser {
        id: x,
        record: b"changed".to_vec(),
        expect,
        revision,
        tier: None,
    };
    // A batch that creates b and then claims x's email: refused as a whole, so b's
    // creation, written within the group's transaction, is taken back.
    let mut b_then_taken = create(b);
    b_then_taken.push(create_as(d, x));
    let mut archived = Batch::of(put(1, 2));
    archived.push(Op::ArchiveEvent {
        user: x,
        seq: 1,
        blob: b"event".to_vec(),
    });
    let delete = Batch::of(Op::DeleteUser {
        id: x,
        email_indexes: vec![email_of(x)],
        at: crate::domain::time::Timestamp::from_millis(1),
    });
    let mut round = vec![
        write(create(a), a),
        write(b_then_taken, b),
        write(Batch::of(put(7, 8)), x),
        write(archived, x),
        // A deletion starts a group of its own: the event archived just before is
        // deleted with the user.
        write(delete, x),
        // x's email is free again.
        write(Batch::of(create_as(c, x)), c),
    ];
    let applied = Writes::new(&mut round).apply(&store, &mut chain);
    let stale = Applied::Stale {
        user: x,
        stored: Some(1),
    };
    assert_eq!(
        applied,
        vec![
            Outcome::Durable,
            Outcome::Refused(Applied::EmailTaken),
            Outcome::Refused(stale),
            Outcome::Durable,
            Outcome::Durable,
            Outcome::Durable,
        ]
    );
    assert!(store.load_user(a).unwrap().is_some());
    assert!(store.load_user(b).unwrap().is_none(), "taken back");
    assert!(store.load_user(d).unwrap().is_none());
    assert!(store.load_user(x).unwrap().is_none(), "deleted");
    assert!(store.load_user(c).unwrap().is_some());
    assert_eq!(store.scan_security_events().count(), 0);
    // Only the applied batches' records, numbered without a gap.
    assert_eq!(crate::store::audit::verify(&store), Ok(5));
    let chain = chain.unwrap();
    assert_eq!(chain.seq(), 5);
    // The chain the writer kept goes on where the store's ends.
    assert_eq!(chain, Chain::open(&store).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_flushes_and_each_learns_its_own_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path(), 1 << 20).unwrap());
    let gc = GroupCommit::start(Arc::clone(&store)).unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let gc = gc.clone();
            tokio::spawn(async move {
                let id = UserId::generate();
                let ticket = gc.submit(create(id), Vec::new(), None);
                assert_eq!(gc.wait(&ticket).await, Outcome::Durable);
                id
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    let flushes = gc.stats().flushes.load(Ordering::Relaxed);
    assert_eq!(gc.stats().commits.load(Ordering::Relaxed), 200);
    assert!((1..=200).contains(&flushes));
    // A refusal is its batch's alone; the ones around it go through.
    let (a, b) = (UserId::generate(), UserId::generate());
    let taken = gc.submit(create(ids[0]), Vec::new(), None);
    let fine = gc.submit(create(a), Vec::new(), None);
    let failures = Arc::new(AtomicU64::new(0));
    let f = Arc::clone(&failures);
    let stale = gc.submit(
        Batch::of(Op::PutUser {
            id: b,
            record: b"r".to_vec(),
            expect: 1,
            revision: 2,
            tier: None,
        }),
        vec![(
            AuditActor::Operator,
            AuditAction::UserDeleted { user: b },
            Timestamp::EPOCH,
        )],
        Some(Box::new(move || {
            f.fetch_add(1, Ordering::Relaxed);
        })),
    );
    assert_eq!(taken.wait().await, Outcome::Refused(Applied::EmailTaken));
    assert_eq!(fine.wait().await, Outcome::Durable);
    assert!(matches!(
        stale.wait().await,
        Outcome::Refused(Applied::Stale { .. })
    ));
    assert_eq!(failures.load(Ordering::Relaxed), 1, "told of its refusal");
    assert!(
        store.audit_after(0, 10).unwrap().is_empty(),
        "its record went nowhere"
    );
    // Audit records chain in the order their batches were applied.
    let audited = gc.submit(
        create(b),
        vec![(
            AuditActor::Operator,
            AuditAction::UserImported { user: b },
            Timestamp::EPOCH,
        )],
        None,
    );
    assert_eq!(audited.wait().await, Outcome::Durable);
    assert_eq!(crate::store::audit::verify(store.as_ref()), Ok(1));
    // Callbacks run after the flush, in registration order, knowing their batch.
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    for i in 0..50 {
        let seen = Arc::clone(&seen);
        let after = (i == 7).then(|| taken.clone());
        gc.then(after, move |r| seen.lock().unwrap().push((i, r.is_ok())));
    }
    gc.commit().await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let expected: Vec<_> = (0..50).map(|i| (i, i != 7)).collect();
    assert_eq!(seen, expected);
    // A callback that panics takes nothing down with it: the writes behind it are
    // still answered.
    gc.then(None, |_| panic!("a careless callback"));
    let after = gc.submit(create(UserId::generate()), Vec::new(), None);
    assert_eq!(after.wait().await, Outcome::Durable);
    gc.commit().await.unwrap();
    drop(gc);
    drop(store); // the writer released its handle when `gc` was dropped
    let reopened = SledStore::open(dir.path(), 1 << 20).unwrap();
    for id in ids.into_iter().chain([a, b]) {
        assert!(reopened.load_user(id).unwrap().is_some());
    }
}
