//! The OpenAPI document and the metrics.

use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_parses_and_lists_every_route() {
    let srv = TestServer::start("").await;
    let (s, doc) = srv.call(GET, "/openapi.json", None, None).await;
    assert_eq!(s, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let mut listed: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                listed.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    listed.sort();
    let mut expected: Vec<String> = [
        "POST /api/v1/users",
        "GET /api/v1/users/me",
        "GET /api/v1/users/{id}",
        "PUT /api/v1/users/{id}",
        "DELETE /api/v1/admin/catalog/tracks/{id}",
        "DELETE /api/v1/users/{id}",
        "POST /api/v1/users/{id}/activity",
        "POST /api/v1/admin/activity/import",
        "GET /api/v1/admin/analytics/overview",
        "GET /api/v1/admin/analytics/live",
        "GET /api/v1/admin/live",
        "GET /api/v1/admin/users/lookup",
        "GET /api/v1/admin/dashboards",
        "GET /api/v1/admin/dashboards/{name}",
        "PUT /api/v1/admin/dashboards/{name}",
        "DELETE /api/v1/admin/dashboards/{name}",
        "GET /api/v1/admin/dashboards/{name}/report",
        "POST /api/v1/admin/dashboards/{name}/shares",
        "DELETE /api/v1/admin/dashboards/{name}/shares/{id}",
        "GET /api/v1/shared/dashboard",
        "POST /api/v1/admin/console/session",
        "GET /api/v1/admin/console/session",
        "DELETE /api/v1/admin/console/session",
        "GET /api/v1/admin/analytics/cohorts",
        "GET /api/v1/admin/analytics/tiers",
        "GET /api/v1/admin/analytics/compliance",
        "GET /api/v1/admin/analytics/forecast",
        "GET /api/v1/admin/analytics/opportunities",
        "GET /api/v1/admin/analytics/usage",
        "POST /api/v1/admin/analytics/train",
        "POST /api/v1/admin/catalog/tracks",
        "GET /api/v1/admin/catalog",
        "GET /api/v1/integrations",
        "GET /api/v1/integrations/{provider}/callback",
        "GET /api/v1/integrations/{provider}/developer-token",
        "POST /api/v1/integrations/{provider}/events",
        "GET /api/v1/users/{id}/integrations",
        "POST /api/v1/users/{id}/integrations/{provider}/link",
        "DELETE /api/v1/users/{id}/integrations/{provider}",
        "POST /api/v1/users/{id}/integrations/{provider}/sync",
        "GET /api/v1/admin/catalog/tracks/{id}",
        "GET /api/v1/users/{id}/recommendations",
        "POST /api/v1/admin/recommendations/train",
        "GET /api/v1/admin/recommendations/report",
        "POST /api/v1/users/{id}/models",
        "GET /api/v1/users/{id}/models",
        "GET /api/v1/users/{id}/models/{job}",
        "PUT /api/v1/users/{id}/models/pin",
        "DELETE /api/v1/users/{id}/models/versions/{version}",
        "GET /api/v1/federated/model",
        "POST /api/v1/federated/updates",
        "GET /api/v1/admin/federated",
        "GET /api/v1/admin/models",
        "GET /api/v1/admin/analytics/churn",
        "GET /api/v1/admin/analytics/segments",
        "GET /api/v1/users/{id}/insights",
        "POST /api/v1/users/{id}/upgrade",
        "POST /api/v1/users/{id}/password",
        "POST /api/v1/users/{id}/usage",
        "GET /api/v1/users/{id}/sessions",
        "POST /api/v1/users/{id}/sessions/revoke-others",
        "DELETE /api/v1/users/{id}/sessions/{sid}",
        "POST /api/v1/auth/login",
        "POST /api/v1/auth/logout",
        "GET /api/v1/openapi.json",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /api/v1/admin/shards",
        "GET /api/v1/ws",
        "GET /api/v1/admin/events",
        "POST /api/v1/admin/users/import",
        "POST /api/v1/admin/users/provision",
        "POST /api/v1/auth/invitations/accept",
        "GET /api/v1/admin/audit",
        "GET /api/v1/users/{id}/export",
        "POST /api/v1/auth/login/mfa",
        "POST /api/v1/auth/login/mfa/email",
        "POST /api/v1/auth/step-up",
        "GET /api/v1/users/{id}/mfa",
        "POST /api/v1/users/{id}/mfa/totp",
        "DELETE /api/v1/users/{id}/mfa/totp",
        "POST /api/v1/users/{id}/mfa/totp/confirm",
        "POST /api/v1/users/{id}/mfa/recovery-codes",
        "GET /api/v1/users/{id}/security-events",
        "POST /api/v1/auth/login/mfa/webauthn",
        "POST /api/v1/auth/passkey/start",
        "POST /api/v1/auth/passkey/finish",
        "POST /api/v1/auth/step-up/webauthn",
        "POST /api/v1/users/{id}/webauthn/register",
        "POST /api/v1/users/{id}/webauthn/register/finish",
        "DELETE /api/v1/users/{id}/webauthn/{credential}",
        "POST /api/v1/auth/login/mfa/sms",
        "POST /api/v1/users/{id}/mfa/sms",
        "DELETE /api/v1/users/{id}/mfa/sms",
        "POST /api/v1/users/{id}/mfa/sms/confirm",
        "GET /api/v1/users/{id}/consents",
        "PUT /api/v1/users/{id}/consents",
        "POST /api/v1/users/{id}/parental-consent",
        "GET /api/v1/admin/master-key",
        "POST /api/v1/admin/master-key/rotate",
        "GET /api/v1/admin/backup",
        "GET /api/v1/admin/security-events/export",
        "POST /api/v1/admin/sessions/revoke",
        "POST /api/v1/admin/sessions/revoke/cancel",
        "POST /api/v1/admin/users/lock",
        "GET /api/v1/admin/deny-networks",
        "POST /api/v1/admin/deny-networks",
        "DELETE /api/v1/admin/deny-networks",
        "POST /api/v1/admin/users/unlock",
        "POST /api/v1/admin/users/reset-password",
        "GET /api/v1/admin/jobs",
        "GET /api/v1/admin/jobs/{name}/runs",
        "POST /api/v1/admin/jobs/{name}/run",
        "GET /api/v1/admin/audit/verify",
        "POST /api/v1/admin/security-events/purge",
    ]
    .map(String::from)
    .to_vec();
    expected.sort();
    assert_eq!(listed, expected);
    // Each listed route is served (the fallback answers `not-found` with detail
    // "resource not found"; a real route never does).
    let root = srv.base.trim_end_matches("/api/v1").to_owned();
    for entry in &listed {
        let (method, path) = entry.split_once(' ').unwrap();
        let url = format!(
            "{root}{}",
            path.replace("{id}", "00000000-0000-0000-0000-000000000000")
                .replace("{sid}", "x")
        );
        let resp = srv
            .http
            .request(method.parse().unwrap(), url)
            .bearer_auth(ADMIN_KEY)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        assert_ne!(
            body["detail"], "resource not found",
            "{entry} is documented but not routed"
        );
    }
    for schema in [
        "UserProfile",
        "Problem",
        "LoginSuccess",
        "ProfilePatch",
        "Insights",
        "SessionView",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_scripted_sequence_exactly_and_are_operator_only() {
    let srv = TestServer::start("").await;
    let (id, token) = srv.user("m1@example.com", "free").await; // 1 user, 1 good login
    srv.user("m2@example.com", "premium").await; // 2 users, 2 good logins
    let wrong = json!({"email": "m1@example.com", "password": "not the password at all"});
    assert_eq!(
        srv.call(POST, "/auth/login", None, Some(wrong.clone()))
            .await
            .0,
        401
    );
    let unknown = json!({"email": "nobody@example.com", "password": PW});
    assert_eq!(
        srv.call(POST, "/auth/login", None, Some(unknown)).await.0,
        401
    );
    // A burst past the Free tier's 100 requests an hour: 100 pass, 3 are refused.
    for _ in 0..103 {
        srv.call(GET, "/users/me", Some(&token), None).await;
    }
    let (s, _) = srv
        .call(
            POST,
            &format!("/users/{id}/upgrade"),
            Some(ADMIN_KEY),
            Some(json!({"new_tier": "premium"})),
        )
        .await;
    assert_eq!(s, 200);

    let root = srv.base.trim_end_matches("/api/v1").to_owned();
    let anon = srv
        .http
        .get(format!("{root}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401, "anonymous");
    let user = srv
        .http
        .get(format!("{root}/metrics"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), 403, "ordinary user");
    let resp = srv
        .http
        .get(format!("{root}/metrics"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let page = resp.text().await.unwrap();

    assert_eq!(sample(&page, "roster_users_created_total"), Some(2.0));
    assert_eq!(
        sample(&page, "roster_logins_total{outcome=\"success\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&page, "roster_logins_total{outcome=\"wrong_credentials\"}"),
        Some(2.0)
    );
    assert_eq!(sample(&page, "roster_sessions_created_total"), Some(2.0));
    assert_eq!(
        sample(
            &page,
            "roster_tier_changes_total{from=\"free\",to=\"premium\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&page, "roster_rate_limited_total{tier=\"free\"}"),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &page,
            "roster_http_requests_total{route=\"/api/v1/users/me\",method=\"GET\",status=\"2xx\"}"
        ),
        Some(100.0)
    );
    assert_eq!(
        sample(
            &page,
            "roster_http_requests_total{route=\"/api/v1/users/me\",method=\"GET\",status=\"4xx\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(&page, "roster_live_users{tier=\"premium\"}"),
        Some(2.0)
    );
    // Latency by route and caller tier: the Free user's 100 answered requests, the 3 the
    // authentication layer refused, the operator's tier change.
    let latency = |route: &str, tier: &str| {
        sample(
            &page,
            &format!(
                "roster_http_request_duration_seconds_count{{route=\"{route}\",tier=\"{tier}\"}}"
            ),
        )
    };
    assert_eq!(latency("/api/v1/users/me", "free"), Some(100.0));
    assert_eq!(latency("/api/v1/users/me", "refused"), Some(3.0));
    assert_eq!(latency("/api/v1/users/{id}/upgrade", "operator"), Some(1.0));
    assert!(
        page.contains("roster_http_request_duration_seconds_bucket{"),
        "latency histogram"
    );
    assert!(
        sample(&page, "roster_store_flushes").unwrap() >= 1.0,
        "durable writes were flushed"
    );
    assert!(sample(&page, "roster_store_flush_seconds").is_some());
    // 2 creates, 2 logins and 1 tier change were each committed durably; the tier
    // change's audit record is part of its write, not a commit of its own.
    assert_eq!(sample(&page, "roster_store_commits"), Some(5.0));
    // Hash jobs: 2 sign-ups, 2 good logins, 1 wrong password, 1 unknown email (dummy hash).
    assert_eq!(sample(&page, "roster_hash_jobs"), Some(6.0));
    assert!(sample(&page, "roster_hash_wait_seconds").is_some());
    assert!(sample(&page, "roster_snapshot_bytes_total").unwrap() > 0.0);
    assert!(sample(&page, "roster_store_disk_bytes").unwrap() > 0.0);
    assert!(page.contains("roster_actor_message_duration_seconds_count{tier=\"free\""));
    // Exposition format: every line is a comment, blank, or `name{labels} value`.
    for line in page
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        assert!(
            !line.contains("example.com") && !line.contains(&id),
            "no personal data in labels"
        );
    }
    assert!(page.trim_end().ends_with("# EOF"), "OpenMetrics terminator");

    assert_eq!(srv.call(GET, "/admin/shards", None, None).await.0, 401);
    assert_eq!(
        srv.call(GET, "/admin/shards", Some(&token), None).await.0,
        403
    );
    let (s, shards) = srv.call(GET, "/admin/shards", Some(ADMIN_KEY), None).await;
    assert_eq!(s, 200);
    let shards = shards.as_array().unwrap();
    assert_eq!(
        shards.len(),
        4 + 2 + 2 + 1,
        "the default shard counts per tier"
    );
    let premium: u64 = shards
        .iter()
        .filter(|s| s["tier"] == "premium")
        .map(|s| s["resident"].as_u64().unwrap())
        .sum();
    assert_eq!(premium, 2);
    let answered: u64 = shards.iter().map(|s| s["messages"].as_u64().unwrap()).sum();
    assert!(
        answered >= 103,
        "every authenticated request is a message: {answered}"
    );
    let in_flight: u64 = shards
        .iter()
        .map(|s| s["in_flight"].as_u64().unwrap())
        .sum();
    assert_eq!(
        in_flight, 0,
        "nothing is pending once the requests are answered"
    );

    // A sweep closes the latency window: the shards that answered report a rate and
    // percentiles for it; the others report nothing.
    srv.manager.sweep_now().await.unwrap();
    let (_, shards) = srv.call(GET, "/admin/shards", Some(ADMIN_KEY), None).await;
    let busy: Vec<&serde_json::Value> = shards
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["message_rate_per_sec"].as_f64().unwrap() > 0.0)
        .collect();
    assert!(!busy.is_empty(), "{shards}");
    for s in busy {
        let (p50, p99, max) = (
            s["latency_p50_us"].as_u64().unwrap(),
            s["latency_p99_us"].as_u64().unwrap(),
            s["latency_max_us"].as_u64().unwrap(),
        );
        assert!(0 < p50 && p50 <= p99 && p99 <= max, "{s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_metrics_can_be_switched_off() {
    let srv = TestServer::start("[server]\nhttp_metrics = false\n").await;
    let (_, token) = srv.user("quiet@example.com", "free").await;
    assert_eq!(srv.call(GET, "/users/me", Some(&token), None).await.0, 200);
    let page = srv.metrics_page().await;
    assert!(
        !page.contains("roster_http_requests_total{"),
        "no per-request series"
    );
    assert_eq!(
        sample(&page, "roster_logins_total{outcome=\"success\"}"),
        Some(1.0)
    );
}
