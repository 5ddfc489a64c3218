//! The socket loop driven through channels: no TCP, no upgrade, the protocol alone.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes};
use futures_util::{Sink, Stream};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::api::AppState;
use crate::config::{Config, DEFAULT_TOML, parse_toml};
use crate::domain::profile::ProfilePatch;
use crate::domain::session::LoginContext;
use crate::domain::tier::UserTier;
use crate::engine::{LoginOutcome, RequestOrigin, Setup, UserManager};

/// The server's end of a socket made of two channels.
struct ChannelSocket {
    from_client: mpsc::UnboundedReceiver<Message>,
    to_client: mpsc::UnboundedSender<Message>,
}

impl Stream for ChannelSocket {
    type Item = Result<Message, axum::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.from_client.poll_recv(cx).map(|m| m.map(Ok))
    }
}

impl Sink<Message> for ChannelSocket {
    type Error = axum::Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        self.to_client.send(item).map_err(axum::Error::new)
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

/// The client's end.
struct Client {
    to_server: mpsc::UnboundedSender<Message>,
    from_server: mpsc::UnboundedReceiver<Message>,
}

impl Client {
    fn send(&self, frame: Value) {
        let text = Utf8Bytes::from(frame.to_string());
        self.to_server.send(Message::Text(text)).unwrap();
    }

    /// The next text frame as JSON, or the close code.
    async fn next(&mut self) -> Result<Value, Option<u16>> {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), self.from_server.recv())
                .await
                .expect("the server answers");
            match m {
                Some(Message::Text(t)) => return Ok(serde_json::from_str(t.as_str()).unwrap()),
                Some(Message::Close(c)) => return Err(c.map(|c| c.code)),
                Some(_) => continue,
                None => return Err(None),
            }
        }
    }
}

fn pair() -> (ChannelSocket, Client) {
    let (to_server, from_client) = mpsc::unbounded_channel();
    let (to_client, from_server) = mpsc::unbounded_channel();
    let server = ChannelSocket {
        from_client,
        to_client,
    };
    (
        server,
        Client {
            to_server,
            from_server,
        },
    )
}

fn manager(dir: &std::path::Path) -> UserManager {
    let layers = vec![
        parse_toml("default", DEFAULT_TOML).unwrap(),
        parse_toml("test", include_str!("../../../config/test.toml")).unwrap(),
        parse_toml(
            "here",
            &format!("[store]\ndata_dir = {:?}\n", dir.display().to_string()),
        )
        .unwrap(),
    ];
    UserManager::open(Setup::new(Config::from_layers(layers).unwrap())).unwrap()
}

const PW: &str = "correct horse battery staple";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_authenticates_by_its_first_frame_and_a_missing_consent_is_no_misbehaviour() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    m.create_user(
        "socket@x.io",
        PW,
        UserTier::Premium,
        ProfilePatch::default(),
    )
    .await
    .unwrap();
    let LoginOutcome::Success(login) = m
        .authenticate_user("socket@x.io", PW, LoginContext::default())
        .await
        .unwrap()
    else {
        panic!("login")
    };
    let state = AppState::new(m.clone());
    let (server, mut client) = pair();
    let running = tokio::spawn(super::user::run_user_socket(
        state,
        server,
        None,
        None,
        RequestOrigin::default(),
    ));
    // Anything but `auth` first would be refused; the token opens the stream.
    client.send(json!({"type": "auth", "token": login.token}));
    let hello = client.next().await.unwrap();
    assert_eq!(hello["type"], "hello", "{hello}");
    assert_eq!(hello["session_id"], login.session_id.to_string());
    client.send(json!({"type": "heartbeat", "id": "h1"}));
    let ack = client.next().await.unwrap();
    assert_eq!(
        (&ack["type"], &ack["id"]),
        (&json!("heartbeat_ack"), &json!("h1"))
    );
    // Without the analytics consent, activity is refused each time, with a sentence
    // that reads, and the socket stays: the client is not misbehaving.
    let events = json!([{"kind": "searched", "at": m.now()}]);
    for i in 0..25 {
        client.send(json!({"type": "activity", "id": format!("a{i}"), "events": events}));
        let refused = client.next().await.unwrap();
        assert_eq!(refused["code"], "consent_required", "{refused}");
        let text = refused["message"].as_str().unwrap();
        assert!(!text.contains("  "), "{text:?}");
    }
    client.send(json!({"type": "heartbeat", "id": "still-here"}));
    assert_eq!(client.next().await.unwrap()["id"], "still-here");
    // Twenty bad frames in a row do close it (1008).
    for _ in 0..20 {
        client.send(json!({"type": "no-such-frame"}));
    }
    let mut errors = 0;
    let closed = loop {
        match client.next().await {
            Ok(f) => {
                assert_eq!(f["type"], "error", "{f}");
                errors += 1;
            }
            Err(code) => break code,
        }
    };
    assert_eq!((errors, closed), (20, Some(1008)));
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        Arc::strong_count(m.realtime()),
        1,
        "the socket let go of its stream"
    );
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_whose_first_frame_is_not_auth_is_closed_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    let (server, mut client) = pair();
    let running = tokio::spawn(super::user::run_user_socket(
        AppState::new(m.clone()),
        server,
        None,
        None,
        RequestOrigin::default(),
    ));
    client.send(json!({"type": "heartbeat"}));
    let refused = client.next().await.unwrap();
    assert_eq!(refused["code"], "auth_required", "{refused}");
    assert_eq!(client.next().await, Err(Some(4001)));
    running.await.unwrap();
    m.shutdown().await.unwrap();
}
