//! Provisioning from another system (issue 20): imported bcrypt hashes log in and are
//! replaced by argon2id at the configured cost on that login, as are argon2 hashes of
//! another cost.

use std::path::Path;

use roster::domain::ids::UserId;
use roster::domain::password::HashParams;
use roster::domain::session::LoginContext;
use roster::engine::{EngineError, ProvisionAction, ProvisionRow, Provisioned};
use roster::security::password::{Argon2Worker, params};
use roster::{LoginOutcome, UserManager, UserTier};

use crate::support::{ADMIN_KEY, PW, SYS, TestServer, config, emailed_token, import, open};

/// The password hash stored for `id` in the stopped store at `dir`.
fn stored_hash(dir: &Path, id: UserId) -> String {
    let (store, keys) = roster::engine::keyring::open_store(&config(dir, &[])).unwrap();
    let rec = store.load_user(id).unwrap().unwrap();
    let key = keys.data_key(store.as_ref(), id).unwrap().unwrap();
    roster::engine::state::decode(&rec, &key, id)
        .unwrap()
        .password_hash
        .into()
}

async fn logs_in(m: &UserManager, email: &str, password: &str) -> bool {
    let outcome = m
        .authenticate_user(email, password, LoginContext::default())
        .await
        .unwrap();
    matches!(outcome, LoginOutcome::Success(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrated_hashes_log_in_and_become_argon2id_at_the_configured_cost() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let bcrypted = bcrypt::hash(PW, 4).unwrap();
    assert!(bcrypted.starts_with("$2b$04$"), "{bcrypted}");
    let b = import(&m, "bcrypt@example.com", &bcrypted, UserTier::Free)
        .await
        .unwrap();
    // An argon2id hash at another cost than the test configuration's (m=256, t=1).
    let cheaper = HashParams {
        memory_kib: 64,
        iterations: 2,
        parallelism: 1,
    };
    let older = Argon2Worker::new(params(cheaper).unwrap())
        .unwrap()
        .hash(PW)
        .unwrap();
    let a = import(&m, "argon@example.com", &older, UserTier::Free)
        .await
        .unwrap();

    // A wrong password changes nothing.
    assert!(!logs_in(&m, "bcrypt@example.com", "not the password at all").await);
    m.shutdown().await.unwrap();
    drop(m);
    assert_eq!(stored_hash(dir.path(), b.id), bcrypted);

    let m = open(dir.path());
    assert!(logs_in(&m, "bcrypt@example.com", PW).await);
    assert!(logs_in(&m, "argon@example.com", PW).await);
    m.shutdown().await.unwrap();
    drop(m);
    let upgraded = stored_hash(dir.path(), b.id);
    assert!(
        upgraded.starts_with("$argon2id$v=19$m=256,t=1,p=1$"),
        "bcrypt became argon2id at the configured cost: {upgraded}"
    );
    let argon = stored_hash(dir.path(), a.id);
    assert!(
        argon.starts_with("$argon2id$v=19$m=256,t=1,p=1$"),
        "{argon}"
    );

    // The new hashes hold the same password, and a current hash is not rewritten.
    let m = open(dir.path());
    assert!(logs_in(&m, "bcrypt@example.com", PW).await);
    assert!(!logs_in(&m, "bcrypt@example.com", "correct horse battery stable").await);
    m.shutdown().await.unwrap();
    drop(m);
    assert_eq!(stored_hash(dir.path(), b.id), upgraded);
}

#[tokio::test]
async fn an_import_refuses_a_bcrypt_hash_too_costly_to_verify() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    // Cost 15: its parts parse; verifying it would hold a worker for seconds.
    let costly = bcrypt::hash_with_salt(PW, 4, [7u8; 16])
        .unwrap()
        .format_for_version(bcrypt::Version::TwoB)
        .replacen("$04$", "$15$", 1);
    let err = import(&m, "costly@example.com", &costly, UserTier::Free)
        .await
        .unwrap_err();
    match err {
        EngineError::Validation(v) => {
            assert!(v.to_string().contains("bcrypt cost (15)"), "{v}");
        }
        other => panic!("{other:?}"),
    }
    // Cost 3: below what bcrypt verifies, so the user could never log in.
    let too_cheap = costly.replacen("$15$", "$03$", 1);
    let err = import(&m, "cheap@example.com", &too_cheap, UserTier::Free)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bcrypt cost (3)"), "{err}");
    let err = import(&m, "broken@example.com", "$2b$04$short", UserTier::Free)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Validation(_)), "{err:?}");
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bcrypt_prefix_logs_in_and_a_locked_account_keeps_its_old_hash() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    for (email, version) in [
        ("twoa@example.com", bcrypt::Version::TwoA),
        ("twoy@example.com", bcrypt::Version::TwoY),
    ] {
        let hash = bcrypt::hash_with_salt(PW, 4, [3u8; 16])
            .unwrap()
            .format_for_version(version);
        import(&m, email, &hash, UserTier::Free).await.unwrap();
        assert!(logs_in(&m, email, PW).await, "{hash}");
    }

    // Locked by failures, the right password is refused like a wrong one, and the
    // migrated hash is not replaced: the answer must not tell the password was right.
    let bcrypted = bcrypt::hash(PW, 4).unwrap();
    let locked = import(&m, "locked@example.com", &bcrypted, UserTier::Free)
        .await
        .unwrap();
    for _ in 0..10 {
        assert!(!logs_in(&m, "locked@example.com", "not the password at all").await);
    }
    let outcome = m
        .authenticate_user("locked@example.com", PW, LoginContext::default())
        .await
        .unwrap();
    assert!(
        matches!(outcome, LoginOutcome::Denied(ref why) if format!("{why:?}").contains("Locked")),
        "{outcome:?}"
    );
    m.shutdown().await.unwrap();
    drop(m);
    assert_eq!(stored_hash(dir.path(), locked.id), bcrypted);
}

