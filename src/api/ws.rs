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

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::AppState;
use super::extract::Caller;
use super::problem::ApiError;
use crate::config::WebSocketConfig;
use crate::domain::activity::ActivityEvent;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::rate::RateDecision;
use crate::domain::time::Timestamp;
use crate::engine::{
    ActivityOutcome, CloseCode, EngineError, Hello, Principal, Realtime, Resume, StreamId,
    SubscribeOutcome, Subscription, UserSession,
};

/// Invalid frames in a row after which a socket is closed (1008).
const MAX_ERRORS_IN_A_ROW: u32 = 20;

/// Least time between two heartbeats that reach the user's actor; more frequent ones
/// are answered without it.
const HEARTBEAT_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// How long a close frame may take to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Resume point in the query string: `?stream=<hex>&last_seq=<n>` (both or neither).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
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
        (status = 400, body = super::problem::Problem), (status = 401, body = super::problem::Problem),
        (status = 403, body = super::problem::Problem), (status = 429, body = super::problem::Problem)))]
pub(crate) async fn events_socket(
    State(s): State<AppState>,
    caller: Caller,
    super::extract::Origin(origin): super::extract::Origin,
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
    Ok(ws.on_upgrade(move |socket| run_user_socket(s, socket, known, resume, origin)))
}

/// Every user's security events (new devices, lockouts, password changes), live, for
/// operator dashboards. Lossy: a reader that falls behind gets a `lagged` frame.
#[utoipa::path(get, path = "/api/v1/admin/events", tag = "admin", security(("bearer" = [])),
    responses((status = 101, description = "switching to the security feed (docs/websocket.md)"),
        (status = 400, body = super::problem::Problem), (status = 401, body = super::problem::Problem),
        (status = 403, body = super::problem::Problem)))]
pub(crate) async fn admin_events(
    State(s): State<AppState>,
    caller: Caller,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let feed = s.manager.ops().security_feed(&caller.principal())?;
    let ws = configure(ws.map_err(upgrade_error)?, &s.manager.config().websocket);
    Ok(ws.on_upgrade(move |socket| run_admin_socket(s, socket, feed)))
}

#[derive(Clone, Copy)]
struct Authenticated {
    user: UserId,
    session: SessionId,
    expires_at: Timestamp,
    resume: Option<Resume>,
}

impl Authenticated {
    /// The socket's user, acting through its session.
    fn principal(&self) -> Principal {
        Principal::User(UserSession {
            user: self.user,
            session: self.session,
        })
    }
}

/// Frames a client sends.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientFrame {
    /// First frame of a socket opened without an `Authorization` header.
    Auth {
        token: String,
        #[serde(default)]
        resume: Option<Resume>,
    },
    /// Keeps the socket and its session alive.
    Heartbeat {
        #[serde(default)]
        id: Option<String>,
    },
    /// Listening activity (1–100 events).
    Activity {
        #[serde(default)]
        id: Option<String>,
        events: Vec<ActivityEvent>,
    },
}

/// An error frame: `{"type":"error","code":...,"message":...}` plus optional fields.
#[derive(Serialize)]
struct ErrorFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_secs: Option<u64>,
}

fn error_frame(code: &'static str, message: impl Into<String>) -> ErrorFrame<'static> {
    ErrorFrame {
        kind: "error",
        code,
        message: message.into(),
        id: None,
        field: None,
        retry_after_secs: None,
    }
}

fn text<T: Serialize>(value: &T) -> Message {
    Message::Text(Utf8Bytes::from(
        serde_json::to_string(value).unwrap_or_default(),
    ))
}

fn close_message(code: CloseCode) -> Message {
    Message::Close(Some(CloseFrame {
        code: code.code(),
        reason: Utf8Bytes::from_static(code.reason()),
    }))
}

/// Parses a client frame, with the path of a bad field.
fn parse_frame(raw: &str) -> Result<ClientFrame, ErrorFrame<'static>> {
    let de = &mut serde_json::Deserializer::from_str(raw);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let mut f = error_frame(
            if inner.is_data() {
                "invalid_frame"
            } else {
                "malformed_json"
            },
            inner.to_string(),
        );
        f.field = (path != ".").then_some(path);
        f
    })
}

