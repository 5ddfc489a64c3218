//! Concurrency: one winner per email, and no lost updates on one user.

use std::collections::HashSet;

use roster::domain::profile::{ProfilePatch, QuotaDecision, QuotaKind};
use roster::domain::settings::AIPreferencesPatch;
use roster::{EngineError, UserTier};

use crate::support::{PW, SYS, open};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_creates_over_fifty_emails_make_fifty_users() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let m = m.clone();
            // Vary case too: the index is case-insensitive.
            let email = if i % 2 == 0 {
                format!("fan{}@example.com", i % 50)
            } else {
                format!("FAN{}@Example.com", i % 50)
            };
            tokio::spawn(async move {
                m.create_user(&email, PW, UserTier::Free, ProfilePatch::default())
                    .await
            })
        })
        .collect();
    let (mut created, mut taken) = (Vec::new(), 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(p) => created.push(p),
            Err(EngineError::EmailTaken) => taken += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(created.len(), 50);
    assert_eq!(taken, 950);
    let emails: HashSet<_> = created.iter().map(|p| p.email.normalized()).collect();
    assert_eq!(emails.len(), 50);
    assert_eq!(m.user_count(), 50);
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_to_one_user_lose_none() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let u = m
        .create_user(
            "busy@example.com",
            PW,
            UserTier::Premium,
            ProfilePatch::default(),
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..300u32 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            // Three kinds of change interleave: counted usage, and two disjoint fields.
            match i % 3 {
                0 => {
                    let d = m
                        .accounts()
                        .record_usage(&SYS, u.id, QuotaKind::StorageBytes, 1000)
                        .await
                        .unwrap();
                    assert!(matches!(d, QuotaDecision::Accepted { .. }));
                }
                1 => {
                    let p = ProfilePatch {
                        display_name: Some(format!("name-{i}")),
                        ..Default::default()
                    };
                    m.update_user_profile(u.id, p).await.unwrap();
                }
                _ => {
                    let p = ProfilePatch {
                        ai_preferences: Some(AIPreferencesPatch {
                            learning_rate: Some(f64::from(i) / 1000.0),
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    m.update_user_profile(u.id, p).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let p = m.get_user(u.id).await.unwrap();
    assert_eq!(
        p.usage.storage_bytes,
        100 * 1000,
        "every counted change is there"
    );
    assert!(
        p.display_name.starts_with("name-"),
        "a concurrent write did not clobber the name"
    );
    assert_ne!(p.ai_preferences.learning_rate, 0.1, "nor the learning rate");
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_moves_under_load_keep_one_actor_and_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let u = m
        .create_user(
            "mover@example.com",
            PW,
            UserTier::Premium,
            ProfilePatch::default(),
        )
        .await
        .unwrap();
    let tasks = spawn_storage_updates(&m, u.id, 400);
    // Meanwhile the user moves between two unlimited tiers, and so between registries.
    let mover = {
        let m = m.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                let tier = if i % 2 == 0 {
                    UserTier::Enterprise
                } else {
                    UserTier::Premium
                };
                m.upgrade_user_tier(u.id, tier).await.unwrap();
            }
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    mover.await.unwrap();
    let p = m.get_user(u.id).await.unwrap();
    assert_eq!(
        p.usage.storage_bytes, 4000,
        "an update applied by a second live actor would be lost"
    );
    assert_eq!(p.tier, UserTier::Premium);
    // The shards count departures as they handle them: a sweep of every shard is a
    // barrier behind every departure sent before it.
    m.sweep_now().await.unwrap();
    let resident: u64 = m
        .ops()
        .shard_stats(&SYS)
        .unwrap()
        .iter()
        .map(|s| s.resident)
        .sum();
    assert_eq!(resident, 1, "exactly one live actor for the user");
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passivation_under_load_loses_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let (m, clock) =
        crate::support::open_with_clock(dir.path(), "[engine]\npassivate_after_secs = 1\n");
    let u = m
        .create_user(
            "idle@example.com",
            PW,
            UserTier::Premium,
            ProfilePatch::default(),
        )
        .await
        .unwrap();
    let tasks = spawn_storage_updates(&m, u.id, 400);
    // Meanwhile the actor keeps being found idle and passivated.
    for _ in 0..20 {
        clock.advance(std::time::Duration::from_secs(2));
        m.sweep_now().await.unwrap();
        tokio::task::yield_now().await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(m.get_user(u.id).await.unwrap().usage.storage_bytes, 4000);
    // The shard counts a passivation when the stopped actor's word reaches it, which on
    // a loaded machine may be after the last update: waited for (no sweep is added).
    let passivations = || -> u64 {
        m.ops()
            .shard_stats(&SYS)
            .unwrap()
            .iter()
            .map(|s| s.passivations)
            .sum()
    };
    for _ in 0..500 {
        if passivations() >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        passivations() >= 1,
        "the actor was passivated at least once under load"
    );
    m.shutdown().await.unwrap();
}

/// Starts `n` concurrent updates adding 10 storage bytes each to `id`; each task checks
/// its update was accepted.
fn spawn_storage_updates(
    m: &roster::UserManager,
    id: roster::domain::ids::UserId,
    n: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move {
                let d = m
                    .accounts()
                    .record_usage(&SYS, id, QuotaKind::StorageBytes, 10)
                    .await
                    .unwrap();
                assert!(matches!(d, QuotaDecision::Accepted { .. }));
            })
        })
        .collect()
}

/// The periodic sweep ticks its actors a slice at a time (so a million live actors are
/// not all ticked at once ahead of the requests), and still reaches every one within an
/// interval: with more live users than slices, all idle ones passivate on the timer alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_paced_sweep_reaches_every_live_actor() {
    use roster::security::password::{Argon2Worker, params};
    let dir = tempfile::tempdir().unwrap();
    let (m, clock) = crate::support::open_with_clock(
        dir.path(),
        "[engine]\npassivate_after_secs = 1\nsweep_interval_secs = 1\n",
    );
    let phc = Argon2Worker::new(params(m.config().passwords.params).unwrap())
        .unwrap()
        .hash(PW)
        .unwrap();
    for batch in 0..2 {
        let users = (0..150)
            .map(|i| roster::engine::ImportedUser {
                email: format!("idle{batch}-{i}@example.com"),
                password_hash: phc.clone(),
                tier: Some(UserTier::Free),
                profile_data: None,
                created_at: None,
            })
            .collect();
        for made in m.accounts().import(&SYS, users).await.unwrap() {
            m.get_user(made.unwrap().id).await.unwrap();
        }
    }
    assert_eq!(m.live_users(), 300);
    clock.advance(std::time::Duration::from_secs(5));
    // Two intervals of real time are enough; allow many more on a slow machine.
    let mut waited = 0;
    while m.live_users() > 0 && waited < 200 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(
        m.live_users(),
        0,
        "every idle actor was ticked and passivated"
    );
    m.shutdown().await.unwrap();
}
