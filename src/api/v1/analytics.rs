//! `/api/v1/admin/analytics/*`: the operators' reports over the stored population
//! (`docs/analytics.md` says how each is computed).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use crate::api::AppState;
use crate::api::extract::{Caller, Query};
use crate::api::problem::{ApiError, Problem};
use crate::domain::tier::UserTier;
use crate::engine::{CohortQuery, CohortTable, CohortUnit, Overview};

type ApiResult<T> = Result<T, ApiError>;

/// Users by tier, DAU/WAU/MAU and events of the last day, week and month (operator
/// only). Live actors write their unsaved activity first, so the figures include
/// everything clients sent until the call.
#[utoipa::path(get, path = "/api/v1/admin/analytics/overview", tag = "analytics", security(("bearer" = [])),
    responses((status = 200, body = Overview), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn overview(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Overview>> {
    Ok(Json(
        s.manager.analytics().overview(&caller.principal()).await?,
    ))
}

/// `GET /api/v1/admin/analytics/cohorts` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct CohortParams {
    /// `week` (default; calendar weeks from Monday, UTC) or `month`.
    unit: Option<CohortUnit>,
    /// Periods per cohort and number of cohorts, 1–104 (default 12).
    periods: Option<u32>,
    /// Only users of this tier (their tier now).
    tier: Option<UserTier>,
}

/// Retention cohorts by sign-up week or month (operator only): `retention[i]` is the
/// share of the cohort active in period `i` (period 0 is 1.0), `null` where the period
/// has not ended.
#[utoipa::path(get, path = "/api/v1/admin/analytics/cohorts", tag = "analytics", params(CohortParams), security(("bearer" = [])),
    responses((status = 200, body = CohortTable), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn cohorts(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<CohortParams>,
) -> ApiResult<Json<CohortTable>> {
    let query = CohortQuery {
        unit: q.unit.unwrap_or(CohortUnit::Week),
        periods: q.periods.unwrap_or(12),
        tier: q.tier,
    };
    let analytics = s.manager.analytics();
    Ok(Json(analytics.cohorts(&caller.principal(), query).await?))
}
