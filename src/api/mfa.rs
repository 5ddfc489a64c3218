//! Second factors over HTTP: the second call of a login, codes by email, authenticator
//! enrollment, recovery codes, step-up and the security-event history.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AppState;
use super::extract::{Caller, JsonBody};
use super::problem::{ApiError, Problem};
use crate::domain::ids::UserId;
use crate::domain::mfa::{MfaStatus, SecondFactor};
use crate::domain::security_log::SecurityEvent;
use crate::domain::time::Timestamp;
use crate::engine::audit::{AuditAction, AuditActor};
use crate::engine::{
    ChallengeOutcome, CodeSend, FactorProof, LoginSuccess, PasswordlessChallenge, StepUpOutcome,
};
use crate::security::passkey::{PublicKeyCredential, RegisterPublicKeyCredential};
use crate::security::totp::TotpEnrollment;
use crate::security::{otp, totp};

type ApiResult<T> = Result<T, ApiError>;

/// Longest page of security events.
const MAX_EVENTS_PAGE: usize = 200;

fn own_account(caller: &Caller, raw: &str) -> ApiResult<(UserId, crate::domain::ids::SessionId)> {
    let a = caller.require_user()?;
    let id = super::handlers::parse_id(raw)?;
    caller.require_self_or_admin(id)?;
    Ok((id, a.session.session_id))
}

/// Checks a code's shape for `factor` before anything is counted, so that a typo in the
/// format is a 400 and not a wasted attempt.
fn check_code(s: &AppState, factor: SecondFactor, code: &str) -> ApiResult<()> {
    let cfg = &s.manager.config().mfa;
    let code = code.trim();
    let (ok, want) = match factor {
        SecondFactor::Authenticator => (
            totp::well_formed(code, &cfg.totp),
            format!("{} digits", cfg.totp.digits),
        ),
        SecondFactor::Email | SecondFactor::Sms => (
            otp::numeric_well_formed(code, cfg.code_digits),
            format!("{} digits", cfg.code_digits),
        ),
        SecondFactor::RecoveryCode => (
            otp::normalize_recovery(code).is_some(),
            "a recovery code (xxxx-xxxx-xxxx-xxxx)".to_owned(),
        ),
        SecondFactor::Webauthn => (false, "sent as `credential`, not `code`".to_owned()),
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::InvalidInput {
            field: Some("code".into()),
            detail: format!("must be {want}"),
        })
    }
}

/// The proof for `method`: a well-formed `code`, or for `webauthn` a `credential` (the
/// signed assertion); never both.
fn proof(
    s: &AppState,
    method: SecondFactor,
    code: Option<String>,
    credential: Option<PublicKeyCredential>,
) -> ApiResult<FactorProof> {
    match (method, code, credential) {
        (SecondFactor::Webauthn, None, Some(c)) => Ok(FactorProof::Assertion(Box::new(c))),
        (SecondFactor::Webauthn, _, _) => Err(ApiError::InvalidInput {
            field: Some("credential".into()),
            detail: "webauthn is answered with `credential` (the assertion), and no `code`".into(),
        }),
        (m, Some(code), None) => {
            check_code(s, m, &code)?;
            Ok(FactorProof::Code(code))
        }
        (_, _, _) => Err(ApiError::InvalidInput {
            field: Some("code".into()),
            detail: "this method is answered with `code`, and no `credential`".into(),
        }),
    }
}

/// `POST /api/v1/auth/login/mfa` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteLoginBody {
    /// The challenge token from `/auth/login` or `/auth/passkey/start`.
    challenge: String,
    /// Which factor answers.
    method: SecondFactor,
    /// The code, for `authenticator`, `email` and `recovery_code`.
    code: Option<String>,
    /// For `webauthn`: the assertion from `navigator.credentials.get()`.
    #[schema(value_type = Option<Object>)]
    credential: Option<PublicKeyCredential>,
}

