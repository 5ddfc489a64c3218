//! The integration hub (issue 21): the provider registry as the API lists it.

use reqwest::Method;

use crate::support::{ADMIN_KEY, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_are_listed_with_availability_and_the_tiers_limits_never_with_secrets() {
    let srv = TestServer::start(
        "[integrations.providers.spotify]\nclient_id = \"spotify-client-id\"\n\
         [integrations.providers.slack]\nclient_id = \"slack-id\"\nclient_secret = \"slack-secret-value\"\n",
    )
    .await;
    let (_, free) = srv.user("free@example.com", "free").await;
    let (_, vip) = srv.user("vip@example.com", "vip").await;

    let (s, body) = srv.call(Method::GET, "/integrations", None, None).await;
    assert_eq!(s, 401, "{body}");

    let find = |list: &serde_json::Value, id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not listed: {list}"))
    };
    let (s, list) = srv
        .call(Method::GET, "/integrations", Some(&free), None)
        .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 17, "{list}");
    let spotify = find(&list, "spotify");
    assert_eq!(spotify["availability"], "available");
    assert_eq!(spotify["auth"], "oauth2");
    assert_eq!(spotify["pkce"], true);
    assert_eq!(spotify["category"], "music");
    assert_eq!(spotify["tier_allows"], true, "Free gets Spotify basic");
    assert_eq!(find(&list, "slack")["tier_allows"], false);
    assert_eq!(find(&list, "discord")["availability"], "missing_client_id");
    assert_eq!(find(&list, "lastfm")["auth"], "lastfm");

    let (_, list) = srv
        .call(Method::GET, "/integrations", Some(&vip), None)
        .await;
    assert_eq!(find(&list, "slack")["tier_allows"], true);
    assert_eq!(find(&list, "slack")["availability"], "available");

    let (s, list) = srv
        .call(Method::GET, "/integrations", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 200);
    assert!(
        find(&list, "spotify").get("tier_allows").is_none(),
        "{list}"
    );
    let text = list.to_string();
    for secret in ["spotify-client-id", "slack-id", "slack-secret-value"] {
        assert!(!text.contains(secret), "{secret} listed");
    }
}
