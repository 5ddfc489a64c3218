//! The self-service account page in a real browser: a user with an authenticator signs
//! in with its password and a code, edits its profile and AI preferences, ends another
//! session, sets its consents, downloads its export, signs out, and deletes its
//! account with a step-up.

use std::time::Duration;

use fantoccini::Locator;
use reqwest::Method;
use serde_json::{Value, json};

use super::browser::Browser;
use crate::mfa::code;
use crate::support::{ADMIN_KEY, PW, TestServer};

/// A new authenticator step, so a code is not refused as a replay.
fn next_step(srv: &TestServer) {
    srv.clock.advance(Duration::from_secs(30));
}

/// Logs in over the API with the password and the authenticator; the token and the
/// session's id.
async fn api_login(srv: &TestServer, email: &str, secret: &str) -> (String, String) {
    let body = json!({"email": email, "password": PW});
    let (s, c) = srv
        .call(Method::POST, "/auth/login", None, Some(body))
        .await;
    assert_eq!(s, 202, "{c}");
    let answer =
        json!({"challenge": c["challenge"], "method": "authenticator", "code": code(srv, secret)});
    let (s, ok) = srv
        .call(Method::POST, "/auth/login/mfa", None, Some(answer))
        .await;
    assert_eq!(s, 200, "{ok}");
    // A token is `<user>.<session>.<secret>`, the ids without their dashes.
    let token = ok["token"].as_str().unwrap().to_owned();
    let s = token.split('.').nth(1).unwrap();
    let session = format!(
        "{}-{}-{}-{}-{}",
        &s[..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..]
    );
    (token, session)
}

