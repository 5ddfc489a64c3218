//! The frames of the event protocol (docs/websocket.md): what a client sends, the error
//! frames it gets, and the close frames.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use serde::{Deserialize, Serialize};

use crate::domain::activity::ActivityEvent;
use crate::engine::{CloseCode, Resume};

/// Frames a client sends.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum ClientFrame {
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
    /// Asks for the published sound model and the open round (as `GET
    /// /api/v1/federated/model`).
    FederatedModel {
        #[serde(default)]
        id: Option<String>,
    },
    /// The device's update for the open round (as `POST /api/v1/federated/updates`).
    FederatedUpdate {
        #[serde(default)]
        id: Option<String>,
        round: u64,
        delta: Vec<f32>,
        examples: u64,
    },
}

/// An error frame: `{"type":"error","code":...,"message":...}` plus optional fields.
#[derive(Serialize)]
pub(super) struct ErrorFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) retry_after_secs: Option<u64>,
}

pub(super) fn error_frame(code: &'static str, message: impl Into<String>) -> ErrorFrame<'static> {
    ErrorFrame {
        kind: "error",
        code,
        message: message.into(),
        id: None,
        field: None,
        retry_after_secs: None,
    }
}

pub(super) fn text<T: Serialize>(value: &T) -> Message {
    Message::Text(Utf8Bytes::from(
        serde_json::to_string(value).unwrap_or_default(),
    ))
}

pub(super) fn close_message(code: CloseCode) -> Message {
    Message::Close(Some(CloseFrame {
        code: code.code(),
        reason: Utf8Bytes::from_static(code.reason()),
    }))
}

/// Parses a client frame, with the path of a bad field.
pub(super) fn parse_frame(raw: &str) -> Result<ClientFrame, ErrorFrame<'static>> {
    let mut de = serde_json::Deserializer::from_str(raw);
    let frame = serde_path_to_error::deserialize(&mut de).map_err(|e| {
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
    })?;
    // Nothing may follow the frame's value.
    de.end()
        .map_err(|e| error_frame("malformed_json", e.to_string()))?;
    Ok(frame)
}

pub(super) fn event_message(frame: bytes::Bytes) -> Message {
    match Utf8Bytes::try_from(frame) {
        Ok(t) => Message::Text(t),
        // Frames are serde_json output, always UTF-8.
        Err(_) => Message::Text(Utf8Bytes::from_static("{}")),
    }
}
