//! Event sockets against a real server: fan-out, resume, revocation, backpressure,
//! bad frames, activity in, the operators' feed.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WireClose;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{ADMIN_KEY, PW, SYS, TestServer};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn ws_url(srv: &TestServer, path: &str) -> String {
    format!("{}{path}", srv.base.replacen("http://", "ws://", 1))
}

/// Opens `path` (e.g. `/ws?stream=..`), with the bearer in the header when given.
pub(crate) async fn open(srv: &TestServer, path: &str, bearer: Option<&str>) -> Ws {
    let mut req = ws_url(srv, path).into_client_request().unwrap();
    if let Some(b) = bearer {
        req.headers_mut()
            .insert("authorization", format!("Bearer {b}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// Opens a user socket with the header and returns it with its hello.
pub(crate) async fn subscribe(srv: &TestServer, token: &str) -> (Ws, Value) {
    let mut ws = open(srv, "/ws", Some(token)).await;
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "hello", "{hello}");
    (ws, hello)
}

/// What arrives next: a JSON frame, or the close code.
#[derive(Debug)]
enum Next {
    Json(Value),
    Closed(Option<u16>),
}

async fn next(ws: &mut Ws) -> Next {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("nothing arrived within 10 s");
        match m {
            Some(Ok(Message::Text(t))) => return Next::Json(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(f))) => return Next::Closed(f.map(|f| u16::from(f.code))),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => panic!("unexpected frame {other:?}"),
            None | Some(Err(_)) => return Next::Closed(None),
        }
    }
}

pub(crate) async fn next_json(ws: &mut Ws) -> Value {
    match next(ws).await {
        Next::Json(v) => v,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// The next frame of the operators' feed of `kind`, passing over users' events.
pub(crate) async fn operator_frame(feed: &mut Ws, kind: &str) -> Value {
    for _ in 0..20 {
        let frame = next_json(feed).await;
        if frame["type"] == kind {
            return frame;
        }
    }
    panic!("no {kind} frame on the operators' feed");
}

/// Reads until the close frame; returns its code (skipping events queued before it).
async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        if let Next::Closed(c) = next(ws).await {
            return c;
        }
    }
}

pub(crate) async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// A heartbeat whose ack comes back next proves nothing else was queued before it.
async fn assert_quiet(ws: &mut Ws) {
    send(ws, json!({"type": "heartbeat", "id": "q"})).await;
    let v = next_json(ws).await;
    assert_eq!(
        (v["type"].as_str(), v["id"].as_str()),
        (Some("heartbeat_ack"), Some("q")),
        "{v}"
    );
}

async fn login(srv: &TestServer, email: &str, device: &str) -> Value {
    let (s, body) = srv
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": email, "password": PW, "context": {"device_id": device}})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    body
}

async fn rename(srv: &TestServer, id: &str, token: &str, name: &str) {
    let (s, body) = srv
        .call(
            Method::PUT,
            &format!("/users/{id}"),
            Some(token),
            Some(json!({"display_name": name})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
}

pub(crate) fn metric(srv: &TestServer, line_start: &str) -> f64 {
    srv.manager
        .ops()
        .render_metrics(&SYS)
        .unwrap()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sockets_of_a_user_get_its_changes_in_order_and_nobody_else_does() {
    let srv = TestServer::start("").await;
    let (id, token) = srv.user("fan@example.com", "premium").await;
    let second = login(&srv, "fan@example.com", "laptop").await;
    let (_, other) = srv.user("other@example.com", "free").await;

    let (mut phone, hello) = subscribe(&srv, &token).await;
    assert!(hello["stream"].as_str().unwrap().len() == 16 && hello["resumed"] == false);
    // The browser way: no header, an auth frame first.
    let mut laptop = open(&srv, "/ws", None).await;
    send(
        &mut laptop,
        json!({"type": "auth", "token": second["token"]}),
    )
    .await;
    let hello2 = next_json(&mut laptop).await;
    assert_eq!(hello2["type"], "hello");
    assert_eq!(hello2["stream"], hello["stream"], "one stream per user");
    let (mut stranger, _) = subscribe(&srv, &other).await;

    rename(&srv, &id, &token, "First").await;
    rename(&srv, &id, &token, "Second").await;
    for ws in [&mut phone, &mut laptop] {
        let a = next_json(ws).await;
        let b = next_json(ws).await;
        assert_eq!(a["type"], "profile.updated", "{a}");
        assert_eq!(a["data"]["profile"]["display_name"], "First");
        assert_eq!(b["data"]["profile"]["display_name"], "Second");
        assert_eq!(b["seq"].as_u64().unwrap(), a["seq"].as_u64().unwrap() + 1);
        assert!(a["at"].is_string());
        assert_quiet(ws).await;
    }
    assert_quiet(&mut stranger).await;

    // The stream survives the actor moving to another tier's registry (one without
    // zero trust, whose move would end these password-only sessions).
    let (s, _) = srv
        .call(
            Method::POST,
            &format!("/users/{id}/upgrade"),
            Some(ADMIN_KEY),
            Some(json!({"new_tier": "free"})),
        )
        .await;
    assert_eq!(s, 200);
    let t = next_json(&mut phone).await;
    assert_eq!(
        (t["type"].as_str(), t["data"]["to"].as_str()),
        (Some("tier.changed"), Some("free"))
    );
    rename(&srv, &id, &token, "Third").await;
    let after = next_json(&mut phone).await;
    assert_eq!(after["data"]["profile"]["display_name"], "Third");
    assert_eq!(
        after["seq"].as_u64().unwrap(),
        t["seq"].as_u64().unwrap() + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_gets_exactly_the_missed_events() {
    let srv = TestServer::start("").await;
    let (id, token) = srv.user("resume@example.com", "premium").await;
    let (mut ws, hello) = subscribe(&srv, &token).await;
    rename(&srv, &id, &token, "Seen").await;
    let seen = next_json(&mut ws).await;
    let last = seen["seq"].as_u64().unwrap();
    ws.close(None).await.unwrap();
    drop(ws);

    for name in ["Missed one", "Missed two", "Missed three"] {
        rename(&srv, &id, &token, name).await;
    }
    let stream = hello["stream"].as_str().unwrap();
    let mut back = open(
        &srv,
        &format!("/ws?stream={stream}&last_seq={last}"),
        Some(&token),
    )
    .await;
    let h = next_json(&mut back).await;
    assert_eq!(
        (h["resumed"].as_bool(), h["resync_required"].as_bool()),
        (Some(true), Some(false)),
        "{h}"
    );
    let mut names = Vec::new();
    for i in 1..=3 {
        let e = next_json(&mut back).await;
        assert_eq!(e["seq"].as_u64(), Some(last + i));
        names.push(
            e["data"]["profile"]["display_name"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(names, ["Missed one", "Missed two", "Missed three"]);
    assert_quiet(&mut back).await;

    // A resume point from another stream cannot be honoured: the client must refetch.
    let mut lost = open(
        &srv,
        &format!("/ws?stream=00000000000000ff&last_seq={last}"),
        Some(&token),
    )
    .await;
    let h = next_json(&mut lost).await;
    assert_eq!(
        (h["resumed"].as_bool(), h["resync_required"].as_bool()),
        (Some(false), Some(true))
    );
    assert_quiet(&mut lost).await;

    // A half-given resume point is a 400 before the upgrade.
    let (s, body) = srv
        .call(Method::GET, "/ws?last_seq=3", Some(&token), None)
        .await;
    assert_eq!(s, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_password_change_and_deletion_close_the_right_sockets() {
    let srv = TestServer::start("").await;
    let (id, t1) = srv.user("closing@example.com", "premium").await;
    let t2 = login(&srv, "closing@example.com", "tablet").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let t3 = login(&srv, "closing@example.com", "desk").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut w1, h1) = subscribe(&srv, &t1).await;
    let (mut w2, _) = subscribe(&srv, &t2).await;
    let (mut w3, _) = subscribe(&srv, &t3).await;

    // Session 2 is revoked (by session 1): only its socket closes, with 4003.
    let (_, sessions) = srv
        .call(
            Method::GET,
            &format!("/users/{id}/sessions"),
            Some(&t1),
            None,
        )
        .await;
    let sid2 = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["device_id"] == "tablet")
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .unwrap();
    assert_ne!(h1["session_id"], sid2.as_str());
    let (s, _) = srv
        .call(
            Method::DELETE,
            &format!("/users/{id}/sessions/{sid2}"),
            Some(&t1),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(close_code(&mut w2).await, Some(4003));
    let ev = next_json(&mut w1).await;
    assert_eq!(
        (ev["type"].as_str(), ev["data"]["reason"].as_str()),
        (Some("session.revoked"), Some("revoked"))
    );
    assert_eq!(ev["data"]["session_id"], sid2.as_str());
    assert_quiet(&mut w1).await;
    // Every socket of the user hears of it; session 3's stays open.
    assert_eq!(next_json(&mut w3).await["type"], "session.revoked");
    assert_quiet(&mut w3).await;

    // A password change made with session 1 ends session 3 and closes its socket.
    let (s, body) = srv
        .call(
            Method::POST,
            &format!("/users/{id}/password"),
            Some(&t1),
            Some(
                json!({"current_password": PW, "new_password": "a different horse staple battery"}),
            ),
        )
        .await;
    assert_eq!(s, 204, "{body}");
    assert_eq!(close_code(&mut w3).await, Some(4003));
    let changed = next_json(&mut w1).await;
    assert_eq!(changed["type"], "security.password_changed");
    assert_eq!(
        next_json(&mut w1).await["data"]["reason"],
        "password_changed"
    );
    assert_quiet(&mut w1).await;

    // Deleting the user closes the last socket with 4004.
    let (s, _) = srv
        .call(
            Method::DELETE,
            &format!("/users/{id}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(close_code(&mut w1).await, Some(4004));
    assert_eq!(metric(&srv, "roster_ws_connections "), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_never_reads_is_closed_and_the_actor_keeps_serving() {
    // A queue of 32, and a write timeout long enough that the queue overflows first.
    let srv =
        TestServer::start("[websocket]\noutbound_queue = 32\nwrite_timeout_secs = 60\n").await;
    let (id, token) = srv.user("slow@example.com", "vip").await;
    // A client with a tiny receive buffer that reads nothing after the handshake.
    let addr = srv.host();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(addr.parse().unwrap()).await.unwrap();
    let mut req = ws_url(&srv, "/ws").into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut slow, _) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(tcp))
        .await
        .unwrap();
    let (mut watcher, _) = subscribe(&srv, &token).await;

    let big = "x".repeat(50);
    let mut updates = 0;
    let started = std::time::Instant::now();
    while metric(&srv, "roster_ws_closes_total{reason=\"slow_consumer\"}") < 1.0 {
        assert!(
            updates < 50_000 && started.elapsed() < Duration::from_secs(60),
            "never closed after {updates} updates"
        );
        // Each update is answered: the actor is not held up by the stuck socket.
        let batch = (0..8).map(|i| {
            let name = format!("{big}{}", updates + i);
            let (srv, id, token) = (&srv, &id, &token);
            async move { rename(srv, id, token, &name).await }
        });
        futures_util::future::join_all(batch).await;
        updates += 8;
        // The healthy socket keeps up.
        for _ in 0..8 {
            let e = next_json(&mut watcher).await;
            assert_eq!(e["type"], "profile.updated");
        }
    }
    assert!(metric(&srv, "roster_ws_events_dropped_total") >= 1.0);
    assert_quiet(&mut watcher).await;
    // The slow client, when it finally reads, finds its events and then the end.
    let mut got = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), slow.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Text(_))) => got += 1,
            Some(Ok(Message::Close(f))) => {
                assert_eq!(f.map(|f| f.code), Some(WireClose::from(4008)));
                break;
            }
            Some(Ok(_)) => {}
            None | Some(Err(_)) => break,
        }
    }
    assert!(got > 0 && got < updates + 1, "read {got} of {updates}");
    eprintln!("slow consumer closed after {updates} updates; it read {got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_errors_and_bad_sockets_get_documented_closes() {
    let srv =
        TestServer::start("[websocket]\nauth_timeout_secs = 1\nmax_message_bytes = 2048\n").await;
    let (_, token) = srv.user("bad@example.com", "premium").await;
    let (mut ws, _) = subscribe(&srv, &token).await;

    ws.send(Message::text("{not json")).await.unwrap();
    assert_eq!(next_json(&mut ws).await["code"], "malformed_json");
    // A second value in one frame would be dropped unread.
    ws.send(Message::text(
        r#"{"type": "heartbeat"} {"type": "heartbeat"}"#,
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["code"], "malformed_json");
    send(&mut ws, json!({"type": "dance"})).await;
    assert_eq!(next_json(&mut ws).await["code"], "invalid_frame");
    ws.send(Message::Binary(Bytes::from_static(b"\x00\x01")))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["code"], "binary_not_supported");
    let now = srv.manager.now().to_string();
    send(
        &mut ws,
        json!({"type": "activity", "id": "a1", "events": [
        {"kind": "searched", "at": now},
        {"kind": "track_liked", "track_id": "", "at": now}]}),
    )
    .await;
    let e = next_json(&mut ws).await;
    assert_eq!(
        (e["code"].as_str(), e["field"].as_str(), e["id"].as_str()),
        (
            Some("invalid_activity"),
            Some("events[1].track_id"),
            Some("a1")
        ),
        "{e}"
    );
    send(&mut ws, json!({"type": "auth", "token": token})).await;
    assert_eq!(next_json(&mut ws).await["code"], "already_authenticated");
    // Still usable after all that.
    assert_quiet(&mut ws).await;
    // A message over max_message_bytes ends the socket with 1009.
    ws.send(Message::text("y".repeat(4096))).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1009));

    // No credential: an auth frame is required, within the timeout.
    let mut silent = open(&srv, "/ws", None).await;
    let e = next_json(&mut silent).await;
    assert_eq!(e["code"], "auth_required");
    assert_eq!(close_code(&mut silent).await, Some(4001));
    let mut wrong = open(&srv, "/ws", None).await;
    send(&mut wrong, json!({"type": "heartbeat"})).await;
    assert_eq!(next_json(&mut wrong).await["code"], "auth_required");
    assert_eq!(close_code(&mut wrong).await, Some(4001));
    let mut forged = open(&srv, "/ws", None).await;
    send(&mut forged, json!({"type": "auth", "token": "nope"})).await;
    assert_eq!(next_json(&mut forged).await["code"], "unauthenticated");
    assert_eq!(close_code(&mut forged).await, Some(4001));
    // Refused before the upgrade: a bad header, the operator key, a plain GET.
    let (s, _) = srv.call(Method::GET, "/ws", Some("bogus"), None).await;
    assert_eq!(s, 401);
    let mut req = ws_url(&srv, "/ws").into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {ADMIN_KEY}").parse().unwrap(),
    );
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    let (s, body) = srv.call(Method::GET, "/ws", Some(ADMIN_KEY), None).await;
    assert_eq!(s, 403, "{body}");
    let (s, _) = srv.call(Method::GET, "/ws", Some(&token), None).await;
    assert_eq!(s, 400);

    // The server is fine.
    let (s, _) = srv.call(Method::GET, "/users/me", Some(&token), None).await;
    assert_eq!(s, 200);
    assert_eq!(
        metric(&srv, "roster_ws_closes_total{reason=\"unauthenticated\"}"),
        3.0
    );
    assert_eq!(
        metric(&srv, "roster_ws_closes_total{reason=\"message_too_big\"}"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_is_counted_and_flooding_is_rate_limited() {
    let srv = TestServer::start("[tiers.free]\nrequests_per_hour = 3\n").await;
    let (id, token) = srv.user("listener@example.com", "free").await;
    // Activity is counted only with the user's consent to analytics (given through the
    // engine here, so that no request of the small allowance is spent on it).
    crate::support::set_analytics(&srv.manager, &id, true).await;
    // The upgrade itself counted one request.
    let (mut ws, _) = subscribe(&srv, &token).await;
    let now = srv.manager.now().to_string();
    send(
        &mut ws,
        json!({"type": "activity", "id": "b1", "events": [
        {"kind": "track_played", "track_id": "t1", "at": now, "duration_ms": 180000},
        {"kind": "track_played", "track_id": "t2", "at": now, "duration_ms": 20000},
        {"kind": "track_skipped", "track_id": "t3", "at": now, "position_ms": 4000},
        {"kind": "track_liked", "track_id": "t1", "at": now},
        {"kind": "searched", "at": now}]}),
    )
    .await;
    let ack = next_json(&mut ws).await;
    assert_eq!(
        (
            ack["type"].as_str(),
            ack["accepted"].as_u64(),
            ack["id"].as_str()
        ),
        (Some("activity_ack"), Some(5), Some("b1"))
    );
    let one = json!({"type": "activity", "events": [{"kind": "searched", "at": now}]});
    send(&mut ws, one.clone()).await;
    assert_eq!(next_json(&mut ws).await["type"], "activity_ack");
    // The upgrade and two frames: the tier's allowance of 3 is spent.
    send(&mut ws, one.clone()).await;
    let limited = next_json(&mut ws).await;
    assert_eq!(limited["code"], "rate_limited", "{limited}");
    assert!(limited["retry_after_secs"].as_u64().unwrap() > 0);
    send(&mut ws, one).await;
    assert_eq!(next_json(&mut ws).await["code"], "rate_limited");
    // Heartbeats are not counted against the tier.
    assert_quiet(&mut ws).await;

    let (s, insights) = srv
        .call(
            Method::GET,
            &format!("/users/{id}/insights"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{insights}");
    let a = &insights["activity"];
    assert_eq!(
        (
            a["tracks_played"].as_u64(),
            a["tracks_skipped"].as_u64(),
            a["tracks_liked"].as_u64(),
            a["searches"].as_u64()
        ),
        (Some(2), Some(1), Some(1), Some(2)),
        "{a}"
    );
    assert_eq!(a["listening_ms"], 200000);
    assert_eq!(metric(&srv, "roster_activity_events_total"), 6.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_and_security_events_reach_the_user_and_the_operators() {
    let srv = TestServer::start("").await;
    let (id, _) = srv.user("quota@example.com", "free").await;
    let home = login(&srv, "quota@example.com", "home-phone").await;
    let token = home["token"].as_str().unwrap().to_owned();
    let (mut ws, _) = subscribe(&srv, &token).await;
    let mut feed = open(&srv, "/admin/events", Some(ADMIN_KEY)).await;
    // Ordinary users cannot open the operators' feed.
    let (s, _) = srv
        .call(Method::GET, "/admin/events", Some(&token), None)
        .await;
    assert_eq!(s, 403);

    // Free tier: 10 playlists. 8 crosses 80%, 10 reaches 100%.
    let usage = |n: i64| json!({"kind": "playlists", "delta": n});
    for (delta, expect) in [(7, None), (1, Some(80)), (1, None), (1, Some(100))] {
        let (s, body) = srv
            .call(
                Method::POST,
                &format!("/users/{id}/usage"),
                Some(&token),
                Some(usage(delta)),
            )
            .await;
        assert_eq!(s, 200, "{body}");
        if let Some(p) = expect {
            let w = next_json(&mut ws).await;
            assert_eq!(
                (w["type"].as_str(), w["data"]["percent"].as_u64()),
                (Some("quota.warning"), Some(p)),
                "{w}"
            );
            assert_eq!(w["data"]["limit"], 10);
        }
        assert_quiet(&mut ws).await;
    }

    // A login from a device the account has not used: the user and the operators hear.
    login(&srv, "quota@example.com", "stolen-laptop").await;
    let created = next_json(&mut ws).await;
    assert_eq!(created["type"], "session.created");
    let alert = next_json(&mut ws).await;
    assert_eq!(
        (alert["type"].as_str(), alert["data"]["device_id"].as_str()),
        (Some("security.new_device"), Some("stolen-laptop"))
    );
    let seen = next_json(&mut feed).await;
    assert_eq!(
        (seen["type"].as_str(), seen["user_id"].as_str()),
        (Some("security.new_device"), Some(id.as_str())),
        "{seen}"
    );
    assert!(
        !seen.to_string().contains("quota@example.com"),
        "no emails in the feed"
    );
    assert_eq!(
        metric(
            &srv,
            "roster_security_events_total{kind=\"security.new_device\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_extra_sockets_and_shutdown_get_their_close_codes() {
    let srv = TestServer::start(
        "[websocket]\nping_interval_secs = 1\nidle_timeout_secs = 2\nmax_sockets_per_user = 1\n",
    )
    .await;
    let (_, token) = srv.user("limits@example.com", "premium").await;
    let second = login(&srv, "limits@example.com", "other").await;
    let second = second["token"].as_str().unwrap();

    // A client that reads nothing answers no ping: after the idle timeout it is cut (4009).
    // (Whether the 4009 frame reaches it depends on a race between the server closing
    // and the client's late pong: the server's count is the reliable witness.)
    let mut silent = open(&srv, "/ws", Some(&token)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(next_json(&mut silent).await["type"], "hello");
    assert!(matches!(close_code(&mut silent).await, Some(4009) | None));
    assert_eq!(
        metric(&srv, "roster_ws_closes_total{reason=\"heartbeat_timeout\"}"),
        1.0
    );

    // One socket per user here: a second one is refused with 4029, the first keeps going.
    let (mut first, _) = subscribe(&srv, &token).await;
    let mut extra = open(&srv, "/ws", Some(second)).await;
    assert_eq!(close_code(&mut extra).await, Some(4029));
    assert_quiet(&mut first).await;

    // Shutdown tells sockets with 1001 rather than leaving them hanging.
    srv.manager
        .realtime()
        .close_everything(roster::engine::CloseCode::ServerShutdown);
    assert_eq!(close_code(&mut first).await, Some(1001));
}
