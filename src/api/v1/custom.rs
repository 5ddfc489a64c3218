//! `/api/v1/users/{id}/models`: a user's own models — trainings, the versions kept,
//! which serves its lists and why (`docs/models.md`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::api::AppState;
use crate::api::extract::{Caller, JsonBody, user_id};
use crate::api::problem::{ApiError, Problem};
use crate::engine::{CustomModelsView, TrainingJob};

/// Starts a training of the user's own model (the user itself or an operator): a blend
/// of the recommender's terms fitted to its listening history (kept while
/// `ai_preferences.custom_model_training` is on) and judged on its newest first plays
/// against the global model. Runs off the request in one of the tier's slots; read it
/// at `GET /users/{id}/models/{job}`, and the user's sockets hear `model.training`.
/// 403 without the tier feature (`custom_model_training`) or the consent to
/// personalisation; 409 with the preference off or a training already queued or
/// running.
#[utoipa::path(post, path = "/api/v1/users/{id}/models", tag = "personalization",
    params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 202, body = TrainingJob), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn train(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TrainingJob>), ApiError> {
    let id = user_id(&caller, &id)?;
    let p = s.manager.personalization();
    let job = p.train_custom(&caller.principal(), id).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// The user's own models: whether one serves its lists (`serving`: `custom` or
/// `global`) and why, the version pinned, the versions kept with their figures, and its
/// trainings since the server started.
#[utoipa::path(get, path = "/api/v1/users/{id}/models", tag = "personalization",
    params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 200, body = CustomModelsView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CustomModelsView>, ApiError> {
    let id = user_id(&caller, &id)?;
    let p = s.manager.personalization();
    Ok(Json(p.custom_models(&caller.principal(), id).await?))
}

/// One training of the user's own model: its state and progress, then the version it
/// made, its figures and whether it serves.
#[utoipa::path(get, path = "/api/v1/users/{id}/models/{job}", tag = "personalization",
    params(("id" = String, Path, description = "user id (UUID)"), ("job" = u64, Path, description = "training id")), security(("bearer" = [])),
    responses((status = 200, body = TrainingJob), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn job(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, job)): Path<(String, String)>,
) -> Result<Json<TrainingJob>, ApiError> {
    let id = user_id(&caller, &id)?;
    let job: u64 = job.parse().map_err(|_| ApiError::InvalidInput {
        field: Some("job".into()),
        detail: format!("must be a training id (a number), got {job:?}"),
    })?;
    let p = s.manager.personalization();
    Ok(Json(p.custom_job(&caller.principal(), id, job)?))
}

/// Which version to pin.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Pin {
    /// The version (one that beat the global model), or `null` to unpin.
    version: Option<u64>,
}

/// Pins a version of the user's own model to serve its lists (only one that beat the
/// global model: 409 otherwise; 404 for one not kept), or unpins with `null`.
#[utoipa::path(put, path = "/api/v1/users/{id}/models/pin", tag = "personalization",
    params(("id" = String, Path, description = "user id (UUID)")), request_body = Pin, security(("bearer" = [])),
    responses((status = 200, body = CustomModelsView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn pin(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Pin>,
) -> Result<Json<CustomModelsView>, ApiError> {
    let id = user_id(&caller, &id)?;
    let p = s.manager.personalization();
    Ok(Json(
        p.pin_custom(&caller.principal(), id, body.version).await?,
    ))
}

/// Deletes a version of the user's own model (unpinning it if pinned).
#[utoipa::path(delete, path = "/api/v1/users/{id}/models/versions/{version}", tag = "personalization",
    params(("id" = String, Path, description = "user id (UUID)"), ("version" = u64, Path, description = "model version")), security(("bearer" = [])),
    responses((status = 200, body = CustomModelsView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, version)): Path<(String, String)>,
) -> Result<Json<CustomModelsView>, ApiError> {
    let id = user_id(&caller, &id)?;
    let version: u64 = version.parse().map_err(|_| ApiError::InvalidInput {
        field: Some("version".into()),
        detail: format!("must be a model version (a number), got {version:?}"),
    })?;
    let p = s.manager.personalization();
    Ok(Json(
        p.delete_custom(&caller.principal(), id, version).await?,
    ))
}