/// Waits for the `auth` frame of a socket opened without a header.
async fn first_frame_auth(
    s: &AppState,
    socket: &mut WebSocket,
    timeout: Duration,
    origin: crate::engine::RequestOrigin,
) -> Result<Authenticated, CloseCode> {
    let frame = match tokio::time::timeout(timeout, socket.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => parse_frame(t.as_str()),
        Ok(Some(Ok(_))) => Err(error_frame("auth_required", "the first frame must be auth")),
        Ok(Some(Err(_)) | None) => return Err(CloseCode::Normal),
        Err(_) => Err(error_frame(
            "auth_required",
            "no auth frame within the auth timeout",
        )),
    };
    let reject = |f: ErrorFrame<'static>| (text(&f), CloseCode::Unauthenticated);
    let (token, resume) = match frame {
        Ok(ClientFrame::Auth { token, resume }) => (token, resume),
        Ok(_) => {
            return Err(send_then(
                socket,
                reject(error_frame("auth_required", "the first frame must be auth")),
            )
            .await);
        }
        Err(f) => return Err(send_then(socket, reject(f)).await),
    };
    match s.manager.login().authorize(&token, origin).await {
        Ok(Some(a)) => {
            if let RateDecision::Limited {
                retry_after_secs, ..
            } = a.rate
            {
                let mut f = error_frame("rate_limited", "the tier's request rate is exhausted");
                f.retry_after_secs = Some(retry_after_secs);
                return Err(send_then(socket, reject(f)).await);
            }
            Ok(Authenticated {
                user: a.session.user_id,
                session: a.session.session_id,
                expires_at: a.session.expires_at,
                resume,
            })
        }
        Ok(None) => Err(send_then(
            socket,
            reject(error_frame(
                "unauthenticated",
                "the token is invalid or expired",
            )),
        )
        .await),
        Err(crate::engine::EngineError::SessionRefused(why)) => {
            Err(send_then(socket, reject(error_frame("session_refused", why))).await)
        }
        Err(e) => {
            tracing::error!(error = %e, "socket authentication failed");
            Err(CloseCode::Internal)
        }
    }
}

/// Sends `frame` (best effort) and returns `code` for the caller to close with.
async fn send_then(socket: &mut WebSocket, (frame, code): (Message, CloseCode)) -> CloseCode {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(frame)).await;
    code
}

async fn close_socket(socket: &mut WebSocket, code: CloseCode) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(close_message(code))).await;
}

