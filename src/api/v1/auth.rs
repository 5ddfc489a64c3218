//! `/api/v1/auth`: logins (password, second factor, passkey), sign-in codes, step-up
//! and logout.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::WebauthnOptions;
use crate::api::AppState;
use crate::api::extract::{Caller, ClientIp, JsonBody, Origin};
use crate::api::problem::{ApiError, Problem};
use crate::domain::mfa::SecondFactor;
use crate::domain::session::LoginContext;
use crate::domain::time::Timestamp;
use crate::engine::{
    ChallengeOutcome, CodeSend, FactorAnswer, LoginChallenge, LoginOutcome, LoginSuccess,
    PasswordlessChallenge, PublicKeyCredential, StepUpOutcome,
};

type ApiResult<T> = Result<T, ApiError>;

/// `POST /api/v1/auth/login` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    email: String,
    password: String,
    #[serde(default)]
    context: Option<LoginContext>,
}

/// Login. Unknown email, wrong password, a locked account and a login refused by the
/// risk engine get the same answer. When a second factor is needed (the user's
/// settings, a zero-trust tier, or the risk score) the answer is `202` with a challenge
/// to complete at `/auth/login/mfa`. `context.ip_address` is taken from the connection
/// (or a trusted proxy's `X-Forwarded-For`) unless the operator key is sent.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Login,
    responses((status = 200, body = LoginSuccess), (status = 202, body = LoginChallenge), (status = 400, body = Problem), (status = 401, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)))]
pub(crate) async fn login(
    State(s): State<AppState>,
    caller: Caller,
    Origin(origin): Origin,
    JsonBody(body): JsonBody<Login>,
) -> ApiResult<Response> {
    s.limit_anonymous(&caller, origin.ip.unwrap_or(super::UNSPECIFIED))?;
    let context = body.context.unwrap_or_default();
    match s
        .manager
        .login()
        .password(
            &caller.principal(),
            &body.email,
            &body.password,
            context,
            origin,
        )
        .await?
    {
        LoginOutcome::Success(ok) => Ok(Json(*ok).into_response()),
        LoginOutcome::Challenge(c) => Ok((StatusCode::ACCEPTED, Json(*c)).into_response()),
        LoginOutcome::Denied(_) => Err(ApiError::InvalidCredentials),
    }
}

/// Ends the calling session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn logout(State(s): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    s.manager.login().logout(&caller.principal()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/auth/login/mfa` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompleteLoginBody {
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

fn login_answer(outcome: ChallengeOutcome) -> ApiResult<Json<LoginSuccess>> {
    match outcome {
        ChallengeOutcome::Success(ok) => Ok(Json(*ok)),
        ChallengeOutcome::Rejected { attempts_left } => {
            Err(ApiError::FactorRejected { attempts_left })
        }
        ChallengeOutcome::Gone => Err(ApiError::ChallengeGone),
    }
}

/// The second call of a login: a code from the authenticator, from the email sent with
/// `/auth/login/mfa/email`, or a recovery code. A wrong code counts against the
/// challenge (`attempts_left`) and the account's lockout.
#[utoipa::path(post, path = "/api/v1/auth/login/mfa", tag = "auth", request_body = CompleteLoginBody,
    responses((status = 200, body = LoginSuccess), (status = 400, body = Problem), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn complete_login(
    State(s): State<AppState>,
    caller: Caller,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<CompleteLoginBody>,
) -> ApiResult<Json<LoginSuccess>> {
    s.limit_anonymous(&caller, ip)?;
    let answer = FactorAnswer {
        method: body.method,
        code: body.code,
        credential: body.credential,
    };
    login_answer(s.manager.login().complete(&body.challenge, answer).await?)
}

/// `POST /api/v1/auth/login/mfa/email` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendCodeBody {
    /// The challenge token from `/auth/login`.
    challenge: String,
}

/// When a sent code stops working.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CodeSent {
    /// Expiry of the code.
    pub(super) expires_at: Timestamp,
}

