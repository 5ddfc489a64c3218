//! Criterion micro-benchmarks of the per-request costs: the snapshot codec, session
//! token handling, and one validation round trip through `UserManager`.
//!
//! `cargo bench --bench engine`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use roster::config::{Config, DEFAULT_TOML, parse_toml};
use roster::domain::ids::UserId;
use roster::domain::profile::ProfilePatch;
use roster::domain::session::LoginContext;
use roster::engine::state::UserState;
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

    let record = codec::encode(&state).unwrap();
    c.bench_function("codec/encode_user_state", |b| {
        b.iter(|| codec::encode(&state).unwrap())
    });
    c.bench_function("codec/decode_user_state", |b| {
        b.iter(|| roster::engine::state::decode(&record).unwrap())
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

criterion_group!(engine, benches);
criterion_main!(engine);
