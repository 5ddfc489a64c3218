//! Extractors and the authentication layer. JSON bodies go through [`JsonBody`] so that
//! malformed input gets our problem format, naming the bad field. Authentication is a
//! middleware: it resolves the bearer credential once per request (a session, counted
//! against the tier's rate, or the operator key), answers 401/429 itself, stores the
//! [`Caller`] for handlers and adds the `RateLimit-*` headers to the response.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::AppState;
use super::problem::ApiError;
use crate::domain::ids::UserId;
use crate::domain::rate::RateDecision;
use crate::domain::risk::Location;
use crate::engine::{AuthorizedRequest, Principal, RequestOrigin, UserSession};

/// A JSON body of type `T`, or a problem response saying what is wrong with it.
pub(crate) struct JsonBody<T>(pub T);

/// Whether the request's media type (lowercase, parameters stripped) passes `is`.
pub(crate) fn media_type_is(headers: &axum::http::HeaderMap, is: impl Fn(&str) -> bool) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| is(&m.trim().to_ascii_lowercase()))
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = media_type_is(req.headers(), |m| {
            m == "application/json" || m.ends_with("+json")
        });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = super::MAX_BODY_BYTES;
        // A declared length over the limit is refused before a byte of the body is read.
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(limit)
            } else {
                ApiError::MalformedBody(e.body_text())
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// An optional JSON body: none when the request has no body (no content type and no
/// length), else as [`JsonBody`].
impl<T: DeserializeOwned, S: Send + Sync> axum::extract::OptionalFromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let h = req.headers();
        let empty = !h.contains_key(header::CONTENT_TYPE)
            && h.get(header::CONTENT_LENGTH)
                .is_none_or(|v| v.as_bytes() == b"0");
        if empty {
            return Ok(None);
        }
        <Self as FromRequest<S>>::from_request(req, state)
            .await
            .map(Some)
    }
}

/// A JSON body of a bulk endpoint (provisioning batches): as [`JsonBody`], up to
/// [`MAX_BULK_BODY_BYTES`](super::MAX_BULK_BODY_BYTES).
pub(crate) struct BulkJsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for BulkJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        if !media_type_is(req.headers(), |m| {
            m == "application/json" || m.ends_with("+json")
        }) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = super::MAX_BULK_BODY_BYTES;
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| ApiError::PayloadTooLarge(limit))?;
        parse_json(&bytes).map(BulkJsonBody)
    }
}

/// A JSON value of `T`, naming the path of the first bad field.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            ApiError::InvalidInput {
                field: (path != ".").then_some(path),
                detail: inner.to_string(),
            }
        } else {
            ApiError::MalformedBody(format!("body is not valid JSON: {inner}"))
        }
    })?;
    // Nothing may follow the value (a second object would be dropped unread).
    de.end()
        .map_err(|e| ApiError::MalformedBody(format!("body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Who is calling.
#[derive(Clone, Debug)]
pub enum Caller {
    /// No credential.
    Anonymous,
    /// A user's session.
    User(AuthorizedRequest),
    /// The operator key.
    Admin,
}

impl Caller {
    /// Who the engine is told is acting.
    pub(crate) fn principal(&self) -> Principal {
        match self {
            Caller::Anonymous => Principal::Anonymous,
            Caller::User(a) => Principal::User(UserSession {
                user: a.session.user_id,
                session: a.session.session_id,
            }),
            Caller::Admin => Principal::Operator,
        }
    }

    /// Allows only a user session; returns it (for answers the authentication step
    /// already holds, like the caller's own profile).
    pub(crate) fn require_user(&self) -> Result<&AuthorizedRequest, ApiError> {
        match self {
            Caller::User(a) => Ok(a),
            Caller::Admin => Err(ApiError::Forbidden(
                "this endpoint needs a user session, not the operator key",
            )),
            Caller::Anonymous => Err(ApiError::Unauthorized("a bearer token is required")),
        }
    }
}

/// The user a path names. An anonymous caller is refused before the id is looked at;
/// an id that is not one names no user. Whether the caller may act on it is the
/// engine's decision.
pub(crate) fn user_id(caller: &Caller, raw: &str) -> Result<UserId, ApiError> {
    if let Caller::Anonymous = caller {
        return Err(ApiError::Unauthorized("a bearer token is required"));
    }
    raw.parse().map_err(|_| ApiError::NotFound("user"))
}

/// A query string of type `T`, or a problem response saying what is wrong with it.
pub(crate) struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::InvalidInput {
                field: None,
                detail: e.body_text(),
            })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller::Anonymous))
    }
}

