//! Tier analysis (issue 20): `GET /api/v1/admin/analytics/opportunities` and `roster
//! analyze-tiers` through a server and on a stopped data directory. The planted-truth
//! precision and recall are the analysis's unit test (`analytics::opportunities`).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, SYS, TestServer, set_analytics};

async fn playlists(srv: &TestServer, id: &str, n: i64) {
    let (s, r) = srv
        .call(
            Method::POST,
            &format!("/users/{id}/usage"),
            Some(ADMIN_KEY),
            Some(json!({"kind": "playlists", "delta": n})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
}

/// The analysis as of now, asked as the operator.
async fn analysis(srv: &TestServer) -> Value {
    let (s, a) = srv
        .call(
            Method::GET,
            "/admin/analytics/opportunities",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{a}");
    a
}

fn ids_of(analysis: &Value, kind: &str) -> Vec<String> {
    analysis["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == kind)
        .map(|c| c["user_id"].as_str().unwrap().to_owned())
        .collect()
}

fn args(target: roster::cli::Target, out: &std::path::Path) -> roster::cli::AnalyzeTiersArgs {
    roster::cli::AnalyzeTiersArgs {
        target,
        limit: 1_000,
        json: Some(out.join("tiers.json")),
        csv: Some(out.join("tiers.csv")),
        show: 5,
        quiet: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analysis_names_candidates_with_reasons_over_http_and_from_the_command() {
    let srv = TestServer::start("").await;
    let (full, token) = srv.user("full@example.com", "free").await;
    let (light, _) = srv.user("light@example.com", "free").await;
    let (hidden, _) = srv.user("hidden@example.com", "free").await;
    let (quiet, _) = srv.user("quiet@example.com", "premium").await;
    for id in [&full, &light, &quiet] {
        set_analytics(&srv.manager, id, true).await;
    }
    playlists(&srv, &full, 9).await;
    playlists(&srv, &light, 2).await;
    playlists(&srv, &hidden, 9).await;
    // Operators only.
    let (s, _) = srv
        .call(
            Method::GET,
            "/admin/analytics/opportunities",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 403);
    // Forty days on, nobody has been active.
    srv.clock.advance(Duration::from_secs(40 * 86_400));

    let a = analysis(&srv).await;
    assert_eq!(
        (a["users"].as_u64(), a["analysed"].as_u64()),
        (Some(4), Some(3))
    );
    // The Free user at 9 of its 10 playlists; not the one at 2, nor the one who does not
    // consent to analytics.
    assert_eq!(ids_of(&a, "upgrade"), [full.as_str()]);
    let up = &a["candidates"][0];
    assert_eq!(up["suggested_tier"], "premium");
    assert_eq!(up["reasons"][0]["signal"], "playlists");
    assert_eq!(up["reasons"][0]["detail"], "playlists: 9 of 10 (90%)");
    // The Premium user with no activity in four weeks.
    assert_eq!(ids_of(&a, "downgrade"), [quiet.as_str()]);
    assert_eq!(a["churn_model_version"], Value::Null);
    assert!(ids_of(&a, "retention").is_empty());
    let kinds: Vec<(&str, u64)> = a["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kind"].as_str().unwrap(), k["found"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("upgrade", 1),
            ("downgrade", 1),
            ("enterprise_fit", 0),
            ("retention", 0)
        ]
    );

    // Bad parameters are named.
    for (query, field) in [("limit=0", "limit"), ("limit=100001", "limit")] {
        let (s, p) = srv
            .call(
                Method::GET,
                &format!("/admin/analytics/opportunities?{query}"),
                Some(ADMIN_KEY),
                None,
            )
            .await;
        assert_eq!(s, 400, "{query}: {p}");
        assert!(p.to_string().contains(field), "{query}: {p}");
    }
    for query in ["limit=some", "kind=upgrade"] {
        let (s, p) = srv
            .call(
                Method::GET,
                &format!("/admin/analytics/opportunities?{query}"),
                Some(ADMIN_KEY),
                None,
            )
            .await;
        assert_eq!(s, 400, "{query}: {p}");
    }

    // The command through the server writes the same analysis as JSON and CSV.
    let out = tempfile::tempdir().unwrap();
    let target = roster::cli::Target {
        server: Some(srv.base.trim_end_matches("/api/v1").to_owned()),
        admin_key: Some(ADMIN_KEY.into()),
        ..Default::default()
    };
    roster::cli::run(
        roster::cli::Command::AnalyzeTiers(args(target, out.path())),
        None,
    )
    .await
    .unwrap();
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("tiers.json")).unwrap())
            .unwrap();
    assert_eq!(written["candidates"], a["candidates"]);
    let mut table = csv::Reader::from_path(out.path().join("tiers.csv")).unwrap();
    let rows: Vec<Vec<String>> = table
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(
        table.headers().unwrap(),
        vec![
            "kind",
            "user_id",
            "tier",
            "suggested_tier",
            "score",
            "signals",
            "reasons"
        ]
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][..4], ["upgrade", &full, "free", "premium"]);
    assert_eq!(rows[0][5], "playlists");
    assert_eq!(rows[1][..4], ["downgrade", &quiet, "premium", "free"]);
    assert_eq!(rows[1][6], "active on 0 of the last 28 days");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_analyses_a_stopped_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let m = crate::support::open(dir.path());
    let p = m
        .accounts()
        .create(
            &SYS,
            "collector@example.com",
            crate::support::PW,
            roster::UserTier::Free,
            Default::default(),
        )
        .await
        .unwrap();
    let id = p.id.to_string();
    set_analytics(&m, &id, true).await;
    m.accounts()
        .record_usage(
            &SYS,
            p.id,
            roster::domain::profile::QuotaKind::Playlists,
            10,
        )
        .await
        .unwrap();
    m.shutdown().await.unwrap();
    drop(m);
    let out = tempfile::tempdir().unwrap();
    roster::cli::run(
        roster::cli::Command::AnalyzeTiers(args(roster::cli::Target::default(), out.path())),
        Some(crate::support::config(dir.path(), &[])),
    )
    .await
    .unwrap();
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("tiers.json")).unwrap())
            .unwrap();
    assert_eq!(ids_of(&written, "upgrade"), [id]);
    assert_eq!(
        written["candidates"][0]["reasons"][0]["detail"],
        "playlists: 10 of 10 (100%)"
    );
}

