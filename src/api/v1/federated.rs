//! `/api/v1/federated/*`: federated rounds of the sound model, for devices
//! (`docs/models.md`); `/api/v1/admin/federated`, the rounds as operators see them;
//! `/api/v1/admin/models`, every model in one view.

use axum::Json;
use axum::extract::State;

use crate::api::AppState;
use crate::api::extract::{Caller, JsonBody, Query};
use crate::api::problem::{ApiError, Problem};
use crate::engine::{
    FederatedStatus, FederatedUpdate, FederatedView, ModelsQuery, ModelsView, UpdateTaken,
};

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

/// `GET /api/v1/admin/models` query.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelsParams {
    /// List users' own models after this user id (the previous page's `next_after`).
    #[param(value_type = Option<String>)]
    after: Option<crate::domain::ids::UserId>,
    /// Users' own models to list, 1–1,000 (default 100).
    limit: Option<usize>,
}

/// Every model in one view (operator only): the global blend, the collaborative model
/// in force and its stored versions, the churn models with their held-out AUC and the
/// segmentation; the users' own models counted over all of them (users, how many a
/// model of their own serves, versions, mean hit rates against the global blend,
/// trainings by state) with a page of users; and the federated rounds with the privacy
/// spent and the versions stored.
#[utoipa::path(get, path = "/api/v1/admin/models", tag = "personalization", params(ModelsParams), security(("bearer" = [])),
    responses((status = 200, body = ModelsView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn models(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<ModelsParams>,
) -> Result<Json<ModelsView>, ApiError> {
    let q = ModelsQuery {
        after: q.after,
        limit: q.limit,
    };
    let p = s.manager.personalization();
    Ok(Json(p.models(&caller.principal(), q).await?))
}
