//! Engine tests that need to reach inside: crashing an actor on purpose.

use std::sync::Arc;
use std::time::Duration;

use super::state::UserState;
use super::user::{Crash, UserActor};
use super::{EngineError, UserManager};
use crate::config::{Config, DEFAULT_TOML, parse_toml};
use crate::domain::ids::UserId;
use crate::domain::profile::ProfilePatch;
use crate::domain::tier::UserTier;
use crate::domain::time::{ManualClock, Timestamp};

const PW: &str = "correct horse battery staple";

fn config(dir: &std::path::Path) -> Config {
    let layers = vec![
        parse_toml("default", DEFAULT_TOML).unwrap(),
        parse_toml("test", include_str!("../../config/test.toml")).unwrap(),
        parse_toml(
            "here",
            &format!(
                "[store]\ndata_dir = {:?}\n[tiers.free]\nshards = 1\n",
                dir.display().to_string()
            ),
        )
        .unwrap(),
    ];
    Config::from_layers(layers).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_actor_restarts_from_its_snapshot_and_its_shard_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let setup = super::Setup::new(config(dir.path())).clock(Arc::new(clock));
    let m = UserManager::open(setup).unwrap();
    let a = m
        .create_user("a@x.io", PW, UserTier::Free, ProfilePatch::default())
        .await
        .unwrap();
    let b = m
        .create_user("b@x.io", PW, UserTier::Free, ProfilePatch::default())
        .await
        .unwrap();
    let named = ProfilePatch {
        display_name: Some("Saved Name".into()),
        ..Default::default()
    };
    m.update_user_profile(a.id, named).await.unwrap();
    m.get_user(b.id).await.unwrap();
    assert_eq!(m.placement(a.id), m.placement(b.id), "one shard holds both");

    let addr = m.engine().directory.get(a.id).unwrap().addr;
    let crashed = addr.send(Crash).await;
    assert!(crashed.is_err(), "the crash closes the mailbox");

    // The neighbour on the same shard keeps answering.
    assert_eq!(m.get_user(b.id).await.unwrap().id, b.id);
    // The crashed user comes back with its last durable state, not the unsaved change.
    let back = m.get_user(a.id).await.unwrap();
    assert_eq!(back.display_name, "Saved Name");
    let restarts: u64 = m
        .ops()
        .shard_stats(&super::Principal::System("test"))
        .unwrap()
        .iter()
        .map(|s| s.restarts)
        .sum();
    assert_eq!(restarts, 1);
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_on_a_deleted_user_say_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let m = UserManager::open(config(dir.path())).unwrap();
    let a = m
        .create_user("gone@x.io", PW, UserTier::Premium, ProfilePatch::default())
        .await
        .unwrap();
    m.delete_user(a.id).await.unwrap();
    assert_eq!(m.get_user(a.id).await, Err(EngineError::NotFound));
    assert_eq!(m.delete_user(a.id).await, Err(EngineError::NotFound));
    tokio::time::timeout(Duration::from_secs(10), m.shutdown())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_kills_its_actor_is_refused_after_one_retry() {
    let dir = tempfile::tempdir().unwrap();
    let m = UserManager::open(config(dir.path())).unwrap();
    let a = m
        .create_user("poison@x.io", PW, UserTier::Free, ProfilePatch::default())
        .await
        .unwrap();
    let result = m.engine().call(a.id, Crash).await;
    assert!(
        matches!(result, Err(EngineError::Internal(_))),
        "{result:?}"
    );
    let restarts: u64 = m
        .ops()
        .shard_stats(&super::Principal::System("test"))
        .unwrap()
        .iter()
        .map(|s| s.restarts)
        .sum();
    assert_eq!(restarts, 2, "the first crash, and the one retry");
    // The user itself is fine afterwards.
    assert_eq!(m.get_user(a.id).await.unwrap().id, a.id);
    m.shutdown().await.unwrap();
}

/// A live user whose record someone else (another node, in a cluster) then rewrites
/// behind its actor's back with `change`.
async fn written_behind_its_back(
    m: &UserManager,
    email: &str,
    change: impl FnOnce(&mut UserState),
) -> UserId {
    use crate::store::{Batch, Op};
    let a = m
        .create_user(email, PW, UserTier::Free, ProfilePatch::default())
        .await
        .unwrap();
    m.get_user(a.id).await.unwrap();
    let e = m.engine();
    let (revision, record) = e.store.load_user_at(a.id).unwrap().unwrap();
    assert_eq!(revision >> 32, 1, "written once");
    let key = e.keys.data_key(e.store.as_ref(), a.id).unwrap().unwrap();
    let mut theirs = super::state::decode(&record, &key, a.id).unwrap();
    change(&mut theirs);
    let op = Op::PutUser {
        id: a.id,
        record: super::state::encode(&theirs, &key, a.id).unwrap(),
        expect: revision,
        revision: crate::store::next_revision(revision),
        tier: None,
    };
    e.store.apply(&Batch::of(op)).unwrap();
    a.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_from_a_stale_actor_is_refused_and_the_user_reloads_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let m = UserManager::open(config(dir.path())).unwrap();
    let id = written_behind_its_back(&m, "fenced@x.io", |theirs| {
        theirs.profile.make_mut().display_name = "Written Elsewhere".into();
    })
    .await;
    let e = m.engine();
    // The live actor's write is made from revision 1: the store refuses it, nothing of
    // it lands, and the actor gives way.
    let mine = ProfilePatch {
        display_name: Some("Written Here".into()),
        ..Default::default()
    };
    let refused = m.update_user_profile(id, mine.clone()).await;
    assert!(
        matches!(refused, Err(EngineError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(
        m.get_user(id).await.unwrap().display_name,
        "Written Elsewhere",
        "the next request reads the stored record"
    );
    // From the fresh copy, writes go through again.
    let p = m.update_user_profile(id, mine).await.unwrap();
    assert_eq!(p.display_name, "Written Here");
    assert_eq!(e.store.load_user_at(id).unwrap().unwrap().0 >> 32, 3);
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_actor_cannot_count_its_way_back_into_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let m = UserManager::open(config(dir.path())).unwrap();
    let id = written_behind_its_back(&m, "fenced2@x.io", |theirs| {
        theirs.profile.make_mut().language = "fr".into();
    })
    .await;
    // Many changes reach the stale actor before it learns of its first refusal. Each
    // one after the first is made from the revision before it, which the store never
    // held, so none of them lands over the other writer's change.
    let names: Vec<_> = (0..8)
        .map(|i| ProfilePatch {
            display_name: Some(format!("Stale {i}")),
            ..Default::default()
        })
        .collect();
    let results =
        futures_util::future::join_all(names.into_iter().map(|p| m.update_user_profile(id, p)))
            .await;
    assert!(
        matches!(results[0], Err(EngineError::Conflict(_))),
        "{:?}",
        results[0]
    );
    // A change the actor took after it reloaded may land (made from the fresh copy);
    // one made from the stale copy would have put the old language back.
    let stored = m.get_user(id).await.unwrap();
    assert_eq!(stored.language, "fr", "the other writer's change is kept");
    for r in results.iter().flatten() {
        assert_eq!(
            r.language, "fr",
            "a change that landed was made from the fresh copy"
        );
    }
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_an_older_format_is_rewritten_when_its_actor_leaves() {
    use crate::store::codec;
    let dir = tempfile::tempdir().unwrap();
    let m = UserManager::open(config(dir.path())).unwrap();
    // A user whose record is then put back in format 5 behind its (clean) actor, which
    // leaves at shutdown without writing.
    let id = written_behind_its_back(&m, "old@x.io", |_| {}).await;
    let e = m.engine();
    let (revision, record) = e.store.load_user_at(id).unwrap().unwrap();
    let key = e.keys.data_key(e.store.as_ref(), id).unwrap().unwrap();
    let state = super::state::decode(&record, &key, id).unwrap();
    let v5 = super::state::UserStateV5::of(&state);
    let op = crate::store::Op::PutUser {
        id,
        record: codec::seal_as_version(5, &v5, &key, id.as_bytes()).unwrap(),
        expect: revision,
        revision: crate::store::next_revision(revision),
        tier: None,
    };
    e.store.apply(&crate::store::Batch::of(op)).unwrap();
    m.shutdown().await.unwrap();
    drop(m);
    let version = |m: &UserManager| {
        let (_, record) = m.engine().store.load_user_at(id).unwrap().unwrap();
        codec::version_of(&record)
    };

    // Read, not changed: the actor still writes it in the current format as it leaves.
    let m = UserManager::open(config(dir.path())).unwrap();
    assert_eq!(version(&m), Some(5));
    assert_eq!(m.get_user(id).await.unwrap().id, id);
    m.shutdown().await.unwrap();
    drop(m);
    let m = UserManager::open(config(dir.path())).unwrap();
    assert_eq!(version(&m), Some(codec::FORMAT_VERSION));
    m.shutdown().await.unwrap();
}

/// A live user actor runs as one tokio task: a 128-byte-aligned cell holding a header,
/// actix's context future (the actor inside it) and a trailer. With the future at most
/// 920 bytes the cell takes 1,024; one byte more and it takes 1,152 (mimalloc: 1,280),
/// a quarter of a gigabyte more with a million users live. A part that grows it belongs
/// behind a pointer (`user::rare`, `state::sparse`), or the goal in `BENCHMARKS.md`
/// must be measured again.
#[test]
fn a_live_user_actor_fits_a_one_kilobyte_task() {
    let future = size_of::<actix::dev::ContextFut<UserActor, actix::Context<UserActor>>>();
    assert!(
        future <= 920,
        "actix's future of a user actor is {future} bytes (actor {}), more than 920",
        size_of::<UserActor>()
    );
}
