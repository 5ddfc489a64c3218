//! Activity in: `POST /api/v1/users/{id}/activity` from a server-side client of the
//! user's own (the socket's `activity` frame, over HTTP), and
//! `POST /api/v1/admin/activity/import`, history an operator brings from elsewhere.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::extract::{Caller, JsonBody, media_type_is, user_id};
use crate::api::problem::{ApiError, Problem};
use crate::domain::activity::ActivityEvent;
use crate::domain::ids::UserId;
use crate::engine::{ActivityOutcome, EngineError, ImportOutcome};

/// The events of one request, as in the socket's `activity` frame.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActivityBody {
    /// 1–100 events, all counted or none.
    events: Vec<ActivityEvent>,
}

/// What was counted.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ActivityAck {
    /// Events counted.
    accepted: usize,
}

/// Counts 1–100 activity events of the user (itself, through its session), all or none,
/// as one request against the tier's rate. Only with the user's consent to analytics
/// (403 `consent-required` otherwise, nothing counted). Live events are at most 30 days
/// old; an operator imports older history through `/admin/activity/import`.
#[utoipa::path(post, path = "/api/v1/users/{id}/activity", tag = "analytics", params(("id" = String, Path, description = "user id (UUID)")), request_body = ActivityBody, security(("bearer" = [])),
    responses((status = 200, body = ActivityAck), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem)))]
pub(crate) async fn record_activity(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ActivityBody>,
) -> Result<Json<ActivityAck>, ApiError> {
    let id = user_id(&caller, &id)?;
    let analytics = s.manager.analytics();
    match analytics
        .record_activity(&caller.principal(), id, body.events)
        .await?
    {
        ActivityOutcome::Recorded { accepted } => Ok(Json(ActivityAck { accepted })),
        ActivityOutcome::ConsentRequired { reason } => Err(ApiError::ConsentRequired(reason)),
        ActivityOutcome::SessionInvalid => Err(ApiError::Unauthorized(
            "the session has ended; log in again",
        )),
        ActivityOutcome::RateLimited { retry_after_secs } => {
            let tier = caller.require_user()?.session.tier;
            let limit = s.manager.config().tier(tier).policy.requests_per_hour;
            Err(ApiError::RateLimited {
                limit: limit.value().unwrap_or(u64::MAX),
                retry_after: retry_after_secs,
            })
        }
    }
}

/// Largest history import body.
const MAX_IMPORT_BYTES: usize = 32 << 20;

/// One line of a history import.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportLine {
    user_id: UserId,
    events: Vec<ActivityEvent>,
}

/// What became of one line.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LineResult {
    /// The line's number in the body, from 1.
    line: usize,
    /// The user it named, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<UserId>,
    /// New events counted (absent for a refused line).
    #[serde(skip_serializing_if = "Option::is_none")]
    accepted: Option<usize>,
    /// Events already imported before (or repeated), not counted again.
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicates: Option<usize>,
    /// Why the line was refused: a problem (`type`, `detail`, and `field` naming the
    /// offending event).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    error: Option<Value>,
}

/// The outcome of a history import, line by line.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct HistoryImportReply {
    /// Lines read (blank lines are skipped and not counted).
    lines: usize,
    /// Lines imported (durable).
    imported: usize,
    /// Lines refused.
    failed: usize,
    /// New events counted over all lines.
    events: usize,
    /// Events skipped as already imported.
    duplicates: usize,
    /// Every line's result, in order.
    results: Vec<LineResult>,
}

fn problem(e: ApiError) -> Value {
    let mut v = json!({ "type": e.type_uri(), "detail": e.to_string() });
    if let ApiError::InvalidInput { field: Some(f), .. } = &e {
        v["field"] = Value::from(f.clone());
    }
    v
}

/// Imports activity history for many users (operator only): an NDJSON body
/// (`application/x-ndjson`, up to 32 MiB), one `{"user_id", "events": [...]}` per line,
/// 1–1,000 events a line, of any age after the user's sign-up. Each event is counted once
/// however often it is imported — the same time, kind and track is the same event — so a
/// migration can be replayed or resumed. Each line stands alone: a bad line (malformed,
/// an unknown user, a bad event, no consent to analytics) is reported by number and the
/// others go in. An imported line is durable (and audited) when the answer comes.
#[utoipa::path(post, path = "/api/v1/admin/activity/import", tag = "analytics",
    request_body(content = String, content_type = "application/x-ndjson", description = "one {\"user_id\", \"events\"} object per line"),
    security(("bearer" = [])),
    responses((status = 200, body = HistoryImportReply), (status = 401, body = Problem), (status = 403, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem)))]
pub(crate) async fn import_history(
    State(s): State<AppState>,
    caller: Caller,
    req: axum::extract::Request,
) -> Result<Json<HistoryImportReply>, ApiError> {
    let by = caller.principal();
    s.manager.analytics().may_import(&by)?;
    if !media_type_is(req.headers(), |m| {
        m == "application/x-ndjson" || m == "application/jsonl"
    }) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body = axum::body::to_bytes(req.into_body(), MAX_IMPORT_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(MAX_IMPORT_BYTES))?;
    let mut results = Vec::new();
    let mut work = Vec::new();
    for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut de = serde_json::Deserializer::from_slice(raw);
        let parsed = serde_path_to_error::deserialize::<_, ImportLine>(&mut de)
            .map_err(|e| (e.path().to_string(), e.into_inner()))
            // Nothing may follow a line's value (a second object would be dropped unread).
            .and_then(|line| de.end().map(|()| line).map_err(|e| (".".to_owned(), e)));
        match parsed {
            Ok(line) => {
                work.push((line.user_id, line.events));
                results.push(LineResult {
                    line: i + 1,
                    user_id: Some(line.user_id),
                    accepted: None,
                    duplicates: None,
                    error: None,
                });
            }
            Err((path, e)) => {
                results.push(LineResult {
                    line: i + 1,
                    user_id: None,
                    accepted: None,
                    duplicates: None,
                    error: Some(problem(ApiError::InvalidInput {
                        field: (path != ".").then_some(path),
                        detail: e.to_string(),
                    })),
                });
            }
        }
    }
    let outcomes = s.manager.analytics().import_history(&by, work).await?;
    let mut outcomes = outcomes.into_iter();
    for r in results.iter_mut().filter(|r| r.error.is_none()) {
        match outcomes.next() {
            Some(Ok(ImportOutcome::Imported {
                accepted,
                duplicates,
            })) => {
                r.accepted = Some(accepted);
                r.duplicates = Some(duplicates);
            }
            Some(Ok(ImportOutcome::ConsentRequired { reason })) => {
                r.error = Some(problem(ApiError::ConsentRequired(reason)));
            }
            Some(Err(EngineError::NotFound)) => {
                r.error = Some(problem(ApiError::NotFound("user")));
            }
            Some(Err(e)) => r.error = Some(problem(e.into())),
            None => r.error = Some(problem(ApiError::Internal)),
        }
    }
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    Ok(Json(HistoryImportReply {
        lines: results.len(),
        imported: results.len() - failed,
        failed,
        events: results.iter().filter_map(|r| r.accepted).sum(),
        duplicates: results.iter().filter_map(|r| r.duplicates).sum(),
        results,
    }))
}
