//! Second factors over HTTP: the second call of a login, codes by email, authenticator
//! enrollment, recovery codes, step-up and the security-event history.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::extract::{Caller, JsonBody};
use super::problem::{ApiError, Problem};
use crate::domain::ids::UserId;
use crate::domain::mfa::{MfaStatus, SecondFactor};
use crate::domain::security_log::SecurityEvent;
use crate::domain::time::Timestamp;
use crate::engine::audit::{AuditAction, AuditActor};
use crate::engine::{ChallengeOutcome, CodeSend, LoginSuccess, StepUpOutcome};
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
        SecondFactor::Email => (
            otp::numeric_well_formed(code, cfg.code_digits),
            format!("{} digits", cfg.code_digits),
        ),
        SecondFactor::RecoveryCode => (
            otp::normalize_recovery(code).is_some(),
            "a recovery code (xxxx-xxxx-xxxx-xxxx)".to_owned(),
        ),
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

/// `POST /api/v1/auth/login/mfa` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteLoginBody {
    /// The challenge token from `/auth/login`.
    challenge: String,
    /// Which factor the code is from.
    method: SecondFactor,
    /// The code.
    code: String,
}

/// The second call of a login: a code from the authenticator, from the email sent with
/// `/auth/login/mfa/email`, or a recovery code. A wrong code counts against the
/// challenge (`attempts_left`) and the account's lockout.
#[utoipa::path(post, path = "/auth/login/mfa", tag = "auth", request_body = CompleteLoginBody,
    responses((status = 200, body = LoginSuccess), (status = 400, body = Problem), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn complete_login(
    State(s): State<AppState>,
    caller: Caller,
    super::extract::ClientIp(ip): super::extract::ClientIp,
    JsonBody(body): JsonBody<CompleteLoginBody>,
) -> ApiResult<Json<LoginSuccess>> {
    super::handlers::limit_anonymous(&s, &caller, ip)?;
    check_code(&s, body.method, &body.code)?;
    match s
        .manager
        .complete_login(&body.challenge, body.method, &body.code)
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

/// Sends a sign-in code to the account's email address for a pending login.
#[utoipa::path(post, path = "/auth/login/mfa/email", tag = "auth", request_body = SendCodeBody,
    responses((status = 202, body = CodeSent), (status = 400, body = Problem), (status = 401, body = Problem), (status = 409, body = Problem), (status = 429, body = Problem)))]
pub async fn send_login_code(
    State(s): State<AppState>,
    caller: Caller,
    super::extract::ClientIp(ip): super::extract::ClientIp,
    JsonBody(body): JsonBody<SendCodeBody>,
) -> ApiResult<Response> {
    super::handlers::limit_anonymous(&s, &caller, ip)?;
    match s.manager.send_login_code(&body.challenge).await? {
        CodeSend::Sent { expires_at } => {
            Ok((StatusCode::ACCEPTED, Json(CodeSent { expires_at })).into_response())
        }
        CodeSend::TooSoon { retry_after_secs } => Err(ApiError::TooSoon(retry_after_secs)),
        CodeSend::NotOffered => Err(ApiError::Conflict(
            "this challenge does not offer a code by email".into(),
        )),
        CodeSend::Gone => Err(ApiError::ChallengeGone),
    }
}

/// `POST /api/v1/auth/step-up` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepUpBody {
    /// The account's password.
    password: String,
    /// With an authenticator enrolled: `authenticator` or `recovery_code`.
    method: Option<SecondFactor>,
    /// The code of `method`.
    code: Option<String>,
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
#[utoipa::path(post, path = "/auth/step-up", tag = "auth", request_body = StepUpBody, security(("bearer" = [])),
    responses((status = 200, body = SteppedUp), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn step_up(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<StepUpBody>,
) -> ApiResult<Json<SteppedUp>> {
    let a = caller.require_user()?;
    let factor = match (body.method, body.code) {
        (Some(m), Some(c)) => {
            if m == SecondFactor::Email {
                return Err(ApiError::InvalidInput {
                    field: Some("method".into()),
                    detail: "step-up accepts authenticator or recovery_code".into(),
                });
            }
            check_code(&s, m, &c)?;
            Some((m, c))
        }
        (None, None) => None,
        _ => {
            return Err(ApiError::InvalidInput {
                field: Some("code".into()),
                detail: "method and code go together".into(),
            });
        }
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
#[utoipa::path(get, path = "/users/{id}/mfa", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
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
#[utoipa::path(post, path = "/users/{id}/mfa/totp", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
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
#[utoipa::path(post, path = "/users/{id}/mfa/totp/confirm", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), request_body = ConfirmBody, security(("bearer" = [])),
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
#[utoipa::path(delete, path = "/users/{id}/mfa/totp", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
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
#[utoipa::path(post, path = "/users/{id}/mfa/recovery-codes", tag = "mfa", params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
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
#[utoipa::path(get, path = "/users/{id}/security-events", tag = "users", params(("id" = String, Path, description = "user id (UUID)"), EventsQuery), security(("bearer" = [])),
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
