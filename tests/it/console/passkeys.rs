//! Passkeys on the account page, in Chromium with WebDriver's virtual authenticator (a
//! software authenticator inside the browser): a user enrolls one through the page,
//! signs out, and signs back in with it and no password.

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::wd::WebDriverCompatibleCommand;
use reqwest::{Method, Url};
use serde_json::{Value, json};

use super::browser::Browser;
use crate::support::{ADMIN_KEY, PW, TestServer};

/// WebDriver's `Add Virtual Authenticator` (WebAuthn Level 2, §11.3): a CTAP2
/// platform authenticator that holds resident keys, verifies its user and consents.
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(&self, base: &Url, session: Option<&str>) -> Result<Url, url::ParseError> {
        base.join(&format!(
            "session/{}/webauthn/authenticator",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &Url) -> (axum::http::Method, Option<String>) {
        let body = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserConsenting": true,
            "isUserVerified": true,
        });
        (axum::http::Method::POST, Some(body.to_string()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_enrolls_a_passkey_on_the_page_and_signs_in_with_it() {
    // WebAuthn binds a passkey to a domain (not an address) and checks the page's
    // origin: the page is served as http://localhost:PORT, so the port is taken first.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let webauthn =
        format!("[webauthn]\nrp_id = \"localhost\"\norigins = [\"http://localhost:{port}\"]\n");
    let srv = TestServer::start_bound(tempfile::tempdir().unwrap(), listener, &webauthn).await;
    let email = "keyholder@example.com";
    let (id, _) = srv.user(email, "premium").await;

    let b = Browser::start().await;
    b.client.issue_cmd(AddVirtualAuthenticator).await.unwrap();
    b.client
        .goto(&format!("http://localhost:{port}/account"))
        .await
        .unwrap();
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

    // Enrolled through the browser's WebAuthn API.
    b.click("nav-security").await;
    b.client
        .wait()
        .for_element(Locator::Id("passkey-name"))
        .await
        .unwrap();
    b.type_in("passkey-name", "test laptop").await;
    b.click("passkey-add-button").await;
    let rows = "return document.querySelectorAll('#passkeys tr[data-passkey]').length";
    let n = b.until(Duration::from_secs(10), rows, |v| v == 1).await;
    let error = b.text("#security-error").await;
    assert_eq!(n, 1, "one passkey listed ({error})");
    let (_, mfa) = srv
        .call(
            Method::GET,
            &format!("/users/{id}/mfa"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(mfa["passkeys"][0]["name"], "test laptop", "{mfa}");
    // The first factor comes with recovery codes, shown once on the page.
    let codes =
        "return document.querySelectorAll('#recovery:not([hidden]) #recovery-codes li').length";
    assert_eq!(b.client.execute(codes, vec![]).await.unwrap(), json!(10));
    b.screenshot("account-passkey").await;

    // Signed out, then in again with the passkey alone.
    b.click("sign-out").await;
    b.client
        .wait()
        .for_element(Locator::Css("#sign-in-view:not([hidden])"))
        .await
        .unwrap();
    b.type_in("email", email).await;
    b.type_in("password", "").await;
    b.click("passkey-sign-in").await;
    let shown = b.until(Duration::from_secs(10), me, |v| v == email).await;
    let error = b.text("#sign-in-error").await;
    assert_eq!(shown, email, "signed in with the passkey ({error})");
    // The page may show the address before the ceremony's last answer is in: wait
    // for the login to be recorded (bounded).
    let mut events = Value::Null;
    for _ in 0..100 {
        (_, events) = srv
            .call(
                Method::GET,
                &format!("/users/{id}/security-events"),
                Some(ADMIN_KEY),
                None,
            )
            .await;
        if events[0]["kind"] == "login_succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let newest = &events[0];
    assert_eq!(newest["kind"], "login_succeeded", "{events}");
    assert_eq!(newest["factor"], "webauthn", "{newest}");
    b.client.clone().close().await.unwrap();
    srv.stop().await;
}
