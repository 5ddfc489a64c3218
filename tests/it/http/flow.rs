//! Whole flows: the seed's, ending sessions, the data export.

use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_flow_over_http() {
    let srv = TestServer::start("").await;
    let (s, created) = srv
        .call(
            POST,
            "/users",
            Some(ADMIN_KEY),
            Some(json!({
                "email": "user@example.com", "password": PW, "tier": "premium",
                "profile_data": {"display_name": "John Doe", "language": "en", "timezone": "UTC"}
            })),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["tier"], "premium");
    assert!(created.get("password_hash").is_none() && !created.to_string().contains("argon2"));
    let id = created["id"].as_str().unwrap();

    let (s, login) = srv
        .call(
            POST,
            "/auth/login",
            None,
            Some(json!({"email": "user@example.com", "password": PW,
                "context": {"ip_address": "192.168.1.1", "user_agent": "Mozilla/5.0", "device_id": "device_123"}})),
        )
        .await;
    assert_eq!(s, 200, "{login}");
    assert_eq!(login["user"]["id"], id);
    assert!(login["expires_at"].is_string());
    let token = login["token"].as_str().unwrap();
    // Read before the changes: the server keeps this rendering, and must drop it when
    // the profile changes.
    let (s, me) = srv.call(GET, "/users/me", Some(token), None).await;
    assert_eq!((s, me["display_name"].as_str()), (200, Some("John Doe")));

    let (s, updated) = srv
        .call(
            PUT,
            &format!("/users/{id}"),
            Some(token),
            Some(json!({"display_name": "Jane Doe",
                "ai_preferences": {"personalization_level": "advanced", "mood_detection_enabled": true}})),
        )
        .await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated["display_name"], "Jane Doe");
    assert_eq!(
        updated["ai_preferences"]["personalization_level"],
        "advanced"
    );

    let usage = json!({"kind": "playlists", "delta": 2});
    let (s, _) = srv
        .call(
            POST,
            &format!("/users/{id}/usage"),
            Some(token),
            Some(usage),
        )
        .await;
    assert_eq!(s, 200);
    for path in ["/users/me".to_owned(), format!("/users/{id}")] {
        let (s, me) = srv.call(GET, &path, Some(token), None).await;
        assert_eq!((s, &me["usage"]["playlists"]), (200, &json!(2)), "{path}");
    }

    let (s, up) = srv
        .call(
            POST,
            &format!("/users/{id}/upgrade"),
            Some(ADMIN_KEY),
            Some(json!({"new_tier": "enterprise"})),
        )
        .await;
    assert_eq!(s, 200, "{up}");
    assert_eq!(up["tier"], "enterprise");

    let (s, insights) = srv
        .call(GET, &format!("/users/{id}/insights"), Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 200, "{insights}");
    assert_eq!(insights["tier"], "enterprise");
    assert_eq!(insights["requests_per_hour"], 50_000);
    let (s, me) = srv
        .call(GET, &format!("/users/{id}"), Some(ADMIN_KEY), None)
        .await;
    assert_eq!((s, me["display_name"].as_str()), (200, Some("Jane Doe")));
    assert_eq!(me["tier"], "enterprise");
    assert_eq!(me["ai_preferences"]["personalization_level"], "advanced");
    assert_eq!(me["usage"]["playlists"], 2);
    // Enterprise is zero trust: the Premium login's password-only session ended with
    // the move, and the next login asks for a second factor.
    let (s, _) = srv.call(GET, "/users/me", Some(token), None).await;
    assert_eq!(s, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_password_change_and_revoke_kill_tokens_at_once() {
    let srv = TestServer::start("").await;
    let (id, t1) = srv.user("pw@example.com", "premium").await;
    let login = || async {
        let (s, b) = srv
            .call(
                POST,
                "/auth/login",
                None,
                Some(json!({"email": "pw@example.com", "password": PW})),
            )
            .await;
        assert_eq!(s, 200);
        b["token"].as_str().unwrap().to_owned()
    };
    let (t2, t3) = (login().await, login().await);

    let (s, _) = srv.call(POST, "/auth/logout", Some(&t1), None).await;
    assert_eq!(s, 204);
    assert_eq!(srv.call(GET, "/users/me", Some(&t1), None).await.0, 401);

    let (_, sessions) = srv
        .call(GET, &format!("/users/{id}/sessions"), Some(&t2), None)
        .await;
    let sid3 = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .find(|sid| t3.contains(&sid.replace('-', "")))
        .unwrap();
    let (s, _) = srv
        .call(
            DELETE,
            &format!("/users/{id}/sessions/{sid3}"),
            Some(&t2),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(srv.call(GET, "/users/me", Some(&t3), None).await.0, 401);

    let t4 = login().await;
    let (s, p) = srv
        .call(
            POST,
            &format!("/users/{id}/password"),
            Some(&t2),
            Some(json!({"current_password": "wrong wrong wrong", "new_password": "a brand new passphrase"})),
        )
        .await;
    assert_eq!(s, 400, "{p}");
    let (s, p) = srv
        .call(
            POST,
            &format!("/users/{id}/password"),
            Some(&t2),
            Some(json!({"current_password": PW, "new_password": "a brand new passphrase"})),
        )
        .await;
    assert_eq!(s, 204, "{p}");
    assert_eq!(
        srv.call(GET, "/users/me", Some(&t4), None).await.0,
        401,
        "other sessions end"
    );
    assert_eq!(
        srv.call(GET, "/users/me", Some(&t2), None).await.0,
        200,
        "the changing session stays"
    );
    let old = srv
        .call(
            POST,
            "/auth/login",
            None,
            Some(json!({"email": "pw@example.com", "password": PW})),
        )
        .await;
    assert_eq!(old.0, 401);
    let new = srv
        .call(
            POST,
            "/auth/login",
            None,
            Some(json!({"email": "pw@example.com", "password": "a brand new passphrase"})),
        )
        .await;
    assert_eq!(new.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_holds_everything_about_the_user_and_no_credentials() {
    let srv = TestServer::start("").await;
    let (id, _) = srv.user("portable@example.com", "premium").await;
    let login = json!({"email": "portable@example.com", "password": PW,
        "context": {"device_id": "phone-1", "user_agent": "Phone/1.0"}});
    let (_, body) = srv.call(POST, "/auth/login", None, Some(login)).await;
    let token = body["token"].as_str().unwrap().to_owned();
    let rename = json!({"display_name": "Porta Ble"});
    assert_eq!(
        srv.call(PUT, &format!("/users/{id}"), Some(&token), Some(rename))
            .await
            .0,
        200
    );
    let wrong = json!({"email": "portable@example.com", "password": "not the password at all"});
    assert_eq!(
        srv.call(POST, "/auth/login", None, Some(wrong)).await.0,
        401
    );

    // The operator exports first (audited), then the user.
    let (s, _) = srv
        .call(GET, &format!("/users/{id}/export"), Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 200);
    let (_, other) = srv.user("snoop@example.com", "free").await;
    let (s, _) = srv
        .call(GET, &format!("/users/{id}/export"), Some(&other), None)
        .await;
    assert_eq!(s, 403);
    let (s, doc) = srv
        .call(GET, &format!("/users/{id}/export"), Some(&token), None)
        .await;
    assert_eq!(s, 200, "{doc}");
    assert_eq!(doc["export_format"], 7);
    assert_eq!(doc["linked_accounts"], serde_json::json!([]));
    // A premium user keeps no listening log and has no models of its own.
    assert_eq!(doc["listening_log"], json!([]));
    assert_eq!(doc["own_models"]["versions"], json!([]));
    assert_eq!(doc["rate_refusals"], serde_json::json!([]));
    assert_eq!(doc["profile"]["id"], id.as_str());
    assert_eq!(doc["profile"]["email"], "portable@example.com");
    assert_eq!(doc["profile"]["display_name"], "Porta Ble");
    assert_eq!(doc["profile"]["tier"], "premium");
    assert!(
        doc["profile"]["ai_preferences"].is_object()
            && doc["profile"]["security_settings"].is_object()
    );
    assert_eq!(
        doc["sessions"].as_array().unwrap().len(),
        2,
        "two logins: {doc}"
    );
    assert!(doc["sessions"].to_string().contains("Phone/1.0"));
    assert_eq!(doc["known_devices"], json!(["phone-1"]));
    assert_eq!(doc["login_failures"]["failures"], 1);
    assert!(doc["activity"].is_object());
    let audit = doc["audit"].as_array().unwrap();
    let audited: Vec<(Option<&str>, Option<&str>)> = audit
        .iter()
        .map(|e| (e["actor"]["kind"].as_str(), e["action"]["type"].as_str()))
        .collect();
    assert_eq!(
        audited,
        [
            (Some("operator"), Some("user_created")),
            (Some("operator"), Some("data_exported"))
        ],
        "the operator's creation and export: {doc}"
    );
    assert_eq!(doc["withheld"].as_array().unwrap().len(), 7);
    // The security history: two logins and the failure, each with its client.
    let kinds: Vec<&str> = doc["security_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "login_succeeded").count(),
        2,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"login_failed"), "{kinds:?}");
    assert_eq!(doc["mfa"]["authenticator"], false);
    assert_eq!(doc["risk_profile"]["networks"], json!(["127.0.0.0/24"]));
    // No credential material: no password hash, no token or its secret hash.
    let text = doc.to_string();
    let secret = token.rsplit('.').next().unwrap();
    assert!(!text.contains("$argon2") && !text.contains(secret) && !text.contains(&token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_into_zero_trust_ends_the_sessions_without_a_second_factor() {
    let srv = TestServer::start("").await;
    let (id, token) = srv.user("climber@example.com", "premium").await;
    let (s, sessions) = srv
        .call(GET, &format!("/users/{id}/sessions"), Some(&token), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        (&sessions[0]["bound"], &sessions[0]["mfa"]),
        (&serde_json::json!(false), &serde_json::json!(false))
    );
    let (s, _) = srv
        .call(
            POST,
            &format!("/users/{id}/upgrade"),
            Some(ADMIN_KEY),
            Some(serde_json::json!({"new_tier": "enterprise"})),
        )
        .await;
    assert_eq!(s, 200);
    // Logging in before an upgrade is no way around the new tier's second factor.
    let (s, _) = srv.call(GET, "/users/me", Some(&token), None).await;
    assert_eq!(s, 401, "the password-only session ended with the move");
    let (_, events) = srv
        .call(
            GET,
            &format!("/users/{id}/security-events"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    let revoked = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "session_revoked")
        .expect("the ending is recorded");
    assert!(
        revoked["detail"].as_str().unwrap().contains("zero trust"),
        "{revoked}"
    );
    // A new login in the new tier asks for the second factor.
    let (s, c) = srv
        .call(
            POST,
            "/auth/login",
            None,
            Some(serde_json::json!({"email": "climber@example.com", "password": PW})),
        )
        .await;
    assert_eq!(s, 202, "{c}");
}