async fn run_user_socket(
    s: AppState,
    mut socket: WebSocket,
    known: Option<Authenticated>,
    resume: Option<Resume>,
    origin: crate::engine::RequestOrigin,
) {
    let cfg = s.manager.config().websocket.clone();
    let rt = Arc::clone(s.manager.realtime());
    let auth = match known {
        Some(a) => Authenticated { resume, ..a },
        None => match first_frame_auth(&s, &mut socket, cfg.auth_timeout, origin).await {
            // A resume point in the auth frame wins; else the query string's.
            Ok(a) => Authenticated {
                resume: a.resume.or(resume),
                ..a
            },
            Err(code) => {
                close_socket(&mut socket, code).await;
                rt.count_close(code);
                return;
            }
        },
    };
    let refused = match s
        .manager
        .sessions()
        .subscribe(&auth.principal(), auth.resume)
        .await
    {
        Ok(SubscribeOutcome::Subscribed(sub)) => Ok(*sub),
        Ok(SubscribeOutcome::SessionInvalid) => Err(CloseCode::SessionEnded),
        Ok(SubscribeOutcome::TooManySockets) => Err(CloseCode::TooManySockets),
        Err(e) => {
            tracing::error!(error = %e, "socket subscription failed");
            Err(CloseCode::Internal)
        }
    };
    let mut sub = match refused {
        Ok(sub) => sub,
        Err(code) => {
            close_socket(&mut socket, code).await;
            rt.count_close(code);
            return;
        }
    };
    let Some(hello) = sub.take_hello() else {
        return;
    };
    let (sink, mut incoming) = socket.split();
    let (ctrl_tx, ctrl_rx) = mpsc::channel::<Ctrl>(16);
    let mut writer = tokio::spawn(write_loop(
        sink,
        sub,
        hello,
        ctrl_rx,
        cfg.write_timeout,
        Arc::clone(&rt),
    ));
    let mut reader = Reader {
        s: &s,
        auth,
        ctrl: ctrl_tx,
        errors_in_row: 0,
        last_touch: Instant::now(),
        limited_until: None,
    };
    let mut ping = tokio::time::interval(cfg.ping_interval);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let ended = loop {
        tokio::select! {
            w = &mut writer => {
                let code = w.unwrap_or(None);
                if let Some(c) = code {
                    rt.count_close(c);
                }
                return;
            }
            frame = incoming.next() => {
                last_heard = Instant::now();
                match frame {
                    None => break None,
                    Some(Err(e)) => break too_big(e).then_some(CloseCode::TooBig),
                    Some(Ok(Message::Close(_))) => break Some(CloseCode::Normal),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Binary(_))) => {
                        let f = error_frame("binary_not_supported", "frames are JSON text");
                        if let Some(code) = reader.fail(f).await {
                            break Some(code);
                        }
                    }
                    Some(Ok(Message::Text(t))) => {
                        if let Some(code) = reader.handle(t.as_str()).await {
                            break Some(code);
                        }
                    }
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() >= cfg.idle_timeout {
                    break Some(CloseCode::HeartbeatTimeout);
                }
                if let Some(code) = reader.check_expiry().await {
                    break Some(code);
                }
                let _ = reader.ctrl.try_send(Ctrl::Frame(Message::Ping(Default::default())));
            }
        }
    };
    let code = ended.unwrap_or(CloseCode::Normal);
    if ended.is_some() {
        let _ = reader.ctrl.send(Ctrl::Close(code)).await;
    }
    drop(reader);
    // The writer sends the close frame (or gives up after its timeouts) and ends,
    // dropping the subscription.
    let sent = match tokio::time::timeout(cfg.write_timeout + CLOSE_TIMEOUT, &mut writer).await {
        Ok(r) => r.unwrap_or(None),
        Err(_) => {
            writer.abort();
            None
        }
    };
    rt.count_close(sent.unwrap_or(code));
}

/// Whether a read failed because the client's frame or message was over the limit.
fn too_big(e: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    matches!(
        e.into_inner().downcast_ref::<Error>(),
        Some(Error::Capacity(_))
    )
}

/// What the reader asks the writer to send.
enum Ctrl {
    Frame(Message),
    Close(CloseCode),
}

struct Reader<'a> {
    s: &'a AppState,
    auth: Authenticated,
    ctrl: mpsc::Sender<Ctrl>,
    errors_in_row: u32,
    last_touch: Instant,
    limited_until: Option<Instant>,
}

