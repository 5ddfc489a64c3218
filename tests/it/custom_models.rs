//! Users' own models through the server: a listener unlike the population (it plays
//! the least popular tracks of its genres) trains a model of its own on its listening
//! log, the model beats the global one on its held-out plays and its lists switch to
//! it; a Free user is refused; turning the preference off clears the log and models.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use roster::domain::consent::Purpose;
use roster::domain::time::Timestamp;
use roster::personalization::sim::{Habits, TasteSim};

use crate::recommendations::{consent, prefs, train};
use crate::support::{ADMIN_KEY, SYS, TestServer};

const CONFIG: &str = "[personalization]\nembedding_dim = 16\n";

/// The enterprise tier without the feature.
const NO_FEATURE: &str = "[tiers.enterprise]\nfeatures = [\"advanced_recommendations\", \
                          \"enhanced_analytics\", \"custom_algorithms\"]\n\
                          template = \"premium_user_profile.json\"\n";

/// The unit tests' world; its events are dated by the test server's clock.
const SIM: TasteSim = TasteSim {
    now: Timestamp::from_millis(0),
    ..TasteSim::OWN_MODELS
};

const DEEP_CUTS: Habits = Habits::DEEP_CUTS;

async fn consenting(srv: &TestServer, email: &str, tier: &str) -> (String, String) {
    let (id, token) = srv.user(email, tier).await;
    let all = vec![(Purpose::Analytics, true), (Purpose::Personalisation, true)];
    consent(srv, &id, all).await;
    (id, token)
}

async fn import(srv: &TestServer, id: &str, events: Vec<roster::domain::activity::ActivityEvent>) {
    let a = srv.manager.analytics();
    for chunk in events.chunks(1_000) {
        let out = a
            .import_history(&SYS, vec![(id.parse().unwrap(), chunk.to_vec())])
            .await
            .unwrap();
        assert!(out[0].is_ok(), "{out:?}");
    }
}

async fn login(srv: &TestServer, email: &str) -> String {
    let body = json!({"email": email, "password": crate::support::PW});
    let (s, v) = srv
        .call(Method::POST, "/auth/login", None, Some(body))
        .await;
    match s {
        200 => v["token"].as_str().unwrap().to_owned(),
        202 => srv.complete_with_email(email, &v).await,
        _ => panic!("login of {email}: {s} {v}"),
    }
}

