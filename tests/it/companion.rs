//! The creative tools' desktop companions (issue 21): a link makes a key shown once;
//! the companion pushes sessions and exports with it, each counted once however often
//! it is pushed; a new session counts as the desktop app opened; a replaced or foreign
//! key is refused.

use std::time::Duration;

use reqwest::Method;
use roster::domain::consent::Purpose;
use roster::domain::time::Timestamp;
use serde_json::{Value, json};

use crate::recommendations::consent;
use crate::support::{ADMIN_KEY, TestServer};

/// A push of `events` to `provider` with `key` (none: no header).
async fn push(srv: &TestServer, provider: &str, key: Option<&str>, events: Value) -> (u16, Value) {
    let mut req = srv
        .http
        .post(format!("{}/integrations/{provider}/events", srv.base))
        .json(&json!({ "events": events }));
    if let Some(k) = key {
        req = req.header("X-Companion-Key", k);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn link(srv: &TestServer, id: &str, token: &str, provider: &str) -> Value {
    let path = format!("/users/{id}/integrations/{provider}/link");
    let (s, body) = srv.call(Method::POST, &path, Some(token), None).await;
    assert_eq!(s, 201, "{body}");
    body
}

fn at(t: Timestamp, minutes: u64) -> String {
    t.plus(Duration::from_secs(60 * minutes)).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_companion_pushes_sessions_and_exports_once_each_with_its_own_key() {
    let srv = TestServer::start("").await;
    let (id, token) = srv.user("producer@example.com", "enterprise").await;
    consent(&srv, &id, vec![(Purpose::Analytics, true)]).await;
    let (_, me) = srv
        .call(Method::GET, &format!("/users/{id}"), Some(&token), None)
        .await;
    let created: Timestamp = serde_json::from_value(me["created_at"].clone()).unwrap();

    let made = link(&srv, &id, &token, "ableton_live").await;
    let key = made["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("rck_"), "{made}");
    assert!(
        made["events_url"]
            .as_str()
            .unwrap()
            .ends_with("/api/v1/integrations/ableton_live/events"),
        "{made}"
    );
    assert_eq!(made["link"]["provider"], "ableton_live");

    // Within the enterprise tier's 30 idle minutes, so the session can link again.
    srv.clock.advance(Duration::from_secs(20 * 60));
    let events = json!([
        {"kind": "session", "id": "s-1", "started_at": at(created, 1), "ended_at": at(created, 16),
         "project": "Night Drive", "bpm": 124},
        {"kind": "export", "id": "e-1", "at": at(created, 17), "duration_ms": 215_000, "format": "wav"},
    ]);
    let (s, body) = push(&srv, "ableton_live", Some(&key), events.clone()).await;
    assert_eq!((s, &body), (200, &json!({"accepted": 2, "duplicates": 0})));
    // The companion retries after a lost answer: nothing counts twice.
    let (s, body) = push(&srv, "ableton_live", Some(&key), events.clone()).await;
    assert_eq!((s, &body), (200, &json!({"accepted": 0, "duplicates": 2})));

    let (s, list) = srv
        .call(
            Method::GET,
            &format!("/users/{id}/integrations"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{list}");
    let creative = &list[0]["creative"];
    assert_eq!(
        (
            &creative["sessions"],
            &creative["session_minutes"],
            &creative["exports"]
        ),
        (&json!(1), &json!(15), &json!(1)),
        "{list}"
    );
    assert!(
        !list.to_string().contains(&key[4..]),
        "the key is shown once"
    );
    let (_, insights) = srv
        .call(
            Method::GET,
            &format!("/users/{id}/insights"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    let opens: u64 = insights["recent_days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["app_opens"].as_u64().unwrap())
        .sum();
    assert_eq!(opens, 1, "the session opened the desktop app: {insights}");

    // Bad input names the field; nothing is counted.
    let bad = json!([{"kind": "session", "id": "s-2", "started_at": at(created, 18),
        "ended_at": at(created, 17)}]);
    let (s, body) = push(&srv, "ableton_live", Some(&key), bad).await;
    assert_eq!(s, 400, "{body}");
    assert!(body.to_string().contains("events[0].ended_at"), "{body}");
    // No key, a key of another provider's link, a provider with no companion.
    let (s, _) = push(&srv, "ableton_live", None, events.clone()).await;
    assert_eq!(s, 401);
    let (s, _) = push(&srv, "fl_studio", Some(&key), events.clone()).await;
    assert_eq!(s, 401, "the key is the ableton_live link's");
    let (s, _) = push(&srv, "spotify", Some(&key), events.clone()).await;
    assert_eq!(s, 409);
    let (s, _) = push(&srv, "ableton_live", Some("rck_forged"), events.clone()).await;
    assert_eq!(s, 401);

    // Linking again replaces the key: the old one stops working, the counts stay.
    let again = link(&srv, &id, &token, "ableton_live").await;
    let new_key = again["api_key"].as_str().unwrap();
    assert_ne!(new_key, key);
    let (s, _) = push(&srv, "ableton_live", Some(&key), events.clone()).await;
    assert_eq!(s, 401, "the replaced key");
    let (s, body) = push(&srv, "ableton_live", Some(new_key), events).await;
    assert_eq!((s, &body["duplicates"]), (200, &json!(2)), "{body}");
}
