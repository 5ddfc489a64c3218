//! Logs: every request runs in a span carrying its request id (accepted from
//! `X-Request-Id` or generated, and echoed back), and no password, token or full email
//! ever reaches a log line.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use reqwest::Method;
use serde_json::json;

use crate::support::{ADMIN_KEY, TestServer};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything logged by this test binary, at debug level, from the first call on.
fn captured() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        capture
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_and_request_ids_are_echoed() {
    let capture = captured();
    let fake = crate::fake_provider::FakeProvider::start().await;
    let srv = TestServer::start(&fake.config("spotify")).await;
    let email = "Secret.Person@example.com";
    let password = "first secret passphrase 42";
    let new_password = "second secret passphrase 43";
    let (s, user) = srv
        .call(
            Method::POST,
            "/users",
            Some(ADMIN_KEY),
            Some(json!({"email": email, "password": password})),
        )
        .await;
    assert_eq!(s, 201);
    let id = user["id"].as_str().unwrap().to_owned();
    let login = srv
        .http
        .post(format!("{}/auth/login", srv.base))
        .header("x-request-id", "req-login-0001")
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.headers()["x-request-id"], "req-login-0001", "echoed");
    let token = login.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = json!({"email": email, "password": "a wrong secret guess"});
    assert_eq!(
        srv.call(Method::POST, "/auth/login", None, Some(wrong))
            .await
            .0,
        401
    );
    let change = json!({"current_password": password, "new_password": new_password});
    let (s, _) = srv
        .call(
            Method::POST,
            &format!("/users/{id}/password"),
            Some(&token),
            Some(change),
        )
        .await;
    assert_eq!(s, 204);
    let generated = srv
        .http
        .get(format!("{}/users/me", srv.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(
        !generated.headers()["x-request-id"].is_empty(),
        "an id is made up when none is sent"
    );

    // MFA enrollment, then a login completed with the authenticator.
    let (s, e) = srv
        .call(
            Method::POST,
            &format!("/users/{id}/mfa/totp"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 201, "{e}");
    let secret_b32 = e["secret"].as_str().unwrap().to_owned();
    let secret = totp_rs::Secret::Encoded(secret_b32.clone())
        .to_bytes()
        .unwrap();
    let cfg = roster::security::totp::TotpConfig::default();
    let code_now = |srv: &TestServer| {
        roster::security::totp::code_at(&secret, &cfg, srv.manager.now().unix_secs())
    };
    let first = code_now(&srv);
    let (s, r) = srv
        .call(
            Method::POST,
            &format!("/users/{id}/mfa/totp/confirm"),
            Some(&token),
            Some(json!({"code": first})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let recovery: Vec<String> = r["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let (s, _) = srv
        .call(
            Method::PUT,
            &format!("/users/{id}"),
            Some(&token),
            Some(json!({"security_settings": {"require_mfa": true}})),
        )
        .await;
    assert_eq!(s, 200);
    srv.clock.advance(std::time::Duration::from_secs(30));
    let (s, c) = srv
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": email, "password": new_password})),
        )
        .await;
    assert_eq!(s, 202, "{c}");
    let challenge = c["challenge"].as_str().unwrap().to_owned();
    let second = code_now(&srv);
    let (s, ok) = srv
        .call(
            Method::POST,
            "/auth/login/mfa",
            None,
            Some(json!({"challenge": challenge, "method": "authenticator", "code": second})),
        )
        .await;
    assert_eq!(s, 200, "{ok}");
    let mfa_token = ok["token"].as_str().unwrap().to_owned();

    // A linked account: its state, code, PKCE verifier and tokens.
    let path = format!("/users/{id}/integrations/spotify/link");
    let (s, start) = srv.call(Method::POST, &path, Some(&mfa_token), None).await;
    assert_eq!(s, 201, "{start}");
    let (code, state, _) = fake.authorize(start["authorization_url"].as_str().unwrap());
    let path = format!("/integrations/spotify/callback?code={code}&state={state}");
    let (s, link) = srv.call(Method::GET, &path, None, None).await;
    assert_eq!(s, 200, "{link}");
    let verifier = fake.token_requests()[0]["code_verifier"].clone();

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    // (Six-digit codes are left out: such digit runs occur in timestamps by chance.)
    let mut mfa_secrets = vec![secret_b32, challenge, mfa_token, state, code, verifier];
    mfa_secrets.extend(["fake-access-token".into(), "fake-refresh-token".into()]);
    mfa_secrets.extend(recovery);
    for s in &mfa_secrets {
        assert!(
            !logs.contains(s.as_str()),
            "an MFA or link secret reached the logs: {s}"
        );
    }
    assert!(
        logs.contains("req-login-0001"),
        "the request id is in the request's span"
    );
    assert!(
        logs.contains("actor_message"),
        "actor messages are traced at debug level"
    );
    let secret_part = token.rsplit('.').next().unwrap();
    for secret in [
        password,
        new_password,
        "a wrong secret guess",
        &token,
        secret_part,
        ADMIN_KEY,
    ] {
        assert!(
            !logs.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
    assert!(
        !logs.to_lowercase().contains("secret.person@"),
        "a full email reached the logs"
    );
}
