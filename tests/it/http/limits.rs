//! Rates, lockout, admission and the client address.

use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_users_are_limited_to_a_hundred_requests_an_hour_and_vip_users_are_not() {
    let srv = TestServer::start("").await;
    let (_, free) = srv.user("free@example.com", "free").await;
    let (_, vip) = srv.user("vip@example.com", "vip").await;
    for i in 1..=100u64 {
        let resp = srv
            .http
            .get(format!("{}/users/me", srv.base))
            .bearer_auth(&free)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        let h = resp.headers();
        assert_eq!(h[reqwest::header::CONTENT_TYPE], "application/json");
        assert_eq!(h["ratelimit-limit"], "100");
        assert_eq!(
            h["ratelimit-remaining"].to_str().unwrap(),
            (100 - i).to_string()
        );
    }
    let resp = srv
        .http
        .get(format!("{}/users/me", srv.base))
        .bearer_auth(&free)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "36");
    assert_eq!(resp.headers()["ratelimit-remaining"], "0");
    let body: serde_json::Value = resp.json().await.unwrap();
    is_problem(&body, 429, "rate-limited");
    for _ in 0..150 {
        let (s, _) = srv.call(GET, "/users/me", Some(&vip), None).await;
        assert_eq!(s, 200);
    }
    // The allowance refills with time (36 s per request at 100/h).
    srv.clock.advance(std::time::Duration::from_secs(36));
    let (s, _) = srv.call(GET, "/users/me", Some(&free), None).await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_is_indistinguishable_from_a_wrong_password_and_clears() {
    let srv = TestServer::start(
        "[lockout]\nfree_attempts = 3\nbase_delay_secs = 30\nmax_delay_secs = 300\n",
    )
    .await;
    srv.user("lock@example.com", "free").await;
    let login = |pw: &'static str| {
        let srv = &srv;
        async move {
            srv.call(
                POST,
                "/auth/login",
                None,
                Some(json!({"email": "lock@example.com", "password": pw})),
            )
            .await
        }
    };
    let wrong = login("definitely wrong password").await;
    assert_eq!(wrong.0, 401);
    is_problem(&wrong.1, 401, "invalid-credentials");
    let unknown = srv
        .call(
            POST,
            "/auth/login",
            None,
            Some(json!({"email": "nobody@example.com", "password": PW})),
        )
        .await;
    assert_eq!(
        unknown, wrong,
        "unknown email answers exactly like a wrong password"
    );
    for _ in 0..5 {
        assert_eq!(login("definitely wrong password").await, wrong);
    }
    // Locked now: the right password gets the very same answer.
    assert_eq!(login(PW).await, wrong);
    srv.clock.advance(std::time::Duration::from_secs(301));
    let (s, body) = login(PW).await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_and_login_are_limited_per_client_address() {
    let srv = TestServer::start("[server]\nanonymous_requests_per_hour = 5\n").await;
    let attempt = || {
        srv.call(
            POST,
            "/auth/login",
            None,
            Some(json!({"email": "x@example.com", "password": PW})),
        )
    };
    for _ in 0..4 {
        assert_eq!(attempt().await.0, 401);
    }
    let (s, p) = srv
        .call(
            POST,
            "/users",
            None,
            Some(json!({"email": "new@example.com", "password": PW})),
        )
        .await;
    assert_eq!(s, 201, "sign-up shares the allowance: {p}");
    let resp = srv
        .http
        .post(format!("{}/auth/login", srv.base))
        .json(&json!({"email": "x@example.com", "password": PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    // The operator is not limited by address.
    let (s, _) = srv
        .call(
            POST,
            "/users",
            Some(ADMIN_KEY),
            Some(json!({"email": "op@example.com", "password": PW})),
        )
        .await;
    assert_eq!(s, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_hash_pool_answers_503_with_retry_after() {
    // One slow hashing thread with room for one waiting job.
    let srv = TestServer::start(
        "[passwords]\nworkers = 1\nqueue = 1\nmemory_kib = 32768\niterations = 2\n",
    )
    .await;
    crate::support::import(
        &srv.manager,
        "busy@example.com",
        "$argon2id$v=19$m=32768,t=2,p=1$c2FsdHNhbHRzYWx0$cSQtnGEOvoPaeXCuLdxNkXbuXpV2gWIi9X7AaRwS0kg",
        roster::UserTier::Free,
    )
    .await
        .unwrap();
    let attempts = (0..24).map(|_| {
        srv.http
            .post(format!("{}/auth/login", srv.base))
            .json(&json!({"email": "busy@example.com", "password": "whatever it is"}))
            .send()
    });
    let mut overloaded = 0;
    for resp in futures_util::future::join_all(attempts).await {
        let resp = resp.unwrap();
        match resp.status().as_u16() {
            401 => {}
            503 => {
                assert_eq!(resp.headers()["retry-after"], "1");
                let body: serde_json::Value = resp.json().await.unwrap();
                is_problem(&body, 503, "overloaded");
                overloaded += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        overloaded > 0,
        "24 concurrent logins on one worker with a queue of one must overflow"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_choose_the_address_its_session_records() {
    let srv = TestServer::start("").await;
    let (id, _) = srv.user("ip@example.com", "free").await;
    let body = |ip: &str| json!({"email": "ip@example.com", "password": PW, "context": {"ip_address": ip}});
    assert_eq!(
        srv.call(POST, "/auth/login", None, Some(body("10.9.8.7")))
            .await
            .0,
        200
    );
    assert_eq!(
        srv.call(POST, "/auth/login", Some(ADMIN_KEY), Some(body("10.1.2.3")))
            .await
            .0,
        200
    );
    let sessions = srv
        .manager
        .sessions()
        .list(&SYS, id.parse().unwrap())
        .await
        .unwrap();
    let ips: Vec<String> = sessions
        .iter()
        .filter_map(|s| s.ip_address.map(|i| i.to_string()))
        .collect();
    assert!(
        ips.contains(&"127.0.0.1".to_string()),
        "the anonymous login records the peer: {ips:?}"
    );
    assert!(!ips.contains(&"10.9.8.7".to_string()), "{ips:?}");
    assert!(
        ips.contains(&"10.1.2.3".to_string()),
        "the operator may pass the user's address: {ips:?}"
    );
}

/// The value of the sample `name{labels}` (exact line prefix) in a Prometheus text page.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tier_admission_budget_queues_requests_without_losing_any() {
    let srv = TestServer::start(
        "[tiers.premium]\nmax_concurrent_requests = 1\n[tiers.vip]\nmax_concurrent_requests = \"unlimited\"\n",
    )
    .await;
    let (_, premium) = srv.user("gated@example.com", "premium").await;
    let (_, vip) = srv.user("ungated@example.com", "vip").await;
    let burst = |token: String| {
        let srv = &srv;
        futures_util::future::join_all((0..40).map(move |_| {
            let token = token.clone();
            async move { srv.call(GET, "/users/me", Some(&token), None).await.0 }
        }))
    };
    // Both users are live (their logins activated them), so their tier is known up front.
    let (gated, free_run) = tokio::join!(burst(premium), burst(vip));
    assert!(gated.iter().chain(&free_run).all(|&s| s == 200));
    let page = srv.manager.ops().render_metrics(&SYS).unwrap();
    let waits = |tier: &str| {
        sample(
            &page,
            &format!("roster_admission_waits_total{{tier=\"{tier}\"}}"),
        )
    };
    assert!(
        waits("premium").unwrap_or(0.0) > 0.0,
        "40 concurrent requests through 1 slot wait"
    );
    assert_eq!(waits("vip"), None, "no budget, no waiting");
}
