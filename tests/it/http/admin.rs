//! The operator's endpoints: import and the audit log.

use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_import_creates_good_users_and_reports_bad_ones() {
    let srv = TestServer::start("").await;
    let (_, token) = srv.user("someone@example.com", "free").await;
    let phc =
        "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$0xLBqsxyeRyBh4S8YF5ZxvKlEh9aQXbmHbbEU0NwjXc";
    let body = json!({"users": [
        {"email": "imported@example.com", "password_hash": phc, "tier": "vip"},
        {"email": "someone@example.com", "password_hash": phc},
        {"email": "bad-hash@example.com", "password_hash": "plaintext"},
    ]});
    let (s, reply) = srv
        .call(
            POST,
            "/admin/users/import",
            Some(&token),
            Some(body.clone()),
        )
        .await;
    is_problem(&reply, 403, "forbidden");
    assert_eq!(s, 403);
    let (s, reply) = srv
        .call(POST, "/admin/users/import", Some(ADMIN_KEY), Some(body))
        .await;
    assert_eq!(s, 200, "{reply}");
    assert_eq!(reply["created"].as_array().unwrap().len(), 1);
    assert_eq!(reply["created"][0]["index"], 0);
    let failed = reply["failed"].as_array().unwrap();
    assert_eq!(
        (failed[0]["index"].as_u64(), failed[0]["kind"].as_str()),
        (Some(1), Some("email-taken"))
    );
    assert_eq!(
        (failed[1]["index"].as_u64(), failed[1]["kind"].as_str()),
        (Some(2), Some("invalid-input"))
    );
    let id = reply["created"][0]["id"].as_str().unwrap();
    let (s, user) = srv
        .call(GET, &format!("/users/{id}"), Some(ADMIN_KEY), None)
        .await;
    assert_eq!((s, user["tier"].as_str()), (200, Some("vip")));
    let none = json!({"users": []});
    let (s, reply) = srv
        .call(POST, "/admin/users/import", Some(ADMIN_KEY), Some(none))
        .await;
    assert_eq!(s, 400, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_and_security_actions_land_in_a_verifiable_audit_log() {
    let srv = TestServer::start("").await;
    let (id, token) = srv.user("audited@example.com", "free").await;
    let admin = Some(ADMIN_KEY);
    assert_eq!(
        srv.call(GET, &format!("/users/{id}"), admin, None).await.0,
        200
    );
    // The user reading itself is not an audit event.
    assert_eq!(
        srv.call(GET, &format!("/users/{id}"), Some(&token), None)
            .await
            .0,
        200
    );
    let upgrade = json!({"new_tier": "premium"});
    let path = format!("/users/{id}/upgrade");
    assert_eq!(srv.call(POST, &path, admin, Some(upgrade)).await.0, 200);
    assert_eq!(
        srv.call(GET, &format!("/users/{id}/sessions"), admin, None)
            .await
            .0,
        200
    );
    assert_eq!(
        srv.call(DELETE, &format!("/users/{id}"), Some(&token), None)
            .await
            .0,
        204
    );

    let (s, body) = srv.call(GET, "/admin/audit", Some(&token), None).await;
    assert_eq!(s, 401, "the deleted user's token is gone: {body}");
    let (_, other) = srv.user("nosy@example.com", "free").await;
    assert_eq!(
        srv.call(GET, "/admin/audit", Some(&other), None).await.0,
        403
    );
    assert_eq!(
        srv.call(GET, "/admin/audit?limit=0", admin, None).await.0,
        400
    );
    let (s, log) = srv.call(GET, "/admin/audit", admin, None).await;
    assert_eq!(s, 200, "{log}");
    let log = log.as_array().unwrap();
    let kinds: Vec<(&str, &str)> = log
        .iter()
        .map(|e| {
            (
                e["actor"]["kind"].as_str().unwrap(),
                e["action"]["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("operator", "user_created"),
            ("operator", "user_read"),
            ("operator", "tier_changed"),
            ("operator", "user_read"),
            ("user", "user_deleted"),
            ("operator", "user_created"),
        ]
    );
    assert_eq!(log[2]["action"]["to"], "premium");
    assert_eq!(log[4]["action"]["user"], id.as_str());
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1);
        if i > 0 {
            assert_eq!(e["prev_hash"], log[i - 1]["hash"]);
        }
    }
    assert!(
        !serde_json::Value::Array(log.clone())
            .to_string()
            .contains("@example.com")
    );
    let (_, page) = srv
        .call(GET, "/admin/audit?after=2&limit=1", admin, None)
        .await;
    assert_eq!(page[0]["seq"], 3);
    assert_eq!(
        srv.manager.ops().verify_audit(&SYS),
        Ok(roster::engine::AuditVerdict::Intact { records: 6 })
    );
}
