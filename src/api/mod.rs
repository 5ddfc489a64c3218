//! The HTTP facade: a thin axum router over [`UserManager`]. Handlers extract, make one
//! front-door call with the caller's [`Principal`](crate::engine::Principal) and render;
//! access, step-up, tier gates and audit records are the engine's decisions.
//!
//! `v1/` holds the routes of `/api/v1`, a file per area; `extract` the authentication
//! middleware and the extractors; `problem` the RFC 9457 errors; `ws` the event sockets;
//! `scim` the SCIM 2.0 service at `/scim/v2`, with its own credentials and errors;
//! `console` the web console's pages at `/admin` and its cookie sessions.

mod console;
mod extract;
mod iplimit;
mod openapi;
pub mod problem;
mod scim;
mod v1;
mod ws;

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderName;
use axum::response::{IntoResponse, Response};
use axum::{Router, middleware};
use tower::{Service, ServiceBuilder};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::rate::RateDecision;
use crate::domain::time::SystemClock;
use crate::engine::{Principal, UserManager};

pub use extract::Caller;
pub use problem::ApiError;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Largest body of a bulk endpoint (a provisioning batch of 1,000 rows).
pub const MAX_BULK_BODY_BYTES: usize = 4 << 20;

/// What handlers share: one `Arc`, because axum clones the state for every layer of
/// every request, and one reference count costs less than one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The state behind [`AppState`].
pub struct Shared {
    /// The engine.
    pub(crate) manager: UserManager,
    /// The operator key, if operator endpoints are open.
    pub(crate) admin_key: Option<Arc<str>>,
    /// Limits for unauthenticated endpoints per client address.
    pub(crate) ip_limiter: Arc<iplimit::IpLimiter>,
    /// The OpenAPI document, served at `/api/v1/openapi.json`.
    pub(crate) openapi: OnceLock<utoipa::openapi::OpenApi>,
    /// Per tier, the admission budget (`tiers.<tier>.max_concurrent_requests`).
    pub(crate) tier_gates: [Option<Arc<tokio::sync::Semaphore>>; 4],
    /// The browsers signed in to the operator console.
    pub(crate) console: console::session::ConsoleSessions,
}

impl AppState {
    /// State for `manager`, from its configuration.
    pub fn new(manager: UserManager) -> Self {
        let cfg = &manager.config().server;
        let admin_key = cfg.admin_key.as_ref().map(|k| Arc::from(k.expose()));
        let ip_limiter = Arc::new(iplimit::IpLimiter::new(
            cfg.anonymous_requests_per_hour,
            Duration::from_secs(3600),
            Arc::new(SystemClock),
        ));
        let tier_gates = crate::domain::tier::UserTier::ALL.map(|t| {
            match manager.config().tier(t).max_concurrent_requests {
                crate::domain::tier::Limit::Limited(n) => Some(Arc::new(
                    tokio::sync::Semaphore::new(usize::try_from(n).unwrap_or(usize::MAX)),
                )),
                crate::domain::tier::Limit::Unlimited => None,
            }
        });
        Self(Arc::new(Shared {
            manager,
            admin_key,
            ip_limiter,
            openapi: OnceLock::new(),
            tier_gates,
            console: console::session::ConsoleSessions::default(),
        }))
    }
}

impl Shared {
    /// Counts a request of the public ceremonies (sign-up, login, codes) against the
    /// hourly allowance of its client address; the operator's are not counted. A
    /// transport-level protection against credential stuffing, beside each account's
    /// own lockout.
    pub(crate) fn limit_anonymous(
        &self,
        caller: &extract::Caller,
        ip: std::net::IpAddr,
    ) -> Result<(), ApiError> {
        if let extract::Caller::Admin = caller {
            return Ok(());
        }
        match self.ip_limiter.check(ip) {
            RateDecision::Limited {
                limit,
                retry_after_secs,
            } => Err(ApiError::RateLimited {
                limit,
                retry_after: retry_after_secs,
            }),
            RateDecision::Allowed { .. } => Ok(()),
        }
    }
}

/// The OpenAPI document's fixed parts; the paths come from the handlers' annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Roster",
        description = "User management: accounts in four tiers, sessions, profiles and quotas. \
                       Errors are RFC 9457 problem documents."
    ),
    modifiers(&BearerAuth),
    components(schemas(problem::Problem))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "a session token from /auth/login, or the operator key",
                    ))
                    .build(),
            ),
        );
    }
}

/// The router and the OpenAPI document describing it. Both come from the same
/// `routes!` declarations, so a route cannot exist without its documentation.
pub fn router(manager: UserManager) -> (Router, utoipa::openapi::OpenApi) {
    let state = AppState::new(manager);
    let api = v1::routes();
    // The API's paths carry their `/api/v1` prefix themselves: a nested router would
    // add a routing layer and rebuild every request's URI to strip the prefix.
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api)
        .routes(routes!(v1::meta::healthz))
        .routes(routes!(v1::meta::readyz))
        .routes(routes!(v1::admin::metrics))
        .split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    openapi::finish(&mut doc);
    let _ = state.openapi.set(doc.clone());
    // One middleware per route: it needs the route template (for the metrics), which
    // only exists inside the router.
    let gate = middleware::from_fn_with_state(state.clone(), extract::gate);
    let router = router
        .fallback(v1::meta::not_found)
        .layer(gate)
        .with_state(state.clone())
        .merge(console::pages())
        .merge(scim::routes(state));
    (router, doc)
}

/// The served application: the router inside the layers every request passes once,
/// outermost first: assign or accept an `X-Request-Id`, open a span carrying it, echo
/// it back, and bound the body size. They wrap the router rather than each route
/// because axum gives every route layer its own boxed service and boxed future per
/// request; here they are one concrete service, cloned without allocating.
pub fn app(
    manager: UserManager,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    let request_id = HeaderName::from_static("x-request-id");
    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request| {
        let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
        tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
    });
    ServiceBuilder::new()
        .map_response(IntoResponse::into_response)
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .service(router(manager).0)
}

/// The router of `server.metrics_listen`: `GET /metrics` with no credential (the bind
/// address is the protection), 404 for anything else.
pub fn metrics_app(manager: UserManager) -> Router {
    /// Who scrapes through the credential-free listener.
    const SCRAPER: Principal = Principal::System("metrics-listener");
    let render = move || {
        let page = manager.ops().render_metrics(&SCRAPER);
        async move {
            match page {
                Ok(body) => v1::admin::prometheus_text(body),
                Err(e) => ApiError::from(e).into_response(),
            }
        }
    };
    Router::new()
        .route("/metrics", axum::routing::get(render))
        .fallback(v1::meta::not_found)
}
