//! The integration hub (issue 21): the provider registry as the API lists it; links
//! made against a fake provider on loopback.

use reqwest::Method;

use crate::fake_provider::{self, FakeProvider};
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

/// `GET /integrations/{provider}/callback` with `query`; status and body.
async fn callback(srv: &TestServer, provider: &str, query: &str) -> (u16, serde_json::Value) {
    let path = format!("/integrations/{provider}/callback?{query}");
    srv.call(Method::GET, &path, None, None).await
}

/// Begins a link of `id` at `provider` as `token`; status and body.
async fn begin(
    srv: &TestServer,
    id: &str,
    token: &str,
    provider: &str,
) -> (u16, serde_json::Value) {
    let path = format!("/users/{id}/integrations/{provider}/link");
    srv.call(Method::POST, &path, Some(token), None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_link_is_made_with_pkce_listed_without_tokens_exported_and_unlinked_with_revocation()
 {
    let fake = FakeProvider::start().await;
    let srv = TestServer::start(&fake.config("spotify")).await;
    let (id, token) = srv.user("linker@example.com", "free").await;

    let (s, start) = begin(&srv, &id, &token, "spotify").await;
    assert_eq!(s, 201, "{start}");
    let url = start["authorization_url"].as_str().unwrap();
    assert!(url.contains("scope=user-read-recently-played"), "{url}");
    let (code, state, redirect) = fake.authorize(url);
    assert_eq!(state, start["state"]);
    assert_eq!(
        redirect,
        "http://127.0.0.1:8080/api/v1/integrations/spotify/callback"
    );

    // A foreign state (another secret for the same user) is refused and leaves the
    // link begun in place; so is one for another provider.
    let mut forged = state.clone();
    let last = if forged.ends_with('A') { 'B' } else { 'A' };
    forged.pop();
    forged.push(last);
    let (s, body) = callback(&srv, "spotify", &format!("code={code}&state={forged}")).await;
    assert_eq!((s, body["field"].as_str()), (400, Some("state")), "{body}");
    let (s, body) = callback(&srv, "spotify", "code=x&state=not-base64!").await;
    assert_eq!(s, 400, "{body}");

    let (s, link) = callback(
        &srv,
        "spotify",
        &format!("code={code}&state={state}&scope=x"),
    )
    .await;
    assert_eq!(s, 200, "{link}");
    assert_eq!(link["provider"], "spotify");
    assert_eq!(link["status"], "active");
    assert_eq!(link["refreshable"], true);
    assert_eq!(
        link["scopes"],
        serde_json::json!(["user-read-recently-played", "user-read-email"])
    );
    // The fake checked the verifier against the challenge; the exchange sent one.
    let exchange = &fake.token_requests()[0];
    assert_eq!(exchange["grant_type"], "authorization_code");
    assert!(exchange["code_verifier"].len() >= 43, "{exchange:?}");

    // The state is good once.
    let (s, body) = callback(&srv, "spotify", &format!("code={code}&state={state}")).await;
    assert_eq!((s, body["field"].as_str()), (400, Some("state")), "{body}");

    let (s, list) = srv
        .call(
            Method::GET,
            &format!("/users/{id}/integrations"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert!(list[0]["expires_at"].is_string(), "{list}");
    let (s, export) = srv
        .call(
            Method::GET,
            &format!("/users/{id}/export"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{export}");
    assert_eq!(
        export["linked_accounts"][0]["provider"], "spotify",
        "{export}"
    );
    for text in [list.to_string(), export.to_string()] {
        assert!(!text.contains("fake-access-token"), "{text}");
        assert!(!text.contains("fake-refresh-token"), "{text}");
    }

    // Another user cannot see or remove the link.
    let (_, other) = srv.user("other@example.com", "free").await;
    let path = format!("/users/{id}/integrations/spotify");
    let (s, _) = srv.call(Method::DELETE, &path, Some(&other), None).await;
    assert_eq!(s, 403);

    let (s, gone) = srv.call(Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(s, 200, "{gone}");
    assert_eq!(gone["revoked"], true);
    assert_eq!(fake.revoked(), ["fake-refresh-token-2-d41f07c2"]);
    let (s, _) = srv.call(Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(s, 404);
    let (_, list) = srv
        .call(
            Method::GET,
            &format!("/users/{id}/integrations"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(list, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_provider_finds_its_endpoints_from_its_issuer() {
    let fake = FakeProvider::start().await;
    let u = &fake.url;
    let config = format!(
        "[integrations.providers.our_sso]\nname = \"Our SSO\"\ncategory = \"custom\"\n\
         auth = \"oauth2\"\npkce = true\nissuer = \"{u}\"\nscopes = [\"openid\"]\n\
         client_id = \"{}\"\nclient_secret = \"{}\"\n\
         history = \"spotify_recently_played\"\napi_base_url = \"{u}/api\"\n",
        fake_provider::CLIENT_ID,
        fake_provider::CLIENT_SECRET,
    );
    let srv = TestServer::start(&config).await;
    let (id, token) = srv.user("sso@example.com", "enterprise").await;
    let analytics = (roster::domain::consent::Purpose::Analytics, true);
    crate::recommendations::consent(&srv, &id, vec![analytics]).await;
    // A document for another issuer is not this provider's. What it said is the
    // operator's (in the log), and the failure answers for a while without a fetch.
    fake.set_issuer(Some("https://elsewhere.example"));
    let (s, body) = begin(&srv, &id, &token, "our_sso").await;
    assert_eq!(s, 502, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("could not be discovered") && !detail.contains("elsewhere"),
        "{body}"
    );
    fake.set_issuer(None);
    assert_eq!(begin(&srv, &id, &token, "our_sso").await.0, 502);
    assert_eq!(fake.discoveries(), 1, "the failure was remembered");
    srv.clock.advance(std::time::Duration::from_secs(31));
    // Link (authorization and token endpoints), refresh and unlink (revocation), all
    // at the discovered addresses, from one document.
    fake_provider::link(&srv, &fake, &id, &token, "our_sso").await;
    fake_provider::wait_synced(&srv, &id, "our_sso").await;
    // Restarted (what was discovered is forgotten) while the issuer serves no good
    // document: a token that needs no refresh serves without one.
    let dir = srv.stop().await;
    fake.set_issuer(Some("https://elsewhere.example"));
    let srv = TestServer::start_in(dir, &config).await;
    let path = format!("/users/{id}/integrations/our_sso/sync");
    let (s, body) = srv.call(Method::POST, &path, Some(ADMIN_KEY), None).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(fake.discoveries(), 2, "no discovery for a fresh token");
    fake.set_issuer(None);
    // Past the token's hour (and the user's session: the operator syncs and unlinks).
    srv.clock.advance(std::time::Duration::from_secs(3_600));
    let (s, body) = srv.call(Method::POST, &path, Some(ADMIN_KEY), None).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(fake.refreshes(), 1);
    let path = format!("/users/{id}/integrations/our_sso");
    let (s, gone) = srv.call(Method::DELETE, &path, Some(ADMIN_KEY), None).await;
    assert_eq!(
        (s, &gone["revoked"]),
        (200, &serde_json::json!(true)),
        "{gone}"
    );
    assert_eq!(fake.revoked().len(), 1);
    assert_eq!(
        fake.discoveries(),
        3,
        "the refused document, one kept, and one after the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_without_an_openid_document_is_read_at_rfc_8414s_address_once() {
    let fake = FakeProvider::start().await;
    let issuer = format!("{}/tenant", fake.url);
    fake.set_issuer(Some(&issuer));
    let config = format!(
        "[integrations.providers.our_idp]\nname = \"Our IdP\"\ncategory = \"custom\"\n\
         auth = \"oauth2\"\npkce = true\nissuer = \"{issuer}\"\n\
         client_id = \"{}\"\nclient_secret = \"{}\"\n",
        fake_provider::CLIENT_ID,
        fake_provider::CLIENT_SECRET,
    );
    let srv = TestServer::start(&config).await;
    let (id, token) = srv.user("idp@example.com", "enterprise").await;
    // Eight links begun at once share one read of the document.
    let begun =
        futures_util::future::join_all((0..8).map(|_| begin(&srv, &id, &token, "our_idp"))).await;
    for (s, body) in &begun {
        assert_eq!(*s, 201, "{body}");
        let url = body["authorization_url"].as_str().unwrap();
        assert!(
            url.starts_with(&format!("{}/authorize?", fake.url)),
            "{url}"
        );
    }
    assert_eq!(fake.discoveries(), 1);
    let link = fake_provider::link(&srv, &fake, &id, &token, "our_idp").await;
    assert_eq!(link["status"], "active", "{link}");
    assert_eq!(fake.discoveries(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_user_revokes_its_grants_at_the_providers() {
    let fake = FakeProvider::start().await;
    let srv = TestServer::start(&fake.config("spotify")).await;
    let (id, token) = srv.user("leaver@example.com", "free").await;
    fake_provider::link(&srv, &fake, &id, &token, "spotify").await;
    let (s, body) = srv
        .call(
            Method::DELETE,
            &format!("/users/{id}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 204, "{body}");
    // The deletion answers at once; the revocation follows on a task of its own.
    let mut revoked = Vec::new();
    for _ in 0..100 {
        revoked = fake.revoked();
        if !revoked.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(revoked.len(), 1, "the grant's refresh token, once");
    assert!(revoked[0].starts_with("fake-refresh-token"), "{revoked:?}");
    let path = format!("/users/{id}/integrations");
    let (s, _) = srv.call(Method::GET, &path, Some(ADMIN_KEY), None).await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tier_limits_links_by_provider_and_count_and_the_raw_store_holds_no_token() {
    let fake = FakeProvider::start().await;
    let extra = format!(
        "{}{}[integrations.tiers.premium]\nmax_links = 1\n",
        fake.config("spotify"),
        fake.config("discord")
    );
    let srv = TestServer::start(&extra).await;
    let (free, free_token) = srv.user("free@example.com", "free").await;
    let (s, body) = begin(&srv, &free, &free_token, "discord").await;
    assert_eq!(
        (s, body["type"].as_str()),
        (403, Some("https://roster.dev/problems/tier-limit"))
    );
    assert!(
        body["detail"].as_str().unwrap().contains("free tier"),
        "{body}"
    );

    let (id, token) = srv.user("premium@example.com", "premium").await;
    let (_, start) = begin(&srv, &id, &token, "spotify").await;
    let (code, state, _) = fake.authorize(start["authorization_url"].as_str().unwrap());
    let (s, body) = callback(&srv, "spotify", &format!("code={code}&state={state}")).await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = begin(&srv, &id, &token, "discord").await;
    assert_eq!(s, 403, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("allows 1 linked account"),
        "{body}"
    );
    // Linking the same provider again replaces the link: allowed.
    let (s, body) = begin(&srv, &id, &token, "spotify").await;
    assert_eq!(s, 201, "{body}");

    // A link begun by a session that has since ended cannot be finished.
    let (code, state, _) = fake.authorize(body["authorization_url"].as_str().unwrap());
    let (s, _) = srv
        .call(Method::POST, "/auth/logout", Some(&token), None)
        .await;
    assert_eq!(s, 204);
    let (s, body) = callback(&srv, "spotify", &format!("code={code}&state={state}")).await;
    assert_eq!(s, 403, "{body}");
    // A provider's refusal of the link is a 400 that says so.
    let (s, body) = callback(
        &srv,
        "spotify",
        &format!("error=access_denied&state={state}"),
    )
    .await;
    assert_eq!(s, 400, "{body}");

    let dir = srv.stop().await;
    let hits = found(dir.path(), &["fake-access-token", "fake-refresh-token"]);
    assert!(hits.is_empty(), "tokens in clear: {hits:?}");
}

/// The needles found in any file under `dir`.
fn found(dir: &std::path::Path, needles: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            for n in needles {
                if bytes.windows(n.len()).any(|w| w == n.as_bytes()) {
                    hits.push(format!("{n} in {}", p.display()));
                }
            }
        }
    }
    hits
}
