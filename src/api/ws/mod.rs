//! Event sockets. `GET /api/v1/ws` streams a user's events (and takes activity events
//! in); `GET /api/v1/admin/events` streams every user's security events to operators.
//! The protocol — frames, errors and close codes — is documented in
//! `docs/websocket.md`.
//!
//! Each user socket runs as two tasks: this module's reader (frames in, pings, idle and
//! expiry checks) and a writer that owns the sending half and drains the socket's event
//! queue. The actor only ever `try_send`s into that queue, so a client that stops
//! reading blocks nobody: its queue fills and the actor closes it (4008), and a write
//! the client does not take within the write timeout ends it too.

//!
//! The loops take any [`Socket`] — a sink of frames and a stream of them — so tests drive
//! them through channels, as axum's testing-websockets example does.

mod admin;
mod frames;
mod live;
mod user;

#[cfg(test)]
mod tests;

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::{Sink, Stream};
use serde::Deserialize;

use super::AppState;
use super::extract::Caller;
use super::problem::ApiError;
use crate::config::WebSocketConfig;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::time::Timestamp;
use crate::engine::{Principal, Resume, StreamId, UserSession};

/// A socket as the loops see it: frames out, frames (or read errors) in. Axum's
/// `WebSocket` is one; so is a pair of channels in tests.
pub(crate) trait Socket:
    Sink<Message, Error = axum::Error>
    + Stream<Item = Result<Message, axum::Error>>
    + Unpin
    + Send
    + 'static
{
}

impl<T> Socket for T where
    T: Sink<Message, Error = axum::Error>
        + Stream<Item = Result<Message, axum::Error>>
        + Unpin
        + Send
        + 'static
{
}

/// Invalid frames in a row after which a socket is closed (1008).
const MAX_ERRORS_IN_A_ROW: u32 = 20;

/// Least time between two heartbeats that reach the user's actor; more frequent ones
/// are answered without it.
const HEARTBEAT_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// How long a close frame may take to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Resume point in the query string: `?stream=<hex>&last_seq=<n>` (both or neither).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResumeQuery {
    /// The `stream` from the previous connection's `hello`.
    #[param(value_type = Option<String>)]
    stream: Option<StreamId>,
    /// The last `seq` the client processed.
    last_seq: Option<u64>,
}

fn resume_from(q: ResumeQuery) -> Result<Option<Resume>, ApiError> {
    match (q.stream, q.last_seq) {
        (Some(stream), Some(last_seq)) => Ok(Some(Resume { stream, last_seq })),
        (None, None) => Ok(None),
        _ => Err(ApiError::InvalidInput {
            field: Some("last_seq".into()),
            detail: "stream and last_seq go together".into(),
        }),
    }
}

fn upgrade_error(e: WebSocketUpgradeRejection) -> ApiError {
    ApiError::InvalidInput {
        field: None,
        detail: format!("expected a WebSocket upgrade: {e}"),
    }
}

fn configure(ws: WebSocketUpgrade, c: &WebSocketConfig) -> WebSocketUpgrade {
    ws.read_buffer_size(c.read_buffer_bytes)
        .write_buffer_size(c.write_buffer_bytes)
        .max_write_buffer_size(c.max_write_buffer_bytes)
        .max_message_size(c.max_message_bytes)
        .max_frame_size(c.max_message_bytes)
}

/// The caller's event stream over a WebSocket. Authenticate with the `Authorization`
/// header, or (browsers) with a first `{"type":"auth","token":...}` frame.
#[utoipa::path(get, path = "/api/v1/ws", tag = "realtime", params(ResumeQuery),
    responses((status = 101, description = "switching to the event protocol (docs/websocket.md)"),
        (status = 400, body = crate::api::problem::Problem), (status = 401, body = crate::api::problem::Problem),
        (status = 403, body = crate::api::problem::Problem), (status = 429, body = crate::api::problem::Problem)))]
pub(crate) async fn events_socket(
    State(s): State<AppState>,
    caller: Caller,
    crate::api::extract::Origin(origin): crate::api::extract::Origin,
    query: Result<Query<ResumeQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let resume = resume_from(
        query
            .map_err(|e| ApiError::InvalidInput {
                field: None,
                detail: e.body_text(),
            })?
            .0,
    )?;
    let known = match &caller {
        Caller::User(a) => Some(Authenticated {
            user: a.session.user_id,
            session: a.session.session_id,
            expires_at: a.session.expires_at,
            resume,
        }),
        Caller::Admin => {
            return Err(ApiError::Forbidden(
                "the operator key has no event stream; operators use /api/v1/admin/events",
            ));
        }
        Caller::Anonymous => None,
    };
    let ws = configure(ws.map_err(upgrade_error)?, &s.manager.config().websocket);
    Ok(ws.on_upgrade(move |socket| user::run_user_socket(s, socket, known, resume, origin)))
}

/// Every user's security events (new devices, lockouts, password changes), live, for
/// operator dashboards. Lossy: a reader that falls behind gets a `lagged` frame.
#[utoipa::path(get, path = "/api/v1/admin/events", tag = "admin", security(("bearer" = [])),
    responses((status = 101, description = "switching to the security feed (docs/websocket.md)"),
        (status = 400, body = crate::api::problem::Problem), (status = 401, body = crate::api::problem::Problem),
        (status = 403, body = crate::api::problem::Problem)))]
pub(crate) async fn admin_events(
    State(s): State<AppState>,
    caller: Caller,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let feed = s.manager.ops().security_feed(&caller.principal())?;
    let ws = configure(ws.map_err(upgrade_error)?, &s.manager.config().websocket);
    Ok(ws.on_upgrade(move |socket| admin::run_admin_socket(s, socket, feed)))
}

/// Live figures for operator consoles, one frame a second (`docs/websocket.md`).
#[utoipa::path(get, path = "/api/v1/admin/live", tag = "admin", security(("bearer" = [])),
    responses((status = 101, description = "switching to the live figures (docs/websocket.md)"),
        (status = 400, body = crate::api::problem::Problem), (status = 401, body = crate::api::problem::Problem),
        (status = 403, body = crate::api::problem::Problem)))]
pub(crate) async fn admin_live(
    State(s): State<AppState>,
    caller: Caller,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let by = caller.principal();
    s.manager.analytics().live(&by)?;
    let ws = configure(ws.map_err(upgrade_error)?, &s.manager.config().websocket);
    Ok(ws.on_upgrade(move |socket| live::run_live_socket(s, socket, by)))
}

#[derive(Clone, Copy)]
pub(super) struct Authenticated {
    user: UserId,
    session: SessionId,
    expires_at: Timestamp,
    resume: Option<Resume>,
}

impl Authenticated {
    /// The socket's user, acting through its session.
    pub(super) fn principal(&self) -> Principal {
        Principal::User(UserSession {
            user: self.user,
            session: self.session,
        })
    }
}
