//! Request handlers: extract → one `UserManager` call → render.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::extract::{Caller, ClientIp, JsonBody, Origin};
use super::problem::{ApiError, Problem};
use crate::domain::ids::{SessionId, UserId};
use crate::domain::profile::{ProfilePatch, QuotaDecision, QuotaKind, UserProfile};
use crate::domain::rate::RateDecision;
use crate::domain::session::{LoginContext, SessionView};
use crate::domain::tier::UserTier;
use crate::engine::audit::{AuditAction, AuditActor, AuditEntry};
use crate::engine::shared_profile::SharedProfile;
use crate::engine::{
    Insights, LoginChallenge, LoginOutcome, LoginSuccess, PasswordChange, ShardStats, UserExport,
};

type ApiResult<T> = Result<T, ApiError>;

pub(super) fn parse_id(raw: &str) -> ApiResult<UserId> {
    raw.parse().map_err(|_| ApiError::NotFound("user"))
}

/// Checks the caller may act on user `raw` and returns its id. Anonymous callers are
/// refused before the id is even looked at.
pub(super) fn target(caller: &Caller, raw: &str) -> ApiResult<UserId> {
    if let Caller::Anonymous = caller {
        return Err(ApiError::Unauthorized("a bearer token is required"));
    }
    let id = parse_id(raw)?;
    caller.require_self_or_admin(id)?;
    Ok(id)
}

/// Who the audit log names for `caller` (only operators and users act).
fn audit_actor(caller: &Caller) -> Option<AuditActor> {
    match caller {
        Caller::Admin => Some(AuditActor::Operator),
        Caller::User(a) => Some(AuditActor::User {
            id: a.session.user_id,
        }),
        Caller::Anonymous => None,
    }
}

/// Records an operator's read of a user's data.
pub(super) async fn audit_admin_read(
    s: &AppState,
    caller: &Caller,
    user: UserId,
    what: &str,
) -> ApiResult<()> {
    if let Caller::Admin = caller {
        let action = AuditAction::UserRead {
            user,
            what: what.to_owned(),
        };
        s.manager.audit(AuditActor::Operator, action).await?;
    }
    Ok(())
}

pub(super) fn limit_anonymous(
    state: &AppState,
    caller: &Caller,
    ip: std::net::IpAddr,
) -> ApiResult<()> {
    if let Caller::Admin = caller {
        return Ok(());
    }
    match state.ip_limiter.check(ip) {
        RateDecision::Limited {
            limit,
            retry_after_secs,
        } => Err(ApiError::RateLimited {
            limit,
            retry_after: retry_after_secs,
        }),
        RateDecision::Allowed { .. } => Ok(()),
    }
}

/// `POST /api/v1/users` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
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
pub async fn create_user(
    State(s): State<AppState>,
    caller: Caller,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<CreateUser>,
) -> ApiResult<(StatusCode, Json<UserProfile>)> {
    limit_anonymous(&s, &caller, ip)?;
    let tier = body.tier.unwrap_or(UserTier::Free);
    if tier != UserTier::Free && !matches!(caller, Caller::Admin) && !s.self_service_tiers {
        return Err(ApiError::Forbidden(
            "only the operator may create accounts above the free tier",
        ));
    }
    let p = s
        .manager
        .create_user(
            &body.email,
            &body.password,
            tier,
            body.profile_data.unwrap_or_default(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// `POST /api/v1/auth/login` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    email: String,
    password: String,
    #[serde(default)]
    context: Option<LoginContext>,
}

/// Login. Unknown email, wrong password, a locked account and a login refused by the
/// risk engine get the same answer. When a second factor is needed (the user's
/// settings, a zero-trust tier, or the risk score) the answer is `202` with a challenge
/// to complete at `/auth/login/mfa`. `context.ip_address` is taken from the connection
/// (or a trusted proxy's `X-Forwarded-For`) unless the operator key is sent.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Login,
    responses((status = 200, body = LoginSuccess), (status = 202, body = LoginChallenge), (status = 400, body = Problem), (status = 401, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)))]