/// A code-sending outcome as an answer.
pub(super) fn code_answer(sent: CodeSend, channel: SecondFactor) -> ApiResult<Response> {
    match sent {
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
pub(crate) async fn send_login_code(
    State(s): State<AppState>,
    caller: Caller,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<SendCodeBody>,
) -> ApiResult<Response> {
    send_code(&s, &caller, ip, &body, SecondFactor::Email).await
}

/// Texts a sign-in code to the user's verified phone number for a pending login.
#[utoipa::path(post, path = "/api/v1/auth/login/mfa/sms", tag = "auth", request_body = SendCodeBody,
    responses((status = 202, body = CodeSent), (status = 400, body = Problem), (status = 401, body = Problem), (status = 409, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn send_login_sms(
    State(s): State<AppState>,
    caller: Caller,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<SendCodeBody>,
) -> ApiResult<Response> {
    send_code(&s, &caller, ip, &body, SecondFactor::Sms).await
}

/// Both code sends: limited like every anonymous call, then one call to the engine.
async fn send_code(
    s: &AppState,
    caller: &Caller,
    ip: std::net::IpAddr,
    body: &SendCodeBody,
    channel: SecondFactor,
) -> ApiResult<Response> {
    s.limit_anonymous(caller, ip)?;
    let sent = s
        .manager
        .login()
        .send_code(&body.challenge, channel)
        .await?;
    code_answer(sent, channel)
}

/// `POST /api/v1/auth/login/mfa/webauthn` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssertionOptionsBody {
    /// The challenge token from `/auth/login`.
    challenge: String,
}

/// The WebAuthn options for answering a login challenge with a passkey; then
/// `POST /auth/login/mfa` with `method: "webauthn"` and the `credential`.
#[utoipa::path(post, path = "/api/v1/auth/login/mfa/webauthn", tag = "auth", request_body = AssertionOptionsBody,
    responses((status = 200, body = WebauthnOptions), (status = 400, body = Problem), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn login_webauthn_options(
    State(s): State<AppState>,
    caller: Caller,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<AssertionOptionsBody>,
) -> ApiResult<Json<WebauthnOptions>> {
    s.limit_anonymous(&caller, ip)?;
    match s.manager.login().assertion_options(&body.challenge).await? {
        Some(o) => WebauthnOptions::of(&o),
        None => Err(ApiError::ChallengeGone),
    }
}

/// `POST /api/v1/auth/passkey/start` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasskeyStartBody {
    /// The account's email.
    email: String,
    /// Where the login comes from (as for `/auth/login`).
    #[serde(default)]
    context: Option<LoginContext>,
}

/// Passwordless login, first step: a challenge and the WebAuthn options to sign. The
/// answer has the same shape for every email, whether or not it has a passkey; then
/// `POST /auth/passkey/finish`.
#[utoipa::path(post, path = "/api/v1/auth/passkey/start", tag = "auth", request_body = PasskeyStartBody,
    responses((status = 200, body = PasswordlessChallenge), (status = 400, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn passkey_start(
    State(s): State<AppState>,
    caller: Caller,
    Origin(origin): Origin,
    JsonBody(body): JsonBody<PasskeyStartBody>,
) -> ApiResult<Json<PasswordlessChallenge>> {
    s.limit_anonymous(&caller, origin.ip.unwrap_or(super::UNSPECIFIED))?;
    let context = body.context.unwrap_or_default();
    Ok(Json(
        s.manager
            .login()
            .passkey_start(&caller.principal(), &body.email, context, origin)
            .await?,
    ))
}

/// `POST /api/v1/auth/passkey/finish` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasskeyFinishBody {
    /// The challenge token from `/auth/passkey/start`.
    challenge: String,
    /// The assertion from `navigator.credentials.get()`.
    #[schema(value_type = Object)]
    credential: PublicKeyCredential,
}

/// Passwordless login, second step: the signed assertion → a session.
#[utoipa::path(post, path = "/api/v1/auth/passkey/finish", tag = "auth", request_body = PasskeyFinishBody,
    responses((status = 200, body = LoginSuccess), (status = 400, body = Problem), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn passkey_finish(
    State(s): State<AppState>,
    caller: Caller,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<PasskeyFinishBody>,
) -> ApiResult<Json<LoginSuccess>> {
    s.limit_anonymous(&caller, ip)?;
    let answer = FactorAnswer::assertion(body.credential);
    login_answer(s.manager.login().complete(&body.challenge, answer).await?)
}

/// `POST /api/v1/auth/step-up` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepUpBody {
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
pub(crate) struct SteppedUp {
    /// End of the step-up window.
    valid_until: Timestamp,
}

/// Step-up: proves the credentials again in the calling session, so that sensitive
/// operations (removing a factor, new recovery codes, export, deletion, a password
/// change with a factor enrolled) are allowed for `mfa.step_up_secs`.
#[utoipa::path(post, path = "/api/v1/auth/step-up", tag = "auth", request_body = StepUpBody, security(("bearer" = [])),
    responses((status = 200, body = SteppedUp), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 503, body = Problem)))]
pub(crate) async fn step_up(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<StepUpBody>,
) -> ApiResult<Json<SteppedUp>> {
    let answer = match body.method {
        Some(method) => Some(FactorAnswer {
            method,
            code: body.code,
            credential: body.credential,
        }),
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
        .login()
        .step_up(&caller.principal(), &body.password, answer)
        .await?
    {
        StepUpOutcome::Done { valid_until } => Ok(Json(SteppedUp { valid_until })),
        StepUpOutcome::Rejected => Err(ApiError::InvalidCredentials),
        StepUpOutcome::FactorRequired => Err(ApiError::FactorRequired),
    }
}

/// WebAuthn options for a step-up with a passkey; then `POST /auth/step-up` with
/// `method: "webauthn"` and the `credential`.
#[utoipa::path(post, path = "/api/v1/auth/step-up/webauthn", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = WebauthnOptions), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn step_up_webauthn_options(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<WebauthnOptions>> {
    let login = s.manager.login();
    WebauthnOptions::of(&login.step_up_assertion_options(&caller.principal()).await?)
}