/// The client's address: the one the authentication layer worked out (see
/// [`origin_of`]), else the TCP peer.
pub(crate) fn client_ip(parts_ext: &axum::http::Extensions) -> IpAddr {
    if let Some(o) = parts_ext.get::<RequestOrigin>()
        && let Some(ip) = o.ip
    {
        return ip;
    }
    peer_ip(parts_ext)
}

fn peer_ip(ext: &axum::http::Extensions) -> IpAddr {
    ext.get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Where a request comes from. The client address is the TCP peer, unless the peer is
/// a trusted proxy (`server.trusted_proxies`): then it is the rightmost address in
/// `X-Forwarded-For` that is not itself a trusted proxy, and the location headers of
/// `server.geo_*_header` are believed. The device is the `X-Device-Id` header.
pub(crate) fn origin_of(state: &AppState, req: &Request) -> RequestOrigin {
    let cfg = &state.manager.config().server;
    let peer = peer_ip(req.extensions());
    let trusted = |ip: &IpAddr| cfg.trusted_proxies.iter().any(|n| n.contains(ip));
    let headers = req.headers();
    let mut ip = peer;
    let mut location = None;
    if trusted(&peer) {
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|h| h.trim().parse().ok())
            .collect();
        if let Some(client) = hops.iter().rev().find(|h| !trusted(h)).or(hops.first()) {
            ip = *client;
        }
        if let Some([c, la, lo]) = &cfg.geo_headers {
            let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
            if let (Some(c), Some(la), Some(lo)) = (get(c), get(la), get(lo))
                && let (Ok(la), Ok(lo)) = (la.trim().parse::<f64>(), lo.trim().parse::<f64>())
            {
                location = Location::new(c, la, lo).ok();
            }
        }
    }
    let device_id = headers
        .get("x-device-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|d| {
            !d.is_empty()
                && d.chars().count() <= crate::domain::session::MAX_DEVICE_ID
                && !d.chars().any(char::is_control)
        })
        .map(str::to_owned);
    RequestOrigin {
        ip: Some(ip),
        device_id,
        location,
    }
}

/// The request's origin as an extractor.
pub(crate) struct Origin(pub RequestOrigin);

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Origin(
            parts
                .extensions
                .get::<RequestOrigin>()
                .cloned()
                .unwrap_or_else(|| RequestOrigin {
                    ip: Some(peer_ip(&parts.extensions)),
                    ..RequestOrigin::default()
                }),
        ))
    }
}

/// The client address as an extractor.
pub(crate) struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(&parts.extensions)))
    }
}

/// The one middleware of every route: authenticates the caller and, with
/// `server.http_metrics`, counts and times the request by route template, method,
/// status class and caller tier. One layer rather than two because axum gives every
/// route layer its own boxed service and boxed future per request.
pub(crate) async fn gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !state.manager.config().server.http_metrics {
        return authenticate(&state, req, next).await.0;
    }
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", axum::extract::MatchedPath::as_str)
        .to_owned();
    let method = method_label(req.method());
    let started = std::time::Instant::now();
    let (resp, tier) = authenticate(&state, req, next).await;
    let m = state.manager.metrics();
    m.http_latency
        .get_or_create(&crate::metrics::RouteLabels {
            route: route.clone(),
            tier,
        })
        .observe(started.elapsed().as_secs_f64());
    m.http_requests
        .get_or_create(&crate::metrics::HttpLabels {
            route,
            method,
            status: status_class(resp.status()),
        })
        .inc();
    resp
}

/// The method as a label: the standard ones by name, any other as `other` (a client
/// cannot grow the label set).
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// `2xx`, `4xx`… (`other` outside 100–599).
fn status_class(s: axum::http::StatusCode) -> &'static str {
    match s.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "other",
    }
}