/// The second call of a login: a code from the authenticator, from the email sent with
/// `/auth/login/mfa/email`, or a recovery code. A wrong code counts against the
/// challenge (`attempts_left`) and the account's lockout.
#[utoipa::path(post, path = "/api/v1/auth/login/mfa", tag = "auth", request_body = CompleteLoginBody,
    responses((status = 200, body = LoginSuccess), (status = 400, body = Problem), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn complete_login(
    State(s): State<AppState>,
    caller: Caller,
    super::extract::ClientIp(ip): super::extract::ClientIp,
    JsonBody(body): JsonBody<CompleteLoginBody>,
) -> ApiResult<Json<LoginSuccess>> {
    super::handlers::limit_anonymous(&s, &caller, ip)?;
    let proof = proof(&s, body.method, body.code, body.credential)?;
    match s
        .manager
        .complete_login(&body.challenge, body.method, proof)
        .await?
    {
        ChallengeOutcome::Success(ok) => Ok(Json(*ok)),
        ChallengeOutcome::Rejected { attempts_left } => {
            Err(ApiError::FactorRejected { attempts_left })
        }
        ChallengeOutcome::Gone => Err(ApiError::ChallengeGone),
    }
}

/// `POST /api/v1/auth/login/mfa/email` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendCodeBody {
    /// The challenge token from `/auth/login`.
    challenge: String,
}

/// When a sent code stops working.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CodeSent {
    /// Expiry of the code.
    expires_at: Timestamp,
}

async fn send_code(s: &AppState, challenge: &str, channel: SecondFactor) -> ApiResult<Response> {
    match s.manager.send_login_code(challenge, channel).await? {
        CodeSend::Sent { expires_at } => {
            Ok((StatusCode::ACCEPTED, Json(CodeSent { expires_at })).into_response())
        }
        CodeSend::TooSoon { retry_after_secs } => Err(ApiError::TooSoon(retry_after_secs)),
        CodeSend::NotOffered => Err(ApiError::Conflict(format!(
            "this challenge does not offer a code by {}",
            channel.as_str()
        ))),
        CodeSend::Gone => Err(ApiError::ChallengeGone),
    }
}

/// Sends a sign-in code to the account's email address for a pending login.
#[utoipa::path(post, path = "/api/v1/auth/login/mfa/email", tag = "auth", request_body = SendCodeBody,
    responses((status = 202, body = CodeSent), (status = 400, body = Problem), (status = 401, body = Problem), (status = 409, body = Problem), (status = 429, body = Problem)))]
pub async fn send_login_code(
    State(s): State<AppState>,
    caller: Caller,
    super::extract::ClientIp(ip): super::extract::ClientIp,
    JsonBody(body): JsonBody<SendCodeBody>,
) -> ApiResult<Response> {
    super::handlers::limit_anonymous(&s, &caller, ip)?;
    send_code(&s, &body.challenge, SecondFactor::Email).await
}

/// Texts a sign-in code to the user's verified phone number for a pending login.
#[utoipa::path(post, path = "/api/v1/auth/login/mfa/sms", tag = "auth", request_body = SendCodeBody,
    responses((status = 202, body = CodeSent), (status = 400, body = Problem), (status = 401, body = Problem), (status = 409, body = Problem), (status = 429, body = Problem)))]
pub async fn send_login_sms(
    State(s): State<AppState>,
    caller: Caller,
    super::extract::ClientIp(ip): super::extract::ClientIp,
    JsonBody(body): JsonBody<SendCodeBody>,
) -> ApiResult<Response> {
    super::handlers::limit_anonymous(&s, &caller, ip)?;
    send_code(&s, &body.challenge, SecondFactor::Sms).await
}

/// `POST /api/v1/users/{id}/mfa/sms` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneBody {
    /// An international number (E.164): `+15550100123`.
    phone: String,
}

/// Starts verifying a phone number for sign-in codes by SMS (the user, recently
/// authenticated): a code is texted to it.
#[utoipa::path(post, path = "/api/v1/users/{id}/mfa/sms", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), request_body = PhoneBody, security(("bearer" = [])),
    responses((status = 202, body = CodeSent), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem), (status = 429, body = Problem)))]
pub async fn begin_sms(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PhoneBody>,
) -> ApiResult<Response> {
    let (id, session) = own_account(&caller, &id)?;
    match s.manager.begin_sms(id, Some(session), &body.phone).await? {
        CodeSend::Sent { expires_at } => {
            Ok((StatusCode::ACCEPTED, Json(CodeSent { expires_at })).into_response())
        }
        CodeSend::TooSoon { retry_after_secs } => Err(ApiError::TooSoon(retry_after_secs)),
        CodeSend::NotOffered | CodeSend::Gone => Err(ApiError::Internal),
    }
}

