//! The front door's rules, without HTTP: a facade called with a [`Principal`] decides
//! access, step-up, tier gates and audit records itself, so every client gets them.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::config::{DEFAULT_TOML, parse_toml};
use crate::domain::audit::{AuditAction, AuditActor};
use crate::domain::email::Email;
use crate::domain::mfa::SecondFactor;
use crate::domain::time::ManualClock;
use crate::engine::StepUpOutcome;
use crate::store::{
    Applied, ArchiveStore, AuditStore, EmailIndex, KeyStore, ModelKind, ModelStore, Op, Revision,
    Route, SecurityEventScan, SledStore, StoreError, UserScan, UserStore,
};

const PW: &str = "correct horse battery staple";

fn config(dir: &std::path::Path) -> Config {
    let layers = vec![
        parse_toml("default", DEFAULT_TOML).unwrap(),
        parse_toml("test", include_str!("../../../config/test.toml")).unwrap(),
        parse_toml(
            "here",
            &format!("[store]\ndata_dir = {:?}\n", dir.display().to_string()),
        )
        .unwrap(),
    ];
    Config::from_layers(layers).unwrap()
}

fn open(dir: &std::path::Path) -> (UserManager, ManualClock) {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let setup = Setup::new(config(dir)).clock(Arc::new(clock.clone()));
    (UserManager::open(setup).unwrap(), clock)
}

