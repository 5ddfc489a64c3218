//! Downloads for operators, streamed as they are written: `GET /api/v1/admin/backup`, a
//! point-in-time backup of the store (`roster backup --server` is its client), and `GET
//! /api/v1/admin/security-events/export`, the security events of a window for a SIEM.

use axum::extract::State;
use axum::response::Response;

use crate::api::AppState;
use crate::api::extract::{Caller, Query};
use crate::api::problem::{ApiError, Problem};
use crate::domain::security_log::SecurityEventKind;
use crate::domain::time::Timestamp;
use crate::engine::SiemWindow;

/// A backup of the whole store at one point in time, taken while the server serves
/// (reads and writes go on; actors are not held): users, routes, the email index, the
/// audit chain, archives, keyring records, models, the catalog, jobs. Personal data stays
/// sealed as at rest; the master key is never in it. The file format is in
/// `docs/operations.md`; a failure midway ends the body without its trailer, which
/// `roster backup` reports. Audited (`backup_taken`).
#[utoipa::path(get, path = "/api/v1/admin/backup", tag = "admin", security(("bearer" = [])),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>,
        description = "the backup file"),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn backup(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let (by, m) = (caller.principal(), s.manager.clone());
    super::stream::bytes(
        "application/octet-stream",
        "attachment; filename=\"roster.backup\"",
        move |out| async move { m.ops().backup(&by, out).await.map(drop) },
    )
    .await
}

/// `GET /api/v1/admin/security-events/export` query.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    /// From this time (RFC 3339, included; default 24 hours before `to`).
    #[param(value_type = Option<String>)]
    from: Option<Timestamp>,
    /// To this time (RFC 3339, excluded; default now).
    #[param(value_type = Option<String>)]
    to: Option<Timestamp>,
    /// Only events of this kind (`login_failed`, `session_revoked`, …).
    #[param(value_type = Option<String>)]
    kind: Option<SecurityEventKind>,
}

/// The security events of a window for a SIEM (operator only), streamed as JSON lines
/// of schema `roster.security_event/1` with OCSF field names (`time`, `class_uid`,
/// `activity_name`, `status`, `severity_id`, `user.uid`, `src_endpoint.ip`,
/// `metadata.uid`, …; `docs/security.md`), from every user's record and the archive, in
/// store order. Audited (`security_events_exported`).
#[utoipa::path(get, path = "/api/v1/admin/security-events/export", tag = "admin", params(ExportQuery), security(("bearer" = [])),
    responses((status = 200, content_type = "application/x-ndjson", body = String,
        description = "one event per line"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn export_security_events(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let (by, m) = (caller.principal(), s.manager.clone());
    let window = SiemWindow {
        from: q.from,
        to: q.to,
        kind: q.kind,
    };
    super::stream::bytes(
        "application/x-ndjson",
        "attachment; filename=\"security-events.jsonl\"",
        move |out| async move {
            m.ops()
                .export_security_events(&by, window, out)
                .await
                .map(drop)
        },
    )
    .await
}
