//! A fake OAuth 2.0 provider on 127.0.0.1 for the integration hub's tests: it
//! "authorizes" an authorization address the way a provider's consent page would
//! (remembering the PKCE challenge and redirect address with the code it issues), and
//! serves a consent page for a browser that approves at once, a token endpoint (code exchange with PKCE S256 checked, refresh with rotating
//! tokens), a revocation endpoint (RFC 7009) and Spotify's recently-played list. The
//! next refreshes can be scripted: an answer without a refresh token, `invalid_grant`,
//! 429 with `Retry-After`, slowness. A rotating refresh token presented twice is
//! recorded as reuse and, as real providers do, ends the whole token family. It records
//! every request it answered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::json;
use sha2::Digest as _;

/// The client credentials the fake accepts.
pub const CLIENT_ID: &str = "fake-client-id";
pub const CLIENT_SECRET: &str = "fake-client-secret";

/// A code issued by [`FakeProvider::authorize`], waiting for its exchange.
struct Issued {
    challenge: Option<String>,
    redirect_uri: String,
}

/// How the fake answers the next refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Script {
    /// A new access and refresh token (rotation).
    Rotate,
    /// A new access token and no refresh token (the old one stays good).
    KeepRefresh,
    /// `invalid_grant`: the grant is dead.
    InvalidGrant,
    /// 429 with `Retry-After: secs`.
    Busy(u64),
}

#[derive(Default)]
struct Books {
    codes: HashMap<String, Issued>,
    /// Refresh tokens good now.
    live_refresh: Vec<String>,
    /// Refresh tokens used once already (presenting one again is reuse).
    spent_refresh: Vec<String>,
    /// Refresh tokens presented after they were spent.
    reused: Vec<String>,
    /// Access tokens good now.
    live_access: Vec<String>,
    /// Scripted answers for the next refreshes (then `Rotate`).
    script: std::collections::VecDeque<Script>,
    /// How long the token endpoint waits before answering a refresh.
    delay_ms: u64,
    /// What recently-played lists.
    plays: Vec<serde_json::Value>,
    /// Recently-played requests answered.
    history_requests: usize,
    /// What recently-played answers every request with instead, when set.
    history_refusal: Option<StatusCode>,
    /// Recently-played requests refused (a token not good now, or the refusal set).
    history_refused: usize,
    /// How long the next refusals of a token not good wait before answering (ms).
    refusal_delays: std::collections::VecDeque<u64>,
    /// Whether the token endpoint refuses the server's client (`invalid_client`).
    refuse_client: bool,
    /// Every token request's form, in order.
    token_requests: Vec<HashMap<String, String>>,
    /// Tokens revoked.
    revoked: Vec<String>,
    /// `http://127.0.0.1:port`.
    url: String,
    /// The issuer the discovery document names, when not `url`.
    issuer: Option<String>,
    /// Discovery documents served.
    discoveries: usize,
    serial: u64,
}

/// A running fake provider.
pub struct FakeProvider {
    /// `http://127.0.0.1:port`.
    pub url: String,
    books: Arc<Mutex<Books>>,
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(json!({ "error": error }))).into_response()
}

fn client_ok(headers: &HeaderMap) -> bool {
    let expected =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Basic {expected}"))
}

async fn token(
    State(books): State<Arc<Mutex<Books>>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let refresh = form.get("grant_type").map(String::as_str) == Some("refresh_token");
    let delay = books.lock().unwrap().delay_ms;
    if refresh && delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let mut b = books.lock().unwrap();
    answer(&mut b, &headers, &form)
}

