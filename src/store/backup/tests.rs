//! Backups of a store that is being written, restored: a point in time, whole batches,
//! erasures applied again.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::*;
use crate::domain::ids::UserId;
use crate::domain::tier::UserTier;
use crate::store::{Applied, CatalogStore, SledStore, UserStore};

const PAIRS: u64 = 400;

/// A batch that writes generation `g` to both tracks of pair `i`: a restore must never
/// hold one without the other.
fn pair(i: u64, g: u64) -> Batch {
    let mut b = Batch::default();
    for side in ["a", "b"] {
        b.push(Op::PutTrack {
            id: format!("{side}{i:04}"),
            record: g.to_be_bytes().to_vec(),
        });
    }
    b
}

fn generation(s: &SledStore, side: &str, i: u64) -> Option<u64> {
    let v = s.track(&format!("{side}{i:04}")).unwrap()?;
    Some(u64::from_be_bytes(v.try_into().unwrap()))
}

fn header() -> Header {
    Header {
        format: format::VERSION,
        created_at_ms: 0,
        master_key_fingerprint: "test".into(),
        backend: "sled".into(),
        roster_version: "test".into(),
    }
}

fn user(s: &SledStore, n: u8) -> UserId {
    let id = UserId::generate();
    let created = s.apply(&Batch::of(Op::CreateUser {
        id,
        revision: 1,
        email_index: [n; 32],
        tier: UserTier::Free,
        wrapped_key: vec![n; 8],
        record: vec![n; 16],
    }));
    assert_eq!(created.unwrap(), Applied::Done);
    id
}

