//! SCIM 2.0 (RFC 7643/7644) at `/scim/v2`, for identity providers that push users into
//! Roster (Okta, Microsoft Entra ID, OneLogin): `Users` (create, read, search with
//! `filter`, replace, patch, delete), `Bulk`, and the discovery endpoints. Each
//! provider has its own bearer token (`[automation.scim.clients.<name>]`) and acts as
//! the system principal `scim` (the operator key works too); every change is a call
//! of the engine's provisioning facade, audited like any other. Errors are SCIM
//! errors (`urn:ietf:params:scim:api:messages:2.0:Error`, with `scimType`). Groups
//! are not supported: a tier is the Roster extension's `tier` attribute.
//!
//! `resource` maps users to and from SCIM JSON and applies PATCH operations; `bulk`
//! runs `/Bulk`; `discovery` answers `/ServiceProviderConfig`, `/ResourceTypes` and
//! `/Schemas`.

mod bulk;
mod discovery;
mod resource;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;

use super::AppState;
use super::problem::ApiError;
use crate::domain::directory::filter::Filter;
use crate::domain::ids::UserId;
use crate::engine::{EngineError, MAX_DIRECTORY_PAGE, Principal};

/// The media type of SCIM bodies.
const SCIM_JSON: &str = "application/scim+json";

const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const SEARCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// Largest body of a request other than `/Bulk`.
const MAX_SCIM_BODY: usize = 64 * 1024;

/// The provisioning clients: each one's principal (`scim:<name>`, named so in the
/// audit log) and token.
type Clients = std::sync::Arc<Vec<(Principal, String)>>;

/// The `/scim/v2` routes, authenticated by their own middleware.
pub(crate) fn routes(state: AppState) -> Router {
    // A principal names its system actor with a `&'static str`: one short name per
    // configured client, made once per router.
    let clients: Clients = std::sync::Arc::new(
        state
            .manager
            .config()
            .automation
            .scim
            .clients
            .iter()
            .map(|(name, token)| {
                let name: &'static str = Box::leak(format!("scim:{name}").into_boxed_str());
                (Principal::System(name), token.expose().to_owned())
            })
            .collect(),
    );
    let auth = middleware::from_fn_with_state((state.clone(), clients), authenticate);
    Router::new()
        .route(
            "/scim/v2/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route("/scim/v2/ResourceTypes", get(discovery::resource_types))
        .route("/scim/v2/ResourceTypes/{id}", get(discovery::resource_type))
        .route("/scim/v2/Schemas", get(discovery::schemas))
        .route("/scim/v2/Schemas/{id}", get(discovery::schema))
        .route("/scim/v2/Users", get(list_users).post(create_user))
        .route("/scim/v2/Users/.search", post(search_users))
        .route(
            "/scim/v2/Users/{id}",
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route("/scim/v2/Bulk", post(bulk::bulk))
        .route("/scim/v2/Groups", axum::routing::any(groups))
        .route("/scim/v2/Groups/{*rest}", axum::routing::any(groups))
        .route("/scim/v2", axum::routing::any(not_found))
        .route("/scim/v2/{*rest}", axum::routing::any(not_found))
        .layer(auth)
        .with_state(state)
}

/// A SCIM error response.
#[derive(Debug)]
pub(crate) struct ScimError {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
}

impl ScimError {
    pub(crate) fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    /// 400 with `scimType`.
    pub(crate) fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    fn body(&self) -> Value {
        let mut v = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            v["scimType"] = json!(t);
        }
        v
    }
}

impl From<EngineError> for ScimError {
    fn from(e: EngineError) -> Self {
        let api = ApiError::from(e);
        let status = api.status();
        if status.is_server_error() {
            tracing::error!(error = %api, "a SCIM request failed");
            return Self::new(
                status,
                None,
                "the server could not do this; try again later",
            );
        }
        let immutable = matches!(&api, ApiError::InvalidInput { detail, .. } if detail.contains("cannot change"));
        let scim_type = match status {
            StatusCode::BAD_REQUEST if immutable => Some("mutability"),
            StatusCode::BAD_REQUEST => Some("invalidValue"),
            StatusCode::CONFLICT => Some("uniqueness"),
            _ => None,
        };
        Self::new(status, scim_type, api.to_string())
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut resp = scim_json(self.status, &self.body());
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"scim\""),
            );
        }
        resp
    }
}

