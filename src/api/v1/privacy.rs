//! `/api/v1/users/{id}/consents`, `/parental-consent` and `/security-events`.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

use crate::api::AppState;
use crate::api::extract::{Caller, JsonBody, Query, user_id};
use crate::api::problem::{ApiError, Problem};
use crate::domain::consent::{Date, Purpose};
use crate::domain::security_log::SecurityEvent;
use crate::engine::{ConsentView, EngineError};

type ApiResult<T> = Result<T, ApiError>;

/// The user's consents per purpose (with their history), birth date and parental
/// consent.
#[utoipa::path(get, path = "/api/v1/users/{id}/consents", tag = "privacy", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 200, body = ConsentView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn get_consents(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ConsentView>> {
    let id = user_id(&caller, &id)?;
    let privacy = s.manager.privacy();
    Ok(Json(privacy.consents(&caller.principal(), id).await?))
}

/// `PUT /api/v1/users/{id}/consents` body: absent purposes stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsentsBody {
    /// Counting listening activity.
    analytics: Option<bool>,
    /// Recommendations from personal history, mood detection, a model of one's own.
    personalisation: Option<bool>,
    /// Marketing messages.
    marketing: Option<bool>,
    /// Contributing to federated model training.
    federated_learning: Option<bool>,
    /// `YYYY-MM-DD`; once given, only an operator may change it.
    birth_date: Option<String>,
}

/// Grants or withdraws consents and gives the birth date. Withdrawing stops the
/// processing at once (withdrawn personalisation or federated learning also turns those
/// preferences off); every change is recorded here and in the audit log.
#[utoipa::path(put, path = "/api/v1/users/{id}/consents", tag = "privacy", params(("id" = String, Path, description = "user id (UUID)")), request_body = ConsentsBody, security(("bearer" = [])),
    responses((status = 200, body = ConsentView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn put_consents(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ConsentsBody>,
) -> ApiResult<Json<ConsentView>> {
    let id = user_id(&caller, &id)?;
    let changes: Vec<(Purpose, bool)> = [
        (Purpose::Analytics, body.analytics),
        (Purpose::Personalisation, body.personalisation),
        (Purpose::Marketing, body.marketing),
        (Purpose::FederatedLearning, body.federated_learning),
    ]
    .into_iter()
    .filter_map(|(p, g)| g.map(|g| (p, g)))
    .collect();
    let birth_date = body
        .birth_date
        .as_deref()
        .map(Date::parse)
        .transpose()
        .map_err(EngineError::from)?;
    let privacy = s.manager.privacy();
    Ok(Json(
        privacy
            .update_consents(&caller.principal(), id, changes, birth_date)
            .await?,
    ))
}

/// `POST /api/v1/users/{id}/parental-consent` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ParentalBody {
    /// Where the verification is kept (a ticket, a signed form's id).
    reference: String,
}

/// Records a verified parental consent for a minor (operator; audited).
#[utoipa::path(post, path = "/api/v1/users/{id}/parental-consent", tag = "privacy", params(("id" = String, Path, description = "user id (UUID)")), request_body = ParentalBody, security(("bearer" = [])),
    responses((status = 200, body = ConsentView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn record_parental_consent(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ParentalBody>,
) -> ApiResult<Json<ConsentView>> {
    let id = user_id(&caller, &id)?;
    let privacy = s.manager.privacy();
    Ok(Json(
        privacy
            .record_parental_consent(&caller.principal(), id, &body.reference)
            .await?,
    ))
}

/// Paging of `GET /users/{id}/security-events`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    /// Only events numbered below this (the `seq` of the last event of the previous
    /// page); default: the newest.
    before: Option<u64>,
    /// Events per page, 1 to 200 (default 50).
    limit: Option<usize>,
}

/// The user's security events, newest first: logins (with risk decisions and their
/// reasons), challenges, factor changes, step-ups, revocations, lockouts.
#[utoipa::path(get, path = "/api/v1/users/{id}/security-events", tag = "users", params(("id" = String, Path, description = "user id (UUID)"), EventsQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<SecurityEvent>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn security_events(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<Vec<SecurityEvent>>> {
    let id = user_id(&caller, &id)?;
    let privacy = s.manager.privacy();
    Ok(Json(
        privacy
            .security_events(&caller.principal(), id, q.before, q.limit)
            .await?,
    ))
}
