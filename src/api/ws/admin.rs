//! The operators' socket: every user's security events, live, read-only.

use std::sync::Arc;

use axum::extract::ws::Message;
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::Socket;
use super::frames::{error_frame, event_message, text};
use super::user::{end_feed, send_feed};
use crate::api::AppState;
use crate::engine::CloseCode;

pub(super) async fn run_admin_socket<S: Socket>(
    s: AppState,
    mut socket: S,
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
            frame = socket.next() => {
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
        if let Err(code) = send_feed(&mut socket, msg, &rt, cfg.write_timeout).await {
            break code;
        }
    };
    end_feed(&mut socket, code, &rt).await;
}
