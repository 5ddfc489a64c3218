//! The HTTP facade: a thin axum router over [`UserManager`]. For now it serves the
//! health endpoints; the REST API of the seed grows here.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::engine::UserManager;

/// The router, with the manager as state.
pub fn app(manager: UserManager) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(manager)
}

/// Liveness: the process answers.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the engine answers, with live and stored user counts.
async fn readyz(State(m): State<UserManager>) -> (StatusCode, Json<serde_json::Value>) {
    let stats = m.shard_stats();
    if stats.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "starting" })),
        );
    }
    (
        StatusCode::OK,
        Json(json!({ "status": "ready", "live_users": m.live_users(), "shards": stats.len() })),
    )
}