impl Reader<'_> {
    async fn reply<T: Serialize>(&self, value: &T) {
        let _ = self.ctrl.send(Ctrl::Frame(text(value))).await;
    }

    /// Sends an error frame; returns a close code once the client sent too many bad
    /// frames in a row.
    async fn fail(&mut self, f: ErrorFrame<'_>) -> Option<CloseCode> {
        self.reply(&f).await;
        self.errors_in_row += 1;
        (self.errors_in_row >= MAX_ERRORS_IN_A_ROW).then_some(CloseCode::PolicyViolation)
    }

    async fn handle(&mut self, raw: &str) -> Option<CloseCode> {
        let frame = match parse_frame(raw) {
            Ok(f) => f,
            Err(f) => return self.fail(f).await,
        };
        match frame {
            ClientFrame::Auth { .. } => {
                self.fail(error_frame(
                    "already_authenticated",
                    "this socket is authenticated",
                ))
                .await
            }
            ClientFrame::Heartbeat { id } => self.heartbeat(id.as_deref()).await,
            ClientFrame::Activity { id, events } => self.activity(id.as_deref(), events).await,
        }
    }

    async fn heartbeat(&mut self, id: Option<&str>) -> Option<CloseCode> {
        if self.last_touch.elapsed() >= HEARTBEAT_MIN_INTERVAL {
            self.last_touch = Instant::now();
            match self.touch(true).await {
                Ok(()) => {}
                Err(code) => return Some(code),
            }
        }
        self.errors_in_row = 0;
        self.reply(&json!({
            "type": "heartbeat_ack",
            "id": id,
            "session_expires_at": self.auth.expires_at,
        }))
        .await;
        None
    }

    /// Re-reads the session (sliding its idle timeout when `slide`).
    async fn touch(&mut self, slide: bool) -> Result<(), CloseCode> {
        let a = self.auth;
        match self.s.manager.sessions().touch(&a.principal(), slide).await {
            Ok(Some(info)) => {
                self.auth.expires_at = info.expires_at;
                Ok(())
            }
            Ok(None) => Err(CloseCode::SessionEnded),
            Err(EngineError::NotFound) => Err(CloseCode::UserDeleted),
            Err(e) => {
                tracing::error!(error = %e, "socket session check failed");
                Err(CloseCode::Internal)
            }
        }
    }

    /// Past the session's known end, asks whether it really ended (other requests of
    /// the session may have kept it alive).
    async fn check_expiry(&mut self) -> Option<CloseCode> {
        if self.s.manager.now() < self.auth.expires_at {
            return None;
        }
        self.touch(false).await.err()
    }

    async fn activity(
        &mut self,
        id: Option<&str>,
        events: Vec<ActivityEvent>,
    ) -> Option<CloseCode> {
        if let Some(until) = self.limited_until {
            if Instant::now() < until {
                let mut f = error_frame("rate_limited", "the tier's request rate is exhausted");
                f.id = id;
                f.retry_after_secs = Some(until.duration_since(Instant::now()).as_secs() + 1);
                return self.fail(f).await;
            }
            self.limited_until = None;
        }
        let a = self.auth;
        let n = events.len();
        match self
            .s
            .manager
            .sessions()
            .record_activity(&a.principal(), events)
            .await
        {
            Ok(ActivityOutcome::Recorded { accepted }) => {
                self.errors_in_row = 0;
                self.reply(&json!({"type": "activity_ack", "id": id, "accepted": accepted}))
                    .await;
                None
            }
            Ok(ActivityOutcome::RateLimited { retry_after_secs }) => {
                self.limited_until =
                    Some(Instant::now() + Duration::from_secs(retry_after_secs.max(1)));
                let mut f = error_frame("rate_limited", "the tier's request rate is exhausted");
                f.id = id;
                f.retry_after_secs = Some(retry_after_secs.max(1));
                self.fail(f).await
            }
            Ok(ActivityOutcome::SessionInvalid) => Some(CloseCode::SessionEnded),
            Ok(ActivityOutcome::ConsentRequired { reason }) => {
                let mut f = error_frame("consent_required", reason);
                f.id = id;
                self.fail(f).await
            }
            Err(EngineError::Validation(v)) => {
                let mut f = error_frame("invalid_activity", v.reason);
                f.id = id;
                f.field = Some(v.field);
                self.fail(f).await
            }
            Err(EngineError::NotFound) => Some(CloseCode::UserDeleted),
            Err(e) => {
                tracing::error!(error = %e, events = n, "recording activity failed");
                Some(CloseCode::Internal)
            }
        }
    }
}

/// Sends `msg`, giving up after `timeout` (a client that does not read).
async fn send_within(
    sink: &mut SplitSink<WebSocket, Message>,
    msg: Message,
    timeout: Duration,
) -> Result<(), Option<CloseCode>> {
    match tokio::time::timeout(timeout, sink.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(None),
        Err(_) => Err(Some(CloseCode::SlowConsumer)),
    }
}

