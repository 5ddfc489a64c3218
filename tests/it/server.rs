//! The binary honours the operator contract: `roster serve --listen 127.0.0.1:0
//! --data-dir DIR` logs the address it really listens on, answers health checks, and
//! on SIGTERM snapshots and exits cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serve_logs_its_address_answers_health_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        // Cheap hashing for the dummy hash computed at start (never in production).
        .env("ROSTER_PASSWORDS__MEMORY_KIB", "256")
        .env("ROSTER_PASSWORDS__ITERATIONS", "1")
        .env("ROSTER_PROFILES__DIR", "")
        .env("ROSTER_LOG", "info")
        .env("ROSTER_SERVER__METRICS_LISTEN", "127.0.0.1:0")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );
    // The separate metrics listener: /metrics without a credential, nothing else; the
    // API port keeps /metrics behind the operator key.
    let metrics_addr = loop {
        let line = lines.next().expect("no metrics listener").unwrap();
        if let Some(rest) = line.split("metrics on http://").nth(1) {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    let scrape = get(&metrics_addr, "/metrics");
    assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
    assert!(scrape.contains("roster_users_created_total 0"), "{scrape}");
    assert!(get(&metrics_addr, "/healthz").starts_with("HTTP/1.1 404"));
    assert!(get(&addr, "/metrics").starts_with("HTTP/1.1 401"));
    let health = get(&addr, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let ready = get(&addr, "/readyz");
    assert!(ready.contains("\"ready\""), "{ready}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit {exit:?}; log: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");

    // With the server stopped, the audit chain can be checked offline.
    let out = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["verify-audit", "--data-dir"])
        .arg(dir.path())
        .env("ROSTER_PROFILES__DIR", "")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("audit log intact: 0 records"), "{stdout}");
}

fn post(addr: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The JSON body of a raw HTTP/1.1 answer.
fn body_of(answer: &str) -> serde_json::Value {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

#[test]
fn serve_starts_from_any_folder_and_keeps_its_files_in_the_data_dir() {
    use std::os::unix::fs::PermissionsExt as _;
    // An empty working directory, no config file, no template folder: the shipped
    // defaults must be enough.
    let cwd = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_roster"))
        .current_dir(cwd.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("ROSTER_PASSWORDS__MEMORY_KIB", "256")
        .env("ROSTER_PASSWORDS__ITERATIONS", "1")
        // Every login needs a second factor, so a code goes to the outbox.
        .env("ROSTER_TIERS__FREE__ZERO_TRUST", "true")
        .env_remove("ROSTER_PROFILES__DIR")
        .env("ROSTER_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    assert!(get(&addr, "/healthz").starts_with("HTTP/1.1 200"));
    let who = r#"{"email":"anywhere@example.com","password":"correct horse battery staple"}"#;
    assert!(post(&addr, "/api/v1/users", who).starts_with("HTTP/1.1 201"));
    let login = post(&addr, "/api/v1/auth/login", who);
    assert!(login.starts_with("HTTP/1.1 202"), "{login}");
    let challenge = body_of(&login)["challenge"].as_str().unwrap().to_owned();
    let sent = post(
        &addr,
        "/api/v1/auth/login/mfa/email",
        &format!(r#"{{"challenge":"{challenge}"}}"#),
    );
    assert!(sent.starts_with("HTTP/1.1 202"), "{sent}");
    let outbox = data.path().join("outbox.jsonl");
    for _ in 0..100 {
        if std::fs::read_to_string(&outbox).is_ok_and(|t| t.contains("login_code")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        outbox.exists(),
        "the code went to the data directory's outbox"
    );
    let mode = std::fs::metadata(&outbox).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "codes are readable by the owner only");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit {exit:?}");
    let beside: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(
        beside.is_empty(),
        "nothing written where it was started: {beside:?}"
    );
}

/// Runs the `roster` binary with `args` against the test server's operator key, off the
/// runtime; returns its exit status and output.
async fn roster_cli(args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(&args)
            .env("ROSTER_ADMIN_KEY", crate::support::ADMIN_KEY)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_server_serves_metrics_apart_and_snapshots_at_stop() {
    let srv =
        crate::support::TestServer::start("[server]\nmetrics_listen = \"127.0.0.1:0\"\n").await;
    let (id, token) = srv.user("watched@example.com", "free").await;
    let maddr = srv
        .metrics_addr
        .expect("the metrics listener is bound")
        .to_string();
    let scrape = tokio::task::spawn_blocking(move || get(&maddr, "/metrics"))
        .await
        .unwrap();
    assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
    assert!(scrape.contains("roster_users_created_total 1"), "{scrape}");
    // Soft state no client was promised: a wrong password counted against the account.
    let wrong = serde_json::json!({"email": "watched@example.com", "password": "not the password"});
    let (s, _) = srv
        .call(reqwest::Method::POST, "/auth/login", None, Some(wrong))
        .await;
    assert_eq!(s, 401);
    let (s, _) = srv
        .call(reqwest::Method::GET, "/users/me", Some(&token), None)
        .await;
    assert_eq!(s, 200);
    // Stopping drains, and the shutdown snapshot keeps the failure.
    let dir = srv.stop().await;
    let m = crate::support::open(dir.path());
    let uid = id.parse().unwrap();
    let export = m
        .accounts()
        .export(&crate::support::SYS, uid)
        .await
        .unwrap();
    assert_eq!(export.login_failures.failures, 1, "snapshotted at shutdown");
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_and_the_audit_check_run_against_a_live_server() {
    let srv = crate::support::TestServer::start("").await;
    let (id, _) = srv.user("audited.live@example.com", "free").await;
    let admin = Some(crate::support::ADMIN_KEY);
    let (s, _) = srv
        .call(reqwest::Method::GET, &format!("/users/{id}"), admin, None)
        .await;
    assert_eq!(s, 200, "an audited read");
    let url = srv.base.trim_end_matches("/api/v1").to_owned();
    let (ok, out, err) = roster_cli(&["verify-audit", "--server", &url]).await;
    assert!(ok, "{out} {err}");
    // The operator's creation of the user, and its read.
    assert!(out.contains("audit log intact: 2 records"), "{out}");
    let (ok, out, err) = roster_cli(&["purge", "--server", &url]).await;
    assert!(ok, "{out} {err}");
    assert!(out.contains("purged security events before"), "{out}");
    assert!(out.contains("0 archived"), "{out}");
    // Without the operator key the server refuses, and the command says so.
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_roster"))
            .args([
                "purge",
                "--server",
                &url,
                "--admin-key",
                "not-the-key-0123456789",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    srv.stop().await;
}
