//! The life of a linked account's tokens (issue 21) against the fake provider: one
//! refresh however many calls need it, rotation without reuse, an answer without a
//! refresh token, a refused grant, a busy provider, and the sync of recent plays into
//! the user's history; an access token the provider's API refuses, renewed or marked
//! for a new link; a downgrade suspends links over the new limit.

use std::time::Duration;

use reqwest::Method;
use roster::domain::consent::Purpose;
use roster::domain::time::Timestamp;
use serde_json::{Value, json};

use crate::fake_provider::{self, FakeProvider, Script};
use crate::recommendations::consent;
use crate::support::{ADMIN_KEY, TestServer};
use crate::ws::{next_json, subscribe};

/// Past the fake's one-hour tokens and the five-minute margin.
const PAST_EXPIRY: Duration = Duration::from_secs(3_600);

async fn sync(srv: &TestServer, id: &str, token: &str, provider: &str) -> (u16, Value) {
    let path = format!("/users/{id}/integrations/{provider}/sync");
    srv.call(Method::POST, &path, Some(token), None).await
}

async fn links(srv: &TestServer, id: &str) -> Value {
    let path = format!("/users/{id}/integrations");
    let (s, body) = srv.call(Method::GET, &path, Some(ADMIN_KEY), None).await;
    assert_eq!(s, 200, "{body}");
    body
}

/// A user at `tier` who consented to analytics, linked at spotify; its id, token and
/// when it was created.
async fn linked(srv: &TestServer, fake: &FakeProvider, tier: &str) -> (String, String, Timestamp) {
    let (id, token) = srv.user("listener@example.com", tier).await;
    consent(srv, &id, vec![(Purpose::Analytics, true)]).await;
    fake_provider::link(srv, fake, &id, &token, "spotify").await;
    // A new link's history is synced at once (on a task of its own).
    fake_provider::wait_synced(srv, &id, "spotify").await;
    let (_, me) = srv
        .call(Method::GET, &format!("/users/{id}"), Some(&token), None)
        .await;
    let created: Timestamp = serde_json::from_value(me["created_at"].clone()).unwrap();
    (id, token, created)
}

/// Checks that a sync answered (`s`, `body`) 409 `reauth-required`; the
/// `integration.link_changed` frame the user's socket `ws` got for it.
async fn reauth_frame(s: u16, body: &Value, ws: &mut crate::ws::Ws) -> Value {
    assert_eq!(s, 409, "{body}");
    assert!(
        body["type"].as_str().unwrap().ends_with("/reauth-required"),
        "{body}"
    );
    loop {
        let f = next_json(ws).await;
        if f["type"] == "integration.link_changed" {
            return f;
        }
    }
}