/// Confirms the phone number with the texted code. `recovery_codes` is filled (shown
/// once) when the user had none.
#[utoipa::path(post, path = "/api/v1/users/{id}/mfa/sms/confirm", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), request_body = ConfirmBody, security(("bearer" = [])),
    responses((status = 200, body = RecoveryCodes), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn confirm_sms(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ConfirmBody>,
) -> ApiResult<Json<RecoveryCodes>> {
    let (id, _) = own_account(&caller, &id)?;
    check_code(&s, SecondFactor::Sms, &body.code)?;
    let recovery_codes = s.manager.confirm_sms(id, &body.code).await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

/// Removes the phone number (the user, recently authenticated).
#[utoipa::path(delete, path = "/api/v1/users/{id}/mfa/sms", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn remove_sms(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (id, session) = own_account(&caller, &id)?;
    s.manager
        .remove_sms(id, Some(session))
        .await
        .map_err(|e| match e {
            crate::engine::EngineError::NotFound => ApiError::NotFound("phone number"),
            e => e.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/auth/step-up` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepUpBody {
    /// The account's password.
    password: String,
    /// With a factor enrolled: `authenticator`, `webauthn` or `recovery_code`.
    method: Option<SecondFactor>,
    /// The code of `method`.
    code: Option<String>,
    /// For `webauthn`: the assertion for the options of `/auth/step-up/webauthn`.
    #[schema(value_type = Option<Object>)]
    credential: Option<PublicKeyCredential>,
}

/// Until when sensitive operations are allowed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SteppedUp {
    /// End of the step-up window.
    valid_until: Timestamp,
}

/// Step-up: proves the credentials again in the calling session, so that sensitive
/// operations (removing a factor, new recovery codes, export, deletion, a password
/// change with a factor enrolled) are allowed for `mfa.step_up_secs`.
#[utoipa::path(post, path = "/api/v1/auth/step-up", tag = "auth", request_body = StepUpBody, security(("bearer" = [])),
    responses((status = 200, body = SteppedUp), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn step_up(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<StepUpBody>,
) -> ApiResult<Json<SteppedUp>> {
    let a = caller.require_user()?;
    let factor = match body.method {
        Some(SecondFactor::Email | SecondFactor::Sms) => {
            return Err(ApiError::InvalidInput {
                field: Some("method".into()),
                detail: "step-up accepts authenticator, webauthn or recovery_code".into(),
            });
        }
        Some(m) => Some((m, proof(&s, m, body.code, body.credential)?)),
        None if body.code.is_some() || body.credential.is_some() => {
            return Err(ApiError::InvalidInput {
                field: Some("method".into()),
                detail: "say which factor the code or credential is from".into(),
            });
        }
        None => None,
    };
    match s
        .manager
        .step_up(
            a.session.user_id,
            a.session.session_id,
            &body.password,
            factor,
        )
        .await?
    {
        StepUpOutcome::Done { valid_until } => Ok(Json(SteppedUp { valid_until })),
        StepUpOutcome::Rejected => Err(ApiError::InvalidCredentials),
        StepUpOutcome::FactorRequired => Err(ApiError::FactorRequired),
    }
}

/// The user's second factors (never their secrets).
#[utoipa::path(get, path = "/api/v1/users/{id}/mfa", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 200, body = MfaStatus), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn mfa_status(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<MfaStatus>> {
    let id = super::handlers::target(&caller, &id)?;
    Ok(Json(s.manager.mfa_status(id).await?))
}

/// Starts authenticator enrollment (the user itself, recently authenticated): returns
/// the secret, the `otpauth://` URI and a QR code. Confirm with the first code.
#[utoipa::path(post, path = "/api/v1/users/{id}/mfa/totp", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 201, body = TotpEnrollment), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn begin_totp(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (id, session) = own_account(&caller, &id)?;
    let e = s.manager.begin_totp(id, Some(session)).await?;
    Ok((StatusCode::CREATED, Json(e)).into_response())
}

/// `POST /api/v1/users/{id}/mfa/totp/confirm` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    /// The authenticator's current code.
    code: String,
}

/// Recovery codes, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RecoveryCodes {
    /// Each works once, in place of an authenticator code.
    recovery_codes: Vec<String>,
}

/// Confirms the pending authenticator with its first code; returns the recovery codes.
#[utoipa::path(post, path = "/api/v1/users/{id}/mfa/totp/confirm", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), request_body = ConfirmBody, security(("bearer" = [])),
    responses((status = 200, body = RecoveryCodes), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn confirm_totp(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ConfirmBody>,
) -> ApiResult<Json<RecoveryCodes>> {
    let (id, _) = own_account(&caller, &id)?;
    check_code(&s, SecondFactor::Authenticator, &body.code)?;
    let recovery_codes = s.manager.confirm_totp(id, &body.code).await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

/// Removes the authenticator and its recovery codes (the user, recently authenticated;
/// or the operator, audited), or cancels a pending enrollment.
#[utoipa::path(delete, path = "/api/v1/users/{id}/mfa/totp", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn remove_totp(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = super::handlers::target(&caller, &id)?;
    s.manager.remove_totp(id, caller.session_id()).await?;
    if let Caller::Admin = caller {
        s.manager
            .audit(AuditActor::Operator, AuditAction::MfaReset { user: id })
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// New recovery codes in place of the old ones (the user, recently authenticated).
#[utoipa::path(post, path = "/api/v1/users/{id}/mfa/recovery-codes", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 200, body = RecoveryCodes), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn regenerate_recovery_codes(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RecoveryCodes>> {
    let (id, session) = own_account(&caller, &id)?;
    let recovery_codes = s
        .manager
        .regenerate_recovery_codes(id, Some(session))
        .await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

/// Paging of `GET /users/{id}/security-events`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
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
pub async fn security_events(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<SecurityEvent>>> {
    let id = super::handlers::target(&caller, &id)?;
    let q = query
        .map_err(|e| ApiError::InvalidInput {
            field: None,
            detail: e.body_text(),
        })?
        .0;
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_EVENTS_PAGE).contains(&limit) {
        return Err(ApiError::InvalidInput {
            field: Some("limit".into()),
            detail: format!("must be between 1 and {MAX_EVENTS_PAGE}"),
        });
    }
    let events = s
        .manager
        .security_events(id, q.before.unwrap_or(u64::MAX), limit)
        .await?;
    super::handlers::audit_admin_read(&s, &caller, id, "security_events").await?;
    Ok(Json(events))
}

/// WebAuthn options, for `navigator.credentials.get()` or `.create()`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebauthnOptions {
    /// Pass as is to the browser's WebAuthn call.
    #[schema(value_type = Object)]
    options: Value,
}

fn options_of<T: Serialize>(o: &T) -> ApiResult<Json<WebauthnOptions>> {
    let options = serde_json::to_value(o).map_err(|e| {
        tracing::error!(error = %e, "webauthn options not serialisable");
        ApiError::Internal
    })?;
    Ok(Json(WebauthnOptions { options }))
}

/// `POST /api/v1/auth/login/mfa/webauthn` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssertionOptionsBody {
    /// The challenge token from `/auth/login`.
    challenge: String,
}

/// The WebAuthn options for answering a login challenge with a passkey; then
/// `POST /auth/login/mfa` with `method: "webauthn"` and the `credential`.
#[utoipa::path(post, path = "/api/v1/auth/login/mfa/webauthn", tag = "auth", request_body = AssertionOptionsBody,
    responses((status = 200, body = WebauthnOptions), (status = 400, body = Problem), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn login_webauthn_options(
    State(s): State<AppState>,
    caller: Caller,
    super::extract::ClientIp(ip): super::extract::ClientIp,
    JsonBody(body): JsonBody<AssertionOptionsBody>,
) -> ApiResult<Json<WebauthnOptions>> {
    super::handlers::limit_anonymous(&s, &caller, ip)?;
    match s.manager.login_assertion_options(&body.challenge).await? {
        Some(o) => options_of(&o),
        None => Err(ApiError::ChallengeGone),
    }
}

/// `POST /api/v1/auth/passkey/start` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyStartBody {
    /// The account's email.
    email: String,
    /// Where the login comes from (as for `/auth/login`).
    #[serde(default)]
    context: Option<crate::domain::session::LoginContext>,
}

/// Passwordless login, first step: a challenge and the WebAuthn options to sign. The
/// answer has the same shape for every email, whether or not it has a passkey; then
/// `POST /auth/passkey/finish`.
#[utoipa::path(post, path = "/api/v1/auth/passkey/start", tag = "auth", request_body = PasskeyStartBody,
    responses((status = 200, body = PasswordlessChallenge), (status = 400, body = Problem), (status = 429, body = Problem)))]
