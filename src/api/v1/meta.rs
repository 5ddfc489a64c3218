//! The API describing itself and the server's health: `/api/v1/openapi.json`,
//! `/healthz`, `/readyz`, and the answer to any unknown path.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::problem::{ApiError, Problem};

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", responses((status = 200, body = Object)))]
pub(crate) async fn openapi_json(
    State(s): State<AppState>,
) -> Result<Json<utoipa::openapi::OpenApi>, ApiError> {
    s.openapi
        .get()
        .cloned()
        .map(Json)
        .ok_or(ApiError::Unavailable)
}

/// Any unknown path.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("resource")
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Object)))]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the engine's shards are up.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, body = Object), (status = 503, body = Problem)))]
pub(crate) async fn readyz(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    if !s.manager.ready() {
        return Err(ApiError::Unavailable);
    }
    let shards: usize = s.manager.config().tiers.iter().map(|t| t.shards).sum();
    Ok(Json(
        json!({ "status": "ready", "live_users": s.manager.live_users(), "shards": shards }),
    ))
}
