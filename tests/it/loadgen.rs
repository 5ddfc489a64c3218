//! `roster loadgen` against servers started here: every scenario's report adds up, and
//! the open model shows queueing that a closed loop hides.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::routing::{get, post};
use roster::UserTier;
use roster::loadgen::{self, Load, Options, Report, Scenario};
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, SYS, TestServer};

fn small(srv: &TestServer, scenario: Scenario) -> Options {
    let mut o = Options::new(srv.base.trim_end_matches("/api/v1"), ADMIN_KEY, scenario);
    o.users = 40;
    o.sessions = 10;
    o.sockets = 12;
    o.load = Load::Open { rate: 40.0 };
    o.warmup = Duration::ZERO;
    o.duration = Duration::from_secs(1);
    o.max_requests = Some(60);
    o.timeout = Duration::from_secs(10);
    o
}

/// sent = ok + errors, and the histogram holds exactly the successes.
fn consistent(r: &Report) {
    let s = &r.summary;
    assert_eq!(s.sent, s.ok + s.error_count(), "{r}");
    assert_eq!(s.latency_us.count, s.ok, "{r}");
    assert!(s.ok > 0, "{r}");
    assert!(s.latency_us.p50 <= s.latency_us.p99 && s.latency_us.p99 <= s.latency_us.max);
    // The JSON report has the same figures.
    let v = serde_json::to_value(r).unwrap();
    assert_eq!(v["summary"]["sent"], s.sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_scenarios_report_consistent_counts() {
    let srv = TestServer::start("").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("population.json");
    for scenario in [Scenario::Validate, Scenario::Login, Scenario::Mixed] {
        let mut o = small(&srv, scenario);
        // Prepared once, then reused from the file.
        o.population = Some(file.clone());
        let r = loadgen::run(&o).await.unwrap();
        consistent(&r);
        assert_eq!(r.population, 40);
        assert_eq!(r.summary.error_count(), 0, "{r}");
    }
    assert_eq!(srv.manager.user_count(), 40, "the population was reused");
    let mut o = small(&srv, Scenario::Signup);
    o.load = Load::Closed { concurrency: 4 };
    o.max_requests = Some(20);
    let r = loadgen::run(&o).await.unwrap();
    consistent(&r);
    assert!(r.summary.ok >= 10 && r.summary.ok <= 20, "{r}");
    assert!(
        r.extra["hash_ceiling_per_sec"].as_f64().unwrap() > 0.0,
        "{r}"
    );
    assert_eq!(srv.manager.user_count() as u64, 40 + r.summary.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_scenarios_report_consistent_counts() {
    let srv = TestServer::start("").await;
    let mut o = small(&srv, Scenario::WsHold);
    o.duration = Duration::from_millis(500);
    let r = loadgen::run(&o).await.unwrap();
    consistent(&r);
    assert_eq!((r.summary.sent, r.summary.ok), (12, 12), "{r}");
    assert_eq!(r.extra["open_on_server"], 12.0, "{r}");
    assert_eq!(r.extra["stayed_open_through_hold"], 12, "{r}");

    let mut o = small(&srv, Scenario::WsFanout);
    o.max_requests = Some(30);
    let r = loadgen::run(&o).await.unwrap();
    consistent(&r);
    // 12 sockets over 10 sessions: every change reaches 1 or 2 sockets, and all arrive.
    assert!(r.summary.sent >= 20, "{r}");
    assert_eq!(r.summary.error_count(), 0, "{r}");

    // Activity frames of 50 events, each acknowledged, all counted by the server.
    let mut o = small(&srv, Scenario::WsActivity);
    o.warmup = Duration::ZERO;
    o.max_requests = Some(40);
    let r = loadgen::run(&o).await.unwrap();
    consistent(&r);
    assert_eq!((r.summary.sent, r.summary.ok), (40, 40), "{r}");
    assert_eq!(r.extra["events_per_frame"], 50);
    assert_eq!(
        crate::ws::metric(&srv, "roster_activity_events_total"),
        2000.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_isolation_reports_vip_latency_alone_and_under_a_flood() {
    // VIP is zero-trust by default: every login needs a second factor. A load-test
    // server turns that off (the generator says so when it meets a challenge).
    let srv = TestServer::start("[tiers.vip]\nzero_trust = false\n").await;
    let mut o = small(&srv, Scenario::TierIsolation);
    o.flood_concurrency = 8;
    o.max_requests = Some(30);
    let r = loadgen::run(&o).await.unwrap();
    consistent(&r);
    let alone = &r.extra["vip_alone"];
    assert_eq!(alone["sent"], 30);
    assert!(alone["latency_us"]["p99"].as_u64().unwrap() > 0);
    assert!(
        r.extra["p99_ratio_loaded_to_alone"].as_f64().is_some(),
        "{r}"
    );
    // The flood ran: Free users over their hourly allowance are refused with 429.
    let flood = &r.extra["free_flood"];
    assert!(flood["answered_per_sec"].as_f64().unwrap() > 0.0, "{r}");
    let placement: Vec<UserTier> = srv
        .manager
        .ops()
        .shard_stats(&SYS)
        .unwrap()
        .iter()
        .filter(|s| s.activations > 0)
        .map(|s| s.tier)
        .collect();
    assert!(placement.contains(&UserTier::Free) && placement.contains(&UserTier::Vip));
}

/// A stand-in server whose `/users/me` serves one request at a time, 25 ms each (40/s),
/// with just enough of the API for the generator to prepare its users.
async fn slow_server() -> String {
    let one_at_a_time = Arc::new(tokio::sync::Mutex::new(()));
    let me = move || {
        let lock = Arc::clone(&one_at_a_time);
        async move {
            let _serial = lock.lock().await;
            tokio::time::sleep(Duration::from_millis(25)).await;
            Json(json!({}))
        }
    };
    let import = |Json(body): Json<Value>| async move {
        let n = body["users"].as_array().map_or(0, Vec::len);
        let created: Vec<Value> = (0..n)
            .map(|i| json!({"index": i, "id": format!("u{i}")}))
            .collect();
        Json(json!({"created": created, "failed": []}))
    };
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(|| async { "" }))
        .route("/api/v1/admin/users/import", post(import))
        .route(
            "/api/v1/auth/login",
            post(|| async { Json(json!({"token": "t"})) }),
        )
        .route("/api/v1/users/me", get(me));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_model_reports_queueing_a_closed_loop_hides() {
    let url = slow_server().await;
    let run = |load| {
        let mut o = Options::new(url.clone(), "key", Scenario::Validate);
        o.users = 5;
        o.sessions = 5;
        o.load = load;
        o.warmup = Duration::ZERO;
        o.duration = Duration::from_secs(1);
        async move { loadgen::run(&o).await.unwrap() }
    };
    // Offered 80/s to a server that does 40/s: each request waits for those ahead.
    let open = run(Load::Open { rate: 80.0 }).await;
    consistent(&open);
    assert_eq!(open.summary.sent, 80, "every due request is sent: {open}");
    // One closed-loop worker never queues: it sees only the 25 ms service time.
    let closed = run(Load::Closed { concurrency: 1 }).await;
    consistent(&closed);
    let (o, c) = (&open.summary.latency_us, &closed.summary.latency_us);
    assert!(c.p99 < 200_000, "closed loop: {closed}");
    // By the end of the second, ~40 requests are queued: ~1 s of waiting.
    assert!(o.p99 > 500_000, "open model: {open}");
    assert!(o.p99 > 4 * c.p99, "open {} vs closed {}", o.p99, c.p99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommend_uploads_a_catalog_teaches_the_sessions_and_asks_for_lists() {
    let srv = TestServer::start("").await;
    let mut o = small(&srv, Scenario::Recommend);
    o.tracks = 600;
    o.max_requests = Some(30);
    let r = loadgen::run(&o).await.unwrap();
    consistent(&r);
    assert_eq!((r.summary.sent, r.summary.ok), (30, 30), "{r}");
    assert_eq!(r.extra["tracks"], 600);
    // The model learned from the ten sessions' histories.
    assert_eq!(r.extra["model"]["users"], 10, "{r}");
    assert!(r.extra["model"]["tracks_with_neighbours"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_devices_send_their_reference_updates_once_each() {
    let srv = TestServer::start(
        "[personalization.federated]\nmin_participants = 3\nmax_participants = 100\n",
    )
    .await;
    let mut o = small(&srv, Scenario::Federated);
    o.max_requests = Some(60);
    let r = loadgen::run(&o).await.unwrap();
    consistent(&r);
    let devices = r.extra["devices"].as_u64().unwrap();
    assert!((5..=10).contains(&devices), "{r}");
    // Each device once, every update taken: the round holds them all.
    assert_eq!((r.summary.sent, r.summary.ok), (devices, devices), "{r}");
    assert_eq!(r.extra["round_participants"], devices, "{r}");
    assert_eq!(r.extra["published_version"], 0);
}
