//! `ws-activity`: activity ingestion over the event socket. Every session of the
//! population (given the analytics consent first) opens one socket and sends `activity`
//! frames of `EVENTS_PER_FRAME` events in a closed loop, each after the previous one's
//! ack; a frame's latency is send → ack, and the report's `events_per_sec` counts the
//! events acknowledged in the measured time.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::stats::{Outcome, Stats};
use super::ws::{open_nth, server_addr, sessions_for};
use super::{Client, LoadgenError, Options, population, report};
use crate::domain::time::Timestamp;

/// Events per frame (the server takes 1–100).
pub const EVENTS_PER_FRAME: usize = 50;

/// Frame `n`, its events at `at`.
fn frame(n: u64, at: Timestamp) -> String {
    let at = at.to_string();
    let events: Vec<Value> = (0..EVENTS_PER_FRAME)
        .map(|i| {
            json!({"kind": "track_played", "track_id": format!("t{}", (n as usize * 7 + i) % 997),
                   "at": at, "duration_ms": 30_000})
        })
        .collect();
    json!({"type": "activity", "id": n.to_string(), "events": events}).to_string()
}

pub(super) async fn run(opts: &Options, client: &Client) -> Result<super::Report, LoadgenError> {
    let pop = population::prepare(opts, client).await?;
    let mut o = opts.clone();
    o.sessions = opts.sessions.min(opts.sockets).max(1);
    o.sockets = o.sessions;
    let sessions = sessions_for(&o, client, &pop).await?;
    // Activity is counted only with the user's consent.
    let consents = futures_util::stream::iter(&sessions)
        .map(|s| {
            let path = format!("/api/v1/users/{}/consents", pop.users[s.user].id);
            let r = client
                .request(reqwest::Method::PUT, &path, client.admin())
                .json(&json!({"analytics": true}));
            Client::json(r)
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    for c in consents {
        let (status, body) = c?;
        if status != 200 {
            return Err(LoadgenError(format!(
                "granting the consent: {status} {body}"
            )));
        }
    }
    // Events are dated by the server's clock (it refuses events from its future).
    let clock = client.server_time().await?;
    let (host, addr) = server_addr(&opts.url)?;
    let mut sockets = Vec::with_capacity(sessions.len());
    for (k, s) in sessions.iter().enumerate() {
        sockets.push(open_nth(opts, (&host, addr), k, &s.token).await?);
    }
    let stats = Arc::new(Stats::default());
    let start = Instant::now();
    let (measured_from, end) = (start + opts.warmup, start + opts.warmup + opts.duration);
    let budget = opts.max_requests;
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            let (stats, sent) = (Arc::clone(&stats), Arc::clone(&sent));
            tokio::spawn(async move {
                while Instant::now() < end {
                    let n = sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if budget.is_some_and(|b| n >= b) {
                        break;
                    }
                    let t = Instant::now();
                    let at = clock.plus(t.saturating_duration_since(start));
                    if ws.send(Message::text(frame(n, at))).await.is_err() {
                        stats.record(&Outcome::err("send"), t.elapsed());
                        break;
                    }
                    let outcome = loop {
                        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                            Ok(Some(Ok(Message::Text(txt)))) => {
                                let v: Value = serde_json::from_str(&txt).unwrap_or_default();
                                match v["type"].as_str() {
                                    Some("activity_ack") => break Outcome::Ok,
                                    Some("error") => {
                                        break Outcome::err(v["code"].as_str().unwrap_or("error"));
                                    }
                                    _ => continue,
                                }
                            }
                            Ok(Some(Ok(_))) => continue,
                            Err(_) => break Outcome::err("timeout"),
                            _ => break Outcome::err("closed"),
                        }
                    };
                    let failed = !matches!(outcome, Outcome::Ok);
                    if t >= measured_from {
                        stats.record(&outcome, t.elapsed());
                    }
                    if failed {
                        break;
                    }
                }
                let _ = ws.close(None).await;
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let measured = Instant::now().saturating_duration_since(measured_from);
    let summary = stats.summary(measured.min(opts.duration));
    let extra = json!({
        "sockets": sessions.len(),
        "events_per_frame": EVENTS_PER_FRAME,
        "events_per_sec": summary.throughput_per_sec * EVENTS_PER_FRAME as f64,
    });
    Ok(report(
        opts,
        pop.users.len(),
        sessions.len(),
        summary,
        extra,
    ))
}