/// The writer: hello and missed events, then events, replies and pings, until a close.
/// Returns the close code it sent, if the server closed.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut sub: Subscription,
    hello: Hello,
    mut ctrl: mpsc::Receiver<Ctrl>,
    timeout: Duration,
    rt: Arc<Realtime>,
) -> Option<CloseCode> {
    let first = json!({
        "type": "hello",
        "stream": hello.stream,
        "seq": hello.seq,
        "resumed": hello.resumed,
        "resync_required": hello.resync_required,
        "session_id": sub.session(),
    });
    let frames = std::iter::once(text(&first)).chain(hello.replay.into_iter().map(event_message));
    for m in frames {
        if let Err(code) = send_within(&mut sink, m, timeout).await {
            return code;
        }
        rt.count_sent();
    }
    loop {
        let msg = tokio::select! {
            biased;
            code = &mut sub.close => return close_with(&mut sink, code.unwrap_or(CloseCode::Normal)).await,
            c = ctrl.recv() => match c {
                Some(Ctrl::Frame(m)) => m,
                Some(Ctrl::Close(code)) => return close_with(&mut sink, code).await,
                None => return None,
            },
            e = sub.events.recv() => match e {
                Some(frame) => event_message(frame),
                // Unsubscribed by the server: its close signal is on the way.
                None => {
                    let code = (&mut sub.close).await.unwrap_or(CloseCode::Normal);
                    return close_with(&mut sink, code).await;
                }
            },
        };
        tokio::select! {
            biased;
            code = &mut sub.close => return close_with(&mut sink, code.unwrap_or(CloseCode::Normal)).await,
            r = send_within(&mut sink, msg, timeout) => match r {
                Ok(()) => rt.count_sent(),
                Err(code) => return code,
            },
        }
    }
}

fn event_message(frame: bytes::Bytes) -> Message {
    match Utf8Bytes::try_from(frame) {
        Ok(t) => Message::Text(t),
        // Frames are serde_json output, always UTF-8.
        Err(_) => Message::Text(Utf8Bytes::from_static("{}")),
    }
}

async fn close_with(
    sink: &mut SplitSink<WebSocket, Message>,
    code: CloseCode,
) -> Option<CloseCode> {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(close_message(code))).await;
    Some(code)
}

async fn run_admin_socket(
    s: AppState,
    mut socket: WebSocket,
    mut feed: broadcast::Receiver<bytes::Bytes>,
) {
    let cfg = s.manager.config().websocket.clone();
    let rt = Arc::clone(s.manager.realtime());
    let mut shutdown = rt.shutdown_signal();
    let mut ping = tokio::time::interval(cfg.ping_interval);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let code = loop {
        let msg = tokio::select! {
            _ = shutdown.changed() => break Some(CloseCode::ServerShutdown),
            frame = socket.recv() => {
                last_heard = Instant::now();
                match frame {
                    None | Some(Err(_)) => break None,
                    Some(Ok(Message::Close(_))) => break Some(CloseCode::Normal),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(_)) => text(&error_frame("read_only", "the security feed takes no frames")),
                }
            }
            e = feed.recv() => match e {
                Ok(frame) => event_message(frame),
                Err(broadcast::error::RecvError::Lagged(missed)) => text(&json!({"type": "lagged", "missed": missed})),
                Err(broadcast::error::RecvError::Closed) => break Some(CloseCode::ServerShutdown),
            },
            _ = ping.tick() => {
                if last_heard.elapsed() >= cfg.idle_timeout {
                    break Some(CloseCode::HeartbeatTimeout);
                }
                Message::Ping(Default::default())
            }
        };
        match tokio::time::timeout(cfg.write_timeout, socket.send(msg)).await {
            Ok(Ok(())) => rt.count_sent(),
            Ok(Err(_)) => break None,
            Err(_) => break Some(CloseCode::SlowConsumer),
        }
    };
    if let Some(code) = code {
        close_socket(&mut socket, code).await;
        rt.count_close(code);
    }
}
