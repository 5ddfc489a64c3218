//! WebAuthn over HTTP with a software authenticator: registration, passwordless login,
//! a passkey as second factor and for step-up, and the refusals (replay, wrong origin,
//! another user's assertion, unknown accounts).

use reqwest::Method;
use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::prelude::Url;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use roster::security::passkey::{CreationChallengeResponse, RequestChallengeResponse};

use crate::support::{ADMIN_KEY, PW, TestServer};

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PUT: Method = Method::PUT;
const DELETE: Method = Method::DELETE;

/// The origin of `config/default.toml`'s `[webauthn]`.
fn origin() -> Url {
    Url::parse("http://localhost:8080").unwrap()
}

/// Registers a new software passkey for the user; returns it and the credential id.
async fn register(srv: &TestServer, id: &str, token: &str) -> (SoftPasskey, String, Value) {
    let (s, o) = srv
        .call(
            POST,
            &format!("/users/{id}/webauthn/register"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(s, 200, "{o}");
    let ccr: CreationChallengeResponse = serde_json::from_value(o["options"].clone()).unwrap();
    let mut key = SoftPasskey::new(true);
    let reg = key.do_registration(origin(), ccr).unwrap();
    let (s, r) = srv
        .call(
            POST,
            &format!("/users/{id}/webauthn/register/finish"),
            Some(token),
            Some(json!({"name": "soft key", "credential": reg})),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let (_, m) = srv
        .call(GET, &format!("/users/{id}/mfa"), Some(token), None)
        .await;
    let cred = m["passkeys"].as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (key, cred, r)
}

fn assert_with(key: &mut SoftPasskey, options: &Value, at: Url) -> Option<Value> {
    let rcr: RequestChallengeResponse = serde_json::from_value(options.clone()).unwrap();
    key.do_authentication(at, rcr)
        .ok()
        .map(|c| serde_json::to_value(c).unwrap())
}

async fn start(srv: &TestServer, email: &str) -> Value {
    let (s, b) = srv
        .call(
            POST,
            "/auth/passkey/start",
            None,
            Some(json!({"email": email})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b
}

async fn finish(srv: &TestServer, start: &Value, credential: &Value) -> (u16, Value) {
    srv.call(
        POST,
        "/auth/passkey/finish",
        None,
        Some(json!({"challenge": start["challenge"], "credential": credential})),
    )
    .await
}

/// The JSON's shape: every key path, without the values.
fn shape(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{prefix}.{k}");
                out.push(p.clone());
                shape(x, &p, out);
            }
        }
        Value::Array(a) => {
            for x in a {
                shape(x, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

fn shape_of(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    shape(v, "", &mut out);
    out.sort();
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_registration_and_passwordless_login_with_refusals() {
    let srv = TestServer::start("").await;
    let (id, token) = srv.user("passkey@example.com", "free").await;
    let (mut key, cred, reg) = register(&srv, &id, &token).await;
    assert_eq!(
        reg["recovery_codes"].as_array().unwrap().len(),
        10,
        "the first factor comes with recovery codes"
    );

    // Passwordless login.
    let st = start(&srv, "passkey@example.com").await;
    let assertion = assert_with(&mut key, &st["options"], origin()).unwrap();
    let (s, ok) = finish(&srv, &st, &assertion).await;
    assert_eq!(s, 200, "{ok}");
    let session = ok["token"].as_str().unwrap().to_owned();
    let (s, sessions) = srv
        .call(GET, &format!("/users/{id}/sessions"), Some(&session), None)
        .await;
    assert_eq!(s, 200);
    assert!(
        sessions
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["mfa"] == true)
    );

    // A replayed assertion, against a new challenge: refused.
    let st2 = start(&srv, "passkey@example.com").await;
    let (s, p) = finish(&srv, &st2, &assertion).await;
    assert_eq!(s, 401, "replay: {p}");
    // The same challenge cannot be completed twice either.
    let (s, _) = finish(&srv, &st, &assertion).await;
    assert_eq!(s, 401);

    // An assertion made for another origin (another port of the same host): refused.
    let wrong = assert_with(
        &mut key,
        &st2["options"],
        Url::parse("http://localhost:9999").unwrap(),
    )
    .unwrap();
    let (s, p) = finish(&srv, &st2, &wrong).await;
    assert_eq!(s, 401, "wrong origin: {p}");

    // Another user's assertion for that user's own challenge, sent to ours: refused.
    let (oid, otoken) = srv.user("other@example.com", "free").await;
    let (mut other_key, _, _) = register(&srv, &oid, &otoken).await;
    let theirs = start(&srv, "other@example.com").await;
    let their_assertion = assert_with(&mut other_key, &theirs["options"], origin()).unwrap();
    let st3 = start(&srv, "passkey@example.com").await;
    let (s, p) = finish(&srv, &st3, &their_assertion).await;
    assert_eq!(s, 401, "another user's assertion: {p}");
    let kinds: Vec<String> = {
        let (_, e) = srv
            .call(
                GET,
                &format!("/users/{id}/security-events"),
                Some(ADMIN_KEY),
                None,
            )
            .await;
        e.as_array()
            .unwrap()
            .iter()
            .map(|x| x["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(kinds.contains(&"mfa_failed".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"mfa_enrolled".to_owned()), "{kinds:?}");

    // Malformed credentials are a 400, not a 500.
    let (s, p) = srv
        .call(
            POST,
            "/auth/passkey/finish",
            None,
            Some(json!({"challenge": st3["challenge"], "credential": {"id": 5}})),
        )
        .await;
    assert_eq!(s, 400, "{p}");
    let (s, _) = srv
        .call(
            POST,
            &format!("/users/{id}/webauthn/register/finish"),
            Some(&token),
            Some(json!({"name": "x", "credential": "not a credential"})),
        )
        .await;
    assert_eq!(s, 400);

    // An unknown email gets options of the same shape, stable across calls, and a
    // challenge that never completes.
    let ghost = start(&srv, "nobody@example.com").await;
    let real = start(&srv, "passkey@example.com").await;
    assert_eq!(shape_of(&ghost), shape_of(&real), "{ghost} vs {real}");
    let ghost2 = start(&srv, "nobody@example.com").await;
    let ids = |v: &Value| v["options"]["publicKey"]["allowCredentials"].clone();
    assert_eq!(ids(&ghost), ids(&ghost2));
    let (s, _) = finish(&srv, &ghost, &assertion).await;
    assert_eq!(s, 401);

    // Listed, and removable after a step-up with the passkey itself.
    let (s, _) = srv
        .call(POST, "/auth/step-up/webauthn", Some(&session), None)
        .await;
    assert_eq!(s, 200);
    srv.clock.advance(std::time::Duration::from_secs(601));
    let path = format!("/users/{id}/webauthn/{cred}");
    let (s, _) = srv.call(DELETE, &path, Some(&session), None).await;
    assert_eq!(s, 403, "step-up first");
    let (s, o) = srv
        .call(POST, "/auth/step-up/webauthn", Some(&session), None)
        .await;
    assert_eq!(s, 200, "{o}");
    let a = assert_with(&mut key, &o["options"], origin()).unwrap();
    let (s, p) = srv
        .call(
            POST,
            "/auth/step-up",
            Some(&session),
            Some(json!({"password": PW, "method": "webauthn", "credential": a})),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    let (s, _) = srv.call(DELETE, &path, Some(&session), None).await;
    assert_eq!(s, 204);
    let (s, _) = srv.call(DELETE, &path, Some(&session), None).await;
    assert_eq!(s, 404);
    let (_, m) = srv
        .call(GET, &format!("/users/{id}/mfa"), Some(&session), None)
        .await;
    assert_eq!(m["passkeys"], json!([]));
    assert_eq!(
        m["recovery_codes_left"], 0,
        "no factor left, no recovery codes"
    );
    // With no passkey, a passwordless start is the decoy: it never completes.
    let st4 = start(&srv, "passkey@example.com").await;
    let a = assert_with(&mut key, &st4["options"], origin());
    if let Some(a) = a {
        assert_eq!(finish(&srv, &st4, &a).await.0, 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_answers_a_login_challenge_as_second_factor() {
    let srv = TestServer::start("").await;
    let (id, token) = srv.user("second@example.com", "premium").await;
    let (mut key, _, _) = register(&srv, &id, &token).await;
    let (s, _) = srv
        .call(
            PUT,
            &format!("/users/{id}"),
            Some(&token),
            Some(json!({"security_settings": {"require_mfa": true}})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, c) = srv
        .call(
            POST,
            "/auth/login",
            None,
            Some(json!({"email": "second@example.com", "password": PW})),
        )
        .await;
    assert_eq!(s, 202, "{c}");
    assert_eq!(c["methods"][0], "webauthn", "{c}");
    // A code where an assertion is due: 400, nothing counted.
    let (s, p) = srv
        .call(
            POST,
            "/auth/login/mfa",
            None,
            Some(json!({"challenge": c["challenge"], "method": "webauthn", "code": "123456"})),
        )
        .await;
    assert_eq!((s, p["field"].as_str()), (400, Some("credential")), "{p}");
    // The options for this challenge, then the assertion.
    let (s, o) = srv
        .call(
            POST,
            "/auth/login/mfa/webauthn",
            None,
            Some(json!({"challenge": c["challenge"]})),
        )
        .await;
    assert_eq!(s, 200, "{o}");
    let a = assert_with(&mut key, &o["options"], origin()).unwrap();
    let (s, ok) = srv
        .call(
            POST,
            "/auth/login/mfa",
            None,
            Some(json!({"challenge": c["challenge"], "method": "webauthn", "credential": a})),
        )
        .await;
    assert_eq!(s, 200, "{ok}");
    // The zero-trust tier takes a passkey too: an Enterprise user logs in without a
    // password prompt's second step.
    let (s, _) = srv
        .call(
            POST,
            &format!("/users/{id}/upgrade"),
            Some(ADMIN_KEY),
            Some(json!({"new_tier": "enterprise"})),
        )
        .await;
    assert_eq!(s, 200);
    let st = start(&srv, "second@example.com").await;
    let a = assert_with(&mut key, &st["options"], origin()).unwrap();
    let (s, ok) = finish(&srv, &st, &a).await;
    assert_eq!(s, 200, "{ok}");
}

/// Every string in `v` (keys' values, arrays' items), with its key path.
fn strings(v: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, x)| strings(x, &format!("{prefix}.{k}"), out)),
        Value::Array(a) => a
            .iter()
            .for_each(|x| strings(x, &format!("{prefix}[]"), out)),
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passwordless_start_tells_nothing_about_the_account() {
    let srv = TestServer::start("").await;
    let (id, token) = srv.user("haskey@example.com", "free").await;
    let (mut key, _, _) = register(&srv, &id, &token).await;
    let (plain_id, _) = srv.user("nokey@example.com", "free").await;
    let uuid: uuid::Uuid = id.parse().unwrap();
    let encodings = |u: &uuid::Uuid| {
        use base64::Engine as _;
        let b = u.as_bytes();
        vec![
            u.to_string(),
            u.simple().to_string(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b),
            base64::engine::general_purpose::STANDARD.encode(b),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&b[..12]),
        ]
    };
    let lengths = |v: &Value| {
        let mut out = Vec::new();
        strings(v, "", &mut out);
        out.into_iter()
            .map(|(k, s)| (k, s.len()))
            .collect::<Vec<_>>()
    };
    let real = [
        start(&srv, "haskey@example.com").await,
        start(&srv, "haskey@example.com").await,
    ];
    let unknown = [
        start(&srv, "ghost@example.com").await,
        start(&srv, "ghost@example.com").await,
    ];
    let without = [
        start(&srv, "nokey@example.com").await,
        start(&srv, "nokey@example.com").await,
    ];
    for pair in [&unknown, &without] {
        for (r, d) in real.iter().zip(pair.iter()) {
            assert_eq!(shape_of(r), shape_of(d), "{r} vs {d}");
            assert_eq!(lengths(r), lengths(d), "{r} vs {d}");
        }
    }
    let ids = |v: &Value| v["options"]["publicKey"]["allowCredentials"].clone();
    for pair in [&real, &unknown, &without] {
        assert_eq!(ids(&pair[0]), ids(&pair[1]), "credentials stable per email");
        assert_ne!(
            pair[0]["challenge"], pair[1]["challenge"],
            "challenges fresh"
        );
    }
    assert_ne!(
        ids(&unknown[0]),
        ids(&without[0]),
        "decoys differ per email"
    );
    // No answer contains the account's id, in any of the usual encodings (nor the
    // other account's).
    let plain_uuid: uuid::Uuid = plain_id.parse().unwrap();
    for v in real.iter().chain(&unknown).chain(&without) {
        let text = v.to_string();
        for enc in encodings(&uuid).into_iter().chain(encodings(&plain_uuid)) {
            assert!(!text.contains(&enc), "{enc} in {text}");
        }
    }
    // The follow-ups answer alike too: WebAuthn options again, no codes, another
    // method refused by name, a wrong assertion counted down.
    let (_, other_token) = srv.user("elsewhere@example.com", "free").await;
    let other_id = srv.call(GET, "/users/me", Some(&other_token), None).await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut other_key, _, _) = register(&srv, &other_id, &other_token).await;
    let theirs = start(&srv, "elsewhere@example.com").await;
    let wrong = assert_with(&mut other_key, &theirs["options"], origin()).unwrap();
    let follow_ups = |st: Value| {
        let (srv, wrong) = (&srv, wrong.clone());
        async move {
            let c = st["challenge"].clone();
            let mut out = Vec::new();
            let (s, b) = srv
                .call(
                    POST,
                    "/auth/login/mfa/webauthn",
                    None,
                    Some(json!({"challenge": c})),
                )
                .await;
            out.push((s, shape_of(&b), lengths(&b)));
            let (s, b) = srv
                .call(
                    POST,
                    "/auth/login/mfa/email",
                    None,
                    Some(json!({"challenge": c})),
                )
                .await;
            out.push((s, shape_of(&b), vec![(b["type"].to_string(), 0)]));
            let (s, b) = srv
                .call(
                    POST,
                    "/auth/login/mfa",
                    None,
                    Some(json!({"challenge": c, "method": "authenticator", "code": "123456"})),
                )
                .await;
            out.push((s, shape_of(&b), vec![(b["detail"].to_string(), 0)]));
            for _ in 0..6 {
                let (s, b) = finish(srv, &st, &wrong).await;
                out.push((s, shape_of(&b), vec![(b.to_string(), 0)]));
            }
            out
        }
    };
    let real_answers = follow_ups(start(&srv, "haskey@example.com").await).await;
    assert_eq!(real_answers[0].0, 200, "options for the real challenge");
    for email in ["ghost@example.com", "nokey@example.com"] {
        let decoy_answers = follow_ups(start(&srv, email).await).await;
        assert_eq!(real_answers, decoy_answers, "{email}");
    }
    // The sealed challenge still completes for the real account.
    let assertion = assert_with(&mut key, &real[1]["options"], origin()).unwrap();
    let (s, ok) = finish(&srv, &real[1], &assertion).await;
    assert_eq!(s, 200, "{ok}");
    // A login's second-step challenge names nobody either.
    let (_, vip) = srv
        .call(
            POST,
            "/users",
            Some(ADMIN_KEY),
            Some(json!({"email": "zt@example.com", "password": PW, "tier": "vip"})),
        )
        .await;
    let (s, c) = srv
        .call(
            POST,
            "/auth/login",
            None,
            Some(json!({"email": "zt@example.com", "password": PW})),
        )
        .await;
    assert_eq!(s, 202, "zero trust asks for a second factor: {c}");
    let vip_uuid: uuid::Uuid = vip["id"].as_str().unwrap().parse().unwrap();
    for enc in encodings(&vip_uuid) {
        assert!(!c["challenge"].as_str().unwrap().contains(&enc), "{c}");
    }
}
