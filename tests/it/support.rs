//! Shared helpers: a test configuration (cheap argon2 from `config/test.toml`, a temp
//! data dir) and a manager opened on it.

use std::path::Path;
use std::sync::Arc;

use roster::UserManager;
use roster::config::{Config, DEFAULT_TOML, parse_toml};
use roster::domain::time::{ManualClock, Timestamp};
use roster::engine::{Principal, Setup};

/// A password the default policy accepts.
pub const PW: &str = "correct horse battery staple";

/// The principal tests act as when they act on the engine directly: trusted code.
pub const SYS: Principal = Principal::System("test");

/// The test configuration for `dir`, with `extra` TOML layers on top (later wins).
pub fn config(dir: &Path, extra: &[&str]) -> Config {
    let data_dir = format!("[store]\ndata_dir = {:?}\n", dir.display().to_string());
    let mut layers = vec![
        parse_toml("default", DEFAULT_TOML).unwrap(),
        parse_toml("test", include_str!("../../config/test.toml")).unwrap(),
        parse_toml("dir", &data_dir).unwrap(),
    ];
    for e in extra {
        layers.push(parse_toml("extra", e).unwrap());
    }
    Config::from_layers(layers).unwrap()
}

/// A manager on `dir` with the real clock.
pub fn open(dir: &Path) -> UserManager {
    UserManager::open(config(dir, &[])).unwrap()
}

/// A manager on `dir` with a manual clock, returned alongside.
pub fn open_with_clock(dir: &Path, extra: &str) -> (UserManager, ManualClock) {
    open_with_clock_layers(dir, &[extra])
}

/// As [`open_with_clock`], with several TOML layers.
pub fn open_with_clock_layers(dir: &Path, extra: &[&str]) -> (UserManager, ManualClock) {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let setup = Setup::new(config(dir, extra)).clock(Arc::new(clock.clone()));
    let m = UserManager::open(setup).unwrap();
    (m, clock)
}

/// Imports one user from an existing argon2 hash, as trusted code.
pub async fn import(
    m: &UserManager,
    email: &str,
    password_hash: &str,
    tier: roster::UserTier,
) -> Result<roster::domain::profile::UserProfile, roster::engine::EngineError> {
    let user = roster::engine::ImportedUser {
        email: email.into(),
        password_hash: password_hash.into(),
        tier: Some(tier),
        profile_data: None,
        created_at: None,
    };
    m.accounts().import(&SYS, vec![user]).await?.remove(0)
}

/// The sign-in codes the outbox sender of the engine on `dir` wrote for `email`, oldest
/// first.
pub fn outbox_codes(dir: &Path, email: &str) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(dir.join("outbox.jsonl")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["to"] == email && m["kind"] == "login_code")
        .filter_map(|m| Some(m["subject"].as_str()?.rsplit(' ').next()?.to_owned()))
        .collect()
}