#[test]
fn a_backup_under_writes_restores_one_point_in_time_with_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let live = Arc::new(SledStore::open(dir.path(), 8 << 20).unwrap());
    for i in 0..PAIRS {
        live.apply(&pair(i, 1)).unwrap();
    }
    let kept = user(&live, 1);
    let gone = user(&live, 2);
    live.apply(&Batch::of(Op::DeleteUser {
        id: gone,
        email_indexes: vec![[2; 32]],
        at: crate::domain::time::Timestamp::from_millis(1),
    }))
    .unwrap();
    // Writers bump pairs and drop some while the backup runs; every generation written
    // before the backup starts is the floor of what it must hold.
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(2));
    let done = Arc::new(AtomicU64::new(0));
    let writer = {
        let (live, stop, next, done) = (
            Arc::clone(&live),
            Arc::clone(&stop),
            Arc::clone(&next),
            Arc::clone(&done),
        );
        std::thread::spawn(move || {
            let mut writes = 0u64;
            while !stop.load(Ordering::Relaxed) || writes < 200 {
                let g = next.fetch_add(1, Ordering::SeqCst);
                let i = (g * 7919) % PAIRS;
                if g.is_multiple_of(7) {
                    // A removal of nothing: sled reserves an event for it and drops it.
                    live.apply(&Batch::of(Op::DropTrack {
                        id: "absent".into(),
                    }))
                    .unwrap();
                } else if writes == 500 {
                    // A deletion during the scan (it removes keys that are not there).
                    let id = user(&live, 9);
                    live.apply(&Batch::of(Op::DeleteUser {
                        id,
                        email_indexes: vec![[9; 32]],
                        at: crate::domain::time::Timestamp::from_millis(1),
                    }))
                    .unwrap();
                } else if g.is_multiple_of(13) {
                    let mut b = Batch::default();
                    b.push(Op::DropTrack {
                        id: format!("a{i:04}"),
                    });
                    b.push(Op::DropTrack {
                        id: format!("b{i:04}"),
                    });
                    live.apply(&b).unwrap();
                } else {
                    live.apply(&pair(i, g)).unwrap();
                }
                writes += 1;
                done.fetch_add(1, Ordering::SeqCst);
            }
            writes
        })
    };
    while next.load(Ordering::SeqCst) < 50 {
        std::thread::yield_now();
    }
    let floor: Vec<Option<u64>> = (0..PAIRS).map(|i| generation(&live, "a", i)).collect();
    // The scan waits, a few rows in, for 1,500 more writes (more than sled queues for a
    // subscriber): they happen during it.
    let mut w = BackupWriter::new(Vec::new(), &header()).unwrap();
    let mut emitted = 0;
    let mut at_the_cut = Vec::new();
    let cut = live
        .backup(
            &mut |c| {
                emitted += 1;
                if emitted == 10 {
                    let (target, deadline) = (
                        done.load(Ordering::SeqCst) + 1500,
                        std::time::Instant::now() + std::time::Duration::from_secs(20),
                    );
                    while done.load(Ordering::SeqCst) < target
                        && std::time::Instant::now() < deadline
                    {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
                match c {
                    Copied::Row(k, v) => w.row(k, v),
                    Copied::Change(k, v) => w.change(k, v),
                }
                .map_err(|e| StoreError::Io(e.to_string()))
            },
            &mut || at_the_cut = live.tracks().map(Result::unwrap).collect(),
        )
        .unwrap();
    let (bytes, size) = w.finish(cut.audit_records, 7).unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(size, bytes.len() as u64);

    let restored_dir = tempfile::tempdir().unwrap();
    let restored = SledStore::open(restored_dir.path(), 8 << 20).unwrap();
    let r = restore(&bytes[..], &restored, &HashSet::new()).unwrap();
    assert_eq!((r.users, r.erased_again, r.trailer.cut_at_ms), (1, 0, 7));
    assert_eq!(
        restored.tracks().map(Result::unwrap).collect::<Vec<_>>(),
        at_the_cut,
        "the restored catalog is the live one at the point in time"
    );
    assert!(
        r.trailer.changes >= 1500,
        "the writes during the scan are in it: {:?}",
        r.trailer
    );
    for i in 0..PAIRS {
        let (a, b) = (generation(&restored, "a", i), generation(&restored, "b", i));
        assert_eq!(a, b, "pair {i} is torn: a batch is half in the backup");
        // A pair dropped after the floor was read may be absent; one present is never
        // older than before the backup started.
        if let (Some(now), Some(Some(before))) = (a, floor.get(i as usize)) {
            assert!(now >= *before, "pair {i} went back from {before} to {now}");
        }
    }
    assert_eq!(restored.load_user(kept).unwrap(), Some(vec![1; 16]));
    assert_eq!(restored.lookup_email(&[1; 32]).unwrap(), Some(kept));
    assert_eq!(restored.route_of(gone).unwrap(), None);
    let (tombstones, _) = erasures(&bytes[..]).unwrap();
    assert!(
        tombstones.contains(&gone) && tombstones.len() == 2,
        "the tombstones from before and during the scan are in the backup: {tombstones:?}"
    );
    // No spill file is left in the live data directory.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".changes"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_user_erased_since_the_backup_is_erased_again_and_the_rest_restored() {
    let dir = tempfile::tempdir().unwrap();
    let live = SledStore::open(dir.path(), 8 << 20).unwrap();
    let (stays, erased) = (user(&live, 3), user(&live, 4));
    let (old, _, _) = write(&live, Vec::new(), &header(), || 1).unwrap();
    live.apply(&Batch::of(Op::DeleteUser {
        id: erased,
        email_indexes: vec![[4; 32]],
        at: crate::domain::time::Timestamp::from_millis(1),
    }))
    .unwrap();
    let (newer, _, _) = write(&live, Vec::new(), &header(), || 2).unwrap();

    let into = tempfile::tempdir().unwrap();
    let restored = SledStore::open(into.path(), 8 << 20).unwrap();
    let r = restore(&old[..], &restored, &erasures(&newer[..]).unwrap().0).unwrap();
    assert_eq!((r.users, r.erased_again), (1, 1));
    assert_eq!(
        restored.route_of(erased).unwrap(),
        None,
        "its data key is gone"
    );
    assert_eq!(restored.load_user(erased).unwrap(), None);
    assert_eq!(restored.lookup_email(&[4; 32]).unwrap(), None);
    assert_eq!(restored.load_user(stays).unwrap(), Some(vec![3; 16]));
    // Into a store that holds something: refused, nothing written.
    let again = restore(&old[..], &restored, &HashSet::new()).unwrap_err();
    assert!(again.to_string().contains("not empty"), "{again}");
    assert_eq!(restored.user_count(), 1);
}