fn at(t: Timestamp, minutes: u64) -> String {
    t.plus(Duration::from_secs(60 * minutes)).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_calls_at_expiry_make_one_refresh_and_synced_plays_land_once() {
    let fake = FakeProvider::start().await;
    let srv = TestServer::start(&fake.config("spotify")).await;
    let (id, token, created) = linked(&srv, &fake, "premium").await;
    let tracks = json!([{"id": "cat-1", "title": "Blue in Green", "artists": ["Miles Davis"],
        "isrc": "USSM15900113"}, {"id": "cat-2", "title": "So What", "artists": ["Miles Davis"]}]);
    let (s, body) = srv
        .call(
            Method::POST,
            "/admin/catalog/tracks",
            Some(ADMIN_KEY),
            Some(tracks),
        )
        .await;
    assert!(s == 200 || s == 201, "{s} {body}");
    fake.set_plays(&[
        (
            "sp1",
            "Blue in Green (Remastered)",
            "Someone Else",
            Some("USSM15900113"),
            &at(created, 30),
        ),
        (
            "sp2",
            "So What - 2009 Mix",
            "miles davis",
            None,
            &at(created, 20),
        ),
        ("sp3", "Unknown Song", "Nobody", None, &at(created, 10)),
        // From before the account existed: left out.
        ("sp4", "Older", "Nobody", None, "2001-01-01T00:00:00Z"),
    ]);
    srv.clock.advance(PAST_EXPIRY);
    // Every call finds the token at its expiry; the refresh takes a while.
    fake.slow_refreshes(300);
    let calls = (0..100).map(|_| sync(&srv, &id, &token, "spotify"));
    let answers = futures_util::future::join_all(calls).await;
    let mut imported = 0;
    for (s, body) in &answers {
        assert_eq!(*s, 200, "{body}");
        assert_eq!(body["fetched"], 4, "{body}");
        assert_eq!(
            body["matched"], 2,
            "by ISRC and by artist and title: {body}"
        );
        assert_eq!(body["skipped"], 1, "{body}");
        imported += body["imported"].as_u64().unwrap();
    }
    assert_eq!(imported, 3, "each play lands once");
    assert_eq!(fake.refreshes(), 1, "one refresh for a hundred calls");
    assert!(fake.reused().is_empty());
    assert_eq!(
        fake.history_requests(),
        101,
        "the link's own sync, and a hundred"
    );

    // A second sync of the same window adds nothing, also once the catalog has the
    // track the first sync found no match for.
    let unknown = json!([{"id": "cat-3", "title": "Unknown Song", "artists": ["Nobody"]}]);
    let (s, body) = srv
        .call(
            Method::POST,
            "/admin/catalog/tracks",
            Some(ADMIN_KEY),
            Some(unknown),
        )
        .await;
    assert!(s == 200 || s == 201, "{s} {body}");
    let (s, again) = sync(&srv, &id, &token, "spotify").await;
    assert_eq!(
        (
            s,
            &again["matched"],
            &again["imported"],
            &again["duplicates"]
        ),
        (200, &json!(3), &json!(0), &json!(3))
    );
    let (s, insights) = srv
        .call(
            Method::GET,
            &format!("/users/{id}/insights"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{insights}");
    let plays: u64 = insights["recent_days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["plays"].as_u64().unwrap())
        .sum();
    assert_eq!(plays, 3, "{insights}");
    let list = links(&srv, &id).await;
    assert!(list[0]["synced_at"].is_string() && list[0]["refreshed_at"].is_string());

    // An answer without a refresh token keeps the old one, which the next refresh uses.
    fake.slow_refreshes(0);
    fake.script(&[Script::KeepRefresh]);
    srv.clock.advance(PAST_EXPIRY);
    assert_eq!(sync(&srv, &id, &token, "spotify").await.0, 200);
    srv.clock.advance(PAST_EXPIRY);
    assert_eq!(sync(&srv, &id, &token, "spotify").await.0, 200);
    let sent: Vec<String> = fake
        .token_requests()
        .iter()
        .filter_map(|f| f.get("refresh_token").cloned())
        .collect();
    assert_eq!(sent.len(), 3);
    assert_ne!(sent[0], sent[1], "the first refresh rotated");
    assert_eq!(sent[1], sent[2], "the kept token was used again");
    assert!(fake.reused().is_empty(), "and no rotated token twice");
    assert_eq!(links(&srv, &id).await[0]["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_grant_asks_for_a_new_link_on_the_socket_and_stops_retrying() {
    let fake = FakeProvider::start().await;
    let srv = TestServer::start(&fake.config("spotify")).await;
    let (id, token, _) = linked(&srv, &fake, "premium").await;
    let (mut ws, _) = subscribe(&srv, &token).await;
    fake.script(&[Script::InvalidGrant]);
    srv.clock.advance(PAST_EXPIRY);
    let (s, body) = sync(&srv, &id, &token, "spotify").await;
    let frame = reauth_frame(s, &body, &mut ws).await;
    let data = &frame["data"];
    assert_eq!(
        (&data["provider"], &data["status"], &data["reason"]),
        (
            &json!("spotify"),
            &json!("reauth_required"),
            &json!("grant_refused")
        )
    );
    assert_eq!(links(&srv, &id).await[0]["status"], "reauth_required");
    let (s, _) = sync(&srv, &id, &token, "spotify").await;
    assert_eq!(s, 409);
    assert_eq!(fake.refreshes(), 1, "no retry of a refused grant");
    assert_eq!(fake.history_requests(), 1, "only the link's own sync");
    // Linking again makes it active.
    fake_provider::link(&srv, &fake, &id, &token, "spotify").await;
    assert_eq!(links(&srv, &id).await[0]["status"], "active");
    assert_eq!(sync(&srv, &id, &token, "spotify").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_access_token_is_refreshed_once_and_the_sync_goes_on() {
    let fake = FakeProvider::start().await;
    let srv = TestServer::start(&fake.config("spotify")).await;
    let (id, token, _) = linked(&srv, &fake, "premium").await;
    // Revoked early at the provider, long before its expiry.
    fake.forget_access();
    let (s, body) = sync(&srv, &id, &token, "spotify").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(fake.refreshes(), 1, "one forced refresh");
    assert_eq!(fake.history_refused(), 1);
    assert_eq!(links(&srv, &id).await[0]["status"], "active");
    // The renewed token serves the next sync without another refresh.
    assert_eq!(sync(&srv, &id, &token, "spotify").await.0, 200);
    assert_eq!((fake.refreshes(), fake.history_refused()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_syncs_refused_the_same_token_renew_it_once() {
    let fake = FakeProvider::start().await;
    let srv = TestServer::start(&fake.config("spotify")).await;
    let (id, token, _) = linked(&srv, &fake, "premium").await;
    fake.forget_access();
    // The first sync's refusal answers late: by then the second sync has renewed the
    // token, and the first reads with the renewed one instead of refreshing again.
    fake.delay_refusals(&[700]);
    let late = sync(&srv, &id, &token, "spotify");
    let early = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        sync(&srv, &id, &token, "spotify").await
    };
    let ((a, body_a), (b, body_b)) = tokio::join!(late, early);
    assert_eq!((a, b), (200, 200), "{body_a} {body_b}");
    assert_eq!(
        fake.history_refused(),
        2,
        "both read with the revoked token"
    );
    assert_eq!(fake.refreshes(), 1, "one refresh for one refused token");
    assert!(fake.reused().is_empty());
    assert_eq!(links(&srv, &id).await[0]["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_refusing_the_servers_client_keeps_the_users_link() {
    let fake = FakeProvider::start().await;
    let srv = TestServer::start(&fake.config("spotify")).await;
    let (id, token, _) = linked(&srv, &fake, "premium").await;
    let (mut ws, _) = subscribe(&srv, &token).await;
    // The operator's client secret no longer works (rotated at the provider).
    fake.refuse_client(true);
    srv.clock.advance(PAST_EXPIRY);
    let (s, body) = sync(&srv, &id, &token, "spotify").await;
    assert_eq!(s, 502, "{body}");
    assert!(
        body["type"].as_str().unwrap().ends_with("/provider-failed"),
        "{body}"
    );
    assert_eq!(links(&srv, &id).await[0]["status"], "active");
    // Fixed: the same grant serves, and no frame ever said to link again.
    fake.refuse_client(false);
    let (s, body) = sync(&srv, &id, &token, "spotify").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(fake.refreshes(), 2);
    crate::ws::send(&mut ws, json!({"type": "heartbeat", "id": "after"})).await;
    loop {
        let f = next_json(&mut ws).await;
        assert_ne!(f["type"], "integration.link_changed", "{f}");
        if f["type"] == "heartbeat_ack" && f["id"] == "after" {
            break;
        }
    }
}

/// Syncs once with the provider refusing recently-played with `status`: the answer
/// is 409 and the link is marked `reauth_required` with `reason` on the socket; the
/// next sync answers at once. The refreshes the refusal caused.
async fn refused_history(status: u16, reason: &str) -> usize {
    let fake = FakeProvider::start().await;
    let srv = TestServer::start(&fake.config("spotify")).await;
    let (id, token, _) = linked(&srv, &fake, "premium").await;
    let (mut ws, _) = subscribe(&srv, &token).await;
    fake.refuse_history(status);
    let (s, body) = sync(&srv, &id, &token, "spotify").await;
    let frame = reauth_frame(s, &body, &mut ws).await;
    assert_eq!(
        (&frame["data"]["status"], &frame["data"]["reason"]),
        (&json!("reauth_required"), &json!(reason))
    );
    assert_eq!(links(&srv, &id).await[0]["status"], "reauth_required");
    let refused = fake.history_refused();
    let (s, _) = sync(&srv, &id, &token, "spotify").await;
    assert_eq!(s, 409);
    assert_eq!(
        fake.history_refused(),
        refused,
        "no call with a refused token"
    );
    fake.refreshes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refused_after_a_refresh_asks_for_a_new_link() {
    assert_eq!(refused_history(401, "token_refused").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_scope_asks_for_a_new_link_without_a_refresh() {
    assert_eq!(refused_history(403, "scope_missing").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_provider_holds_refreshes_back_for_its_retry_after() {
    let fake = FakeProvider::start().await;
    let srv = TestServer::start(&fake.config("spotify")).await;
    let (id, token, _) = linked(&srv, &fake, "premium").await;
    fake.script(&[Script::Busy(120)]);
    srv.clock.advance(PAST_EXPIRY);
    let (s, body) = sync(&srv, &id, &token, "spotify").await;
    assert_eq!(s, 503, "{body}");
    assert!(
        body["type"].as_str().unwrap().ends_with("/provider-busy"),
        "{body}"
    );
    assert!(body["detail"].as_str().unwrap().contains("120 s"), "{body}");
    srv.clock.advance(Duration::from_secs(60));
    let (s, body) = sync(&srv, &id, &token, "spotify").await;
    assert_eq!(s, 503, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("60 s"), "{body}");
    assert_eq!(fake.refreshes(), 1, "held back meanwhile");
    srv.clock.advance(Duration::from_secs(61));
    assert_eq!(sync(&srv, &id, &token, "spotify").await.0, 200);
    assert_eq!(fake.refreshes(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_needs_the_analytics_consent_and_a_provider_with_a_history() {
    let fake = FakeProvider::start().await;
    let config = format!("{}{}", fake.config("spotify"), fake.config("discord"));
    let srv = TestServer::start(&config).await;
    let (id, token) = srv.user("private@example.com", "premium").await;
    fake_provider::link(&srv, &fake, &id, &token, "spotify").await;
    fake_provider::link(&srv, &fake, &id, &token, "discord").await;
    let (s, body) = sync(&srv, &id, &token, "spotify").await;
    assert_eq!(s, 403, "{body}");
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with("/consent-required"),
        "{body}"
    );
    assert_eq!(
        fake.history_requests(),
        0,
        "nothing read without the consent"
    );
    let (s, body) = sync(&srv, &id, &token, "discord").await;
    assert_eq!(s, 409, "{body}");
    let (s, body) = sync(&srv, &id, &token, "slack").await;
    assert_eq!(s, 409, "a provider without a history: {body}");
    let (s, _) = sync(&srv, &id, &token, "no_such_provider").await;
    assert_eq!(s, 404);
    let (_, other) = srv.user("nosy@example.com", "premium").await;
    assert_eq!(sync(&srv, &id, &other, "spotify").await.0, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downgrade_suspends_the_links_over_the_new_limit_and_an_upgrade_restores_them() {
    let fake = FakeProvider::start().await;
    let config = format!("{}{}", fake.config("spotify"), fake.config("discord"));
    let srv = TestServer::start(&config).await;
    let (id, token) = srv.user("mover@example.com", "premium").await;
    consent(&srv, &id, vec![(Purpose::Analytics, true)]).await;
    fake_provider::link(&srv, &fake, &id, &token, "discord").await;
    fake_provider::link(&srv, &fake, &id, &token, "spotify").await;
    let tier = |t: &str| json!({ "new_tier": t });
    let upgrade = format!("/users/{id}/upgrade");
    let (s, body) = srv
        .call(Method::POST, &upgrade, Some(ADMIN_KEY), Some(tier("free")))
        .await;
    assert_eq!(s, 200, "{body}");
    // Free: one link, Spotify only. Discord is not in the tier, so Spotify stays.
    let list = links(&srv, &id).await;
    let status = |l: &Value, p: &str| {
        l.as_array()
            .unwrap()
            .iter()
            .find(|x| x["provider"] == p)
            .map(|x| x["status"].clone())
    };
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "suspended, not deleted: {list}"
    );
    assert_eq!(status(&list, "discord"), Some(json!("suspended")));
    assert_eq!(status(&list, "spotify"), Some(json!("active")));
    let (s, body) = sync(&srv, &id, &token, "spotify").await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = srv
        .call(
            Method::POST,
            &upgrade,
            Some(ADMIN_KEY),
            Some(tier("premium")),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let list = links(&srv, &id).await;
    assert_eq!(status(&list, "discord"), Some(json!("active")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_a_refresh_brings_back_are_kept_when_the_actor_moved_meanwhile() {
    let fake = FakeProvider::start().await;
    let srv = TestServer::start(&fake.config("spotify")).await;
    let (id, token, _) = linked(&srv, &fake, "premium").await;
    srv.clock.advance(PAST_EXPIRY);
    fake.slow_refreshes(400);
    // A tier change restarts the actor in another shard while the refresh is out.
    let upgrade = format!("/users/{id}/upgrade");
    let moving = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let to = json!({ "new_tier": "enterprise" });
        srv.call(Method::POST, &upgrade, Some(ADMIN_KEY), Some(to))
            .await
    };
    let ((s, body), (moved, _)) = tokio::join!(sync(&srv, &id, &token, "spotify"), moving);
    assert_eq!(moved, 200);
    assert_eq!(s, 200, "{body}");
    // The rotated refresh token was kept: the next refresh uses it, not the spent one.
    fake.slow_refreshes(0);
    srv.clock.advance(PAST_EXPIRY);
    // The operator syncs: the move into enterprise's zero trust ended the session.
    let (s, body) = sync(&srv, &id, ADMIN_KEY, "spotify").await;
    assert_eq!(s, 200, "{body}");
    assert!(fake.reused().is_empty());
    assert_eq!(fake.refreshes(), 2);
}
