//! Second factors, risk-based login and zero trust, over HTTP against a real server.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::{ADMIN_KEY, PW, TestServer};

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PUT: Method = Method::PUT;
const DELETE: Method = Method::DELETE;

/// The authenticator's code now, on the server's clock.
pub(crate) fn code(srv: &TestServer, secret_b32: &str) -> String {
    let secret = totp_rs::Secret::Encoded(secret_b32.to_owned())
        .to_bytes()
        .unwrap();
    let cfg = roster::security::totp::TotpConfig::default();
    roster::security::totp::code_at(&secret, &cfg, srv.manager.now().unix_secs())
}

async fn login(srv: &TestServer, email: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    srv.call_with(
        POST,
        "/auth/login",
        None,
        Some(json!({"email": email, "password": PW})),
        headers,
    )
    .await
}

async fn complete(srv: &TestServer, challenge: &Value, method: &str, code: &str) -> (u16, Value) {
    srv.call(
        POST,
        "/auth/login/mfa",
        None,
        Some(json!({"challenge": challenge["challenge"], "method": method, "code": code})),
    )
    .await
}

async fn event_kinds(srv: &TestServer, id: &str) -> Vec<String> {
    let (s, events) = srv
        .call(
            GET,
            &format!("/users/{id}/security-events"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{events}");
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Enrolls an authenticator for the user of `token`; returns its base32 secret and the
/// recovery codes.
async fn enroll(srv: &TestServer, id: &str, token: &str) -> (String, Vec<String>) {
    let (s, e) = srv
        .call(POST, &format!("/users/{id}/mfa/totp"), Some(token), None)
        .await;
    assert_eq!(s, 201, "{e}");
    let secret = e["secret"].as_str().unwrap().to_owned();
    assert!(
        e["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    assert!(e["qr_svg"].as_str().unwrap().contains("<svg"));
    // A second enrollment while this one is pending is refused, and changes nothing.
    let (s, p) = srv
        .call(POST, &format!("/users/{id}/mfa/totp"), Some(token), None)
        .await;
    assert_eq!(s, 409, "{p}");
    let (s, p) = srv
        .call(
            POST,
            &format!("/users/{id}/mfa/totp/confirm"),
            Some(token),
            Some(json!({"code": "12345"})),
        )
        .await;
    assert_eq!((s, p["field"].as_str()), (400, Some("code")), "{p}");
    let (s, r) = srv
        .call(
            POST,
            &format!("/users/{id}/mfa/totp/confirm"),
            Some(token),
            Some(json!({"code": code(srv, &secret)})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let codes: Vec<String> = r["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticator_login_with_replay_refused_and_recovery_codes_once() {
    let srv = TestServer::start("").await;
    let (id, token) = srv.user("totp@example.com", "premium").await;
    let (secret, recovery) = enroll(&srv, &id, &token).await;
    let (s, m) = srv
        .call(GET, &format!("/users/{id}/mfa"), Some(&token), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            m["authenticator"].as_bool(),
            m["recovery_codes_left"].as_u64()
        ),
        (Some(true), Some(10))
    );
    let (s, _) = srv
        .call(
            PUT,
            &format!("/users/{id}"),
            Some(&token),
            Some(json!({"security_settings": {"require_mfa": true}})),
        )
        .await;
    assert_eq!(s, 200);
    // Next step, so that the login code is not the confirmation's.
    srv.clock.advance(Duration::from_secs(30));

    let (s, c) = login(&srv, "totp@example.com", &[]).await;
    assert_eq!(s, 202, "{c}");
    assert_eq!(c["status"], "mfa_required");
    assert_eq!(c["reason"], "required_by_settings");
    // The premium template accepts email codes too.
    assert_eq!(
        c["methods"],
        json!(["authenticator", "email", "recovery_code"])
    );
    assert!(
        c.get("token").is_none(),
        "no session before the second factor"
    );
    // A malformed code is a 400 and costs no attempt.
    let (s, p) = complete(&srv, &c, "authenticator", "12ab56").await;
    assert_eq!((s, p["field"].as_str()), (400, Some("code")), "{p}");
    let (s, p) = complete(&srv, &c, "authenticator", "000000").await;
    assert_eq!((s, p["attempts_left"].as_u64()), (401, Some(4)), "{p}");
    let now_code = code(&srv, &secret);
    let (s, ok) = complete(&srv, &c, "authenticator", &now_code).await;
    assert_eq!(s, 200, "{ok}");
    let session = ok["token"].as_str().unwrap().to_owned();
    let (s, _) = srv.call(GET, "/users/me", Some(&session), None).await;
    assert_eq!(s, 200);
    // The challenge is used up.
    let (s, p) = complete(&srv, &c, "authenticator", &now_code).await;
    assert_eq!(
        (s, p["type"].as_str()),
        (401, Some("https://roster.dev/problems/challenge-invalid"))
    );

    // The same code again, in a new login within its step: a replay.
    let (_, c2) = login(&srv, "totp@example.com", &[]).await;
    let (s, p) = complete(&srv, &c2, "authenticator", &now_code).await;
    assert_eq!(s, 401, "{p}");
    assert!(
        event_kinds(&srv, &id)
            .await
            .contains(&"mfa_replayed".to_owned())
    );

    // A recovery code works once.
    let (s, ok) = complete(&srv, &c2, "recovery_code", &recovery[0].to_uppercase()).await;
    assert_eq!(s, 200, "{ok}");
    let (_, c3) = login(&srv, "totp@example.com", &[]).await;
    let (s, _) = complete(&srv, &c3, "recovery_code", &recovery[0]).await;
    assert_eq!(s, 401);
    let (s, ok) = complete(&srv, &c3, "recovery_code", &recovery[1]).await;
    assert_eq!(s, 200, "{ok}");
    let kinds = event_kinds(&srv, &id).await;
    for k in [
        "mfa_enrolled",
        "login_challenged",
        "mfa_failed",
        "recovery_code_used",
        "login_succeeded",
    ] {
        assert!(kinds.contains(&k.to_owned()), "{k} in {kinds:?}");
    }
    // Expired challenges are refused.
    let (_, c4) = login(&srv, "totp@example.com", &[]).await;
    srv.clock.advance(Duration::from_secs(301));
    let (s, _) = complete(&srv, &c4, "authenticator", &code(&srv, &secret)).await;
    assert_eq!(s, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensitive_operations_need_a_recent_authentication() {
    let srv = TestServer::start("").await;
    let (id, token) = srv.user("stepup@example.com", "free").await;
    let (secret, _) = enroll(&srv, &id, &token).await;
    srv.clock.advance(Duration::from_secs(601));
    for (method, path) in [
        (GET, format!("/users/{id}/export")),
        (DELETE, format!("/users/{id}/mfa/totp")),
        (POST, format!("/users/{id}/mfa/recovery-codes")),
    ] {
        let (s, p) = srv.call(method, &path, Some(&token), None).await;
        assert_eq!(s, 403, "{path}: {p}");
        assert_eq!(p["type"], "https://roster.dev/problems/step-up-required");
    }
    let (s, p) = srv
        .call(
            POST,
            &format!("/users/{id}/password"),
            Some(&token),
            Some(json!({"current_password": PW, "new_password": "another horse battery staple"})),
        )
        .await;
    assert_eq!(s, 403, "{p}");
    // The password alone is not enough with an authenticator.
    let (s, p) = srv
        .call(
            POST,
            "/auth/step-up",
            Some(&token),
            Some(json!({"password": PW})),
        )
        .await;
    assert_eq!(
        (s, p["type"].as_str()),
        (401, Some("https://roster.dev/problems/factor-required"))
    );
    let (s, p) = srv
        .call(
            POST,
            "/auth/step-up",
            Some(&token),
            Some(json!({"password": "wrong password entirely", "method": "authenticator", "code": code(&srv, &secret)})),
        )
        .await;
    assert_eq!(s, 401, "{p}");
    srv.clock.advance(Duration::from_secs(30));
    let (s, p) = srv
        .call(
            POST,
            "/auth/step-up",
            Some(&token),
            Some(json!({"password": PW, "method": "authenticator", "code": code(&srv, &secret)})),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    let (s, _) = srv
        .call(GET, &format!("/users/{id}/export"), Some(&token), None)
        .await;
    assert_eq!(s, 200);
    let (s, _) = srv
        .call(DELETE, &format!("/users/{id}/mfa/totp"), Some(&token), None)
        .await;
    assert_eq!(s, 204);
    assert!(
        event_kinds(&srv, &id)
            .await
            .contains(&"mfa_removed".to_owned())
    );
}

/// A minimal SMTP server: accepts every message and passes its text on.
async fn smtp_server() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"220 test ESMTP\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = &mut data {
                        if line == "." {
                            let _ = tx.send(std::mem::take(body));
                            data = None;
                            w.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 test\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            w.write_all(b"221 bye\r\n").await.unwrap();
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    w.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, rx)
}

/// Asks for a code by email for `challenge` and reads it from the next mail the SMTP
/// server receives (addressed to the user, the code in the subject).
async fn email_code(
    srv: &TestServer,
    inbox: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    challenge: &Value,
) -> String {
    let (s, sent) = srv
        .call(
            POST,
            "/auth/login/mfa/email",
            None,
            Some(json!({"challenge": challenge["challenge"]})),
        )
        .await;
    assert_eq!(s, 202, "{sent}");
    let mail = tokio::time::timeout(Duration::from_secs(10), inbox.recv())
        .await
        .expect("no email within 10 s")
        .unwrap();
    assert!(mail.contains("corp@example.com"), "{mail}");
    let subject = mail
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap();
    let code = subject.rsplit(' ').next().unwrap().trim().to_owned();
    assert_eq!(code.len(), 6, "{subject}");
    code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_code_login_over_smtp_and_zero_trust_binding() {
    let (port, mut inbox) = smtp_server().await;
    let srv = TestServer::start(&format!(
        "[notify]\nemail = \"smtp\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\n\
         [server]\ntrusted_proxies = [\"127.0.0.1\"]\n"
    ))
    .await;
    let (s, body) = srv
        .call(
            POST,
            "/users",
            Some(ADMIN_KEY),
            Some(json!({"email": "corp@example.com", "password": PW, "tier": "enterprise"})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let office = [
        ("x-forwarded-for", "198.51.100.7"),
        ("x-device-id", "laptop-1"),
    ];
    let (s, c) = login(&srv, "corp@example.com", &office).await;
    assert_eq!(
        s, 202,
        "zero trust asks every login for a second factor: {c}"
    );
    assert_eq!(c["reason"], "zero_trust_tier");
    assert_eq!(
        c["methods"],
        json!(["email"]),
        "nothing enrolled: email it is"
    );
    let code = email_code(&srv, &mut inbox, &c).await;
    // Asking again at once is too soon.
    let (s, p) = srv
        .call(
            POST,
            "/auth/login/mfa/email",
            None,
            Some(json!({"challenge": c["challenge"]})),
        )
        .await;
    assert_eq!(s, 429, "{p}");
    let (s, ok) = complete(&srv, &c, "email", &code).await;
    assert_eq!(s, 200, "{ok}");
    let token = ok["token"].as_str().unwrap().to_owned();

    // The session is bound to the laptop on the office network.
    let (s, _) = srv
        .call_with(GET, "/users/me", Some(&token), None, &office)
        .await;
    assert_eq!(s, 200);
    let (s, sessions) = srv
        .call_with(
            GET,
            &format!("/users/{id}/sessions"),
            Some(&token),
            None,
            &office,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(sessions[0]["bound"], true);
    assert_eq!(sessions[0]["mfa"], true);
    assert_eq!(sessions[0]["network"], "198.51.100.0/24");
    assert_eq!(sessions[0]["device_id"], "laptop-1");
    // Another device: refused, and the session ends.
    let (s, p) = srv
        .call_with(
            GET,
            "/users/me",
            Some(&token),
            None,
            &[
                ("x-forwarded-for", "198.51.100.7"),
                ("x-device-id", "phone-9"),
            ],
        )
        .await;
    assert_eq!(
        (s, p["type"].as_str()),
        (401, Some("https://roster.dev/problems/session-refused")),
        "{p}"
    );
    let (s, _) = srv
        .call_with(GET, "/users/me", Some(&token), None, &office)
        .await;
    assert_eq!(s, 401, "the session ended");

    // A second session, then presented from another network: refused too.
    let (_, c) = login(&srv, "corp@example.com", &office).await;
    let code = email_code(&srv, &mut inbox, &c).await;
    let (s, ok) = complete(&srv, &c, "email", &code).await;
    assert_eq!(s, 200, "{ok}");
    let token = ok["token"].as_str().unwrap().to_owned();
    let (s, _) = srv
        .call_with(
            GET,
            "/users/me",
            Some(&token),
            None,
            &[
                ("x-forwarded-for", "203.0.113.50"),
                ("x-device-id", "laptop-1"),
            ],
        )
        .await;
    assert_eq!(s, 401);
    let kinds = event_kinds(&srv, &id).await;
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "session_binding_violated")
            .count(),
        2,
        "{kinds:?}"
    );
}

fn geo(
    ip: &'static str,
    device: &'static str,
    country: &'static str,
    lat: &'static str,
    lon: &'static str,
) -> [(&'static str, &'static str); 5] {
    [
        ("x-forwarded-for", ip),
        ("x-device-id", device),
        ("x-geo-country", country),
        ("x-geo-lat", lat),
        ("x-geo-lon", lon),
    ]
}

const GEO: &str = "[server]\ntrusted_proxies = [\"127.0.0.1\"]\ngeo_country_header = \"X-Geo-Country\"\n\
                   geo_latitude_header = \"X-Geo-Lat\"\ngeo_longitude_header = \"X-Geo-Lon\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_travel_requires_mfa_and_known_places_do_not() {
    let srv = TestServer::start(GEO).await;
    let (id, _) = srv.user("traveller@example.com", "free").await;
    let paris = geo("198.51.100.7", "laptop", "FR", "48.8566", "2.3522");
    let (s, ok) = login(&srv, "traveller@example.com", &paris).await;
    assert_eq!(s, 200, "first login from Paris: {ok}");
    // Known device and network, a day later: no second factor.
    srv.clock.advance(Duration::from_secs(86_400));
    let (s, ok) = login(&srv, "traveller@example.com", &paris).await;
    assert_eq!(s, 200, "{ok}");
    // An hour later from New York on a new phone: impossible travel.
    srv.clock.advance(Duration::from_secs(3600));
    let ny = geo("203.0.113.5", "phone", "US", "40.7128", "-74.0060");
    let (s, c) = login(&srv, "traveller@example.com", &ny).await;
    assert_eq!(s, 202, "{c}");
    assert_eq!(c["reason"], "risk");
    let (_, events) = srv
        .call(
            GET,
            &format!("/users/{id}/security-events?limit=1"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    let e = &events[0];
    assert_eq!(e["kind"], "login_challenged");
    let risk = &e["risk"];
    assert!(risk["score"].as_f64().unwrap() >= 0.9, "{risk}");
    assert_eq!(risk["decision"], "require_mfa");
    let signals: Vec<&str> = risk["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    for k in [
        "impossible_travel",
        "new_country",
        "new_network",
        "new_device",
    ] {
        assert!(signals.contains(&k), "{k} in {signals:?}");
    }
    assert!(risk.to_string().contains("FR to US"), "{risk}");
    assert_eq!(e["location"]["country"], "US");
    // The user is told, with the reasons.
    let mut told = String::new();
    for _ in 0..100 {
        told = std::fs::read_to_string(srv.dir().join("outbox.jsonl")).unwrap_or_default();
        if told.contains("unusual_sign_in") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mail = told
        .lines()
        .find(|l| l.contains("unusual_sign_in"))
        .expect("no unusual sign-in email");
    assert!(
        mail.contains("traveller@example.com") && mail.contains("impossible travel"),
        "{mail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_over_the_deny_score_looks_like_a_wrong_password_and_alerts_the_user() {
    let srv = TestServer::start(&format!("{GEO}[risk]\ndeny_score = 0.9\n")).await;
    let (id, _) = srv.user("denied@example.com", "free").await;
    let paris = geo("198.51.100.7", "laptop", "FR", "48.8566", "2.3522");
    assert_eq!(login(&srv, "denied@example.com", &paris).await.0, 200);
    srv.clock.advance(Duration::from_secs(3600));
    let ny = geo("203.0.113.5", "phone", "US", "40.7128", "-74.0060");
    let (s, denied) = login(&srv, "denied@example.com", &ny).await;
    let (s2, wrong) = srv
        .call_with(
            POST,
            "/auth/login",
            None,
            Some(json!({"email": "denied@example.com", "password": "not the password at all"})),
            &ny,
        )
        .await;
    assert_eq!(
        (s, &denied),
        (s2, &wrong),
        "a risk denial must not reveal the password was right"
    );
    let kinds = event_kinds(&srv, &id).await;
    assert!(kinds.contains(&"login_denied".to_owned()), "{kinds:?}");
    // The user hears of it by email (the outbox, in this configuration).
    let mut alerted = false;
    for _ in 0..100 {
        let text = std::fs::read_to_string(srv.dir().join("outbox.jsonl")).unwrap_or_default();
        if text.contains("\"kind\":\"login_blocked\"") && text.contains("denied@example.com") {
            alerted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(alerted, "no blocked-login email");
    // Operators see the decision in the metrics, without any user in the labels.
    let metrics = srv.metrics_page().await;
    for line in [
        "roster_logins_total{outcome=\"risk_denied\"} 1",
        "roster_risk_decisions_total{decision=\"deny\"} 1",
        "roster_risk_signals_total{signal=\"impossible_travel\"} 1",
        "roster_emails_total{kind=\"login_blocked\",outcome=\"queued\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing");
    }
    assert!(!metrics.contains("denied@example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_moving_to_a_risky_network_must_step_up_or_ends() {
    for (deny_score, ends) in [(0.95, false), (0.85, true)] {
        let srv = TestServer::start(&format!("{GEO}[risk]\ndeny_score = {deny_score}\n")).await;
        let (id, _) = srv.user("mover@example.com", "free").await;
        let paris = geo("198.51.100.7", "laptop", "FR", "48.8566", "2.3522");
        let (s, ok) = login(&srv, "mover@example.com", &paris).await;
        assert_eq!(s, 200, "{ok}");
        let token = ok["token"].as_str().unwrap().to_owned();
        let me = |h: [(&'static str, &'static str); 5]| {
            let (srv, token) = (&srv, token.clone());
            async move {
                srv.call_with(GET, "/users/me", Some(&token), None, &h)
                    .await
                    .0
            }
        };
        // Same network, another address in it: nothing happens.
        assert_eq!(
            me(geo("198.51.100.99", "laptop", "FR", "48.8566", "2.3522")).await,
            200
        );
        srv.clock.advance(Duration::from_secs(300));
        let (s, _) = srv
            .call_with(
                GET,
                &format!("/users/{id}/export"),
                Some(&token),
                None,
                &paris,
            )
            .await;
        assert_eq!(s, 200, "a fresh login may export");
        // Five minutes later the session shows up in New York: new network and country,
        // and impossible travel, scored 0.90.
        let ny = geo("203.0.113.5", "laptop", "US", "40.7128", "-74.0060");
        let status = me(ny).await;
        let kinds = event_kinds(&srv, &id).await;
        assert_eq!(kinds[0], "session_context_changed", "{kinds:?}");
        if ends {
            assert_eq!(status, 401, "deny ends the session");
            assert_eq!(me(paris).await, 401);
        } else {
            assert_eq!(status, 200, "require_mfa keeps the session");
            let (s, p) = srv
                .call_with(GET, &format!("/users/{id}/export"), Some(&token), None, &ny)
                .await;
            assert_eq!(s, 403, "but sensitive operations need a step-up: {p}");
            // The new network is the session's now: no second event.
            assert_eq!(me(ny).await, 200);
            let again = event_kinds(&srv, &id).await;
            assert_eq!(again.len(), kinds.len(), "{again:?}");
        }
    }
}

/// An SMS gateway's webhook: every POSTed `{to, body}` is passed on.
async fn sms_gateway() -> (u16, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/sms",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(v);
                "queued"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, rx)
}

async fn texted_code(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Value>) -> (String, String) {
    let m = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no SMS within 10 s")
        .unwrap();
    let body = m["body"].as_str().unwrap();
    let code = body.split(' ').next().unwrap().to_owned();
    (m["to"].as_str().unwrap().to_owned(), code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_codes_through_a_webhook_gateway() {
    let (port, mut texts) = sms_gateway().await;
    let srv = TestServer::start(&format!(
        "[notify]\nsms = \"webhook\"\nsms_webhook_url = \"http://127.0.0.1:{port}/sms\"\n"
    ))
    .await;
    let (id, token) = srv.user("texter@example.com", "premium").await;
    let path = format!("/users/{id}/mfa/sms");
    let (s, p) = srv
        .call(
            POST,
            &path,
            Some(&token),
            Some(json!({"phone": "555-0100"})),
        )
        .await;
    assert_eq!((s, p["field"].as_str()), (400, Some("phone")), "{p}");
    let (s, p) = srv
        .call(
            POST,
            &path,
            Some(&token),
            Some(json!({"phone": "+1 555 010 0123"})),
        )
        .await;
    assert_eq!(s, 202, "{p}");
    let (to, code) = texted_code(&mut texts).await;
    assert_eq!(to, "+15550100123");
    let confirm = format!("/users/{id}/mfa/sms/confirm");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (s, _) = srv
        .call(POST, &confirm, Some(&token), Some(json!({"code": wrong})))
        .await;
    assert_eq!(s, 400);
    let (s, r) = srv
        .call(POST, &confirm, Some(&token), Some(json!({"code": code})))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["recovery_codes"].as_array().unwrap().len(), 10);
    let (_, m) = srv
        .call(GET, &format!("/users/{id}/mfa"), Some(&token), None)
        .await;
    assert_eq!(m["phone"], "+15550100123");

    let (s, _) = srv
        .call(
            PUT,
            &format!("/users/{id}"),
            Some(&token),
            Some(json!({"security_settings": {"require_mfa": true, "mfa_methods": ["sms"]}})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, c) = login(&srv, "texter@example.com", &[]).await;
    assert_eq!(s, 202, "{c}");
    assert_eq!(c["methods"], json!(["sms", "recovery_code"]));
    // Email is not offered to this user: asking for it is a conflict.
    let (s, _) = srv
        .call(
            POST,
            "/auth/login/mfa/email",
            None,
            Some(json!({"challenge": c["challenge"]})),
        )
        .await;
    assert_eq!(s, 409);
    let (s, p) = srv
        .call(
            POST,
            "/auth/login/mfa/sms",
            None,
            Some(json!({"challenge": c["challenge"]})),
        )
        .await;
    assert_eq!(s, 202, "{p}");
    let (to, code) = texted_code(&mut texts).await;
    assert_eq!(to, "+15550100123");
    // The texted code answers for sms only.
    let (s, _) = complete(&srv, &c, "email", &code).await;
    assert_eq!(s, 400, "email is not offered: {code}");
    let (s, ok) = complete(&srv, &c, "sms", &code).await;
    assert_eq!(s, 200, "{ok}");
    let (s, _) = srv.call(DELETE, &path, Some(&token), None).await;
    assert_eq!(s, 204);
    let (s, _) = srv.call(DELETE, &path, Some(&token), None).await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_evicted_by_the_cap_are_in_the_security_history() {
    let srv = TestServer::start("[engine]\nmax_sessions_per_user = 2\n").await;
    let (id, first) = srv.user("crowded@example.com", "free").await;
    for _ in 0..2 {
        assert_eq!(login(&srv, "crowded@example.com", &[]).await.0, 200);
    }
    assert_eq!(srv.call(GET, "/users/me", Some(&first), None).await.0, 401);
    let (_, events) = srv
        .call(
            GET,
            &format!("/users/{id}/security-events"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    let evicted: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "session_revoked")
        .collect();
    assert_eq!(evicted.len(), 1, "{events}");
    assert!(evicted[0]["detail"].as_str().unwrap().contains("evicted"));
}