pub async fn login(
    State(s): State<AppState>,
    caller: Caller,
    Origin(origin): Origin,
    JsonBody(body): JsonBody<Login>,
) -> ApiResult<Response> {
    let ip = origin
        .ip
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    limit_anonymous(&s, &caller, ip)?;
    let mut context = body.context.unwrap_or_default();
    // The client's address is the connection's, unless the operator (a trusted front end
    // logging users in on their behalf) says otherwise: risk checks must not trust a
    // client's word for where it is.
    if !matches!(caller, Caller::Admin) || context.ip_address.is_none() {
        context.ip_address = Some(ip);
    }
    if context.device_id.is_none() {
        context.device_id = origin.device_id;
    }
    match s
        .manager
        .authenticate_user_at(&body.email, &body.password, context, origin.location)
        .await?
    {
        LoginOutcome::Success(ok) => Ok(Json(*ok).into_response()),
        LoginOutcome::Challenge(c) => Ok((StatusCode::ACCEPTED, Json(*c)).into_response()),
        LoginOutcome::Denied(_) => Err(ApiError::InvalidCredentials),
    }
}

/// Ends the calling session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn logout(State(s): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    let a = caller.require_user()?;
    s.manager
        .revoke_session(a.session.user_id, a.session.session_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The calling user's profile.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserProfile), (status = 401, body = Problem), (status = 403, body = Problem), (status = 429, body = Problem)))]
pub async fn me(caller: Caller) -> ApiResult<Response> {
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
pub async fn get_user(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = target(&caller, &id)?;
    match &caller {
        // The authentication step already fetched the caller's own profile.
        Caller::User(a) if a.session.user_id == id => own_profile(&a.profile),
        _ => {
            let profile = s.manager.get_user(id).await?;
            audit_admin_read(&s, &caller, id, "profile").await?;
            Ok(Json(profile).into_response())
        }
    }
}

/// Partial update: `display_name`, `language`, `timezone`, `ai_preferences`,
/// `security_settings` at the top level of the body.
#[utoipa::path(put, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path, description = "user id (UUID)")), request_body = ProfilePatch, security(("bearer" = [])),
    responses((status = 200, body = UserProfile), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem)))]
pub async fn update_user(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(updates): JsonBody<ProfilePatch>,
) -> ApiResult<Json<UserProfile>> {
    let id = target(&caller, &id)?;
    Ok(Json(s.manager.update_user_profile(id, updates).await?))
}

/// Deletes an account (the user itself or the operator).
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn delete_user(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = target(&caller, &id)?;
    s.manager
        .require_recent_auth(id, caller.session_id())
        .await?;
    s.manager.delete_user(id).await?;
    if let Some(actor) = audit_actor(&caller) {
        s.manager
            .audit(actor, AuditAction::UserDeleted { user: id })
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Activity, sessions and quota use.
#[utoipa::path(get, path = "/api/v1/users/{id}/insights", tag = "users", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 200, body = Insights), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn insights(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Insights>> {
    let id = target(&caller, &id)?;
    let insights = s.manager.get_user_insights(id).await?;
    audit_admin_read(&s, &caller, id, "insights").await?;
    Ok(Json(insights))
}

/// Everything held about the user, as one JSON document (data portability): profile,
/// preferences, settings, usage, sessions, known devices, failed logins, activity
/// counters and the audit records naming the user. Field by field in `docs/export.md`.
/// The export itself is audited.
#[utoipa::path(get, path = "/api/v1/users/{id}/export", tag = "users", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 200, body = UserExport), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn export(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = target(&caller, &id)?;
    s.manager
        .require_recent_auth(id, caller.session_id())
        .await?;
    let doc = s.manager.export_user(id).await?;
    if let Some(actor) = audit_actor(&caller) {
        s.manager
            .audit(actor, AuditAction::DataExported { user: id })
            .await?;
    }
    let disposition = format!("attachment; filename=\"roster-export-{id}.json\"");
    Ok((
        [(axum::http::header::CONTENT_DISPOSITION, disposition)],
        Json(doc),
    )
        .into_response())
}

/// `POST /api/v1/users/{id}/upgrade` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Upgrade {
    new_tier: UserTier,
}

/// Tier change: operator only, unless config allows self-service.
#[utoipa::path(post, path = "/api/v1/users/{id}/upgrade", tag = "users", params(("id" = String, Path, description = "user id (UUID)")), request_body = Upgrade, security(("bearer" = [])),
    responses((status = 200, body = UserProfile), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn upgrade(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Upgrade>,
) -> ApiResult<Json<UserProfile>> {
    let id = target(&caller, &id)?;
    if !matches!(caller, Caller::Admin) && !s.self_service_tiers {
        return Err(ApiError::Forbidden(
            "tier changes need the operator credential",
        ));
    }
    let profile = s.manager.upgrade_user_tier(id, body.new_tier).await?;
    if let Some(actor) = audit_actor(&caller) {
        let action = AuditAction::TierChanged {
            user: id,
            to: body.new_tier,
        };
        s.manager.audit(actor, action).await?;
    }
    Ok(Json(profile))
}

/// `POST /api/v1/users/{id}/password` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    current_password: String,
    new_password: String,
}

