//! The web consoles served by the binary: the operator console at `/admin`, the
//! self-service account page at `/account`, and the read-only page of a dashboard link
//! at `/shared`. Their pages are static files embedded at
//! build time (`assets/`, plain modules, no build step) served under a strict
//! Content-Security-Policy; everything they show and do goes through the public API —
//! the console's calls authenticated by a console session (see [`session`]) that the
//! operator opens with the operator key at `POST /api/v1/admin/console/session`, the
//! account page's by the user's own session token.

mod assets;
pub(crate) mod session;

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::AppState;
use super::extract::{Caller, ClientIp, JsonBody};
use super::problem::{ApiError, Problem};
use crate::engine::ConsoleAudit;

/// What every console page is served with: scripts, styles and connections from this
/// server only, no inline script or style, never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

/// The pages: `/admin`, `/account`, `/shared` and their files.
pub(super) fn pages() -> Router {
    Router::new()
        .route("/admin", get(index))
        .route("/admin/", get(index))
        .route("/admin/{file}", get(file))
        .route("/account", get(account))
        .route("/account/", get(account))
        .route("/account/{file}", get(file))
        .route("/shared", get(shared))
        .route("/shared/{file}", get(file))
}

async fn index() -> Response {
    file(Path("index.html".to_owned())).await
}

async fn account() -> Response {
    file(Path("account.html".to_owned())).await
}

async fn shared() -> Response {
    file(Path("shared.html".to_owned())).await
}

async fn file(Path(name): Path<String>) -> Response {
    let Some(asset) = assets::find(&name) else {
        return ApiError::NotFound("console file").into_response();
    };
    let mut resp = (StatusCode::OK, asset.body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.media_type),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The files change with the binary: revalidate rather than keep a stale console.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// The caller a request's console cookie makes it, checked against cross-site use (see
/// [`session::check_use`]); anonymous without a live console session. A state-changing
/// call that carries no CSRF token at all was not made by the console: it runs as
/// anonymous (so a page of this server signing a user in is not disturbed by the
/// operator's cookie), and is refused wherever the operator is needed.
pub(super) fn caller(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Caller, ApiError> {
    let Some(cookie) = session::cookie_of(headers) else {
        return Ok(Caller::Anonymous);
    };
    let Some((csrf, _)) = state.console.get(cookie, Instant::now()) else {
        return Ok(Caller::Anonymous);
    };
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && headers.get(session::CSRF_HEADER).is_none() {
        return Ok(Caller::Anonymous);
    }
    session::check_use(headers, method, &csrf)?;
    Ok(Caller::Admin)
}

/// The TCP peer of a request, if known.
pub(crate) struct Peer(Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// Whether the browser reached us over TLS: through a trusted proxy that says so.
fn over_tls(state: &AppState, peer: Option<SocketAddr>, headers: &HeaderMap) -> bool {
    let trusted = peer.is_some_and(|p| {
        let cfg = &state.manager.config().server;
        cfg.trusted_proxies.iter().any(|n| n.contains(&p.ip()))
    });
    trusted
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// The operator key, to open a console session.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    /// The operator key (`ROSTER_ADMIN_KEY`).
    key: String,
}

/// A console session: the page sends `csrf_token` as `X-CSRF-Token` with every call
/// that changes something; the session itself is the `roster_console` cookie.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ConsoleSession {
    /// Send as `X-CSRF-Token` with every POST, PUT, PATCH and DELETE.
    csrf_token: String,
    /// Seconds until the session ends (then sign in again).
    expires_in_secs: u64,
}

/// Opens a console session for a browser: the answer sets the `roster_console` cookie
/// (`HttpOnly`, `SameSite=Strict`, `Secure` behind TLS) that stands for the operator
/// key in the browser's later calls. Counted against the client address's allowance of
/// anonymous requests, like a login.
#[utoipa::path(post, path = "/api/v1/admin/console/session", tag = "console", request_body = SignIn,
    responses((status = 201, body = ConsoleSession, headers(("set-cookie" = String, description = "the console session"))),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 415, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn sign_in(
    State(s): State<AppState>,
    caller: Caller,
    ClientIp(ip): ClientIp,
    Peer(peer): Peer,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SignIn>,
) -> Result<Response, ApiError> {
    s.limit_anonymous(&caller, ip)?;
    let Some(key) = s.admin_key.as_deref() else {
        return Err(ApiError::Forbidden(
            "operator endpoints are closed on this server (no operator key is set)",
        ));
    };
    if !bool::from(key.as_bytes().ct_eq(body.key.as_bytes())) {
        tracing::warn!(%ip, "console sign-in with a wrong operator key");
        // The refusal stands whether or not its record could be written.
        if let Err(err) = s
            .manager
            .ops()
            .audit_console(ConsoleAudit::Refused, ip)
            .await
        {
            tracing::warn!(%ip, %err, "a refused console sign-in could not be audited");
        }
        return Err(ApiError::Unauthorized("the operator key is wrong"));
    }
    // On record before the session exists: a session whose opening is not audited is
    // never handed out.
    s.manager
        .ops()
        .audit_console(ConsoleAudit::SignedIn, ip)
        .await?;
    let issued = s.console.issue(Instant::now());
    tracing::info!(%ip, "console session opened");
    let secure = over_tls(&s, peer, &headers);
    let cookie = session::set_cookie(&issued.cookie, session::TTL, secure);
    let body = ConsoleSession {
        csrf_token: issued.csrf,
        expires_in_secs: session::TTL.as_secs(),
    };
    let mut resp = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The browser's console session (its CSRF token, for a page loaded again); 401 when
/// the request carries no live console session.
#[utoipa::path(get, path = "/api/v1/admin/console/session", tag = "console",
    responses((status = 200, body = ConsoleSession), (status = 401, body = Problem)))]
pub(crate) async fn session(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let live = session::cookie_of(&headers).and_then(|c| s.console.get(c, Instant::now()));
    let Some((csrf_token, left)) = live else {
        return Err(ApiError::Unauthorized(
            "no console session: sign in with the operator key",
        ));
    };
    let body = ConsoleSession {
        csrf_token,
        expires_in_secs: left.as_secs(),
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Ends the browser's console session (with its `X-CSRF-Token`) and clears the cookie.
#[utoipa::path(delete, path = "/api/v1/admin/console/session", tag = "console",
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn sign_out(
    State(s): State<AppState>,
    caller: Caller,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let cookie = session::cookie_of(&headers).filter(|_| matches!(caller, Caller::Admin));
    if !cookie.is_some_and(|c| s.console.end(c)) {
        return Err(ApiError::Unauthorized("no console session to end"));
    }
    // The session is over either way; a record that cannot be written is logged.
    if let Err(err) = s
        .manager
        .ops()
        .audit_console(ConsoleAudit::SignedOut, ip)
        .await
    {
        tracing::warn!(%ip, %err, "a console sign-out could not be audited");
    }
    let clear = session::set_cookie("", std::time::Duration::ZERO, false);
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}
