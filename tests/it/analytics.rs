//! The analytics engine through the server: activity in over HTTP and the socket, into
//! the same daily buckets, under the user's consent, with bad input refused whole.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, TestServer};
use crate::ws::{next_json, send, subscribe};

async fn consent(srv: &TestServer, id: &str, granted: bool) {
    crate::support::set_analytics(&srv.manager, id, granted).await;
}

pub(crate) async fn insights(srv: &TestServer, id: &str) -> Value {
    let (s, body) = srv
        .call(
            Method::GET,
            &format!("/users/{id}/insights"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    body
}

async fn post(srv: &TestServer, id: &str, token: &str, events: Value) -> (u16, Value) {
    srv.call(
        Method::POST,
        &format!("/users/{id}/activity"),
        Some(token),
        Some(json!({ "events": events })),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_socket_events_land_in_the_same_day() {
    let srv = TestServer::start("").await;
    let (id, token) = srv.user("both@example.com", "premium").await;
    consent(&srv, &id, true).await;
    let now = srv.manager.now().to_string();
    let (s, body) = post(
        &srv,
        &id,
        &token,
        json!([
            {"kind": "track_played", "track_id": "t1", "at": now, "duration_ms": 120000},
            {"kind": "app_opened", "at": now, "platform": "web"},
            {"kind": "feature_used", "at": now, "feature": "ai_composer"},
            {"kind": "playlist_created", "at": now},
            {"kind": "recommendation_shown", "at": now, "recommendation_id": "r1", "track_id": "t7"},
            {"kind": "recommendation_clicked", "at": now, "recommendation_id": "r1"}
        ]),
    )
    .await;
    assert_eq!((s, body["accepted"].as_u64()), (200, Some(6)), "{body}");
    let (mut ws, _) = subscribe(&srv, &token).await;
    send(
        &mut ws,
        json!({"type": "activity", "id": "w", "events": [
            {"kind": "track_played", "track_id": "t2", "at": now, "duration_ms": 60000},
            {"kind": "searched", "at": now}
        ]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["type"], "activity_ack");

    let i = insights(&srv, &id).await;
    let days = i["recent_days"].as_array().unwrap();
    assert_eq!(days.len(), 1, "{days:?}");
    let d = &days[0];
    assert_eq!(d["plays"], 2);
    assert_eq!(d["listening_minutes"], 3);
    assert_eq!(d["distinct_tracks"], 3, "t1, t2 and the recommended t7");
    for (field, n) in [
        ("app_opens", 1),
        ("features_used", 1),
        ("playlists", 1),
        ("searches", 1),
        ("recommendations_shown", 1),
        ("recommendations_clicked", 1),
    ] {
        assert_eq!(d[field], n, "{field}: {d}");
    }
    assert_eq!(i["feature_usage"][0]["feature"], "ai_composer");
    assert_eq!(i["feature_usage"][0]["count"], 1);
    assert_eq!(i["activity"]["tracks_played"], 2);
    let hour = srv.manager.now().as_millis().rem_euclid(86_400_000) / 3_600_000;
    assert_eq!(i["listening_profile"]["hours"][hour as usize], 2);
    assert_eq!(i["listening_profile"]["peak_hour"], hour);
    let e = &i["engagement"];
    assert_eq!(e["parts"]["recency"]["measure"], 0.0);
    assert_eq!(e["parts"]["recency"]["weight"], 30.0);
    assert_eq!(e["parts"]["frequency"]["measure"], 1.0);
    assert!(e["score"].as_u64().unwrap() > 30, "{e}");
    // The export carries the history too.
    let (s, export) = srv
        .call(
            Method::GET,
            &format!("/users/{id}/export"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(export["activity_history"]["days"][0]["plays"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_without_consent_or_with_bad_events_counts_nothing() {
    let srv = TestServer::start("").await;
    let (id, token) = srv.user("careful@example.com", "free").await;
    let now = srv.manager.now();
    let play = json!({"kind": "track_played", "track_id": "t1", "at": now.to_string(), "duration_ms": 1000});
    // No consent to analytics yet.
    let (s, body) = post(&srv, &id, &token, json!([play])).await;
    assert_eq!(s, 403, "{body}");
    assert_eq!(body["type"], "https://roster.dev/problems/consent-required");
    consent(&srv, &id, true).await;
    let future = now.plus(std::time::Duration::from_secs(3600)).to_string();
    let old = roster::domain::time::Timestamp::from_millis(now.as_millis() - 40 * 86_400_000);
    for (events, field) in [
        (
            json!([play, {"kind": "searched", "at": future}]),
            Some("events[1].at"),
        ),
        (
            json!([{"kind": "searched", "at": old.to_string()}]),
            Some("events[0].at"),
        ),
        // ai_composer is not a Free feature.
        (
            json!([{"kind": "feature_used", "at": now.to_string(), "feature": "ai_composer"}]),
            Some("events[0].feature"),
        ),
        (json!([]), Some("events")),
        (
            json!([{"kind": "hummed", "at": now.to_string()}]),
            Some("events[0].kind"),
        ),
    ] {
        let (s, body) = post(&srv, &id, &token, events.clone()).await;
        assert_eq!(s, 400, "{events}: {body}");
        assert_eq!(body["field"].as_str(), field, "{events}: {body}");
    }
    let too_many: Vec<Value> = (0..101).map(|_| play.clone()).collect();
    let (s, _) = post(&srv, &id, &token, json!(too_many)).await;
    assert_eq!(s, 400);
    // Another user's id, and the operator (who imports instead).
    let (other, _) = srv.user("other@example.com", "free").await;
    assert_eq!(post(&srv, &other, &token, json!([play])).await.0, 403);
    assert_eq!(post(&srv, &id, ADMIN_KEY, json!([play])).await.0, 403);
    let i = insights(&srv, &id).await;
    assert_eq!(i["recent_days"], json!([]), "nothing was counted");
    assert_eq!(i["activity"]["tracks_played"], 0);
    // Consent withdrawn: refused again at once.
    consent(&srv, &id, false).await;
    assert_eq!(post(&srv, &id, &token, json!([play])).await.0, 403);
    consent(&srv, &id, true).await;
    assert_eq!(post(&srv, &id, &token, json!([play])).await.0, 200);
    assert_eq!(insights(&srv, &id).await["activity"]["tracks_played"], 1);
}

async fn login(srv: &TestServer, email: &str) -> String {
    let (s, body) = srv
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": email, "password": crate::support::PW})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn admin_get(srv: &TestServer, path: &str) -> (u16, Value) {
    srv.call(Method::GET, path, Some(ADMIN_KEY), None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cohorts_and_the_overview_see_live_activity_and_follow_consent() {
    let srv = TestServer::start("").await;
    let week = std::time::Duration::from_secs(7 * 86_400);
    let mut ids = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let (id, _) = srv.user(&format!("{name}@example.com"), "free").await;
        if name != "d" {
            consent(&srv, &id, true).await;
        }
        ids.push(id);
    }
    let search =
        |srv: &TestServer| json!([{"kind": "searched", "at": srv.manager.now().to_string()}]);
    for (i, name) in ["a", "b"].iter().enumerate() {
        let token = login(&srv, &format!("{name}@example.com")).await;
        assert_eq!(post(&srv, &ids[i], &token, search(&srv)).await.0, 200);
    }
    srv.clock.advance(week);
    let token = login(&srv, "a@example.com").await;
    assert_eq!(post(&srv, &ids[0], &token, search(&srv)).await.0, 200);
    srv.clock.advance(week);

    // Nothing was snapshotted yet: the report asks the live actors first.
    let (s, t) = admin_get(&srv, "/admin/analytics/cohorts?unit=week&periods=3").await;
    assert_eq!(s, 200, "{t}");
    let rows = t["cohorts"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["size"], 3, "d did not consent: {t}");
    assert_eq!(rows[0]["retention"], json!([1.0, 1.0 / 3.0, null]));
    assert_eq!(rows[0]["active"], json!([3, 1, 0]));
    assert_eq!(rows[1]["size"], 0);
    let (s, o) = admin_get(&srv, "/admin/analytics/overview").await;
    assert_eq!(s, 200, "{o}");
    assert_eq!(
        (o["users"].as_u64(), o["consenting"].as_u64()),
        (Some(4), Some(3))
    );
    assert_eq!(o["users_by_tier"]["free"], 4);
    assert_eq!(o["users_by_tier"]["vip"], 0);
    assert_eq!(
        (o["dau"].as_u64(), o["wau"].as_u64(), o["mau"].as_u64()),
        (Some(0), Some(0), Some(2))
    );
    assert_eq!(o["events"]["last_30_days"], 3);

    // Withdrawing the consent takes b out of the next report at once.
    consent(&srv, &ids[1], false).await;
    let (_, t) = admin_get(&srv, "/admin/analytics/cohorts?periods=3&tier=free").await;
    assert_eq!(t["cohorts"][0]["size"], 2);
    assert_eq!(t["cohorts"][0]["retention"][1], 0.5);
    let (_, t) = admin_get(&srv, "/admin/analytics/cohorts?periods=3&tier=vip").await;
    assert_eq!(t["cohorts"][0]["size"], 0);

    // A minor without a parent's consent is left out (c turns out to be ten years old),
    // and an erased user is gone from every figure.
    let today = roster::domain::consent::Date::of(srv.manager.now());
    let ten = format!("{:04}-{:02}-01", today.year - 10, today.month);
    let view = srv
        .manager
        .privacy()
        .update_consents(
            &crate::support::SYS,
            ids[2].parse().unwrap(),
            vec![],
            Some(roster::domain::consent::Date::parse(&ten).unwrap()),
        )
        .await
        .unwrap();
    assert!(view.minor);
    let (_, t) = admin_get(&srv, "/admin/analytics/cohorts?periods=3").await;
    assert_eq!(t["cohorts"][0]["size"], 1, "{t}");
    assert_eq!(t["cohorts"][0]["active"], json!([1, 1, 0]), "a alone");
    srv.manager
        .delete_user(ids[0].parse().unwrap())
        .await
        .unwrap();
    let (_, t) = admin_get(&srv, "/admin/analytics/cohorts?periods=3").await;
    assert_eq!(t["cohorts"][0]["size"], 0, "{t}");
    let (_, o) = admin_get(&srv, "/admin/analytics/overview").await;
    assert_eq!(
        (o["users"].as_u64(), o["consenting"].as_u64()),
        (Some(3), Some(0)),
        "{o}"
    );

    // Bad queries, and users, are refused.
    for (q, status) in [
        ("?periods=0", 400),
        ("?periods=105", 400),
        ("?unit=month&periods=25", 400),
        ("?unit=year", 400),
        ("?tier=gold", 400),
        ("?colour=red", 400),
    ] {
        let (s, body) = admin_get(&srv, &format!("/admin/analytics/cohorts{q}")).await;
        assert_eq!(s, status, "{q}: {body}");
    }
    let token = login(&srv, "c@example.com").await;
    let (s, _) = srv
        .call(Method::GET, "/admin/analytics/overview", Some(&token), None)
        .await;
    assert_eq!(s, 403);
}

/// The JSON lines of a streamed answer.
async fn lines(srv: &TestServer, method: Method, path: &str, bearer: &str) -> (u16, Vec<Value>) {
    let resp = srv
        .http
        .request(method, format!("{}{path}", srv.base))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let values = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or(Value::String(l.into())))
        .collect();
    (status, values)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_on_too_little_history_says_so_and_nothing_is_used() {
    let srv = TestServer::start("").await;
    let (id, token) = srv.user("early@example.com", "free").await;
    consent(&srv, &id, true).await;
    let (s, _) = lines(&srv, Method::POST, "/admin/analytics/train", &token).await;
    assert_eq!(s, 403, "users do not train models");
    let (s, out) = lines(&srv, Method::POST, "/admin/analytics/train", ADMIN_KEY).await;
    assert_eq!(s, 200);
    assert_eq!(out[0]["phase"], "scanned", "{out:?}");
    assert_eq!(out[0]["users"], 1);
    let last = out.last().unwrap();
    assert_eq!(
        last["error"]["type"], "https://roster.dev/problems/conflict",
        "{out:?}"
    );
    assert!(
        last["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("too little history")
    );
    let (s, report) = admin_get(&srv, "/admin/analytics/churn").await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["model"], Value::Null);
    assert_eq!(report["versions"], json!([]));
    assert_eq!(insights(&srv, &id).await["churn"], Value::Null);
    for q in [
        "?limit=0",
        "?limit=501",
        "?offset=-1",
        "?page=2",
        "?offset=9999&limit=2",
    ] {
        let (s, _) = admin_get(&srv, &format!("/admin/analytics/churn{q}")).await;
        assert_eq!(s, 400, "{q}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_figures_count_what_happens_and_reach_the_operators_socket() {
    let srv = TestServer::start("").await;
    let (id, token) = srv.user("live@example.com", "premium").await;
    consent(&srv, &id, true).await;
    let (s, first) = admin_get(&srv, "/admin/analytics/live").await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["active_users"]["premium"], 1, "{first}");
    assert_eq!(first["active_users"]["free"], 0);
    assert_eq!(first["signups_today"], 1);
    assert!(first["live_actors"].as_u64().unwrap() >= 1);
    // Two seconds later, ten events, a refused login and one let through.
    srv.clock.advance(std::time::Duration::from_secs(2));
    let now = srv.manager.now().to_string();
    let events: Vec<Value> = (0..10)
        .map(|_| json!({"kind": "searched", "at": now}))
        .collect();
    assert_eq!(post(&srv, &id, &token, json!(events)).await.0, 200);
    let (s, _) = srv
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "live@example.com", "password": "wrong password entirely"})),
        )
        .await;
    assert_eq!(s, 401);
    // And a login the risk engine lets through.
    let (s, ok) = srv
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "live@example.com", "password": crate::support::PW})),
        )
        .await;
    assert_eq!(s, 200, "{ok}");
    let (_, next) = admin_get(&srv, "/admin/analytics/live").await;
    let risk = &next["risk_decisions_per_sec"];
    assert_eq!(
        risk,
        &json!({"allow": 0.5, "require_mfa": 0.0, "deny": 0.0}),
        "{next}"
    );
    assert_eq!(next["events_per_sec"], 5.0, "{next}");
    assert_eq!(next["refused_logins_per_sec"], 0.5, "{next}");
    // The two logins' checks were the hashing pool's jobs in those two seconds.
    let pool = &next["hash_pool"];
    assert_eq!(pool["jobs_per_sec"], 1.0, "{next}");
    assert!(pool["workers"].as_u64().unwrap() >= 1, "{next}");
    let busy = pool["busy"].as_f64().unwrap();
    assert!(busy > 0.0 && busy <= 1.0, "{next}");
    assert_eq!(pool["queued"], 0, "{next}");
    // Six minutes later nobody was seen.
    srv.clock.advance(std::time::Duration::from_secs(360));
    let (_, later) = admin_get(&srv, "/admin/analytics/live").await;
    assert_eq!(later["active_total"], 0, "{later}");

    let mut ws = crate::ws::open(&srv, "/admin/live", Some(ADMIN_KEY)).await;
    let frame = next_json(&mut ws).await;
    assert_eq!(frame["type"], "live", "{frame}");
    assert_eq!(frame["figures"]["active_users"]["premium"], 0);
    let (s, _) = srv
        .call(Method::GET, "/admin/analytics/live", Some(&token), None)
        .await;
    assert_eq!(s, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_distribution_and_migrations_by_week() {
    let srv = TestServer::start("").await;
    let mut ids = Vec::new();
    for name in ["t1", "t2", "t3"] {
        ids.push(srv.user(&format!("{name}@example.com"), "free").await.0);
    }
    let (s, body) = srv
        .call(
            Method::POST,
            &format!("/users/{}/upgrade", ids[0]),
            Some(ADMIN_KEY),
            Some(json!({"new_tier": "premium"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, r) = admin_get(&srv, "/admin/analytics/tiers?weeks=2").await;
    assert_eq!(s, 200, "{r}");
    let weeks = r["weeks"].as_array().unwrap();
    assert_eq!(weeks.len(), 2);
    let now = &weeks[1];
    assert_eq!(now["users_by_tier"]["free"], 2, "{r}");
    assert_eq!(now["users_by_tier"]["premium"], 1);
    assert_eq!(now["unknown"], 0);
    assert_eq!(
        now["migrations"],
        json!([{"from": "free", "to": "premium", "count": 1}])
    );
    // Nobody had signed up by the end of the week before.
    assert_eq!(weeks[0]["users_by_tier"]["free"], 0);
    // The audit record says where the user came from.
    let (_, log) = admin_get(&srv, "/admin/audit").await;
    let change = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"]["type"] == "tier_changed")
        .unwrap();
    assert_eq!(change["action"]["from"], "free", "{change}");
    for q in ["?weeks=0", "?weeks=105", "?unit=day"] {
        assert_eq!(
            admin_get(&srv, &format!("/admin/analytics/tiers{q}"))
                .await
                .0,
            400,
            "{q}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compliance_report_counts_second_factors_by_tier_and_consents_by_purpose() {
    let srv = TestServer::start("").await;
    srv.user("plain@example.com", "free").await;
    let (guarded, token) = srv.user("guarded@example.com", "premium").await;
    let (asked, _) = srv.user("asked@example.com", "vip").await;
    // The Premium user sets up an authenticator and asks for it at every login.
    let (s, t) = srv
        .call(
            Method::POST,
            &format!("/users/{guarded}/mfa/totp"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let code = crate::mfa::code(&srv, t["secret"].as_str().unwrap());
    let (s, t) = srv
        .call(
            Method::POST,
            &format!("/users/{guarded}/mfa/totp/confirm"),
            Some(&token),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let always = json!({"security_settings": {"require_mfa": true}});
    let path = format!("/users/{guarded}");
    let (s, p) = srv
        .call(Method::PUT, &path, Some(ADMIN_KEY), Some(always))
        .await;
    assert_eq!(s, 200, "{p}");
    // The VIP user consents to analytics; nobody else answered.
    consent(&srv, &asked, true).await;

    let (s, r) = srv
        .call(
            Method::GET,
            "/admin/analytics/compliance",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["users"], 3, "{r}");
    let premium = &r["mfa_by_tier"]["premium"];
    assert_eq!(premium["users"], 1, "{r}");
    assert_eq!(premium["enrolled"], 1, "{r}");
    assert_eq!(premium["required"], 1, "{r}");
    assert_eq!(premium["authenticator"], 1, "{r}");
    assert_eq!(premium["passkey"], 0, "{r}");
    assert_eq!(
        premium["recovery_codes"], 1,
        "enrolling gave recovery codes: {r}"
    );
    for tier in ["free", "vip"] {
        assert_eq!(r["mfa_by_tier"][tier]["users"], 1, "{r}");
        assert_eq!(r["mfa_by_tier"][tier]["enrolled"], 0, "{r}");
    }
    assert_eq!(r["mfa_by_tier"]["enterprise"]["users"], 0, "{r}");
    let share = r["mfa_enrolled_share"].as_f64().unwrap();
    assert!((share - 1.0 / 3.0).abs() < 1e-9, "{r}");
    let analytics = &r["consents"]["analytics"];
    assert_eq!(analytics["granted"], 1, "{r}");
    assert_eq!(analytics["in_force"], 1, "{r}");
    assert_eq!(analytics["not_answered"], 2, "{r}");
    // Withdrawn, the consent counts as such, and no longer in force.
    consent(&srv, &asked, false).await;
    let (_, r) = srv
        .call(
            Method::GET,
            "/admin/analytics/compliance",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    let analytics = &r["consents"]["analytics"];
    assert_eq!(analytics["withdrawn"], 1, "{r}");
    assert_eq!(analytics["in_force"], 0, "{r}");
    assert_eq!(r["consents"]["marketing"]["not_answered"], 3, "{r}");
}
