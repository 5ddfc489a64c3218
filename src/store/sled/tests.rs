//! The sled backend: atomic batches, refusals as values, revisions, email claims, rewrites, the lock.

use super::*;
use crate::store::{Applied, Batch, Op, Store};

fn create(
    s: &SledStore,
    id: UserId,
    index: [u8; 32],
    tier: UserTier,
    key: &[u8],
    rec: &[u8],
) -> Applied {
    s.apply(&Batch::of(Op::CreateUser {
        id,
        revision: 1,
        email_index: index,
        tier,
        wrapped_key: key.to_vec(),
        record: rec.to_vec(),
    }))
    .unwrap()
}

/// Writes `rec` as `revision`, made from `expect`.
fn put(
    s: &SledStore,
    id: UserId,
    (expect, revision): (Revision, Revision),
    tier: Option<UserTier>,
    rec: &[u8],
) -> Applied {
    s.apply(&Batch::of(Op::PutUser {
        id,
        record: rec.to_vec(),
        expect,
        revision,
        tier,
    }))
    .unwrap()
}

#[test]
fn create_claims_the_email_once_and_delete_frees_it_and_shreds_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path(), 1 << 20).unwrap();
    let a = UserId::generate();
    let b = UserId::generate();
    let x = [7u8; 32];
    assert_eq!(
        create(&s, a, x, UserTier::Free, b"ka", b"ra"),
        Applied::Done
    );
    assert_eq!(
        create(&s, b, x, UserTier::Vip, b"kb", b"rb"),
        Applied::EmailTaken
    );
    assert_eq!(s.load_user(b).unwrap(), None, "loser wrote nothing");
    assert_eq!(s.load_key(b).unwrap(), None, "loser wrote no key");
    assert_eq!(s.lookup_email(&x).unwrap(), Some(a));
    assert_eq!(s.load_key(a).unwrap().as_deref(), Some(&b"ka"[..]));
    assert_eq!(s.tier_of(a).unwrap(), Some(UserTier::Free));
    assert_eq!(
        put(&s, a, (1, 2), Some(UserTier::Premium), b"ra2"),
        Applied::Done
    );
    assert_eq!(s.tier_of(a).unwrap(), Some(UserTier::Premium));
    assert_eq!(s.load_user(a).unwrap().as_deref(), Some(&b"ra2"[..]));
    assert_eq!(s.user_count(), 1);
    assert_eq!(s.scan_users().count(), 1, "the key entry is not a user");
    assert_eq!(s.scan_keys().count(), 1);
    assert_eq!(
        s.route_of(a).unwrap(),
        Some((UserTier::Premium, Some(b"ka".to_vec()))),
        "a tier change keeps the data key"
    );
    assert_eq!(s.route_of(b).unwrap(), None);
    assert!(
        !s.replace_key(a, b"stale", b"k2").unwrap(),
        "CAS on a stale value"
    );
    assert!(s.replace_key(a, b"ka", b"ka2").unwrap());
    assert_eq!(s.load_key(a).unwrap().as_deref(), Some(&b"ka2"[..]));
    s.apply(&Batch::of(Op::ArchiveEvent {
        user: a,
        seq: 1,
        blob: b"e1".to_vec(),
    }))
    .unwrap();
    s.apply(&Batch::of(Op::DeleteUser {
        id: a,
        email_indexes: vec![x],
        at: crate::domain::time::Timestamp::from_millis(1),
    }))
    .unwrap();
    assert_eq!(s.lookup_email(&x).unwrap(), None);
    assert_eq!(s.load_user(a).unwrap(), None);
    assert_eq!(s.load_key(a).unwrap(), None, "the data key is destroyed");
    assert_eq!(s.tier_of(a).unwrap(), None);
    assert_eq!(s.scan_users().count(), 0);
    assert_eq!(s.scan_keys().count(), 0);
    assert_eq!(
        s.scan_security_events().count(),
        0,
        "its archive went with it"
    );
    s.flush().unwrap();
}

#[test]
fn email_claims_move_only_to_a_free_key_and_go_only_with_their_user() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path(), 1 << 20).unwrap();
    let (a, b) = (UserId::generate(), UserId::generate());
    let (old_a, new_a, b_key) = ([1; 32], [2; 32], [3; 32]);
    create(&s, a, old_a, UserTier::Free, b"ka", b"ra");
    create(&s, b, b_key, UserTier::Free, b"kb", b"rb");
    let mv = |from, to| {
        s.apply(&Batch::of(Op::MoveEmailIndex { id: a, from, to }))
            .unwrap()
    };
    // Onto a look-alike's claim: refused, nothing moves.
    assert_eq!(mv(old_a, b_key), Applied::EmailTaken);
    assert_eq!(s.lookup_email(&old_a).unwrap(), Some(a));
    assert_eq!(s.lookup_email(&b_key).unwrap(), Some(b));
    // Onto a free key: moved.
    assert_eq!(mv(old_a, new_a), Applied::Done);
    assert_eq!(s.lookup_email(&old_a).unwrap(), None);
    assert_eq!(s.lookup_email(&new_a).unwrap(), Some(a));
    // A deletion naming a claim of someone else's leaves it alone.
    s.apply(&Batch::of(Op::DeleteUser {
        id: a,
        email_indexes: vec![new_a, b_key],
        at: crate::domain::time::Timestamp::from_millis(1),
    }))
    .unwrap();
    assert_eq!(s.lookup_email(&new_a).unwrap(), None);
    assert_eq!(
        s.lookup_email(&b_key).unwrap(),
        Some(b),
        "b keeps its email"
    );
}

