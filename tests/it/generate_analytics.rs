//! The usage report (issue 20): `GET /api/v1/admin/analytics/usage` and `roster
//! generate-analytics`, whose JSON holds the analytics endpoints' answers for the same
//! period, whose CSV tables and HTML page show the same figures, and whose page needs
//! nothing from the network.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, TestServer, set_analytics};

async fn get(srv: &TestServer, path: &str) -> Value {
    let (s, body) = srv.call(Method::GET, path, Some(ADMIN_KEY), None).await;
    assert_eq!(s, 200, "{path}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_holds_the_endpoints_figures_and_opens_offline() {
    let srv = TestServer::start("").await;
    // The test clock starts on 2027-01-15.
    let (a, token) = srv.user("a@example.com", "free").await;
    let (b, _) = srv.user("b@example.com", "premium").await;
    let (_c, _) = srv.user("c@example.com", "free").await;
    set_analytics(&srv.manager, &a, true).await;
    set_analytics(&srv.manager, &b, true).await;
    let now = srv.manager.now().to_string();
    let (s, r) = srv
        .post_activity(
            &a,
            &token,
            json!([
                {"kind": "searched", "at": now},
                {"kind": "feature_used", "at": now, "feature": "music_analysis"}
            ]),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, _) = srv
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "c@example.com", "password": "not the password at all"})),
        )
        .await;
    assert_eq!(s, 401);

    let usage = get(&srv, "/admin/analytics/usage?from=2027-01-09&to=2027-01-15").await;
    assert_eq!(usage["from"], "2027-01-09T00:00:00.000Z");
    let days = usage["days"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    let today = &days[6];
    assert_eq!(
        today["signups"],
        json!({"free": 2, "premium": 1, "enterprise": 0, "vip": 0})
    );
    assert_eq!(today["active_users"], 1);
    assert_eq!(today["security_events"]["login_succeeded"], 3, "{today}");
    assert_eq!(today["security_events"]["login_failed"], 1, "{today}");
    assert_eq!(
        (usage["signups"].as_u64(), usage["logins"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(days[0]["signups"]["free"], 0);
    assert_eq!(usage["features"][0]["feature"], "music_analysis");
    assert_eq!(usage["features"][0]["users_in_period"], 1);
    assert_eq!(usage["engagement"]["users"], 2);
    // The default period is the last 30 days.
    let default = get(&srv, "/admin/analytics/usage").await;
    assert_eq!(default["days"].as_array().map(Vec::len), Some(30));
    // Bad periods are named; users may not read it.
    for (q, field) in [
        ("from=2027-13-01", "from"),
        ("to=2027-01-16", "to"),
        ("from=2027-01-15&to=2027-01-14", "from"),
        ("from=2025-01-01&to=2027-01-15", "from"),
    ] {
        let (s, p) = srv
            .call(
                Method::GET,
                &format!("/admin/analytics/usage?{q}"),
                Some(ADMIN_KEY),
                None,
            )
            .await;
        assert_eq!(s, 400, "{q}: {p}");
        assert_eq!(p["field"], field, "{q}: {p}");
    }
    let (s, _) = srv
        .call(
            Method::GET,
            "/admin/analytics/usage?days=3",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = srv
        .call(Method::GET, "/admin/analytics/usage", Some(&token), None)
        .await;
    assert_eq!(s, 403);

    // The command through the server, for the same period.
    let out = tempfile::tempdir().unwrap();
    let args = roster::cli::GenerateAnalyticsArgs {
        target: roster::cli::Target {
            server: Some(srv.base.trim_end_matches("/api/v1").to_owned()),
            admin_key: Some(ADMIN_KEY.into()),
            ..Default::default()
        },
        from: Some("2027-01-09".into()),
        to: Some("2027-01-15".into()),
        out: out.path().join("report"),
        at_risk: 20,
        quiet: true,
    };
    roster::cli::run(roster::cli::Command::GenerateAnalytics(args), None)
        .await
        .unwrap();
    let dir = out.path().join("report");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        (report["from"].as_str(), report["to"].as_str()),
        (Some("2027-01-09"), Some("2027-01-15"))
    );
    // 2027-01-09 is a Saturday: its week and the current one.
    for (section, path) in [
        (
            "usage",
            "/admin/analytics/usage?from=2027-01-09&to=2027-01-15",
        ),
        ("overview", "/admin/analytics/overview"),
        ("tiers", "/admin/analytics/tiers?weeks=2"),
        ("cohorts", "/admin/analytics/cohorts?unit=week&periods=2"),
        ("segments", "/admin/analytics/segments"),
        ("churn", "/admin/analytics/churn?limit=20"),
    ] {
        assert_eq!(report[section], get(&srv, path).await, "{section}");
    }
    // The page: figures shown, charts drawn inline, nothing to fetch.
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("<svg"), "charts are inline SVG");
    for forbidden in [
        "http://", "https://", "<script", "<link", "src=", "url(", "@import",
    ] {
        assert!(!html.contains(forbidden), "the page holds {forbidden:?}");
    }
    let dau = report["overview"]["dau"].as_u64().unwrap();
    assert_eq!(dau, 1);
    assert!(
        html.contains(&format!("<td>dau</td><td>{dau}</td>")),
        "the overview's DAU"
    );
    assert!(
        html.contains("<td>2027-01-15</td><td>2</td><td>1</td><td>0</td><td>0</td><td>1</td>"),
        "today's sign-ups and active users"
    );
    assert!(html.contains("3 sign-ups and 3 logins in the period"));
    // The CSV tables say the same.
    let mut daily = csv::Reader::from_path(dir.join("daily.csv")).unwrap();
    let headers: Vec<String> = daily.headers().unwrap().iter().map(str::to_owned).collect();
    let rows: Vec<csv::StringRecord> = daily.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 7);
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    assert_eq!(&rows[6][col("signups_free")], "2");
    assert_eq!(&rows[6][col("login_succeeded")], "3");
    assert_eq!(&rows[6][col("login_failed")], "1");
    assert_eq!(&rows[6][col("active_users")], "1");
    for name in [
        "overview",
        "tiers",
        "cohorts",
        "engagement",
        "features",
        "churn_model",
    ] {
        assert!(dir.join(format!("{name}.csv")).is_file(), "{name}.csv");
    }
    let (s, _) = srv
        .call(
            Method::GET,
            "/admin/analytics/usage?from=2027-01-09",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200);

    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_reports_on_a_stopped_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let m = crate::support::open(dir.path());
    for email in ["x@example.com", "y@example.com"] {
        m.accounts()
            .create(
                &crate::support::SYS,
                email,
                crate::support::PW,
                roster::UserTier::Free,
                Default::default(),
            )
            .await
            .unwrap();
    }
    m.shutdown().await.unwrap();
    drop(m);
    let out = tempfile::tempdir().unwrap();
    let args = |from: Option<&str>| roster::cli::GenerateAnalyticsArgs {
        target: roster::cli::Target::default(),
        from: from.map(str::to_owned),
        to: None,
        out: out.path().to_owned(),
        at_risk: 5,
        quiet: true,
    };
    let config = || Some(crate::support::config(dir.path(), &[]));
    let e = roster::cli::run(
        roster::cli::Command::GenerateAnalytics(args(Some("last week"))),
        config(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("--from must be a date"), "{e}");
    roster::cli::run(
        roster::cli::Command::GenerateAnalytics(args(None)),
        config(),
    )
    .await
    .unwrap();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["usage"]["days"].as_array().map(Vec::len), Some(30));
    assert_eq!(report["usage"]["signups"], 2);
    assert_eq!(report["usage"]["days"][29]["signups"]["free"], 2);
    assert_eq!(report["overview"]["users"], 2);
    assert!(out.path().join("report.html").is_file());
}
