//! The operators' live-figures socket: one `{"type": "live", "figures": {...}}` frame a
//! second (users seen in the last five minutes by tier, events and logins per second,
//! sign-ups today, live actors), for the console's charts. Read-only.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::StreamExt;
use serde_json::json;

use super::Socket;
use super::frames::text;
use super::user::{end_feed, send_feed};
use crate::api::AppState;
use crate::engine::{CloseCode, Principal};

/// How often figures are pushed.
pub(crate) const PERIOD: Duration = Duration::from_secs(1);

pub(super) async fn run_live_socket<S: Socket>(s: AppState, mut socket: S, by: Principal) {
    let cfg = s.manager.config().websocket.clone();
    let rt = Arc::clone(s.manager.realtime());
    let mut shutdown = rt.shutdown_signal();
    let mut tick = tokio::time::interval(PERIOD);
    let code = loop {
        let msg = tokio::select! {
            _ = shutdown.changed() => break Some(CloseCode::ServerShutdown),
            frame = socket.next() => match frame {
                None | Some(Err(_)) => break None,
                Some(Ok(Message::Close(_))) => break Some(CloseCode::Normal),
                Some(Ok(_)) => continue,
            },
            _ = tick.tick() => match s.manager.analytics().live(&by) {
                Ok(figures) => text(&json!({"type": "live", "figures": figures})),
                Err(_) => break Some(CloseCode::Normal),
            },
        };
        if let Err(code) = send_feed(&mut socket, msg, &rt, cfg.write_timeout).await {
            break code;
        }
    };
    end_feed(&mut socket, code, &rt).await;
}
