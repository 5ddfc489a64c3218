//! `/api/v1/admin`: the operator's endpoints — shards, bulk import, the audit log and
//! its check, the master key, retention — and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::AppState;
use crate::api::extract::{Caller, JsonBody, Query};
use crate::api::problem::{ApiError, Problem};
use crate::domain::ids::UserId;
use crate::engine::{
    AuditEntry, AuditVerdict, ImportedUser, KeyHistory, PurgeReport, RotationProgress, ShardStats,
};

type ApiResult<T> = Result<T, ApiError>;

/// Per tier and shard: resident actors, activations, passivations, restarts (operator only).
#[utoipa::path(get, path = "/api/v1/admin/shards", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<ShardStats>), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn admin_shards(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ShardStats>>> {
    Ok(Json(s.manager.ops().shard_stats(&caller.principal())?))
}

/// Which user to find.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct LookupQuery {
    /// The user's email (any case; found through the blind index). Required.
    email: Option<String>,
}

/// The user an email names (operators; the read is audited). 404 when none does.
#[utoipa::path(get, path = "/api/v1/admin/users/lookup", tag = "admin", params(LookupQuery), security(("bearer" = [])),
    responses((status = 200, body = crate::domain::profile::UserProfile), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn lookup_user(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<LookupQuery>,
) -> ApiResult<Json<crate::domain::profile::UserProfile>> {
    let Some(email) = q.email else {
        return Err(ApiError::InvalidInput {
            field: Some("email".into()),
            detail: "give the email of the user to find".into(),
        });
    };
    let accounts = s.manager.accounts();
    Ok(Json(
        accounts.find_by_email(&caller.principal(), &email).await?,
    ))
}

/// Prometheus metrics (operator only).
#[utoipa::path(get, path = "/metrics", tag = "meta", security(("bearer" = [])),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn metrics(State(s): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let body = s.manager.ops().render_metrics(&caller.principal())?;
    Ok(prometheus_text(body))
}

/// A rendered metrics page as a response.
pub(crate) fn prometheus_text(body: String) -> Response {
    let ctype = "text/plain; version=0.0.4; charset=utf-8";
    ([(axum::http::header::CONTENT_TYPE, ctype)], body).into_response()
}

/// `POST /api/v1/admin/users/import` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportUsers {
    /// 1 to 200 users.
    users: Vec<ImportedUser>,
}

/// A user created by an import.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Imported {
    /// Position in the request.
    index: usize,
    /// The new user's id.
    id: UserId,
}

/// A user an import refused, and why; the others are created regardless.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ImportFailure {
    /// Position in the request.
    index: usize,
    /// The problem type's last segment (`email-taken`, `invalid-input`...).
    kind: String,
    /// What is wrong.
    detail: String,
}

/// The outcome of an import, user by user.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ImportReply {
    /// Users created (durable).
    created: Vec<Imported>,
    /// Users refused.
    failed: Vec<ImportFailure>,
}

/// Bulk provisioning and migrations (operator only): creates users from existing argon2 or bcrypt
/// hashes, with no hashing cost. Each user succeeds or fails on its own.
#[utoipa::path(post, path = "/api/v1/admin/users/import", tag = "admin", request_body = ImportUsers, security(("bearer" = [])),
    responses((status = 200, body = ImportReply), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 413, body = Problem)))]
pub(crate) async fn import_users(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<ImportUsers>,
) -> ApiResult<Json<ImportReply>> {
    let results = s
        .manager
        .accounts()
        .import(&caller.principal(), body.users)
        .await?;
    let mut reply = ImportReply {
        created: Vec::new(),
        failed: Vec::new(),
    };
    for (index, r) in results.into_iter().enumerate() {
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
    Ok(Json(reply))
}

/// `GET /api/v1/admin/audit` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// Records numbered above this (default 0: from the start).
    after: Option<u64>,
    /// At most this many (default 100, at most 1,000).
    limit: Option<usize>,
}

/// The audit log, oldest first (operator only): tier changes, deletions, operator reads
/// of a user's data, imports. Each record carries the previous one's hash;
/// `GET /admin/audit/verify` and `roster verify-audit` check the chain.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<AuditEntry>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn audit_log(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let ops = s.manager.ops();
    Ok(Json(ops.audit_entries(
        &caller.principal(),
        q.after,
        q.limit,
    )?))
}

/// Checks the audit log's hash chain (operator only): intact with its number of
/// records, or where it breaks. What `roster verify-audit --server` asks.
#[utoipa::path(get, path = "/api/v1/admin/audit/verify", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = AuditVerdict), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn verify_audit(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<AuditVerdict>> {
    Ok(Json(s.manager.ops().verify_audit(&caller.principal())?))
}

/// Retention (operator only): removes security events older than
/// `privacy.security_event_retention_days` from users' records and the archive, while
/// the server runs. What `roster purge --server` asks.
#[utoipa::path(post, path = "/api/v1/admin/security-events/purge", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = PurgeReport), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn purge_security_events(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<PurgeReport>> {
    let ops = s.manager.ops();
    Ok(Json(ops.purge_security_events(&caller.principal()).await?))
}

/// The master key in use (operator only).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct MasterKeyInfo {
    /// Its fingerprint (16 hex digits): names the key without revealing it.
    fingerprint: String,
    /// Since when it has been the store's key, and the key it replaced.
    #[serde(flatten)]
    history: KeyHistory,
}

/// Which master key the store is encrypted with, since when, and the key it replaced
/// (operator only).
#[utoipa::path(get, path = "/api/v1/admin/master-key", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = MasterKeyInfo), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn master_key(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<MasterKeyInfo>> {
    let by = caller.principal();
    Ok(Json(MasterKeyInfo {
        fingerprint: s.manager.ops().master_key_fingerprint(&by)?,
        history: s.manager.ops().master_key_history(&by)?,
    }))
}

/// Rotates the master key while the server runs (operator only): every data key is
/// rewrapped with a new key, generated next to the current key file; the old file is
/// kept as `<file>.retired-<fingerprint>`. The answer streams as JSON lines:
/// `{"done", "total"}` progress, then `{"rotated": {from, to, rewrapped,
/// retired_key_file}}` or `{"error": problem}`. The rotation finishes even if the client
/// goes away.
#[utoipa::path(post, path = "/api/v1/admin/master-key/rotate", tag = "admin", security(("bearer" = [])),
    responses((status = 200, content_type = "application/x-ndjson", body = RotationProgress,
        description = "progress lines, then the report (RotationReport) under `rotated`"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "a rotation is running, or the key comes from the environment")))]
pub(crate) async fn rotate_master_key(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Response> {
    let (by, m) = (caller.principal(), s.manager.clone());
    super::stream::job(
        move |progress| async move { m.ops().rotate_master_key(&by, progress).await },
        |r| json!({ "rotated": r }),
    )
    .await
}