/// `value` as a SCIM response.
pub(crate) fn scim_json(status: StatusCode, value: &Value) -> Response {
    let mut resp = (status, value.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    resp
}

type ScimResult = Result<Response, ScimError>;

/// The principal of an authenticated SCIM request.
#[derive(Clone)]
struct Caller(Principal);

async fn authenticate(
    State((state, clients)): State<(AppState, Clients)>,
    mut req: Request,
    next: Next,
) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token else {
        return ScimError::new(StatusCode::UNAUTHORIZED, None, "a bearer token is required")
            .into_response();
    };
    // Every token is compared, in constant time, whichever matches.
    let mut client = None;
    for (principal, t) in clients.iter() {
        if bool::from(t.as_bytes().ct_eq(token.as_bytes())) {
            client = Some(principal.clone());
        }
    }
    let operator = state
        .admin_key
        .as_ref()
        .is_some_and(|k| bool::from(k.as_bytes().ct_eq(token.as_bytes())));
    let principal = match (client, operator) {
        (Some(p), _) => p,
        (None, true) => Principal::Operator,
        (None, false) => {
            return ScimError::new(
                StatusCode::UNAUTHORIZED,
                None,
                "the bearer token is not a SCIM client's",
            )
            .into_response();
        }
    };
    req.extensions_mut().insert(Caller(principal));
    next.run(req).await
}

/// The URL the users are under, for `meta.location`: from the request's `Host`.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        });
    match host {
        Some(h) => format!("http://{h}/scim/v2"),
        None => "/scim/v2".to_owned(),
    }
}

/// A SCIM request body: `application/scim+json` or `application/json`, at most
/// `limit` bytes, a JSON object.
async fn read_body(req: Request, limit: usize) -> Result<Value, ScimError> {
    let media_ok =
        super::extract::media_type_is(req.headers(), |m| m == SCIM_JSON || m == "application/json");
    if !media_ok {
        return Err(ScimError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            "expected Content-Type: application/scim+json",
        ));
    }
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| {
            ScimError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                format!("the body is larger than {limit} bytes"),
            )
        })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ScimError::bad("invalidSyntax", format!("the body is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(ScimError::bad(
            "invalidSyntax",
            "the body must be a JSON object",
        ));
    }
    Ok(value)
}

fn user_id(text: &str) -> Result<UserId, ScimError> {
    text.parse()
        .map_err(|_| ScimError::new(StatusCode::NOT_FOUND, None, format!("no user {text}")))
}

fn not_found_user(e: EngineError, id: &str) -> ScimError {
    match e {
        EngineError::NotFound => {
            ScimError::new(StatusCode::NOT_FOUND, None, format!("no user {id}"))
        }
        other => other.into(),
    }
}

/// The query of `GET /Users`.
#[derive(Deserialize)]
struct ListQuery {
    filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<String>,
    count: Option<String>,
}

/// `startIndex` (from 1; lower is 1) and `count` (at most the page; negative is 0).
fn paging(start: Option<&str>, count: Option<&str>) -> Result<(usize, usize), ScimError> {
    let number = |name: &str, v: Option<&str>, default: i64| -> Result<i64, ScimError> {
        match v {
            None => Ok(default),
            Some(t) => t
                .trim()
                .parse::<i64>()
                .map_err(|_| ScimError::bad("invalidValue", format!("{name} must be an integer"))),
        }
    };
    let start = number("startIndex", start, 1)?.max(1);
    let count =
        number("count", count, MAX_DIRECTORY_PAGE as i64)?.clamp(0, MAX_DIRECTORY_PAGE as i64);
    Ok((
        usize::try_from(start - 1).unwrap_or(0),
        usize::try_from(count).unwrap_or(0),
    ))
}