/// The code number `n` (from 0) written for `email`, waiting for the sender thread up
/// to 5 s.
pub async fn outbox_code_n(dir: &Path, email: &str, n: usize) -> String {
    for _ in 0..100 {
        if let Some(c) = outbox_codes(dir, email).get(n) {
            return c.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "no sign-in code number {n} for {email} in {}",
        dir.display()
    );
}

/// The newest link's token of `kind` (an email kind: `invitation`, `password_reset`) in
/// the outbox for `email` that is not one of `seen`,
/// waiting for the sender (it writes the outbox after the call that queued the mail returns).
pub async fn emailed_token(kind: &str, dir: &Path, email: &str, seen: &[&str]) -> String {
    for _ in 0..100 {
        let text = std::fs::read_to_string(dir.join("outbox.jsonl")).unwrap_or_default();
        let found = text
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["to"] == email && m["kind"] == kind)
            .filter_map(|m| {
                Some(
                    m["body"]
                        .as_str()?
                        .rsplit("#token=")
                        .next()?
                        .trim()
                        .to_owned(),
                )
            })
            .next()
            .filter(|t| !seen.contains(&t.as_str()));
        if let Some(t) = found {
            return t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no {kind} link for {email} beyond {seen:?}");
}

/// Logs in through the engine, answering a second-factor challenge with a code by
/// email read from the outbox; returns the session token.
pub async fn login_via_email(m: &UserManager, dir: &Path, email: &str) -> String {
    use roster::engine::{ChallengeOutcome, CodeSend};
    match m
        .authenticate_user(email, PW, roster::domain::session::LoginContext::default())
        .await
        .unwrap()
    {
        roster::LoginOutcome::Success(s) => s.token,
        roster::LoginOutcome::Challenge(c) => {
            let n = outbox_codes(dir, email).len();
            let sent = m
                .login()
                .send_code(&c.challenge, roster::domain::mfa::SecondFactor::Email)
                .await
                .unwrap();
            assert!(matches!(sent, CodeSend::Sent { .. }), "{sent:?}");
            let code = outbox_code_n(dir, email, n).await;
            let answer =
                roster::engine::FactorAnswer::code(roster::domain::mfa::SecondFactor::Email, code);
            match m.login().complete(&c.challenge, answer).await.unwrap() {
                ChallengeOutcome::Success(s) => s.token,
                other => panic!("second factor refused: {other:?}"),
            }
        }
        other => panic!("login of {email} failed: {other:?}"),
    }
}

/// The operator key the HTTP tests configure.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// A real server on 127.0.0.1:0 over a temp data dir, with a manual clock: the same
/// wiring `roster serve` runs ([`roster::server::Server`]), metrics listener, drain and
/// shutdown snapshot included.
pub struct TestServer {
    /// `http://127.0.0.1:port/api/v1`
    pub base: String,
    /// The engine behind it.
    pub manager: UserManager,
    /// Its clock.
    pub clock: ManualClock,
    /// An HTTP client.
    pub http: reqwest::Client,
    /// The metrics listener's address, when `server.metrics_listen` is set.
    pub metrics_addr: Option<std::net::SocketAddr>,
    _dir: tempfile::TempDir,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<Result<(), roster::server::ServerError>>,
}

impl TestServer {
    /// Starts a server with `extra` TOML over the test config.
    pub async fn start(extra: &str) -> TestServer {
        Self::start_in(tempfile::tempdir().unwrap(), extra).await
    }

    /// Starts a server on the data directory `dir` (which may hold a store already).
    pub async fn start_in(dir: tempfile::TempDir, extra: &str) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_bound(dir, listener, extra).await
    }

    /// Starts a server on `listener` (for a config that names its port).
    pub async fn start_bound(
        dir: tempfile::TempDir,
        listener: tokio::net::TcpListener,
        extra: &str,
    ) -> TestServer {
        let key = format!("[server]\nadmin_key = {ADMIN_KEY:?}\n");
        let (manager, clock) = open_with_clock_layers(dir.path(), &[&key, extra]);
        let server = roster::server::Server::new(manager.clone(), listener)
            .await
            .unwrap();
        let addr = server.addr().unwrap();
        let metrics_addr = server.metrics_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        TestServer {
            base: format!("http://{addr}/api/v1"),
            manager,
            clock,
            http: reqwest::Client::new(),
            metrics_addr,
            _dir: dir,
            stop,
            served,
        }
    }

    /// Stops serving: the server drains, snapshots every live user and shuts the engine
    /// down, releasing the store; returns the data directory.
    pub async fn stop(self) -> tempfile::TempDir {
        let _ = self.stop.send(());
        self.served.await.unwrap().unwrap();
        drop(self.manager);
        self._dir
    }

    /// The server's `host:port`.
    pub fn host(&self) -> String {
        self.base
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_owned()
    }

    /// `METHOD base+path` with an optional bearer and JSON body; returns status and body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        self.call_with(method, path, bearer, body, &[]).await
    }

    /// [`Self::call`] with extra request headers.
    pub async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    /// `POST base+path` with a body of `media` type as `bearer`; returns status and body.
    pub async fn post_raw(
        &self,
        path: &str,
        bearer: &str,
        media: &str,
        body: String,
    ) -> (u16, serde_json::Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(bearer)
            .header("content-type", media)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// `POST /users/{id}/activity` with `events` as `token`; status and body.
    pub async fn post_activity(
        &self,
        id: &str,
        token: &str,
        events: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let path = format!("/users/{id}/activity");
        let body = serde_json::json!({ "events": events });
        self.call(reqwest::Method::POST, &path, Some(token), Some(body))
            .await
    }

    /// Creates a user as the operator and logs it in; returns (id, token).
    pub async fn user(&self, email: &str, tier: &str) -> (String, String) {
        let (s, body) = self
            .call(
                reqwest::Method::POST,
                "/users",
                Some(ADMIN_KEY),
                Some(serde_json::json!({"email": email, "password": PW, "tier": tier})),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        let id = body["id"].as_str().unwrap().to_owned();
        let (s, body) = self
            .call(
                reqwest::Method::POST,
                "/auth/login",
                None,
                Some(serde_json::json!({"email": email, "password": PW})),
            )
            .await;
        if s == 200 {
            return (id, body["token"].as_str().unwrap().to_owned());
        }
        // Enterprise and VIP need a second factor: a code by email, from the outbox.
        assert_eq!(s, 202, "{body}");
        (id, self.complete_with_email(email, &body).await)
    }

    /// Answers the login challenge `challenge` (a 202 body) with a code by email read
    /// from the outbox; returns the session token.
    pub async fn complete_with_email(&self, email: &str, challenge: &serde_json::Value) -> String {
        let c = challenge["challenge"].as_str().unwrap();
        let n = outbox_codes(self.dir(), email).len();
        let (s, body) = self
            .call(
                reqwest::Method::POST,
                "/auth/login/mfa/email",
                None,
                Some(serde_json::json!({"challenge": c})),
            )
            .await;
        assert_eq!(s, 202, "{body}");
        let code = outbox_code_n(self.dir(), email, n).await;
        let (s, body) = self
            .call(
                reqwest::Method::POST,
                "/auth/login/mfa",
                None,
                Some(serde_json::json!({"challenge": c, "method": "email", "code": code})),
            )
            .await;
        assert_eq!(s, 200, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// The Prometheus page, scraped with the operator key.
    pub async fn metrics_page(&self) -> String {
        let root = self.base.trim_end_matches("/api/v1");
        let resp = self
            .http
            .get(format!("{root}/metrics"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }

    /// The server's data directory.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// `POST /api/v1<path>` with `body` as the operator, for a long job that streams JSON
    /// lines: its last line's `field` (the result), or the problem document of a refusal.
    pub async fn job(
        &self,
        path: &str,
        body: serde_json::Value,
        field: &str,
    ) -> (u16, serde_json::Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        if status != 200 {
            return (status, serde_json::from_str(&text).unwrap_or_default());
        }
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        (status, last[field].clone())
    }

    /// The audit log's first 1,000 records, as the operator reads them.
    pub async fn audit_log(&self) -> serde_json::Value {
        let (s, log) = self
            .call(
                reqwest::Method::GET,
                "/admin/audit?limit=1000",
                Some(ADMIN_KEY),
                None,
            )
            .await;
        assert_eq!(s, 200, "{log}");
        log
    }

    /// The `type` of every action in the audit log (its first 1,000 records).
    pub async fn audit_actions(&self) -> Vec<String> {
        self.audit_log()
            .await
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["action"]["type"].as_str().map(str::to_owned))
            .collect()
    }
}

/// Gives or withdraws `id`'s consent to analytics, as trusted code (no request of a
/// tier's allowance is spent on it).
pub async fn set_analytics(m: &UserManager, id: &str, granted: bool) {
    let uid: roster::domain::ids::UserId = id.parse().unwrap();
    m.privacy()
        .update_consents(
            &SYS,
            uid,
            vec![(roster::domain::consent::Purpose::Analytics, granted)],
            None,
        )
        .await
        .unwrap();
}

/// Imports `population` as users (`listener{n}@example.com`, in order, each with its
/// tier and sign-up date) who consent to analytics, as trusted code: their ids. Their
/// history is the caller's to bring.
pub async fn plant_users(
    m: &UserManager,
    population: &[roster::analytics::sim::SimUser],
) -> Vec<String> {
    use roster::security::password::{Argon2Worker, params};
    let phc = Argon2Worker::new(params(m.config().passwords.params).unwrap())
        .unwrap()
        .hash("correct horse battery staple")
        .unwrap();
    let mut ids = Vec::new();
    for chunk in population.chunks(200) {
        let users = chunk
            .iter()
            .enumerate()
            .map(|(i, u)| roster::engine::ImportedUser {
                email: format!("listener{}@example.com", ids.len() + i),
                password_hash: phc.clone(),
                tier: Some(u.tier),
                profile_data: None,
                created_at: Some(u.created_at),
            })
            .collect();
        let created = m.accounts().import(&SYS, users).await.unwrap();
        for (p, u) in created.into_iter().zip(chunk) {
            let p = p.unwrap();
            assert_eq!(p.created_at, u.created_at, "the sign-up date is kept");
            set_analytics(m, &p.id.to_string(), true).await;
            ids.push(p.id.to_string());
        }
    }
    ids
}
