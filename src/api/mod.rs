//! The HTTP facade: a thin axum router over [`UserManager`]. Handlers extract, make one
//! manager call and render; no business rule lives here.

mod extract;
mod handlers;
mod iplimit;
pub mod problem;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::{Router, middleware};

use crate::domain::time::SystemClock;
use crate::engine::UserManager;

pub use extract::Caller;
pub use problem::ApiError;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub manager: UserManager,
    /// The operator key, if operator endpoints are open.
    pub admin_key: Option<Arc<str>>,
    /// Limits for unauthenticated endpoints per client address.
    pub ip_limiter: Arc<iplimit::IpLimiter>,
    /// Whether users may change their own tier.
    pub self_service_tiers: bool,
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
        let self_service_tiers = cfg.self_service_tier_changes;
        Self {
            manager,
            admin_key,
            ip_limiter,
            self_service_tiers,
        }
    }
}

/// The router, with its state.
pub fn app(manager: UserManager) -> Router {
    let state = AppState::new(manager);
    let api = Router::new()
        .route("/users", post(handlers::create_user))
        .route("/users/me", get(handlers::me))
        .route(
            "/users/{id}",
            get(handlers::get_user)
                .put(handlers::update_user)
                .delete(handlers::delete_user),
        )
        .route("/users/{id}/insights", get(handlers::insights))
        .route("/users/{id}/upgrade", post(handlers::upgrade))
        .route("/users/{id}/password", post(handlers::change_password))
        .route("/users/{id}/usage", post(handlers::record_usage))
        .route("/users/{id}/sessions", get(handlers::list_sessions))
        .route(
            "/users/{id}/sessions/revoke-others",
            post(handlers::revoke_other_sessions),
        )
        .route(
            "/users/{id}/sessions/{sid}",
            delete(handlers::revoke_session),
        )
        .route("/auth/login", post(handlers::login))
        .route("/auth/logout", post(handlers::logout))
        .fallback(handlers::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            extract::authenticate,
        ));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .fallback(handlers::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
