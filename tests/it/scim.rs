//! SCIM 2.0 (issue 20): the provisioning flow identity providers document, driven over
//! HTTP against a real server, and the errors, filters and bulk limits of RFC 7644.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, PW, TestServer};

const TOKEN: &str = "okta-scim-token-0123456789abcdef0123";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ROSTER: &str = "urn:roster:params:scim:schemas:extension:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

const CONFIG: &str = r#"
[automation.scim]
max_bulk_operations = 3
max_bulk_payload = 4096
[automation.scim.clients.okta]
token = "okta-scim-token-0123456789abcdef0123"
"#;

/// A SCIM request as `token`: status, body, and the response's content type.
async fn scim(
    srv: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, String) {
    let url = format!("http://{}/scim/v2{path}", srv.host());
    let mut req = srv.http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/scim+json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let media = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        media,
    )
}

fn okta_user(email: &str, external: &str) -> Value {
    json!({
        "schemas": [USER],
        "userName": email,
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": email, "type": "work"}],
        "displayName": "Test User",
        "locale": "en_US",
        "externalId": external,
        "groups": [],
        "password": PW,
        "active": true
    })
}

async fn login(srv: &TestServer, email: &str) -> (u16, Value) {
    let body = json!({"email": email, "password": PW});
    srv.call(Method::POST, "/auth/login", None, Some(body))
        .await
}

