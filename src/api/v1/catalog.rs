//! `/api/v1/admin/catalog*`: the track catalog recommendations are made from
//! (`docs/personalization.md`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::api::AppState;
use crate::api::extract::{Caller, media_type_is};
use crate::api::problem::{ApiError, Problem};
use crate::domain::catalog::Track;
use crate::engine::{CatalogSummary, TracksPut};

type ApiResult<T> = Result<T, ApiError>;

/// Largest upload body: 10,000 tracks with embeddings of a few hundred numbers.
const MAX_UPLOAD_BYTES: usize = 64 << 20;

/// The tracks of an upload body: a JSON array (`application/json`) or one track per
/// line (`application/x-ndjson`, blank lines skipped). A line that is not a track is
/// named by its number.
fn tracks(json: bool, body: &[u8]) -> ApiResult<Vec<Track>> {
    let invalid = |field: Option<String>, e: serde_json::Error| ApiError::InvalidInput {
        field,
        detail: e.to_string(),
    };
    if json {
        let mut de = serde_json::Deserializer::from_slice(body);
        let all = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_data() {
                invalid((path != ".").then_some(path), inner)
            } else {
                ApiError::MalformedBody(inner.to_string())
            }
        })?;
        // Nothing may follow the array (what did would be dropped unread).
        de.end()
            .map_err(|e| ApiError::MalformedBody(e.to_string()))?;
        return Ok(all);
    }
    let mut out = Vec::new();
    for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut de = serde_json::Deserializer::from_slice(raw);
        let t = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let field = match path.as_str() {
                "." => format!("line {}", i + 1),
                p => format!("line {}: {p}", i + 1),
            };
            invalid(Some(field), e.into_inner())
        })?;
        // One track per line: a second value on it would be dropped unread.
        de.end()
            .map_err(|e| invalid(Some(format!("line {}", i + 1)), e))?;
        out.push(t);
    }
    Ok(out)
}

/// Adds tracks to the catalog or replaces those of their ids (operator only): 1 to
/// 10,000 per call, as a JSON array or NDJSON. All go in, durably, or none: the first
/// broken rule is answered with its field, `[i].name` for the i-th track of the upload
/// (counting from 0, blank NDJSON lines not counted) or `line n` for an NDJSON line that
/// is not a track.
#[utoipa::path(post, path = "/api/v1/admin/catalog/tracks", tag = "personalization", request_body(content = Vec<Track>, description = "a JSON array of tracks, or NDJSON (application/x-ndjson), one per line"), security(("bearer" = [])),
    responses((status = 200, body = TracksPut), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem)))]
pub(crate) async fn put_tracks(
    State(s): State<AppState>,
    caller: Caller,
    req: axum::extract::Request,
) -> ApiResult<Json<TracksPut>> {
    let by = caller.principal();
    let catalog = s.manager.personalization();
    catalog.may_edit(&by)?;
    let json = media_type_is(req.headers(), |m| m == "application/json");
    let ndjson = media_type_is(req.headers(), |m| {
        m == "application/x-ndjson" || m == "application/jsonl"
    });
    if !json && !ndjson {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body = axum::body::to_bytes(req.into_body(), MAX_UPLOAD_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(MAX_UPLOAD_BYTES))?;
    Ok(Json(catalog.put_tracks(&by, tracks(json, &body)?).await?))
}

/// A catalog track as it was uploaded (operator only; text trimmed, genres and tags
/// lower-cased).
#[utoipa::path(get, path = "/api/v1/admin/catalog/tracks/{id}", tag = "personalization", params(("id" = String, Path, description = "track id")), security(("bearer" = [])),
    responses((status = 200, body = Track), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn track(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Track>> {
    let track = s
        .manager
        .personalization()
        .track(&caller.principal(), &id)
        .await?;
    track.map(Json).ok_or(ApiError::NotFound("track"))
}

/// Removes a catalog track (operator only). Activity that names it still counts for
/// analytics; it is no longer recommended.
#[utoipa::path(delete, path = "/api/v1/admin/catalog/tracks/{id}", tag = "personalization", params(("id" = String, Path, description = "track id")), security(("bearer" = [])),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn delete_track(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    match s
        .manager
        .personalization()
        .delete_track(&caller.principal(), &id)
        .await?
    {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::NotFound("track")),
    }
}

/// What the catalog holds (operator only): tracks, distinct names, the embedding
/// dimension uploads must have, and the memory it takes.
#[utoipa::path(get, path = "/api/v1/admin/catalog", tag = "personalization", security(("bearer" = [])),
    responses((status = 200, body = CatalogSummary), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn summary(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<CatalogSummary>> {
    Ok(Json(
        s.manager.personalization().catalog(&caller.principal())?,
    ))
}
