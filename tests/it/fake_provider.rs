//! A fake OAuth 2.0 provider on 127.0.0.1 for the integration hub's tests: it
//! "authorizes" an authorization address the way a provider's consent page would
//! (remembering the PKCE challenge and redirect address with the code it issues), and
//! serves a token endpoint (code exchange with PKCE S256 checked, refresh with rotating
//! tokens) and a revocation endpoint (RFC 7009). It records every request it answered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
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

#[derive(Default)]
struct Books {
    codes: HashMap<String, Issued>,
    /// Refresh tokens good now.
    live_refresh: Vec<String>,
    /// Every token request's form, in order.
    token_requests: Vec<HashMap<String, String>>,
    /// Tokens revoked.
    revoked: Vec<String>,
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
    let mut b = books.lock().unwrap();
    b.token_requests.push(form.clone());
    if !client_ok(&headers) {
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
            let Some(at) = b.live_refresh.iter().position(|t| *t == used) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            // Rotating: a refresh token is good once.
            b.live_refresh.remove(at);
        }
        _ => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
    b.serial += 1;
    let n = b.serial;
    let refresh = format!("fake-refresh-token-{n}-d41f07c2");
    b.live_refresh.push(refresh.clone());
    axum::Json(json!({
        "access_token": format!("fake-access-token-{n}-9be3a1f0"),
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": refresh,
        "scope": "user-read-recently-played user-read-email",
    }))
    .into_response()
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
    b.revoked.push(token);
    StatusCode::OK.into_response()
}

impl FakeProvider {
    /// Starts one on a free loopback port.
    pub async fn start() -> FakeProvider {
        let books = Arc::new(Mutex::new(Books::default()));
        let app = axum::Router::new()
            .route("/token", post(token))
            .route("/revoke", post(revoke))
            .with_state(Arc::clone(&books));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeProvider {
            url: format!("http://{addr}"),
            books,
        }
    }

    /// Config pointing provider `id` at this fake, with its credentials.
    pub fn config(&self, id: &str) -> String {
        let u = &self.url;
        format!(
            "[integrations.providers.{id}]\nclient_id = \"{CLIENT_ID}\"\n\
             client_secret = \"{CLIENT_SECRET}\"\nauthorization_url = \"{u}/authorize\"\n\
             token_url = \"{u}/token\"\nrevocation_url = \"{u}/revoke\"\n"
        )
    }

    /// What the provider's consent page does when the user approves: checks the
    /// authorization address and issues a code for its challenge and redirect address.
    /// Returns (code, state, redirect_uri).
    pub fn authorize(&self, authorization_url: &str) -> (String, String, String) {
        let url = url::Url::parse(authorization_url).unwrap();
        assert!(authorization_url.starts_with(&format!("{}/authorize?", self.url)));
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], CLIENT_ID);
        let challenge = q.get("code_challenge").cloned();
        if challenge.is_some() {
            assert_eq!(q["code_challenge_method"], "S256");
        }
        let mut b = self.books.lock().unwrap();
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

    /// Every token request's form, in order.
    pub fn token_requests(&self) -> Vec<HashMap<String, String>> {
        self.books.lock().unwrap().token_requests.clone()
    }

    /// Tokens revoked, in order.
    pub fn revoked(&self) -> Vec<String> {
        self.books.lock().unwrap().revoked.clone()
    }
}
