//! Recommendation lists through the server: each `personalization_level` uses exactly
//! its signals, the tier caps them, consent withdrawn makes lists non-personal at once,
//! `explanations_enabled` and `mood_detection_enabled` are honoured, and bad input is a
//! clear 400 or 403.

use reqwest::Method;
use serde_json::{Value, json};

use roster::domain::consent::Purpose;
use roster::domain::profile::ProfilePatch;

use crate::support::{ADMIN_KEY, SYS, TestServer};

/// Four tracks each of three genres, two artists a genre, with features far apart.
fn catalog() -> String {
    let mut tracks = Vec::new();
    for (genre, energy, valence, dance, acoustic) in [
        ("jazz", 0.2, 0.8, 0.3, 0.8),
        ("metal", 0.95, 0.2, 0.4, 0.05),
        ("pop", 0.75, 0.85, 0.9, 0.2),
    ] {
        for i in 0..4 {
            tracks.push(json!({
                "id": format!("{genre}-{i}"), "title": format!("{genre} {i}"),
                "artists": [format!("{genre} band {}", i % 2)], "genres": [genre],
                "audio": {"energy": energy + 0.01 * f64::from(i), "valence": valence,
                          "danceability": dance, "acousticness": acoustic, "tempo": 100.0 + f64::from(i)}
            }));
        }
    }
    Value::from(tracks).to_string()
}

pub(crate) async fn server() -> TestServer {
    server_with("").await
}

