//! RFC 9457 problem responses: every error the API returns is
//! `application/problem+json` with a stable `type`, a title, the status and a detail
//! a client developer can act on. 5xx details stay in the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::engine::EngineError;

/// An API failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// A field breaks a rule.
    #[error("{detail}")]
    InvalidInput {
        /// The offending field, when known.
        field: Option<String>,
        /// What is wrong.
        detail: String,
    },
    /// The body is not the JSON the endpoint takes.
    #[error("{0}")]
    MalformedBody(String),
    /// The body is not declared as JSON.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// The body is over the size limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// No or bad credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Login refused (one answer for unknown email, wrong password and lockout).
    #[error("email or password is incorrect")]
    InvalidCredentials,
    /// Authenticated, but not allowed to do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The tier does not allow this.
    #[error("{0}")]
    TierLimit(String),
    /// An integration provider failed or could not be reached.
    #[error("{0}")]
    ProviderFailed(String),
    /// An integration provider is rate limiting or failing.
    #[error("{message}")]
    ProviderBusy {
        /// What the provider said.
        message: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The linked account must be linked again.
    #[error("{0}")]
    ReauthRequired(String),
    /// The user has not given the consent the operation needs.
    #[error("{0}")]
    ConsentRequired(&'static str),
    /// No such resource.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The email is registered already.
    #[error("email is already registered")]
    EmailTaken,
    /// The change conflicts with another; retry.
    #[error("{0}")]
    Conflict(String),
    /// A tier quota would be passed.
    #[error("the {kind} quota of the tier is {limit}; {used} used, {requested} more requested")]
    QuotaExceeded {
        /// Which quota.
        kind: String,
        /// Used before.
        used: u64,
        /// The limit.
        limit: u64,
        /// Asked for.
        requested: u64,
    },
    /// Too many requests.
    #[error("rate limit of {limit} requests per hour exceeded; retry in {retry_after} s")]
    RateLimited {
        /// The allowance.
        limit: u64,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// Password hashing is saturated.
    /// The operation is sensitive and the session has not authenticated recently.
    #[error("this operation needs a recent authentication: POST /api/v1/auth/step-up first")]
    StepUpRequired,
    /// The session was refused and ended (zero-trust binding or risk).
    #[error("{0}")]
    SessionRefused(&'static str),
    /// A wrong second factor.
    #[error("the code is not valid; {attempts_left} attempts left")]
    FactorRejected {
        /// Tries left on this challenge.
        attempts_left: u32,
    },
    /// The login challenge cannot be answered any more.
    #[error("the login challenge is unknown, expired or used up; log in again")]
    ChallengeGone,
    /// A step-up needs a second factor too.
    #[error("this account has an authenticator: send `method` and `code` with the password")]
    FactorRequired,
    /// A code was sent moments ago.
    #[error("a code was sent moments ago; retry in {0} s")]
    TooSoon(u64),
    #[error("the server is at capacity; retry shortly")]
    Overloaded,
    /// The engine is stopping or unavailable.
    #[error("service unavailable")]
    Unavailable,
    /// A bug or a storage failure; details are logged.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The problem type's last segment (`invalid-input`, `email-taken`...).
    pub fn kind(&self) -> &'static str {
        self.parts().1
    }

    /// Whether this is the server's fault (5xx) rather than the request's.
    pub fn is_server_error(&self) -> bool {
        self.parts().0.is_server_error()
    }

    /// The HTTP status it answers with.
    pub(crate) fn status(&self) -> StatusCode {
        self.parts().0
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            InvalidInput { .. } => (StatusCode::BAD_REQUEST, "invalid-input", "Invalid input"),
            MalformedBody(_) => (
                StatusCode::BAD_REQUEST,
                "malformed-body",
                "Malformed request body",
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            Unauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authentication required",
            ),
            InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "invalid-credentials",
                "Invalid credentials",
            ),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            TierLimit(_) => (StatusCode::FORBIDDEN, "tier-limit", "Not in this tier"),
            ProviderFailed(_) => (
                StatusCode::BAD_GATEWAY,
                "provider-failed",
                "Integration provider failed",
            ),
            ProviderBusy { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "provider-busy",
                "Integration provider busy",
            ),
            ReauthRequired(_) => (
                StatusCode::CONFLICT,
                "reauth-required",
                "Link the account again",
            ),
            ConsentRequired(_) => (
                StatusCode::FORBIDDEN,
                "consent-required",
                "Consent required",
            ),
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            EmailTaken => (
                StatusCode::CONFLICT,
                "email-taken",
                "Email already registered",
            ),
            Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            QuotaExceeded { .. } => (
                StatusCode::FORBIDDEN,
                "quota-exceeded",
                "Tier quota exceeded",
            ),
            RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
            ),
            StepUpRequired => (
                StatusCode::FORBIDDEN,
                "step-up-required",
                "Recent authentication required",
            ),
            SessionRefused(_) => (
                StatusCode::UNAUTHORIZED,
                "session-refused",
                "Session refused",
            ),
            FactorRejected { .. } => (
                StatusCode::UNAUTHORIZED,
                "mfa-code-invalid",
                "Invalid second factor",
            ),
            ChallengeGone => (
                StatusCode::UNAUTHORIZED,
                "challenge-invalid",
                "Login challenge invalid",
            ),
            FactorRequired => (
                StatusCode::UNAUTHORIZED,
                "factor-required",
                "Second factor required",
            ),
            TooSoon(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "code-resend-too-soon",
                "Code sent moments ago",
            ),
            Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "Server at capacity",
            ),
            Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }

    /// The stable problem `type` URI.
    pub fn type_uri(&self) -> String {
        format!("{PROBLEM_BASE}{}", self.parts().1)
    }
}