async fn finished(srv: &TestServer, id: &str, token: &str, job: &Value) -> Value {
    let path = format!("/users/{id}/models/{}", job["job"]);
    for _ in 0..600 {
        let (s, v) = srv.call(Method::GET, &path, Some(token), None).await;
        assert_eq!(s, 200, "{v}");
        if v["state"] == "done" || v["state"] == "failed" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("training {job} did not end within a minute");
}

/// The `model` part of the user's list.
async fn list_model(srv: &TestServer, id: &str, token: &str) -> Value {
    let path = format!("/users/{id}/recommendations");
    let (s, list) = srv.call(Method::GET, &path, Some(token), None).await;
    assert_eq!(s, 200, "{list}");
    list["model"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_unlike_the_population_trains_a_model_that_serves_its_lists() {
    let srv = TestServer::start(CONFIG).await;
    let catalog = SIM.catalog();
    srv.manager
        .personalization()
        .put_tracks(&SYS, catalog.tracks.clone())
        .await
        .unwrap();
    let population: Vec<(String, String)> = {
        let mut v = Vec::new();
        for n in 0..30 {
            v.push(consenting(&srv, &format!("pop{n}@example.com"), "premium").await);
        }
        v
    };
    let (deep, _) = consenting(&srv, "deep@example.com", "enterprise").await;
    let (free, _) = consenting(&srv, "free@example.com", "free").await;
    // The histories happen after the accounts were made (and the sessions made then
    // have expired by now).
    srv.clock.advance(Duration::from_secs(3 * 86_400));
    let deep_token = login(&srv, "deep@example.com").await;
    let free_token = login(&srv, "free@example.com").await;
    let sim = TasteSim {
        now: srv.manager.now(),
        ..SIM
    };
    for (n, (id, _)) in population.iter().enumerate() {
        import(&srv, id, sim.listener(&catalog, n).events).await;
    }
    train(&srv).await;

    // Free: no such feature.
    let (s, v) = srv
        .call(
            Method::POST,
            &format!("/users/{free}/models"),
            Some(&free_token),
            None,
        )
        .await;
    assert_eq!(s, 403, "{v}");
    // With the preference off (the enterprise template turns it on): say so.
    prefs(&srv, &deep, json!({"custom_model_training": false})).await;
    let path = format!("/users/{deep}/models");
    let (s, v) = srv.call(Method::POST, &path, Some(&deep_token), None).await;
    assert_eq!(s, 409, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("custom_model_training"),
        "{v}"
    );
    prefs(
        &srv,
        &deep,
        json!({"custom_model_training": true, "personalization_level": "advanced",
               "bias_mitigation_enabled": false}),
    )
    .await;
    let long = TasteSim { events: 500, ..sim };
    import(
        &srv,
        &deep,
        long.listener_with(&catalog, 1_000, DEEP_CUTS).events,
    )
    .await;

    let (s, job) = srv.call(Method::POST, &path, Some(&deep_token), None).await;
    assert_eq!(s, 202, "{job}");
    assert!(
        matches!(job["state"].as_str(), Some("queued" | "running")),
        "{job}"
    );
    let done = finished(&srv, &deep, &deep_token, &job).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["version"], 1);
    let e = &done["evaluation"];
    assert!(e["cases"].as_u64().unwrap() >= 20, "{done}");
    assert_eq!(done["serving"], true, "{done}");
    assert!(
        e["hit_rate"].as_f64() >= e["global_hit_rate"].as_f64(),
        "{done}"
    );

    let (s, models) = srv.call(Method::GET, &path, Some(&deep_token), None).await;
    assert_eq!(s, 200, "{models}");
    assert_eq!(models["serving"], "custom", "{models}");
    assert_eq!(models["version"], 1);
    let (s, list) = srv
        .call(
            Method::GET,
            &format!("/users/{deep}/recommendations"),
            Some(&deep_token),
            None,
        )
        .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["model"]["served_by"], "custom", "{}", list["model"]);
    assert_eq!(list["model"]["custom_version"], 1);
    // Pinning an unknown version: 404; a known one that beat the global model: kept.
    let pin = format!("/users/{deep}/models/pin");
    let (s, _) = srv
        .call(
            Method::PUT,
            &pin,
            Some(&deep_token),
            Some(json!({"version": 9})),
        )
        .await;
    assert_eq!(s, 404);
    let (s, v) = srv
        .call(
            Method::PUT,
            &pin,
            Some(&deep_token),
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!((s, &v["pinned"]), (200, &json!(1)), "{v}");

    // The user's export holds the log and the models.
    let export = format!("/users/{deep}/export");
    let (s, doc) = srv.call(Method::GET, &export, Some(ADMIN_KEY), None).await;
    assert_eq!(s, 200, "{doc}");
    let log = doc["listening_log"].as_array().unwrap();
    assert!(log.len() > 500, "{} events", log.len());
    assert!(
        log.iter()
            .any(|l| l["kind"] == "track_played" && l["track_id"].is_string())
    );
    assert_eq!(
        doc["own_models"]["versions"][0]["version"], 1,
        "{}",
        doc["own_models"]
    );
    assert_eq!(doc["own_models"]["pinned"], 1);

    // Operators see it among every model.
    let (s, all) = srv
        .call(Method::GET, "/admin/models", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 200, "{all}");
    let own = &all["own"];
    assert_eq!(own["users"], 1, "{own}");
    assert_eq!(own["users_served_by_own"], 1, "{own}");
    assert_eq!(own["trainings"]["done"], 1, "{own}");
    let row = &own["page"][0];
    assert_eq!(row["user_id"], deep.as_str(), "{own}");
    assert_eq!((&row["in_force"], &row["pinned"]), (&json!(1), &json!(1)));
    assert_eq!(row["hit_rate"], e["hit_rate"], "{own}");
    assert!(all["global"]["recommender"]["version"].is_u64(), "{all}");
    assert!(all["federated"]["epsilon_budget"].is_f64(), "{all}");
    let (_, after) = srv
        .call(
            Method::GET,
            &format!("/admin/models?after={deep}&limit=5"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(after["own"]["page"], json!([]), "{after}");
    assert_eq!(after["own"]["users"], 1, "the figures are over everyone");
    let (s, _) = srv
        .call(Method::GET, "/admin/models?limit=0", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 400);

    // The feature taken from the tier in config: the model no longer serves, and is
    // not lost — with the feature back it serves again.
    let restart = |srv: TestServer, extra: String| async move {
        let srv = TestServer::start_in(srv.stop().await, &extra).await;
        srv.clock.advance(Duration::from_secs(3 * 86_400));
        let token = login(&srv, "deep@example.com").await;
        (srv, token)
    };
    let (srv, deep_token) = restart(srv, format!("{CONFIG}{NO_FEATURE}")).await;
    assert_eq!(
        list_model(&srv, &deep, &deep_token).await["served_by"],
        "global"
    );
    let (srv, deep_token) = restart(srv, CONFIG.to_owned()).await;
    let model = list_model(&srv, &deep, &deep_token).await;
    assert_eq!(model["served_by"], "custom", "{model}");
    assert_eq!(model["custom_version"], 1, "{model}");

    // Turning it off clears the log and the models: the lists are the global model's.
    prefs(&srv, &deep, json!({"custom_model_training": false})).await;
    let (_, models) = srv.call(Method::GET, &path, Some(&deep_token), None).await;
    assert_eq!(models["serving"], "global", "{models}");
    assert_eq!(models["versions"], json!([]), "{models}");
    let (_, list) = srv
        .call(
            Method::GET,
            &format!("/users/{deep}/recommendations"),
            Some(&deep_token),
            None,
        )
        .await;
    assert_eq!(list["model"]["served_by"], "global");
    let (_, doc) = srv.call(Method::GET, &export, Some(ADMIN_KEY), None).await;
    assert_eq!(doc["listening_log"], json!([]), "cleared");
    assert_eq!(doc["own_models"]["versions"], json!([]));
    // And on again, the log starts empty: too little to train on.
    prefs(&srv, &deep, json!({"custom_model_training": true})).await;
    let (s, job) = srv.call(Method::POST, &path, Some(&deep_token), None).await;
    assert_eq!(s, 202, "{job}");
    let failed = finished(&srv, &deep, &deep_token, &job).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("at least"),
        "{failed}"
    );
    // Without the consent to personalisation there is nothing to train on: 403.
    consent(&srv, &deep, vec![(Purpose::Personalisation, false)]).await;
    let (s, v) = srv.call(Method::POST, &path, Some(&deep_token), None).await;
    assert_eq!(s, 403, "{v}");
    assert!(
        v["type"].as_str().unwrap().ends_with("consent-required"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listening_log_of_a_user_who_never_trains_stays_near_its_cap() {
    let srv = TestServer::start(&format!(
        "{CONFIG}[personalization.custom]\nlog_events = 100\n"
    ))
    .await;
    let (id, _) = consenting(&srv, "log@example.com", "enterprise").await;
    srv.clock.advance(Duration::from_secs(86_400));
    let start = srv.manager.now().as_millis() - 3_600_000;
    // 60 imports of 10 plays each: each is written when the import returns, and one
    // write in sixteen checks the log.
    for n in 0..60i64 {
        let events = (0..10i64)
            .map(|k| roster::domain::activity::ActivityEvent::TrackPlayed {
                track_id: format!("t{n}-{k}"),
                at: Timestamp::from_millis(start + (n * 10 + k) * 1_000),
                duration_ms: 180_000,
            })
            .collect();
        import(&srv, &id, events).await;
    }
    let (s, doc) = srv
        .call(
            Method::GET,
            &format!("/users/{id}/export"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{doc}");
    let log = doc["listening_log"].as_array().unwrap();
    // Compacted to the newest 100 at a check that finds it a quarter over; checks come
    // every sixteenth write, so at most fifteen imports since.
    assert!(
        (100..=100 + 15 * 10).contains(&log.len()),
        "{} events of 600",
        log.len()
    );
    assert_eq!(
        log.last().unwrap()["track_id"],
        "t59-9",
        "the newest are kept"
    );
    let ids: Vec<&str> = log
        .iter()
        .map(|l| l["track_id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&"t0-0"), "the oldest are gone");
}
