//! Encryption at rest: nothing personal in the raw files, crypto-shredding on erasure,
//! the migration of a store written before encryption, master key checks at start-up,
//! and master key rotation.

use std::path::{Path, PathBuf};

use reqwest::Method;

use roster::domain::ids::UserId;
use roster::domain::profile::ProfilePatch;
use roster::domain::risk::Location;
use roster::domain::session::LoginContext;
use roster::engine::EngineError;
use roster::engine::keyring::Keyring;
use roster::security::keys::{DataKey, MasterKey};
use roster::store::{ArchiveStore, KeyStore, SledStore, Store, UserStore, codec};
use roster::{LoginOutcome, UserManager, UserTier};

use crate::support::{ADMIN_KEY, PW, SYS, TestServer, config, open};

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The needles found in any file under `dir`, with the file.
fn found_in_files(dir: &Path, needles: &[&str]) -> Vec<(String, PathBuf)> {
    let mut hits = Vec::new();
    for f in files(dir) {
        let bytes = std::fs::read(&f).unwrap();
        for n in needles {
            if bytes.windows(n.len()).any(|w| w == n.as_bytes()) {
                hits.push(((*n).to_owned(), f.clone()));
            }
        }
    }
    hits
}

/// Creates `n` Free users `<prefix><i>@example.com` in `dir` and stops the engine.
async fn stored_users(dir: &Path, prefix: &str, n: usize) -> Vec<UserId> {
    let m = open(dir);
    let mut ids = Vec::new();
    for i in 0..n {
        let email = format!("{prefix}{i}@example.com");
        let p = m
            .create_user(&email, PW, UserTier::Free, ProfilePatch::default())
            .await
            .unwrap();
        ids.push(p.id);
    }
    m.shutdown().await.unwrap();
    ids
}

fn patch(name: &str) -> ProfilePatch {
    ProfilePatch {
        display_name: Some(name.into()),
        ..ProfilePatch::default()
    }
}

fn paris() -> Location {
    Location {
        country: "FR".into(),
        latitude: 48.8566,
        longitude: 2.3522,
    }
}

