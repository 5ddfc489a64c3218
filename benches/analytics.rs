//! Analytics figures for `BENCHMARKS.md`, through the public API on a multi-thread tokio
//! runtime: a simulated population loaded through the front door (users, consents and
//! history), then the memory each resident user takes with its history, the overview, a
//! 52-week cohort table, a training over the stored population (time and memory above
//! the engine's), and insights with a prediction; then, with the server running on the
//! same engine on loopback, insights over HTTP and `GET /users/me` offered at 5,000/s
//! before and while a training runs.
//!
//! ```sh
//! cargo bench --bench analytics -- --users 100000 --days 60
//! ```
//!
//! `--store DIR` loads into `DIR` (once: a later run with the same `DIR` measures the store
//! it finds there). With `ROSTER_BENCH_COLD=1` the measuring process activates nobody, so
//! the reports run on a server with no user live (the memory figure is then zero).
//! `ROSTER_BENCH_COHORTS=N` builds the cohort table N times (each time is printed: how
//! much it varies with the page cache), and `ROSTER_BENCH_REPORTS_ONLY=1` stops after the
//! reports (for a profiler).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use roster::UserManager;
use roster::config::{Config, DEFAULT_TOML, parse_toml};
use roster::engine::{CohortQuery, CohortUnit, Principal};

/// The server's allocator (see `src/main.rs`), so the figures are the binary's: glibc's
/// malloc behaves differently on a heap of a million users' states.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SYS: Principal = Principal::System("bench");

/// The operator key of the HTTP phase (logins carry it, as the load generator's do).
const ADMIN_KEY: &str = "analytics-bench-operator-key";

/// Sessions of the HTTP phase, and the `GET /users/me` rate offered while a training runs.
const HTTP_SESSIONS: usize = 200;
const HTTP_RATE: u64 = 5_000;

/// How long `GET /users/me` is measured before the training starts.
const BASELINE: Duration = Duration::from_secs(12);

/// This process's resident memory.
fn rss_bytes() -> u64 {
    roster::loadgen::rss_bytes(std::process::id()).unwrap_or(0)
}

/// The shipped configuration on `dir`, with sled's page cache at 16 MiB (as the engine
/// benches measure resident memory; `ROSTER_BENCH_CACHE_MB` to change it) and no
/// passivation during the run.
fn config(dir: &std::path::Path) -> Config {
    let cache: u64 = std::env::var("ROSTER_BENCH_CACHE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let layers = vec![
        parse_toml("default", DEFAULT_TOML).unwrap(),
        parse_toml(
            "bench",
            &format!(
                "[store]\ndata_dir = {:?}\nverify_on_start = false\ncache_mb = {cache}\n\
                 [profiles]\ndir = \"\"\n[engine]\npassivate_after_secs = 86400\n\
                 [server]\nadmin_key = \"{ADMIN_KEY}\"\n",
                dir.display().to_string()
            ),
        )
        .unwrap(),
    ];
    Config::from_layers(layers).unwrap()
}

/// Peak RSS while `f` runs, sampled every 20 ms.
async fn peak_during<T>(f: impl std::future::Future<Output = T>) -> (T, u64) {
    let (stop, peak) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let sampler = {
        let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let out = f.await;
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    (out, peak.load(Ordering::Relaxed))
}

fn main() {
    let mut users = 100_000;
    let mut days = 60;
    let mut measure = None;
    let mut store = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--users" => users = it.next().and_then(|v| v.parse().ok()).expect("--users N"),
            "--days" => days = it.next().and_then(|v| v.parse().ok()).expect("--days D"),
            "--measure" => measure = it.next().map(std::path::PathBuf::from),
            "--store" => store = it.next().map(std::path::PathBuf::from),
            _ => {}
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match measure {
        Some(dir) => rt.block_on(measure_store(&dir)),
        None => {
            // Loading holds the whole simulated population in this process: the figures
            // are measured by a fresh process on the store it leaves. `--store DIR` keeps
            // the store (loaded once, measured again by later runs).
            let temp = tempfile::tempdir().unwrap();
            let dir = store.unwrap_or_else(|| temp.path().to_owned());
            if !dir.join("truth.csv").exists() {
                rt.block_on(load(&dir, users, days));
            }
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .arg("--measure")
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success());
        }
    }
}

