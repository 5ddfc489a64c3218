//! Consents, purpose limitation and the age rule.

use reqwest::Method;
use serde_json::{Value, json};

use roster::domain::consent::{Date, Purpose};
use roster::domain::ids::UserId;
use roster::domain::profile::ProfilePatch;
use roster::domain::session::LoginContext;
use roster::engine::{ActivityOutcome, EngineError, Principal, UserSession};
use roster::{LoginOutcome, UserTier};

use crate::support::{ADMIN_KEY, PW, SYS, TestServer, open};

fn one_event(m: &roster::UserManager) -> Vec<roster::domain::activity::ActivityEvent> {
    vec![serde_json::from_value(json!({"kind": "searched", "at": m.now()})).unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_needs_analytics_consent_and_minors_a_parent() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let p = m
        .create_user(
            "kid@example.com",
            PW,
            UserTier::Free,
            ProfilePatch::default(),
        )
        .await
        .unwrap();
    let LoginOutcome::Success(s) = m
        .authenticate_user("kid@example.com", PW, LoginContext::default())
        .await
        .unwrap()
    else {
        panic!("login")
    };
    let me = Principal::User(UserSession {
        user: p.id,
        session: s.session_id,
    });
    let record = || m.sessions().record_activity(&me, one_event(&m));
    assert!(matches!(
        record().await.unwrap(),
        ActivityOutcome::ConsentRequired { .. }
    ));
    m.privacy()
        .update_consents(&me, p.id, vec![(Purpose::Analytics, true)], None)
        .await
        .unwrap();
    assert!(matches!(
        record().await.unwrap(),
        ActivityOutcome::Recorded { accepted: 1 }
    ));
    // Ten years old: a parent must consent first.
    let today = Date::of(m.now());
    let ten = Date::parse(&format!(
        "{:04}-{:02}-{:02}",
        today.year - 10,
        today.month,
        1
    ))
    .unwrap();
    let view = m
        .privacy()
        .update_consents(&me, p.id, vec![], Some(ten))
        .await
        .unwrap();
    assert!(view.minor);
    let ActivityOutcome::ConsentRequired { reason } = record().await.unwrap() else {
        panic!("a minor's activity was counted without a parent's consent");
    };
    assert!(reason.contains("parental"), "{reason}");
    assert!(
        !reason.contains("  "),
        "one sentence, no run of spaces: {reason:?}"
    );
    // The child cannot make itself older; an operator can correct the date.
    let older = Date::parse("1990-01-01").unwrap();
    assert!(matches!(
        m.privacy()
            .update_consents(&me, p.id, vec![], Some(older))
            .await,
        Err(EngineError::Conflict(_))
    ));
    m.privacy()
        .record_parental_consent(&Principal::Operator, p.id, "ticket-4711")
        .await
        .unwrap();
    assert!(matches!(
        record().await.unwrap(),
        ActivityOutcome::Recorded { .. }
    ));
    // Withdrawing stops the processing at once, and is recorded.
    let view = m
        .privacy()
        .update_consents(&me, p.id, vec![(Purpose::Analytics, false)], None)
        .await
        .unwrap();
    assert_eq!(view.history.len(), 2);
    assert!(matches!(
        record().await.unwrap(),
        ActivityOutcome::ConsentRequired { .. }
    ));
    assert_eq!(
        m.get_user_insights(p.id).await.unwrap().activity.searches,
        2
    );
    let audit = m.ops().audit_entries(&SYS, Some(0), Some(100)).unwrap();
    let kinds: Vec<String> = audit
        .iter()
        .map(|e| {
            serde_json::to_value(&e.body.action).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "consent_changed").count(),
        2,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"parental_consent_recorded".to_owned()));
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferences_follow_consents() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let p = m
        .create_user(
            "prefs@example.com",
            PW,
            UserTier::Vip,
            ProfilePatch::default(),
        )
        .await
        .unwrap();
    let me = Principal::User(UserSession {
        user: p.id,
        session: roster::domain::ids::SessionId::generate(),
    });
    let patch = |v: serde_json::Value| -> ProfilePatch { serde_json::from_value(v).unwrap() };
    let fed = patch(json!({"ai_preferences": {"federated_learning_enabled": true}}));
    let e = m.update_user_profile(p.id, fed.clone()).await.unwrap_err();
    assert!(
        matches!(&e, EngineError::Validation(v) if v.field == "ai_preferences.federated_learning_enabled"),
        "{e:?}"
    );
    m.privacy()
        .update_consents(&me, p.id, vec![(Purpose::FederatedLearning, true)], None)
        .await
        .unwrap();
    let after = m.update_user_profile(p.id, fed).await.unwrap();
    assert!(after.ai_preferences.federated_learning_enabled);
    // Withdrawing personalisation and federated learning turns them off.
    assert!(
        p.ai_preferences.mood_detection_enabled,
        "the VIP template has mood detection"
    );
    m.privacy()
        .update_consents(
            &me,
            p.id,
            vec![
                (Purpose::FederatedLearning, false),
                (Purpose::Personalisation, false),
            ],
            None,
        )
        .await
        .unwrap();
    let now = m.get_user(p.id).await.unwrap().ai_preferences;
    assert!(
        !now.federated_learning_enabled
            && !now.mood_detection_enabled
            && !now.custom_model_training
    );
    // And they cannot come back without the consent.
    let mood = patch(json!({"ai_preferences": {"mood_detection_enabled": true}}));
    assert!(m.update_user_profile(p.id, mood).await.is_err());
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consents_over_http_with_their_access_rules() {
    let srv = TestServer::start("").await;
    let (id, token) = srv.user("consenting@example.com", "free").await;
    let path = format!("/users/{id}/consents");
    let (s, v) = srv.call(Method::GET, &path, Some(&token), None).await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["purposes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["granted"] == false)
    );
    let (s, v) = srv
        .call(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"analytics": true, "marketing": false, "birth_date": "2001-02-03"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["birth_date"], "2001-02-03");
    assert_eq!(v["minor"], false);
    let (s, p) = srv
        .call(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"birth_date": "2001-02-30"})),
        )
        .await;
    assert_eq!((s, p["field"].as_str()), (400, Some("birth_date")), "{p}");
    let (s, _) = srv
        .call(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"newsletter": true})),
        )
        .await;
    assert_eq!(s, 400, "unknown purposes are refused");
    // Another user sees nothing; only the operator records a parental consent.
    let (_, other) = srv.user("nosy@example.com", "free").await;
    assert_eq!(
        srv.call(Method::GET, &path, Some(&other), None).await.0,
        403
    );
    let parental = format!("/users/{id}/parental-consent");
    let body = json!({"reference": "form-1"});
    assert_eq!(
        srv.call(Method::POST, &parental, Some(&token), Some(body.clone()))
            .await
            .0,
        403
    );
    let (s, v) = srv
        .call(Method::POST, &parental, Some(ADMIN_KEY), Some(body))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["parental_consent"]["reference"], "form-1");
    // An operator migrating consents from another system sets them too, audited as the
    // operator (the user's own change as the user).
    let (s, v) = srv
        .call(
            Method::PUT,
            &path,
            Some(ADMIN_KEY),
            Some(json!({"personalisation": true})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, log) = srv
        .call(Method::GET, "/admin/audit", Some(ADMIN_KEY), None)
        .await;
    let changes: Vec<(&Value, &Value)> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"]["type"] == "consent_changed")
        .map(|e| (&e["actor"], &e["action"]["purpose"]))
        .collect();
    assert_eq!(
        changes,
        [
            (&json!({"kind": "user", "id": id}), &json!("analytics")),
            (&json!({"kind": "user", "id": id}), &json!("marketing")),
            (&json!({"kind": "operator"}), &json!("personalisation")),
        ],
        "{log}"
    );
    // The export holds the consents and their history.
    let (s, doc) = srv
        .call(
            Method::GET,
            &format!("/users/{id}/export"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        doc["consents"]["history"].as_array().unwrap().len(),
        3,
        "{doc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_security_events_past_retention_in_state_and_archive() {
    let dir = tempfile::tempdir().unwrap();
    let (m, clock) = crate::support::open_with_clock(dir.path(), "");
    let p = m
        .create_user(
            "old@example.com",
            PW,
            UserTier::Free,
            ProfilePatch::default(),
        )
        .await
        .unwrap();
    // 60 failures: more than the user's record keeps, so some go to the archive.
    for _ in 0..60 {
        m.authenticate_user(
            "old@example.com",
            "wrong password here",
            LoginContext::default(),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        m.privacy()
            .security_events(&SYS, p.id, None, Some(200))
            .await
            .unwrap()
            .len(),
        60
    );
    clock.advance(std::time::Duration::from_secs(400 * 86_400));
    assert!(matches!(
        m.authenticate_user("old@example.com", PW, LoginContext::default())
            .await
            .unwrap(),
        LoginOutcome::Success(_)
    ));
    // The purge runs while the engine serves, through the front door.
    let r = m.ops().purge_security_events(&SYS).await.unwrap();
    assert_eq!(
        r.cutoff.as_millis(),
        m.now().as_millis() - 365 * 86_400_000,
        "the configured retention"
    );
    // 61 events: the record holds the newest 50 (49 old ones and the login), the
    // archive the 11 oldest.
    assert_eq!(
        (r.users, r.rewritten, r.in_state, r.archived),
        (1, 1, 49, 11),
        "{r:?}"
    );
    // A second run finds nothing.
    let again = m.ops().purge_security_events(&SYS).await.unwrap();
    assert_eq!((again.in_state, again.archived), (0, 0));
    // Users may not purge.
    let nobody = m.ops().purge_security_events(&Principal::Anonymous).await;
    assert!(matches!(nobody, Err(EngineError::Unauthenticated(_))));
    m.shutdown().await.unwrap();
    drop(m);

    let m = open(dir.path());
    let left = m
        .privacy()
        .security_events(&SYS, p.id, None, Some(200))
        .await
        .unwrap();
    let kinds: Vec<_> = left.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![roster::domain::security_log::SecurityEventKind::LoginSucceeded],
        "only the recent login is left"
    );
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_user_removes_its_archived_security_events() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let mk = |email: &'static str| {
        let m = m.clone();
        async move {
            let p = m
                .create_user(email, PW, UserTier::Free, ProfilePatch::default())
                .await
                .unwrap();
            for _ in 0..55 {
                m.authenticate_user(email, "wrong password here", LoginContext::default())
                    .await
                    .unwrap();
            }
            p.id
        }
    };
    let gone = mk("gone@example.com").await;
    let kept = mk("kept@example.com").await;
    m.delete_user(gone).await.unwrap();
    assert!(matches!(
        m.accounts().export(&SYS, gone).await,
        Err(EngineError::NotFound)
    ));
    m.shutdown().await.unwrap();
    drop(m);
    let store = roster::store::SledStore::open(dir.path(), 1 << 20).unwrap();
    let users: Vec<UserId> = roster::store::ArchiveStore::scan_security_events(&store)
        .map(|e| e.unwrap().0)
        .collect();
    assert!(!users.is_empty(), "the kept user's overflow is archived");
    assert!(
        users.iter().all(|u| *u == kept),
        "nothing of the deleted user is left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_drops_the_ended_sessions_a_stored_record_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (m, clock) = crate::support::open_with_clock(dir.path(), "");
    for email in ["idle@example.com", "busy@example.com"] {
        m.create_user(email, PW, UserTier::Free, ProfilePatch::default())
            .await
            .unwrap();
    }
    for email in ["idle@example.com", "idle@example.com", "busy@example.com"] {
        let login = m.authenticate_user(email, PW, LoginContext::default());
        assert!(matches!(login.await.unwrap(), LoginOutcome::Success(_)));
    }
    // Stopped with live sessions in the records; started again two days later (the
    // free tier's sessions end after a day idle), so no actor pruned them.
    m.shutdown().await.unwrap();
    drop(m);
    clock.advance(std::time::Duration::from_secs(2 * 86_400));
    let setup = roster::engine::Setup::new(crate::support::config(dir.path(), &[]))
        .clock(std::sync::Arc::new(clock.clone()));
    let m = roster::UserManager::open(setup).unwrap();
    let fresh = m.authenticate_user("busy@example.com", PW, LoginContext::default());
    let LoginOutcome::Success(fresh) = fresh.await.unwrap() else {
        panic!("the busy user signs in again");
    };
    let r = m.ops().purge_security_events(&SYS).await.unwrap();
    assert_eq!(
        (r.users, r.rewritten, r.sessions, r.in_state),
        (2, 1, 2, 0),
        "the idle user's two ended sessions go (the busy user's login dropped its own), nothing else: {r:?}"
    );
    let again = m.ops().purge_security_events(&SYS).await.unwrap();
    assert_eq!((again.rewritten, again.sessions), (0, 0), "{again:?}");
    // The session begun today is untouched.
    let live = m.login().validate(&fresh.token).await.unwrap();
    assert!(live.is_some(), "the new session still validates");
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_drops_only_the_tombstones_past_their_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (m, clock) = crate::support::open_with_clock(dir.path(), "");
    let erase = async |email: &str| {
        let p = m.create_user(email, PW, UserTier::Free, ProfilePatch::default());
        m.delete_user(p.await.unwrap().id).await.unwrap();
    };
    erase("long-gone@example.com").await;
    clock.advance(std::time::Duration::from_secs(399 * 86_400));
    erase("recent@example.com").await;
    assert_eq!(
        m.ops().purge_tombstones(&SYS).await.unwrap(),
        0,
        "none is 400 days old"
    );
    clock.advance(std::time::Duration::from_secs(2 * 86_400));
    assert_eq!(
        m.ops().purge_tombstones(&SYS).await.unwrap(),
        1,
        "the first one is"
    );
    assert_eq!(
        m.ops().purge_tombstones(&SYS).await.unwrap(),
        0,
        "and it is gone"
    );
    let nobody = m.ops().purge_tombstones(&Principal::Anonymous).await;
    assert!(matches!(nobody, Err(EngineError::Unauthenticated(_))));
    m.shutdown().await.unwrap();
    drop(m);
    let store = roster::store::SledStore::open(dir.path(), 1 << 20).unwrap();
    let left = roster::store::ArchiveStore::scan_tombstones(&store).count();
    assert_eq!(left, 1, "the recent erasure keeps its tombstone");
}
