//! Engine tests that need to reach inside: crashing an actor on purpose.

use std::sync::Arc;
use std::time::Duration;

use super::user::Crash;
use super::{EngineError, UserManager};
use crate::config::{Config, DEFAULT_TOML, parse_toml};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_from_a_stale_actor_is_refused_and_the_user_reloads_from_the_store() {
    use crate::store::{Batch, Op};
    let dir = tempfile::tempdir().unwrap();
    let m = UserManager::open(config(dir.path())).unwrap();
    let a = m
        .create_user("fenced@x.io", PW, UserTier::Free, ProfilePatch::default())
        .await
        .unwrap();
    m.get_user(a.id).await.unwrap();
    // Someone else (another node, in a cluster) writes the user meanwhile: its record
    // moves to revision 2 behind the live actor's back.
    let e = m.engine();
    let (revision, record) = e.store.load_user_at(a.id).unwrap().unwrap();
    assert_eq!(revision, 1);
    let key = e.keys.data_key(e.store.as_ref(), a.id).unwrap().unwrap();
    let mut theirs = super::state::decode(&record, &key, a.id).unwrap();
    theirs.profile.make_mut().display_name = "Written Elsewhere".into();
    let op = Op::PutUser {
        id: a.id,
        record: super::state::encode(&theirs, &key, a.id).unwrap(),
        revision: 2,
        tier: None,
    };
    e.store.apply(&Batch::of(op)).unwrap();
    // The live actor's write is made from revision 1: the store refuses it, nothing of
    // it lands, and the actor gives way.
    let mine = ProfilePatch {
        display_name: Some("Written Here".into()),
        ..Default::default()
    };
    let refused = m.update_user_profile(a.id, mine.clone()).await;
    assert!(
        matches!(refused, Err(EngineError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(
        m.get_user(a.id).await.unwrap().display_name,
        "Written Elsewhere",
        "the next request reads the stored record"
    );
    // From the fresh copy, writes go through again.
    let p = m.update_user_profile(a.id, mine).await.unwrap();
    assert_eq!(p.display_name, "Written Here");
    assert_eq!(e.store.load_user_at(a.id).unwrap().unwrap().0, 3);
    m.shutdown().await.unwrap();
}