/// Signs in on the page with the password and the authenticator's code.
async fn sign_in(b: &Browser, srv: &TestServer, email: &str, secret: &str) {
    b.client
        .wait()
        .for_element(Locator::Css("#sign-in-view:not([hidden])"))
        .await
        .unwrap();
    // Cleared first: a reload may bring back what was typed.
    b.type_in("email", email).await;
    b.type_in("password", PW).await;
    b.click("sign-in-button").await;
    let asked = "return document.getElementById('second-factor').hidden ? \
                 document.getElementById('sign-in-error').textContent || 'waiting' : 'asked'";
    let asked = b
        .until(Duration::from_secs(5), asked, |v| v == "asked")
        .await;
    assert_eq!(asked, "asked", "the page asks for the second factor");
    next_step(srv);
    b.type_in("factor-code", &code(srv, secret)).await;
    b.click("factor-button").await;
    let me = "return document.querySelector(\"#me dd[data-field='email']\")?.textContent ?? ''";
    let shown = b.until(Duration::from_secs(5), me, |v| v == email).await;
    assert_eq!(shown, email, "signed in, the profile shows the account");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_manages_its_own_account_on_the_account_page() {
    let srv = TestServer::start("").await;
    let email = "listener@example.com";
    let (id, token) = srv.user(email, "premium").await;
    // An authenticator, set up over the API.
    let (s, t) = srv
        .call(
            Method::POST,
            &format!("/users/{id}/mfa/totp"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let secret = t["secret"].as_str().unwrap().to_owned();
    let confirm = json!({"code": code(&srv, &secret)});
    let path = format!("/users/{id}/mfa/totp/confirm");
    let (s, _) = srv
        .call(Method::POST, &path, Some(&token), Some(confirm))
        .await;
    assert_eq!(s, 200);
    let always = json!({"security_settings": {"require_mfa": true}});
    let (s, p) = srv
        .call(
            Method::PUT,
            &format!("/users/{id}"),
            Some(ADMIN_KEY),
            Some(always),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    next_step(&srv);
    let (other, other_session) = api_login(&srv, email, &secret).await;

    let root = format!("http://{}", srv.host());
    let b = Browser::start().await;
    b.client.goto(&format!("{root}/account")).await.unwrap();
    // A wrong password is refused on the page.
    let email_box = b
        .client
        .wait()
        .for_element(Locator::Id("email"))
        .await
        .unwrap();
    email_box.send_keys(email).await.unwrap();
    b.type_in("password", "not the password at all").await;
    b.click("sign-in-button").await;
    let error = "return document.getElementById('sign-in-error').textContent";
    let said = b
        .until(Duration::from_secs(5), error, |v| {
            v.as_str().is_some_and(|t| !t.is_empty())
        })
        .await;
    assert!(!said.as_str().unwrap().is_empty());
    b.client.refresh().await.unwrap();
    sign_in(&b, &srv, email, &secret).await;
    b.screenshot("account-profile").await;

    // Profile and AI preferences, saved through the API.
    b.type_in("display-name", "Night Owl").await;
    let level = b
        .client
        .find(Locator::Id("personalization-level"))
        .await
        .unwrap();
    level.select_by_value("advanced").await.unwrap();
    b.click("explanations").await;
    b.click("save-profile").await;
    let notice = "return document.getElementById('notice').textContent";
    b.until(Duration::from_secs(5), notice, |v| v == "saved")
        .await;
    let (_, p) = srv
        .call(Method::GET, &format!("/users/{id}"), Some(ADMIN_KEY), None)
        .await;
    assert_eq!(p["display_name"], "Night Owl", "{p}");
    assert_eq!(
        p["ai_preferences"]["personalization_level"], "advanced",
        "{p}"
    );
    assert_eq!(p["ai_preferences"]["explanations_enabled"], false, "{p}");

    // Sessions: the first one, the other and this browser's (which has no button); the
    // other is ended from the page.
    b.click("nav-sessions").await;
    let rows = "return document.querySelectorAll('#sessions tr[data-session]').length";
    assert_eq!(b.until(Duration::from_secs(5), rows, |v| v == 3).await, 3);
    let buttons = "return document.querySelectorAll('#sessions tbody button').length";
    assert_eq!(b.client.execute(buttons, vec![]).await.unwrap(), 2);
    b.screenshot("account-sessions").await;
    let me = |t: String| {
        let srv = &srv;
        async move { srv.call(Method::GET, "/users/me", Some(&t), None).await.0 }
    };
    assert_eq!(me(other.clone()).await, 200);
    let end = format!("#sessions tr[data-session='{other_session}'] button");
    b.client
        .find(Locator::Css(&end))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(b.until(Duration::from_secs(5), rows, |v| v == 2).await, 2);
    assert_eq!(me(other.clone()).await, 401);
    assert_eq!(me(token.clone()).await, 200);

    // Security: the authenticator is listed, and the events.
    b.click("nav-security").await;
    let factor = "return document.querySelector(\"#factors dd[data-field='authenticator']\")?.textContent ?? ''";
    let f = b
        .until(Duration::from_secs(5), factor, |v| {
            v.as_str().is_some_and(|t| t.starts_with("since"))
        })
        .await;
    assert!(f.as_str().unwrap().starts_with("since"), "{f}");
    b.screenshot("account-security").await;

    // Privacy: a consent given on the page; the export downloaded.
    b.click("nav-privacy").await;
    b.client
        .wait()
        .for_element(Locator::Id("consent-analytics"))
        .await
        .unwrap();
    b.click("consent-analytics").await;
    b.click("save-consents").await;
    b.until(Duration::from_secs(5), notice, |v| v == "consents saved")
        .await;
    let (_, c) = srv
        .call(
            Method::GET,
            &format!("/users/{id}/consents"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    let granted = |purpose: &str| {
        c["purposes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["purpose"] == purpose && p["granted"] == true)
    };
    assert!(granted("analytics"), "{c}");
    b.click("export").await;
    let bytes = "return Number(document.getElementById('export-status').dataset.bytes || 0)";
    let n = b
        .until(Duration::from_secs(5), bytes, |v| {
            v.as_u64().is_some_and(|n| n > 0)
        })
        .await;
    let (_, export) = srv
        .call(
            Method::GET,
            &format!("/users/{id}/export"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert!(n.as_u64().unwrap() > 200, "{n} bytes of {export}");
    b.screenshot("account-privacy").await;

    // Signed out, the browser's session is gone.
    b.click("sign-out").await;
    b.client
        .wait()
        .for_element(Locator::Css("#sign-in-view:not([hidden])"))
        .await
        .unwrap();
    let (_, live) = srv
        .call(
            Method::GET,
            &format!("/users/{id}/sessions"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(
        live.as_array().map(Vec::len),
        Some(1),
        "only the first is left: {live}"
    );

    // Deleted with a step-up: the password and a code.
    sign_in(&b, &srv, email, &secret).await;
    b.click("nav-privacy").await;
    b.client
        .wait()
        .for_element(Locator::Id("delete-password"))
        .await
        .unwrap();
    b.type_in("delete-password", PW).await;
    next_step(&srv);
    b.type_in("delete-code", &code(&srv, &secret)).await;
    b.click("delete-button").await;
    b.until(Duration::from_secs(5), notice, |v| {
        v == "your account is deleted"
    })
    .await;
    let (s, gone): (u16, Value) = srv
        .call(Method::GET, &format!("/users/{id}"), Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 404, "{gone}");
    b.client.clone().close().await.unwrap();
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_links_spotify_through_the_provider_and_unlinks_it_on_the_account_page() {
    let fake = crate::fake_provider::FakeProvider::start().await;
    // The provider sends the browser back to this server's callback: its port first.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let root = format!("http://{}", listener.local_addr().unwrap());
    let config = format!(
        "[integrations]\nredirect_base_url = \"{root}\"\n{}",
        fake.config("spotify")
    );
    let srv = TestServer::start_bound(tempfile::tempdir().unwrap(), listener, &config).await;
    let email = "linker@example.com";
    let (id, _) = srv.user(email, "premium").await;

    let b = Browser::start().await;
    b.client.goto(&format!("{root}/account")).await.unwrap();
    b.client
        .wait()
        .for_element(Locator::Css("#sign-in-view:not([hidden])"))
        .await
        .unwrap();
    b.type_in("email", email).await;
    b.type_in("password", PW).await;
    b.click("sign-in-button").await;
    let me = "return document.querySelector(\"#me dd[data-field='email']\")?.textContent ?? ''";
    assert_eq!(
        b.until(Duration::from_secs(5), me, |v| v == email).await,
        email
    );
    b.click("nav-integrations").await;
    let offered = "#providers tr[data-provider='spotify'] button";
    b.client
        .wait()
        .for_element(Locator::Css(offered))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // To the provider's consent page, which approves and sends the browser back
    // through the callback to the page, still signed in.
    let status = "return document.querySelector(\"#links tr[data-provider='spotify']\")?.dataset.status ?? ''";
    assert_eq!(
        b.until(Duration::from_secs(10), status, |v| v == "active")
            .await,
        "active"
    );
    let notice = "return document.getElementById('notice').textContent";
    assert_eq!(
        b.client.execute(notice, vec![]).await.unwrap(),
        "spotify linked"
    );
    let search = "return location.search + location.hash";
    assert_eq!(
        b.client.execute(search, vec![]).await.unwrap(),
        "#integrations",
        "the outcome is said once, not kept in the address"
    );
    let (_, links) = srv
        .call(
            Method::GET,
            &format!("/users/{id}/integrations"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(links[0]["status"], "active", "{links}");
    b.screenshot("account-integrations").await;

    // Unlinked from the page: revoked at the provider, gone from the list.
    let unlink = "#links tr[data-provider='spotify'] button:last-child";
    b.client
        .find(Locator::Css(unlink))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let rows = "return document.querySelectorAll('#links tr[data-provider]').length";
    assert_eq!(b.until(Duration::from_secs(5), rows, |v| v == 0).await, 0);
    assert_eq!(fake.revoked().len(), 1);

    // A browser the provider sends back with a refusal lands on the page with it.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let back = http
        .get(format!(
            "{root}/api/v1/integrations/spotify/callback?error=access_denied&state=x"
        ))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(back.status().as_u16(), 303);
    assert_eq!(
        back.headers()["location"],
        "/account?link_failed=spotify&reason=access_denied#integrations"
    );
    b.client.clone().close().await.unwrap();
    srv.stop().await;
}
