//! `POST /api/v1/users/{id}/activity`: listening activity from a server-side client of
//! the user's own (the socket's `activity` frame, over HTTP).

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use crate::api::AppState;
use crate::api::extract::{Caller, JsonBody, user_id};
use crate::api::problem::{ApiError, Problem};
use crate::domain::activity::ActivityEvent;
use crate::engine::ActivityOutcome;

/// The events of one request, as in the socket's `activity` frame.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActivityBody {
    /// 1–100 events, all counted or none.
    events: Vec<ActivityEvent>,
}

/// What was counted.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ActivityAck {
    /// Events counted.
    accepted: usize,
}

/// Counts 1–100 activity events of the user (itself, through its session), all or none,
/// as one request against the tier's rate. Only with the user's consent to analytics
/// (403 `consent-required` otherwise, nothing counted). Live events are at most 30 days
/// old; an operator imports older history through `/admin/activity/import`.
#[utoipa::path(post, path = "/api/v1/users/{id}/activity", tag = "analytics", params(("id" = String, Path, description = "user id (UUID)")), request_body = ActivityBody, security(("bearer" = [])),
    responses((status = 200, body = ActivityAck), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem)))]
pub(crate) async fn record_activity(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ActivityBody>,
) -> Result<Json<ActivityAck>, ApiError> {
    let id = user_id(&caller, &id)?;
    let analytics = s.manager.analytics();
    match analytics
        .record_activity(&caller.principal(), id, body.events)
        .await?
    {
        ActivityOutcome::Recorded { accepted } => Ok(Json(ActivityAck { accepted })),
        ActivityOutcome::ConsentRequired { reason } => Err(ApiError::ConsentRequired(reason)),
        ActivityOutcome::SessionInvalid => Err(ApiError::Unauthorized(
            "the session has ended; log in again",
        )),
        ActivityOutcome::RateLimited { retry_after_secs } => {
            let tier = caller.require_user()?.session.tier;
            let limit = s.manager.config().tier(tier).policy.requests_per_hour;
            Err(ApiError::RateLimited {
                limit: limit.value().unwrap_or(u64::MAX),
                retry_after: retry_after_secs,
            })
        }
    }
}
