//! Criterion micro-benchmarks of the per-request costs: the snapshot codec, session
//! token handling, one validation round trip through `UserManager`, risk scoring, and
//! the cost of encryption at rest.
//!
//! `cargo bench --bench engine`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use roster::config::{Config, DEFAULT_TOML, parse_toml};
use roster::domain::ids::UserId;
use roster::domain::profile::ProfilePatch;
use roster::domain::session::LoginContext;
use roster::engine::state::{UserState, UserStateV3};
use roster::security::keys::DataKey;
use roster::security::token::SessionToken;
use roster::store::codec;
use roster::{LoginOutcome, UserManager, UserTier};

const PW: &str = "correct horse battery staple";

fn config(dir: &std::path::Path) -> Config {
    Config::from_layers(vec![
        parse_toml("default", DEFAULT_TOML).unwrap(),
        parse_toml("test", include_str!("../config/test.toml")).unwrap(),
        parse_toml(
            "dir",
            &format!("[store]\ndata_dir = {:?}\n", dir.display().to_string()),
        )
        .unwrap(),
    ])
    .unwrap()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = UserManager::open(config(dir.path())).unwrap();
    let (token, state) = rt.block_on(async {
        m.create_user(
            "bench@example.com",
            PW,
            UserTier::Premium,
            ProfilePatch::default(),
        )
        .await
        .unwrap();
        let LoginOutcome::Success(s) = m
            .authenticate_user("bench@example.com", PW, LoginContext::default())
            .await
            .unwrap()
        else {
            panic!("login failed")
        };
        let profile = s.user.clone();
        (
            s.token,
            UserState::new(
                profile,
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            ),
        )
    });

    let id = state.profile.id;
    let key = DataKey::generate();
    let record = roster::engine::state::encode(&state, &key, id).unwrap();
    c.bench_function("codec/encode_user_state", |b| {
        b.iter(|| roster::engine::state::encode(&state, &key, id).unwrap())
    });
    c.bench_function("codec/decode_user_state", |b| {
        b.iter(|| roster::engine::state::decode(&record, &key, id).unwrap())
    });
    c.bench_function("token/parse_and_hash", |b| {
        b.iter(|| SessionToken::parse(&token).unwrap().secret_hash())
    });
    c.bench_function("token/issue", |b| {
        b.iter(|| SessionToken::issue(UserId::generate()))
    });
    c.bench_function("manager/validate_session_round_trip", |b| {
        b.to_async(&rt)
            .iter(|| async { m.login().validate(&token).await.unwrap().unwrap() })
    });
    rt.block_on(m.shutdown()).unwrap();
}

/// Risk scoring of one login against a well-learned profile (32 networks, 16
/// countries, a full hour histogram, 32 devices), the worst case the caps allow:
/// goal < 20 µs, so that it never shows next to argon2.
fn risk(c: &mut Criterion) {
    use roster::domain::risk::{Attempt, Location, RiskConfig, RiskProfile, assess};
    use roster::domain::settings::{MfaMethod, SecuritySettings};
    use roster::domain::time::Timestamp;
    let cfg = RiskConfig {
        deny_networks: (0..16)
            .map(|i| format!("192.0.{i}.0/24").parse().unwrap())
            .collect(),
        ..RiskConfig::default()
    };
    let mut profile = RiskProfile::default();
    let t0 = Timestamp::from_millis(1_800_000_000_000);
    for i in 0..64u32 {
        let loc = Location::new(if i % 2 == 0 { "FR" } else { "DE" }, 48.0, 2.0).unwrap();
        let ip = format!("198.51.{i}.7").parse().unwrap();
        let a = Attempt {
            device_id: None,
            ip: Some(ip),
            location: Some(&loc),
            recent_failures: 0,
            denied: None,
        };
        profile.learn(
            &a,
            &cfg,
            t0.plus(std::time::Duration::from_secs(u64::from(i) * 3600)),
        );
    }
    let devices: Vec<String> = (0..32).map(|i| format!("device-{i}")).collect();
    let settings = SecuritySettings {
        require_mfa: false,
        mfa_methods: vec![MfaMethod::Authenticator],
        session_timeout_minutes: 60,
        risk_score_threshold: 0.5,
        anomaly_detection_enabled: true,
    };
    let ny = Location::new("US", 40.7, -74.0).unwrap();
    let attempt = Attempt {
        device_id: Some("phone"),
        ip: Some("203.0.113.5".parse().unwrap()),
        location: Some(&ny),
        recent_failures: 4,
        denied: None,
    };
    let now = t0.plus(std::time::Duration::from_secs(65 * 3600));
    c.bench_function("risk_assess_login", |b| {
        b.iter(|| assess(&profile, &devices, &attempt, &settings, &cfg, now))
    });
}

