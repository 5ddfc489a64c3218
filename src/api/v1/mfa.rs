//! `/api/v1/users/{id}/mfa` and `/webauthn`: enrolling and removing second factors.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::WebauthnOptions;
use super::auth::code_answer;
use crate::api::AppState;
use crate::api::extract::{Caller, JsonBody, user_id};
use crate::api::problem::{ApiError, Problem};
use crate::domain::mfa::{MfaStatus, SecondFactor};
use crate::engine::{RegisterPublicKeyCredential, TotpEnrollment};

type ApiResult<T> = Result<T, ApiError>;

/// The user's second factors (never their secrets).
#[utoipa::path(get, path = "/api/v1/users/{id}/mfa", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 200, body = MfaStatus), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn mfa_status(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<MfaStatus>> {
    let id = user_id(&caller, &id)?;
    Ok(Json(s.manager.mfa().status(&caller.principal(), id).await?))
}

/// Starts authenticator enrollment (the user itself, recently authenticated): returns
/// the secret, the `otpauth://` URI and a QR code. Confirm with the first code.
#[utoipa::path(post, path = "/api/v1/users/{id}/mfa/totp", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 201, body = TotpEnrollment), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn begin_totp(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = user_id(&caller, &id)?;
    let e = s.manager.mfa().begin_totp(&caller.principal(), id).await?;
    Ok((StatusCode::CREATED, Json(e)).into_response())
}

/// `POST /api/v1/users/{id}/mfa/totp/confirm` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfirmBody {
    /// The authenticator's current code.
    code: String,
}

/// Recovery codes, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RecoveryCodes {
    /// Each works once, in place of an authenticator code.
    recovery_codes: Vec<String>,
}

/// Confirms the pending authenticator with its first code; returns the recovery codes.
#[utoipa::path(post, path = "/api/v1/users/{id}/mfa/totp/confirm", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), request_body = ConfirmBody, security(("bearer" = [])),
    responses((status = 200, body = RecoveryCodes), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn confirm_totp(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ConfirmBody>,
) -> ApiResult<Json<RecoveryCodes>> {
    let id = user_id(&caller, &id)?;
    let mfa = s.manager.mfa();
    let recovery_codes = mfa
        .confirm_totp(&caller.principal(), id, &body.code)
        .await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

/// Removes the authenticator and its recovery codes (the user, recently authenticated;
/// or the operator, audited), or cancels a pending enrollment.
#[utoipa::path(delete, path = "/api/v1/users/{id}/mfa/totp", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn remove_totp(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = user_id(&caller, &id)?;
    s.manager.mfa().remove_totp(&caller.principal(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// New recovery codes in place of the old ones (the user, recently authenticated).
#[utoipa::path(post, path = "/api/v1/users/{id}/mfa/recovery-codes", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 200, body = RecoveryCodes), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn regenerate_recovery_codes(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RecoveryCodes>> {
    let id = user_id(&caller, &id)?;
    let mfa = s.manager.mfa();
    let recovery_codes = mfa
        .regenerate_recovery_codes(&caller.principal(), id)
        .await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

/// `POST /api/v1/users/{id}/mfa/sms` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PhoneBody {
    /// An international number (E.164): `+15550100123`.
    phone: String,
}

/// Starts verifying a phone number for sign-in codes by SMS (the user, recently
/// authenticated): a code is texted to it.
#[utoipa::path(post, path = "/api/v1/users/{id}/mfa/sms", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), request_body = PhoneBody, security(("bearer" = [])),
    responses((status = 202, body = super::auth::CodeSent), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn begin_sms(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PhoneBody>,
) -> ApiResult<Response> {
    let id = user_id(&caller, &id)?;
    let mfa = s.manager.mfa();
    let sent = mfa.begin_sms(&caller.principal(), id, &body.phone).await?;
    code_answer(sent, SecondFactor::Sms)
}

/// Confirms the phone number with the texted code. `recovery_codes` is filled (shown
/// once) when the user had none.
#[utoipa::path(post, path = "/api/v1/users/{id}/mfa/sms/confirm", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), request_body = ConfirmBody, security(("bearer" = [])),
    responses((status = 200, body = RecoveryCodes), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn confirm_sms(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ConfirmBody>,
) -> ApiResult<Json<RecoveryCodes>> {
    let id = user_id(&caller, &id)?;
    let mfa = s.manager.mfa();
    let recovery_codes = mfa.confirm_sms(&caller.principal(), id, &body.code).await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

/// Removes the phone number (the user, recently authenticated).
#[utoipa::path(delete, path = "/api/v1/users/{id}/mfa/sms", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn remove_sms(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = user_id(&caller, &id)?;
    s.manager.mfa().remove_sms(&caller.principal(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts registering a passkey or security key (the user, recently authenticated):
/// options for `navigator.credentials.create()`.
#[utoipa::path(post, path = "/api/v1/users/{id}/webauthn/register", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 200, body = WebauthnOptions), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn begin_passkey_registration(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<WebauthnOptions>> {
    let id = user_id(&caller, &id)?;
    let mfa = s.manager.mfa();
    WebauthnOptions::of(
        &mfa.begin_passkey_registration(&caller.principal(), id)
            .await?,
    )
}

/// `POST /api/v1/users/{id}/webauthn/register/finish` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterFinishBody {
    /// A name for the key ("work laptop"), 1 to 64 characters.
    name: String,
    /// The answer of `navigator.credentials.create()`.
    #[schema(value_type = Object)]
    credential: RegisterPublicKeyCredential,
}

/// Completes a passkey registration. `recovery_codes` is filled (shown once) when the
/// user had none.
#[utoipa::path(post, path = "/api/v1/users/{id}/webauthn/register/finish", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), request_body = RegisterFinishBody, security(("bearer" = [])),
    responses((status = 201, body = RecoveryCodes), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn finish_passkey_registration(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RegisterFinishBody>,
) -> ApiResult<Response> {
    let id = user_id(&caller, &id)?;
    let recovery_codes = s
        .manager
        .mfa()
        .finish_passkey_registration(&caller.principal(), id, &body.name, body.credential)
        .await?;
    Ok((StatusCode::CREATED, Json(RecoveryCodes { recovery_codes })).into_response())
}

/// Removes a passkey (the user, recently authenticated).
#[utoipa::path(delete, path = "/api/v1/users/{id}/webauthn/{credential}", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)"), ("credential" = String, Path, description = "credential id (base64url), from GET /users/{id}/mfa")), security(("bearer" = [])),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn remove_passkey(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, credential)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = user_id(&caller, &id)?;
    let mfa = s.manager.mfa();
    mfa.remove_passkey(&caller.principal(), id, &credential)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
