//! Throughput and memory figures for `BENCHMARKS.md`, measured through the public API on
//! a multi-thread tokio runtime, as the server would use it.
//!
//! ```sh
//! cargo bench --bench scale -- all                 # every scenario, default sizes
//! cargo bench --bench scale -- resident --users 1000000
//! ```
//! Scenarios: `hash` (raw argon2id at the default cost on every core), `login` (logins/s
//! through `UserManager` at the same cost), `validate` (session validations/s),
//! `resident` (memory per resident user, activations/s), `revoke` (durable session
//! revocations/s with group commit). `ROSTER_BENCH_CACHE_MB=256` gives sled the shipped
//! default page cache instead of the test configuration's 16 MiB.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use roster::config::{Config, DEFAULT_TOML, parse_toml};
use roster::domain::profile::ProfilePatch;
use roster::domain::session::LoginContext;
use roster::security::password::{Argon2Worker, HashParams, params};
use roster::{LoginOutcome, UserManager, UserTier};

const PW: &str = "correct horse battery staple";

/// The benches act on the engine as trusted code.
const SYS: roster::engine::Principal = roster::engine::Principal::System("bench");

struct Args {
    scenario: String,
    users: usize,
    secs: u64,
    concurrency: usize,
    tiers: Vec<UserTier>,
}

fn args() -> Args {
    let mut a = Args {
        scenario: "all".into(),
        users: 100_000,
        secs: 5,
        concurrency: 32,
        tiers: UserTier::ALL.to_vec(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--users" => a.users = it.next().and_then(|v| v.parse().ok()).expect("--users N"),
            "--secs" => a.secs = it.next().and_then(|v| v.parse().ok()).expect("--secs S"),
            "--concurrency" => {
                a.concurrency = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--concurrency N")
            }
            "--tier" => {
                a.tiers = vec![it.next().and_then(|v| v.parse().ok()).expect("--tier NAME")]
            }
            "--bench" => {}
            s if !s.starts_with('-') => a.scenario = s.to_owned(),
            _ => {}
        }
    }
    a
}

/// This process's resident memory.
fn rss_bytes() -> u64 {
    roster::loadgen::rss_bytes(std::process::id()).unwrap_or(0)
}

