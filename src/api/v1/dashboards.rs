//! `/api/v1/admin/dashboards`: the operators' custom dashboards, saved by name, their
//! reports and their read-only links; `/api/v1/shared/dashboard`: what a link shows.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::api::AppState;
use crate::api::extract::{Caller, ClientIp, JsonBody};
use crate::api::problem::{ApiError, Problem};
use crate::domain::dashboard::{Dashboard, DashboardDraft, DashboardReport};
use crate::domain::share::{Share, ShareDraft};
use crate::domain::time::Timestamp;
use crate::engine::EngineError;

/// The header a read-only link's token travels in.
pub(crate) const SHARE_HEADER: &str = "x-dashboard-share";

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
/// replaced the one of that name (its links stay, and show what it shows now); 409 when
/// 100 are saved and this one is new. Durable when it answers.
#[utoipa::path(put, path = "/api/v1/admin/dashboards/{name}", tag = "admin", request_body = DashboardDraft,
    params(("name" = String, Path, description = "the dashboard's name: 1 to 64 of a-z, 0-9, - and _")), security(("bearer" = [])),
    responses((status = 200, body = Dashboard), (status = 201, body = Dashboard), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem), (status = 415, body = Problem)))]
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

/// What a dashboard shows now: each panel's figures, computed for this call (operator
/// only).
#[utoipa::path(get, path = "/api/v1/admin/dashboards/{name}/report", tag = "admin",
    params(("name" = String, Path, description = "the dashboard's name")), security(("bearer" = [])),
    responses((status = 200, body = DashboardReport), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn report(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<DashboardReport>> {
    let ops = s.manager.ops();
    Ok(Json(
        ops.dashboard_report(&caller.principal(), &name).await?,
    ))
}

/// A read-only link, made.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SharedLink {
    /// The link as the dashboard lists it.
    share: Share,
    /// Its token: shown this once, only its digest is kept.
    token: String,
    /// The page that shows it, token included (in the fragment, which browsers never
    /// send to a server): `/shared#t=<token>` on this server.
    path: String,
}

/// Makes a read-only link to a dashboard (operator only; audited): whoever holds its
/// token sees the dashboard's figures — no user named — at `/shared#t=<token>` until
/// it expires or is revoked. At most 20 live links per dashboard (409 beyond).
#[utoipa::path(post, path = "/api/v1/admin/dashboards/{name}/shares", tag = "admin", request_body = ShareDraft,
    params(("name" = String, Path, description = "the dashboard's name")), security(("bearer" = [])),
    responses((status = 201, body = SharedLink), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 415, body = Problem)))]
pub(crate) async fn share(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(draft): JsonBody<ShareDraft>,
) -> ApiResult<Response> {
    let ops = s.manager.ops();
    let (share, token) = ops
        .share_dashboard(&caller.principal(), &name, draft)
        .await?;
    let path = format!("/shared#t={token}");
    let mut resp = (StatusCode::CREATED, Json(SharedLink { share, token, path })).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Revokes a read-only link of a dashboard (operator only; audited): its token opens
/// nothing from this answer on.
#[utoipa::path(delete, path = "/api/v1/admin/dashboards/{name}/shares/{id}", tag = "admin",
    params(("name" = String, Path, description = "the dashboard's name"), ("id" = String, Path, description = "the link's id")),
    security(("bearer" = [])),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn revoke_share(
    State(s): State<AppState>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ops = s.manager.ops();
    ops.revoke_share(&caller.principal(), &name, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a read-only link shows.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SharedView {
    /// The dashboard's figures (computed at most a minute ago; no user named, a
    /// cohort or churn band of fewer than 10 users shown only as small).
    report: DashboardReport,
    /// When the link stops working.
    link_expires_at: Timestamp,
}

/// The dashboard a read-only link opens, for anyone holding its token (sent as
/// `X-Dashboard-Share`; no operator key). Counted against the client address's hourly
/// allowance like the other public calls. A token that opens nothing — unknown,
/// expired or revoked — gets one and the same 401.
#[utoipa::path(get, path = "/api/v1/shared/dashboard", tag = "admin",
    params(("X-Dashboard-Share" = Option<String>, Header, description = "the link's token (without it: 401)")),
    responses((status = 200, body = SharedView), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn shared(
    State(s): State<AppState>,
    caller: Caller,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> ApiResult<Response> {
    s.limit_anonymous(&caller, ip)?;
    let token = headers
        .get(SHARE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(EngineError::Unauthenticated(
            "send the link's token in the X-Dashboard-Share header",
        ))?;
    let (report, link_expires_at) = s.manager.ops().shared_report(token).await?;
    let view = SharedView {
        report: (*report).clone(),
        link_expires_at,
    };
    let mut resp = Json(view).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(resp)
}
