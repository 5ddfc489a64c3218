//! Read-only dashboard links: made and revoked by an operator, opened by anyone holding
//! the token — without the operator key, seeing no user id — until the link expires or
//! is revoked; only the token's digest is stored.

use std::time::Duration;

use fantoccini::Locator;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest as _;

use roster::analytics::sim::{SimConfig, simulate};

use super::browser::Browser;
use crate::support::{ADMIN_KEY, SYS, TestServer, plant_users, set_analytics};

/// `GET /shared/dashboard` with `token` in its header (none: no header), no key.
async fn view(srv: &TestServer, token: Option<&str>) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = token
        .map(|t| ("x-dashboard-share", t))
        .into_iter()
        .collect();
    srv.call_with(Method::GET, "/shared/dashboard", None, None, &headers)
        .await
}

async fn make(srv: &TestServer, name: &str, body: Value) -> (u16, Value) {
    let path = format!("/admin/dashboards/{name}/shares");
    srv.call(Method::POST, &path, Some(ADMIN_KEY), Some(body))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_shows_the_dashboard_without_the_key_until_it_is_revoked_or_expires() {
    let srv = TestServer::start("").await;
    let (member, _) = srv.user("member@example.com", "premium").await;
    let (_, user_token) = srv.user("curious@example.com", "vip").await;
    let board = json!({"title": "Board", "panels": [
        {"kind": "overview"},
        {"kind": "churn_at_risk"},
        {"kind": "cohorts", "tier": "premium", "days": 28},
    ]});
    let (s, _) = srv
        .call(
            Method::PUT,
            "/admin/dashboards/board",
            Some(ADMIN_KEY),
            Some(board),
        )
        .await;
    assert_eq!(s, 201);

    // The operator's report: the figures, the default headings, users named.
    let (s, report) = srv
        .call(
            Method::GET,
            "/admin/dashboards/board/report",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{report}");
    let panels = report["panels"].as_array().unwrap();
    assert_eq!(panels[0]["rows"][0], json!(["users", 2]));
    assert_eq!(
        panels[1]["columns"],
        json!(["user", "tier", "probability", "band"])
    );
    assert_eq!(panels[2]["title"], "Retention cohorts (premium, 28 days)");
    assert_eq!(panels[2]["columns"][1], "users");

    // Every kind of panel has its table.
    let kinds = [
        "overview",
        "tier_distribution",
        "tiers_by_week",
        "cohorts",
        "segments",
        "churn_at_risk",
        "daily_usage",
        "engagement",
        "feature_usage",
    ];
    let all = json!({"title": "All", "panels": kinds.map(|k| json!({"kind": k}))});
    let (s, _) = srv
        .call(
            Method::PUT,
            "/admin/dashboards/all",
            Some(ADMIN_KEY),
            Some(all),
        )
        .await;
    assert_eq!(s, 201);
    let (s, every) = srv
        .call(
            Method::GET,
            "/admin/dashboards/all/report",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{every}");
    for (p, kind) in every["panels"].as_array().unwrap().iter().zip(kinds) {
        assert_eq!(p["kind"], kind);
        let width = p["columns"].as_array().unwrap().len();
        assert!(width >= 2, "{p}");
        for row in p["rows"].as_array().unwrap() {
            assert_eq!(row.as_array().unwrap().len(), width, "{p}");
        }
    }
    let tiers = &every["panels"][1]["rows"];
    assert_eq!(
        tiers,
        &json!([["free", 0], ["premium", 1], ["enterprise", 0], ["vip", 1]])
    );
    assert!(
        !every["panels"][6]["rows"].as_array().unwrap().is_empty(),
        "30 days of usage"
    );

    // Bad requests name the field; unknown dashboards and callers without the key are
    // refused.
    for (body, field) in [
        (json!({"expires_in_days": 0}), "expires_in_days"),
        (json!({"expires_in_days": 366}), "expires_in_days"),
        (json!({"label": "a\u{7}b"}), "label"),
        (json!({"forever": true}), "forever"),
    ] {
        let (s, p) = make(&srv, "board", body).await;
        assert_eq!(s, 400, "{p}");
        assert!(p.to_string().contains(field), "{p}");
    }
    assert_eq!(make(&srv, "nothing", json!({})).await.0, 404);
    let (s, _) = srv
        .call(
            Method::POST,
            "/admin/dashboards/board/shares",
            Some(&user_token),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 403, "operators only");

    // A link: its token shown once, the dashboard lists it by its digest.
    let (s, made) = make(
        &srv,
        "board",
        json!({"label": "board meeting", "expires_in_days": 2}),
    )
    .await;
    assert_eq!(s, 201, "{made}");
    let token = made["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("rds_"), "{token}");
    assert_eq!(made["path"], format!("/shared#t={token}"));
    let digest: String = sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (_, listed) = srv
        .call(
            Method::GET,
            "/admin/dashboards/board",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(listed["shares"][0]["token_sha256"], digest);
    assert_eq!(listed["shares"][0]["label"], "board meeting");
    assert!(!listed.to_string().contains(&token));

    // Opened with the token alone: the same figures, no user column, no user id (with
    // a trained model: `a_link_describes_groups_never_people`).
    let (s, shown) = view(&srv, Some(&token)).await;
    assert_eq!(s, 200, "{shown}");
    let shared = &shown["report"];
    assert_eq!(shared["title"], "Board");
    assert_eq!(shared["panels"][0], report["panels"][0]);
    assert_eq!(
        shared["panels"][1]["columns"],
        json!(["tier", "band", "users"])
    );
    assert!(
        !shown.to_string().contains(&member),
        "no user id in {shown}"
    );
    assert_eq!(shown["link_expires_at"], made["share"]["expires_at"]);

    // Computed at most once a minute: a new user shows after the minute.
    srv.user("second@example.com", "free").await;
    let users = |v: &Value| v["report"]["panels"][0]["rows"][0][1].clone();
    assert_eq!(users(&view(&srv, Some(&token)).await.1), 2);
    srv.clock.advance(Duration::from_secs(61));
    assert_eq!(users(&view(&srv, Some(&token)).await.1), 3);

    // Saving the dashboard again keeps its links.
    let board2 = json!({"title": "Board, v2", "panels": [{"kind": "overview"}]});
    let (s, _) = srv
        .call(
            Method::PUT,
            "/admin/dashboards/board",
            Some(ADMIN_KEY),
            Some(board2),
        )
        .await;
    assert_eq!(s, 200);
    let (s, shown) = view(&srv, Some(&token)).await;
    assert_eq!((s, &shown["report"]["title"]), (200, &json!("Board, v2")));

    // Refused alike: no token, a malformed one, a well-formed one that is no link's.
    let (s, none) = view(&srv, None).await;
    assert_eq!(s, 401, "{none}");
    let (s, bad) = view(&srv, Some("rds_nope")).await;
    assert_eq!(s, 401, "{bad}");
    let refusal = bad["detail"].clone();
    let (s, p) = view(&srv, Some(&format!("rds_{}", "A".repeat(43)))).await;
    assert_eq!((s, &p["detail"]), (401, &refusal));

    // Revoked: refused at once, with the same words; revoking twice is a 404.
    let id = made["share"]["id"].as_str().unwrap();
    let revoke = format!("/admin/dashboards/board/shares/{id}");
    let (s, p) = srv
        .call(Method::DELETE, &revoke, Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 204, "{p}");
    let (s, p) = view(&srv, Some(&token)).await;
    assert_eq!((s, &p["detail"]), (401, &refusal), "{p}");
    let (s, _) = srv
        .call(Method::DELETE, &revoke, Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 404);

    // Expired: another link works until its 30 days have passed.
    let (_, other) = make(&srv, "board", json!({})).await;
    let other = other["token"].as_str().unwrap();
    assert_eq!(view(&srv, Some(other)).await.0, 200);
    srv.clock.advance(Duration::from_secs(30 * 86_400));
    let (s, p) = view(&srv, Some(other)).await;
    assert_eq!((s, &p["detail"]), (401, &refusal), "{p}");

    let kinds: Vec<String> = srv
        .audit_actions()
        .await
        .into_iter()
        .filter(|k| k.starts_with("dashboard_share"))
        .collect();
    assert_eq!(
        kinds,
        [
            "dashboard_shared",
            "dashboard_share_revoked",
            "dashboard_shared"
        ]
    );

    // On disk: the digest, never the token.
    let dir = srv.stop().await;
    let mut stored = Vec::new();
    for entry in walk(dir.path()) {
        stored.extend(std::fs::read(entry).unwrap());
    }
    let holds = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
    assert!(holds(digest.as_bytes()), "the digest is stored");
    assert!(!holds(token.as_bytes()), "the token is not");
}

/// What a link shows of a group of fewer than 10 users.
const SMALL: &str = "fewer than 10";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_describes_groups_never_people() {
    let srv = TestServer::start("").await;
    let m = &srv.manager;
    let population: Vec<_> = simulate(SimConfig {
        users: 600,
        seed: 5,
        now: m.now(),
        days: 100,
        horizon_days: 14,
        keep_events: true,
    })
    .collect();
    let mut ids = plant_users(m, &population).await;
    let mut lines = Vec::new();
    for (id, u) in ids.iter().zip(&population) {
        for chunk in u.events.chunks(1000) {
            lines.push((id.parse().unwrap(), chunk.to_vec()));
        }
    }
    for line in m.analytics().import_history(&SYS, lines).await.unwrap() {
        line.unwrap();
    }
    let trained = m.analytics().train(&SYS, |_| {}).await.unwrap();
    assert!(trained.churn.usable, "{:?}", trained.churn.evaluation);
    // A VIP who signed up today: with the planted few, a cohort smaller than 10.
    let (vip, _) = srv.user("new-vip@example.com", "vip").await;
    set_analytics(m, &vip, true).await;
    ids.push(vip);
    let board = json!({"title": "Risk", "panels": [
        {"kind": "churn_at_risk"},
        {"kind": "cohorts", "days": 28},
        {"kind": "cohorts", "tier": "vip", "days": 28},
    ]});
    let (s, _) = srv
        .call(
            Method::PUT,
            "/admin/dashboards/risk",
            Some(ADMIN_KEY),
            Some(board),
        )
        .await;
    assert_eq!(s, 201);
    let (_, report) = srv
        .call(
            Method::GET,
            "/admin/dashboards/risk/report",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    let (_, churn) = srv
        .call(Method::GET, "/admin/analytics/churn", Some(ADMIN_KEY), None)
        .await;
    let (_, made) = make(&srv, "risk", json!({})).await;
    let (s, shown) = view(&srv, made["token"].as_str()).await;
    assert_eq!(s, 200, "{shown}");
    let shared = &shown["report"]["panels"];

    // The operator sees the users most at risk by id; the link holder none of anyone's.
    let named = report["panels"][0]["rows"].as_array().unwrap();
    assert_eq!(named.len(), 20, "{report}");
    assert!(ids.contains(&named[0][0].as_str().unwrap().to_owned()));
    let text = shown.to_string();
    for id in &ids {
        assert!(!text.contains(id.as_str()), "{id} in {text}");
    }

    // The link's churn panel: users by tier and band, as the model counts them, small
    // bands only as small.
    assert_eq!(shared[0]["columns"], json!(["tier", "band", "users"]));
    let bands = churn["bands"].as_array().unwrap();
    let total: u64 = bands.iter().map(|b| b["users"].as_u64().unwrap()).sum();
    assert_eq!(total, churn["scored"].as_u64().unwrap(), "{churn}");
    // Every tier and band, an empty one too: a missing row would tell something.
    let rows = shared[0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 12, "{shared}");
    for row in rows {
        let users = bands
            .iter()
            .find(|b| b["tier"] == row[0] && b["band"] == row[1])
            .map_or(0, |b| b["users"].as_u64().unwrap());
        let seen = if users < 10 {
            json!(SMALL)
        } else {
            json!(users)
        };
        assert_eq!(row[2], seen, "{row}");
    }
    assert!(rows.iter().any(|r| r[2].is_u64()), "{shared}");

    // Cohorts: a small one shows only that it is small; the others as the operator's.
    let (mut small, mut whole) = (0, 0);
    for p in [1, 2] {
        let ours = report["panels"][p]["rows"].as_array().unwrap();
        let theirs = shared[p]["rows"].as_array().unwrap();
        assert_eq!(ours.len(), theirs.len());
        for (o, t) in ours.iter().zip(theirs) {
            let size = o[1].as_u64().unwrap();
            if (1..10).contains(&size) {
                small += 1;
                assert_eq!(t[1], SMALL, "{t}");
                assert!(t.as_array().unwrap()[2..].iter().all(Value::is_null), "{t}");
            } else {
                whole += 1;
                assert_eq!(o, t);
            }
        }
    }
    assert!(small > 0 && whole > 0, "{report}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_are_capped_kept_out_of_caches_and_die_with_their_dashboard() {
    let srv = TestServer::start("[server]\nanonymous_requests_per_hour = 12\n").await;
    let board = json!({"title": "Board", "panels": [{"kind": "overview"}]});
    let put = |body: Value| {
        let srv = &srv;
        async move {
            srv.call(
                Method::PUT,
                "/admin/dashboards/board",
                Some(ADMIN_KEY),
                Some(body),
            )
            .await
            .0
        }
    };
    assert_eq!(put(board.clone()).await, 201);

    // At most 20 live links; the 21st is a conflict that says what to do.
    let mut tokens = Vec::new();
    for _ in 0..20 {
        let (s, made) = make(&srv, "board", json!({})).await;
        assert_eq!(s, 201, "{made}");
        tokens.push(made["token"].as_str().unwrap().to_owned());
    }
    let (s, p) = make(&srv, "board", json!({})).await;
    assert_eq!(s, 409, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("revoke one"), "{p}");

    // What a link shows is kept out of caches and referrers, and so is its page.
    let resp = srv
        .http
        .get(format!("{}/shared/dashboard", srv.base))
        .header("x-dashboard-share", &tokens[0])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    let page = srv
        .http
        .get(format!("http://{}/shared", srv.host()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert!(page.headers().contains_key("content-security-policy"));

    // Deleted, then saved again under the same name: the old links open nothing.
    let (s, _) = srv
        .call(
            Method::DELETE,
            "/admin/dashboards/board",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(view(&srv, Some(&tokens[1])).await.0, 401);
    assert_eq!(put(board).await, 201);
    assert_eq!(view(&srv, Some(&tokens[2])).await.0, 401);

    // Views count against the address's hourly allowance like any public call.
    let (_, made) = make(&srv, "board", json!({})).await;
    let live = made["token"].as_str().unwrap();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(view(&srv, Some(live)).await.0);
    }
    let first_refusal = statuses.iter().position(|s| *s == 429).unwrap();
    assert!(first_refusal > 0, "{statuses:?}");
    assert!(
        statuses[..first_refusal].iter().all(|s| *s == 200),
        "{statuses:?}"
    );
    srv.stop().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_hands_out_a_link_that_opens_in_a_fresh_browser_until_revoked() {
    let srv = TestServer::start("").await;
    srv.user("member@example.com", "premium").await;
    let board = json!({"title": "Board", "panels": [
        {"kind": "overview"},
        {"kind": "segments", "title": "=1+1"},
    ]});
    let (s, _) = srv
        .call(
            Method::PUT,
            "/admin/dashboards/board",
            Some(ADMIN_KEY),
            Some(board),
        )
        .await;
    assert_eq!(s, 201);
    let root = format!("http://{}", srv.host());
    let operator = Browser::start().await;
    super::browser::console_sign_in(&operator, &root).await;
    operator.click("nav-dashboards").await;
    let open = operator
        .client
        .wait()
        .for_element(Locator::Css(
            "#dashboard-list tr[data-dashboard='board'] button.open",
        ))
        .await
        .unwrap();
    open.click().await.unwrap();
    operator.type_in("share-label", "board meeting").await;
    operator.click("make-share").await;
    let link = "return document.getElementById('share-link').dataset.link || ''";
    let link = operator
        .until(Duration::from_secs(5), link, |v| {
            v.as_str().is_some_and(|l| !l.is_empty())
        })
        .await;
    let link = link.as_str().unwrap().to_owned();
    assert!(link.starts_with(&format!("{root}/shared#t=rds_")), "{link}");
    let listed = "return document.querySelectorAll('#share-list tr[data-share]').length";
    assert_eq!(
        operator
            .until(Duration::from_secs(5), listed, |v| v == 1)
            .await,
        1
    );

    // Someone else, in a browser that never signed in, opens the link.
    let viewer = Browser::start().await;
    viewer.client.goto(&link).await.unwrap();
    let panels = "return document.querySelectorAll('#shared-render section.panel table').length";
    assert_eq!(
        viewer
            .until(Duration::from_secs(5), panels, |v| v == 2)
            .await,
        2
    );
    assert_eq!(viewer.text("#dashboard-title").await, "Board");
    let users = "return document.querySelector('#shared-render section.panel[data-kind=overview] tbody td:nth-child(2)')?.textContent ?? ''";
    assert_eq!(
        viewer
            .until(Duration::from_secs(5), users, |v| v == "1")
            .await,
        "1"
    );
    viewer.screenshot("shared-dashboard").await;
    let href = viewer.client.current_url().await.unwrap();
    assert!(
        !href.as_str().contains("rds_"),
        "the token left the address: {href}"
    );
    // Exported: a heading a spreadsheet would run as a formula is opened with a quote.
    viewer.click("shared-csv").await;
    let csv = "return document.getElementById('shared-csv-status').dataset.csv || ''";
    let csv = viewer
        .until(Duration::from_secs(5), csv, |v| {
            v.as_str().is_some_and(|t| !t.is_empty())
        })
        .await;
    assert!(
        csv.as_str().unwrap().contains("\n'=1+1\nsegment,users\n"),
        "{csv}"
    );
    let cookies = viewer.client.get_all_cookies().await.unwrap();
    assert!(
        cookies.is_empty(),
        "the viewer holds no session: {cookies:?}"
    );

    // The operator revokes it; the viewer's next look is refused.
    operator
        .client
        .find(Locator::Css("#share-list tr[data-share] button.revoke"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(
        operator
            .until(Duration::from_secs(5), listed, |v| v == 0)
            .await,
        0
    );
    viewer.click("shared-refresh").await;
    let refused = "return document.getElementById('shared-error').textContent";
    let refused = viewer
        .until(Duration::from_secs(5), refused, |v| {
            v.as_str().is_some_and(|t| !t.is_empty())
        })
        .await;
    assert!(refused.as_str().unwrap().contains("revoked"), "{refused}");
    assert_eq!(
        viewer
            .until(Duration::from_secs(1), panels, |v| v == 0)
            .await,
        0
    );
    viewer.client.clone().close().await.unwrap();
    operator.client.clone().close().await.unwrap();
    srv.stop().await;
}