fn config(dir: &std::path::Path, cheap_hash: bool) -> Config {
    let mut layers = vec![parse_toml("default", DEFAULT_TOML).unwrap()];
    if cheap_hash {
        layers.push(parse_toml("test", include_str!("../config/test.toml")).unwrap());
    }
    // ROSTER_BENCH_CACHE_MB: sled's page cache (the test config's 16 MiB otherwise).
    if let Ok(mb) = std::env::var("ROSTER_BENCH_CACHE_MB") {
        layers.push(parse_toml("cache", &format!("[store]\ncache_mb = {mb}\n")).unwrap());
    }
    layers.push(
        parse_toml(
            "bench",
            &format!(
                "[store]\ndata_dir = {:?}\nverify_on_start = false\n\
                 [profiles]\ndir = \"\"\n[passwords]\nqueue = 100000\n\
                 [engine]\npassivate_after_secs = 86400\n",
                dir.display().to_string()
            ),
        )
        .unwrap(),
    );
    Config::from_layers(layers).unwrap()
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// Imports `n` users `user<i>@bench.test` with a precomputed hash, 256 at a time (bulk
/// provisioning).
async fn import(
    m: &UserManager,
    n: usize,
    phc: &str,
    tier: UserTier,
) -> Vec<roster::domain::ids::UserId> {
    import_as(m, n, phc, tier, "user").await
}

/// As [`import`], with emails `<prefix><i>@bench.test`.
async fn import_as(
    m: &UserManager,
    n: usize,
    phc: &str,
    tier: UserTier,
    prefix: &str,
) -> Vec<roster::domain::ids::UserId> {
    let concurrency = 256.min(n.max(1));
    let per = n.div_ceil(concurrency);
    let tasks: Vec<_> = (0..concurrency)
        .map(|t| {
            let (m, phc, prefix) = (m.clone(), phc.to_owned(), prefix.to_owned());
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(per);
                for i in (t * per)..((t + 1) * per).min(n) {
                    let user = roster::engine::ImportedUser {
                        email: format!("{prefix}{i}@bench.test"),
                        password_hash: phc.clone(),
                        tier: Some(tier),
                        profile_data: Some(ProfilePatch::default()),
                        created_at: None,
                    };
                    let p = m.accounts().import(&SYS, vec![user]).await.unwrap();
                    ids.push(p.into_iter().next().unwrap().unwrap().id);
                }
                ids
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// A PHC string of `PW` at `cost`.
fn hash_of(cost: HashParams) -> String {
    Argon2Worker::new(params(cost).unwrap())
        .unwrap()
        .hash(PW)
        .unwrap()
}

/// The shipped default cost (config/default.toml).
const DEFAULT_COST: HashParams = HashParams {
    memory_kib: 19_456,
    iterations: 2,
    parallelism: 1,
};

/// The cheap cost of the benches' populations.
const CHEAP_COST: HashParams = HashParams {
    memory_kib: 256,
    iterations: 1,
    parallelism: 1,
};

/// Runs `f` in `tasks` concurrent loops for `secs`; returns completed operations per second.
async fn run_for<F, Fut>(tasks: usize, secs: u64, f: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (f, stop, done) = (Arc::clone(&f), Arc::clone(&stop), Arc::clone(&done));
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    f(t, i).await;
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let n = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    for h in handles {
        h.await.unwrap();
    }
    n as f64 / elapsed
}

fn raw_hash_rate(secs: u64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..cores())
        .map(|_| {
            let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
            std::thread::spawn(move || {
                // What a pool worker does: one arena, reused.
                let mut w = Argon2Worker::new(params(DEFAULT_COST).unwrap()).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    w.hash(PW).unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    for t in threads {
        t.join().unwrap();
    }
    rate
}

async fn login(a: &Args) {
    let raw = raw_hash_rate(a.secs);
    println!(
        "hash      raw argon2id (m=19456 KiB, t=2, p=1) on {} threads: {raw:.1} hashes/s",
        cores()
    );
    let dir = tempfile::tempdir().unwrap();
    let m = UserManager::open(config(dir.path(), false)).unwrap();
    let users = 1000;
    let ids = import(&m, users, &hash_of(DEFAULT_COST), UserTier::Premium).await;
    assert_eq!(ids.len(), users);
    let m2 = m.clone();
    let rate = run_for(a.concurrency, a.secs, move |t, i| {
        let m = m2.clone();
        async move {
            let email = format!("user{}@bench.test", (t * 7919 + i as usize * 31) % users);
            let out = m
                .authenticate_user(&email, PW, LoginContext::default())
                .await
                .unwrap();
            assert!(matches!(out, LoginOutcome::Success(_)));
        }
    })
    .await;
    println!(
        "login     UserManager::authenticate_user at the same cost, {} concurrent: {rate:.1} logins/s = {:.0}% of raw",
        a.concurrency,
        100.0 * rate / raw
    );
    m.shutdown().await.unwrap();
}

async fn validate(a: &Args) {
    let dir = tempfile::tempdir().unwrap();
    let m = UserManager::open(config(dir.path(), true)).unwrap();
    let phc = hash_of(CHEAP_COST);
    // By default users of every tier, so every tier's Arbiter takes its share.
    let per_tier = a.users.min(20_000) / a.tiers.len();
    let mut tokens = Vec::with_capacity(per_tier * a.tiers.len());
    for &tier in &a.tiers {
        import_as(&m, per_tier, &phc, tier, tier.as_str()).await;
        for i in 0..per_tier {
            let email = format!("{tier}{i}@bench.test");
            match m
                .authenticate_user(&email, PW, LoginContext::default())
                .await
                .unwrap()
            {
                LoginOutcome::Success(s) => tokens.push(s.token),
                other => panic!("{other:?}"),
            }
        }
    }
    let users = tokens.len();
    let tokens = Arc::new(tokens);
    let m2 = m.clone();
    let rate = run_for(256, a.secs, move |t, i| {
        let (m, tokens) = (m2.clone(), Arc::clone(&tokens));
        async move {
            let tok = &tokens[(t * 104_729 + i as usize * 7) % tokens.len()];
            assert!(m.login().validate(tok).await.unwrap().is_some());
        }
    })
    .await;
    println!(
        "validate  login().validate over {users} live users in {:?}, 256 concurrent: {rate:.0} validations/s",
        a.tiers
    );
    m.shutdown().await.unwrap();
}

async fn resident(a: &Args) {
    let dir = tempfile::tempdir().unwrap();
    let n = a.users;
    let phc = hash_of(CHEAP_COST);
    let ids = {
        let m = UserManager::open(config(dir.path(), true)).unwrap();
        let t = Instant::now();
        let ids = import(&m, n, &phc, UserTier::Free).await;
        let (flushes, commits) = m.commit_stats();
        println!(
            "import    {n} users via import_user: {:.0} users/s ({commits} commits in {flushes} flushes)",
            n as f64 / t.elapsed().as_secs_f64()
        );
        m.shutdown().await.unwrap();
        Arc::new(ids)
    };
    // Reopen: nothing is resident; activate everyone from the store.
    let m = UserManager::open(config(dir.path(), true)).unwrap();
    let before = rss_bytes();
    let t = Instant::now();
    let concurrency = 512;
    let tasks: Vec<_> = (0..concurrency)
        .map(|c| {
            let (m, ids) = (m.clone(), Arc::clone(&ids));
            tokio::spawn(async move {
                for id in ids.iter().skip(c).step_by(concurrency) {
                    m.get_user(*id).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    let after = rss_bytes();
    assert_eq!(m.live_users(), n);
    println!(
        "activate  {n} users from sled: {:.0} activations/s; RSS {:.0} MiB -> {:.0} MiB, {:.0} bytes per resident user",
        n as f64 / secs,
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        (after.saturating_sub(before)) as f64 / n as f64
    );
    m.shutdown().await.unwrap();
}

async fn revoke(a: &Args) {
    let dir = tempfile::tempdir().unwrap();
    let m = UserManager::open(config(dir.path(), true)).unwrap();
    let users = a.users.min(2000);
    let phc = hash_of(CHEAP_COST);
    let ids = import(&m, users, &phc, UserTier::Premium).await;
    let mut sessions = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        for _ in 0..20 {
            if let LoginOutcome::Success(s) = m
                .authenticate_user(&format!("user{i}@bench.test"), PW, LoginContext::default())
                .await
                .unwrap()
            {
                sessions.push((*id, s.session_id));
            }
        }
    }
    let total = sessions.len();
    let sessions = Arc::new(sessions);
    let (f0, c0) = m.commit_stats();
    let next = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let tasks: Vec<_> = (0..512)
        .map(|_| {
            let (m, sessions, next) = (m.clone(), Arc::clone(&sessions), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some((id, sid)) = sessions.get(k) else {
                        break;
                    };
                    assert!(m.sessions().revoke(&SYS, *id, *sid).await.unwrap());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    let (f1, c1) = m.commit_stats();
    println!(
        "revoke    {total} durable revocations, 512 concurrent: {:.0} revocations/s ({} commits in {} flushes, {:.1} per flush)",
        total as f64 / secs,
        c1 - c0,
        f1 - f0,
        (c1 - c0) as f64 / (f1 - f0).max(1) as f64
    );
    m.shutdown().await.unwrap();
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let all = a.scenario == "all";
        if all || a.scenario == "hash" || a.scenario == "login" {
            login(&a).await;
        }
        if all || a.scenario == "validate" {
            validate(&a).await;
        }
        if all || a.scenario == "resident" {
            resident(&a).await;
        }
        if all || a.scenario == "revoke" {
            revoke(&a).await;
        }
    });
}
