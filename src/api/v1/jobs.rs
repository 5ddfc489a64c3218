//! `/api/v1/admin/jobs`: the scheduler's jobs (operator only) — their schedules, next and
//! last runs, each one's history, and a run on request.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::api::AppState;
use crate::api::extract::{Caller, Query};
use crate::api::problem::{ApiError, Problem};
use crate::engine::{JobRun, JobStatus, JobsView};

type ApiResult<T> = Result<T, ApiError>;

/// Every job: schedule, time zone, next run, the run in progress, the last run and the
/// last success; and whether the scheduler runs in this server.
#[utoipa::path(get, path = "/api/v1/admin/jobs", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = JobsView), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn jobs(State(s): State<AppState>, caller: Caller) -> ApiResult<Json<JobsView>> {
    Ok(Json(s.manager.jobs().list(&caller.principal())?))
}

/// `GET /api/v1/admin/jobs/{name}/runs` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunsQuery {
    /// At most this many (default 20, at most 1,000).
    limit: Option<usize>,
}

/// A job's history, newest first, the run in progress at the top: trigger (schedule,
/// catch-up, operator), start, end, outcome, message and counts.
#[utoipa::path(get, path = "/api/v1/admin/jobs/{name}/runs", tag = "admin", params(("name" = String, Path, description = "the job"), RunsQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<JobRun>), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn runs(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<RunsQuery>,
) -> ApiResult<Json<Vec<JobRun>>> {
    let limit = q.limit.unwrap_or(20);
    if limit == 0 || limit > crate::engine::MAX_RUNS_PAGE {
        return Err(ApiError::InvalidInput {
            field: Some("limit".into()),
            detail: format!(
                "limit must be 1 to {}, got {limit}",
                crate::engine::MAX_RUNS_PAGE
            ),
        });
    }
    Ok(Json(s.manager.jobs().runs(
        &caller.principal(),
        &name,
        limit,
    )?))
}

/// The answer to a run request.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RunRequested {
    /// The job, as it stands when the request was taken (the run starts within moments;
    /// its history shows it).
    job: JobStatus,
}

/// Runs a job now (audited): the scheduler starts it within moments, as the job's
/// system principal. 409 while a run of it is in progress, or when this server runs no
/// scheduler (`automation.enabled = false`).
#[utoipa::path(post, path = "/api/v1/admin/jobs/{name}/run", tag = "admin", params(("name" = String, Path, description = "the job")), security(("bearer" = [])),
    responses((status = 202, body = RunRequested), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn run(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, Json<RunRequested>)> {
    let by = caller.principal();
    let jobs = s.manager.jobs();
    jobs.request(&by, &name).await?;
    let job = jobs
        .list(&by)?
        .jobs
        .into_iter()
        .find(|j| j.name == name)
        .ok_or(ApiError::NotFound("job"))?;
    Ok((StatusCode::ACCEPTED, Json(RunRequested { job })))
}
