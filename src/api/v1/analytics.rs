//! `/api/v1/admin/analytics/*`: the operators' reports over the stored population
//! (`docs/analytics.md` says how each is computed).

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::AppState;
use crate::api::extract::{Caller, Query};
use crate::api::problem::{ApiError, Problem};
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;
use crate::engine::{
    ChurnModel, ChurnReport, CohortQuery, CohortTable, CohortUnit, ComplianceReport, LiveFigures,
    Overview, SegmentModel, TierAnalysis, TierReport, Trained, UsageReport,
};

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

/// Live figures (operator only): users seen in the last five minutes by tier, events
/// and logins per second (the last ten seconds), sign-ups today, live actors. Pushed once
/// a second on the `GET /api/v1/admin/live` socket.
#[utoipa::path(get, path = "/api/v1/admin/analytics/live", tag = "analytics", security(("bearer" = [])),
    responses((status = 200, body = LiveFigures), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn live(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<LiveFigures>> {
    Ok(Json(s.manager.analytics().live(&caller.principal())?))
}

/// Second factors by tier (enrolled, required at every login, by kind) and consents by
/// purpose (granted, withdrawn, never answered, in force under the age rule) over every
/// stored user (operator only): counts, never a user.
#[utoipa::path(get, path = "/api/v1/admin/analytics/compliance", tag = "analytics", security(("bearer" = [])),
    responses((status = 200, body = ComplianceReport), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn compliance(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<ComplianceReport>> {
    let analytics = s.manager.analytics();
    Ok(Json(analytics.compliance(&caller.principal()).await?))
}

/// `GET /api/v1/admin/analytics/tiers` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct TierParams {
    /// Weeks, 1–104 (default 12).
    weeks: Option<u32>,
}

/// Users by tier at the end of each of the last weeks (the current one: now) and the
/// migrations between tiers week by week (operator only), from the stored users and the
/// audit log's tier changes.
#[utoipa::path(get, path = "/api/v1/admin/analytics/tiers", tag = "analytics", params(TierParams), security(("bearer" = [])),
    responses((status = 200, body = TierReport), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn tiers(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<TierParams>,
) -> ApiResult<Json<TierReport>> {
    let analytics = s.manager.analytics();
    Ok(Json(
        analytics
            .tiers(&caller.principal(), q.weeks.unwrap_or(12))
            .await?,
    ))
}

/// `GET /api/v1/admin/analytics/opportunities` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpportunityParams {
    /// Candidates listed of each kind, strongest first: 1–100,000 (default 1,000).
    limit: Option<usize>,
}

/// Tier analysis (operator only): users who are candidates for a move between tiers —
/// Free users near their quotas or listening most days (`upgrade`), paid users using
/// little of their tier (`downgrade`), Premium users using features as Enterprise users
/// do (`enterprise_fit`), paid users at high churn risk (`retention`) — each with its
/// reasons; only users consenting to analytics are analysed (`docs/automation.md`).
#[utoipa::path(get, path = "/api/v1/admin/analytics/opportunities", tag = "analytics", params(OpportunityParams), security(("bearer" = [])),
    responses((status = 200, body = TierAnalysis), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn opportunities(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<OpportunityParams>,
) -> ApiResult<Json<TierAnalysis>> {
    let analytics = s.manager.analytics();
    Ok(Json(
        analytics
            .tier_analysis(&caller.principal(), q.limit.unwrap_or(1_000))
            .await?,
    ))
}

/// `GET /api/v1/admin/analytics/usage` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageParams {
    /// The period's first day, `YYYY-MM-DD` (UTC; default: 29 days before `to`).
    from: Option<String>,
    /// The period's last day, included, `YYYY-MM-DD` (UTC; default: today).
    to: Option<String>,
}

/// `YYYY-MM-DD` as days since 1970-01-01.
fn day(field: &'static str, text: Option<&str>) -> ApiResult<Option<u32>> {
    let Some(text) = text else { return Ok(None) };
    crate::domain::history::parse_day(text)
        .map(Some)
        .ok_or_else(|| ApiError::InvalidInput {
            field: Some(field.into()),
            detail: "must be a date as YYYY-MM-DD, from 1970-01-01".into(),
        })
}

/// The usage report of a period (operator only): day by day the sign-ups by tier, the
/// active users (`null` for days older than five weeks), the security events by kind
/// (`login_succeeded` are the logins) and the risk decisions; the tier features' use in
/// the period; the engagement distribution now. At most 366 days, ending today at the
/// latest (`docs/analytics.md`).
#[utoipa::path(get, path = "/api/v1/admin/analytics/usage", tag = "analytics", params(UsageParams), security(("bearer" = [])),
    responses((status = 200, body = UsageReport), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn usage(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<UsageParams>,
) -> ApiResult<Json<UsageReport>> {
    let (from, to) = (day("from", q.from.as_deref())?, day("to", q.to.as_deref())?);
    let analytics = s.manager.analytics();
    Ok(Json(analytics.usage(&caller.principal(), from, to).await?))
}

/// `GET /api/v1/admin/analytics/cohorts` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct CohortParams {
    /// `week` (default; calendar weeks from Monday, UTC) or `month`.
    unit: Option<CohortUnit>,
    /// Periods per cohort and number of cohorts: 1–104 weeks or 1–24 months (default 12).
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

/// Trains the churn model and the behaviour segments on the stored population, from one
/// read of the store (operator only; one training at a time, 409 while one runs). The answer streams as JSON lines: `{"phase": "reading", "users"}`
/// while the store is read, `{"phase": "scanned", "users", "training_rows",
/// "holdout_rows"}`, `{"phase": "step", "step", "log_loss"}` per Newton step, then
/// `{"model": {"version", "auc", "log_loss", "calibration_gap", "training_rows",
/// "usable", "trained_at"}, "segments": {"version", "segments"} | null}` or
/// `{"error": problem}` (too little history is a 409 problem there). The full card is at `GET /admin/analytics/churn`.
#[utoipa::path(post, path = "/api/v1/admin/analytics/train", tag = "analytics", security(("bearer" = [])),
    responses((status = 200, content_type = "application/x-ndjson", body = TrainSummary,
        description = "progress lines, then the model's summary under `model`"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "a training is running")))]
pub(crate) async fn train(State(s): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let (by, m) = (caller.principal(), s.manager.clone());
    super::stream::job(
        move |progress| async move { m.analytics().train(&by, progress).await },
        |t: Trained| {
            json!({
                "model": TrainSummary::of(&t.churn),
                "segments": t.segments.map(|s| json!({"version": s.version, "segments": s.segments})),
            })
        },
    )
    .await
}

/// The last line of a training.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TrainSummary {
    version: u64,
    trained_at: Timestamp,
    auc: f64,
    log_loss: f64,
    calibration_gap: f64,
    training_rows: u64,
    holdout_rows: u64,
    usable: bool,
}

impl TrainSummary {
    fn of(m: &ChurnModel) -> Self {
        Self {
            version: m.version,
            trained_at: m.trained_at,
            auc: m.evaluation.auc,
            log_loss: m.evaluation.log_loss,
            calibration_gap: m.evaluation.calibration_gap,
            training_rows: m.training_rows,
            holdout_rows: m.evaluation.rows,
            usable: m.usable,
        }
    }
}

/// `GET /api/v1/admin/analytics/churn` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChurnParams {
    /// At-risk users to skip (default 0; `offset + limit` at most 10,000).
    offset: Option<usize>,
    /// At-risk users to list, 1–500 (default 50).
    limit: Option<usize>,
}

