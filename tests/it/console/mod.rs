//! The operator console: its pages under a strict CSP, its cookie sessions (sign-in with
//! the operator key, CSRF on every change, cross-site use refused), and — in a real
//! browser — what an operator does with it (`browser`).

mod account;
pub(crate) mod browser;
mod jobs;
mod passkeys;
mod shares;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, TestServer};

/// The console's cookie (`roster_console=…`) from a sign-in's `Set-Cookie`, and the
/// answer's CSRF token.
async fn sign_in(srv: &TestServer) -> (String, String, String) {
    let resp = srv
        .http
        .post(format!("{}/admin/console/session", srv.base))
        .json(&json!({"key": ADMIN_KEY}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    let cookie = set.split(';').next().unwrap().to_owned();
    (cookie, body["csrf_token"].as_str().unwrap().to_owned(), set)
}

/// `METHOD /api/v1{path}` with `headers`; the status.
async fn status(
    srv: &TestServer,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> u16 {
    srv.call_with(method, path, None, body, headers).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_are_served_under_a_strict_policy_and_name_no_other_host() {
    let srv = TestServer::start("").await;
    let root = format!("http://{}", srv.host());
    for path in [
        "/admin",
        "/admin/",
        "/admin/console.js",
        "/admin/console.css",
    ] {
        let resp = srv.http.get(format!("{root}{path}")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let h = resp.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let body = resp.text().await.unwrap();
        assert!(
            !body.contains("https://") && !body.contains("http://"),
            "{path}"
        );
    }
    let page = srv.http.get(format!("{root}/admin")).send().await.unwrap();
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let js = srv
        .http
        .get(format!("{root}/admin/console.js"))
        .send()
        .await
        .unwrap();
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let missing = srv
        .http
        .get(format!("{root}/admin/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_session_stands_for_the_key_only_from_this_site_and_with_its_csrf_token() {
    let srv = TestServer::start("").await;
    // The wrong key opens nothing; a malformed body is a 400.
    let (s, p) = srv
        .call(
            Method::POST,
            "/admin/console/session",
            None,
            Some(json!({"key": "guess"})),
        )
        .await;
    assert_eq!(
        (s, p["detail"].as_str()),
        (401, Some("the operator key is wrong")),
        "{p}"
    );
    let (s, _) = srv
        .call(
            Method::POST,
            "/admin/console/session",
            None,
            Some(json!({"kee": ADMIN_KEY})),
        )
        .await;
    assert_eq!(s, 400);

    let (cookie, csrf, set) = sign_in(&srv).await;
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP on loopback: {set}");
    assert!(!cookie.contains(ADMIN_KEY) && !set.contains(ADMIN_KEY));
    let with = |extra: &[(&'static str, String)]| {
        let mut h: Vec<(&'static str, String)> = vec![("cookie", cookie.clone())];
        h.extend_from_slice(extra);
        h
    };
    let as_refs = |h: &Vec<(&'static str, String)>| -> Vec<(&'static str, String)> { h.clone() };
    let send =
        |m: Method, path: &'static str, h: Vec<(&'static str, String)>, body: Option<Value>| {
            let srv = &srv;
            async move {
                let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
                status(srv, m, path, &refs, body).await
            }
        };

    // No page's data without the cookie; with it, reads work and the page can recover
    // its CSRF token.
    assert_eq!(send(Method::GET, "/admin/jobs", vec![], None).await, 401);
    assert_eq!(
        send(Method::GET, "/admin/jobs", as_refs(&with(&[])), None).await,
        200
    );
    let (s, again) = srv
        .call_with(
            Method::GET,
            "/admin/console/session",
            None,
            None,
            &[("cookie", &cookie)],
        )
        .await;
    assert_eq!(
        (s, again["csrf_token"].as_str()),
        (200, Some(csrf.as_str()))
    );
    let (s, _) = srv
        .call(Method::GET, "/admin/console/session", None, None)
        .await;
    assert_eq!(s, 401);

    // A change: without the token it is nobody's (401), a wrong token is refused (403),
    // from another site refused (403) even with the token; with it, done.
    let deny = json!({"network": "198.51.100.0/24", "reason": "console test"});
    let post = |h| send(Method::POST, "/admin/deny-networks", h, Some(deny.clone()));
    assert_eq!(post(with(&[])).await, 401);
    assert_eq!(post(with(&[("x-csrf-token", "0".repeat(64))])).await, 403);
    let cross = with(&[
        ("x-csrf-token", csrf.clone()),
        ("origin", "https://evil.example".into()),
    ]);
    assert_eq!(post(cross).await, 403);
    let (listed_status, listed) = srv
        .call(Method::GET, "/admin/deny-networks", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(listed_status, 200);
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(0),
        "nothing changed: {listed}"
    );
    let same = with(&[
        ("x-csrf-token", csrf.clone()),
        ("origin", format!("http://{}", srv.host())),
    ]);
    let s = post(same).await;
    assert!((200..300).contains(&s), "{s}");

    // A user's socket opened by a browser that is signed in to the console is the
    // user's (its `auth` frame), not refused as the operator's.
    let (_, user_token) = srv.user("socket@example.com", "premium").await;
    let url = format!("{}/ws", srv.base.replacen("http://", "ws://", 1));
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    crate::ws::send(&mut ws, json!({"type": "auth", "token": user_token})).await;
    let hello = crate::ws::next_json(&mut ws).await;
    assert_eq!(hello["type"], "hello", "{hello}");

    // Signing out needs the token too, and ends the cookie's use.
    assert_eq!(
        send(Method::DELETE, "/admin/console/session", with(&[]), None).await,
        401
    );
    let out = with(&[("x-csrf-token", csrf.clone())]);
    assert_eq!(
        send(Method::DELETE, "/admin/console/session", out, None).await,
        204
    );
    assert_eq!(send(Method::GET, "/admin/jobs", with(&[]), None).await, 401);

    // The refusal, the opening and the end are on record, with the client's address;
    // the refusal is nobody's, and the key is in none of them.
    let log = srv.audit_log().await;
    let console: Vec<(String, String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["action"]["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("console_"))
        })
        .map(|r| {
            let field = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                field(&r["actor"]["kind"]),
                field(&r["action"]["type"]),
                field(&r["action"]["address"]),
            )
        })
        .collect();
    let at =
        |kind: &str, action: &str| (kind.to_owned(), action.to_owned(), "127.0.0.1".to_owned());
    assert_eq!(
        console,
        vec![
            at("anonymous", "console_sign_in_refused"),
            at("operator", "console_signed_in"),
            at("operator", "console_signed_out"),
        ],
        "{log}"
    );
    assert!(!log.to_string().contains(ADMIN_KEY));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_a_user_by_email() {
    let srv = TestServer::start("").await;
    let (id, token) = srv.user("Findable@Example.com", "premium").await;
    let find = |q: &str, bearer: &'static str| {
        let path = format!("/admin/users/lookup?email={q}");
        let srv = &srv;
        async move { srv.call(Method::GET, &path, Some(bearer), None).await }
    };
    let (s, p) = find("findable%40example.com", ADMIN_KEY).await;
    assert_eq!((s, p["id"].as_str()), (200, Some(id.as_str())), "{p}");
    assert_eq!(find("nobody%40example.com", ADMIN_KEY).await.0, 404);
    let (s, p) = find("not-an-email", ADMIN_KEY).await;
    assert_eq!((s, p["field"].as_str()), (400, Some("email")), "{p}");
    let user: &'static str = Box::leak(token.into_boxed_str());
    assert_eq!(find("findable%40example.com", user).await.0, 403);
    let (s, _) = srv
        .call(Method::GET, "/admin/users/lookup", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 400, "the email is required");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_are_checked_saved_audited_and_kept_across_a_restart() {
    let srv = TestServer::start("").await;
    let put = |name: &str, body: Value| {
        let path = format!("/admin/dashboards/{name}");
        let srv = &srv;
        async move {
            srv.call(Method::PUT, &path, Some(ADMIN_KEY), Some(body))
                .await
        }
    };
    let good = json!({"title": "Weekly review", "panels": [
        {"kind": "overview"},
        {"kind": "cohorts", "tier": "premium", "days": 84, "title": "Premium cohorts"},
    ]});
    // Bad input: each a 400 naming the field, nothing saved.
    for (name, body, field) in [
        ("Weekly", good.clone(), "name"),
        (
            "w",
            json!({"title": "", "panels": [{"kind": "overview"}]}),
            "title",
        ),
        ("w", json!({"title": "t", "panels": []}), "panels"),
        (
            "w",
            json!({"title": "t", "panels": [{"kind": "overview", "tier": "vip"}]}),
            "panels[0].tier",
        ),
        (
            "w",
            json!({"title": "t", "panels": [{"kind": "segments", "days": 7}]}),
            "panels[0].days",
        ),
        (
            "w",
            json!({"title": "t", "panels": [{"kind": "cohorts", "days": 0}]}),
            "panels[0].days",
        ),
        (
            "w",
            json!({"title": "t", "panels": [{"kind": "weather"}]}),
            "panels[0].kind",
        ),
    ] {
        let (s, p) = put(name, body).await;
        assert_eq!((s, p["field"].as_str()), (400, Some(field)), "{p}");
    }
    let (s, all) = srv
        .call(Method::GET, "/admin/dashboards", Some(ADMIN_KEY), None)
        .await;
    assert_eq!((s, all), (200, json!([])));
    // Saved (201), replaced (200, created_at kept), read, and on record.
    let (s, first) = put("weekly-review", good.clone()).await;
    assert_eq!(s, 201, "{first}");
    let mut changed = good.clone();
    changed["title"] = json!("Weekly review, v2");
    let (s, second) = put("weekly-review", changed).await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["created_at"], first["created_at"]);
    assert_eq!(second["panels"][1]["tier"], "premium");
    let (s, _) = put("scratch", good.clone()).await;
    assert_eq!(s, 201);
    let (s, p) = srv
        .call(
            Method::DELETE,
            "/admin/dashboards/scratch",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 204, "{p}");
    let (s, _) = srv
        .call(
            Method::DELETE,
            "/admin/dashboards/scratch",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (_, token) = srv.user("curious@example.com", "vip").await;
    let (s, _) = srv
        .call(Method::GET, "/admin/dashboards", Some(&token), None)
        .await;
    assert_eq!(s, 403, "operators only");
    let log = srv.audit_log().await;
    let kinds: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"]["type"].as_str())
        .filter(|k| k.starts_with("dashboard"))
        .collect();
    assert_eq!(
        kinds,
        [
            "dashboard_saved",
            "dashboard_saved",
            "dashboard_saved",
            "dashboard_deleted"
        ]
    );

    // After a restart: the same dashboard.
    let dir = srv.stop().await;
    let srv = TestServer::start_in(dir, "").await;
    let (s, all) = srv
        .call(Method::GET, "/admin/dashboards", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(all, json!([second]), "kept as saved");
    let (s, one) = srv
        .call(
            Method::GET,
            "/admin/dashboards/weekly-review",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!((s, &one["title"]), (200, &json!("Weekly review, v2")));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_saves_at_once_never_pass_the_dashboard_cap() {
    let srv = TestServer::start("").await;
    let body = json!({"title": "t", "panels": [{"kind": "overview"}]});
    let put = |name: String| {
        let srv = &srv;
        let body = body.clone();
        async move {
            let path = format!("/admin/dashboards/{name}");
            srv.call(Method::PUT, &path, Some(ADMIN_KEY), Some(body))
                .await
                .0
        }
    };
    for i in 0..98 {
        assert_eq!(put(format!("d{i}")).await, 201);
    }
    // Two places left, eight new names at once: two saved, six refused.
    let all = futures_util::future::join_all((0..8).map(|i| put(format!("new{i}")))).await;
    let saved = all.iter().filter(|s| **s == 201).count();
    assert_eq!(saved, 2, "{all:?}");
    assert!(all.iter().all(|s| *s == 201 || *s == 409), "{all:?}");
    let (_, listed) = srv
        .call(Method::GET, "/admin/dashboards", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(100));
}