/// The shape of every error body (RFC 9457), for the OpenAPI document.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable URI naming the kind of problem: `https://roster.dev/problems/<kind>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong in this case.
    pub detail: String,
    /// The offending field, for `invalid-input`.
    pub field: Option<String>,
}

/// Prefix of every problem `type`; the suffixes are listed in the README.
pub const PROBLEM_BASE: &str = "https://roster.dev/problems/";

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Validation(v) => ApiError::InvalidInput {
                field: Some(v.field),
                detail: v.reason,
            },
            EngineError::EmailTaken => ApiError::EmailTaken,
            EngineError::NotFound => ApiError::NotFound("user"),
            EngineError::Overloaded => ApiError::Overloaded,
            EngineError::Unavailable => ApiError::Unavailable,
            EngineError::Conflict(m) => ApiError::Conflict(m),
            EngineError::StepUpRequired => ApiError::StepUpRequired,
            EngineError::SessionRefused(m) => ApiError::SessionRefused(m),
            EngineError::Unauthenticated(m) => ApiError::Unauthorized(m),
            EngineError::Forbidden(m) => ApiError::Forbidden(m),
            EngineError::NoSuch(what) => ApiError::NotFound(what),
            EngineError::TierLimit(m) => ApiError::TierLimit(m),
            EngineError::Provider(m) => {
                tracing::warn!(error = %m, "an integration provider failed");
                ApiError::ProviderFailed(m)
            }
            EngineError::ProviderBusy {
                message,
                retry_after,
            } => ApiError::ProviderBusy {
                message,
                retry_after,
            },
            EngineError::ReauthRequired(m) => ApiError::ReauthRequired(m),
            EngineError::ConsentRequired(m) => ApiError::ConsentRequired(m),
            other => {
                tracing::error!(error = %other, "request failed");
                ApiError::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _, title) = self.parts();
        let mut body = json!({
            "type": self.type_uri(),
            "title": title,
            "status": status.as_u16(),
            "detail": self.to_string(),
        });
        match &self {
            ApiError::InvalidInput { field: Some(f), .. } => body["field"] = Value::from(f.clone()),
            ApiError::QuotaExceeded {
                kind,
                used,
                limit,
                requested,
            } => {
                body["quota"] =
                    json!({ "kind": kind, "used": used, "limit": limit, "requested": requested });
            }
            ApiError::FactorRejected { attempts_left } => {
                body["attempts_left"] = Value::from(*attempts_left);
            }
            _ => {}
        }
        let mut resp = (status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self {
            ApiError::TooSoon(secs) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            ApiError::ProviderBusy { retry_after, .. } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            ApiError::RateLimited { retry_after, limit } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                h.insert("ratelimit-limit", HeaderValue::from(limit));
                h.insert("ratelimit-remaining", HeaderValue::from(0u64));
                h.insert("ratelimit-reset", HeaderValue::from(retry_after));
            }
            ApiError::Overloaded | ApiError::Unavailable => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(1u64));
            }
            ApiError::Unauthorized(_) => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        resp
    }
}
