//! The integration hub: the providers an account can be linked to
//! (`GET /api/v1/integrations`), a user's links (`/api/v1/users/{id}/integrations`),
//! and the callback providers send the user back to.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::api::AppState;
use crate::api::extract::{Caller, JsonBody, user_id};
use crate::api::problem::{ApiError, Problem};
use crate::engine::{
    Callback, CompanionOutcome, CreativeEvent, DeveloperToken, LinkAnswer, LinkView, LinkWith,
    ProviderInfo, PushCounted, Synced, Unlinked,
};

type ApiResult<T> = Result<T, ApiError>;

/// The configured providers (never their credentials): how each is linked, whether it
/// is available (its credentials configured) and, for a user, whether its tier may
/// link it.
#[utoipa::path(get, path = "/api/v1/integrations", tag = "integrations", security(("bearer" = [])),
    responses((status = 200, body = [ProviderInfo]), (status = 401, body = Problem)))]
pub(crate) async fn providers(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ProviderInfo>>> {
    Ok(Json(
        s.manager.integrations().providers(&caller.principal())?,
    ))
}

/// What a link may carry (only Apple Music takes anything).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkBody {
    /// Apple Music: the Music User Token MusicKit gave the client.
    music_user_token: Option<String>,
}

/// Begins linking the account at `provider` (the user's own session): the address to
/// send the user to, with a single-use `state` bound to this session (OAuth 2.0,
/// Last.fm); or, for Apple Music, with the body's `music_user_token`, the link made
/// (checked at Apple first). 403 `tier-limit` when the tier does not include the
/// provider or its links are used up; 409 when the provider is not configured on this
/// server.
#[utoipa::path(post, path = "/api/v1/users/{id}/integrations/{provider}/link", tag = "integrations",
    params(("id" = String, Path, description = "user id (UUID)"), ("provider" = String, Path, description = "provider id, e.g. spotify")),
    request_body(content = Option<LinkBody>, description = "only for apple_music"),
    security(("bearer" = [])),
    responses((status = 201, body = LinkAnswer), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 502, body = Problem), (status = 503, body = Problem)))]
pub(crate) async fn link(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, provider)): Path<(String, String)>,
    body: Option<JsonBody<LinkBody>>,
) -> ApiResult<Response> {
    let id = user_id(&caller, &id)?;
    let body = body.map(|JsonBody(b)| b).unwrap_or_default();
    let with = LinkWith {
        music_user_token: body.music_user_token,
    };
    let hub = s.manager.integrations();
    let answer = hub.link(&caller.principal(), id, &provider, with).await?;
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// A developer token for `provider` (Apple Music), signed by this server (ES256, its
/// configured life, at most 6 months), for a signed-in client to hand MusicKit and
/// obtain the user's Music User Token with. 403 `tier-limit` when the user's tier does
/// not include the provider; 409 when the provider is not configured or signs no
/// tokens.
#[utoipa::path(get, path = "/api/v1/integrations/{provider}/developer-token", tag = "integrations",
    params(("provider" = String, Path, description = "provider id (apple_music)")),
    security(("bearer" = [])),
    responses((status = 200, body = DeveloperToken), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn developer_token(
    State(s): State<AppState>,
    caller: Caller,
    Path(provider): Path<String>,
) -> ApiResult<Json<DeveloperToken>> {
    let hub = s.manager.integrations();
    Ok(Json(hub.developer_token(&caller.principal(), &provider)?))
}

/// What a provider sends the user back with (other parameters it adds are ignored).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallbackQuery {
    /// The `state` of the link begun.
    state: Option<String>,
    /// The authorization code (OAuth 2.0).
    code: Option<String>,
    /// The token (Last.fm).
    token: Option<String>,
    /// The provider's error (`access_denied` when the user declined).
    error: Option<String>,
    /// Its description.
    error_description: Option<String>,
}

/// Where the provider sends the user back: the `state` is checked (single use, this
/// provider's, unexpired, its session still live), the code exchanged for tokens, kept
/// encrypted under the user's data key. No bearer token: the `state` is the
/// credential. 400 names what is wrong (`state`, `code`, `token`, `error`); 502
/// `provider-failed` when the provider cannot be reached. A browser (`text/html` in
/// `Accept`) is sent on with 303 to `integrations.return_url` instead, with
/// `linked=<provider>` or `link_failed=<provider>&reason=<why>` in the query (`why`:
/// the provider's error such as `access_denied`, the field at fault, or the problem's
/// type).
#[utoipa::path(get, path = "/api/v1/integrations/{provider}/callback", tag = "integrations",
    params(("provider" = String, Path, description = "provider id"), CallbackQuery),
    responses((status = 200, body = LinkView), (status = 303, description = "a browser, sent on to the configured return page"), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 502, body = Problem)))]
