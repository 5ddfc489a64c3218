//! A fake Last.fm and a fake Apple Music API on 127.0.0.1 for the integration hub's
//! tests. Last.fm: its consent page ([`FakeMusic::approve_lastfm`]) hands out a token
//! on the callback address, `auth.getSession` checks the call's `api_sig` as Last.fm
//! documents it (MD5 of the sorted parameters and the shared secret) and exchanges the
//! token once, and `user.getRecentTracks` serves scripted scrobbles (and a track
//! playing now). Apple Music: `GET /v1/me/storefront` takes only a developer token
//! that verifies with the team key's public half and names the key and team, with a
//! Music User Token it issued.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
use serde_json::{Value, json};

/// Last.fm's API key and shared secret as the fake knows them.
pub const LASTFM_KEY: &str = "fake-lastfm-key";
pub const LASTFM_SECRET: &str = "fake-lastfm-secret";
/// The Last.fm user every approval is of.
pub const LASTFM_USER: &str = "rj";
/// Apple's team and key ids.
pub const TEAM_ID: &str = "TEAM123456";
pub const KEY_ID: &str = "KEY1234567";

#[derive(Default)]
struct Books {
    /// Tokens approved and not yet exchanged.
    tokens: Vec<String>,
    /// Session keys issued (and not revoked).
    sessions: Vec<String>,
    /// Scrobbles `user.getRecentTracks` lists, newest first.
    scrobbles: Vec<Value>,
    /// The `from` of every `user.getRecentTracks`, in order.
    from: Vec<Option<String>>,
    /// `auth.getSession` calls whose signature was wrong.
    bad_signatures: usize,
    /// Music User Tokens Apple knows.
    user_tokens: Vec<String>,
    /// Developer tokens presented that did not verify.
    bad_developer_tokens: usize,
    /// Whether Last.fm has suspended the server's API key (error 26 to every call).
    key_suspended: bool,
    serial: u64,
}

/// A running fake.
pub struct FakeMusic {
    /// `http://127.0.0.1:port`.
    pub url: String,
    /// The team's MusicKit key (its PEM goes in config).
    pub key: SigningKey,
    books: Arc<Mutex<Books>>,
}

fn lastfm_error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": code, "message": message})),
    )
        .into_response()
}

/// The `api_sig` Last.fm's documentation defines, computed apart from the server's.
fn signature(q: &HashMap<String, String>) -> String {
    let mut names: Vec<&String> = q
        .keys()
        .filter(|k| !matches!(k.as_str(), "format" | "callback" | "api_sig"))
        .collect();
    names.sort();
    let mut text = String::new();
    for k in names {
        text.push_str(k);
        text.push_str(&q[k]);
    }
    text.push_str(LASTFM_SECRET);
    format!("{:x}", md5::compute(text))
}

async fn lastfm(
    State(books): State<Arc<Mutex<Books>>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut b = books.lock().unwrap();
    if q.get("api_key").map(String::as_str) != Some(LASTFM_KEY) {
        return lastfm_error(StatusCode::FORBIDDEN, 10, "Invalid API key");
    }
    assert_eq!(q.get("format").map(String::as_str), Some("json"));
    if b.key_suspended {
        return lastfm_error(StatusCode::FORBIDDEN, 26, "Suspended API key");
    }
    match q.get("method").map(String::as_str) {
        Some("auth.getSession") => {
            if q.get("api_sig") != Some(&signature(&q)) {
                b.bad_signatures += 1;
                return lastfm_error(StatusCode::FORBIDDEN, 13, "Invalid method signature");
            }
            let token = q.get("token").cloned().unwrap_or_default();
            let Some(at) = b.tokens.iter().position(|t| *t == token) else {
                return lastfm_error(StatusCode::FORBIDDEN, 4, "Invalid authentication token");
            };
            b.tokens.remove(at);
            b.serial += 1;
            let key = format!("fake-session-key-{}", b.serial);
            b.sessions.push(key.clone());
            axum::Json(json!({"session": {"name": LASTFM_USER, "key": key, "subscriber": 0}}))
                .into_response()
        }
        Some("user.getrecenttracks") => {
            assert_eq!(q.get("user").map(String::as_str), Some(LASTFM_USER));
            if q.get("api_sig") != Some(&signature(&q)) {
                b.bad_signatures += 1;
                return lastfm_error(StatusCode::FORBIDDEN, 13, "Invalid method signature");
            }
            if !b.sessions.iter().any(|k| Some(k) == q.get("sk")) {
                return lastfm_error(StatusCode::FORBIDDEN, 9, "Invalid session key");
            }
            b.from.push(q.get("from").cloned());
            let from: i64 = q.get("from").map_or(0, |f| f.parse().unwrap());
            let mut tracks: Vec<Value> = b
                .scrobbles
                .iter()
                .filter(|t| t["date"]["uts"].as_str().unwrap().parse::<i64>().unwrap() >= from)
                .cloned()
                .collect();
            tracks.insert(
                0,
                json!({"artist": {"#text": "Now"}, "name": "Playing", "mbid": "",
                    "@attr": {"nowplaying": "true"}}),
            );
            axum::Json(json!({"recenttracks": {"track": tracks,
                "@attr": {"user": LASTFM_USER, "page": q["page"], "totalPages": "1"}}}))
            .into_response()
        }
        _ => lastfm_error(StatusCode::BAD_REQUEST, 3, "Invalid method"),
    }
}

