//! The REST API against a real server on 127.0.0.1:0.

use reqwest::Method;
use serde_json::json;

use crate::support::{ADMIN_KEY, PW, SYS, TestServer};

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PUT: Method = Method::PUT;
const DELETE: Method = Method::DELETE;

fn is_problem(body: &serde_json::Value, status: u16, kind: &str) {
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(
        body["type"],
        format!("https://roster.dev/problems/{kind}"),
        "{body}"
    );
    assert!(body["detail"].is_string(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_flow_over_http() {
    let srv = TestServer::start("").await;
    let (s, created) = srv
        .call(
            POST,
            "/users",
            Some(ADMIN_KEY),
            Some(json!({
                "email": "user@example.com", "password": PW, "tier": "premium",
                "profile_data": {"display_name": "John Doe", "language": "en", "timezone": "UTC"}
            })),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["tier"], "premium");
    assert!(created.get("password_hash").is_none() && !created.to_string().contains("argon2"));
    let id = created["id"].as_str().unwrap();

    let (s, login) = srv
        .call(
            POST,
            "/auth/login",
            None,
            Some(json!({"email": "user@example.com", "password": PW,
                "context": {"ip_address": "192.168.1.1", "user_agent": "Mozilla/5.0", "device_id": "device_123"}})),
        )
        .await;
    assert_eq!(s, 200, "{login}");
    assert_eq!(login["user"]["id"], id);
    assert!(login["expires_at"].is_string());
    let token = login["token"].as_str().unwrap();
    // Read before the changes: the server keeps this rendering, and must drop it when
    // the profile changes.
    let (s, me) = srv.call(GET, "/users/me", Some(token), None).await;
    assert_eq!((s, me["display_name"].as_str()), (200, Some("John Doe")));

    let (s, updated) = srv
        .call(
            PUT,
            &format!("/users/{id}"),
            Some(token),
            Some(json!({"display_name": "Jane Doe",
                "ai_preferences": {"personalization_level": "advanced", "mood_detection_enabled": true}})),
        )
        .await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated["display_name"], "Jane Doe");
    assert_eq!(
        updated["ai_preferences"]["personalization_level"],
        "advanced"
    );

    let (s, up) = srv
        .call(
            POST,
            &format!("/users/{id}/upgrade"),
            Some(ADMIN_KEY),
            Some(json!({"new_tier": "enterprise"})),
        )
        .await;
    assert_eq!(s, 200, "{up}");
    assert_eq!(up["tier"], "enterprise");

    let (s, insights) = srv
        .call(GET, &format!("/users/{id}/insights"), Some(token), None)
        .await;
    assert_eq!(s, 200, "{insights}");
    assert_eq!(insights["tier"], "enterprise");
    assert_eq!(insights["requests_per_hour"], 50_000);
    let (s, me) = srv.call(GET, "/users/me", Some(token), None).await;
    assert_eq!((s, me["display_name"].as_str()), (200, Some("Jane Doe")));
    assert_eq!(me["tier"], "enterprise");
    assert_eq!(me["ai_preferences"]["personalization_level"], "advanced");

    let usage = json!({"kind": "playlists", "delta": 2});
    let (s, _) = srv
        .call(
            POST,
            &format!("/users/{id}/usage"),
            Some(token),
            Some(usage),
        )
        .await;
    assert_eq!(s, 200);
    for path in ["/users/me".to_owned(), format!("/users/{id}")] {
        let (s, me) = srv.call(GET, &path, Some(token), None).await;
        assert_eq!((s, &me["usage"]["playlists"]), (200, &json!(2)), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_gives_each_caller_exactly_its_access() {
    let srv = TestServer::start("").await;
    let (a, ta) = srv.user("a@example.com", "free").await;
    let (b, tb) = srv.user("b@example.com", "free").await;
    let sessions = srv
        .manager
        .sessions()
        .list(&SYS, a.parse().unwrap())
        .await
        .unwrap();
    let sid = sessions[0].id.to_string();
    let usage = json!({"kind": "playlists", "delta": 1});
    // (method, path, body, self allowed, admin allowed)
    let cases: Vec<(Method, String, Option<serde_json::Value>, bool, bool)> = vec![
        (GET, format!("/users/{a}"), None, true, true),
        (
            PUT,
            format!("/users/{a}"),
            Some(json!({"language": "fr"})),
            true,
            true,
        ),
        (GET, format!("/users/{a}/insights"), None, true, true),
        (GET, format!("/users/{a}/sessions"), None, true, true),
        (POST, format!("/users/{a}/usage"), Some(usage), true, true),
        (
            POST,
            format!("/users/{a}/upgrade"),
            Some(json!({"new_tier": "premium"})),
            false,
            true,
        ),
        (GET, "/users/me".into(), None, true, false),
    ];
    for (m, path, body, self_ok, admin_ok) in cases {
        let (s, p) = srv.call(m.clone(), &path, None, body.clone()).await;
        assert_eq!(s, 401, "anonymous {m} {path}: {p}");
        is_problem(&p, 401, "unauthorized");
        if path.contains(&a) {
            let (s, p) = srv.call(m.clone(), &path, Some(&tb), body.clone()).await;
            assert_eq!(s, 403, "other user {m} {path}: {p}");
            assert!(
                !p.to_string().contains("a@example.com"),
                "no data of another user"
            );
        }
        let (s, p) = srv.call(m.clone(), &path, Some(&ta), body.clone()).await;
        assert_eq!(s < 300, self_ok, "self {m} {path}: {s} {p}");
        let (s, p) = srv
            .call(m.clone(), &path, Some(ADMIN_KEY), body.clone())
            .await;
        assert_eq!(s < 300, admin_ok, "admin {m} {path}: {s} {p}");
    }
    // Revoking another user's session, or deleting another user, is refused.
    let (s, _) = srv
        .call(
            DELETE,
            &format!("/users/{a}/sessions/{sid}"),
            Some(&tb),
            None,
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = srv
        .call(DELETE, &format!("/users/{a}"), Some(&tb), None)
        .await;
    assert_eq!(s, 403);
    let (s, _) = srv
        .call(DELETE, &format!("/users/{b}"), Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = srv.call(GET, "/users/me", Some(&tb), None).await;
    assert_eq!(s, 401, "a deleted user's token is dead");
    // A wrong operator key is just an invalid token.
    let (s, _) = srv
        .call(
            GET,
            &format!("/users/{a}"),
            Some("not-the-admin-key-at-all"),
            None,
        )
        .await;
    assert_eq!(s, 401);
    // Anonymous sign-up above Free is refused.
    let (s, p) = srv
        .call(
            POST,
            "/users",
            None,
            Some(json!({"email": "c@example.com", "password": PW, "tier": "vip"})),
        )
        .await;
    is_problem(&p, 403, "forbidden");
    assert_eq!(s, 403);
}

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
async fn logout_password_change_and_revoke_kill_tokens_at_once() {
    let srv = TestServer::start("").await;
    let (id, t1) = srv.user("pw@example.com", "premium").await;
    let login = || async {
        let (s, b) = srv
            .call(
                POST,
                "/auth/login",
                None,
                Some(json!({"email": "pw@example.com", "password": PW})),
            )
            .await;
        assert_eq!(s, 200);
        b["token"].as_str().unwrap().to_owned()
    };
    let (t2, t3) = (login().await, login().await);

    let (s, _) = srv.call(POST, "/auth/logout", Some(&t1), None).await;
    assert_eq!(s, 204);
    assert_eq!(srv.call(GET, "/users/me", Some(&t1), None).await.0, 401);

    let (_, sessions) = srv
        .call(GET, &format!("/users/{id}/sessions"), Some(&t2), None)
        .await;
    let sid3 = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .find(|sid| t3.contains(&sid.replace('-', "")))
        .unwrap();
    let (s, _) = srv
        .call(
            DELETE,
            &format!("/users/{id}/sessions/{sid3}"),
            Some(&t2),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(srv.call(GET, "/users/me", Some(&t3), None).await.0, 401);

    let t4 = login().await;
    let (s, p) = srv
        .call(
            POST,
            &format!("/users/{id}/password"),
            Some(&t2),
            Some(json!({"current_password": "wrong wrong wrong", "new_password": "a brand new passphrase"})),
        )
        .await;
    assert_eq!(s, 400, "{p}");
    let (s, p) = srv
        .call(
            POST,
            &format!("/users/{id}/password"),
            Some(&t2),
            Some(json!({"current_password": PW, "new_password": "a brand new passphrase"})),
        )
        .await;
    assert_eq!(s, 204, "{p}");
    assert_eq!(
        srv.call(GET, "/users/me", Some(&t4), None).await.0,
        401,
        "other sessions end"
    );
    assert_eq!(
        srv.call(GET, "/users/me", Some(&t2), None).await.0,
        200,
        "the changing session stays"
    );
    let old = srv
        .call(
            POST,
            "/auth/login",
            None,
            Some(json!({"email": "pw@example.com", "password": PW})),
        )
        .await;
    assert_eq!(old.0, 401);
    let new = srv
        .call(
            POST,
            "/auth/login",
            None,
            Some(json!({"email": "pw@example.com", "password": "a brand new passphrase"})),
        )
        .await;
    assert_eq!(new.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_get_problems_and_change_nothing() {
    let srv = TestServer::start("").await;
    let (id, tok) = srv.user("target@example.com", "free").await;
    let before = srv.manager.get_user(id.parse().unwrap()).await.unwrap();
    let url = format!("{}/users/{id}", srv.base);
    let send = |body: Vec<u8>, ctype: &'static str| {
        let (srv, url, tok) = (&srv, url.clone(), tok.clone());
        async move {
            let r = srv
                .http
                .put(url)
                .bearer_auth(tok)
                .header("content-type", ctype)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
            (status, ct, body)
        }
    };
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (
            b"{\"display_name\": ".to_vec(),
            "application/json",
            400,
            "malformed-body",
        ),
        (
            b"[1,2,3]".to_vec(),
            "application/json",
            400,
            "invalid-input",
        ),
        (
            br#"{"display_name": 42}"#.to_vec(),
            "application/json",
            400,
            "invalid-input",
        ),
        (
            br#"{"display_name": "x", "is_admin": true}"#.to_vec(),
            "application/json",
            400,
            "invalid-input",
        ),
        (
            // A huge string just under the body limit: read whole, refused by the rule.
            format!(r#"{{"display_name": "{}"}}"#, "x".repeat(60_000)).into_bytes(),
            "application/json",
            400,
            "invalid-input",
        ),
        (
            format!(r#"{{"display_name": "{}"}}"#, "y".repeat(1000)).into_bytes(),
            "application/json",
            400,
            "invalid-input",
        ),
        (
            br#"{"display_name": "a\u0000b"}"#.to_vec(),
            "application/json",
            400,
            "invalid-input",
        ),
        (
            vec![b'{', 0xff, 0xfe, b'}'],
            "application/json",
            400,
            "malformed-body",
        ),
        (
            br#"{"display_name": "ok"}"#.to_vec(),
            "text/plain",
            415,
            "unsupported-media-type",
        ),
    ];
    for (body, ctype, status, kind) in cases {
        let (s, ct, p) = send(body, ctype).await;
        assert_eq!(s, status, "{kind}: {p}");
        assert_eq!(ct.as_deref(), Some("application/problem+json"));
        is_problem(&p, status, kind);
    }
    // A 10 MB body is refused from its Content-Length, before it is read: sent raw, so
    // the client reads the answer instead of tripping over the closed connection.
    let host = srv.host();
    let mut big = tokio::net::TcpStream::connect(&host).await.unwrap();
    let head = format!(
        "PUT /api/v1/users/{id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{\"display_name\": \"",
        10 * 1024 * 1024
    );
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        big.write_all(head.as_bytes()).await.unwrap();
        big.write_all(&[b'a'; 4096]).await.unwrap();
        // Read until the problem body has arrived; the connection may stay open, waiting
        // for a body that will never come, so do not wait for its end.
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        let reading = async {
            while !String::from_utf8_lossy(&answer).contains("payload-too-large") {
                match big.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&chunk[..n]),
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(20), reading).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("payload-too-large"), "{answer}");
    }
    // Invalid UTF-8 in a header, and a non-Bearer scheme.
    let mut raw = tokio::net::TcpStream::connect(
        srv.base
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap(),
    )
    .await
    .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw.write_all(b"GET /api/v1/users/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    raw.read_to_end(&mut out).await.unwrap();
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let r = srv
        .http
        .get(format!("{}/users/me", srv.base))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    assert_eq!(
        srv.manager.get_user(id.parse().unwrap()).await.unwrap(),
        before,
        "nothing changed"
    );
    let (s, _) = srv.call(GET, "/users/me", Some(&tok), None).await;
    assert_eq!(s, 200, "the server is still up");
    let (s, p) = srv.call(GET, "/no/such/thing", None, None).await;
    assert_eq!(s, 404);
    is_problem(&p, 404, "not-found");
}

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
        "DELETE /api/v1/users/{id}",
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
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_import_creates_good_users_and_reports_bad_ones() {
    let srv = TestServer::start("").await;
    let (_, token) = srv.user("someone@example.com", "free").await;
    let phc =
        "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$0xLBqsxyeRyBh4S8YF5ZxvKlEh9aQXbmHbbEU0NwjXc";
    let body = json!({"users": [
        {"email": "imported@example.com", "password_hash": phc, "tier": "vip"},
        {"email": "someone@example.com", "password_hash": phc},
        {"email": "bad-hash@example.com", "password_hash": "plaintext"},
    ]});
    let (s, reply) = srv
        .call(
            POST,
            "/admin/users/import",
            Some(&token),
            Some(body.clone()),
        )
        .await;
    is_problem(&reply, 403, "forbidden");
    assert_eq!(s, 403);
    let (s, reply) = srv
        .call(POST, "/admin/users/import", Some(ADMIN_KEY), Some(body))
        .await;
    assert_eq!(s, 200, "{reply}");
    assert_eq!(reply["created"].as_array().unwrap().len(), 1);
    assert_eq!(reply["created"][0]["index"], 0);
    let failed = reply["failed"].as_array().unwrap();
    assert_eq!(
        (failed[0]["index"].as_u64(), failed[0]["kind"].as_str()),
        (Some(1), Some("email-taken"))
    );
    assert_eq!(
        (failed[1]["index"].as_u64(), failed[1]["kind"].as_str()),
        (Some(2), Some("invalid-input"))
    );
    let id = reply["created"][0]["id"].as_str().unwrap();
    let (s, user) = srv
        .call(GET, &format!("/users/{id}"), Some(ADMIN_KEY), None)
        .await;
    assert_eq!((s, user["tier"].as_str()), (200, Some("vip")));
    let none = json!({"users": []});
    let (s, reply) = srv
        .call(POST, "/admin/users/import", Some(ADMIN_KEY), Some(none))
        .await;
    assert_eq!(s, 400, "{reply}");
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_and_security_actions_land_in_a_verifiable_audit_log() {
    let srv = TestServer::start("").await;
    let (id, token) = srv.user("audited@example.com", "free").await;
    let admin = Some(ADMIN_KEY);
    assert_eq!(
        srv.call(GET, &format!("/users/{id}"), admin, None).await.0,
        200
    );
    // The user reading itself is not an audit event.
    assert_eq!(
        srv.call(GET, &format!("/users/{id}"), Some(&token), None)
            .await
            .0,
        200
    );
    let upgrade = json!({"new_tier": "premium"});
    let path = format!("/users/{id}/upgrade");
    assert_eq!(srv.call(POST, &path, admin, Some(upgrade)).await.0, 200);
    assert_eq!(
        srv.call(GET, &format!("/users/{id}/sessions"), admin, None)
            .await
            .0,
        200
    );
    assert_eq!(
        srv.call(DELETE, &format!("/users/{id}"), Some(&token), None)
            .await
            .0,
        204
    );

    let (s, body) = srv.call(GET, "/admin/audit", Some(&token), None).await;
    assert_eq!(s, 401, "the deleted user's token is gone: {body}");
    let (_, other) = srv.user("nosy@example.com", "free").await;
    assert_eq!(
        srv.call(GET, "/admin/audit", Some(&other), None).await.0,
        403
    );
    assert_eq!(
        srv.call(GET, "/admin/audit?limit=0", admin, None).await.0,
        400
    );
    let (s, log) = srv.call(GET, "/admin/audit", admin, None).await;
    assert_eq!(s, 200, "{log}");
    let log = log.as_array().unwrap();
    let kinds: Vec<(&str, &str)> = log
        .iter()
        .map(|e| {
            (
                e["actor"]["kind"].as_str().unwrap(),
                e["action"]["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("operator", "user_read"),
            ("operator", "tier_changed"),
            ("operator", "user_read"),
            ("user", "user_deleted"),
        ]
    );
    assert_eq!(log[1]["action"]["to"], "premium");
    assert_eq!(log[3]["action"]["user"], id.as_str());
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1);
        if i > 0 {
            assert_eq!(e["prev_hash"], log[i - 1]["hash"]);
        }
    }
    assert!(
        !serde_json::Value::Array(log.clone())
            .to_string()
            .contains("@example.com")
    );
    let (_, page) = srv
        .call(GET, "/admin/audit?after=2&limit=1", admin, None)
        .await;
    assert_eq!(page[0]["seq"], 3);
    assert_eq!(
        srv.manager.ops().verify_audit(&SYS),
        Ok(roster::engine::AuditVerdict::Intact { records: 4 })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_holds_everything_about_the_user_and_no_credentials() {
    let srv = TestServer::start("").await;
    let (id, _) = srv.user("portable@example.com", "premium").await;
    let login = json!({"email": "portable@example.com", "password": PW,
        "context": {"device_id": "phone-1", "user_agent": "Phone/1.0"}});
    let (_, body) = srv.call(POST, "/auth/login", None, Some(login)).await;
    let token = body["token"].as_str().unwrap().to_owned();
    let rename = json!({"display_name": "Porta Ble"});
    assert_eq!(
        srv.call(PUT, &format!("/users/{id}"), Some(&token), Some(rename))
            .await
            .0,
        200
    );
    let wrong = json!({"email": "portable@example.com", "password": "not the password at all"});
    assert_eq!(
        srv.call(POST, "/auth/login", None, Some(wrong)).await.0,
        401
    );

    // The operator exports first (audited), then the user.
    let (s, _) = srv
        .call(GET, &format!("/users/{id}/export"), Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 200);
    let (_, other) = srv.user("snoop@example.com", "free").await;
    let (s, _) = srv
        .call(GET, &format!("/users/{id}/export"), Some(&other), None)
        .await;
    assert_eq!(s, 403);
    let (s, doc) = srv
        .call(GET, &format!("/users/{id}/export"), Some(&token), None)
        .await;
    assert_eq!(s, 200, "{doc}");
    assert_eq!(doc["export_format"], 2);
    assert_eq!(doc["profile"]["id"], id.as_str());
    assert_eq!(doc["profile"]["email"], "portable@example.com");
    assert_eq!(doc["profile"]["display_name"], "Porta Ble");
    assert_eq!(doc["profile"]["tier"], "premium");
    assert!(
        doc["profile"]["ai_preferences"].is_object()
            && doc["profile"]["security_settings"].is_object()
    );
    assert_eq!(
        doc["sessions"].as_array().unwrap().len(),
        2,
        "two logins: {doc}"
    );
    assert!(doc["sessions"].to_string().contains("Phone/1.0"));
    assert_eq!(doc["known_devices"], json!(["phone-1"]));
    assert_eq!(doc["login_failures"]["failures"], 1);
    assert!(doc["activity"].is_object());
    let audit = doc["audit"].as_array().unwrap();
    assert_eq!(audit.len(), 1, "the operator's export: {doc}");
    assert_eq!(
        (
            audit[0]["actor"]["kind"].as_str(),
            audit[0]["action"]["type"].as_str()
        ),
        (Some("operator"), Some("data_exported"))
    );
    assert_eq!(doc["withheld"].as_array().unwrap().len(), 5);
    // The security history: two logins and the failure, each with its client.
    let kinds: Vec<&str> = doc["security_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "login_succeeded").count(),
        2,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"login_failed"), "{kinds:?}");
    assert_eq!(doc["mfa"]["authenticator"], false);
    assert_eq!(doc["risk_profile"]["networks"], json!(["127.0.0.0/24"]));
    // No credential material: no password hash, no token or its secret hash.
    let text = doc.to_string();
    let secret = token.rsplit('.').next().unwrap();
    assert!(!text.contains("$argon2") && !text.contains(secret) && !text.contains(&token));
}
