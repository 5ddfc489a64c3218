//! `GET /api/v1/admin/analytics/forecast`: users by tier and monthly active users,
//! projected ahead with intervals and a back-test.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use crate::api::AppState;
use crate::api::extract::{Caller, Query};
use crate::api::problem::{ApiError, Problem};
use crate::engine::ForecastReport;

/// `GET /api/v1/admin/analytics/forecast` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForecastParams {
    /// Weeks of history, 7–104 (default 52), the current one included (it is shown in
    /// no series: it is not over).
    weeks: Option<u32>,
    /// Weeks ahead, 1–26 (default 13, about 90 days).
    ahead: Option<u32>,
}

/// Users (all and by tier) and monthly active users week by week, each forecast
/// `ahead` weeks by Holt's linear trend with 95% intervals and the back-test of its
/// last weeks (operator only). Reads the whole store once.
#[utoipa::path(get, path = "/api/v1/admin/analytics/forecast", tag = "analytics", params(ForecastParams), security(("bearer" = [])),
    responses((status = 200, body = ForecastReport), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn forecast(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<ForecastParams>,
) -> Result<Json<ForecastReport>, ApiError> {
    let analytics = s.manager.analytics();
    let (weeks, ahead) = (q.weeks.unwrap_or(52), q.ahead.unwrap_or(13));
    Ok(Json(
        analytics
            .forecast(&caller.principal(), weeks, ahead)
            .await?,
    ))
}