/// Password change by the user itself; every other session ends.
#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "users", params(("id" = String, Path, description = "user id (UUID)")), request_body = ChangePassword, security(("bearer" = [])),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem), (status = 409, body = Problem), (status = 503, body = Problem)))]
pub async fn change_password(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ChangePassword>,
) -> ApiResult<StatusCode> {
    let id = target(&caller, &id)?;
    let a = caller.require_user()?;
    let keep = Some(a.session.session_id);
    // With an authenticator enrolled the password alone no longer proves the user:
    // the session must have stepped up (password and code) recently.
    if s.manager.mfa_status(id).await?.authenticator {
        s.manager.require_recent_auth(id, keep).await?;
    }
    match s
        .manager
        .change_password(id, &body.current_password, &body.new_password, keep)
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
pub struct Usage {
    kind: QuotaKind,
    delta: i64,
}

/// Quota use after an accepted change.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UsageReply {
    kind: QuotaKind,
    used: u64,
    limit: Option<u64>,
}

/// Counts quota use against the tier limit, atomically in the user's actor.
#[utoipa::path(post, path = "/api/v1/users/{id}/usage", tag = "users", params(("id" = String, Path, description = "user id (UUID)")), request_body = Usage, security(("bearer" = [])),
    responses((status = 200, body = UsageReply), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn record_usage(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Usage>,
) -> ApiResult<Json<UsageReply>> {
    let id = target(&caller, &id)?;
    match s.manager.record_usage(id, body.kind, body.delta).await? {
        QuotaDecision::Accepted { used, limit } => Ok(Json(UsageReply {
            kind: body.kind,
            used,
            limit,
        })),
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

/// Live sessions.
#[utoipa::path(get, path = "/api/v1/users/{id}/sessions", tag = "sessions", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 200, body = Vec<SessionView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn list_sessions(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<SessionView>>> {
    let id = target(&caller, &id)?;
    let sessions = s.manager.list_sessions(id).await?;
    audit_admin_read(&s, &caller, id, "sessions").await?;
    Ok(Json(sessions))
}

/// Revokes one session.
#[utoipa::path(delete, path = "/api/v1/users/{id}/sessions/{sid}", tag = "sessions",
    params(("id" = String, Path, description = "user id (UUID)"), ("sid" = String, Path, description = "session id (UUID)")),
    security(("bearer" = [])), responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn revoke_session(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, sid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = target(&caller, &id)?;
    let sid: SessionId = sid.parse().map_err(|_| ApiError::NotFound("session"))?;
    if s.manager.revoke_session(id, sid).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("session"))
    }
}

/// How many sessions a bulk revocation ended.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RevokedReply {
    revoked: usize,
}

/// "Log out everywhere else": every session but the calling one ends.
#[utoipa::path(post, path = "/api/v1/users/{id}/sessions/revoke-others", tag = "sessions", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 200, body = RevokedReply), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn revoke_other_sessions(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RevokedReply>> {
    let id = target(&caller, &id)?;
    let keep = caller.session_id();
    let revoked = s.manager.user(id).revoke_other_sessions(keep).await?;
    Ok(Json(RevokedReply { revoked }))
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", responses((status = 200, body = Object)))]
pub async fn openapi_json(State(s): State<AppState>) -> ApiResult<Json<utoipa::openapi::OpenApi>> {
    s.openapi
        .get()
        .cloned()
        .map(Json)
        .ok_or(ApiError::Unavailable)
}

/// Per tier and shard: resident actors, activations, passivations, restarts (operator only).
#[utoipa::path(get, path = "/api/v1/admin/shards", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<ShardStats>), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn admin_shards(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ShardStats>>> {
    caller.require_admin()?;
    Ok(Json(s.manager.shard_stats()))
}

/// Prometheus metrics (operator only).
#[utoipa::path(get, path = "/metrics", tag = "meta", security(("bearer" = [])),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn metrics(State(s): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.require_admin()?;
    let body = s.manager.render_metrics();
    let ctype = "text/plain; version=0.0.4; charset=utf-8";
    Ok(([(axum::http::header::CONTENT_TYPE, ctype)], body).into_response())
}

