//! The seed's flow through `UserManager`: create → authenticate → update → upgrade →
//! delete, with the profile checked at each step.

use roster::domain::profile::ProfilePatch;
use roster::domain::session::LoginContext;
use roster::domain::settings::PersonalizationLevel;
use roster::engine::DenyReason;
use roster::{EngineError, LoginOutcome, UserTier};
use serde_json::json;

use crate::support::{PW, SYS, open};

fn context() -> LoginContext {
    LoginContext {
        ip_address: Some("192.168.1.1".parse().unwrap()),
        user_agent: Some("Mozilla/5.0".into()),
        device_id: Some("device_123".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_authenticate_update_upgrade_delete() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());

    let data = ProfilePatch::from_json(json!({
        "display_name": "John Doe", "language": "en", "timezone": "UTC"
    }))
    .unwrap();
    let created = m
        .create_user("User@Example.com", PW, UserTier::Premium, data)
        .await
        .unwrap();
    assert_eq!(created.display_name, "John Doe");
    assert_eq!(created.tier, UserTier::Premium);
    assert_eq!(created.email.as_str(), "User@Example.com");
    // Premium template defaults apply where profile_data is silent.
    assert_eq!(
        created.ai_preferences.personalization_level,
        PersonalizationLevel::Standard
    );

    // Emails are case-insensitive for login.
    let LoginOutcome::Success(login) = m
        .authenticate_user("user@example.COM", PW, context())
        .await
        .unwrap()
    else {
        panic!("login failed")
    };
    assert_eq!(login.user.id, created.id);
    assert_eq!(login.user.usage.logins, 1);
    let info = m
        .login()
        .validate(&login.token)
        .await
        .unwrap()
        .expect("token valid");
    assert_eq!((info.user_id, info.tier), (created.id, UserTier::Premium));
    let sessions = m.sessions().list(&SYS, created.id).await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].device_id.as_deref(), Some("device_123"));

    let wrong = m
        .authenticate_user("user@example.com", "not the password at all", context())
        .await;
    assert_eq!(
        wrong.unwrap(),
        LoginOutcome::Denied(DenyReason::InvalidCredentials)
    );
    let unknown = m
        .authenticate_user("nobody@example.com", PW, context())
        .await;
    assert_eq!(
        unknown.unwrap(),
        LoginOutcome::Denied(DenyReason::InvalidCredentials)
    );

    let updates = ProfilePatch::from_json(json!({
        "display_name": "Jane Doe",
        "ai_preferences": {"personalization_level": "advanced", "mood_detection_enabled": true}
    }))
    .unwrap();
    let updated = m.update_user_profile(created.id, updates).await.unwrap();
    assert_eq!(updated.display_name, "Jane Doe");
    assert_eq!(
        updated.ai_preferences.personalization_level,
        PersonalizationLevel::Advanced
    );
    assert!(updated.ai_preferences.mood_detection_enabled);
    assert_eq!(m.get_user(created.id).await.unwrap(), updated);

    let upgraded = m
        .upgrade_user_tier(created.id, UserTier::Enterprise)
        .await
        .unwrap();
    assert_eq!(upgraded.tier, UserTier::Enterprise);
    assert_eq!(upgraded.display_name, "Jane Doe");
    let insights = m.get_user_insights(created.id).await.unwrap();
    assert_eq!(insights.tier, UserTier::Enterprise);
    assert_eq!(insights.requests_per_hour, Some(50_000));
    // Enterprise is zero trust: the password-only session of the Premium login ended
    // with the move.
    assert_eq!(insights.active_sessions, 0);
    assert_eq!(insights.logins, 1);

    m.delete_user(created.id).await.unwrap();
    assert_eq!(m.get_user(created.id).await, Err(EngineError::NotFound));
    assert_eq!(m.login().validate(&login.token).await.unwrap(), None);
    let after = m
        .authenticate_user("user@example.com", PW, context())
        .await
        .unwrap();
    assert_eq!(after, LoginOutcome::Denied(DenyReason::InvalidCredentials));
    // The email is free again.
    m.create_user(
        "user@example.com",
        PW,
        UserTier::Free,
        ProfilePatch::default(),
    )
    .await
    .unwrap();
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_upgrade_moves_the_actor_to_the_new_registry_and_keeps_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let u = m
        .create_user(
            "mover@example.com",
            PW,
            UserTier::Free,
            ProfilePatch::default(),
        )
        .await
        .unwrap();
    let LoginOutcome::Success(login) = m
        .authenticate_user("mover@example.com", PW, context())
        .await
        .unwrap()
    else {
        panic!("login failed")
    };
    let (tier, _) = m.placement(u.id).expect("live after login");
    assert_eq!(tier, UserTier::Free);
    let resident = |m: &roster::UserManager, t: UserTier| -> u64 {
        m.ops()
            .shard_stats(&SYS)
            .unwrap()
            .iter()
            .filter(|s| s.tier == t)
            .map(|s| s.resident)
            .sum()
    };
    assert_eq!(resident(&m, UserTier::Free), 1);

    // Premium is not zero trust: a session opened on Free meets its policy.
    m.upgrade_user_tier(u.id, UserTier::Premium).await.unwrap();
    let info = m
        .login()
        .validate(&login.token)
        .await
        .unwrap()
        .expect("session survives the move");
    assert_eq!(info.tier, UserTier::Premium);
    assert_eq!(m.placement(u.id).map(|p| p.0), Some(UserTier::Premium));
    assert_eq!(resident(&m, UserTier::Premium), 1);
    // The old actor's shard counts it out when it has stopped, just after the move
    // answered (bounded: a failure, not a hang, if it never does).
    for _ in 0..500 {
        if resident(&m, UserTier::Free) == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(resident(&m, UserTier::Free), 0);
    // Policy follows the tier.
    assert_eq!(
        m.get_user_insights(u.id).await.unwrap().requests_per_hour,
        Some(5000)
    );
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_sessions_stop_validating_and_quota_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let u = m
        .create_user("q@example.com", PW, UserTier::Free, ProfilePatch::default())
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        match m
            .authenticate_user("q@example.com", PW, context())
            .await
            .unwrap()
        {
            LoginOutcome::Success(s) => tokens.push(s),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        m.sessions()
            .revoke(&SYS, u.id, tokens[0].session_id)
            .await
            .unwrap()
    );
    assert!(
        !m.sessions()
            .revoke(&SYS, u.id, tokens[0].session_id)
            .await
            .unwrap()
    );
    assert_eq!(m.login().validate(&tokens[0].token).await.unwrap(), None);
    assert!(
        m.login()
            .validate(&tokens[1].token)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        m.sessions()
            .revoke_others(
                &roster::engine::Principal::User(roster::engine::UserSession {
                    user: u.id,
                    session: tokens[2].session_id,
                }),
                u.id
            )
            .await
            .unwrap(),
        1
    );
    assert_eq!(m.login().validate(&tokens[1].token).await.unwrap(), None);
    assert!(
        m.login()
            .validate(&tokens[2].token)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(m.login().validate("garbage").await.unwrap(), None);

    use roster::domain::profile::{QuotaDecision, QuotaKind};
    for _ in 0..10 {
        assert!(matches!(
            m.accounts()
                .record_usage(&SYS, u.id, QuotaKind::Playlists, 1)
                .await
                .unwrap(),
            QuotaDecision::Accepted { .. }
        ));
    }
    assert!(matches!(
        m.accounts()
            .record_usage(&SYS, u.id, QuotaKind::Playlists, 1)
            .await
            .unwrap(),
        QuotaDecision::Exceeded {
            used: 10,
            limit: Some(10),
            ..
        }
    ));
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_lock_with_growing_delay_and_the_lock_clears_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (m, clock) = crate::support::open_with_clock(
        dir.path(),
        "[lockout]\nfree_attempts = 3\nbase_delay_secs = 10\nmax_delay_secs = 60\n",
    );
    m.create_user(
        "lock@example.com",
        PW,
        UserTier::Free,
        ProfilePatch::default(),
    )
    .await
    .unwrap();
    let attempt = |pw: &'static str| {
        let m = m.clone();
        async move {
            m.authenticate_user("lock@example.com", pw, context())
                .await
                .unwrap()
        }
    };
    for _ in 0..3 {
        assert_eq!(
            attempt("wrong password here").await,
            LoginOutcome::Denied(DenyReason::InvalidCredentials)
        );
    }
    let t0 = m.now();
    // The fourth failure locks for the base delay; then even the right password is refused.
    assert_eq!(
        attempt("wrong password here").await,
        LoginOutcome::Denied(DenyReason::InvalidCredentials)
    );
    assert_eq!(
        attempt(PW).await,
        LoginOutcome::Denied(DenyReason::Locked {
            until: t0.plus(std::time::Duration::from_secs(10))
        })
    );
    // A failure while locked doubles the delay, up to the cap.
    assert_eq!(
        attempt("wrong password here").await,
        LoginOutcome::Denied(DenyReason::Locked {
            until: t0.plus(std::time::Duration::from_secs(20))
        })
    );
    for _ in 0..10 {
        attempt("wrong password here").await;
    }
    clock.advance(std::time::Duration::from_secs(60));
    // The lock has cleared by itself; success resets the count.
    assert!(matches!(attempt(PW).await, LoginOutcome::Success(_)));
    assert_eq!(
        attempt("wrong password here").await,
        LoginOutcome::Denied(DenyReason::InvalidCredentials)
    );
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_account_still_admits_its_owner_on_a_known_device() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _clock) = crate::support::open_with_clock(dir.path(), "[lockout]\nfree_attempts = 1\n");
    m.create_user(
        "owner@example.com",
        PW,
        UserTier::Free,
        ProfilePatch::default(),
    )
    .await
    .unwrap();
    let with_device = |d: &str| LoginContext {
        device_id: Some(d.into()),
        ..Default::default()
    };
    assert!(matches!(
        m.authenticate_user("owner@example.com", PW, with_device("owner-phone"))
            .await
            .unwrap(),
        LoginOutcome::Success(_)
    ));
    // An attacker locks the account from elsewhere.
    for _ in 0..5 {
        m.authenticate_user(
            "owner@example.com",
            "guess guess guess",
            with_device("attacker"),
        )
        .await
        .unwrap();
    }
    let from_new_device = m
        .authenticate_user("owner@example.com", PW, with_device("attacker"))
        .await
        .unwrap();
    assert!(matches!(
        from_new_device,
        LoginOutcome::Denied(DenyReason::Locked { .. })
    ));
    let wrong_from_owner = m
        .authenticate_user("owner@example.com", "guess", with_device("owner-phone"))
        .await
        .unwrap();
    assert!(matches!(
        wrong_from_owner,
        LoginOutcome::Denied(DenyReason::Locked { .. })
    ));
    let owner = m
        .authenticate_user("owner@example.com", PW, with_device("owner-phone"))
        .await
        .unwrap();
    assert!(
        matches!(owner, LoginOutcome::Success(_)),
        "the owner's known device gets in: {owner:?}"
    );
    m.shutdown().await.unwrap();
}