async fn search(
    state: &AppState,
    by: &Principal,
    headers: &HeaderMap,
    filter: Option<&str>,
    start: usize,
    count: usize,
) -> ScimResult {
    let filter = match filter.map(str::trim).filter(|f| !f.is_empty()) {
        Some(text) => Some(Filter::parse(text).map_err(|e| ScimError::bad("invalidFilter", e.0))?),
        None => None,
    };
    let page = state
        .manager
        .provisioning()
        .search_directory(by, filter, start, count)
        .await?;
    let base = base_url(headers);
    let resources: Vec<Value> = page
        .users
        .iter()
        .map(|u| resource::render(u, &base))
        .collect();
    let body = json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": page.total,
        "startIndex": start + 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    });
    Ok(scim_json(StatusCode::OK, &body))
}

async fn list_users(
    State(state): State<AppState>,
    Extension(Caller(by)): Extension<Caller>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> ScimResult {
    let (start, count) = paging(q.start_index.as_deref(), q.count.as_deref())?;
    search(&state, &by, &headers, q.filter.as_deref(), start, count).await
}

async fn search_users(
    State(state): State<AppState>,
    Extension(Caller(by)): Extension<Caller>,
    req: Request,
) -> ScimResult {
    let headers = req.headers().clone();
    let body = read_body(req, MAX_SCIM_BODY).await?;
    let schemas_ok = body["schemas"]
        .as_array()
        .is_some_and(|s| s.iter().any(|v| v == SEARCH_SCHEMA));
    if !schemas_ok {
        return Err(ScimError::bad(
            "invalidSyntax",
            format!("schemas must hold {SEARCH_SCHEMA}"),
        ));
    }
    let text = |k: &str| match &body[k] {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    };
    let (start, count) = paging(text("startIndex").as_deref(), text("count").as_deref())?;
    let filter = body["filter"].as_str();
    search(&state, &by, &headers, filter, start, count).await
}

async fn create_user(
    State(state): State<AppState>,
    Extension(Caller(by)): Extension<Caller>,
    req: Request,
) -> ScimResult {
    let base = base_url(req.headers());
    let body = read_body(req, MAX_SCIM_BODY).await?;
    let (status, value) = resource::create(&state, &by, &body, &base).await?;
    let mut resp = scim_json(status, &value);
    if let Some(loc) = value["meta"]["location"]
        .as_str()
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}

async fn get_user(
    State(state): State<AppState>,
    Extension(Caller(by)): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimResult {
    let uid = user_id(&id)?;
    let record = state
        .manager
        .provisioning()
        .directory_user(&by, uid)
        .await
        .map_err(|e| not_found_user(e, &id))?;
    Ok(scim_json(
        StatusCode::OK,
        &resource::render(&record, &base_url(&headers)),
    ))
}

async fn replace_user(
    State(state): State<AppState>,
    Extension(Caller(by)): Extension<Caller>,
    Path(id): Path<String>,
    req: Request,
) -> ScimResult {
    let base = base_url(req.headers());
    let body = read_body(req, MAX_SCIM_BODY).await?;
    let value = resource::replace(&state, &by, &id, &body, &base).await?;
    Ok(scim_json(StatusCode::OK, &value))
}

async fn patch_user(
    State(state): State<AppState>,
    Extension(Caller(by)): Extension<Caller>,
    Path(id): Path<String>,
    req: Request,
) -> ScimResult {
    let base = base_url(req.headers());
    let body = read_body(req, MAX_SCIM_BODY).await?;
    let value = resource::patch(&state, &by, &id, &body, &base).await?;
    Ok(scim_json(StatusCode::OK, &value))
}

async fn delete_user(
    State(state): State<AppState>,
    Extension(Caller(by)): Extension<Caller>,
    Path(id): Path<String>,
) -> ScimResult {
    resource::delete(&state, &by, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn groups() -> ScimError {
    ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "Groups are not supported: a user's tier is the attribute tier of the schema urn:roster:params:scim:schemas:extension:2.0:User",
    )
}

async fn not_found() -> ScimError {
    ScimError::new(StatusCode::NOT_FOUND, None, "no such SCIM endpoint")
}