/// Resolves the bearer credential and runs the rest of the request as that caller.
/// Also returns the caller's tier as a metric label: `refused` when this step answered
/// itself (401, 429).
async fn authenticate(state: &AppState, mut req: Request, next: Next) -> (Response, &'static str) {
    // Held until the response is ready (see the admission comment below).
    let mut slot: Option<tokio::sync::OwnedSemaphorePermit> = None;
    let origin = origin_of(state, &req);
    req.extensions_mut().insert(origin.clone());
    let caller = match req.headers().get(header::AUTHORIZATION) {
        // A browser signed in to the console carries its session as a cookie. A user's
        // own socket never counts as the operator's: a browser sends no header on a
        // socket, and one signed in to the console would have every user socket it
        // opens on this origin refused as the operator's (which has no event stream).
        None if req.uri().path() == "/api/v1/ws" => Caller::Anonymous,
        None => match super::console::caller(state, req.headers(), req.method()) {
            Ok(c) => c,
            Err(e) => return (e.into_response(), "refused"),
        },
        Some(value) => {
            let Some(token) = value
                .to_str()
                .ok()
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim)
            else {
                return (
                    ApiError::Unauthorized("Authorization must be `Bearer <token>`")
                        .into_response(),
                    "refused",
                );
            };
            if state
                .admin_key
                .as_deref()
                .is_some_and(|k| bool::from(k.as_bytes().ct_eq(token.as_bytes())))
            {
                Caller::Admin
            } else {
                // Admission: a tier with a budget waits for a slot before any work is
                // done for it, so a flood from one tier queues instead of taking every
                // CPU cycle from the others. The tier comes from the directory (live
                // users only; a cold user's first request is not gated).
                let gated = state.tier_gates.iter().any(Option::is_some);
                let tier = if gated {
                    state.manager.tier_hint(token)
                } else {
                    None
                };
                if let Some((t, g)) =
                    tier.and_then(|t| Some((t, state.tier_gates[t.index()].clone()?)))
                {
                    slot = match Arc::clone(&g).try_acquire_owned() {
                        Ok(p) => Some(p),
                        Err(_) => {
                            let labels = crate::metrics::TierLabels { tier: t.into() };
                            state
                                .manager
                                .metrics()
                                .admission_waits
                                .get_or_create(&labels)
                                .inc();
                            g.acquire_owned().await.ok()
                        }
                    };
                }
                match state.manager.login().authorize(token, origin).await {
                    Ok(Some(auth)) => Caller::User(auth),
                    Ok(None) => {
                        return (
                            ApiError::Unauthorized("the token is invalid or expired")
                                .into_response(),
                            "refused",
                        );
                    }
                    Err(e) => return (ApiError::from(e).into_response(), "refused"),
                }
            }
        }
    };
    let rate = match &caller {
        Caller::User(a) => match a.rate {
            RateDecision::Limited {
                limit,
                retry_after_secs,
            } => {
                let tier = crate::metrics::TierLabels {
                    tier: a.session.tier.into(),
                };
                state
                    .manager
                    .metrics()
                    .rate_limited
                    .get_or_create(&tier)
                    .inc();
                return (
                    ApiError::RateLimited {
                        limit,
                        retry_after: retry_after_secs,
                    }
                    .into_response(),
                    "refused",
                );
            }
            allowed => Some(allowed),
        },
        _ => None,
    };
    let tier = match &caller {
        Caller::Anonymous => "anonymous",
        Caller::Admin => "operator",
        Caller::User(a) => a.session.tier.as_str(),
    };
    req.extensions_mut().insert(caller);
    let mut resp = next.run(req).await;
    drop(slot);
    if let Some(RateDecision::Allowed {
        limit: Some(limit),
        remaining,
        reset_secs,
    }) = rate
    {
        let h = resp.headers_mut();
        h.insert("ratelimit-limit", HeaderValue::from(limit));
        h.insert("ratelimit-remaining", HeaderValue::from(remaining));
        h.insert("ratelimit-reset", HeaderValue::from(reset_secs));
    }
    (resp, tier)
}

#[cfg(test)]
mod tests {
    use axum::http::{Method, StatusCode};

    use super::{method_label, status_class};

    #[test]
    fn metric_labels_come_from_a_fixed_set() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        // A client inventing methods cannot grow the label set.
        let invented = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&invented), "other");
        assert_eq!(status_class(StatusCode::SWITCHING_PROTOCOLS), "1xx");
        assert_eq!(status_class(StatusCode::OK), "2xx");
        assert_eq!(status_class(StatusCode::NOT_MODIFIED), "3xx");
        assert_eq!(status_class(StatusCode::TOO_MANY_REQUESTS), "4xx");
        assert_eq!(status_class(StatusCode::SERVICE_UNAVAILABLE), "5xx");
        assert_eq!(status_class(StatusCode::from_u16(799).unwrap()), "other");
    }
}