/// The token endpoint's answer to `form`.
fn answer(b: &mut Books, headers: &HeaderMap, form: &HashMap<String, String>) -> Response {
    b.token_requests.push(form.clone());
    if !client_ok(headers) || b.refuse_client {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    match get("grant_type").as_str() {
        "authorization_code" => {
            let Some(issued) = b.codes.remove(&get("code")) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            if issued.redirect_uri != get("redirect_uri") {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            if let Some(challenge) = issued.challenge {
                let digest = sha2::Sha256::digest(get("code_verifier").as_bytes());
                let proved = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
                if proved != challenge {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
                }
            }
        }
        "refresh_token" => {
            let used = get("refresh_token");
            if b.spent_refresh.contains(&used) {
                // Reuse of a rotated token: the whole family ends.
                b.reused.push(used);
                b.live_refresh.clear();
                b.live_access.clear();
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            let Some(at) = b.live_refresh.iter().position(|t| *t == used) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            match b.script.pop_front().unwrap_or(Script::Rotate) {
                Script::Rotate => {
                    // Rotating: a refresh token is good once.
                    b.live_refresh.remove(at);
                    b.spent_refresh.push(used);
                }
                Script::KeepRefresh => return grant(b, false),
                Script::InvalidGrant => {
                    b.live_refresh.remove(at);
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
                }
                Script::Busy(secs) => {
                    return (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", secs.to_string())],
                        "slow down",
                    )
                        .into_response();
                }
            }
        }
        _ => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
    grant(b, true)
}

/// A new access token, and a new refresh token when `rotate`.
fn grant(b: &mut Books, rotate: bool) -> Response {
    b.serial += 1;
    let n = b.serial;
    let access = format!("fake-access-token-{n}-9be3a1f0");
    b.live_access.push(access.clone());
    let mut answer = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "user-read-recently-played user-read-email",
    });
    if rotate {
        let refresh = format!("fake-refresh-token-{n}-d41f07c2");
        b.live_refresh.push(refresh.clone());
        answer["refresh_token"] = json!(refresh);
    }
    axum::Json(answer).into_response()
}

async fn recently_played(State(books): State<Arc<Mutex<Books>>>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // The token is judged when the request comes, however late the answer goes.
    let late = {
        let mut b = books.lock().unwrap();
        if b.live_access.iter().any(|t| t == bearer) {
            None
        } else {
            b.history_refused += 1;
            Some(b.refusal_delays.pop_front().unwrap_or(0))
        }
    };
    if let Some(ms) = late {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut b = books.lock().unwrap();
    if let Some(status) = b.history_refusal {
        b.history_refused += 1;
        return status.into_response();
    }
    b.history_requests += 1;
    axum::Json(json!({ "items": b.plays, "next": null })).into_response()
}

async fn revoke(
    State(books): State<Arc<Mutex<Books>>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !client_ok(&headers) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let mut b = books.lock().unwrap();
    let token = form.get("token").cloned().unwrap_or_default();
    b.live_refresh.retain(|t| *t != token);
    b.live_access.retain(|t| *t != token);
    b.revoked.push(token);
    StatusCode::OK.into_response()
}

/// The consent page's approval of the authorization request `q`: a code issued for
/// its challenge and redirect address; the code, the `state` and the redirect address.
fn approve(b: &mut Books, q: &HashMap<String, String>) -> (String, String, String) {
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    let challenge = q.get("code_challenge").cloned();
    if challenge.is_some() {
        assert_eq!(q["code_challenge_method"], "S256");
    }
    b.serial += 1;
    let code = format!("fake-code-{}", b.serial);
    b.codes.insert(
        code.clone(),
        Issued {
            challenge,
            redirect_uri: q["redirect_uri"].clone(),
        },
    );
    (code, q["state"].clone(), q["redirect_uri"].clone())
}

/// The consent page for a browser: the user approves at once, and the browser is sent
/// back to the redirect address with the code and the `state`.
async fn authorize_page(
    State(books): State<Arc<Mutex<Books>>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (code, state, back) = approve(&mut books.lock().unwrap(), &q);
    let mut to = url::Url::parse(&back).unwrap();
    to.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &state);
    (StatusCode::FOUND, [("location", to.to_string())]).into_response()
}

/// OpenID Connect Discovery's document (and RFC 8414's), naming the fake's endpoints.
async fn openid_configuration(State(books): State<Arc<Mutex<Books>>>) -> Response {
    let mut b = books.lock().unwrap();
    b.discoveries += 1;
    let u = b.url.clone();
    axum::Json(json!({
        "issuer": b.issuer.clone().unwrap_or_else(|| u.clone()),
        "authorization_endpoint": format!("{u}/authorize"),
        "token_endpoint": format!("{u}/token"),
        "revocation_endpoint": format!("{u}/revoke"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
    }))
    .into_response()
}

impl FakeProvider {
    /// Starts one on a free loopback port.
    pub async fn start() -> FakeProvider {
        let books = Arc::new(Mutex::new(Books::default()));
        let app = axum::Router::new()
            .route("/authorize", get(authorize_page))
            .route("/token", post(token))
            .route("/revoke", post(revoke))
            .route(
                "/.well-known/openid-configuration",
                get(openid_configuration),
            )
            // RFC 8414's address of the metadata of the issuer `{url}/tenant` (which
            // has no OpenID Connect document).
            .route(
                "/.well-known/oauth-authorization-server/tenant",
                get(openid_configuration),
            )
            .route("/api/me/player/recently-played", get(recently_played))
            .with_state(Arc::clone(&books));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let url = format!("http://{addr}");
        books.lock().unwrap().url = url.clone();
        FakeProvider { url, books }
    }

    /// Config pointing provider `id` at this fake, with its credentials.
    pub fn config(&self, id: &str) -> String {
        let u = &self.url;
        format!(
            "[integrations.providers.{id}]\nclient_id = \"{CLIENT_ID}\"\n\
             client_secret = \"{CLIENT_SECRET}\"\nauthorization_url = \"{u}/authorize\"\n\
             token_url = \"{u}/token\"\nrevocation_url = \"{u}/revoke\"\n\
             api_base_url = \"{u}/api\"\n"
        )
    }

    /// What the provider's consent page does when the user approves: checks the
    /// authorization address and issues a code for its challenge and redirect address.
    /// Returns (code, state, redirect_uri).
    pub fn authorize(&self, authorization_url: &str) -> (String, String, String) {
        assert!(authorization_url.starts_with(&format!("{}/authorize?", self.url)));
        let url = url::Url::parse(authorization_url).unwrap();
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        approve(&mut self.books.lock().unwrap(), &q)
    }

    /// Every token request's form, in order.
    pub fn token_requests(&self) -> Vec<HashMap<String, String>> {
        self.books.lock().unwrap().token_requests.clone()
    }

    /// Tokens revoked, in order.
    pub fn revoked(&self) -> Vec<String> {
        self.books.lock().unwrap().revoked.clone()
    }

    /// Answers the next refreshes as scripted, in order.
    pub fn script(&self, next: &[Script]) {
        self.books.lock().unwrap().script.extend(next);
    }

    /// Makes each refresh wait this long before answering.
    pub fn slow_refreshes(&self, ms: u64) {
        self.books.lock().unwrap().delay_ms = ms;
    }

    /// Sets what recently-played lists: (track id, title, artist, ISRC, played at).
    pub fn set_plays(&self, plays: &[(&str, &str, &str, Option<&str>, &str)]) {
        self.books.lock().unwrap().plays = plays
            .iter()
            .map(|(id, title, artist, isrc, at)| {
                json!({
                    "track": {"id": id, "name": title, "duration_ms": 200_000,
                        "artists": [{"name": artist}], "external_ids": {"isrc": isrc}},
                    "played_at": at,
                })
            })
            .collect();
    }

    /// Refresh requests answered (every outcome).
    pub fn refreshes(&self) -> usize {
        self.token_requests()
            .iter()
            .filter(|f| f.get("grant_type").map(String::as_str) == Some("refresh_token"))
            .count()
    }

    /// Refresh tokens presented again after they were spent.
    pub fn reused(&self) -> Vec<String> {
        self.books.lock().unwrap().reused.clone()
    }

    /// Recently-played requests answered.
    pub fn history_requests(&self) -> usize {
        self.books.lock().unwrap().history_requests
    }

    /// Makes the discovery document name `issuer` (`None`: the fake itself).
    pub fn set_issuer(&self, issuer: Option<&str>) {
        self.books.lock().unwrap().issuer = issuer.map(str::to_owned);
    }

    /// Discovery documents served.
    pub fn discoveries(&self) -> usize {
        self.books.lock().unwrap().discoveries
    }

    /// Recently-played requests refused.
    pub fn history_refused(&self) -> usize {
        self.books.lock().unwrap().history_refused
    }

    /// Forgets every access token issued (refresh tokens stay good), as a provider
    /// that revoked them early.
    pub fn forget_access(&self) {
        self.books.lock().unwrap().live_access.clear();
    }

    /// Makes the next refusals of a token not good answer `ms` late, one delay each.
    pub fn delay_refusals(&self, ms: &[u64]) {
        self.books.lock().unwrap().refusal_delays = ms.iter().copied().collect();
    }

    /// Makes the token endpoint refuse the server's client (`invalid_client`), as
    /// after the operator's secret was rotated at the provider, or take it again.
    pub fn refuse_client(&self, refuse: bool) {
        self.books.lock().unwrap().refuse_client = refuse;
    }

    /// Answers every recently-played request with `status` from now on (401: the
    /// user revoked the app; 403: the scopes).
    pub fn refuse_history(&self, status: u16) {
        self.books.lock().unwrap().history_refusal = Some(StatusCode::from_u16(status).unwrap());
    }
}

/// Links `id`'s account at `provider` (configured against `fake`) through the whole
/// flow, as `token`: the link made.
pub async fn link(
    srv: &crate::support::TestServer,
    fake: &FakeProvider,
    id: &str,
    token: &str,
    provider: &str,
) -> serde_json::Value {
    let path = format!("/users/{id}/integrations/{provider}/link");
    let (s, start) = srv
        .call(reqwest::Method::POST, &path, Some(token), None)
        .await;
    assert_eq!(s, 201, "{start}");
    let (code, state, _) = fake.authorize(start["authorization_url"].as_str().unwrap());
    let back = format!("/integrations/{provider}/callback?code={code}&state={state}");
    let (s, link) = srv.call(reqwest::Method::GET, &back, None, None).await;
    assert_eq!(s, 200, "{link}");
    link
}

/// Waits (bounded) until `id`'s link to `provider` has been synced: a new link with a
/// history is synced on a task of its own, and a test counting the provider's
/// requests waits for it first.
pub async fn wait_synced(srv: &crate::support::TestServer, id: &str, provider: &str) {
    let path = format!("/users/{id}/integrations");
    for _ in 0..100 {
        let (_, list) = srv
            .call(
                reqwest::Method::GET,
                &path,
                Some(crate::support::ADMIN_KEY),
                None,
            )
            .await;
        let synced = list
            .as_array()
            .into_iter()
            .flatten()
            .any(|l| l["provider"] == provider && l["synced_at"].is_string());
        if synced {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the new {provider} link was never synced");
}