fn assert_scim_error(body: &Value, status: &str, scim_type: Option<&str>) {
    assert_eq!(body["schemas"], json!([ERROR]), "{body}");
    assert_eq!(body["status"], json!(status), "{body}");
    assert_eq!(body["scimType"].as_str(), scim_type, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_providers_provisioning_flow_creates_finds_deactivates_renames_and_deletes() {
    let srv = TestServer::start(CONFIG).await;
    let email = "test.user@okta.local";
    // Okta first asks whether the user exists: an empty list, not a 404.
    let find = "/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100";
    let (s, list, media) = scim(&srv, Method::GET, find, Some(TOKEN), None).await;
    assert_eq!(s, 200, "{list}");
    assert!(media.starts_with("application/scim+json"), "{media}");
    assert_eq!(list["totalResults"], 0);
    assert_eq!(list["Resources"], json!([]));

    let (s, made, _) = scim(
        &srv,
        Method::POST,
        "/Users",
        Some(TOKEN),
        Some(okta_user(email, "00ujl29u0le5T6Aj10h7")),
    )
    .await;
    assert_eq!(s, 201, "{made}");
    let id = made["id"].as_str().unwrap().to_owned();
    assert_eq!(made["userName"], email);
    assert_eq!(made["externalId"], "00ujl29u0le5T6Aj10h7");
    assert_eq!(made["name"]["givenName"], "Test");
    assert_eq!(made["name"]["familyName"], "User");
    assert_eq!(made["locale"], "en-US");
    assert_eq!(made["active"], true);
    assert_eq!(made["meta"]["resourceType"], "User");
    assert!(made.get("password").is_none(), "the password is write-only");
    assert_eq!(made[ROSTER]["tier"], "free");
    // The same user again is a conflict.
    let (s, dup, _) = scim(
        &srv,
        Method::POST,
        "/Users",
        Some(TOKEN),
        Some(okta_user(email, "other-id")),
    )
    .await;
    assert_eq!(s, 409, "{dup}");
    assert_scim_error(&dup, "409", Some("uniqueness"));

    let (s, got, _) = scim(
        &srv,
        Method::GET,
        &format!("/Users/{id}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(got, made);
    let (s, list, _) = scim(&srv, Method::GET, find, Some(TOKEN), None).await;
    assert_eq!(s, 200);
    assert_eq!(list["totalResults"], 1);
    assert_eq!(list["Resources"][0]["id"], id.as_str());
    let by_external = "/Users?filter=externalId%20eq%20%2200ujl29u0le5T6Aj10h7%22";
    let (_, list, _) = scim(&srv, Method::GET, by_external, Some(TOKEN), None).await;
    assert_eq!(list["totalResults"], 1);

    // The password the provider set logs in.
    let (s, session) = login(&srv, email).await;
    assert_eq!(s, 200, "{session}");
    let token = session["token"].as_str().unwrap().to_owned();

    // Okta deactivates without a path; the session ends and no login completes.
    let off =
        json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": false}}]});
    let (s, patched, _) = scim(
        &srv,
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(TOKEN),
        Some(off),
    )
    .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["active"], false);
    let (s, _) = srv.call(Method::GET, "/users/me", Some(&token), None).await;
    assert_eq!(s, 401, "the deactivated user's session ended");
    let (s, refused) = login(&srv, email).await;
    assert_eq!(s, 403, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("deactivated"),
        "{refused}"
    );
    let inactive = "/Users?filter=active%20eq%20false";
    let (_, list, _) = scim(&srv, Method::GET, inactive, Some(TOKEN), None).await;
    assert_eq!(list["totalResults"], 1, "{list}");

    // Entra ID's shapes: a capitalised op with a path, and "True" as a string.
    let rename = json!({"schemas": [PATCH], "Operations": [
        {"op": "Replace", "path": "name.familyName", "value": "Jensen"},
        {"op": "Replace", "path": "active", "value": "True"},
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": email},
    ]});
    let (s, patched, _) = scim(
        &srv,
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(TOKEN),
        Some(rename),
    )
    .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["name"]["familyName"], "Jensen");
    assert_eq!(patched["name"]["givenName"], "Test");
    assert_eq!(patched["active"], true);
    let (s, _) = login(&srv, email).await;
    assert_eq!(s, 200, "an active user logs in again");

    // A replace moves the tier and the display name; the email stays.
    let mut whole = okta_user(email, "00ujl29u0le5T6Aj10h7");
    whole.as_object_mut().unwrap().remove("password");
    whole["displayName"] = json!("T. User");
    whole[ROSTER] = json!({"tier": "premium"});
    let (s, put, _) = scim(
        &srv,
        Method::PUT,
        &format!("/Users/{id}"),
        Some(TOKEN),
        Some(whole.clone()),
    )
    .await;
    assert_eq!(s, 200, "{put}");
    assert_eq!(put["displayName"], "T. User");
    assert_eq!(put[ROSTER]["tier"], "premium");
    let (_, me) = srv
        .call(Method::GET, &format!("/users/{id}"), Some(ADMIN_KEY), None)
        .await;
    assert_eq!(me["tier"], "premium", "{me}");
    whole["userName"] = json!("renamed@okta.local");
    whole["emails"] = json!([{"value": "renamed@okta.local"}]);
    let (s, refused, _) = scim(
        &srv,
        Method::PUT,
        &format!("/Users/{id}"),
        Some(TOKEN),
        Some(whole),
    )
    .await;
    assert_eq!(s, 400, "{refused}");
    assert_scim_error(&refused, "400", Some("mutability"));
    assert!(
        refused["detail"].as_str().unwrap().contains("userName"),
        "{refused}"
    );

    // Audited as the provisioning client: the creation, and each change it made.
    let (_, audit) = srv
        .call(Method::GET, "/admin/audit", Some(ADMIN_KEY), None)
        .await;
    let by_scim: Vec<Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == json!({"kind": "system", "job": "scim:okta"}))
        .map(|e| e["action"].clone())
        .collect();
    assert!(
        by_scim.iter().any(|a| a["type"] == "user_imported"),
        "{audit}"
    );
    let changed: Vec<&Value> = by_scim
        .iter()
        .filter(|a| a["type"] == "user_provisioned")
        .map(|a| &a["changed"])
        .collect();
    assert!(changed.contains(&&json!(["active"])), "{audit}");
    assert!(
        changed
            .iter()
            .any(|c| c.as_array().unwrap().contains(&json!("tier"))),
        "{audit}"
    );

    let (s, _, _) = scim(
        &srv,
        Method::DELETE,
        &format!("/Users/{id}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, gone, _) = scim(
        &srv,
        Method::GET,
        &format!("/Users/{id}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(s, 404);
    assert_scim_error(&gone, "404", None);
    let (_, list, _) = scim(&srv, Method::GET, find, Some(TOKEN), None).await;
    assert_eq!(list["totalResults"], 0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_scim_errors_and_bulk_limits_are_enforced() {
    let srv = TestServer::start(CONFIG).await;
    let (s, e, _) = scim(&srv, Method::GET, "/Users", None, None).await;
    assert_eq!(s, 401);
    assert_scim_error(&e, "401", None);
    let (s, _, _) = scim(
        &srv,
        Method::GET,
        "/Users",
        Some("not-the-token-0123456789abcdefghijkl"),
        None,
    )
    .await;
    assert_eq!(s, 401);
    // The operator key is accepted too.
    let (s, _, _) = scim(&srv, Method::GET, "/Users", Some(ADMIN_KEY), None).await;
    assert_eq!(s, 200);

    for filter in [
        "title%20eq%20%22x%22",
        "userName%20eq",
        "userName%20zz%20%22a%22",
        "(active%20pr",
    ] {
        let (s, e, _) = scim(
            &srv,
            Method::GET,
            &format!("/Users?filter={filter}"),
            Some(TOKEN),
            None,
        )
        .await;
        assert_eq!(s, 400, "{filter}: {e}");
        assert_scim_error(&e, "400", Some("invalidFilter"));
    }
    let mut unknown = okta_user("a@example.com", "a");
    unknown["title"] = json!("Boss");
    let (s, e, _) = scim(&srv, Method::POST, "/Users", Some(TOKEN), Some(unknown)).await;
    assert_eq!(s, 400, "{e}");
    assert_scim_error(&e, "400", Some("invalidSyntax"));
    assert!(e["detail"].as_str().unwrap().contains("title"), "{e}");
    let mut no_schema = okta_user("a@example.com", "a");
    no_schema.as_object_mut().unwrap().remove("schemas");
    let (s, e, _) = scim(&srv, Method::POST, "/Users", Some(TOKEN), Some(no_schema)).await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (400, Some("invalidSyntax")),
        "{e}"
    );
    let mut weak = okta_user("a@example.com", "a");
    weak["password"] = json!("abc");
    let (s, e, _) = scim(&srv, Method::POST, "/Users", Some(TOKEN), Some(weak)).await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (400, Some("invalidValue")),
        "{e}"
    );
    let (s, e, _) = scim(&srv, Method::GET, "/Groups", Some(TOKEN), None).await;
    assert_eq!(s, 501, "{e}");

    // What the service offers says the limits it enforces.
    let (s, spc, _) = scim(
        &srv,
        Method::GET,
        "/ServiceProviderConfig",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        spc["bulk"],
        json!({"supported": true, "maxOperations": 3, "maxPayloadSize": 4096})
    );
    let (s, schemas, _) = scim(&srv, Method::GET, "/Schemas", Some(TOKEN), None).await;
    assert_eq!((s, schemas["totalResults"].as_u64()), (200, Some(2)));

    let op = |n: usize| {
        json!({"method": "POST", "path": "/Users", "bulkId": format!("u{n}"),
               "data": okta_user(&format!("bulk{n}@example.com"), &format!("b{n}"))})
    };
    let (s, e, _) = scim(
        &srv,
        Method::POST,
        "/Bulk",
        Some(TOKEN),
        Some(json!({"schemas": [BULK], "Operations": [op(1), op(2), op(3), op(4)]})),
    )
    .await;
    assert_eq!(s, 413, "{e}");
    assert_scim_error(&e, "413", Some("tooMany"));
    let big = json!({"schemas": [BULK], "Operations": [], "pad": "x".repeat(5000)});
    let (s, e, _) = scim(&srv, Method::POST, "/Bulk", Some(TOKEN), Some(big)).await;
    assert_eq!(s, 413, "{e}");
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains("maxPayloadSize (4096)"),
        "{e}"
    );

    // Within the limits: a create, then a patch naming it by its bulkId, then a bad one.
    let deactivate = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let ops = json!({"schemas": [BULK], "Operations": [
        op(1),
        {"method": "PATCH", "path": "/Users/bulkId:u1", "data": deactivate},
        {"method": "PATCH", "path": "/Users/bulkId:nope", "data": {}},
    ]});
    let (s, r, _) = scim(&srv, Method::POST, "/Bulk", Some(TOKEN), Some(ops)).await;
    assert_eq!(s, 200, "{r}");
    let statuses: Vec<&str> = r["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["201", "200", "409"], "{r}");
    let location = r["Operations"][0]["location"].as_str().unwrap();
    let id = location.rsplit('/').next().unwrap();
    let (_, got, _) = scim(
        &srv,
        Method::GET,
        &format!("/Users/{id}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(got["active"], false, "{got}");
    // failOnErrors stops at the first failure.
    let ops = json!({"schemas": [BULK], "failOnErrors": 1, "Operations": [
        {"method": "DELETE", "path": "/Users/00000000-0000-7000-8000-000000000000"},
        op(2),
    ]});
    let (s, r, _) = scim(&srv, Method::POST, "/Bulk", Some(TOKEN), Some(ops)).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["Operations"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["Operations"][0]["status"], "404");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_beyond_the_indexes_read_every_user_and_page_in_order() {
    let srv = TestServer::start(CONFIG).await;
    let people = [
        ("alice@example.com", "Alice", "Anderson"),
        ("albert@example.com", "Albert", "Brown"),
        ("bob@example.com", "Bob", "Carlson"),
        ("carol@example.org", "Carol", "Dawson"),
    ];
    for (email, given, family) in people {
        let mut u = okta_user(email, &format!("x-{given}"));
        u["name"] = json!({"givenName": given, "familyName": family});
        let (s, b, _) = scim(&srv, Method::POST, "/Users", Some(TOKEN), Some(u)).await;
        assert_eq!(s, 201, "{b}");
    }
    let names = |list: &Value| -> Vec<String> {
        list["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"]["givenName"].as_str().unwrap().to_owned())
            .collect()
    };
    let q = |f: &str| {
        format!(
            "/Users?filter={}",
            f.replace(' ', "%20").replace('"', "%22")
        )
    };
    let (_, l, _) = scim(
        &srv,
        Method::GET,
        &q(r#"userName sw "AL""#),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(names(&l), ["Alice", "Albert"], "{l}");
    let (_, l, _) = scim(
        &srv,
        Method::GET,
        &q(r#"name.familyName co "son" and not (userName ew ".org")"#),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(names(&l), ["Alice", "Bob"], "{l}");
    let (_, l, _) = scim(
        &srv,
        Method::GET,
        &q(r#"emails[value ew ".org"] or displayName eq "nobody""#),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(names(&l), ["Carol"], "{l}");
    // Pages: the second and third of four users, in creation order.
    let (_, l, _) = scim(
        &srv,
        Method::GET,
        "/Users?startIndex=2&count=2",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(
        (
            l["totalResults"].as_u64(),
            l["startIndex"].as_u64(),
            l["itemsPerPage"].as_u64()
        ),
        (Some(4), Some(2), Some(2))
    );
    assert_eq!(names(&l), ["Albert", "Bob"]);
    let (_, l, _) = scim(
        &srv,
        Method::GET,
        &format!("{}&startIndex=2&count=5", q(r#"active eq true"#)),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(names(&l), ["Albert", "Bob", "Carol"]);
    let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName eq \"bob@example.com\"", "count": 10});
    let (s, l, _) = scim(
        &srv,
        Method::POST,
        "/Users/.search",
        Some(TOKEN),
        Some(search),
    )
    .await;
    assert_eq!(s, 200, "{l}");
    assert_eq!(names(&l), ["Bob"]);
    // A user provisioned from a file is found by its external id, and shows it.
    let row =
        json!({"rows": [{"email": "file@example.com", "external_id": "file-1", "password": PW}]});
    let (s, r) = srv
        .call(
            Method::POST,
            "/admin/users/provision",
            Some(ADMIN_KEY),
            Some(row),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (_, l, _) = scim(
        &srv,
        Method::GET,
        &q(r#"externalId eq "file-1""#),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(l["totalResults"], 1, "{l}");
    assert_eq!(l["Resources"][0]["externalId"], "file-1", "{l}");
    srv.stop().await;
}

/// Invitation emails written for `email` so far (the outbox's sender is asynchronous:
/// waits up to 5 s for `at_least`).
async fn invitations(srv: &TestServer, email: &str, at_least: usize) -> usize {
    let mut n = 0;
    for _ in 0..100 {
        let text = std::fs::read_to_string(srv.dir().join("outbox.jsonl")).unwrap_or_default();
        n = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|m| m["to"] == email && m["kind"] == "invitation")
            .count();
        if n >= at_least {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_change_changes_nothing_and_ids_and_invitations_follow_the_account() {
    let srv = TestServer::start(CONFIG).await;
    let (s, a, _) = scim(
        &srv,
        Method::POST,
        "/Users",
        Some(TOKEN),
        Some(okta_user("a@example.com", "ext-a")),
    )
    .await;
    assert_eq!(s, 201, "{a}");
    let mut b = okta_user("b@example.com", "x");
    b.as_object_mut().unwrap().remove("externalId");
    let (s, b, _) = scim(&srv, Method::POST, "/Users", Some(TOKEN), Some(b)).await;
    assert_eq!(s, 201, "{b}");
    let b_id = b["id"].as_str().unwrap().to_owned();
    let b_path = format!("/Users/{b_id}");

    // Another user's externalId is refused: the provider would act on the wrong account.
    let steal = json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "externalId", "value": "ext-a"}]});
    let (s, e, _) = scim(&srv, Method::PATCH, &b_path, Some(TOKEN), Some(steal)).await;
    assert_eq!(s, 409, "{e}");
    assert_scim_error(&e, "409", Some("uniqueness"));
    let by_a = "/Users?filter=externalId%20eq%20%22ext-a%22";
    let (_, list, _) = scim(&srv, Method::GET, by_a, Some(TOKEN), None).await;
    assert_eq!(list["Resources"][0]["id"], a["id"], "{list}");

    // A value-less replace, or a null, is refused rather than read as "active".
    let off = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let (s, _, _) = scim(&srv, Method::PATCH, &b_path, Some(TOKEN), Some(off)).await;
    assert_eq!(s, 200);
    for op in [
        json!({"op": "replace", "path": "active"}),
        json!({"op": "replace", "value": {"active": null}}),
    ] {
        let body = json!({"schemas": [PATCH], "Operations": [op]});
        let (s, e, _) = scim(&srv, Method::PATCH, &b_path, Some(TOKEN), Some(body)).await;
        assert_eq!(
            (s, e["scimType"].as_str()),
            (400, Some("invalidValue")),
            "{e}"
        );
    }
    // A patch whose password the policy refuses changes nothing else either.
    let mixed = json!({"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "active", "value": true},
        {"op": "replace", "path": "displayName", "value": "Changed"},
        {"op": "replace", "path": "password", "value": "abc"},
    ]});
    let (s, e, _) = scim(&srv, Method::PATCH, &b_path, Some(TOKEN), Some(mixed)).await;
    assert_eq!(s, 400, "{e}");
    let (_, got, _) = scim(&srv, Method::GET, &b_path, Some(TOKEN), None).await;
    assert_eq!(
        (got["active"].clone(), got["displayName"].clone()),
        (json!(false), b["displayName"].clone()),
        "{got}"
    );
    // A PUT that leaves active out keeps it.
    let mut put = okta_user("b@example.com", "x");
    for k in ["externalId", "active", "password"] {
        put.as_object_mut().unwrap().remove(k);
    }
    let (s, got, _) = scim(&srv, Method::PUT, &b_path, Some(TOKEN), Some(put)).await;
    assert_eq!((s, got["active"].clone()), (200, json!(false)), "{got}");

    // Created deactivated without a password: no invitation until it is activated.
    let mut c = okta_user("c@example.com", "ext-c");
    c.as_object_mut().unwrap().remove("password");
    c["active"] = json!(false);
    let (s, c, _) = scim(&srv, Method::POST, "/Users", Some(TOKEN), Some(c)).await;
    assert_eq!((s, c["active"].clone()), (201, json!(false)), "{c}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(invitations(&srv, "c@example.com", 0).await, 0);
    let on =
        json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": true}}]});
    let c_path = format!("/Users/{}", c["id"].as_str().unwrap());
    let (s, _, _) = scim(&srv, Method::PATCH, &c_path, Some(TOKEN), Some(on)).await;
    assert_eq!(s, 200);
    assert_eq!(
        invitations(&srv, "c@example.com", 1).await,
        1,
        "invited once active"
    );
    srv.stop().await;
}
