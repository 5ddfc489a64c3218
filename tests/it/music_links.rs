//! Links that are not OAuth 2.0 (issue 21), against the fake Last.fm and Apple Music:
//! Last.fm's signed web auth and its scrobbles synced into the history once, matched to
//! the catalog; Apple Music's developer token and the Music User Token checked with it.

use std::time::Duration;

use reqwest::Method;
use roster::domain::consent::Purpose;
use roster::domain::time::Timestamp;
use serde_json::{Value, json};

use crate::fake_music::{self, FakeMusic};
use crate::recommendations::consent;
use crate::support::{ADMIN_KEY, TestServer};

async fn post(srv: &TestServer, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    srv.call(Method::POST, path, Some(token), body).await
}

async fn links(srv: &TestServer, id: &str) -> Value {
    let path = format!("/users/{id}/integrations");
    let (s, body) = srv.call(Method::GET, &path, Some(ADMIN_KEY), None).await;
    assert_eq!(s, 200, "{body}");
    body
}

/// What the provider list says of Apple Music's availability.
async fn apple_availability(srv: &TestServer) -> Value {
    let (s, list) = srv
        .call(Method::GET, "/integrations", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 200, "{list}");
    let apple = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "apple_music");
    apple.unwrap()["availability"].clone()
}

/// Seconds since the epoch, `minutes` after `t`.
fn uts(t: Timestamp, minutes: u64) -> i64 {
    t.plus(Duration::from_secs(60 * minutes)).as_millis() / 1000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lastfm_links_through_its_signed_session_and_syncs_scrobbles_once() {
    let fake = FakeMusic::start().await;
    let srv = TestServer::start(&fake.config()).await;
    let (id, token) = srv.user("scrobbler@example.com", "premium").await;
    consent(&srv, &id, vec![(Purpose::Analytics, true)]).await;
    let (_, me) = srv
        .call(Method::GET, &format!("/users/{id}"), Some(&token), None)
        .await;
    let created: Timestamp = serde_json::from_value(me["created_at"].clone()).unwrap();

    let (s, start) = post(
        &srv,
        &format!("/users/{id}/integrations/lastfm/link"),
        &token,
        None,
    )
    .await;
    assert_eq!(s, 201, "{start}");
    let back = fake.approve_lastfm(start["authorization_url"].as_str().unwrap());
    assert!(
        back.starts_with("/integrations/lastfm/callback?state="),
        "{back}"
    );
    let (s, link) = srv.call(Method::GET, &back, None, None).await;
    assert_eq!(s, 200, "{link}");
    crate::fake_provider::wait_synced(&srv, &id, "lastfm").await;
    assert_eq!(
        fake.bad_signatures(),
        0,
        "auth.getSession was signed as documented"
    );
    assert_eq!(
        (&link["provider"], &link["account"], &link["refreshable"]),
        (
            &json!("lastfm"),
            &json!(fake_music::LASTFM_USER),
            &json!(false)
        )
    );
    // The same callback again: the state was used.
    let (s, again) = srv.call(Method::GET, &back, None, None).await;
    assert_eq!(s, 400, "{again}");
    let listed = links(&srv, &id).await;
    assert_eq!(listed[0]["account"], fake_music::LASTFM_USER);
    let session_key = &fake.sessions()[0];
    assert!(!listed.to_string().contains(session_key.as_str()));

    let tracks = json!([{"id": "cat-believe", "title": "Believe", "artists": ["Cher"],
        "duration_ms": 239_000}]);
    let (s, body) = srv
        .call(
            Method::POST,
            "/admin/catalog/tracks",
            Some(ADMIN_KEY),
            Some(tracks),
        )
        .await;
    assert!(s == 200 || s == 201, "{s} {body}");
    fake.set_scrobbles(&[
        ("Believe (Radio Edit)", "cher", "", uts(created, 30)),
        ("Strong Enough", "Cher", "mbid-2", uts(created, 20)),
        ("Unknown", "Nobody", "", uts(created, 10)),
    ]);
    // The plays are past by now.
    srv.clock.advance(Duration::from_secs(3_600));
    let sync = format!("/users/{id}/integrations/lastfm/sync");
    let (s, synced) = post(&srv, &sync, &token, None).await;
    assert_eq!(s, 200, "{synced}");
    assert_eq!(
        (&synced["fetched"], &synced["matched"], &synced["imported"]),
        (&json!(3), &json!(1), &json!(3)),
        "the track playing now is not a play: {synced}"
    );
    // Synced again a day later (by an operator: the session is over): only from a day
    // before the last sync, and nothing twice.
    srv.clock.advance(Duration::from_secs(86_400));
    let (s, again) = post(&srv, &sync, ADMIN_KEY, None).await;
    assert_eq!(
        (s, &again["imported"], &again["duplicates"]),
        (200, &json!(0), &json!(3)),
        "{again}"
    );
    let from = fake.recent_from();
    assert_eq!(from[0], None, "the link's own sync reads everything");
    assert_eq!(from.len(), 3);
    let synced_at: Timestamp =
        serde_json::from_value(links(&srv, &id).await[0]["synced_at"].clone()).unwrap();
    let expected = (synced_at.as_millis() / 1000 - 86_400 * 2).to_string();
    assert_eq!(from.last().unwrap().as_deref(), Some(expected.as_str()));
    let (s, insights) = srv
        .call(
            Method::GET,
            &format!("/users/{id}/insights"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{insights}");
    let days = insights["recent_days"].as_array().unwrap();
    let plays: u64 = days.iter().map(|d| d["plays"].as_u64().unwrap()).sum();
    assert_eq!(plays, 3, "{insights}");
    let minutes: u64 = days
        .iter()
        .map(|d| d["listening_minutes"].as_u64().unwrap())
        .sum();
    assert!(
        minutes >= 3,
        "the catalog's length for the matched play: {insights}"
    );

    // Last.fm suspends the server's API key: the operator's fault, not the link's.
    fake.suspend_key(true);
    let (s, body) = post(&srv, &sync, ADMIN_KEY, None).await;
    assert_eq!(s, 502, "{body}");
    assert!(
        !body["detail"].as_str().unwrap().contains("Suspended"),
        "no provider's message to the caller: {body}"
    );
    assert_eq!(links(&srv, &id).await[0]["status"], "active");
    fake.suspend_key(false);
    assert_eq!(post(&srv, &sync, ADMIN_KEY, None).await.0, 200);

    // The user removed the application at Last.fm: link again.
    fake.revoke_sessions();
    let (s, body) = post(&srv, &sync, ADMIN_KEY, None).await;
    assert_eq!(s, 409, "{body}");
    assert!(
        body["type"].as_str().unwrap().ends_with("/reauth-required"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apple_music_links_with_a_user_token_checked_under_the_signed_developer_token() {
    let fake = FakeMusic::start().await;
    let srv = TestServer::start(&fake.config()).await;
    let (id, token) = srv.user("apple@example.com", "premium").await;
    let (s, dev) = srv
        .call(
            Method::GET,
            "/integrations/apple_music/developer-token",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 200, "{dev}");
    assert!(
        dev["token"].as_str().unwrap().split('.').count() == 3,
        "{dev}"
    );
    assert!(dev["expires_at"].is_string());
    let (s, _) = srv
        .call(
            Method::GET,
            "/integrations/apple_music/developer-token",
            None,
            None,
        )
        .await;
    assert_eq!(s, 401);
    let (s, body) = srv
        .call(
            Method::GET,
            "/integrations/lastfm/developer-token",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 409, "Last.fm signs no developer token: {body}");

    let path = format!("/users/{id}/integrations/apple_music/link");
    let (s, body) = post(&srv, &path, &token, None).await;
    assert_eq!(s, 400, "{body}");
    assert!(body.to_string().contains("music_user_token"), "{body}");
    let (s, body) = post(
        &srv,
        &path,
        &token,
        Some(json!({"music_user_token": "forged"})),
    )
    .await;
    assert_eq!(s, 400, "Apple refuses a token it did not issue: {body}");
    let (s, body) = post(&srv, &path, &token, Some(json!({"music_token": "x"}))).await;
    assert_eq!(s, 400, "an unknown field is named: {body}");
    let user_token = fake.issue_user_token();
    let (s, link) = post(
        &srv,
        &path,
        &token,
        Some(json!({"music_user_token": user_token})),
    )
    .await;
    assert_eq!(s, 201, "{link}");
    assert_eq!(
        fake.bad_developer_tokens(),
        0,
        "the developer token verified at Apple"
    );
    assert_eq!(
        (&link["provider"], &link["status"], &link["account"]),
        (
            &json!("apple_music"),
            &json!("active"),
            &json!("storefront:us")
        )
    );
    let listed = links(&srv, &id).await;
    assert!(!listed.to_string().contains(&user_token));

    // A Free user's tier does not include Apple Music.
    let (_, free) = srv.user("free@example.com", "free").await;
    let (s, body) = srv
        .call(
            Method::GET,
            "/integrations/apple_music/developer-token",
            Some(&free),
            None,
        )
        .await;
    assert_eq!(s, 403, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apple_music_without_a_team_or_with_a_bad_key_is_listed_unavailable() {
    let config =
        "[integrations.providers.apple_music]\nclient_id = \"K\"\nclient_secret = \"not a pem\"\n";
    let srv = TestServer::start(config).await;
    assert_eq!(apple_availability(&srv).await, "missing_team_id");
    let srv = TestServer::start(&format!("{config}team_id = \"T1\"\n")).await;
    assert_eq!(apple_availability(&srv).await, "invalid_signing_key");
    let (s, body) = srv
        .call(
            Method::GET,
            "/integrations/apple_music/developer-token",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 409, "{body}");
}
