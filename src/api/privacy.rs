//! Consents and the age rule over HTTP.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::AppState;
use super::extract::{Caller, JsonBody};
use super::problem::{ApiError, Problem};
use crate::domain::consent::{Date, Purpose};
use crate::engine::ConsentView;
use crate::engine::EngineError;
use crate::engine::audit::AuditActor;
use crate::engine::keyring::{RotationProgress, RotationReport};
use axum::response::IntoResponse;
use futures_util::StreamExt;
use serde_json::json;

type ApiResult<T> = Result<T, ApiError>;

/// The user's consents per purpose (with their history), birth date and parental
/// consent.
#[utoipa::path(get, path = "/api/v1/users/{id}/consents", tag = "privacy", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
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
#[utoipa::path(put, path = "/api/v1/users/{id}/consents", tag = "privacy", params(("id" = String, Path, description = "user id (UUID)")), request_body = ConsentsBody, security(("bearer" = [])),
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
#[utoipa::path(post, path = "/api/v1/users/{id}/parental-consent", tag = "privacy", params(("id" = String, Path, description = "user id (UUID)")), request_body = ParentalBody, security(("bearer" = [])),
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

/// The master key in use (operator only).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct MasterKeyInfo {
    /// Its fingerprint (16 hex digits): names the key without revealing it.
    fingerprint: String,
}

/// Which master key the store is encrypted with (operator only).
#[utoipa::path(get, path = "/api/v1/admin/master-key", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = MasterKeyInfo), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn master_key(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<MasterKeyInfo>> {
    caller.require_admin()?;
    Ok(Json(MasterKeyInfo {
        fingerprint: s.manager.master_key_fingerprint(),
    }))
}

enum RotationMessage {
    Progress(RotationProgress),
    Done(Result<RotationReport, EngineError>),
}

fn ndjson_line(value: &serde_json::Value) -> bytes::Bytes {
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    line.into()
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
pub async fn rotate_master_key(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::response::Response> {
    caller.require_admin()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let m = s.manager.clone();
    let progress = tx.clone();
    tokio::spawn(async move {
        let r = m
            .rotate_master_key(move |p| {
                let _ = progress.send(RotationMessage::Progress(p));
            })
            .await;
        let _ = tx.send(RotationMessage::Done(r));
    });
    // The first progress line comes once the rotation has started: a refusal before it
    // is an ordinary problem response.
    let first = match rx.recv().await {
        Some(RotationMessage::Progress(p)) => json!(p),
        Some(RotationMessage::Done(Err(e))) => return Err(e.into()),
        Some(RotationMessage::Done(Ok(r))) => json!({ "rotated": r }),
        None => return Err(ApiError::Unavailable),
    };
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        let line = match rx.recv().await? {
            RotationMessage::Progress(p) => json!(p),
            RotationMessage::Done(Ok(r)) => json!({ "rotated": r }),
            RotationMessage::Done(Err(e)) => {
                let e = ApiError::from(e);
                json!({ "error": { "type": e.type_uri(), "detail": e.to_string() } })
            }
        };
        Some((Ok::<_, std::convert::Infallible>(ndjson_line(&line)), rx))
    });
    let body = futures_util::stream::once(async move { Ok(ndjson_line(&first)) }).chain(rest);
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}
