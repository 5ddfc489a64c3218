//! Incident levers on accounts: a forced password reset of a selection (sessions end,
//! the old password no longer logs in, the emailed link sets a new one once), and a lock
//! and unlock of a selection that holds across a restart, and the runtime deny-list of
//! networks (logins refused, sessions used from there ended at once, kept across a
//! restart).

use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use crate::revocation::{alive, login_from};
use crate::support::{ADMIN_KEY, PW, TestServer, emailed_token};
use crate::ws::{open, operator_frame};

const NEW_PW: &str = "a brand new passphrase, long enough";

/// A bulk account action's result, or the problem.
async fn act(srv: &TestServer, action: &str, selector: Value) -> (u16, Value) {
    srv.job(&format!("/admin/users/{action}"), selector, "accounts")
        .await
}

async fn login(srv: &TestServer, email: &str, password: &str) -> (u16, Value) {
    let body = json!({"email": email, "password": password});
    srv.call(Method::POST, "/auth/login", None, Some(body))
        .await
}

async fn accept(srv: &TestServer, token: &str, password: &str) -> u16 {
    let body = json!({"token": token, "password": password});
    srv.call(Method::POST, "/auth/invitations/accept", None, Some(body))
        .await
        .0
}

/// `(matched, changed, sessions_ended)` of a result.
fn counts(r: &Value) -> (u64, u64, u64) {
    let n = |k: &str| r[k].as_u64().unwrap_or(u64::MAX);
    (n("matched"), n("changed"), n("sessions_ended"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_reset_ends_sessions_refuses_the_old_password_and_its_link_sets_a_new_one_once() {
    let srv = TestServer::start("").await;
    let (_, r0) = srv.user("r0@example.com", "free").await;
    let (r1_id, r1) = srv.user("r1@example.com", "free").await;
    let (_, keep) = srv.user("keep@example.com", "premium").await;

    let (s, dry) = act(
        &srv,
        "reset-password",
        json!({"tier": "free", "dry_run": true}),
    )
    .await;
    assert_eq!(s, 200, "{dry}");
    assert_eq!(counts(&dry), (2, 0, 2), "{dry}");
    assert!(
        alive(&srv, &r0).await && alive(&srv, &r1).await,
        "a dry run changes nothing"
    );
    assert_eq!(login(&srv, "r0@example.com", PW).await.0, 200);

    let (_, done) = act(&srv, "reset-password", json!({"tier": "free"})).await;
    // r0 has two sessions now (the login above).
    assert_eq!(counts(&done), (2, 2, 3), "{done}");
    assert_eq!(done["links_sent"], 2, "{done}");
    assert!(!alive(&srv, &r0).await && !alive(&srv, &r1).await);
    assert!(alive(&srv, &keep).await, "another tier keeps its session");

    // The old password no longer logs in; a wrong one is refused as any wrong one.
    let (s, refused) = login(&srv, "r0@example.com", PW).await;
    assert_eq!(s, 403, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("new password"),
        "{refused}"
    );
    assert_eq!(
        login(&srv, "r0@example.com", "not it at all, sorry")
            .await
            .0,
        401
    );

    // The link sets a new password, once.
    let link = emailed_token("password_reset", srv.dir(), "r0@example.com", &[]).await;
    assert_eq!(accept(&srv, &link, NEW_PW).await, 204);
    assert_eq!(login(&srv, "r0@example.com", NEW_PW).await.0, 200);
    assert_eq!(login(&srv, "r0@example.com", PW).await.0, 401);
    assert_eq!(
        accept(&srv, &link, "yet another passphrase here").await,
        400
    );
    assert_eq!(
        login(&srv, "r0@example.com", NEW_PW).await.0,
        200,
        "spent: unchanged"
    );

    // Asked again, a reset voids the earlier link.
    let first = emailed_token("password_reset", srv.dir(), "r1@example.com", &[]).await;
    let (_, again) = act(&srv, "reset-password", json!({"user_ids": [r1_id]})).await;
    assert_eq!(counts(&again), (1, 1, 0), "{again}");
    let second = emailed_token("password_reset", srv.dir(), "r1@example.com", &[&first]).await;
    assert_eq!(accept(&srv, &first, NEW_PW).await, 400, "the earlier link");
    assert_eq!(accept(&srv, &second, NEW_PW).await, 204);
    assert_eq!(login(&srv, "r1@example.com", NEW_PW).await.0, 200);

    let actions = srv.audit_actions().await;
    let audited = actions
        .iter()
        .filter(|a| *a == "accounts_held_in_bulk")
        .count();
    assert_eq!(
        audited, 2,
        "real actions are audited, dry runs not: {actions:?}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_of_a_selection_holds_across_a_restart_until_an_unlock() {
    let srv = TestServer::start("").await;
    let (a_id, a_local) = srv.user("a@example.com", "free").await;
    let a_remote = login_from(&srv, "a@example.com", "203.0.113.5").await;
    let (b_id, b) = srv.user("b@example.com", "free").await;
    let mut feed = open(&srv, "/admin/events", Some(ADMIN_KEY)).await;

    // By network: the account with a session from there, all of whose sessions end.
    let (s, done) = act(&srv, "lock", json!({"cidr": "203.0.113.0/24"})).await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(counts(&done), (1, 1, 2), "{done}");
    let told = operator_frame(&mut feed, "operator.accounts_held").await;
    assert_eq!(told["data"]["result"]["action"], "lock", "{told}");
    assert_eq!(told["data"]["selector"]["cidr"], "203.0.113.0/24", "{told}");
    assert!(!alive(&srv, &a_local).await && !alive(&srv, &a_remote).await);
    assert!(alive(&srv, &b).await);
    let (s, refused) = login(&srv, "a@example.com", PW).await;
    assert_eq!(s, 403, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("locked"),
        "{refused}"
    );
    let (_, twice) = act(&srv, "lock", json!({"user_ids": [a_id]})).await;
    assert_eq!(counts(&twice), (1, 0, 0), "locked already: {twice}");

    // The command, with the same selector as flags.
    let server = format!("http://{}", srv.host());
    let cli = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_roster"))
                .args(args)
                .env("ROSTER_ADMIN_KEY", ADMIN_KEY)
                .output()
                .unwrap()
        })
    };
    let args = |cmd: &str, id: &str, dry: bool| {
        let mut a = vec![cmd.to_owned(), "--server".into(), server.clone()];
        a.extend(["--user-id".to_owned(), id.to_owned()]);
        if dry {
            a.push("--dry-run".into());
        }
        a
    };
    let out = cli(args("lock-accounts", &b_id, true)).await.unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("dry run: 1 accounts would be locked"),
        "{said}"
    );
    assert!(alive(&srv, &b).await);
    let out = cli(args("lock-accounts", &b_id, false)).await.unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("1 accounts locked of 1 matched"), "{said}");
    assert!(!alive(&srv, &b).await);

    // Bad selectors and callers: a clear 4xx, nothing changed.
    for (bad, field) in [
        (json!({}), "selector"),
        (json!({"user_ids": []}), "user_ids"),
        (json!({"cidr": "203.0.113.0/99"}), "cidr"),
    ] {
        let (s, problem) = act(&srv, "unlock", bad.clone()).await;
        assert_eq!(s, 400, "{bad}: {problem}");
        assert_eq!(problem["field"], field, "{bad}: {problem}");
    }
    let (s, _) = act(&srv, "unlock", json!({"user_ids": ["not-an-id"]})).await;
    assert_eq!(s, 400, "a malformed id");

    // Locks are kept: a restart does not lift them.
    let dir = srv.stop().await;
    let srv = TestServer::start_in(dir, "").await;
    assert_eq!(login(&srv, "a@example.com", PW).await.0, 403);
    assert_eq!(login(&srv, "b@example.com", PW).await.0, 403);
    let (_, undone) = act(&srv, "unlock", json!({"user_ids": [a_id]})).await;
    assert_eq!(counts(&undone), (1, 1, 0), "{undone}");
    assert_eq!(login(&srv, "a@example.com", PW).await.0, 200);
    assert_eq!(login(&srv, "b@example.com", PW).await.0, 403, "not named");
    let (_, rest) = act(&srv, "unlock", json!({"all": true})).await;
    assert_eq!(counts(&rest), (1, 1, 0), "only the locked account: {rest}");
    assert_eq!(login(&srv, "b@example.com", PW).await.0, 200);
    srv.stop().await;
}

