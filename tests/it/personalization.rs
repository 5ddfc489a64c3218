//! Personalization through the server: the taste a user's plays teach, under its
//! consent to personalisation, shown in its export and gone with the consent.

use reqwest::Method;
use serde_json::{Value, json};

use roster::domain::consent::Purpose;

use crate::support::{ADMIN_KEY, SYS, TestServer};

fn track(id: &str, genre: &str, energy: f64) -> Value {
    json!({"id": id, "title": id, "artists": [format!("{genre} band")], "genres": [genre],
           "audio": {"energy": energy, "valence": 0.5}})
}

async fn consents(srv: &TestServer, id: &str, changes: Vec<(Purpose, bool)>) {
    srv.manager
        .privacy()
        .update_consents(&SYS, id.parse().unwrap(), changes, None)
        .await
        .unwrap();
}

pub(crate) async fn export(srv: &TestServer, id: &str) -> Value {
    let path = format!("/users/{id}/export");
    let (s, body) = srv.call(Method::GET, &path, Some(ADMIN_KEY), None).await;
    assert_eq!(s, 200, "{body}");
    body
}

async fn insights(srv: &TestServer, id: &str) -> Value {
    let path = format!("/users/{id}/insights");
    let (s, body) = srv.call(Method::GET, &path, Some(ADMIN_KEY), None).await;
    assert_eq!(s, 200, "{body}");
    body
}

async fn listen(srv: &TestServer, id: &str, token: &str) {
    let now = srv.manager.now().to_string();
    let play =
        |t: &str| json!({"kind": "track_played", "track_id": t, "at": now, "duration_ms": 200000});
    let events = json!([
        play("jazz-1"),
        play("jazz-2"),
        {"kind": "track_liked", "track_id": "jazz-2", "at": now},
        {"kind": "track_skipped", "track_id": "metal-1", "at": now, "position_ms": 5000},
        play("not-in-the-catalog"),
        {"kind": "searched", "at": now}
    ]);
    let (s, body) = srv.post_activity(id, token, events).await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plays_teach_the_taste_only_under_the_consent_to_personalisation() {
    let srv = TestServer::start("").await;
    let tracks = [
        track("jazz-1", "jazz", 0.2),
        track("jazz-2", "jazz", 0.3),
        track("metal-1", "metal", 0.95),
    ];
    let body = Value::from(tracks.to_vec()).to_string();
    let (s, answer) = srv
        .post_raw("/admin/catalog/tracks", ADMIN_KEY, "application/json", body)
        .await;
    assert_eq!(s, 200, "{answer}");

    let (id, token) = srv.user("taste@example.com", "premium").await;
    consents(
        &srv,
        &id,
        vec![(Purpose::Analytics, true), (Purpose::Personalisation, true)],
    )
    .await;
    listen(&srv, &id, &token).await;
    let taste = &export(&srv, &id).await["taste"];
    let heard = taste["heard"].as_array().unwrap();
    let ids: Vec<&Value> = heard.iter().map(|h| &h["track_id"]).collect();
    assert_eq!(
        ids,
        [
            &json!("jazz-1"),
            &json!("jazz-2"),
            &json!("metal-1"),
            &Value::Null
        ],
        "most recent last; a track not in the catalog is kept by its key only: {taste}"
    );
    assert_eq!(heard[1]["liked"], true);
    assert_eq!(heard[1]["plays"], 1);
    assert_eq!(heard[2]["skips"], 1);
    assert_eq!(heard[3]["track_key"].as_str().unwrap().len(), 12);
    assert_eq!(taste["genres"][0]["genre"], "jazz", "{taste}");
    assert_eq!(
        taste["genres"].as_array().unwrap().len(),
        1,
        "a skip adds no genre"
    );
    let energy = taste["audio"]["energy"].as_f64().unwrap();
    assert!(
        (0.2..=0.3).contains(&energy),
        "the played tracks' energy: {energy}"
    );
    assert_eq!(
        taste["events"], 5,
        "plays, the like and the skip; not the search"
    );

    let profile = insights(&srv, &id).await["listening_profile"].clone();
    assert_eq!(
        profile["top_genres"],
        json!([{"genre": "jazz", "weight": taste["genres"][0]["weight"]}]),
        "the insights name the taste's genres: {profile}"
    );

    // Withdrawn, the taste is gone at once, and later plays teach nothing.
    consents(&srv, &id, vec![(Purpose::Personalisation, false)]).await;
    assert_eq!(export(&srv, &id).await["taste"], Value::Null);
    assert_eq!(
        insights(&srv, &id).await["listening_profile"]["top_genres"],
        json!([])
    );
    listen(&srv, &id, &token).await;
    assert_eq!(export(&srv, &id).await["taste"], Value::Null);

    // Analytics alone counts the plays but learns no taste.
    let (other, other_token) = srv.user("counted@example.com", "free").await;
    consents(&srv, &other, vec![(Purpose::Analytics, true)]).await;
    listen(&srv, &other, &other_token).await;
    let e = export(&srv, &other).await;
    assert_eq!(e["activity"]["tracks_played"], 3);
    assert_eq!(e["taste"], Value::Null);
}
