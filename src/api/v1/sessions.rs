//! `/api/v1/users/{id}/sessions`: listing and ending sessions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;

use crate::api::AppState;
use crate::api::extract::{Caller, JsonBody, user_id};
use crate::api::problem::{ApiError, Problem};
use crate::domain::ids::SessionId;
use crate::domain::revocation::SessionSelector;
use crate::domain::session::SessionView;
use crate::engine::{BulkRevocation, RevocationProgress};

type ApiResult<T> = Result<T, ApiError>;

/// Live sessions.
#[utoipa::path(get, path = "/api/v1/users/{id}/sessions", tag = "sessions", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 200, body = Vec<SessionView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn list_sessions(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<SessionView>>> {
    let id = user_id(&caller, &id)?;
    let sessions = s.manager.sessions();
    Ok(Json(sessions.list(&caller.principal(), id).await?))
}

/// Revokes one session.
#[utoipa::path(delete, path = "/api/v1/users/{id}/sessions/{sid}", tag = "sessions",
    params(("id" = String, Path, description = "user id (UUID)"), ("sid" = String, Path, description = "session id (UUID)")),
    security(("bearer" = [])), responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn revoke_session(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, sid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = user_id(&caller, &id)?;
    let sid: SessionId = sid.parse().map_err(|_| ApiError::NotFound("session"))?;
    let sessions = s.manager.sessions();
    if sessions.revoke(&caller.principal(), id, sid).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("session"))
    }
}

/// How many sessions a bulk revocation ended.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RevokedReply {
    revoked: usize,
}

/// "Log out everywhere else": every session but the calling one ends.
#[utoipa::path(post, path = "/api/v1/users/{id}/sessions/revoke-others", tag = "sessions", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 200, body = RevokedReply), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn revoke_other_sessions(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RevokedReply>> {
    let id = user_id(&caller, &id)?;
    let sessions = s.manager.sessions();
    let revoked = sessions.revoke_others(&caller.principal(), id).await?;
    Ok(Json(RevokedReply { revoked }))
}

/// Ends, across every user, the live sessions a selector names (operator only): `all`,
/// `tier`, `cidr` (login or last-used address in the network), `created_after`,
/// `created_before`, `event_kind` with `since` (users with such a security event), all
/// combined; `dry_run` counts without ending. Only sessions live when it starts end;
/// passivated users are included. Audited before anything ends. The answer streams as
/// JSON lines: `{done, users, matched, revoked}` progress (a revocation counted there is
/// durable), then `{"revocation": {dry_run, started_at, scanned, users, matched,
/// revoked, cancelled}}` or `{"error": problem}`; it finishes even if the client goes
/// away, unless cancelled. One runs at a time (409 for a second).
#[utoipa::path(post, path = "/api/v1/admin/sessions/revoke", tag = "sessions", request_body = SessionSelector, security(("bearer" = [])),
    responses((status = 200, content_type = "application/x-ndjson", body = RevocationProgress,
        description = "progress lines, then the result (BulkRevocation) under `revocation`"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "a bulk revocation is running")))]
pub(crate) async fn revoke_matching(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(selector): JsonBody<SessionSelector>,
) -> ApiResult<axum::response::Response> {
    let (by, m) = (caller.principal(), s.manager.clone());
    super::stream::job(
        move |progress| async move { m.sessions().revoke_matching(&by, selector, progress).await },
        |r: BulkRevocation| serde_json::json!({ "revocation": r }),
    )
    .await
}

/// Cancels the bulk revocation running (operator only): it asks no more users and ends
/// its answer with what it did (`cancelled: true`). 404 if none runs.
#[utoipa::path(post, path = "/api/v1/admin/sessions/revoke/cancel", tag = "sessions", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem, description = "no bulk revocation is running")))]
pub(crate) async fn cancel_revocation(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    if s.manager
        .sessions()
        .cancel_revocation(&caller.principal())?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(crate::engine::EngineError::NoSuch("running bulk revocation").into())
    }
}