async fn load(dir: &std::path::Path, users: usize, days: u32) {
    let m = UserManager::open(config(dir)).unwrap();
    let args = roster::cli::simulate::SimulateArgs {
        target: roster::cli::Target::default(),
        users,
        seed: 1,
        days,
        horizon_days: 14,
        truth: dir.join("truth.csv"),
        password: "simulated listener password".into(),
    };
    let t = Instant::now();
    let loaded = roster::cli::simulate::load(&m, &args).await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "loaded {} users and {} events in {secs:.1} s ({:.0} users/s, {:.0} events/s, {:.0} events per user)",
        loaded.users,
        loaded.events,
        loaded.users as f64 / secs,
        loaded.events as f64 / secs,
        loaded.events as f64 / loaded.users as f64
    );
    m.shutdown().await.unwrap();
}

async fn measure_store(dir: &std::path::Path) {
    let m = UserManager::open(config(dir)).unwrap();
    let ids: Vec<roster::domain::ids::UserId> = std::fs::read_to_string(dir.join("truth.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next().and_then(|id| id.parse().ok()))
        .collect();
    let users = ids.len();
    let before = rss_bytes();
    let t = Instant::now();
    let cold = std::env::var("ROSTER_BENCH_COLD").is_ok();
    futures_util::stream::iter(ids.iter().copied().filter(|_| !cold))
        .for_each_concurrent(64, |id| {
            let m = &m;
            async move {
                m.accounts().get(&SYS, id).await.unwrap();
            }
        })
        .await;
    let resident = rss_bytes();
    println!(
        "activated {users} users from the store in {:.1} s; RSS {} → {} MiB: {:.0} bytes per resident user with its history",
        t.elapsed().as_secs_f64(),
        before >> 20,
        resident >> 20,
        (resident - before) as f64 / users as f64
    );
    let t = Instant::now();
    let o = m.analytics().overview(&SYS).await.unwrap();
    println!(
        "overview in {:.2} s: dau {} wau {} mau {}",
        t.elapsed().as_secs_f64(),
        o.dau,
        o.wau,
        o.mau
    );
    let q = CohortQuery {
        unit: CohortUnit::Week,
        periods: 52,
        tier: None,
    };
    let runs: usize = std::env::var("ROSTER_BENCH_COHORTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for _ in 0..runs {
        let t = Instant::now();
        let c = m.analytics().cohorts(&SYS, q).await.unwrap();
        println!(
            "cohort table 52 weeks in {:.2} s ({} cohorts)",
            t.elapsed().as_secs_f64(),
            c.cohorts.len()
        );
    }
    if std::env::var("ROSTER_BENCH_REPORTS_ONLY").is_ok() {
        return;
    }
    let base = rss_bytes();
    let t = Instant::now();
    let (trained, peak) = peak_during(m.analytics().train(&SYS, |_| ())).await;
    let trained = trained.unwrap();
    println!(
        "training over {} users in {:.2} s, peak {} MiB above the engine's {} MiB: churn auc {:.4} (rows {}), {} segments",
        trained.churn.users_scanned,
        t.elapsed().as_secs_f64(),
        peak.saturating_sub(base) >> 20,
        base >> 20,
        trained.churn.evaluation.auc,
        trained.churn.training_rows,
        trained.segments.map_or(0, |s| s.segments.len())
    );
    let mut lat = Vec::new();
    for id in ids.iter().take(2000) {
        let t = Instant::now();
        let i = m.accounts().insights(&SYS, *id).await.unwrap();
        lat.push(t.elapsed().as_micros() as u64);
        assert!(i.churn.is_some());
    }
    let n = lat.len();
    let (p50, p99, _) = percentiles(lat);
    println!("insights with a prediction, in process, {n} users: p50 {p50} µs, p99 {p99} µs");
    // The server's shutdown snapshots the live users and stops the engine.
    over_http(&m, dir).await;
}

/// Percentiles of latencies in µs: (p50, p99, max).
fn percentiles(mut lat: Vec<u64>) -> (u64, u64, u64) {
    if lat.is_empty() {
        return (0, 0, 0);
    }
    lat.sort_unstable();
    let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    (q(0.5), q(0.99), lat[lat.len() - 1])
}

/// The server over the same engine on loopback: insights over HTTP with the users' own
/// sessions, then `GET /users/me` offered at [`HTTP_RATE`] (open loop: a request every
/// 200 µs whatever the answers) for [`BASELINE`] after a second of warm-up, and while a
/// training reads the population.
/// Sessions are Premium users' (5,000 requests an hour each: the run stays below it; the
/// tiers above ask every login for a second factor).
async fn over_http(m: &UserManager, dir: &std::path::Path) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = roster::server::Server::new(m.clone(), listener)
        .await
        .unwrap();
    let base = format!("http://{}/api/v1", server.addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let vip: Vec<roster::domain::ids::UserId> = std::fs::read_to_string(dir.join("truth.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(1) == Some("premium"))
        .filter_map(|l| l.split(',').next().and_then(|id| id.parse().ok()))
        .take(HTTP_SESSIONS)
        .collect();
    let http = reqwest::Client::new();
    let mut sessions = Vec::new();
    for id in &vip {
        let email = m.accounts().get(&SYS, *id).await.unwrap().email;
        let r: serde_json::Value = http
            .post(format!("{base}/auth/login"))
            .bearer_auth(ADMIN_KEY)
            .json(&serde_json::json!({"email": email.as_str(), "password": "simulated listener password"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = r["token"].as_str().expect("a session").to_owned();
        sessions.push((*id, token));
    }
    let sessions = Arc::new(sessions);
    // Insights, ten per user, one at a time and eight at a time.
    for in_flight in [1, 8] {
        let lat: Vec<u64> = futures_util::stream::iter(0..sessions.len() * 10)
            .map(|i| {
                let (http, base, sessions) = (http.clone(), base.clone(), Arc::clone(&sessions));
                async move {
                    let (id, token) = &sessions[i % sessions.len()];
                    let t = Instant::now();
                    let r = http
                        .get(format!("{base}/users/{id}/insights"))
                        .bearer_auth(token)
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success(), "insights: {}", r.status());
                    let body: serde_json::Value = r.json().await.unwrap();
                    assert!(!body["churn"].is_null(), "a prediction");
                    t.elapsed().as_micros() as u64
                }
            })
            .buffer_unordered(in_flight)
            .collect()
            .await;
        let (p50, p99, max) = percentiles(lat);
        println!(
            "insights with a prediction over HTTP, {} requests, {in_flight} in flight: p50 {p50} µs, p99 {p99} µs, max {max} µs",
            sessions.len() * 10
        );
    }
    // GET /users/me at a fixed rate; a training starts after three seconds.
    let (done_tx, mut done) = tokio::sync::watch::channel(false);
    let load = {
        let (http, base, sessions) = (http.clone(), base.clone(), Arc::clone(&sessions));
        tokio::spawn(async move {
            let epoch = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            let per_tick = HTTP_RATE / 1000;
            let mut sent = Vec::new();
            let mut n = 0usize;
            while !*done.borrow_and_update() {
                tick.tick().await;
                for _ in 0..per_tick {
                    let (http, base, sessions) =
                        (http.clone(), base.clone(), Arc::clone(&sessions));
                    n += 1;
                    let i = n;
                    sent.push(tokio::spawn(async move {
                        let token = &sessions[i % sessions.len()].1;
                        let t = Instant::now();
                        let ok = http
                            .get(format!("{base}/users/me"))
                            .bearer_auth(token)
                            .send()
                            .await
                            .is_ok_and(|r| r.status().is_success());
                        (t.duration_since(epoch), t.elapsed().as_micros() as u64, ok)
                    }));
                }
            }
            let mut out = Vec::with_capacity(sent.len());
            for h in sent {
                out.push(h.await.unwrap());
            }
            (epoch, out)
        })
    };
    tokio::time::sleep(BASELINE + Duration::from_secs(1)).await;
    let t0 = Instant::now();
    let trained = m.analytics().train(&SYS, |_| ()).await.unwrap();
    let t1 = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    done_tx.send(true).unwrap();
    let (epoch, answers) = load.await.unwrap();
    let (from, to) = (t0.duration_since(epoch), t1.duration_since(epoch));
    let failed = answers.iter().filter(|a| !a.2).count();
    let during: Vec<u64> = answers
        .iter()
        .filter(|a| a.0 >= from && a.0 < to)
        .map(|a| a.1)
        .collect();
    // The first second opens the connections: the baseline is the time after it.
    let warm = Duration::from_secs(1);
    let before: Vec<u64> = answers
        .iter()
        .filter(|a| a.0 >= warm && a.0 < from)
        .map(|a| a.1)
        .collect();
    let secs = (to - from).as_secs_f64();
    let (n_during, n_before) = (during.len(), before.len());
    let (b50, b99, bmax) = percentiles(before);
    let (d50, d99, dmax) = percentiles(during);
    println!(
        "GET /users/me offered at {HTTP_RATE}/s: before the training {n_before} requests, p50 {b50} µs, p99 {b99} µs, max {bmax} µs; \
         during the training ({secs:.1} s over {} users) {n_during} requests ({:.0}/s), p50 {d50} µs, p99 {d99} µs, max {dmax} µs; {failed} failed",
        trained.churn.users_scanned,
        n_during as f64 / secs
    );
    let _ = stop.send(());
    served.await.unwrap().unwrap();
}
