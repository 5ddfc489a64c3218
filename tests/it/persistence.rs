//! Persistence: everything survives a restart, and a passivated user comes back with
//! identical state.

use std::time::Duration;

use roster::domain::profile::{ProfilePatch, QuotaKind};
use roster::domain::session::LoginContext;
use roster::{LoginOutcome, UserTier};

use crate::support::{PW, SYS, open, open_with_clock};

async fn login(m: &roster::UserManager, email: &str) -> String {
    match m
        .authenticate_user(email, PW, LoginContext::default())
        .await
        .unwrap()
    {
        LoginOutcome::Success(s) => s.token,
        other => panic!("login of {email} failed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_credentials_tiers_and_sessions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let mut expected = Vec::new();
    for (i, tier) in UserTier::ALL.into_iter().enumerate() {
        let email = format!("user{i}@example.com");
        let p = m
            .create_user(&email, PW, tier, ProfilePatch::default())
            .await
            .unwrap();
        // Enterprise is zero-trust: its login completes with a code by email.
        let token = crate::support::login_via_email(&m, dir.path(), &email).await;
        expected.push((email, p.id, token));
    }
    m.upgrade_user_tier(expected[0].1, UserTier::Premium)
        .await
        .unwrap();
    m.accounts()
        .record_usage(&SYS, expected[1].1, QuotaKind::StorageBytes, 4096)
        .await
        .unwrap();
    let before: Vec<_> = {
        let mut v = Vec::new();
        for (_, id, _) in &expected {
            v.push(m.get_user(*id).await.unwrap());
        }
        v
    };
    m.shutdown().await.unwrap();
    drop(m);

    let m = open(dir.path());
    assert_eq!(m.user_count(), 4);
    assert_eq!(m.live_users(), 0, "nothing is activated until asked for");
    for ((email, id, token), old) in expected.iter().zip(&before) {
        let now = m.get_user(*id).await.unwrap();
        assert_eq!(&now, old, "profile of {email}");
        assert!(
            m.login().validate(token).await.unwrap().is_some(),
            "session of {email}"
        );
        // The credential survived (and the second factor's channel works after a restart).
        crate::support::login_via_email(&m, dir.path(), email).await;
    }
    assert_eq!(
        m.get_user(expected[0].1).await.unwrap().tier,
        UserTier::Premium
    );
    assert_eq!(
        m.get_user(expected[1].1).await.unwrap().usage.storage_bytes,
        4096
    );
    m.shutdown().await.unwrap();
}

/// Lets the live users idle past `passivate_after` (60 s) and waits until they are gone;
/// says whether they wrote anything on their way out.
async fn passivate_idle(
    m: &roster::UserManager,
    clock: &roster::domain::time::ManualClock,
) -> bool {
    let before = m.metrics().snapshot_bytes.get();
    clock.advance(Duration::from_secs(61));
    m.sweep_now().await.unwrap();
    for _ in 0..200 {
        if m.live_users() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(m.live_users(), 0, "passivated");
    m.metrics().snapshot_bytes.get() > before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_actors_passivate_and_reactivate_with_identical_state() {
    let dir = tempfile::tempdir().unwrap();
    let (m, clock) = open_with_clock(dir.path(), "[engine]\npassivate_after_secs = 60\n");
    let u = m
        .create_user(
            "idle@example.com",
            PW,
            UserTier::Premium,
            ProfilePatch::default(),
        )
        .await
        .unwrap();
    let token = login(&m, "idle@example.com").await;
    let live = m.get_user(u.id).await.unwrap();
    let sessions = m.sessions().list(&SYS, u.id).await.unwrap();
    assert_eq!(m.live_users(), 1);

    clock.advance(Duration::from_secs(30));
    m.sweep_now().await.unwrap();
    m.get_user(u.id).await.unwrap(); // the tick is handled before this request
    assert_eq!(m.live_users(), 1, "not idle long enough");

    passivate_idle(&m, &clock).await;
    let passivations: u64 = m
        .ops()
        .shard_stats(&SYS)
        .unwrap()
        .iter()
        .map(|s| s.passivations)
        .sum();
    assert_eq!(passivations, 1);

    assert_eq!(m.get_user(u.id).await.unwrap(), live);
    assert_eq!(
        m.sessions().list(&SYS, u.id).await.unwrap().len(),
        sessions.len()
    );
    assert!(m.login().validate(&token).await.unwrap().is_some());
    let activations: u64 = m
        .ops()
        .shard_stats(&SYS)
        .unwrap()
        .iter()
        .map(|s| s.activations)
        .sum();
    assert_eq!(activations, 2);

    // An actor that changed nothing since its activation leaves without a write; one
    // with unsaved soft state (the validation above slid the session) writes it.
    assert!(
        passivate_idle(&m, &clock).await,
        "the slid session is written"
    );
    assert_eq!(m.get_user(u.id).await.unwrap(), live, "read, not changed");
    assert!(!passivate_idle(&m, &clock).await, "nothing to write");
    // Nor does a shutdown write a live user with nothing unsaved.
    m.get_user(u.id).await.unwrap();
    let before = m.metrics().snapshot_bytes.get();
    m.shutdown().await.unwrap();
    assert_eq!(m.metrics().snapshot_bytes.get(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_record_is_reported_by_user_and_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let good = m
        .create_user(
            "good@example.com",
            PW,
            UserTier::Free,
            ProfilePatch::default(),
        )
        .await
        .unwrap();
    let bad = m
        .create_user(
            "bad@example.com",
            PW,
            UserTier::Free,
            ProfilePatch::default(),
        )
        .await
        .unwrap();
    m.shutdown().await.unwrap();
    drop(m);
    {
        // Flip a byte in the bad user's record behind the engine's back.
        let db = sled::open(dir.path().join("sled")).unwrap();
        let tree = db.open_tree("roster").unwrap();
        let mut key = vec![b'u'];
        key.extend_from_slice(bad.id.as_bytes());
        let mut rec = tree.get(&key).unwrap().unwrap().to_vec();
        let last = rec.len() - 1;
        rec[last] ^= 0xff;
        tree.insert(key, rec).unwrap();
        db.flush().unwrap();
    }
    let m = open(dir.path());
    let report = m.verify_store();
    assert_eq!(report.ok, 1);
    assert_eq!(report.corrupt.len(), 1);
    assert_eq!(report.corrupt[0].0, bad.id);
    match m.get_user(bad.id).await {
        Err(roster::EngineError::Corrupt { user, .. }) => assert_eq!(user, bad.id),
        other => panic!("expected a corrupt-record error, got {other:?}"),
    }
    assert_eq!(m.get_user(good.id).await.unwrap().id, good.id);
    m.shutdown().await.unwrap();
}