pub async fn passkey_start(
    State(s): State<AppState>,
    caller: Caller,
    super::extract::Origin(origin): super::extract::Origin,
    JsonBody(body): JsonBody<PasskeyStartBody>,
) -> ApiResult<Json<PasswordlessChallenge>> {
    let ip = origin
        .ip
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    super::handlers::limit_anonymous(&s, &caller, ip)?;
    let mut context = body.context.unwrap_or_default();
    if !matches!(caller, Caller::Admin) || context.ip_address.is_none() {
        context.ip_address = Some(ip);
    }
    if context.device_id.is_none() {
        context.device_id = origin.device_id;
    }
    Ok(Json(
        s.manager
            .begin_passwordless(&body.email, context, origin.location)
            .await?,
    ))
}

/// `POST /api/v1/auth/passkey/finish` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyFinishBody {
    /// The challenge token from `/auth/passkey/start`.
    challenge: String,
    /// The assertion from `navigator.credentials.get()`.
    #[schema(value_type = Object)]
    credential: PublicKeyCredential,
}

/// Passwordless login, second step: the signed assertion → a session.
#[utoipa::path(post, path = "/api/v1/auth/passkey/finish", tag = "auth", request_body = PasskeyFinishBody,
    responses((status = 200, body = LoginSuccess), (status = 400, body = Problem), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn passkey_finish(
    State(s): State<AppState>,
    caller: Caller,
    super::extract::ClientIp(ip): super::extract::ClientIp,
    JsonBody(body): JsonBody<PasskeyFinishBody>,
) -> ApiResult<Json<LoginSuccess>> {
    super::handlers::limit_anonymous(&s, &caller, ip)?;
    let proof = FactorProof::Assertion(Box::new(body.credential));
    match s
        .manager
        .complete_login(&body.challenge, SecondFactor::Webauthn, proof)
        .await?
    {
        ChallengeOutcome::Success(ok) => Ok(Json(*ok)),
        ChallengeOutcome::Rejected { attempts_left } => {
            Err(ApiError::FactorRejected { attempts_left })
        }
        ChallengeOutcome::Gone => Err(ApiError::ChallengeGone),
    }
}

/// Starts registering a passkey or security key (the user, recently authenticated):
/// options for `navigator.credentials.create()`.
#[utoipa::path(post, path = "/api/v1/users/{id}/webauthn/register", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 200, body = WebauthnOptions), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn begin_passkey_registration(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<WebauthnOptions>> {
    let (id, session) = own_account(&caller, &id)?;
    options_of(
        &s.manager
            .begin_passkey_registration(id, Some(session))
            .await?,
    )
}

