//! Bad input gets a typed error naming the problem, and nothing stored changes.

use roster::domain::profile::ProfilePatch;
use roster::domain::session::LoginContext;
use roster::{EngineError, UserTier};
use serde_json::json;

use crate::support::{PW, open};

fn field(r: Result<impl std::fmt::Debug, EngineError>) -> String {
    match r {
        Err(EngineError::Validation(v)) => v.field,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_creates_are_refused_with_the_field_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let existing = m
        .create_user(
            "keep@example.com",
            PW,
            UserTier::Free,
            ProfilePatch::default(),
        )
        .await
        .unwrap();
    let none = ProfilePatch::default;

    assert_eq!(
        field(
            m.create_user("not-an-email", PW, UserTier::Free, none())
                .await
        ),
        "email"
    );
    assert_eq!(
        field(
            m.create_user("a@b.io", "short", UserTier::Free, none())
                .await
        ),
        "password"
    );
    assert_eq!(
        field(
            m.create_user("a@b.io", "password12345", UserTier::Free, none())
                .await
        ),
        "password"
    );
    let overlong = "Zq9!-unguessable-".repeat(8) + "x"; // 137 characters
    assert_eq!(
        field(
            m.create_user("a@b.io", &overlong, UserTier::Free, none())
                .await
        ),
        "password"
    );
    assert!(
        "gold".parse::<UserTier>().is_err(),
        "unknown tier is a typed error"
    );

    let wrong_type = ProfilePatch::from_json(json!({"display_name": ["x"]})).unwrap_err();
    assert_eq!(wrong_type.field, "display_name");
    let unknown = ProfilePatch::from_json(json!({"favourite_colour": "red"})).unwrap_err();
    assert!(unknown.reason.contains("favourite_colour"));
    let bad_zone = ProfilePatch {
        timezone: Some("Mars/Olympus Mons".into()),
        ..Default::default()
    };
    assert_eq!(
        field(m.create_user("a@b.io", PW, UserTier::Free, bad_zone).await),
        "timezone"
    );
    let no_feature =
        ProfilePatch::from_json(json!({"ai_preferences": {"custom_model_training": true}}))
            .unwrap();
    assert_eq!(
        field(
            m.create_user("a@b.io", PW, UserTier::Free, no_feature)
                .await
        ),
        "ai_preferences.custom_model_training"
    );
    assert_eq!(
        m.create_user("KEEP@example.com", PW, UserTier::Vip, none())
            .await,
        Err(EngineError::EmailTaken)
    );
    let bad_ctx = LoginContext {
        device_id: Some(String::new()),
        ..Default::default()
    };
    assert_eq!(
        field(m.authenticate_user("keep@example.com", PW, bad_ctx).await),
        "context.device_id"
    );
    assert_eq!(
        field(crate::support::import(&m, "b@b.io", "plaintext", UserTier::Free).await),
        "password_hash"
    );

    assert_eq!(m.user_count(), 1, "no failed create stored anything");
    let before = m.get_user(existing.id).await.unwrap();
    let bad_update = ProfilePatch::from_json(json!({
        "display_name": "Fine", "security_settings": {"risk_score_threshold": 3.0}
    }))
    .unwrap();
    assert_eq!(
        field(m.update_user_profile(existing.id, bad_update).await),
        "security_settings.risk_score_threshold"
    );
    assert_eq!(
        m.get_user(existing.id).await.unwrap(),
        before,
        "a refused update changes nothing"
    );
    m.shutdown().await.unwrap();
}
