//! The integration hub: `GET /api/v1/integrations`, the providers an account can be
//! linked to.

use axum::Json;
use axum::extract::State;

use crate::api::AppState;
use crate::api::extract::Caller;
use crate::api::problem::{ApiError, Problem};
use crate::engine::ProviderInfo;

type ApiResult<T> = Result<T, ApiError>;

/// The configured providers (never their credentials): how each is linked, whether it
/// is available (its credentials configured) and, for a user, whether its tier may
/// link it.
#[utoipa::path(get, path = "/api/v1/integrations", tag = "integrations", security(("bearer" = [])),
    responses((status = 200, body = [ProviderInfo]), (status = 401, body = Problem)))]
pub(crate) async fn providers(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ProviderInfo>>> {
    Ok(Json(
        s.manager.integrations().providers(&caller.principal())?,
    ))
}