#[test]
fn a_write_from_an_old_revision_is_refused_as_a_value_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path(), 1 << 20).unwrap();
    let a = UserId::generate();
    create(&s, a, [1; 32], UserTier::Free, b"k", b"r1");
    assert_eq!(s.load_user_at(a).unwrap(), Some((1, b"r1".to_vec())));
    assert_eq!(put(&s, a, (1, 20), None, b"r2"), Applied::Done);
    // Another writer, made from revision 1 too, loses.
    assert_eq!(
        put(&s, a, (1, 21), None, b"other"),
        Applied::Stale {
            user: a,
            stored: Some(20)
        }
    );
    // And its next write, made from the revision it was refused, loses too: the
    // store never held that revision.
    assert_eq!(
        put(&s, a, (21, 31), None, b"other again"),
        Applied::Stale {
            user: a,
            stored: Some(20)
        }
    );
    assert_eq!(
        put(&s, a, (20, 30), Some(UserTier::Vip), b"other"),
        Applied::Done,
        "the next revision, from the stored one, is taken"
    );
    assert_eq!(
        put(&s, a, (20, 32), Some(UserTier::Vip), b"late"),
        Applied::Stale {
            user: a,
            stored: Some(30)
        },
        "a tier change checks the revision too"
    );
    assert_eq!(s.load_user_at(a).unwrap(), Some((30, b"other".to_vec())));
    assert_eq!(s.tier_of(a).unwrap(), Some(UserTier::Vip));
    // A refused op takes its whole batch with it.
    let mut batch = Batch::of(Op::Audit {
        seq: 1,
        record: b"audit".to_vec(),
    });
    batch.push(Op::PutUser {
        id: a,
        record: b"x".to_vec(),
        expect: 9,
        revision: 10,
        tier: None,
    });
    assert!(matches!(s.apply(&batch).unwrap(), Applied::Stale { .. }));
    assert!(
        s.audit_after(0, 10).unwrap().is_empty(),
        "the audit record went nowhere"
    );
    // A user that is gone cannot be written back.
    let b = UserId::generate();
    assert_eq!(
        put(&s, b, (0, 1), None, b"r"),
        Applied::Stale {
            user: b,
            stored: None
        }
    );
    // A value written before revisions counts as revision 0.
    s.tree
        .insert(id_key(USER, b), b"\x04legacy".as_slice())
        .unwrap();
    assert_eq!(
        s.load_user_at(b).unwrap(),
        Some((0, b"\x04legacy".to_vec()))
    );
    assert_eq!(put(&s, b, (0, 1), None, b"new"), Applied::Done);
}

#[test]
fn a_rewrite_keeps_every_entry_and_an_interrupted_one_is_put_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = UserId::generate();
    let s = SledStore::open(dir.path(), 1 << 20).unwrap();
    create(&s, a, [3; 32], UserTier::Vip, b"ka", b"ra");
    s.apply(&Batch::of(Op::Audit {
        seq: 1,
        record: b"audit".to_vec(),
    }))
    .unwrap();
    put(&s, a, (1, 2), None, b"ra2");
    let s = s.rewrite(1 << 20).unwrap();
    let check = |s: &SledStore| {
        assert_eq!(s.load_user(a).unwrap().as_deref(), Some(&b"ra2"[..]));
        assert_eq!(s.load_key(a).unwrap().as_deref(), Some(&b"ka"[..]));
        assert_eq!(s.lookup_email(&[3; 32]).unwrap(), Some(a));
        assert_eq!(s.tier_of(a).unwrap(), Some(UserTier::Vip));
        assert_eq!(s.audit_after(0, 10).unwrap(), vec![(1, b"audit".to_vec())]);
    };
    check(&s);
    drop(s);
    let (live, fresh, old) = (
        dir.path().join("sled"),
        dir.path().join(REWRITE_DIR),
        dir.path().join(OLD_DIR),
    );
    // A crash while copying: the copy is discarded.
    std::fs::create_dir_all(&fresh).unwrap();
    std::fs::write(fresh.join("junk"), b"partial").unwrap();
    let s = SledStore::open(dir.path(), 1 << 20).unwrap();
    check(&s);
    assert!(!fresh.exists());
    drop(s);
    // A crash between the two renames: the complete copy is installed.
    std::thread::sleep(LOCK_RETRY_PAUSE);
    std::fs::rename(&live, &fresh).unwrap();
    std::fs::create_dir_all(&old).unwrap();
    let s = SledStore::open(dir.path(), 1 << 20).unwrap();
    check(&s);
    assert!(!fresh.exists() && !old.exists());
}

