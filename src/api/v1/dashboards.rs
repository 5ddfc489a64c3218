//! `/api/v1/admin/dashboards`: the operators' custom dashboards, saved by name.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::api::extract::{Caller, JsonBody};
use crate::api::problem::{ApiError, Problem};
use crate::domain::dashboard::{Dashboard, DashboardDraft};

type ApiResult<T> = Result<T, ApiError>;

/// Every saved dashboard (operator only).
#[utoipa::path(get, path = "/api/v1/admin/dashboards", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<Dashboard>), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<Dashboard>>> {
    Ok(Json(s.manager.ops().dashboards(&caller.principal())?))
}

/// One saved dashboard (operator only).
#[utoipa::path(get, path = "/api/v1/admin/dashboards/{name}", tag = "admin",
    params(("name" = String, Path, description = "the dashboard's name")), security(("bearer" = [])),
    responses((status = 200, body = Dashboard), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Dashboard>> {
    Ok(Json(s.manager.ops().dashboard(&caller.principal(), &name)?))
}

/// Saves a dashboard under `name` (operator only; audited): 201 when new, 200 when it
/// replaced the one of that name. Durable when it answers.
#[utoipa::path(put, path = "/api/v1/admin/dashboards/{name}", tag = "admin", request_body = DashboardDraft,
    params(("name" = String, Path, description = "the dashboard's name: 1 to 64 of a-z, 0-9, - and _")), security(("bearer" = [])),
    responses((status = 200, body = Dashboard), (status = 201, body = Dashboard), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 415, body = Problem)))]
pub(crate) async fn put(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(draft): JsonBody<DashboardDraft>,
) -> ApiResult<Response> {
    let ops = s.manager.ops();
    let (dashboard, created) = ops
        .save_dashboard(&caller.principal(), &name, draft)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(dashboard)).into_response())
}

/// Deletes a saved dashboard (operator only; audited).
#[utoipa::path(delete, path = "/api/v1/admin/dashboards/{name}", tag = "admin",
    params(("name" = String, Path, description = "the dashboard's name")), security(("bearer" = [])),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let ops = s.manager.ops();
    ops.delete_dashboard(&caller.principal(), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
