//! A user's socket: authentication (header or first frame), the subscription through the
//! user's actor, then the reader (frames in, pings, idle and expiry checks) and the
//! writer (hello, missed events, events, replies) as two tasks.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::frames::{
    ClientFrame, ErrorFrame, close_message, error_frame, event_message, parse_frame, text,
};
use super::{Authenticated, CLOSE_TIMEOUT, HEARTBEAT_MIN_INTERVAL, MAX_ERRORS_IN_A_ROW, Socket};
use crate::api::AppState;
use crate::domain::activity::ActivityEvent;
use crate::domain::rate::RateDecision;
use crate::engine::{
    ActivityOutcome, CloseCode, EngineError, FederatedUpdate, Hello, Realtime, RequestTaken,
    Resume, SubscribeOutcome, Subscription,
};

/// Waits for the `auth` frame of a socket opened without a header.
async fn first_frame_auth<S: Socket>(
    s: &AppState,
    socket: &mut S,
    timeout: Duration,
    origin: crate::engine::RequestOrigin,
) -> Result<Authenticated, CloseCode> {
    let frame = match tokio::time::timeout(timeout, socket.next()).await {
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
async fn send_then<S: Socket>(socket: &mut S, (frame, code): (Message, CloseCode)) -> CloseCode {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(frame)).await;
    code
}

/// Sends `msg` within the write timeout; on failure, the close code to end with
/// (`None`: the peer is gone, nothing to send).
pub(super) async fn send_feed<S: Socket>(
    socket: &mut S,
    msg: Message,
    rt: &crate::engine::Realtime,
    timeout: std::time::Duration,
) -> Result<(), Option<CloseCode>> {
    match tokio::time::timeout(timeout, socket.send(msg)).await {
        Ok(Ok(())) => {
            rt.count_sent();
            Ok(())
        }
        Ok(Err(_)) => Err(None),
        Err(_) => Err(Some(CloseCode::SlowConsumer)),
    }
}

/// Ends a read-only feed's socket: closes it with `code`, if any, and counts it.
pub(super) async fn end_feed<S: Socket>(
    socket: &mut S,
    code: Option<CloseCode>,
    rt: &crate::engine::Realtime,
) {
    if let Some(code) = code {
        close_socket(socket, code).await;
        rt.count_close(code);
    }
}

pub(super) async fn close_socket<S: Socket>(socket: &mut S, code: CloseCode) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(close_message(code))).await;
}

pub(super) async fn run_user_socket<S: Socket>(
    s: AppState,
    mut socket: S,
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
            ClientFrame::FederatedModel { id } => match self.take_request(id.as_deref()).await {
                Ok(()) => self.federated_model(id.as_deref()).await,
                Err(close) => close,
            },
            ClientFrame::FederatedUpdate {
                id,
                round,
                delta,
                examples,
            } => {
                if let Err(close) = self.take_request(id.as_deref()).await {
                    return close;
                }
                let update = FederatedUpdate {
                    round,
                    delta,
                    examples,
                };
                self.federated_update(id.as_deref(), update).await
            }
        }
    }

    /// Counts a frame that is a request over HTTP (a federated read or update) against
    /// the tier's rate, as the front door counts the request: `Err` with what ends the
    /// frame (a `rate_limited` error frame sent, or the socket's close).
    async fn take_request(&mut self, id: Option<&str>) -> Result<(), Option<CloseCode>> {
        let sessions = self.s.manager.sessions();
        match sessions.take_request(&self.auth.principal()).await {
            Ok(RequestTaken::Taken) => Ok(()),
            Ok(RequestTaken::Limited { retry_after_secs }) => {
                let mut f = error_frame("rate_limited", "the tier's request rate is exhausted");
                f.id = id;
                f.retry_after_secs = Some(retry_after_secs.max(1));
                Err(self.fail(f).await)
            }
            Ok(RequestTaken::SessionInvalid) => Err(Some(CloseCode::SessionEnded)),
            Err(EngineError::NotFound) => Err(Some(CloseCode::UserDeleted)),
            Err(e) => {
                tracing::error!(error = %e, "socket request not counted");
                Err(Some(CloseCode::Internal))
            }
        }
    }

    async fn federated_model(&mut self, id: Option<&str>) -> Option<CloseCode> {
        let p = self.s.manager.personalization();
        match p.federated_model(&self.auth.principal()) {
            Ok(model) => {
                self.errors_in_row = 0;
                self.reply(&json!({"type": "federated_model", "id": id, "model": model}))
                    .await;
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "federated model not read");
                Some(CloseCode::Internal)
            }
        }
    }

    /// An update for the open round: acknowledged with how it counts, or an error frame
    /// saying why not (`consent_required`, `invalid_update` with the field, `conflict`
    /// for a stale round or a second update, `unavailable` while the round closes).
    async fn federated_update(
        &mut self,
        id: Option<&str>,
        update: FederatedUpdate,
    ) -> Option<CloseCode> {
        let p = self.s.manager.personalization();
        let mut f = match p.federated_update(&self.auth.principal(), update).await {
            Ok(taken) => {
                self.errors_in_row = 0;
                let ack = json!({"type": "federated_update_ack", "id": id, "round": taken.round,
                                 "norm": taken.norm, "clipped": taken.clipped,
                                 "weight": taken.weight});
                self.reply(&ack).await;
                return None;
            }
            Err(EngineError::ConsentRequired(reason)) => {
                let mut f = error_frame("consent_required", reason);
                f.id = id;
                self.reply(&f).await;
                return None;
            }
            Err(EngineError::Unavailable) => {
                let mut f = error_frame("unavailable", "the round is being published");
                f.id = id;
                f.retry_after_secs = Some(1);
                self.reply(&f).await;
                return None;
            }
            Err(EngineError::Validation(v)) => {
                let mut f = error_frame("invalid_update", v.reason);
                f.field = Some(v.field);
                f
            }
            Err(EngineError::Conflict(why)) => error_frame("conflict", why),
            Err(EngineError::Forbidden(why)) => error_frame("forbidden", why),
            Err(EngineError::NotFound) => return Some(CloseCode::UserDeleted),
            Err(e) => {
                tracing::error!(error = %e, "federated update failed");
                return Some(CloseCode::Internal);
            }
        };
        f.id = id;
        self.fail(f).await
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
                // Not the client misbehaving: the user has not agreed. Answered, not
                // counted toward the close for bad frames.
                let mut f = error_frame("consent_required", reason);
                f.id = id;
                self.reply(&f).await;
                None
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
async fn send_within<S: Socket>(
    sink: &mut SplitSink<S, Message>,
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
async fn write_loop<S: Socket>(
    mut sink: SplitSink<S, Message>,
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

async fn close_with<S: Socket>(
    sink: &mut SplitSink<S, Message>,
    code: CloseCode,
) -> Option<CloseCode> {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(close_message(code))).await;
    Some(code)
}
