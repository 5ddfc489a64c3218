//! Consents and the age rule over HTTP.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::AppState;
use super::extract::{Caller, JsonBody};
use super::problem::{ApiError, Problem};
use crate::domain::consent::{Date, Purpose};
use crate::engine::ConsentView;
use crate::engine::audit::AuditActor;

type ApiResult<T> = Result<T, ApiError>;

/// The user's consents per purpose (with their history), birth date and parental
/// consent.
#[utoipa::path(get, path = "/users/{id}/consents", tag = "privacy", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 200, body = ConsentView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_consents(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ConsentView>> {
    let id = super::handlers::target(&caller, &id)?;
    let view = s.manager.consents(id).await?;
    super::handlers::audit_admin_read(&s, &caller, id, "consents").await?;
    Ok(Json(view))
}

/// `PUT /api/v1/users/{id}/consents` body: absent purposes stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentsBody {
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
#[utoipa::path(put, path = "/users/{id}/consents", tag = "privacy", params(("id" = String, Path, description = "user id (UUID)")), request_body = ConsentsBody, security(("bearer" = [])),
    responses((status = 200, body = ConsentView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn put_consents(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ConsentsBody>,
) -> ApiResult<Json<ConsentView>> {
    let id = super::handlers::target(&caller, &id)?;
    let birth_date = body
        .birth_date
        .as_deref()
        .map(Date::parse)
        .transpose()
        .map_err(crate::engine::EngineError::from)?;
    let changes: Vec<(Purpose, bool)> = [
        (Purpose::Analytics, body.analytics),
        (Purpose::Personalisation, body.personalisation),
        (Purpose::Marketing, body.marketing),
        (Purpose::FederatedLearning, body.federated_learning),
    ]
    .into_iter()
    .filter_map(|(p, g)| g.map(|g| (p, g)))
    .collect();
    let actor = match &caller {
        Caller::Admin => AuditActor::Operator,
        _ => AuditActor::User { id },
    };
    Ok(Json(
        s.manager
            .update_consents(id, actor, changes, birth_date)
            .await?,
    ))
}

/// `POST /api/v1/users/{id}/parental-consent` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParentalBody {
    /// Where the verification is kept (a ticket, a signed form's id).
    reference: String,
}

/// Records a verified parental consent for a minor (operator; audited).
#[utoipa::path(post, path = "/users/{id}/parental-consent", tag = "privacy", params(("id" = String, Path, description = "user id (UUID)")), request_body = ParentalBody, security(("bearer" = [])),
    responses((status = 200, body = ConsentView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn record_parental_consent(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ParentalBody>,
) -> ApiResult<Json<ConsentView>> {
    caller.require_admin()?;
    let id = super::handlers::parse_id(&id)?;
    Ok(Json(
        s.manager
            .record_parental_consent(id, &body.reference)
            .await?,
    ))
}