/// `POST /api/v1/users/{id}/webauthn/register/finish` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterFinishBody {
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
pub async fn finish_passkey_registration(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RegisterFinishBody>,
) -> ApiResult<Response> {
    let (id, _) = own_account(&caller, &id)?;
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::InvalidInput {
            field: Some("name".into()),
            detail: "must be 1 to 64 printable characters".into(),
        });
    }
    let recovery_codes = s
        .manager
        .finish_passkey_registration(id, name, body.credential)
        .await?;
    Ok((StatusCode::CREATED, Json(RecoveryCodes { recovery_codes })).into_response())
}

/// Removes a passkey (the user, recently authenticated).
#[utoipa::path(delete, path = "/api/v1/users/{id}/webauthn/{credential}", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)"), ("credential" = String, Path, description = "credential id (base64url), from GET /users/{id}/mfa")), security(("bearer" = [])),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn remove_passkey(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, credential)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (id, session) = own_account(&caller, &id)?;
    s.manager
        .remove_passkey(id, Some(session), &credential)
        .await
        .map_err(|e| match e {
            crate::engine::EngineError::NotFound => ApiError::NotFound("passkey"),
            e => e.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// WebAuthn options for a step-up with a passkey; then `POST /auth/step-up` with
/// `method: "webauthn"` and the `credential`.
#[utoipa::path(post, path = "/api/v1/auth/step-up/webauthn", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = WebauthnOptions), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn step_up_webauthn_options(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<WebauthnOptions>> {
    let a = caller.require_user()?;
    options_of(
        &s.manager
            .step_up_assertion_options(a.session.user_id, a.session.session_id)
            .await?,
    )
}