fn row(email: &str) -> ProvisionRow {
    ProvisionRow {
        email: email.into(),
        ..ProvisionRow::default()
    }
}

fn action(r: &Result<Provisioned, EngineError>) -> ProvisionAction {
    r.as_ref()
        .map(|p| p.action)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_creates_once_updates_what_changed_and_dry_runs_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let p = m.provisioning();
    let rows = vec![
        ProvisionRow {
            external_id: Some("okta-1".into()),
            display_name: Some("Ada".into()),
            tier: Some(UserTier::Premium),
            password_hash: Some(bcrypt::hash(PW, 4).unwrap()),
            ..row("ada@example.com")
        },
        ProvisionRow {
            password: Some(PW.into()),
            ..row("bob@example.com")
        },
        row("cy@example.com"),
    ];
    // A dry run checks and writes nothing: the real run still creates all three.
    let dry = p.provision(&SYS, rows.clone(), true).await.unwrap();
    assert!(dry.iter().all(|r| action(r) == ProvisionAction::Created));
    assert!(dry[2].as_ref().unwrap().invited);
    assert!(
        !logs_in(&m, "bob@example.com", PW).await,
        "a dry run wrote nothing"
    );

    let first = p.provision(&SYS, rows.clone(), false).await.unwrap();
    assert!(first.iter().all(|r| action(r) == ProvisionAction::Created));
    assert!(logs_in(&m, "ada@example.com", PW).await);
    assert!(logs_in(&m, "bob@example.com", PW).await);
    assert!(
        !logs_in(&m, "cy@example.com", "").await
            && !logs_in(&m, "cy@example.com", "!invited").await,
        "an invited user has no password yet"
    );
    let again = p.provision(&SYS, rows.clone(), false).await.unwrap();
    assert!(
        again
            .iter()
            .all(|r| action(r) == ProvisionAction::Unchanged),
        "{again:?}"
    );

    // The source changed Ada's tier and name: only those change; her id stays.
    let ada = first[0].as_ref().unwrap().user_id.unwrap();
    let changed = ProvisionRow {
        tier: Some(UserTier::Enterprise),
        display_name: Some("Ada L.".into()),
        ..rows[0].clone()
    };
    let out = p.provision(&SYS, vec![changed], false).await.unwrap();
    let got = out[0].as_ref().unwrap();
    assert_eq!(
        (got.action, got.user_id, got.changed.clone()),
        (
            ProvisionAction::Updated,
            Some(ada),
            vec!["display_name".to_owned(), "tier".to_owned()]
        )
    );
    let profile = m.accounts().get(&SYS, ada).await.unwrap();
    assert_eq!(
        (profile.tier, profile.display_name.as_str()),
        (UserTier::Enterprise, "Ada L.")
    );
    // Her external id names her whatever the row's email says: an email change is refused.
    let moved = ProvisionRow {
        email: "ada@elsewhere.example".into(),
        ..rows[0].clone()
    };
    let out = p.provision(&SYS, vec![moved], false).await.unwrap();
    assert!(
        matches!(&out[0], Err(EngineError::Validation(v)) if v.to_string().contains("another email")),
        "{out:?}"
    );

    // Ada's email with another source id: two people, or a recycled address — refused.
    // Bob, provisioned by email, gets his source id once.
    let other = ProvisionRow {
        external_id: Some("okta-9".into()),
        ..row("ada@example.com")
    };
    let bob = ProvisionRow {
        external_id: Some("okta-2".into()),
        ..row("bob@example.com")
    };
    let out = p
        .provision(&SYS, vec![other, bob.clone()], false)
        .await
        .unwrap();
    assert!(
        matches!(&out[0], Err(EngineError::Validation(v)) if v.field == "external_id"),
        "{out:?}"
    );
    assert_eq!(out[1].as_ref().unwrap().changed, ["external_id"]);
    let out = p.provision(&SYS, vec![bob], false).await.unwrap();
    assert_eq!(action(&out[0]), ProvisionAction::Unchanged);

    // Bad rows fail alone, with their reason; a batch's second row for a user is refused.
    let out = p
        .provision(
            &SYS,
            vec![
                row("not an email"),
                ProvisionRow {
                    password: Some("x".into()),
                    ..row("weak@example.com")
                },
                ProvisionRow {
                    password: Some(PW.into()),
                    password_hash: Some("$2b$04$x".into()),
                    ..row("both@example.com")
                },
                row("dee@example.com"),
                ProvisionRow {
                    display_name: Some("Dee".into()),
                    ..row("DEE@example.com")
                },
            ],
            false,
        )
        .await
        .unwrap();
    let fields: Vec<String> = out
        .iter()
        .map(|r| match r {
            Ok(p) => format!("{:?}", p.action),
            Err(EngineError::Validation(v)) => v.field.to_string(),
            Err(e) => panic!("{e}"),
        })
        .collect();
    assert_eq!(
        fields,
        ["email", "password", "password", "Created", "email"]
    );
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_user_sets_its_password_once_and_an_expired_link_is_refused() {
    use reqwest::Method;
    let s = TestServer::start("").await;
    let body = serde_json::json!({"rows": [
        {"email": "inv@example.com", "external_id": "e-1"},
        {"email": "late@example.com"},
        {"email": "bad", "tier": "premium"},
    ]});
    let (status, reply) = s
        .call(
            Method::POST,
            "/admin/users/provision",
            Some(ADMIN_KEY),
            Some(body),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["rows"][0]["result"]["action"], "created", "{reply}");
    assert_eq!(reply["rows"][0]["result"]["invited"], true, "{reply}");
    assert_eq!(reply["rows"][2]["error"], "invalid-input", "{reply}");

    let token = emailed_token("invitation", s.dir(), "inv@example.com", &[]).await;
    let accept =
        |token: &str, password: &str| serde_json::json!({"token": token, "password": password});
    let (status, reply) = s
        .call(
            Method::POST,
            "/auth/invitations/accept",
            None,
            Some(accept(&token, "short")),
        )
        .await;
    assert_eq!(status, 400, "the password policy applies: {reply}");
    let (status, reply) = s
        .call(
            Method::POST,
            "/auth/invitations/accept",
            None,
            Some(accept(&token, PW)),
        )
        .await;
    assert_eq!(status, 204, "{reply}");
    let login = serde_json::json!({"email": "inv@example.com", "password": PW});
    let (status, reply) = s.call(Method::POST, "/auth/login", None, Some(login)).await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = s
        .call(
            Method::POST,
            "/auth/invitations/accept",
            None,
            Some(accept(&token, "another fine passphrase")),
        )
        .await;
    assert_eq!(status, 400, "used once: {reply}");

    // Eight days on, the week-long invitation has expired.
    let late = emailed_token("invitation", s.dir(), "late@example.com", &[]).await;
    s.clock.advance(std::time::Duration::from_secs(8 * 86_400));
    let (status, reply) = s
        .call(
            Method::POST,
            "/auth/invitations/accept",
            None,
            Some(accept(&late, PW)),
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{reply}"
    );
    // Provisioned again, the user whose invitation expired is invited anew.
    let again = serde_json::json!({"rows": [{"email": "late@example.com"}]});
    let (status, reply) = s
        .call(
            Method::POST,
            "/admin/users/provision",
            Some(ADMIN_KEY),
            Some(again.clone()),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["rows"][0]["result"]["action"], "updated", "{reply}");
    assert_eq!(
        reply["rows"][0]["result"]["changed"],
        serde_json::json!(["invitation"])
    );
    assert_eq!(reply["rows"][0]["result"]["invited"], true);
    let renewed = emailed_token("invitation", s.dir(), "late@example.com", &[&late]).await;
    let (_, reply) = s
        .call(
            Method::POST,
            "/admin/users/provision",
            Some(ADMIN_KEY),
            Some(again),
        )
        .await;
    assert_eq!(
        reply["rows"][0]["result"]["action"], "unchanged",
        "one invitation in force: {reply}"
    );
    let forged = format!("{}x", &late[..late.len() - 1]);
    let (status, _) = s
        .call(
            Method::POST,
            "/auth/invitations/accept",
            None,
            Some(accept(&forged, PW)),
        )
        .await;
    assert_eq!(status, 400);
    let (status, reply) = s
        .call(
            Method::POST,
            "/auth/invitations/accept",
            None,
            Some(accept(&renewed, PW)),
        )
        .await;
    assert_eq!(status, 204, "{reply}");
    s.stop().await;
}
