//! Integration hub figures for `BENCHMARKS.md`: the scheduled sync of recent plays for
//! many linked users from a local fake Spotify (token and recently-played endpoints on
//! loopback), through the `integrations` job, while a client reads `GET /users/me`
//! over HTTP; plays imported per second and that client's latency percentiles.
//!
//! ```sh
//! cargo bench --bench sync -- --users 10000 --plays 50
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use roster::config::{Config, DEFAULT_TOML, parse_toml};
use roster::domain::consent::Purpose;
use roster::domain::job::JobKind;
use roster::domain::profile::ProfilePatch;
use roster::domain::session::LoginContext;
use roster::engine::{Callback, LinkAnswer, LinkWith, Principal, UserSession};
use roster::{LoginOutcome, UserManager, UserTier};
use serde_json::json;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PW: &str = "correct horse battery staple";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().unwrap())
}

/// The fake: any code or refresh token is granted; recently-played lists `plays` plays
/// 10 ms apart up to now once armed (nothing before, so the links' own syncs at
/// link time import nothing).
struct Fake {
    armed: AtomicBool,
    plays: usize,
    served: AtomicU64,
}

async fn start_fake(plays: usize) -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake {
        armed: AtomicBool::new(false),
        plays,
        served: AtomicU64::new(0),
    });
    let grant = || async {
        let n: u64 = rand::random();
        axum::Json(
            json!({"access_token": format!("a{n}"), "token_type": "Bearer",
            "expires_in": 3600, "refresh_token": format!("r{n}")}),
        )
    };
    let f = Arc::clone(&fake);
    let history = move || {
        let f = Arc::clone(&f);
        async move {
            f.served.fetch_add(1, Ordering::Relaxed);
            let n = if f.armed.load(Ordering::Relaxed) {
                f.plays
            } else {
                0
            };
            let now = roster::domain::time::Timestamp::from_millis(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as i64,
            );
            let items: Vec<_> = (0..n)
                .map(|i| {
                    let at = roster::domain::time::Timestamp::from_millis(
                        now.as_millis() - 10 * (i as i64 + 1),
                    );
                    json!({"track": {"id": format!("t{}", i % 1000), "name": format!("Song {i}"),
                        "duration_ms": 200_000, "artists": [{"name": "Artist"}],
                        "external_ids": {}}, "played_at": at})
                })
                .collect();
            axum::Json(json!({"items": items, "next": null}))
        }
    };
    let app = axum::Router::new()
        .route("/token", post(grant))
        .route("/api/me/player/recently-played", get(history));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, fake)
}

fn config(dir: &std::path::Path, fake: &str) -> Config {
    let extra = format!(
        "[store]\ndata_dir = \"{}\"\n\
         [integrations]\nsync_interval = \"1s\"\n\
         [integrations.providers.spotify]\nclient_id = \"bench\"\nclient_secret = \"bench\"\n\
         authorization_url = \"{fake}/authorize\"\ntoken_url = \"{fake}/token\"\n\
         api_base_url = \"{fake}/api\"\n",
        dir.display()
    );
    Config::from_layers(vec![
        parse_toml("default", DEFAULT_TOML).unwrap(),
        parse_toml("test", include_str!("../config/test.toml")).unwrap(),
        parse_toml("bench", &extra).unwrap(),
    ])
    .unwrap()
}

/// Creates, signs in, consents and links user `i`: its bearer token.
async fn linked_user(m: &UserManager, i: usize) -> String {
    let email = format!("listener{i}@bench.test");
    let p = m
        .create_user(&email, PW, UserTier::Premium, ProfilePatch::default())
        .await
        .unwrap();
    let LoginOutcome::Success(s) = m
        .authenticate_user(&email, PW, LoginContext::default())
        .await
        .unwrap()
    else {
        panic!("premium signs in with a password")
    };
    let sys = Principal::System("bench");
    m.privacy()
        .update_consents(&sys, p.id, vec![(Purpose::Analytics, true)], None)
        .await
        .unwrap();
    let by = Principal::User(UserSession {
        user: p.id,
        session: s.session_id,
    });
    let hub = m.integrations();
    let LinkAnswer::Started(start) = hub
        .link(&by, p.id, "spotify", LinkWith::default())
        .await
        .unwrap()
    else {
        panic!("spotify links through OAuth 2.0")
    };
    let back = Callback {
        state: Some(start.state),
        code: Some("code".into()),
        ..Callback::default()
    };
    hub.callback("spotify", back).await.unwrap();
    s.token
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let users = arg("--users", 10_000);
    let plays = arg("--plays", 50);
    let (fake_url, fake) = start_fake(plays).await;
    let dir = tempfile::tempdir().unwrap();
    let m = UserManager::open(config(dir.path(), &fake_url)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = roster::server::Server::new(m.clone(), listener)
        .await
        .unwrap();
    let base = format!("http://{}/api/v1", server.addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let t = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (m, next) = (m.clone(), Arc::clone(&next));
            tokio::spawn(async move {
                let mut tokens = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= users {
                        return tokens;
                    }
                    tokens.push(linked_user(&m, i).await);
                }
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.extend(task.await.unwrap());
    }
    // The links' own syncs (nothing to import yet) run on tasks of their own.
    while (fake.served.load(Ordering::Relaxed) as usize) < users {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "setup     {users} users created, signed in, consenting and linked in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    fake.armed.store(true, Ordering::Relaxed);

    // A client reading its own profile over HTTP, one request after another.
    let reading = Arc::new(AtomicBool::new(true));
    let reader = {
        let (reading, token, base) = (Arc::clone(&reading), tokens[0].clone(), base.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut lat = Vec::new();
            while reading.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = http
                    .get(format!("{base}/users/me"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            lat
        })
    };
    let job = roster::jobs::builtin(JobKind::Integrations);
    let by = roster::jobs::principal(JobKind::Integrations);
    let t = Instant::now();
    let report = job.run(&m, &by).await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    reading.store(false, Ordering::Relaxed);
    let mut lat = reader.await.unwrap();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let imported = report.counts["plays_imported"];
    let synced = report.counts["links_synced"];
    assert_eq!(synced as usize, users, "{report:?}");
    println!(
        "sync      the integrations job: {synced} links synced, {imported} plays imported in {secs:.1} s = {:.0} plays/s, {:.0} links/s",
        imported as f64 / secs,
        synced as f64 / secs
    );
    println!(
        "me        GET /users/me meanwhile: {} requests, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0)
    );
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}