pub(crate) async fn callback(
    State(s): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> ApiResult<Response> {
    let declined = q.error.as_deref().map(error_code);
    let back = Callback {
        state: q.state,
        code: q.code,
        token: q.token,
        error: q.error,
        error_description: q.error_description,
    };
    let made = s
        .manager
        .integrations()
        .callback(&provider, back)
        .await
        .map_err(ApiError::from);
    let browser = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"));
    if !browser {
        return Ok(Json(made?).into_response());
    }
    let why = match &made {
        Ok(_) => None,
        Err(e) => Some(match (declined, e) {
            (Some(code), _) => code,
            (None, ApiError::InvalidInput { field: Some(f), .. }) => f.clone(),
            (None, other) => other.kind().to_owned(),
        }),
    };
    let to = s
        .manager
        .config()
        .integrations
        .return_to(&provider, why.as_deref());
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response())
}

/// A provider's error code as a page may show it: `[a-z0-9_]`, at most 64 of them.
fn error_code(e: &str) -> String {
    e.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The user's linked accounts (the user, an operator): provider, scopes, status,
/// expiry, last refresh and sync; never a token.
#[utoipa::path(get, path = "/api/v1/users/{id}/integrations", tag = "integrations",
    params(("id" = String, Path, description = "user id (UUID)")), security(("bearer" = [])),
    responses((status = 200, body = [LinkView]), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn links(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<LinkView>>> {
    let id = user_id(&caller, &id)?;
    let hub = s.manager.integrations();
    Ok(Json(hub.links(&caller.principal(), id).await?))
}

/// Unlinks `provider` (the user, an operator): deleted here, and its tokens revoked at
/// the provider where it has a revocation endpoint (`revoked` says whether it
/// confirmed).
#[utoipa::path(delete, path = "/api/v1/users/{id}/integrations/{provider}", tag = "integrations",
    params(("id" = String, Path, description = "user id (UUID)"), ("provider" = String, Path, description = "provider id")),
    security(("bearer" = [])),
    responses((status = 200, body = Unlinked), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn unlink(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, provider)): Path<(String, String)>,
) -> ApiResult<Json<Unlinked>> {
    let id = user_id(&caller, &id)?;
    let hub = s.manager.integrations();
    Ok(Json(hub.unlink(&caller.principal(), id, &provider).await?))
}

/// Syncs the recent listening of the user's link to `provider` into its history (the
/// user, an operator): each play once however often the same window is synced, matched
/// to catalog tracks by ISRC or artist and title. The token is refreshed first when it
/// is near its expiry. 403 `consent-required` without the consent to analytics; 409
/// `reauth-required` when the link must be made again; 503 `provider-busy` with
/// `Retry-After`; 502 `provider-failed`.
#[utoipa::path(post, path = "/api/v1/users/{id}/integrations/{provider}/sync", tag = "integrations",
    params(("id" = String, Path, description = "user id (UUID)"), ("provider" = String, Path, description = "provider id")),
    security(("bearer" = [])),
    responses((status = 200, body = Synced), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 502, body = Problem), (status = 503, body = Problem)))]
pub(crate) async fn sync(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, provider)): Path<(String, String)>,
) -> ApiResult<Json<Synced>> {
    let id = user_id(&caller, &id)?;
    let hub = s.manager.integrations();
    Ok(Json(hub.sync(&caller.principal(), id, &provider).await?))
}

/// A desktop companion's push.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompanionBody {
    /// 1–100 events: `session` (`started_at`, `ended_at`) or `export` (`at`,
    /// `duration_ms`), each with the companion's own `id`.
    events: Vec<CreativeEvent>,
}

/// Where a creative tool's desktop companion (`ableton_live`, `logic_pro`,
/// `fl_studio`) pushes the sessions and exports it saw, with the key its link made in
/// the `X-Companion-Key` header (no bearer token). Each event counts once, however
/// often it is pushed; a new session counts in the history as the desktop app opened
/// (with the consent to analytics). One request against the tier's rate. 401 for a key
/// that is not the link's (or was replaced); 403 `tier-limit` for a suspended link;
/// 409 for a provider that takes no companion.
#[utoipa::path(post, path = "/api/v1/integrations/{provider}/events", tag = "integrations",
    params(("provider" = String, Path, description = "provider id, e.g. ableton_live"),
        ("X-Companion-Key" = Option<String>, Header, description = "the companion's key (rck_…)")),
    request_body = CompanionBody,
    responses((status = 200, body = PushCounted), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn companion_events(
    State(s): State<AppState>,
    Path(provider): Path<String>,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody<CompanionBody>,
) -> ApiResult<Json<PushCounted>> {
    let key = headers.get("x-companion-key").and_then(|v| v.to_str().ok());
    let hub = s.manager.integrations();
    match hub.companion_push(&provider, key, body.events).await? {
        CompanionOutcome::Counted(c) => Ok(Json(c)),
        CompanionOutcome::RateLimited {
            retry_after_secs,
            limit,
        } => Err(ApiError::RateLimited {
            limit,
            retry_after: retry_after_secs,
        }),
    }
}
