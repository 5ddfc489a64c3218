//! `/api/v1/admin/deny-networks`: the operators' runtime deny-list of networks.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::api::AppState;
use crate::api::extract::{Caller, JsonBody, Query};
use crate::api::problem::{ApiError, Problem};
use crate::domain::denylist::{DeniedNetwork, DenyRequest};
use crate::domain::validation::ValidationError;
use crate::engine::EngineError;

type ApiResult<T> = Result<T, ApiError>;

/// The networks denied at run time (operator only), beside `risk.deny_networks` of the
/// config.
#[utoipa::path(get, path = "/api/v1/admin/deny-networks", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<DeniedNetwork>), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<DeniedNetwork>>> {
    Ok(Json(s.manager.ops().denied_networks(&caller.principal())?))
}

/// A network denied.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Denied {
    entry: DeniedNetwork,
    /// It replaced the entry of the same network.
    replaced: bool,
}

/// Denies a network (operator only; audited): durable, then in force at once — every
/// login from it is refused, and a session used from it ends at that request. To end
/// the sessions that logged in from it, revoke them (`POST /api/v1/admin/sessions/revoke`
/// with its `cidr`). `network` is CIDR or one address; `reason` is required;
/// `expires_at` ends it by itself.
#[utoipa::path(post, path = "/api/v1/admin/deny-networks", tag = "admin", request_body = DenyRequest, security(("bearer" = [])),
    responses((status = 201, body = Denied), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn deny(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<DenyRequest>,
) -> ApiResult<(StatusCode, Json<Denied>)> {
    let ops = s.manager.ops();
    let (entry, replaced) = ops.deny_network(&caller.principal(), &request).await?;
    Ok((StatusCode::CREATED, Json(Denied { entry, replaced })))
}

/// `DELETE /api/v1/admin/deny-networks` query.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AllowQuery {
    /// The network to allow again, as listed (required).
    network: Option<String>,
}

/// Removes a network from the deny-list (operator only; audited). 404 if it is not on it.
#[utoipa::path(delete, path = "/api/v1/admin/deny-networks", tag = "admin", params(AllowQuery), security(("bearer" = [])),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem, description = "the network is not denied")))]
pub(crate) async fn allow(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<AllowQuery>,
) -> ApiResult<StatusCode> {
    let network = q
        .network
        .ok_or_else(|| EngineError::from(ValidationError::new("network", "is required")))?;
    match s
        .manager
        .ops()
        .allow_network(&caller.principal(), &network)
        .await?
    {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(EngineError::NoSuch("denied network").into()),
    }
}