/// [`server`] with `extra` TOML.
pub(crate) async fn server_with(extra: &str) -> TestServer {
    let srv = TestServer::start(extra).await;
    let (s, body) = srv
        .post_raw(
            "/admin/catalog/tracks",
            ADMIN_KEY,
            "application/json",
            catalog(),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    srv
}

pub(crate) async fn consent(srv: &TestServer, id: &str, changes: Vec<(Purpose, bool)>) {
    srv.manager
        .privacy()
        .update_consents(&SYS, id.parse().unwrap(), changes, None)
        .await
        .unwrap();
}

pub(crate) async fn prefs(srv: &TestServer, id: &str, ai: Value) {
    let patch = ProfilePatch::from_json(json!({ "ai_preferences": ai })).unwrap();
    srv.manager
        .update_user_profile(id.parse().unwrap(), patch)
        .await
        .unwrap();
}

/// A user who consented, at `level`, who played two jazz tracks and liked one.
pub(crate) async fn listener(
    srv: &TestServer,
    email: &str,
    tier: &str,
    level: &str,
) -> (String, String) {
    let (id, token) = srv.user(email, tier).await;
    let all = vec![(Purpose::Analytics, true), (Purpose::Personalisation, true)];
    consent(srv, &id, all).await;
    let ai = json!({"personalization_level": level, "bias_mitigation_enabled": false,
                    "explanations_enabled": true, "mood_detection_enabled": false});
    prefs(srv, &id, ai).await;
    let now = srv.manager.now().to_string();
    let play =
        |t: &str| json!({"kind": "track_played", "track_id": t, "at": now, "duration_ms": 200000});
    let events = json!([play("jazz-0"), play("jazz-1"), {"kind": "track_liked", "track_id": "jazz-1", "at": now}]);
    let (s, body) = srv.post_activity(&id, &token, events).await;
    assert_eq!(s, 200, "{body}");
    (id, token)
}

pub(crate) async fn list(srv: &TestServer, id: &str, token: &str, query: &str) -> (u16, Value) {
    let path = format!("/users/{id}/recommendations{query}");
    srv.call(Method::GET, &path, Some(token), None).await
}

pub(crate) async fn ok(srv: &TestServer, id: &str, token: &str, query: &str) -> Value {
    let (s, body) = list(srv, id, token, query).await;
    assert_eq!(s, 200, "{body}");
    body
}

pub(crate) fn tracks(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["track_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_level_uses_exactly_its_signals() {
    let srv = server().await;
    let (id, token) = listener(&srv, "adv@example.com", "premium", "advanced").await;
    let body = ok(&srv, &id, &token, "?limit=5").await;
    let got = tracks(&body);
    assert_eq!(got.len(), 5);
    assert!(
        got[0].starts_with("jazz-"),
        "the taste's genre first: {got:?}"
    );
    assert!(
        !got.contains(&"jazz-0".to_owned()) && !got.contains(&"jazz-1".to_owned()),
        "heard tracks are left out: {got:?}"
    );
    let card = &body["model"];
    assert_eq!(card["level"], "advanced");
    assert_eq!(card["signals"]["history"], true);
    assert_eq!(card["bias_mitigation"], false);
    assert_eq!(card["catalog_tracks"], 12);
    let first = &body["items"][0];
    assert!(
        first["recommendation_id"]
            .as_str()
            .unwrap()
            .starts_with("r1.a0.")
    );
    let signals: Vec<&str> = first["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["signal"].as_str().unwrap())
        .collect();
    assert!(signals.contains(&"genre"), "{first}");
    assert!(!signals.contains(&"mood"), "mood detection is off");
    // With include_played the played tracks may come back.
    let again = tracks(&ok(&srv, &id, &token, "?limit=12&include_played=true").await);
    assert!(again.contains(&"jazz-1".to_owned()), "{again:?}");

    // `advanced` reacts to the context; `standard` does not.
    let workout = tracks(&ok(&srv, &id, &token, "?limit=12&context=workout").await);
    let relax = tracks(&ok(&srv, &id, &token, "?limit=12&context=relax").await);
    assert_ne!(workout, relax);
    let ai = json!({"personalization_level": "standard"});
    prefs(&srv, &id, ai).await;
    let standard = ok(&srv, &id, &token, "?limit=12&context=workout").await;
    assert_eq!(standard["model"]["signals"]["taste_and_context"], false);
    assert_eq!(
        tracks(&standard),
        tracks(&ok(&srv, &id, &token, "?limit=12&context=relax").await)
    );
    // `basic`: the genres, not the heard tracks' artists.
    prefs(&srv, &id, json!({"personalization_level": "basic"})).await;
    let basic = ok(&srv, &id, &token, "?limit=5").await;
    assert_eq!(basic["model"]["signals"]["history"], false);
    assert!(tracks(&basic)[0].starts_with("jazz-"));

    // `off`: the same list as a user of the tier with nothing known (and the same
    // mitigation setting: the template's default is on).
    let (stranger, stranger_token) = srv.user("new@example.com", "premium").await;
    prefs(&srv, &stranger, json!({"bias_mitigation_enabled": false})).await;
    let anonymous = tracks(&ok(&srv, &stranger, &stranger_token, "?limit=12").await);
    prefs(&srv, &id, json!({"personalization_level": "off"})).await;
    assert_eq!(tracks(&ok(&srv, &id, &token, "?limit=12").await), anonymous);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consents_preferences_and_tiers_are_honoured() {
    let srv = server().await;
    let (id, token) = listener(&srv, "pref@example.com", "premium", "advanced").await;
    let (stranger, stranger_token) = srv.user("other@example.com", "premium").await;
    // Compared below with the listener once it turned mitigation on.
    prefs(&srv, &stranger, json!({"bias_mitigation_enabled": true})).await;
    let anonymous = tracks(&ok(&srv, &stranger, &stranger_token, "?limit=12").await);

    // Without explanations, no reasons.
    prefs(&srv, &id, json!({"explanations_enabled": false})).await;
    let body = ok(&srv, &id, &token, "").await;
    assert!(
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["reasons"] == json!([]))
    );
    // With mood detection, a calm session says so (a third calm play).
    prefs(
        &srv,
        &id,
        json!({"explanations_enabled": true, "mood_detection_enabled": true}),
    )
    .await;
    play(&srv, &id, &token, &["jazz-2"]).await;
    let body = ok(&srv, &id, &token, "").await;
    assert_eq!(body["model"]["mood"]["mood"], "calm", "{}", body["model"]);
    // Mitigation is reported in the card and in the ids.
    prefs(&srv, &id, json!({"bias_mitigation_enabled": true})).await;
    let body = ok(&srv, &id, &token, "").await;
    assert_eq!(body["model"]["bias_mitigation"], true);
    assert!(
        body["items"][0]["recommendation_id"]
            .as_str()
            .unwrap()
            .starts_with("r1.a1.")
    );

    // Consent withdrawn: non-personal at once.
    consent(&srv, &id, vec![(Purpose::Personalisation, false)]).await;
    let body = ok(&srv, &id, &token, "?limit=12").await;
    assert_eq!(body["model"]["level"], "off");
    assert_eq!(tracks(&body), anonymous);

    // The free tier gets `basic` at most, and 20 items.
    let (free, free_token) = listener(&srv, "free@example.com", "free", "advanced").await;
    let body = ok(&srv, &free, &free_token, "").await;
    assert_eq!(
        (&body["model"]["level"], &body["model"]["tier_level"]),
        (&json!("basic"), &json!("basic"))
    );
    let (s, problem) = list(&srv, &free, &free_token, "?limit=21").await;
    assert_eq!(s, 400, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("1 to 20"),
        "{problem}"
    );

    // Bad input: each a clear 4xx.
    for query in [
        "?limit=0",
        "?limit=10000",
        "?context=sleep",
        "?limit=ten",
        "?colour=red",
    ] {
        let (s, problem) = list(&srv, &id, &token, query).await;
        assert_eq!(s, 400, "{query}: {problem}");
    }
    let (s, _) = list(&srv, &id, &free_token, "").await;
    assert_eq!(s, 403, "another user's list");
    let (s, _) = srv
        .call(
            Method::GET,
            &format!("/users/{id}/recommendations"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "an operator may ask");
}

/// Trains over HTTP; the streamed lines.
pub(crate) async fn train(srv: &TestServer) -> Vec<Value> {
    let resp = srv
        .http
        .post(format!("{}/admin/recommendations/train", srv.base))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub(crate) async fn play(srv: &TestServer, id: &str, token: &str, tracks: &[&str]) {
    let now = srv.manager.now().to_string();
    let events: Vec<Value> = tracks
        .iter()
        .map(|t| json!({"kind": "track_played", "track_id": t, "at": now, "duration_ms": 200000}))
        .collect();
    let (s, body) = srv.post_activity(id, token, Value::from(events)).await;
    assert_eq!(s, 200, "{body}");
}

/// The tracks `body`'s reasons say it is because of.
fn because(body: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for item in body["items"].as_array().unwrap() {
        for r in item["reasons"].as_array().unwrap() {
            if let Some(b) = r["because_of"].as_str() {
                out.push((item["track_id"].as_str().unwrap().to_owned(), b.to_owned()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trained_model_explains_by_played_tracks_and_forgets_those_who_leave() {
    let srv = server().await;
    // Two users heard the jazz tracks and a pop track with a metal one; a third only
    // the jazz tracks and the pop track.
    let (a, a_token) = listener(&srv, "a@example.com", "premium", "standard").await;
    play(&srv, &a, &a_token, &["pop-0", "metal-3"]).await;
    let (b, b_token) = listener(&srv, "b@example.com", "premium", "standard").await;
    play(&srv, &b, &b_token, &["pop-0", "metal-3"]).await;
    let (c, c_token) = listener(&srv, "c@example.com", "premium", "standard").await;
    play(&srv, &c, &c_token, &["pop-0"]).await;

    let lines = train(&srv).await;
    let model = &lines.last().unwrap()["model"];
    assert_eq!(model["users"], 3, "{lines:?}");
    assert_eq!(model["version"], 1);
    let body = ok(&srv, &c, &c_token, "?limit=12").await;
    assert_eq!(body["model"]["model_version"], 1);
    let reasons = because(&body);
    assert!(
        reasons.iter().any(|(t, _)| t == "metal-3"),
        "metal-3 because of a track they share: {reasons:?}"
    );
    let played = ["jazz-0", "jazz-1", "pop-0"];
    for (_, from) in &reasons {
        assert!(
            played.contains(&from.as_str()),
            "{from} was not played by c"
        );
    }

    // One erased, one withdrawn: the next model learns from c alone, and the
    // co-listening of pop-0 and metal-3 is gone with them.
    srv.manager
        .accounts()
        .delete(&SYS, a.parse().unwrap())
        .await
        .unwrap();
    consent(&srv, &b, vec![(Purpose::Personalisation, false)]).await;
    let model = train(&srv).await.pop().unwrap();
    assert_eq!(model["model"]["users"], 1, "{model}");
    assert_eq!(model["model"]["version"], 2);
    let body = ok(&srv, &c, &c_token, "?limit=12").await;
    assert!(
        !because(&body).iter().any(|(t, _)| t == "metal-3"),
        "{:?}",
        because(&body)
    );
    // A user who turns personalization off is not trained on (its taste stays, for when
    // it turns it back on).
    prefs(&srv, &c, json!({"personalization_level": "off"})).await;
    let model = train(&srv).await.pop().unwrap();
    assert_eq!(model["model"]["users"], 0, "{model}");
    prefs(&srv, &c, json!({"personalization_level": "standard"})).await;
    let model = train(&srv).await.pop().unwrap();
    assert_eq!(model["model"]["users"], 1, "{model}");
    assert_eq!(model["model"]["version"], 4);

    // The model survives a restart.
    let dir = srv.stop().await;
    let m = crate::support::open(dir.path());
    let query = roster::engine::RecommendationQuery::default();
    let list = m
        .personalization()
        .recommendations(&SYS, c.parse().unwrap(), query)
        .await
        .unwrap();
    assert_eq!(list.model.model_version, Some(4));
    assert!(!list.items.is_empty());
}
