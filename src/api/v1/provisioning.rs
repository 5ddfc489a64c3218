//! Provisioning: `POST /api/v1/admin/users/provision` (operator; rows of an identity
//! source, created or brought up to date, never twice) and the invitations' end,
//! `POST /api/v1/auth/invitations/accept` (whoever holds the emailed token).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::api::AppState;
use crate::api::extract::{BulkJsonBody, Caller, ClientIp, JsonBody};
use crate::api::problem::{ApiError, Problem};
use crate::engine::{ProvisionRow, Provisioned};

type ApiResult<T> = Result<T, ApiError>;

/// `POST /api/v1/admin/users/provision` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProvisionBody {
    /// 1 to 1,000 rows.
    rows: Vec<ProvisionRow>,
    /// Check every row, write and send nothing.
    #[serde(default)]
    dry_run: bool,
}

/// One row's result: what was done, or why the row was refused.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RowResult {
    /// The row's place in the body, from 0.
    index: usize,
    /// What was done (absent when refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Provisioned>,
    /// The problem kind of a refused row.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// The answer: one result per row, in order.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ProvisionReply {
    /// Whether nothing was written.
    dry_run: bool,
    /// Per row.
    rows: Vec<RowResult>,
}

/// Provisions users (operator): each row creates a user, brings the one it names (by
/// `external_id`, else email) up to date, or finds it unchanged; a row that breaks a
/// rule is refused with its reason while the others go in. A user created with
/// neither `password` nor `password_hash` is emailed an invitation to set one.
#[utoipa::path(post, path = "/api/v1/admin/users/provision", tag = "admin", request_body = ProvisionBody, security(("bearer" = [])),
    responses((status = 200, body = ProvisionReply), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 413, body = Problem)))]
pub(crate) async fn provision(
    State(s): State<AppState>,
    caller: Caller,
    BulkJsonBody(body): BulkJsonBody<ProvisionBody>,
) -> ApiResult<Json<ProvisionReply>> {
    let results = s
        .manager
        .provisioning()
        .provision(&caller.principal(), body.rows, body.dry_run)
        .await?;
    let mut rows = Vec::with_capacity(results.len());
    for (index, r) in results.into_iter().enumerate() {
        rows.push(match r {
            Ok(p) => RowResult {
                index,
                result: Some(p),
                error: None,
                detail: None,
            },
            Err(e) => {
                let e = ApiError::from(e);
                if e.is_server_error() {
                    return Err(e);
                }
                RowResult {
                    index,
                    result: None,
                    error: Some(e.kind().to_owned()),
                    detail: Some(e.to_string()),
                }
            }
        });
    }
    Ok(Json(ProvisionReply {
        dry_run: body.dry_run,
        rows,
    }))
}

/// `POST /api/v1/auth/invitations/accept` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcceptInvitation {
    /// The token of the invitation email's link.
    token: String,
    /// The new password (the password policy applies).
    password: String,
}

/// An invited user sets its password with the token its invitation email carried: good
/// once, until the invitation expires. Then the user logs in as any other.
#[utoipa::path(post, path = "/api/v1/auth/invitations/accept", tag = "auth", request_body = AcceptInvitation,
    responses((status = 204), (status = 400, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn accept_invitation(
    State(s): State<AppState>,
    caller: Caller,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<AcceptInvitation>,
) -> ApiResult<StatusCode> {
    s.limit_anonymous(&caller, ip)?;
    s.manager
        .provisioning()
        .accept_invitation(&body.token, &body.password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
