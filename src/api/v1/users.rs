//! `/api/v1/users`: sign-up, profiles, tiers, passwords, quotas, insights, the data
//! export and deletion. Each handler extracts, makes one front-door call and renders;
//! who may do what is the engine's decision.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::api::AppState;
use crate::api::extract::{Caller, ClientIp, JsonBody, user_id};
use crate::api::problem::{ApiError, Problem};
use crate::domain::profile::{MAX_USAGE, ProfilePatch, QuotaDecision, QuotaKind, UserProfile};
use crate::domain::tier::UserTier;
use crate::engine::{Insights, PasswordChange, SharedProfile, UserExport};

type ApiResult<T> = Result<T, ApiError>;

/// `POST /api/v1/users` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUser {
    email: String,
    password: String,
    #[serde(default)]
    tier: Option<UserTier>,
    #[serde(default)]
    profile_data: Option<ProfilePatch>,
}

/// Sign-up. Anyone may create a Free account; higher tiers need the operator (or
/// self-service tiers in config).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = UserProfile), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)))]
pub(crate) async fn create_user(
    State(s): State<AppState>,
    caller: Caller,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<CreateUser>,
) -> ApiResult<(StatusCode, Json<UserProfile>)> {
    s.limit_anonymous(&caller, ip)?;
    let p = s
        .manager
        .accounts()
        .create(
            &caller.principal(),
            &body.email,
            &body.password,
            body.tier.unwrap_or(UserTier::Free),
            body.profile_data.unwrap_or_default(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// The calling user's profile.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserProfile), (status = 401, body = Problem), (status = 403, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn me(caller: Caller) -> ApiResult<Response> {
    // The authentication step already fetched the caller's profile.
    let a = caller.require_user()?;
    own_profile(&a.profile)
}

/// The caller's own profile, from the JSON its actor keeps rendered (the hottest read).
fn own_profile(p: &SharedProfile) -> ApiResult<Response> {
    let body = p.json().map_err(|e| {
        tracing::error!(error = %e, "rendering a profile failed");
        ApiError::Internal
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// A user's profile.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 200, body = UserProfile), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn get_user(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = user_id(&caller, &id)?;
    // The authentication step already fetched the caller's own profile: no second
    // message to the actor for it.
    if let Caller::User(a) = &caller
        && a.session.user_id == id
    {
        return own_profile(&a.profile);
    }
    let profile = s.manager.accounts().get(&caller.principal(), id).await?;
    Ok(Json(profile).into_response())
}

/// Partial update: `display_name`, `language`, `timezone`, `ai_preferences`,
/// `security_settings` at the top level of the body.
#[utoipa::path(put, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path, description = "user id (UUID)")), request_body = ProfilePatch, security(("bearer" = [])),
    responses((status = 200, body = UserProfile), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem)))]
pub(crate) async fn update_user(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(updates): JsonBody<ProfilePatch>,
) -> ApiResult<Json<UserProfile>> {
    let id = user_id(&caller, &id)?;
    let accounts = s.manager.accounts();
    Ok(Json(
        accounts.update(&caller.principal(), id, updates).await?,
    ))
}

/// Deletes an account (the user itself after a recent authentication, or the operator).
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn delete_user(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = user_id(&caller, &id)?;
    s.manager.accounts().delete(&caller.principal(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Activity, sessions and quota use.
#[utoipa::path(get, path = "/api/v1/users/{id}/insights", tag = "users", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 200, body = Insights), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn insights(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Insights>> {
    let id = user_id(&caller, &id)?;
    let accounts = s.manager.accounts();
    Ok(Json(accounts.insights(&caller.principal(), id).await?))
}

/// Everything held about the user, as one JSON document (data portability): profile,
/// preferences, settings, usage, sessions, known devices, failed logins, activity
/// counters and the audit records naming the user. Field by field in `docs/export.md`.
/// The export itself is audited.
#[utoipa::path(get, path = "/api/v1/users/{id}/export", tag = "users", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 200, body = UserExport), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn export(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = user_id(&caller, &id)?;
    let doc = s.manager.accounts().export(&caller.principal(), id).await?;
    let disposition = format!("attachment; filename=\"roster-export-{id}.json\"");
    Ok(([(header::CONTENT_DISPOSITION, disposition)], Json(doc)).into_response())
}

/// `POST /api/v1/users/{id}/upgrade` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Upgrade {
    new_tier: UserTier,
}

/// Tier change: operator only, unless config allows self-service.
#[utoipa::path(post, path = "/api/v1/users/{id}/upgrade", tag = "users", params(("id" = String, Path, description = "user id (UUID)")), request_body = Upgrade, security(("bearer" = [])),
    responses((status = 200, body = UserProfile), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn upgrade(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Upgrade>,
) -> ApiResult<Json<UserProfile>> {
    let id = user_id(&caller, &id)?;
    let accounts = s.manager.accounts();
    Ok(Json(
        accounts
            .change_tier(&caller.principal(), id, body.new_tier)
            .await?,
    ))
}

/// `POST /api/v1/users/{id}/password` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePassword {
    current_password: String,
    new_password: String,
}

/// Password change by the user itself; every other session ends.
#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "users", params(("id" = String, Path, description = "user id (UUID)")), request_body = ChangePassword, security(("bearer" = [])),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem), (status = 409, body = Problem), (status = 503, body = Problem)))]
pub(crate) async fn change_password(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ChangePassword>,
) -> ApiResult<StatusCode> {
    let id = user_id(&caller, &id)?;
    let by = caller.principal();
    match s
        .manager
        .accounts()
        .change_password(&by, id, &body.current_password, &body.new_password)
        .await?
    {
        PasswordChange::Changed => Ok(StatusCode::NO_CONTENT),
        PasswordChange::WrongPassword => Err(ApiError::InvalidInput {
            field: Some("current_password".into()),
            detail: "the current password is incorrect".into(),
        }),
    }
}

/// `POST /api/v1/users/{id}/usage` body: a change of a quota counter.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Usage {
    kind: QuotaKind,
    delta: i64,
}