/// Whether `token` is a developer token of the team's key, as Apple checks one.
fn developer_token_verifies(public: &VerifyingKey, token: &str) -> bool {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, sig] = parts[..] else {
        return false;
    };
    let json = |p: &str| -> Option<Value> { serde_json::from_slice(&b64.decode(p).ok()?).ok() };
    let (Some(h), Some(c)) = (json(header), json(claims)) else {
        return false;
    };
    let Some(sig) = b64
        .decode(sig)
        .ok()
        .and_then(|s| Signature::from_slice(&s).ok())
    else {
        return false;
    };
    let (iat, exp) = (
        c["iat"].as_u64().unwrap_or(0),
        c["exp"].as_u64().unwrap_or(0),
    );
    h["alg"] == "ES256"
        && h["kid"] == KEY_ID
        && c["iss"] == TEAM_ID
        && exp > iat
        && exp - iat <= 15_777_000
        && public
            .verify(format!("{header}.{claims}").as_bytes(), &sig)
            .is_ok()
}

async fn storefront(
    State((books, public)): State<(Arc<Mutex<Books>>, VerifyingKey)>,
    headers: HeaderMap,
) -> Response {
    let mut b = books.lock().unwrap();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let bearer = header("authorization");
    let developer = bearer.strip_prefix("Bearer ").unwrap_or_default();
    if !developer_token_verifies(&public, developer) {
        b.bad_developer_tokens += 1;
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if !b.user_tokens.contains(&header("music-user-token")) {
        return StatusCode::FORBIDDEN.into_response();
    }
    axum::Json(json!({"data": [{"id": "us", "type": "storefronts"}]})).into_response()
}

impl FakeMusic {
    /// Starts one on a free loopback port.
    pub async fn start() -> FakeMusic {
        let books = Arc::new(Mutex::new(Books::default()));
        let key = SigningKey::from_slice(&[42u8; 32]).unwrap();
        let apple = axum::Router::new()
            .route("/v1/me/storefront", get(storefront))
            .with_state((Arc::clone(&books), *key.verifying_key()));
        let app = axum::Router::new()
            .route("/2.0/", get(lastfm))
            .with_state(Arc::clone(&books))
            .merge(apple);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeMusic {
            url: format!("http://{addr}"),
            key,
            books,
        }
    }

    /// Config pointing `lastfm` and `apple_music` at this fake, with their credentials.
    pub fn config(&self) -> String {
        let u = &self.url;
        let pem = self.key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let pem = pem.replace('\n', "\\n");
        format!(
            "[integrations.providers.lastfm]\nclient_id = \"{LASTFM_KEY}\"\n\
             client_secret = \"{LASTFM_SECRET}\"\nauthorization_url = \"{u}/lastfm/auth\"\n\
             api_base_url = \"{u}/2.0/\"\n\
             [integrations.providers.apple_music]\nclient_id = \"{KEY_ID}\"\n\
             client_secret = \"{pem}\"\nteam_id = \"{TEAM_ID}\"\napi_base_url = \"{u}/v1\"\n"
        )
    }

    /// What Last.fm's consent page does when the user approves: checks the
    /// authorization address, issues a token and answers where the browser goes (the
    /// callback with `token` added), as a path under `/api/v1`.
    pub fn approve_lastfm(&self, authorization_url: &str) -> String {
        let url = url::Url::parse(authorization_url).unwrap();
        assert!(authorization_url.starts_with(&format!("{}/lastfm/auth", self.url)));
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["api_key"], LASTFM_KEY);
        let mut cb = url::Url::parse(&q["cb"]).unwrap();
        let mut b = self.books.lock().unwrap();
        b.serial += 1;
        let token = format!("fake-lastfm-token-{}", b.serial);
        b.tokens.push(token.clone());
        cb.query_pairs_mut().append_pair("token", &token);
        let path = cb.path().strip_prefix("/api/v1").unwrap().to_owned();
        format!("{path}?{}", cb.query().unwrap())
    }

    /// Sets the scrobbles: (title, artist, MusicBrainz id, unix seconds), newest first.
    pub fn set_scrobbles(&self, scrobbles: &[(&str, &str, &str, i64)]) {
        self.books.lock().unwrap().scrobbles = scrobbles
            .iter()
            .map(|(title, artist, mbid, uts)| {
                json!({"artist": {"mbid": "", "#text": artist}, "name": title, "mbid": mbid,
                    "date": {"uts": uts.to_string(), "#text": "a date"}})
            })
            .collect();
    }

    /// Revokes every Last.fm session key (the user removed the application).
    pub fn revoke_sessions(&self) {
        self.books.lock().unwrap().sessions.clear();
    }

    /// Suspends the server's API key at Last.fm, or lifts the suspension.
    pub fn suspend_key(&self, suspended: bool) {
        self.books.lock().unwrap().key_suspended = suspended;
    }

    /// Session keys issued and not revoked.
    pub fn sessions(&self) -> Vec<String> {
        self.books.lock().unwrap().sessions.clone()
    }

    /// The `from` of every recent-tracks request, in order.
    pub fn recent_from(&self) -> Vec<Option<String>> {
        self.books.lock().unwrap().from.clone()
    }

    /// Signed calls refused for their signature.
    pub fn bad_signatures(&self) -> usize {
        self.books.lock().unwrap().bad_signatures
    }

    /// Issues a Music User Token Apple will take.
    pub fn issue_user_token(&self) -> String {
        let mut b = self.books.lock().unwrap();
        b.serial += 1;
        let t = format!("fake-music-user-token-{}", b.serial);
        b.user_tokens.push(t.clone());
        t
    }

    /// Developer tokens refused.
    pub fn bad_developer_tokens(&self) -> usize {
        self.books.lock().unwrap().bad_developer_tokens
    }
}
