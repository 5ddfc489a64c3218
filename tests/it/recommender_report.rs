//! The operators' side of the recommender: the report (exposure with and without
//! mitigation, click-through by level and mitigation from shown and clicked events),
//! `debug=true` on a list, and the context a list is made for (the hour and platform).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::recommendations::{list, listener, ok, prefs, server, tracks, train};
use crate::support::{ADMIN_KEY, TestServer};

async fn report(srv: &TestServer, query: &str, bearer: &str) -> (u16, Value) {
    let path = format!("/admin/recommendations/report{query}");
    srv.call(Method::GET, &path, Some(bearer), None).await
}

/// Sends `shown` recommendation_shown events for the first items of `body`, and
/// `clicked` recommendation_clicked events for the first of them.
async fn feedback(
    srv: &TestServer,
    id: &str,
    token: &str,
    body: &Value,
    shown: usize,
    clicked: usize,
) {
    let now = srv.manager.now().to_string();
    let items = body["items"].as_array().unwrap();
    let mut events = Vec::new();
    for (n, item) in items.iter().take(shown).enumerate() {
        let r = &item["recommendation_id"];
        events.push(json!({"kind": "recommendation_shown", "at": now, "recommendation_id": r, "track_id": item["track_id"]}));
        if n < clicked {
            events
                .push(json!({"kind": "recommendation_clicked", "at": now, "recommendation_id": r}));
        }
    }
    let (s, body) = srv.post_activity(id, token, Value::from(events)).await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_shows_exposure_with_and_without_mitigation_and_click_through_by_kind() {
    let srv = server().await;
    let (a, a_token) = listener(&srv, "a@example.com", "premium", "standard").await;
    let (b, b_token) = listener(&srv, "b@example.com", "premium", "standard").await;
    prefs(&srv, &b, json!({"bias_mitigation_enabled": true})).await;
    assert!(train(&srv).await.len() > 1);
    let for_a = ok(&srv, &a, &a_token, "?limit=5").await;
    let for_b = ok(&srv, &b, &b_token, "?limit=5").await;
    assert!(
        for_a["items"][0]["recommendation_id"]
            .as_str()
            .unwrap()
            .starts_with("r1.s0.")
    );
    assert!(
        for_b["items"][0]["recommendation_id"]
            .as_str()
            .unwrap()
            .starts_with("r1.s1.")
    );
    feedback(&srv, &a, &a_token, &for_a, 4, 1).await;
    feedback(&srv, &b, &b_token, &for_b, 2, 2).await;
    // An id of another system's counts in the history, not here.
    let now = srv.manager.now().to_string();
    let foreign =
        json!([{"kind": "recommendation_clicked", "at": now, "recommendation_id": "x-1"}]);
    assert_eq!(srv.post_activity(&a, &a_token, foreign).await.0, 200);

    let (s, r) = report(&srv, "?k=5", ADMIN_KEY).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["eligible_users"].as_u64(), r["sampled"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(r["level"], "standard");
    assert_eq!(r["catalog_tracks"], 12);
    for side in ["without_mitigation", "with_mitigation"] {
        let q = &r["exposure"][side];
        assert_eq!(
            (q["lists"].as_u64(), q["cases"].as_u64()),
            (Some(2), Some(2)),
            "{r}"
        );
        for f in [
            "coverage",
            "gini",
            "head_share",
            "intra_list_diversity",
            "hit_rate",
            "ndcg",
        ] {
            assert!(
                q[f].as_f64().is_some_and(|x| (0.0..=1.0).contains(&x)),
                "{side}.{f}: {r}"
            );
        }
    }
    let kinds: Vec<(Value, Value, Value, Value)> = r["click_through"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["level"].clone(),
                c["bias_mitigation"].clone(),
                c["shown"].clone(),
                c["clicked"].clone(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (json!("standard"), json!(false), json!(4), json!(1)),
            (json!("standard"), json!(true), json!(2), json!(2)),
        ]
    );
    let by_m = r["click_through_by_mitigation"].as_array().unwrap();
    assert_eq!(by_m[0]["click_through"], 0.25);
    assert_eq!(by_m[1]["click_through"], 1.0);
    let standard = &r["click_through_by_level"][2];
    assert_eq!(
        (standard["shown"].as_u64(), standard["clicked"].as_u64()),
        (Some(6), Some(3))
    );
    assert_eq!(r["feedback_users"], 2);
    // The user's export shows its own counts.
    let (s, doc) = srv
        .call(
            Method::GET,
            &format!("/users/{a}/export"),
            Some(&a_token),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        doc["recommendation_feedback"],
        json!([{"level": "standard", "bias_mitigation": false, "shown": 4, "clicked": 1}])
    );

    // The feedback does not depend on the level the sample is measured at.
    let (s, again) = report(&srv, "?k=5&level=off", ADMIN_KEY).await;
    assert_eq!(s, 200);
    assert_eq!(again["click_through"], r["click_through"]);
    assert_eq!(again["level"], "off");

    // Only operators, and only sane numbers.
    assert_eq!(report(&srv, "", &a_token).await.0, 403);
    for bad in [
        "?sample=0",
        "?sample=100001",
        "?k=0",
        "?k=101",
        "?level=max",
        "?top=3",
    ] {
        let (s, body) = report(&srv, bad, ADMIN_KEY).await;
        assert_eq!(s, 400, "{bad}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_a_lists_exposure_figures_with_debug() {
    let srv = server().await;
    let (id, token) = listener(&srv, "d@example.com", "premium", "standard").await;
    let (s, body) = list(&srv, &id, &token, "?debug=true").await;
    assert_eq!(s, 403, "a user may not ask for debug figures: {body}");
    let body = ok(&srv, &id, ADMIN_KEY, "?limit=6&debug=true").await;
    let served = &body["debug"]["served"];
    assert_eq!(served["items"], 6);
    assert!(served["artists"].as_u64().unwrap() >= 1);
    assert!(
        body["debug"]["with_mitigation"]["items"].as_u64() == Some(6),
        "{body}"
    );
    assert!(body["debug"]["without_mitigation"].is_null());
    // Without debug there is no such part.
    assert!(
        ok(&srv, &id, &token, "?limit=6")
            .await
            .get("debug")
            .is_none()
    );
    prefs(&srv, &id, json!({"bias_mitigation_enabled": true})).await;
    let body = ok(&srv, &id, ADMIN_KEY, "?limit=6&debug=true").await;
    assert!(
        body["debug"]["without_mitigation"]["items"].as_u64() == Some(6),
        "{body}"
    );
    assert!(body["debug"]["with_mitigation"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_advanced_list_follows_what_the_user_plays_at_that_hour() {
    let srv = server().await;
    // The server's clock starts at 08:00 UTC; the user signs up then.
    let (id, _) = srv.user("hours@example.com", "premium").await;
    let all = vec![
        (roster::domain::consent::Purpose::Analytics, true),
        (roster::domain::consent::Purpose::Personalisation, true),
    ];
    crate::recommendations::consent(&srv, &id, all).await;
    let ai = json!({"personalization_level": "advanced", "bias_mitigation_enabled": false,
                    "explanations_enabled": true, "mood_detection_enabled": false});
    prefs(&srv, &id, ai).await;
    let start = srv.manager.now();
    srv.clock.advance(Duration::from_secs(14 * 3_600));
    // Metal in the mornings, jazz in the evenings, five plays each.
    let at = |h: u64, m: u64| {
        start
            .plus(Duration::from_secs(h * 3_600 + m * 60))
            .to_string()
    };
    let mut events = Vec::new();
    for m in 0..5 {
        events.push(json!({"kind": "track_played", "track_id": "metal-0", "at": at(0, 5 + m), "duration_ms": 1000}));
        events.push(json!({"kind": "track_played", "track_id": "jazz-0", "at": at(12, 5 + m), "duration_ms": 1000}));
    }
    let line = json!({"user_id": id, "events": events}).to_string() + "\n";
    let (s, body) = srv
        .post_raw(
            "/admin/activity/import",
            ADMIN_KEY,
            "application/x-ndjson",
            line,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let doc = crate::personalization::export(&srv, &id).await;
    let moment = |part: &str| {
        doc["taste"]["moments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["daypart"] == part)
            .cloned()
            .unwrap_or_else(|| panic!("no {part} moment: {doc}"))
    };
    assert_eq!(moment("morning")["plays"], 5);
    assert!(moment("morning")["energy"].as_f64().unwrap() > 0.9);
    assert!(moment("evening")["energy"].as_f64().unwrap() < 0.3);
    let morning = ok(&srv, &id, ADMIN_KEY, "?limit=4&hour=8").await;
    let evening = ok(&srv, &id, ADMIN_KEY, "?limit=4&hour=20").await;
    assert_eq!(morning["model"]["context"]["daypart"], "morning");
    assert_eq!(evening["model"]["context"]["hour"], 20);
    let (m, e) = (tracks(&morning), tracks(&evening));
    assert!(
        m[0].starts_with("metal-") && e[0].starts_with("jazz-"),
        "{m:?} {e:?}"
    );
    let texts: Vec<&str> = evening["items"][0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap())
        .collect();
    assert!(
        texts.contains(&"like what you play in the evening"),
        "{texts:?}"
    );
    // Without an hour, the time of the call (22:00) is the evening.
    assert_eq!(tracks(&ok(&srv, &id, ADMIN_KEY, "?limit=4").await), e);
    // Below `advanced`, the hour is not a signal.
    prefs(&srv, &id, json!({"personalization_level": "standard"})).await;
    assert_eq!(
        tracks(&ok(&srv, &id, ADMIN_KEY, "?limit=4&hour=8").await),
        tracks(&ok(&srv, &id, ADMIN_KEY, "?limit=4&hour=20").await)
    );
    for bad in ["?hour=24", "?hour=-1", "?platform=fridge"] {
        assert_eq!(
            crate::recommendations::list(&srv, &id, ADMIN_KEY, bad)
                .await
                .0,
            400,
            "{bad}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_only_opened_the_app_gets_the_non_personal_list() {
    let srv = server().await;
    let (id, token) = srv.user("opened@example.com", "premium").await;
    let all = vec![
        (roster::domain::consent::Purpose::Analytics, true),
        (roster::domain::consent::Purpose::Personalisation, true),
    ];
    crate::recommendations::consent(&srv, &id, all).await;
    prefs(
        &srv,
        &id,
        json!({"personalization_level": "advanced", "explanations_enabled": true}),
    )
    .await;
    let now = srv.manager.now().to_string();
    let opened = json!([{"kind": "app_opened", "at": now, "platform": "car"}]);
    assert_eq!(srv.post_activity(&id, &token, opened).await.0, 200);
    let body = ok(&srv, &id, &token, "?limit=6&platform=car").await;
    assert_eq!(body["model"]["signals"]["genres"], false, "{body}");
    // The same list as a user the server knows nothing of.
    let (other, other_token) = srv.user("nothing@example.com", "premium").await;
    prefs(&srv, &other, json!({"personalization_level": "off"})).await;
    assert_eq!(
        tracks(&ok(&srv, &other, &other_token, "?limit=6").await),
        tracks(&body)
    );
}