/// Quota use after an accepted change.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UsageReply {
    kind: QuotaKind,
    used: u64,
    limit: Option<u64>,
}

/// Counts quota use against the tier limit, atomically in the user's actor. A 200 means
/// the whole delta was counted; freeing more than is counted, or a total past 2⁶³ − 1,
/// is a 409 and counts nothing; passing the tier's limit is a 403 `quota-exceeded`.
#[utoipa::path(post, path = "/api/v1/users/{id}/usage", tag = "users", params(("id" = String, Path, description = "user id (UUID)")), request_body = Usage, security(("bearer" = [])),
    responses((status = 200, body = UsageReply), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 415, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn record_usage(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Usage>,
) -> ApiResult<Json<UsageReply>> {
    let id = user_id(&caller, &id)?;
    let by = caller.principal();
    match s
        .manager
        .accounts()
        .record_usage(&by, id, body.kind, body.delta)
        .await?
    {
        QuotaDecision::Accepted { used, limit } => Ok(Json(UsageReply {
            kind: body.kind,
            used,
            limit,
        })),
        QuotaDecision::OutOfRange { used, delta } if delta < 0 => Err(ApiError::Conflict(format!(
            "cannot free {}: only {used} counted",
            delta.unsigned_abs()
        ))),
        QuotaDecision::OutOfRange { used, delta } => Err(ApiError::Conflict(format!(
            "cannot count {delta} more: the total would pass {MAX_USAGE} ({used} counted)"
        ))),
        QuotaDecision::Exceeded {
            used,
            limit,
            requested,
        } => Err(ApiError::QuotaExceeded {
            kind: serde_json::to_value(body.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            used,
            limit: limit.unwrap_or(u64::MAX),
            requested,
        }),
    }
}
