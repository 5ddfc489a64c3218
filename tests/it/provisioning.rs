//! Provisioning from another system (issue 20): imported bcrypt hashes log in and are
//! replaced by argon2id at the configured cost on that login, as are argon2 hashes of
//! another cost.

use std::path::Path;

use roster::domain::ids::UserId;
use roster::domain::password::HashParams;
use roster::domain::session::LoginContext;
use roster::engine::EngineError;
use roster::security::password::{Argon2Worker, params};
use roster::{LoginOutcome, UserManager, UserTier};

use crate::support::{PW, config, import, open};

/// The password hash stored for `id` in the stopped store at `dir`.
fn stored_hash(dir: &Path, id: UserId) -> String {
    let (store, keys) = roster::engine::keyring::open_store(&config(dir, &[])).unwrap();
    let rec = store.load_user(id).unwrap().unwrap();
    let key = keys.data_key(store.as_ref(), id).unwrap().unwrap();
    roster::engine::state::decode(&rec, &key, id)
        .unwrap()
        .password_hash
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
