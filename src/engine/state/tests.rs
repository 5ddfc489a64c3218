//! The user state's rules and its stored formats.

use super::*;
use crate::domain::email::Email;
use crate::domain::history::ActivityCounters;
use crate::domain::ids::UserId;
use crate::domain::profile::tests::{policy, template};
use crate::domain::profile::{ProfilePatch, new_profile};
use crate::domain::session::SessionV2;
use crate::domain::tier::UserTier;

pub(crate) fn state(now: Timestamp) -> UserState {
    let p = new_profile(
        UserId::generate(),
        Email::parse("a@b.io").unwrap(),
        &policy(UserTier::Free, &[]),
        &template(),
        &ProfilePatch::default(),
        now,
    )
    .unwrap();
    UserState::new(p, "$argon2id$fake".into())
}

#[test]
fn packed_buckets_store_exactly_as_the_vec_they_replaced() {
    use crate::domain::history::{Bucket, Buckets};
    let v: Vec<_> = (0..12u16)
        .map(|d| Bucket {
            day: 19_000 + 3 * u32::from(d),
            plays: d,
            tracks: u64::from(d) << d,
            ..Bucket::default()
        })
        .collect();
    let packed = Buckets::pack(&v);
    let as_vec = codec::encode_as_version(1, &v).unwrap();
    assert_eq!(codec::encode_as_version(1, &packed).unwrap(), as_vec);
    let back: Buckets = codec::decode_plain(&as_vec).unwrap();
    assert_eq!(back, packed);
}

#[test]
fn sessions_start_check_and_revoke() {
    let t = Timestamp::from_millis(1_000_000_000);
    let mut s = state(t);
    let pol = policy(UserTier::Free, &[]);
    let tok = SessionToken::issue(s.profile.id);
    let ctx = LoginContext {
        device_id: Some("phone".into()),
        ..Default::default()
    };
    s.start_session(&tok, ctx, SessionOrigin::default(), &pol, 8, t);
    assert_eq!(s.profile.usage.logins, 1);
    assert_eq!(*s.known_devices, ["phone".to_string()]);
    let later = t.plus(Duration::from_secs(60));
    assert_eq!(
        s.check_session(&tok, later).map(|x| x.last_seen_at),
        Some(later)
    );
    let forged = SessionToken::issue(s.profile.id);
    assert!(s.check_session(&forged, later).is_none());
    assert!(s.revoke(tok.session_id()));
    assert!(s.check_session(&tok, later).is_none());
    assert!(!s.revoke(tok.session_id()));
}

#[test]
fn idle_timeout_is_the_smaller_of_user_and_tier() {
    let t = Timestamp::from_millis(1_000_000_000);
    let mut s = state(t);
    let pol = policy(UserTier::Free, &[]); // tier: 1 hour
    assert_eq!(s.session_idle_timeout(&pol), Duration::from_secs(3600));
    s.profile
        .make_mut()
        .security_settings
        .session_timeout_minutes = 5;
    assert_eq!(s.session_idle_timeout(&pol), Duration::from_secs(300));
}

fn v2_sessions(s: &UserState) -> Vec<SessionV2> {
    s.sessions
        .iter()
        .map(|x| SessionV2 {
            id: x.id,
            secret_hash: x.secret_hash,
            created_at: x.created_at,
            last_seen_at: x.last_seen_at,
            expires_at: x.expires_at,
            idle_timeout_ms: x.idle_timeout_ms,
            context: x.context.clone(),
        })
        .collect()
}