#[test]
fn legacy_email_claims_move_to_the_blind_index() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path(), 1 << 20).unwrap();
    let a = UserId::generate();
    s.tree
        .insert(legacy_email_key("ann@x.io"), a.as_bytes().as_slice())
        .unwrap();
    assert_eq!(s.legacy_emails().unwrap(), vec![("ann@x.io".to_owned(), a)]);
    s.migrate_email("ann@x.io", &[1; 32], a).unwrap();
    assert!(s.legacy_emails().unwrap().is_empty());
    assert_eq!(s.lookup_email(&[1; 32]).unwrap(), Some(a));
}

#[test]
fn a_directory_held_by_an_open_store_is_refused_after_the_retries() {
    let dir = tempfile::tempdir().unwrap();
    let _held = SledStore::open(dir.path(), 1 << 20).unwrap();
    let started = std::time::Instant::now();
    let second = SledStore::open(dir.path(), 1 << 20);
    assert!(
        second.is_err(),
        "sled refuses a second open of a locked directory"
    );
    assert!(
        started.elapsed() >= LOCK_RETRY_PAUSE * LOCK_RETRIES,
        "it retried first"
    );
}

#[test]
fn the_keyed_scan_pairs_every_record_with_its_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path(), 1 << 20).unwrap();
    let mut ids: Vec<UserId> = (0..60).map(|_| UserId::generate()).collect();
    for (n, id) in ids.iter().enumerate() {
        let mut index = [0u8; 32];
        index[..8].copy_from_slice(&(n as u64).to_be_bytes());
        let key = format!("key-{n}");
        let rec = format!("record-{n}");
        create(
            &s,
            *id,
            index,
            UserTier::Free,
            key.as_bytes(),
            rec.as_bytes(),
        );
    }
    // A record written before encryption (a route without a key), and a record whose
    // route is missing: both scanned, without a key.
    let legacy = UserId::generate();
    s.tree.insert(id_key(TIER, legacy), &[0u8][..]).unwrap();
    s.tree.insert(id_key(USER, legacy), &b"legacy"[..]).unwrap();
    let orphan = UserId::generate();
    s.tree.insert(id_key(USER, orphan), &b"orphan"[..]).unwrap();
    // A route without a record is not a user.
    s.tree
        .insert(id_key(TIER, UserId::generate()), &b"\0k"[..])
        .unwrap();
    ids.extend([legacy, orphan]);
    let keyed: Vec<_> = s
        .scan_users_with_keys(None, None)
        .map(Result::unwrap)
        .collect();
    let looked_up: Vec<_> = s
        .scan_users()
        .map(|item| {
            let (id, rec) = item.unwrap();
            (id, s.load_key(id).unwrap(), rec)
        })
        .collect();
    assert_eq!(keyed.len(), ids.len());
    assert_eq!(keyed, looked_up);
    let find = |id: UserId| keyed.iter().find(|(i, _, _)| *i == id).unwrap();
    assert_eq!(find(legacy).1, None);
    assert_eq!(find(orphan).1, None);
    let n = find(ids[7]);
    assert_eq!(
        (n.1.as_deref(), n.2.as_slice()),
        (Some(&b"key-7"[..]), &b"record-7"[..])
    );
}

#[test]
fn a_listening_log_and_own_models_go_when_cleared_and_with_their_user() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path(), 1 << 20).unwrap();
    let (a, b) = (UserId::generate(), UserId::generate());
    create(&s, a, [1; 32], UserTier::Enterprise, b"ka", b"ra");
    create(&s, b, [2; 32], UserTier::Enterprise, b"kb", b"rb");
    let fill = |user: UserId| {
        let mut batch = Batch::default();
        for seq in [3u64, 1, 2] {
            batch.push(Op::PutListens {
                user,
                seq,
                blob: vec![seq as u8],
            });
        }
        batch.push(Op::PutCustomModels {
            user,
            blob: b"models".to_vec(),
        });
        s.apply(&batch).unwrap();
    };
    fill(a);
    fill(b);
    let seqs = |user| {
        s.listens(user)
            .unwrap()
            .into_iter()
            .map(|(q, _)| q)
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs(a), vec![1, 2, 3], "oldest first");
    s.apply(&Batch::of(Op::DropListens { user: a, seq: 2 }))
        .unwrap();
    assert_eq!(seqs(a), vec![1, 3]);
    // Cleared in a batch with a record write: both, atomically.
    let mut batch = Batch::of(Op::ClearListening { user: a });
    batch.push(Op::PutUser {
        id: a,
        record: b"ra2".to_vec(),
        expect: 1,
        revision: 2,
        tier: None,
    });
    assert_eq!(s.apply(&batch).unwrap(), Applied::Done);
    assert!(seqs(a).is_empty());
    assert_eq!(s.custom_models(a).unwrap(), None);
    assert_eq!(seqs(b), vec![1, 2, 3], "another user's stays");
    s.apply(&Batch::of(Op::DeleteUser {
        id: b,
        email_indexes: vec![[2; 32]],
        at: crate::domain::time::Timestamp::from_millis(1),
    }))
    .unwrap();
    assert!(seqs(b).is_empty(), "its log went with it");
    assert_eq!(s.custom_models(b).unwrap(), None);
}
