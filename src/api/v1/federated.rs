//! `/api/v1/federated/*`: federated rounds of the sound model, for devices
//! (`docs/models.md`); `/api/v1/admin/federated`, the rounds as operators see them.

use axum::Json;
use axum::extract::State;

use crate::api::AppState;
use crate::api::extract::{Caller, JsonBody};
use crate::api::problem::{ApiError, Problem};
use crate::engine::{FederatedStatus, FederatedUpdate, FederatedView, UpdateTaken};

/// The published sound model (its nine parameters by name and in order), the round
/// open now (`state` `open`, `closing` or `stopped`), the clipping norm and how a device
/// trains its update (any signed-in user, or the operator).
#[utoipa::path(get, path = "/api/v1/federated/model", tag = "personalization", security(("bearer" = [])),
    responses((status = 200, body = FederatedView), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn model(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Json<FederatedView>, ApiError> {
    Ok(Json(
        s.manager
            .personalization()
            .federated_model(&caller.principal())?,
    ))
}

/// One update of the signed-in user for the open round: the change to the published
/// parameters its device trained (nine finite numbers) and the plays and skips it
/// came from. Only with `ai_preferences.federated_learning_enabled` and the
/// `federated_learning` consent (403 `consent-required`); one per user per round and
/// only for the open round (409, naming the open one); beyond the clipping norm it is
/// scaled down to it (`clipped`).
#[utoipa::path(post, path = "/api/v1/federated/updates", tag = "personalization", request_body = FederatedUpdate, security(("bearer" = [])),
    responses((status = 200, body = UpdateTaken), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn update(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<FederatedUpdate>,
) -> Result<Json<UpdateTaken>, ApiError> {
    let p = s.manager.personalization();
    Ok(Json(p.federated_update(&caller.principal(), body).await?))
}

/// The rounds as operators see them: the published version with its round's figures
/// (participants, clipped updates, noise), the open round, rounds abandoned, and the
/// privacy spent against the budget (operator only).
#[utoipa::path(get, path = "/api/v1/admin/federated", tag = "personalization", security(("bearer" = [])),
    responses((status = 200, body = FederatedStatus), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn status(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Json<FederatedStatus>, ApiError> {
    Ok(Json(
        s.manager
            .personalization()
            .federated_status(&caller.principal())?,
    ))
}