/// The cost of encryption at rest on the two store paths it touches, each against the
/// same work in clear (format 3): an activation (read the route, which now carries the
/// wrapped data key, and the record; unwrap; open; decode) and a snapshot write (encode,
/// seal, write). Goal: under 10% of the activations/s and snapshot-writes/s figures.
fn encryption(c: &mut Criterion) {
    use roster::domain::email::Email;
    use roster::domain::profile::new_profile;
    use roster::domain::time::Timestamp;
    use roster::security::keys::MasterKey;
    use roster::store::{Batch, KeyStore, Op, SledStore, Store, UserStore};

    let cfg = config(std::path::Path::new("/unused"));
    let tc = cfg.tier(UserTier::Premium);
    let profile = new_profile(
        UserId::generate(),
        Email::parse("bench@example.com").unwrap(),
        &tc.policy,
        &tc.template,
        &ProfilePatch::default(),
        Timestamp::from_millis(1_800_000_000_000),
    )
    .unwrap();
    let state = UserState::new(
        profile,
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
    );
    // Two stores of the same users, as format 3 wrote them (clear, no key entries) and
    // as this build does (sealed, with a wrapped data key next to each record), big
    // enough that reads walk a real tree. ROSTER_BENCH_USERS changes the size.
    let n: usize = std::env::var("ROSTER_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let master = MasterKey::generate();
    let (clear_dir, sealed_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = SledStore::open(sealed_dir.path(), 256 << 20).unwrap();
    let plain = codec::encode_as_version(3, &UserStateV3::of(&state)).unwrap();
    let ids: Vec<UserId> = (0..n).map(|_| UserId::generate()).collect();
    {
        // Format 3's create: email claim, record and tier route in one transaction.
        let db = sled::open(clear_dir.path().join("sled")).unwrap();
        let tree = db.open_tree("roster").unwrap();
        for (i, id) in ids.iter().enumerate() {
            let k = |p: u8| [&[p][..], id.as_bytes()].concat();
            let email = format!("euser{i}@example.com").into_bytes();
            tree.transaction(|tx| {
                tx.insert(email.as_slice(), id.as_bytes().as_slice())?;
                tx.insert(k(b'u'), plain.as_slice())?;
                tx.insert(k(b't'), &[1u8][..])?;
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .unwrap();
        }
        db.flush().unwrap();
    }
    let clear_store = SledStore::open(clear_dir.path(), 256 << 20).unwrap();
    for (i, id) in ids.iter().enumerate() {
        let key = DataKey::generate();
        let wrapped = master.wrap(key.bytes(), id.as_bytes());
        let sealed = roster::engine::state::encode(&state, &key, *id).unwrap();
        let mut index = [0u8; 32];
        index[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let op = Op::CreateUser {
            id: *id,
            revision: 1,
            email_index: index,
            tier: UserTier::Premium,
            wrapped_key: wrapped,
            record: sealed,
        };
        store.apply(&Batch::of(op)).unwrap();
    }
    let sealed_id = ids[0];
    let key = DataKey::from_bytes(
        master
            .unwrap(
                &store.load_key(sealed_id).unwrap().unwrap(),
                sealed_id.as_bytes(),
            )
            .unwrap(),
    );
    let wrapped = store.load_key(sealed_id).unwrap().unwrap();
    let dummy = DataKey::generate();
    // Reads hop through the users (a large prime stride), as activations do.
    let mut next = {
        let mut i = 0usize;
        move || {
            i = (i + 7919) % n;
            i
        }
    };

    let mut g = c.benchmark_group("at_rest");
    let kilobyte = vec![7u8; 1024];
    g.bench_function("seal_1KiB", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(1100);
            key.seal_into(b"aad", &kilobyte, &mut out);
            out
        })
    });
    let mut sealed_kb = Vec::new();
    key.seal_into(b"aad", &kilobyte, &mut sealed_kb);
    g.bench_function("open_1KiB", |b| {
        b.iter(|| key.open(b"aad", &sealed_kb).unwrap())
    });
    g.bench_function("unwrap_data_key", |b| {
        b.iter(|| master.unwrap(&wrapped, sealed_id.as_bytes()).unwrap())
    });
    g.bench_function("activation_read/clear", |b| {
        b.iter(|| {
            let id = ids[next()];
            let _tier = clear_store.tier_of(id).unwrap().unwrap();
            let rec = clear_store.load_user(id).unwrap().unwrap();
            roster::engine::state::decode(&rec, &dummy, id).unwrap()
        })
    });
    g.bench_function("activation_read/sealed", |b| {
        b.iter(|| {
            let id = ids[next()];
            let (_tier, w) = store.route_of(id).unwrap().unwrap();
            let rec = store.load_user(id).unwrap().unwrap();
            let k = DataKey::from_bytes(master.unwrap(&w.unwrap(), id.as_bytes()).unwrap());
            roster::engine::state::decode(&rec, &k, id).unwrap()
        })
    });
    // A write names the revision it was made from: each store's users are written from the
    // revision they are at (0 for the records of format 3, 1 for the new ones).
    let put = |store: &SledStore, revs: &mut [u64], i: usize, record: Vec<u8>| {
        let expect = revs[i];
        revs[i] = roster::store::next_revision(expect);
        let op = Op::PutUser {
            id: ids[i],
            record,
            expect,
            revision: revs[i],
            tier: None,
        };
        store.apply(&Batch::of(op)).unwrap();
    };
    let mut clear_revs = vec![0u64; n];
    g.bench_function("snapshot_write/clear", |b| {
        b.iter(|| {
            let i = next();
            let rec = codec::encode_as_version(3, &UserStateV3::of(&state)).unwrap();
            put(&clear_store, &mut clear_revs, i, rec);
        })
    });
    // One data key for every user: the cost is the same as each user's own.
    let mut sealed_revs = vec![1u64; n];
    g.bench_function("snapshot_write/sealed", |b| {
        b.iter(|| {
            let i = next();
            let rec = roster::engine::state::encode(&state, &key, ids[i]).unwrap();
            put(&store, &mut sealed_revs, i, rec);
        })
    });
    g.finish();
}

criterion_group!(engine, benches, risk, encryption);
criterion_main!(engine);