/// `GET /users/me` with `token`, as from `ip` (behind the trusted loopback proxy).
async fn me_from(srv: &TestServer, token: &str, ip: &str) -> u16 {
    let resp = srv
        .http
        .get(format!("{}/users/me", srv.base))
        .bearer_auth(token)
        .header("X-Forwarded-For", ip)
        .send()
        .await
        .unwrap();
    resp.status().as_u16()
}

async fn login_via(srv: &TestServer, email: &str, ip: &str) -> u16 {
    let resp = srv
        .http
        .post(format!("{}/auth/login", srv.base))
        .header("X-Forwarded-For", ip)
        .json(&json!({"email": email, "password": PW}))
        .send()
        .await
        .unwrap();
    resp.status().as_u16()
}

async fn deny(srv: &TestServer, body: Value) -> (u16, Value) {
    srv.call(
        Method::POST,
        "/admin/deny-networks",
        Some(ADMIN_KEY),
        Some(body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_network_refuses_logins_and_ends_sessions_used_from_it_and_is_kept() {
    const PROXY: &str = "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n";
    let srv = TestServer::start(PROXY).await;
    let (_, a) = srv.user("a@example.com", "free").await;
    let (_, b) = srv.user("b@example.com", "free").await;
    assert_eq!(me_from(&srv, &a, "203.0.113.9").await, 200);
    let mut feed = open(&srv, "/admin/events", Some(ADMIN_KEY)).await;

    let (s, denied) = deny(
        &srv,
        json!({"network": "203.0.113.77/24", "reason": "credential stuffing"}),
    )
    .await;
    assert_eq!(s, 201, "{denied}");
    assert_eq!(denied["entry"]["network"], "203.0.113.0/24", "{denied}");
    assert_eq!(denied["replaced"], false);
    let told = operator_frame(&mut feed, "operator.network_denied").await;
    assert_eq!(
        told["data"]["entry"]["reason"], "credential stuffing",
        "{told}"
    );
    // At once: a session used from there ends at that request, and stays ended.
    assert_eq!(me_from(&srv, &a, "203.0.113.9").await, 401);
    assert_eq!(me_from(&srv, &a, "198.51.100.1").await, 401, "ended");
    assert_eq!(me_from(&srv, &b, "198.51.100.1").await, 200);
    // Logins from there are refused with the right password; from elsewhere they pass.
    assert_eq!(login_via(&srv, "b@example.com", "203.0.113.20").await, 401);
    assert_eq!(login_via(&srv, "b@example.com", "198.51.100.2").await, 200);

    // Bad input and callers: a clear 4xx, the list unchanged.
    for (bad, field) in [
        (json!({"network": "nope", "reason": "x"}), "network"),
        (json!({"network": "10.0.0.0/8", "reason": " "}), "reason"),
        (
            json!({"network": "10.0.0.0/8", "reason": "x", "expires_at": "2020-01-01T00:00:00Z"}),
            "expires_at",
        ),
    ] {
        let (s, problem) = deny(&srv, bad.clone()).await;
        assert_eq!(s, 400, "{bad}: {problem}");
        assert_eq!(problem["field"], field, "{bad}: {problem}");
    }
    let (s, _) = deny(&srv, json!({"network": "10.0.0.0/8"})).await;
    assert_eq!(s, 400, "no reason");
    let (s, _) = srv
        .call(
            Method::POST,
            "/admin/deny-networks",
            Some(&b),
            Some(json!({"network": "10.0.0.0/8", "reason": "x"})),
        )
        .await;
    assert_eq!(s, 403);
    let path = "/admin/deny-networks";
    assert_eq!(
        srv.call(Method::DELETE, path, Some(ADMIN_KEY), None)
            .await
            .0,
        400
    );
    let other = format!("{path}?network=10.0.0.0/8");
    assert_eq!(
        srv.call(Method::DELETE, &other, Some(ADMIN_KEY), None)
            .await
            .0,
        404
    );
    let (_, list) = srv.call(Method::GET, path, Some(ADMIN_KEY), None).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["reason"], "credential stuffing");

    // Kept across a restart, until removed.
    let dir = srv.stop().await;
    let srv = TestServer::start_in(dir, PROXY).await;
    assert_eq!(login_via(&srv, "b@example.com", "203.0.113.20").await, 401);
    let gone = format!("{path}?network=203.0.113.0/24");
    assert_eq!(
        srv.call(Method::DELETE, &gone, Some(ADMIN_KEY), None)
            .await
            .0,
        204
    );
    assert_eq!(login_via(&srv, "b@example.com", "203.0.113.20").await, 200);
    let actions = srv.audit_actions().await;
    assert!(
        actions.iter().any(|a| a == "network_denied")
            && actions.iter().any(|a| a == "network_allowed"),
        "{actions:?}"
    );

    // The command: add ends the sessions that logged in from the network.
    let c = login_via(&srv, "a@example.com", "192.0.2.7").await;
    assert_eq!(c, 200);
    let out = tokio::task::spawn_blocking({
        let server = format!("http://{}", srv.host());
        move || {
            Command::new(env!("CARGO_BIN_EXE_roster"))
                .args(["deny-network", "add", "192.0.2.0/24", "--reason", "test"])
                .args(["--server", &server])
                .env("ROSTER_ADMIN_KEY", ADMIN_KEY)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("denied 192.0.2.0/24"), "{said}");
    assert!(said.contains("1 sessions ended of 1 matched"), "{said}");
    srv.stop().await;
}