#[test]
fn records_of_every_older_format_load_into_the_current_one() {
    #[derive(Serialize)]
    struct V1<'a> {
        profile: &'a UserProfile,
        password_hash: &'a str,
        credential_version: u64,
        sessions: &'a [SessionV2],
        failures: &'a FailureState,
        known_devices: &'a [String],
        rate: &'a TokenBucket,
    }
    #[derive(Serialize)]
    struct V2<'a> {
        profile: &'a UserProfile,
        password_hash: &'a str,
        credential_version: u64,
        sessions: &'a [SessionV2],
        failures: &'a FailureState,
        known_devices: &'a [String],
        rate: &'a TokenBucket,
        activity: &'a ActivityCounters,
    }
    let t = Timestamp::from_millis(1_000_000_000);
    let mut s = state(t);
    let tok = SessionToken::issue(s.profile.id);
    s.start_session(
        &tok,
        LoginContext::default(),
        SessionOrigin::default(),
        &policy(UserTier::Free, &[]),
        8,
        t,
    );
    let sessions = v2_sessions(&s);
    let old = V1 {
        profile: &s.profile,
        password_hash: &s.password_hash,
        credential_version: s.credential_version,
        sessions: &sessions,
        failures: &s.failures,
        known_devices: &s.known_devices,
        rate: &s.rate,
    };
    let v1 = codec::encode_as_version(1, &old).unwrap();
    // Learning and events are new in format 3; a login of format 2 had none.
    let mut expected = s.clone();
    expected.risk = Sparse::default();
    expected.security = SecurityLog::default();
    let key = DataKey::generate();
    let id = s.profile.id;
    assert_eq!(decode(&v1, &key, id).unwrap(), expected);
    let counters = ActivityCounters {
        tracks_played: 3,
        ..ActivityCounters::default()
    };
    expected.history = ActivityHistory::from(counters.clone());
    let v2 = codec::encode_as_version(
        2,
        &V2 {
            profile: &s.profile,
            password_hash: &s.password_hash,
            credential_version: s.credential_version,
            sessions: &sessions,
            failures: &s.failures,
            known_devices: &s.known_devices,
            rate: &s.rate,
            activity: &counters,
        },
    )
    .unwrap();
    let loaded = decode(&v2, &key, id).unwrap();
    assert_eq!(loaded, expected);
    assert_eq!(
        loaded.sessions[0].authenticated_at, t,
        "older sessions count as authenticated at login"
    );
    // Second factors, events and a day of history.
    s.mfa.set_recovery(crate::security::otp::recovery_codes().1);
    s.record(SecurityEvent::new(
        crate::domain::security_log::SecurityEventKind::LoginFailed,
        t,
    ));
    s.history
        .record(&[crate::domain::activity::ActivityEvent::Searched { at: t }]);
    // Formats 3 (in clear) and 4 (sealed) kept counters, not days.
    let mut as_counters = s.clone();
    as_counters.history = ActivityHistory::from(s.history.counters());
    let v3 = codec::encode_as_version(3, &UserStateV3::of(&s)).unwrap();
    assert_eq!(decode(&v3, &key, id).unwrap(), as_counters);
    let v4 = codec::seal_as_version(4, &UserStateV3::of(&s), &key, id.as_bytes()).unwrap();
    assert_eq!(decode(&v4, &key, id).unwrap(), as_counters);
    // Format 5 kept the history, with the fields in their earlier order.
    let v5 = codec::seal_as_version(5, &UserStateV5::of(&s), &key, id.as_bytes()).unwrap();
    assert_eq!(decode(&v5, &key, id).unwrap(), s);
    // Format 7 kept the taste without its moments, and no recommendation feedback.
    let mut tasted = s.clone();
    let mut taste = crate::domain::taste::Taste::default();
    let play = crate::domain::activity::ActivityEvent::TrackPlayed {
        track_id: "t".into(),
        at: t,
        duration_ms: 1_000,
    };
    let traits = crate::domain::taste::Traits {
        audio: [30_000; 8],
        known: 0xff,
        genres: &[],
    };
    taste.learn(&play, Some(traits), 0.2);
    assert_eq!(taste.moments.len(), 1);
    tasted.taste = Some(Box::new(taste.clone()));
    let tag = crate::domain::feedback::ListTag::new(
        crate::domain::settings::PersonalizationLevel::Standard,
        false,
    );
    tasted.feedback.record(&[
        crate::domain::activity::ActivityEvent::RecommendationClicked {
            at: t,
            recommendation_id: tag.recommendation_id(1),
            track_id: None,
        },
    ]);
    let v7 = codec::seal_as_version(7, &UserStateV7::of(&tasted), &key, id.as_bytes()).unwrap();
    let mut expected = s.clone();
    taste.moments = Box::default();
    expected.taste = Some(Box::new(taste));
    assert_eq!(decode(&v7, &key, id).unwrap(), expected);
    let current = encode(&tasted, &key, id).unwrap();
    assert_eq!(decode(&current, &key, id).unwrap(), tasted);
    // Format 8 is format 9 without the identity provider's entry.
    let v8 = codec::seal_as_version(8, &UserStateV8::of(&tasted), &key, id.as_bytes()).unwrap();
    assert_eq!(decode(&v8, &key, id).unwrap(), tasted);
    let mut provisioned = tasted.clone();
    provisioned.directory = Some(Box::new(crate::domain::directory::DirectoryEntry {
        external_id: Some("00u1".into()),
        deactivated_at: Some(t),
        ..Default::default()
    }));
    let current = encode(&provisioned, &key, id).unwrap();
    assert_eq!(decode(&current, &key, id).unwrap(), provisioned);
    // Format 9 is format 10 without the days of rate refusals.
    let v9 = codec::seal_as_version(9, &UserStateV9::of(&provisioned), &key, id.as_bytes());
    assert_eq!(decode(&v9.unwrap(), &key, id).unwrap(), provisioned);
    provisioned.refusals.record(t);
    let current = encode(&provisioned, &key, id).unwrap();
    assert_eq!(decode(&current, &key, id).unwrap(), provisioned);
    // Format 10 is format 11 without an operator's hold.
    let v10 = codec::seal_as_version(10, &UserStateV10::of(&provisioned), &key, id.as_bytes());
    assert_eq!(decode(&v10.unwrap(), &key, id).unwrap(), provisioned);
    provisioned.hold = Some(Box::new(AccountHold {
        locked_at: Some(t),
        reset_required_at: None,
    }));
    let current = encode(&provisioned, &key, id).unwrap();
    assert_eq!(decode(&current, &key, id).unwrap(), provisioned);
    // Format 11 is format 12 without linked accounts.
    let v11 = codec::seal_as_version(11, &UserStateV11::of(&provisioned), &key, id.as_bytes());
    assert_eq!(decode(&v11.unwrap(), &key, id).unwrap(), provisioned);
    let mut links = crate::domain::link::Links::default();
    links.pending.push(crate::domain::link::PendingLink {
        provider: "spotify".into(),
        secret: [9; crate::domain::link::STATE_SECRET_LEN],
        verifier: Some("verifier".into()),
        session: crate::domain::ids::SessionId::from_bytes([3; 16]),
        expires_at: t,
    });
    links.accounts.push(crate::domain::link::LinkedAccount {
        provider: "lastfm".into(),
        scopes: Vec::new(),
        status: crate::domain::link::LinkStatus::Active,
        linked_at: t,
        refreshed_at: None,
        synced_at: Some(t),
        instance_url: None,
        account: None,
        creative: None,
        tokens: crate::domain::link::LinkTokens {
            access: "session key".into(),
            refresh: None,
            expires_at: None,
        },
    });
    provisioned.links = Some(Box::new(links));
    let current = encode(&provisioned, &key, id).unwrap();
    assert_eq!(decode(&current, &key, id).unwrap(), provisioned);
    // Format 12 is format 13 without the accounts' names at the providers.
    let v12 = codec::seal_as_version(12, &UserStateV12::of(&provisioned), &key, id.as_bytes());
    assert_eq!(decode(&v12.unwrap(), &key, id).unwrap(), provisioned);
    provisioned.links.as_mut().unwrap().accounts[0].account = Some("rj".into());
    let current = encode(&provisioned, &key, id).unwrap();
    assert_eq!(decode(&current, &key, id).unwrap(), provisioned);
    // The current format round-trips everything.
    let sealed = encode(&s, &key, id).unwrap();
    assert_eq!(sealed[0], codec::FORMAT_VERSION);
    assert_eq!(decode(&sealed, &key, id).unwrap(), s);
    assert!(codec::is_sealed_record(&v4) && codec::is_sealed_record(&sealed));
    assert!(!codec::is_sealed_record(&v3));
    let email = s.profile.email.as_str().as_bytes();
    assert!(v3.windows(email.len()).any(|w| w == email));
    assert!(
        !sealed.windows(email.len()).any(|w| w == email),
        "the email is not in the sealed record"
    );
    // Another user's key does not open it.
    assert_eq!(
        decode(&sealed, &DataKey::generate(), id),
        Err(CodecError::Unauthentic)
    );
    // A current reader does not mistake an old payload for a new one.
    assert!(codec::open_sealed::<UserState>(&v1, &key, id.as_bytes()).is_err());
    assert!(codec::open_sealed::<UserState>(&v2, &key, id.as_bytes()).is_err());
    assert!(codec::open_sealed::<UserState>(&v4, &key, id.as_bytes()).is_err());
}

#[test]
fn oldest_sessions_give_way_beyond_the_cap() {
    let t = Timestamp::from_millis(1_000_000_000);
    let mut s = state(t);
    let pol = policy(UserTier::Free, &[]);
    let toks: Vec<_> = (0..5).map(|_| SessionToken::issue(s.profile.id)).collect();
    for tok in &toks {
        s.start_session(
            tok,
            LoginContext::default(),
            SessionOrigin::default(),
            &pol,
            3,
            t,
        );
    }
    assert_eq!(s.sessions.len(), 3);
    assert!(s.check_session(&toks[0], t).is_none());
    assert!(s.check_session(&toks[4], t).is_some());
    assert_eq!(s.revoke_all_except(Some(toks[4].session_id())), 2);
    assert_eq!(s.sessions.len(), 1);
}