/// Any unknown path.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("resource")
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Object)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the engine's shards are up.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, body = Object), (status = 503, body = Problem)))]
pub async fn readyz(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let shards = s.manager.shard_stats();
    if shards.is_empty() {
        return Err(ApiError::Unavailable);
    }
    Ok(Json(
        json!({ "status": "ready", "live_users": s.manager.live_users(), "shards": shards.len() }),
    ))
}

/// Most users one import request may carry (the body limit is 64 KiB).
pub const MAX_IMPORT_BATCH: usize = 200;

/// One user of an import: an existing argon2 hash instead of a password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportUser {
    email: String,
    /// An argon2 PHC string (`$argon2id$v=19$m=...`), e.g. from the system migrated from.
    password_hash: String,
    #[serde(default)]
    tier: Option<UserTier>,
    #[serde(default)]
    profile_data: Option<ProfilePatch>,
}

/// `POST /api/v1/admin/users/import` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportUsers {
    /// 1 to 200 users.
    users: Vec<ImportUser>,
}

/// A user created by an import.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Imported {
    /// Position in the request.
    index: usize,
    /// The new user's id.
    id: UserId,
}

/// A user an import refused, and why; the others are created regardless.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ImportFailure {
    /// Position in the request.
    index: usize,
    /// The problem type's last segment (`email-taken`, `invalid-input`...).
    kind: String,
    /// What is wrong.
    detail: String,
}

/// The outcome of an import, user by user.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ImportReply {
    /// Users created (durable).
    created: Vec<Imported>,
    /// Users refused.
    failed: Vec<ImportFailure>,
}

/// Bulk provisioning and migrations (operator only): creates users from existing argon2
/// hashes, with no hashing cost. Each user succeeds or fails on its own.
#[utoipa::path(post, path = "/api/v1/admin/users/import", tag = "admin", request_body = ImportUsers, security(("bearer" = [])),
    responses((status = 200, body = ImportReply), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 413, body = Problem)))]
pub async fn import_users(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<ImportUsers>,
) -> ApiResult<Json<ImportReply>> {
    caller.require_admin()?;
    if body.users.is_empty() || body.users.len() > MAX_IMPORT_BATCH {
        return Err(ApiError::InvalidInput {
            field: Some("users".into()),
            detail: format!("must hold 1 to {MAX_IMPORT_BATCH} users"),
        });
    }
    let jobs = body.users.into_iter().enumerate().map(|(index, u)| {
        let m = s.manager.clone();
        async move {
            let tier = u.tier.unwrap_or(UserTier::Free);
            let patch = u.profile_data.unwrap_or_default();
            let r = m.import_user(&u.email, &u.password_hash, tier, patch).await;
            (index, r)
        }
    });
    let mut reply = ImportReply {
        created: Vec::new(),
        failed: Vec::new(),
    };
    for (index, r) in futures_util::future::join_all(jobs).await {
        match r {
            Ok(p) => reply.created.push(Imported { index, id: p.id }),
            Err(e) => {
                let e = ApiError::from(e);
                if e.is_server_error() {
                    return Err(e);
                }
                reply.failed.push(ImportFailure {
                    index,
                    kind: e.kind().to_owned(),
                    detail: e.to_string(),
                });
            }
        }
    }
    if !reply.created.is_empty() {
        let count = reply.created.len() as u64;
        s.manager
            .audit(AuditActor::Operator, AuditAction::UsersImported { count })
            .await?;
    }
    Ok(Json(reply))
}

/// `GET /api/v1/admin/audit` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Records numbered above this (default 0: from the start).
    #[serde(default)]
    after: u64,
    /// At most this many (default 100, at most 1,000).
    #[serde(default)]
    limit: Option<usize>,
}

/// The audit log, oldest first (operator only): tier changes, deletions, operator reads
/// of a user's data, imports. Each record carries the previous one's hash;
/// `roster verify-audit` checks the chain.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<AuditEntry>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn audit_log(
    State(s): State<AppState>,
    caller: Caller,
    query: Result<axum::extract::Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    caller.require_admin()?;
    let q = query
        .map_err(|e| ApiError::InvalidInput {
            field: None,
            detail: e.body_text(),
        })?
        .0;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::InvalidInput {
            field: Some("limit".into()),
            detail: "must be between 1 and 1000".into(),
        });
    }
    Ok(Json(s.manager.audit_entries(q.after, limit)?))
}
