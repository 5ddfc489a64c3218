//! Shared helpers: a test configuration (cheap argon2 from `config/test.toml`, a temp
//! data dir) and a manager opened on it.

use std::path::Path;
use std::sync::Arc;

use roster::UserManager;
use roster::config::{Config, DEFAULT_TOML, parse_toml};
use roster::domain::time::{ManualClock, Timestamp};

/// A password the default policy accepts.
pub const PW: &str = "correct horse battery staple";

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
    let m = UserManager::open_with_clock(config(dir, extra), Arc::new(clock.clone())).unwrap();
    (m, clock)
}

/// The operator key the HTTP tests configure.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// A real server on 127.0.0.1:0 over a temp data dir, with a manual clock.
pub struct TestServer {
    /// `http://127.0.0.1:port/api/v1`
    pub base: String,
    /// The engine behind it.
    pub manager: UserManager,
    /// Its clock.
    pub clock: ManualClock,
    /// An HTTP client.
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server with `extra` TOML over the test config.
    pub async fn start(extra: &str) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let key = format!("[server]\nadmin_key = {ADMIN_KEY:?}\n");
        let (manager, clock) = open_with_clock_layers(dir.path(), &[&key, extra]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = roster::api::app(manager.clone())
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TestServer {
            base: format!("http://{addr}/api/v1"),
            manager,
            clock,
            http: reqwest::Client::new(),
            _dir: dir,
        }
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
        let mut req = self.http.request(method, format!("{}{path}", self.base));
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
        assert_eq!(s, 200, "{body}");
        (id, body["token"].as_str().unwrap().to_owned())
    }
}