async fn sms_code(dir: &Path, phone: &str) -> String {
    for _ in 0..100 {
        let text = std::fs::read_to_string(dir.join("outbox.jsonl")).unwrap_or_default();
        let code = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["to"] == phone)
            .filter_map(|m| {
                m["body"]
                    .as_str()?
                    .split(|c: char| !c.is_ascii_digit())
                    .find(|w| w.len() == 6)
                    .map(str::to_owned)
            })
            .next_back();
        if let Some(c) = code {
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no text to {phone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_store_holds_no_email_name_or_phone_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let people = [
        (
            "zelda.quarry@example.com",
            "Zelda Quarrington",
            "+15557770101",
        ),
        (
            "yusuf.ombre@example.net",
            "Yusuf Ombrelino",
            "+447700900123",
        ),
        (
            "xin.vantablack@example.org",
            "Xin Vantablack",
            "+33612345678",
        ),
    ];
    for (email, name, phone) in people {
        let p = m
            .create_user(email, PW, UserTier::Premium, patch(name))
            .await
            .unwrap();
        let LoginOutcome::Success(login) = m
            .authenticate_user(email, PW, LoginContext::default())
            .await
            .unwrap()
        else {
            panic!("login of {email}")
        };
        let me = roster::engine::Principal::User(roster::engine::UserSession {
            user: p.id,
            session: login.session_id,
        });
        m.mfa().begin_sms(&me, p.id, phone).await.unwrap();
        let code = sms_code(dir.path(), phone).await;
        m.mfa().confirm_sms(&me, p.id, &code).await.unwrap();
        // Failed logins from a located client: more events than the record keeps, so
        // some are archived.
        let ctx = LoginContext {
            device_id: Some(format!("device-of-{name}")),
            ..LoginContext::default()
        };
        for _ in 0..55 {
            let origin = roster::engine::RequestOrigin {
                location: Some(paris()),
                ..Default::default()
            };
            m.login()
                .password(&SYS, email, "wrong password here", ctx.clone(), origin)
                .await
                .unwrap();
        }
        let export =
            serde_json::to_string(&m.accounts().export(&SYS, p.id).await.unwrap()).unwrap();
        for needle in [email, name, phone] {
            assert!(export.contains(needle), "{needle} is stored");
        }
    }
    m.shutdown().await.unwrap();
    drop(m);
    let mut needles = Vec::new();
    for (email, name, phone) in &people {
        needles.extend([*email, *name, *phone]);
        needles.push(email.split('@').next().unwrap());
        needles.push(name.split(' ').nth(1).unwrap());
        needles.push(&phone[1..]);
    }
    let devices: Vec<String> = people
        .iter()
        .map(|(_, n, _)| format!("device-of-{n}"))
        .collect();
    needles.extend(devices.iter().map(String::as_str));
    let hits = found_in_files(&dir.path().join("sled"), &needles);
    assert!(hits.is_empty(), "found in clear: {hits:?}");
    // The master key is not in the store either.
    let key_text = std::fs::read_to_string(dir.path().join("master.key")).unwrap();
    let hits = found_in_files(&dir.path().join("sled"), &[key_text.trim()]);
    assert!(hits.is_empty(), "the master key is in the store");
}

/// Opens the keyring of `dir` and returns it with the store.
fn keyring(dir: &Path) -> (std::sync::Arc<dyn Store>, Keyring) {
    roster::engine::keyring::open_store(&config(dir, &[])).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_shreds_the_data_key_so_old_snapshot_bytes_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let gone = m
        .create_user(
            "erase.me@example.com",
            PW,
            UserTier::Free,
            patch("Erasmus Gone"),
        )
        .await
        .unwrap();
    let kept = m
        .create_user(
            "keep.me@example.com",
            PW,
            UserTier::Free,
            patch("Kept Person"),
        )
        .await
        .unwrap();
    let LoginOutcome::Success(login) = m
        .authenticate_user("erase.me@example.com", PW, LoginContext::default())
        .await
        .unwrap()
    else {
        panic!("login")
    };
    m.shutdown().await.unwrap();
    drop(m);

    // A "backup" of the user's snapshot, taken before the erasure.
    let (store, keys) = keyring(dir.path());
    let old_record = store.load_user(gone.id).unwrap().unwrap();
    let old_wrapped_key = store.load_key(gone.id).unwrap().unwrap();
    let before = keys.data_key(store.as_ref(), gone.id).unwrap().unwrap();
    let state = roster::engine::state::decode(&old_record, &before, gone.id).unwrap();
    assert_eq!(
        state.profile.display_name, "Erasmus Gone",
        "readable before"
    );
    drop((store, keys));

    let m = open(dir.path());
    m.delete_user(gone.id).await.unwrap();
    assert!(matches!(
        m.accounts().export(&SYS, gone.id).await,
        Err(EngineError::NotFound)
    ));
    assert!(m.login().validate(&login.token).await.unwrap().is_none());
    assert!(matches!(
        m.authenticate_user("erase.me@example.com", PW, LoginContext::default())
            .await
            .unwrap(),
        LoginOutcome::Denied(_)
    ));
    // The email is free again, for a new user with a new id.
    let again = m
        .create_user(
            "erase.me@example.com",
            PW,
            UserTier::Free,
            ProfilePatch::default(),
        )
        .await
        .unwrap();
    assert_ne!(again.id, gone.id);
    m.shutdown().await.unwrap();
    drop(m);

    let (store, keys) = keyring(dir.path());
    assert_eq!(store.load_key(gone.id).unwrap(), None, "data key destroyed");
    assert!(keys.data_key(store.as_ref(), gone.id).unwrap().is_none());
    // No key the store holds opens the old bytes.
    let mut tried = 0;
    for item in store.scan_keys() {
        let (id, wrapped) = item.unwrap();
        let key = keys.unwrap(id, &wrapped).unwrap();
        for owner in [gone.id, id] {
            assert_eq!(
                roster::engine::state::decode(&old_record, &key, owner),
                Err(codec::CodecError::Unauthentic)
            );
        }
        tried += 1;
    }
    assert_eq!(tried, 2, "the kept user and the new sign-up");
    assert!(store.load_key(kept.id).unwrap().is_some());
    // A backup that also kept the wrapped key opens with the current master key; once
    // the master key is rotated (and the retired one destroyed), it does not.
    assert!(keys.unwrap(gone.id, &old_wrapped_key).is_ok());
    drop((store, keys));
    let m = open(dir.path());
    m.ops().rotate_master_key(&SYS, |_| {}).await.unwrap();
    m.shutdown().await.unwrap();
    drop(m);
    let (_store, keys) = keyring(dir.path());
    assert!(matches!(
        keys.unwrap(gone.id, &old_wrapped_key),
        Err(EngineError::Corrupt { .. })
    ));
}

/// Writes `users` into `dir` as format 3 stored them: plaintext records, `e<email>`
/// claims, plaintext JSON archived events, no keys and no keyring record.
fn write_format_3_store(
    dir: &Path,
    users: &[(UserId, String, UserTier, roster::engine::state::UserState)],
) {
    let db = sled::open(dir.join("sled")).unwrap();
    let tree = db.open_tree("roster").unwrap();
    let key = |p: u8, id: UserId| {
        let mut k = vec![p];
        k.extend_from_slice(id.as_bytes());
        k
    };
    for (id, email, tier, state) in users {
        let rec =
            codec::encode_as_version(3, &roster::engine::state::UserStateV3::of(state)).unwrap();
        tree.insert(key(b'u', *id), rec).unwrap();
        tree.insert(key(b't', *id), &[tier.index() as u8][..])
            .unwrap();
        let mut e = vec![b'e'];
        e.extend_from_slice(email.as_bytes());
        tree.insert(e, id.as_bytes().as_slice()).unwrap();
        let mut event = key(b's', *id);
        event.extend_from_slice(&0u64.to_be_bytes());
        let mut json = roster::domain::security_log::SecurityEvent::new(
            roster::domain::security_log::SecurityEventKind::LoginFailed,
            roster::domain::time::Timestamp::from_millis(1_700_000_000_000),
        );
        json.detail = Some(format!("archived event of {email}"));
        tree.insert(event, serde_json::to_vec(&json).unwrap())
            .unwrap();
    }
    db.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_3_store_is_migrated_sealed_and_keeps_working() {
    // Users made by this build, then written out the way format 3 stored them.
    let src = tempfile::tempdir().unwrap();
    let m = open(src.path());
    let mut made = Vec::new();
    for (email, tier) in [
        ("legacy.one@example.com", UserTier::Free),
        ("legacy.two@example.com", UserTier::Premium),
    ] {
        let p = m
            .create_user(email, PW, tier, patch("Legacy Lucretia"))
            .await
            .unwrap();
        made.push((p.id, email.to_owned(), tier));
    }
    m.shutdown().await.unwrap();
    drop(m);
    let (store, keys) = keyring(src.path());
    let users: Vec<_> = made
        .iter()
        .map(|(id, email, tier)| {
            let rec = store.load_user(*id).unwrap().unwrap();
            let key = keys.data_key(store.as_ref(), *id).unwrap().unwrap();
            let state = roster::engine::state::decode(&rec, &key, *id).unwrap();
            (*id, email.clone(), *tier, state)
        })
        .collect();
    drop((store, keys));

    let dir = tempfile::tempdir().unwrap();
    write_format_3_store(dir.path(), &users);
    let found = found_in_files(&dir.path().join("sled"), &["legacy.one@example.com"]);
    assert!(!found.is_empty(), "format 3 kept emails in clear");

    // The first start of this build generates a master key and seals everything.
    let m = open(dir.path());
    assert!(dir.path().join("master.key").exists());
    for (id, email, tier, _) in &users {
        let LoginOutcome::Success(s) = m
            .authenticate_user(email, PW, LoginContext::default())
            .await
            .unwrap()
        else {
            panic!("{email} logs in after the migration")
        };
        assert_eq!((s.user.id, s.user.tier), (*id, *tier));
        assert_eq!(s.user.display_name, "Legacy Lucretia");
        let events = m
            .privacy()
            .security_events(&SYS, *id, None, Some(100))
            .await
            .unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.detail.as_deref() == Some(&format!("archived event of {email}"))),
            "the archived event survived: {events:?}"
        );
    }
    m.shutdown().await.unwrap();
    drop(m);
    // sled's log kept the superseded clear records; the start rewrote its files.
    let lingering = found_in_files(
        &dir.path().join("sled"),
        &[
            "legacy.one@example.com",
            "legacy.two@example.com",
            "Lucretia",
        ],
    );
    assert!(lingering.is_empty(), "clear bytes left: {lingering:?}");
    let store = SledStore::open(dir.path(), 1 << 20).unwrap();
    assert!(store.legacy_emails().unwrap().is_empty(), "claims moved");
    for (id, ..) in &users {
        let rec = store.load_user(*id).unwrap().unwrap();
        assert_eq!(codec::version_of(&rec), Some(codec::FORMAT_VERSION));
        assert!(store.load_key(*id).unwrap().is_some());
    }
    for item in store.scan_security_events() {
        let (_, _, blob) = item.unwrap();
        assert!(codec::is_sealed_blob(&blob), "archived events sealed");
    }
    drop(store);
    // A second start finds nothing to migrate and the same key opens it.
    let m = open(dir.path());
    assert!(m.verify_store().corrupt.is_empty());
    m.shutdown().await.unwrap();
}

fn open_err(dir: &Path) -> String {
    match UserManager::open(config(dir, &[])) {
        Ok(_) => panic!("opened without the right master key"),
        Err(EngineError::MasterKey(m)) => m,
        Err(e) => panic!("not a master key error: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_master_key_stops_start_up_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let p = m
        .create_user(
            "keyed@example.com",
            PW,
            UserTier::Free,
            ProfilePatch::default(),
        )
        .await
        .unwrap();
    m.shutdown().await.unwrap();
    drop(m);
    let key_file = dir.path().join("master.key");
    let right = std::fs::read(&key_file).unwrap();
    let fingerprint = MasterKey::parse(std::str::from_utf8(&right).unwrap())
        .unwrap()
        .fingerprint()
        .to_string();
    let records = |dir: &Path| {
        let s = SledStore::open(dir, 1 << 20).unwrap();
        let mut all: Vec<(UserId, Vec<u8>)> = s.scan_users().map(Result::unwrap).collect();
        all.extend(s.scan_keys().map(Result::unwrap));
        (all, s.keyring_meta().unwrap())
    };
    let before = records(dir.path());

    std::fs::remove_file(&key_file).unwrap();
    let e = open_err(dir.path());
    assert!(e.contains("no master key was found"), "{e}");
    assert!(e.contains(&fingerprint), "names the key it needs: {e}");
    assert!(
        !key_file.exists(),
        "no new key is generated for an encrypted store"
    );

    let wrong = MasterKey::generate();
    std::fs::write(&key_file, wrong.to_text().as_bytes()).unwrap();
    let e = open_err(dir.path());
    assert!(
        e.contains(&wrong.fingerprint().to_string()) && e.contains(&fingerprint),
        "names both keys: {e}"
    );
    assert_eq!(
        std::fs::read(&key_file).unwrap(),
        wrong.to_text().as_bytes(),
        "the key file is left alone"
    );

    std::fs::write(&key_file, "not a key\n").unwrap();
    let e = open_err(dir.path());
    assert!(e.contains("64 hexadecimal digits"), "{e}");

    assert_eq!(records(dir.path()), before, "nothing in the store changed");
    std::fs::write(&key_file, &right).unwrap();
    let m = open(dir.path());
    assert_eq!(m.get_user(p.id).await.unwrap().id, p.id);
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_to_start_with_a_wrong_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    m.shutdown().await.unwrap();
    drop(m);
    let other = MasterKey::generate();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("ROSTER_PROFILES__DIR", "")
        .env("ROSTER_PASSWORDS__MEMORY_KIB", "256")
        .env("ROSTER_PASSWORDS__ITERATIONS", "1")
        .env("ROSTER_MASTER_KEY", other.to_text().trim())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is not the key this store is encrypted with")
            && stderr.contains("ROSTER_MASTER_KEY"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_key_rotates_while_the_server_runs() {
    let srv = TestServer::start("").await;
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(srv.user(&format!("rot{i}@example.com"), "free").await);
    }
    let (s, info) = srv
        .call(Method::GET, "/admin/master-key", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 200, "{info}");
    let old = info["fingerprint"].as_str().unwrap().to_owned();
    // The store's first key: in use since the store was made, replacing none.
    assert!(info["in_use_since"].is_string(), "{info}");
    assert_eq!(info["rotated_from"], serde_json::Value::Null, "{info}");
    // Only the operator may.
    let (s, _) = srv
        .call(Method::POST, "/admin/master-key/rotate", None, None)
        .await;
    assert_eq!(s, 401);
    let (s, _) = srv
        .call(
            Method::POST,
            "/admin/master-key/rotate",
            Some(&users[0].1),
            None,
        )
        .await;
    assert_eq!(s, 403);
    let resp = srv
        .http
        .post(format!("{}/admin/master-key/rotate", srv.base))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let text = resp.text().await.unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["done"], 0, "{text}");
    assert_eq!(lines[0]["total"], 5, "{text}");
    let report = &lines.last().unwrap()["rotated"];
    assert_eq!(report["from"], old.as_str(), "{text}");
    assert_eq!(report["rewrapped"], 5, "{text}");
    let new = report["to"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let (_, info) = srv
        .call(Method::GET, "/admin/master-key", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(info["fingerprint"], new.as_str());
    // The rotation's time is the engine's (the test clock's), and it names the old key.
    assert_eq!(info["rotated_from"], old.as_str(), "{info}");
    assert_eq!(
        info["in_use_since"],
        srv.manager.now().to_string().as_str(),
        "{info}"
    );
    // Reads went on: sessions opened before still work, and new users are wrapped
    // with the new key.
    for (_, token) in &users {
        let (s, _) = srv.call(Method::GET, "/users/me", Some(token), None).await;
        assert_eq!(s, 200);
    }
    srv.user("after.rotation@example.com", "free").await;
    let audit = srv
        .manager
        .ops()
        .audit_entries(&SYS, Some(0), Some(1000))
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| serde_json::to_value(&e.body.action).unwrap()["type"] == "master_key_rotated"),
        "audited"
    );
    // The files: the key file holds the new key, the old one is retired beside it.
    let key_file = srv.dir().join("master.key");
    let now = MasterKey::parse(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    assert_eq!(now.fingerprint().to_string(), new);
    let retired = srv.dir().join(format!("master.key.retired-{old}"));
    let was = MasterKey::parse(&std::fs::read_to_string(&retired).unwrap()).unwrap();
    assert_eq!(was.fingerprint().to_string(), old);
    assert!(!srv.dir().join("master.key.next").exists());
    let ids: Vec<UserId> = users.iter().map(|(id, _)| id.parse().unwrap()).collect();
    let tmp = srv.stop().await;
    let dir = tmp.path().to_owned();

    // After a restart every user activates under the new key alone.
    let (store, keys) = keyring(&dir);
    for item in store.scan_keys() {
        let (_, wrapped) = item.unwrap();
        assert_eq!(
            roster::security::keys::wrapped_by(&wrapped),
            Some(now.fingerprint())
        );
    }
    drop((store, keys));
    std::fs::remove_file(&retired).unwrap();
    let m = open(&dir);
    for id in ids {
        m.get_user(id).await.unwrap();
    }
    assert!(m.verify_store().corrupt.is_empty());
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rotation_is_finished_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let ids = stored_users(dir.path(), "cut", 3).await;
    // The state a crash leaves mid-rotation: the new key written beside the old, the
    // keyring record naming it as the target, one data key already rewrapped.
    let key_file = dir.path().join("master.key");
    let old = MasterKey::parse(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    let new = MasterKey::generate();
    std::fs::write(dir.path().join("master.key.next"), new.to_text().as_bytes()).unwrap();
    {
        let store = SledStore::open(dir.path(), 1 << 20).unwrap();
        let mut meta: serde_json::Value =
            serde_json::from_slice(&store.keyring_meta().unwrap().unwrap()).unwrap();
        meta["rotating_to"] = new.fingerprint().to_string().into();
        store
            .put_keyring_meta(&serde_json::to_vec(&meta).unwrap())
            .unwrap();
        let w = store.load_key(ids[0]).unwrap().unwrap();
        let k = old.unwrap(&w, ids[0].as_bytes()).unwrap();
        let again = new.wrap(&k, ids[0].as_bytes());
        assert!(store.replace_key(ids[0], &w, &again).unwrap());
        store.flush().unwrap();
    }
    let m = open(dir.path());
    assert_eq!(
        m.ops().master_key_fingerprint(&SYS).unwrap(),
        new.fingerprint().to_string()
    );
    for id in &ids {
        m.get_user(*id).await.unwrap();
    }
    m.shutdown().await.unwrap();
    drop(m);
    let now = MasterKey::parse(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    assert_eq!(now.fingerprint(), new.fingerprint(), "files swapped");
    assert!(!dir.path().join("master.key.next").exists());
    let store = SledStore::open(dir.path(), 1 << 20).unwrap();
    for item in store.scan_keys() {
        let (_, w) = item.unwrap();
        assert_eq!(
            roster::security::keys::wrapped_by(&w),
            Some(new.fingerprint())
        );
    }
    // Sealed with the user's key: a data key from another user does not open a record.
    let rec = store.load_user(ids[1]).unwrap().unwrap();
    assert!(roster::engine::state::decode(&rec, &DataKey::generate(), ids[1]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_master_key_from_the_command_line_on_a_stopped_store() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    m.create_user(
        "cli@example.com",
        PW,
        UserTier::Free,
        ProfilePatch::default(),
    )
    .await
    .unwrap();
    let before = m.ops().master_key_fingerprint(&SYS).unwrap();
    m.shutdown().await.unwrap();
    drop(m);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["rotate-master-key", "--data-dir"])
        .arg(dir.path())
        .env("ROSTER_PROFILES__DIR", "")
        .env("ROSTER_PASSWORDS__MEMORY_KIB", "256")
        .env("ROSTER_PASSWORDS__ITERATIONS", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 data keys rewrapped"), "{stdout}");
    assert!(
        stderr.contains("rewrapping data keys: 1/1 (100%)"),
        "{stderr}"
    );
    let m = open(dir.path());
    assert_ne!(m.ops().master_key_fingerprint(&SYS).unwrap(), before);
    assert!(matches!(
        m.authenticate_user("cli@example.com", PW, LoginContext::default())
            .await
            .unwrap(),
        LoginOutcome::Success(_)
    ));
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_data_key_does_not_stop_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let ids = stored_users(dir.path(), "dmg", 3).await;
    {
        let store = SledStore::open(dir.path(), 1 << 20).unwrap();
        let w = store.load_key(ids[1]).unwrap().unwrap();
        let mut bad = w.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(store.replace_key(ids[1], &w, &bad).unwrap());
        store.flush().unwrap();
    }
    let m = open(dir.path());
    let report = m.ops().rotate_master_key(&SYS, |_| {}).await.unwrap();
    assert_eq!((report.rewrapped, report.unreadable), (2, 1), "{report:?}");
    for id in [ids[0], ids[2]] {
        m.get_user(id).await.unwrap();
    }
    assert!(matches!(
        m.get_user(ids[1]).await,
        Err(EngineError::Corrupt { .. })
    ));
    m.shutdown().await.unwrap();
    drop(m);
    // The next start is not held up by it either.
    let m = open(dir.path());
    m.get_user(ids[2]).await.unwrap();
    assert_eq!(m.verify_store().corrupt.len(), 1);
    m.shutdown().await.unwrap();
}