/// The churn model card (version, when trained, rows, held-out metrics with the
/// reliability table, features with their coefficients), every stored version, and the
/// users most likely to churn, highest probability first, with their reasons (operator
/// only).
#[utoipa::path(get, path = "/api/v1/admin/analytics/churn", tag = "analytics", params(ChurnParams), security(("bearer" = [])),
    responses((status = 200, body = ChurnReport), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn churn(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<ChurnParams>,
) -> ApiResult<Json<ChurnReport>> {
    let analytics = s.manager.analytics();
    Ok(Json(
        analytics
            .churn_report(
                &caller.principal(),
                q.offset.unwrap_or(0),
                q.limit.unwrap_or(50),
            )
            .await?,
    ))
}

/// The behaviour segments in force (operator only): each segment's size, centroid in
/// the features' own units and generated name; `model` is `null` before a training.
#[utoipa::path(get, path = "/api/v1/admin/analytics/segments", tag = "analytics", security(("bearer" = [])),
    responses((status = 200, body = SegmentsReport), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn segments(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<SegmentsReport>> {
    let model = s.manager.analytics().segments(&caller.principal())?;
    Ok(Json(SegmentsReport { model }))
}

/// `GET /admin/analytics/segments`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SegmentsReport {
    /// The segmentation in force, if any.
    model: Option<SegmentModel>,
}