/// Five requests against three an hour: how many were refused (the last two).
async fn burst(srv: &TestServer, token: &str) -> u32 {
    let mut refused = 0;
    for _ in 0..5 {
        let (s, _) = srv.call(Method::GET, "/users/me", Some(token), None).await;
        refused += u32::from(s == 429);
    }
    refused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_user_at_its_rate_on_three_days_is_an_upgrade_candidate() {
    let srv = TestServer::start("[tiers.free]\nrequests_per_hour = 3\n").await;
    let (often, often_token) = srv.user("often@example.com", "free").await;
    let (once, once_token) = srv.user("once@example.com", "free").await;
    for id in [&often, &once] {
        set_analytics(&srv.manager, id, true).await;
    }
    assert_eq!(burst(&srv, &once_token).await, 2);
    for day in 0..3 {
        assert_eq!(burst(&srv, &often_token).await, 2, "day {day}");
        // The next day (within the session's idle limit; the bucket refills in an hour).
        srv.clock.advance(Duration::from_secs(20 * 3_600));
    }
    let a = analysis(&srv).await;
    // The refusals were soft state of live actors: the analysis had them written.
    assert_eq!(ids_of(&a, "upgrade"), [often.as_str()]);
    let reason = &a["candidates"][0]["reasons"][0];
    assert_eq!(reason["signal"], "rate_limited_days");
    assert_eq!(reason["value"], 3.0);
    assert_eq!(
        reason["detail"],
        "refused for the tier's request rate on 3 of the last 28 days (6 requests)"
    );
    // The user's export holds them too.
    let (s, doc) = srv
        .call(
            Method::GET,
            &format!("/users/{often}/export"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{doc}");
    let days: Vec<(&str, u64)> = doc["rate_refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["day"].as_str().unwrap(), d["refused"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        days,
        [("2027-01-15", 2), ("2027-01-16", 2), ("2027-01-17", 2)]
    );
    srv.stop().await;
}
