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
    let srv = TestServer::start("").await;
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

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
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
