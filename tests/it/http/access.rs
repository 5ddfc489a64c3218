//! Who may call what.

use reqwest::Method;
use serde_json::json;

use super::*;

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

/// One request through the router alone (`tower::ServiceExt::oneshot`): no listener, no
/// socket. Returns the status.
async fn through_router(
    app: &(
         impl tower::Service<
        axum::extract::Request,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send,
    > + Clone
     ),
    method: &Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<&serde_json::Value>,
) -> u16 {
    use tower::ServiceExt as _;
    let mut req = axum::http::Request::builder()
        .method(method.as_str())
        .uri(format!("/api/v1{path}"));
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(axum::body::Body::from(b.to_string())),
        None => req.body(axum::body::Body::empty()),
    }
    .unwrap();
    app.clone().oneshot(req).await.unwrap().status().as_u16()
}

/// Who may call a route.
#[derive(Clone, Copy, Debug)]
enum Who {
    /// The user itself and the operator.
    SelfOrOperator,
    /// The user itself only (a user session).
    SelfOnly,
    /// The operator only.
    OperatorOnly,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_gives_every_route_exactly_its_callers() {
    use roster::domain::session::LoginContext;
    let dir = tempfile::tempdir().unwrap();
    let key = format!("[server]\nadmin_key = {ADMIN_KEY:?}\n");
    let (m, _clock) = crate::support::open_with_clock(dir.path(), &key);
    let app = roster::api::app(m.clone());
    let token = |email: &'static str| {
        let m = m.clone();
        async move {
            let p = m
                .create_user(email, PW, roster::UserTier::Free, Default::default())
                .await
                .unwrap();
            let roster::LoginOutcome::Success(s) = m
                .authenticate_user(email, PW, LoginContext::default())
                .await
                .unwrap()
            else {
                panic!("login of {email}")
            };
            (p.id.to_string(), s.token)
        }
    };
    let (a, ta) = token("matrix.a@example.com").await;
    let (_, tb) = token("matrix.b@example.com").await;
    let nobody = "00000000-0000-0000-0000-000000000001";
    use Who::*;
    // Routes acting on user `a`: who may, and a body of the right shape.
    let cases: Vec<(Method, String, Option<serde_json::Value>, Who)> = vec![
        (GET, format!("/users/{a}"), None, SelfOrOperator),
        (
            PUT,
            format!("/users/{a}"),
            Some(json!({"language": "fr"})),
            SelfOrOperator,
        ),
        (GET, format!("/users/{a}/insights"), None, SelfOrOperator),
        (GET, format!("/users/{a}/models"), None, SelfOrOperator),
        (GET, format!("/users/{a}/models/1"), None, SelfOrOperator),
        (
            PUT,
            format!("/users/{a}/models/pin"),
            Some(json!({"version": null})),
            SelfOrOperator,
        ),
        (
            DELETE,
            format!("/users/{a}/models/versions/1"),
            None,
            SelfOrOperator,
        ),
        (GET, format!("/users/{a}/export"), None, SelfOrOperator),
        (GET, format!("/users/{a}/sessions"), None, SelfOrOperator),
        (
            DELETE,
            format!("/users/{a}/sessions/{nobody}"),
            None,
            SelfOrOperator,
        ),
        (
            POST,
            format!("/users/{a}/usage"),
            Some(json!({"kind": "playlists", "delta": 1})),
            SelfOrOperator,
        ),
        (
            POST,
            format!("/users/{a}/upgrade"),
            Some(json!({"new_tier": "free"})),
            OperatorOnly,
        ),
        (GET, format!("/users/{a}/mfa"), None, SelfOrOperator),
        (POST, format!("/users/{a}/mfa/totp"), None, SelfOnly),
        (DELETE, format!("/users/{a}/mfa/totp"), None, SelfOrOperator),
        (
            POST,
            format!("/users/{a}/mfa/totp/confirm"),
            Some(json!({"code": "123456"})),
            SelfOnly,
        ),
        (
            POST,
            format!("/users/{a}/mfa/recovery-codes"),
            None,
            SelfOnly,
        ),
        (
            POST,
            format!("/users/{a}/mfa/sms"),
            Some(json!({"phone": "+15550100123"})),
            SelfOnly,
        ),
        (
            POST,
            format!("/users/{a}/mfa/sms/confirm"),
            Some(json!({"code": "123456"})),
            SelfOnly,
        ),
        (DELETE, format!("/users/{a}/mfa/sms"), None, SelfOnly),
        (
            POST,
            format!("/users/{a}/webauthn/register"),
            None,
            SelfOnly,
        ),
        (
            DELETE,
            format!("/users/{a}/webauthn/not-a-key"),
            None,
            SelfOnly,
        ),
        (GET, format!("/users/{a}/consents"), None, SelfOrOperator),
        (
            PUT,
            format!("/users/{a}/consents"),
            Some(json!({"marketing": true})),
            SelfOrOperator,
        ),
        (
            POST,
            format!("/users/{a}/parental-consent"),
            Some(json!({"reference": "ticket-1"})),
            OperatorOnly,
        ),
        (
            GET,
            format!("/users/{a}/security-events"),
            None,
            SelfOrOperator,
        ),
        (
            POST,
            format!("/users/{a}/password"),
            Some(json!({"current_password": "not it", "new_password": "x"})),
            SelfOnly,
        ),
    ];
    for (method, path, body, who) in &cases {
        let body = body.as_ref();
        let denied = |s: u16| s == 401 || s == 403;
        let s = through_router(&app, method, path, None, body).await;
        assert_eq!(s, 401, "anonymous {method} {path}");
        let s = through_router(&app, method, path, Some(&tb), body).await;
        assert_eq!(s, 403, "another user {method} {path}");
        let s = through_router(&app, method, path, Some(&ta), body).await;
        match who {
            SelfOrOperator | SelfOnly => assert!(!denied(s), "self {method} {path}: {s}"),
            OperatorOnly => assert_eq!(s, 403, "self {method} {path}"),
        }
        let s = through_router(&app, method, path, Some(ADMIN_KEY), body).await;
        match who {
            SelfOrOperator | OperatorOnly => {
                assert!(!denied(s), "operator {method} {path}: {s}")
            }
            SelfOnly => assert_eq!(s, 403, "operator {method} {path}"),
        }
    }
    // The operator's own routes.
    let admin: Vec<(Method, &str, Option<serde_json::Value>)> = vec![
        (GET, "/admin/shards", None),
        (GET, "/admin/audit", None),
        (GET, "/admin/audit/verify", None),
        (GET, "/admin/master-key", None),
        (GET, "/admin/analytics/compliance", None),
        (GET, "/admin/federated", None),
        (GET, "/admin/models", None),
        (GET, "/admin/dashboards/nothing/report", None),
        (POST, "/admin/dashboards/nothing/shares", Some(json!({}))),
        (DELETE, "/admin/dashboards/nothing/shares/x", None),
        (POST, "/admin/security-events/purge", None),
        (POST, "/admin/users/import", Some(json!({"users": []}))),
    ];
    for (method, path, body) in &admin {
        let body = body.as_ref();
        assert_eq!(
            through_router(&app, method, path, None, body).await,
            401,
            "{path}"
        );
        assert_eq!(
            through_router(&app, method, path, Some(&ta), body).await,
            403,
            "{path}"
        );
        let s = through_router(&app, method, path, Some(ADMIN_KEY), body).await;
        assert!(s != 401 && s != 403, "operator {method} {path}: {s}");
    }
    // A user's own session routes: the operator key has no session.
    let own: Vec<(Method, &str, Option<serde_json::Value>)> = vec![
        (GET, "/users/me", None),
        (POST, "/auth/step-up", Some(json!({"password": PW}))),
        (POST, "/auth/step-up/webauthn", None),
    ];
    for (method, path, body) in &own {
        let body = body.as_ref();
        assert_eq!(
            through_router(&app, method, path, None, body).await,
            401,
            "{path}"
        );
        let s = through_router(&app, method, path, Some(&ta), body).await;
        assert!(s != 401 && s != 403, "self {method} {path}: {s}");
        assert_eq!(
            through_router(&app, method, path, Some(ADMIN_KEY), body).await,
            403,
            "operator {path}"
        );
    }
    // Last, as they end things: deletion, by another user refused, by the user allowed.
    let gone = format!("/users/{a}");
    assert_eq!(
        through_router(&app, &DELETE, &gone, Some(&tb), None).await,
        403
    );
    assert_eq!(
        through_router(&app, &DELETE, &gone, Some(&ta), None).await,
        204
    );
    assert_eq!(
        through_router(&app, &GET, "/users/me", Some(&ta), None).await,
        401
    );
    m.shutdown().await.unwrap();
}