/// A Free user, logged in: its id and the principal of its new session.
async fn signed_in(m: &UserManager, email: &str) -> (UserId, Principal) {
    let p = m
        .create_user(email, PW, UserTier::Free, ProfilePatch::default())
        .await
        .unwrap();
    let LoginOutcome::Success(s) = m
        .authenticate_user(email, PW, LoginContext::default())
        .await
        .unwrap()
    else {
        panic!("login of {email}")
    };
    let by = Principal::User(UserSession {
        user: p.id,
        session: s.session_id,
    });
    (p.id, by)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_cannot_delete_another_user() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = open(dir.path());
    let (_, mallory) = signed_in(&m, "mallory@x.io").await;
    let (victim, _) = signed_in(&m, "victim@x.io").await;
    let refused = m.accounts().delete(&mallory, victim).await;
    assert_eq!(
        refused,
        Err(EngineError::Forbidden(principal::OWN_ACCOUNT_ONLY))
    );
    assert_eq!(
        m.accounts().delete(&Principal::Anonymous, victim).await,
        Err(EngineError::Unauthenticated(principal::TOKEN_REQUIRED))
    );
    assert!(
        m.get_user(victim).await.is_ok(),
        "the victim is still there"
    );
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_oneself_needs_a_recent_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let (m, clock) = open(dir.path());
    let (id, me) = signed_in(&m, "me@x.io").await;
    let window = m.config().mfa.step_up_window;
    clock.advance(window + Duration::from_secs(1));
    assert_eq!(
        m.accounts().delete(&me, id).await,
        Err(EngineError::StepUpRequired)
    );
    assert!(m.get_user(id).await.is_ok(), "nothing was deleted");
    // The same session, after proving its password again, may.
    let stepped = m.login().step_up(&me, PW, None).await.unwrap();
    assert!(matches!(stepped, StepUpOutcome::Done { .. }), "{stepped:?}");
    m.accounts().delete(&me, id).await.unwrap();
    assert_eq!(m.get_user(id).await, Err(EngineError::NotFound));
    // And the deletion is on record, naming the user as the one who did it.
    let log = m.ops().audit_entries(&LIBRARY, None, None).unwrap();
    let last = log.last().unwrap();
    assert_eq!(last.body.actor, AuditActor::User { id });
    assert_eq!(last.body.action, AuditAction::UserDeleted { user: id });
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_with_an_authenticator_needs_a_step_up() {
    let dir = tempfile::tempdir().unwrap();
    let (m, clock) = open(dir.path());
    let (id, me) = signed_in(&m, "totp@x.io").await;
    let enrollment = m.mfa().begin_totp(&me, id).await.unwrap();
    let secret = totp_rs::Secret::Encoded(enrollment.secret.clone())
        .to_bytes()
        .unwrap();
    let totp = &m.config().mfa.totp;
    let code = crate::security::totp::code_at(&secret, totp, m.now().unix_secs());
    m.mfa().confirm_totp(&me, id, &code).await.unwrap();
    clock.advance(m.config().mfa.step_up_window + Duration::from_secs(totp.step_secs));
    let new = "an entirely new passphrase here";
    assert_eq!(
        m.accounts().change_password(&me, id, PW, new).await,
        Err(EngineError::StepUpRequired),
        "the password alone no longer proves the user"
    );
    let code = crate::security::totp::code_at(&secret, totp, m.now().unix_secs());
    let answer = FactorAnswer::code(SecondFactor::Authenticator, code);
    let stepped = m.login().step_up(&me, PW, Some(answer)).await.unwrap();
    assert!(matches!(stepped, StepUpOutcome::Done { .. }), "{stepped:?}");
    assert_eq!(
        m.accounts().change_password(&me, id, PW, new).await,
        Ok(PasswordChange::Changed)
    );
    // Nobody else changes a password: not the operator, not another user.
    let op = m
        .accounts()
        .change_password(&Principal::Operator, id, new, PW)
        .await;
    assert_eq!(op, Err(EngineError::Forbidden(principal::SESSION_REQUIRED)));
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_user_cannot_upgrade_itself_or_sign_up_above_free() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = open(dir.path());
    let (id, me) = signed_in(&m, "cheap@x.io").await;
    assert_eq!(
        m.accounts().change_tier(&me, id, UserTier::Vip).await,
        Err(EngineError::Forbidden(
            "tier changes need the operator credential"
        ))
    );
    assert_eq!(m.get_user(id).await.unwrap().tier, UserTier::Free);
    let signup = m
        .accounts()
        .create(
            &Principal::Anonymous,
            "greedy@x.io",
            PW,
            UserTier::Premium,
            ProfilePatch::default(),
        )
        .await;
    assert!(
        matches!(signup, Err(EngineError::Forbidden(_))),
        "{signup:?}"
    );
    // The operator may, and the change is audited as the operator's.
    let p = m
        .accounts()
        .change_tier(&Principal::Operator, id, UserTier::Premium)
        .await
        .unwrap();
    assert_eq!(p.tier, UserTier::Premium);
    let log = m
        .ops()
        .audit_entries(&Principal::Operator, None, None)
        .unwrap();
    assert_eq!(
        (&log[0].body.actor, &log[0].body.action),
        (
            &AuditActor::Operator,
            &AuditAction::TierChanged {
                user: id,
                to: UserTier::Premium,
                from: Some(UserTier::Free),
            }
        )
    );
    assert!(
        m.ops().audit_entries(&me, None, None).is_err(),
        "operators only"
    );
    m.shutdown().await.unwrap();
}

mod shares;
mod watched;
use watched::Watched;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_whose_audit_record_cannot_be_written_is_not_done() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(Watched::new(dir.path(), true));
    let m = UserManager::open(Setup::new(config(dir.path())).store(store)).unwrap();
    let (id, me) = signed_in(&m, "kept@x.io").await;
    let op = Principal::Operator;
    // Unaudited work goes on as usual.
    let named = ProfilePatch {
        display_name: Some("Still Here".into()),
        ..Default::default()
    };
    m.accounts().update(&me, id, named).await.unwrap();
    // Every audited action is refused with its record, and leaves no trace.
    assert!(m.accounts().delete(&op, id).await.is_err());
    assert!(m.accounts().delete(&me, id).await.is_err());
    assert!(
        m.accounts()
            .change_tier(&op, id, UserTier::Vip)
            .await
            .is_err()
    );
    let consent = vec![(crate::domain::consent::Purpose::Analytics, true)];
    assert!(
        m.privacy()
            .update_consents(&me, id, consent, None)
            .await
            .is_err()
    );
    // An operator's read whose record cannot be written hands nothing out.
    assert!(m.accounts().get(&op, id).await.is_err());
    assert!(m.accounts().export(&op, id).await.is_err());
    let p = m.get_user(id).await.unwrap();
    assert_eq!(
        (p.tier, p.display_name.as_str()),
        (UserTier::Free, "Still Here")
    );
    let consents = m.privacy().consents(&me, id).await.unwrap();
    assert!(consents.history.is_empty(), "no consent was recorded");
    m.shutdown().await.unwrap();
    drop(m);
    // After a restart, the user is still there and unchanged.
    let m = UserManager::open(config(dir.path())).unwrap();
    let p = m.get_user(id).await.unwrap();
    assert_eq!(
        (p.tier, p.display_name.as_str()),
        (UserTier::Free, "Still Here")
    );
    assert_eq!(
        m.ops().verify_audit(&op).unwrap(),
        AuditVerdict::Intact { records: 0 }
    );
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_actor_thread_ever_writes_to_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let watched = Arc::new(Watched::new(dir.path(), false));
    let store: Arc<dyn Store> = Arc::clone(&watched) as Arc<dyn Store>;
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let setup = Setup::new(config(dir.path()))
        .store(store)
        .clock(Arc::new(clock.clone()));
    let m = UserManager::open(setup).unwrap();
    // Every kind of write: sign-up, login, update, quota use, step-up, revocation, tier
    // move, soft-state snapshots and passivation, deletion.
    let (id, me) = signed_in(&m, "watched@x.io").await;
    let named = ProfilePatch {
        display_name: Some("Seen".into()),
        ..Default::default()
    };
    m.accounts().update(&me, id, named).await.unwrap();
    let kind = crate::domain::profile::QuotaKind::Playlists;
    m.accounts().record_usage(&me, id, kind, 1).await.unwrap();
    m.login().step_up(&me, PW, None).await.unwrap();
    let wrong = m
        .authenticate_user("watched@x.io", "not the password", LoginContext::default())
        .await
        .unwrap();
    assert!(matches!(wrong, LoginOutcome::Denied(_)));
    m.accounts()
        .change_tier(&Principal::Operator, id, UserTier::Premium)
        .await
        .unwrap();
    let (other, them) = signed_in(&m, "passive@x.io").await;
    m.sessions().revoke_others(&them, other).await.unwrap();
    clock.advance(m.config().engine.passivate_after + Duration::from_secs(1));
    m.sweep_now().await.unwrap();
    m.get_user(other).await.unwrap();
    m.accounts().delete(&Principal::Operator, id).await.unwrap();
    m.shutdown().await.unwrap();
    let writers = watched.writers.lock().unwrap().clone();
    assert_eq!(
        writers.into_iter().collect::<Vec<_>>(),
        vec!["roster-writer".to_owned()],
        "every write went through the store's writer thread"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_up_queued_when_a_rotation_starts_is_rewrapped_too() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let watched = Arc::new(Watched {
        slow_creates: Duration::from_millis(400),
        ..Watched::new(dir.path(), false)
    });
    let store: Arc<dyn Store> = Arc::clone(&watched) as Arc<dyn Store>;
    let m = Arc::new(UserManager::open(Setup::new(config(dir.path())).store(store)).unwrap());
    let before = m
        .ops()
        .master_key_fingerprint(&Principal::Operator)
        .unwrap();
    // A sign-up takes its data key from the current master key and hands its batch to
    // the writer, which is still applying it when the rotation begins.
    let signing_up = {
        let m = Arc::clone(&m);
        tokio::spawn(async move {
            m.create_user("late@x.io", PW, UserTier::Free, ProfilePatch::default())
                .await
        })
    };
    while !watched.creating.load(SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let report = m
        .ops()
        .rotate_master_key(&Principal::Operator, |_| {})
        .await
        .unwrap();
    assert_eq!(report.from, before);
    let p = signing_up.await.unwrap().unwrap();
    // The old key is gone from the ring: the user reads only if its key was rewrapped.
    m.shutdown().await.unwrap();
    drop(m);
    drop(watched);
    let m = UserManager::open(config(dir.path())).unwrap();
    assert_eq!(m.get_user(p.id).await.unwrap().id, p.id);
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_made_before_emails_were_normalised_move_once_and_look_alikes_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    let signed_in = |m: &UserManager, email: &'static str| {
        let m = m.clone();
        async move {
            matches!(
                m.authenticate_user(email, PW, LoginContext::default())
                    .await
                    .unwrap(),
                LoginOutcome::Success(_)
            )
        }
    };
    let (ann, carl_then, carl_now) = {
        let (m, _) = open(dir.path());
        let e = m.engine();
        let free = ProfilePatch::default;
        // Put a claim back where a build from before normalisation kept it: under the
        // address lowercased only.
        let as_before = |id: UserId, email: &str| {
            let email = Email::parse(email).unwrap();
            let op = Op::MoveEmailIndex {
                id,
                from: e.keys.email_index(&email.normalized()),
                to: e.keys.email_index(&email.legacy_normalized()),
            };
            assert_eq!(e.store.apply(&Batch::of(op)).unwrap(), Applied::Done);
        };
        let ann = m
            .create_user("\u{FF21}nn@example.com", PW, UserTier::Free, free())
            .await
            .unwrap()
            .id;
        as_before(ann, "\u{FF21}nn@example.com");
        // Two look-alikes, as the old keying let them be made.
        let carl_then = m
            .create_user("\u{FF23}arl@example.com", PW, UserTier::Free, free())
            .await
            .unwrap()
            .id;
        as_before(carl_then, "\u{FF23}arl@example.com");
        let carl_now = m
            .create_user("carl@example.com", PW, UserTier::Free, free())
            .await
            .unwrap()
            .id;
        assert!(
            !signed_in(&m, "ann@example.com").await,
            "not found as it was"
        );
        super::super::keyring::Keyring::forget_email_normalization(e.store.as_ref());
        m.shutdown().await.unwrap();
        (ann, carl_then, carl_now)
    };
    let (m, _) = open(dir.path());
    // Moved: found by every look-alike spelling, and the address cannot be taken again.
    assert!(signed_in(&m, "ann@example.com").await);
    assert!(signed_in(&m, "\u{FF21}NN@example.com").await);
    let again = m
        .create_user(
            "ANN@example.com",
            PW,
            UserTier::Free,
            ProfilePatch::default(),
        )
        .await;
    assert!(matches!(again, Err(EngineError::EmailTaken)), "{again:?}");
    // Look-alikes from before: the one holding the normalised key keeps it; the other
    // keeps its old claim, and deleting it takes only its own.
    assert!(signed_in(&m, "carl@example.com").await);
    let e = m.engine();
    let old = Email::parse("\u{FF23}arl@example.com").unwrap();
    let old_key = e.keys.email_index(&old.legacy_normalized());
    assert_eq!(e.store.lookup_email(&old_key).unwrap(), Some(carl_then));
    m.accounts()
        .delete(&Principal::System("test"), carl_then)
        .await
        .unwrap();
    assert_eq!(e.store.lookup_email(&old_key).unwrap(), None);
    assert!(
        signed_in(&m, "carl@example.com").await,
        "carl keeps its address"
    );
    assert_eq!(m.get_user(carl_now).await.unwrap().id, carl_now);
    assert_eq!(m.get_user(ann).await.unwrap().id, ann);
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_write_that_fails_leaves_memory_as_the_store_is() {
    let dir = tempfile::tempdir().unwrap();
    let watched = Arc::new(Watched::new(dir.path(), false));
    let store: Arc<dyn Store> = Arc::clone(&watched) as Arc<dyn Store>;
    let m = UserManager::open(Setup::new(config(dir.path())).store(store)).unwrap();
    let track = |id: &str| crate::domain::catalog::Track {
        id: id.into(),
        title: format!("Title {id}"),
        artists: vec![],
        genres: vec![],
        tags: vec![],
        duration_ms: None,
        release_year: None,
        isrc: None,
        audio: None,
        embedding: None,
    };
    let p = m.personalization();
    let op = Principal::Operator;
    p.put_tracks(&op, vec![track("a")]).await.unwrap();
    watched
        .failing_flush
        .store(true, std::sync::atomic::Ordering::SeqCst);
    // Applied but not made durable: the caller hears of the failure, and memory holds
    // what the store shows (both tracks), not what it held before.
    assert!(p.put_tracks(&op, vec![track("b")]).await.is_err());
    assert_eq!(p.catalog(&op).unwrap().tracks, 2);
    assert!(p.delete_track(&op, "a").await.is_err());
    assert_eq!(p.catalog(&op).unwrap().tracks, 1);
    watched
        .failing_flush
        .store(false, std::sync::atomic::Ordering::SeqCst);
}
