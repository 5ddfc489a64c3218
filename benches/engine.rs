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
use roster::engine::state::UserState;
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
            .iter(|| async { m.validate_session(&token).await.unwrap().unwrap() })
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
    };
    let now = t0.plus(std::time::Duration::from_secs(65 * 3600));
    c.bench_function("risk_assess_login", |b| {
        b.iter(|| assess(&profile, &devices, &attempt, &settings, &cfg, now))
    });
}

/// The cost of encryption at rest on the two store paths it touches, each against the
/// same work in clear (format 3): an activation (read the record, and now the wrapped
/// data key; unwrap; open; decode) and a snapshot write (encode, seal, write). Goal:
/// under 10% of the activations/s and snapshot-writes/s figures.
fn encryption(c: &mut Criterion) {
    use roster::domain::email::Email;
    use roster::domain::profile::new_profile;
    use roster::domain::time::Timestamp;
    use roster::security::keys::MasterKey;
    use roster::store::{SledStore, Store};

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
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), 64 << 20).unwrap();
    let master = MasterKey::generate();
    let (plain_id, sealed_id) = (UserId::generate(), UserId::generate());
    let key = DataKey::generate();
    let plain = codec::encode_as_version(3, &state).unwrap();
    store.save_user(plain_id, &plain).unwrap();
    let wrapped = master.wrap(key.bytes(), sealed_id.as_bytes());
    let sealed = roster::engine::state::encode(&state, &key, sealed_id).unwrap();
    store
        .create_user(sealed_id, &[9; 32], UserTier::Premium, &wrapped, &sealed)
        .unwrap();
    let dummy = DataKey::generate();

    let mut g = c.benchmark_group("at_rest");
    g.bench_function("activation_read/clear", |b| {
        b.iter(|| {
            let rec = store.load_user(plain_id).unwrap().unwrap();
            roster::engine::state::decode(&rec, &dummy, plain_id).unwrap()
        })
    });
    g.bench_function("activation_read/sealed", |b| {
        b.iter(|| {
            let rec = store.load_user(sealed_id).unwrap().unwrap();
            let w = store.load_key(sealed_id).unwrap().unwrap();
            let k = DataKey::from_bytes(master.unwrap(&w, sealed_id.as_bytes()).unwrap());
            roster::engine::state::decode(&rec, &k, sealed_id).unwrap()
        })
    });
    g.bench_function("snapshot_write/clear", |b| {
        b.iter(|| {
            let rec = codec::encode_as_version(3, &state).unwrap();
            store.save_user(plain_id, &rec).unwrap();
        })
    });
    g.bench_function("snapshot_write/sealed", |b| {
        b.iter(|| {
            let rec = roster::engine::state::encode(&state, &key, sealed_id).unwrap();
            store.save_user(sealed_id, &rec).unwrap();
        })
    });
    g.finish();
}

criterion_group!(engine, benches, risk, encryption);
criterion_main!(engine);
