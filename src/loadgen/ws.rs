//! Socket scenarios: `ws-hold` (open and hold many authenticated sockets) and
//! `ws-fanout` (change profiles over HTTP, time the events' arrival on every socket of
//! the user).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::driver::{Plan, drive};
use super::population::{self, Session};
use super::stats::{Outcome, Stats};
use super::{Client, LoadgenError, Options, report};

/// Sockets the server lets one user hold (its default `websocket.max_sockets_per_user`).
const SOCKETS_PER_USER: usize = 16;

type Socket = WebSocketStream<TcpStream>;

/// Resident memory of a process, from `/proc/<pid>/status` (Linux; `None` elsewhere or
/// for a process that is gone). The benches read their own with it too.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub(super) fn server_addr(url: &str) -> Result<(String, SocketAddr), LoadgenError> {
    let host = url
        .trim_end_matches('/')
        .strip_prefix("http://")
        .ok_or_else(|| LoadgenError("socket scenarios need an http:// URL".into()))?;
    let host = host.split('/').next().unwrap_or(host).to_owned();
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&host)
        .map_err(|e| LoadgenError(format!("{host}: {e}")))?
        .next()
        .ok_or_else(|| LoadgenError(format!("{host}: no address")))?;
    Ok((host, addr))
}

/// Opens one authenticated socket (from `source` if given) and reads its hello.
pub(super) async fn connect(
    host: &str,
    addr: SocketAddr,
    source: Option<IpAddr>,
    token: &str,
) -> Result<(Socket, Value), String> {
    let sock = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(|_| "socket".to_owned())?;
    if let Some(ip) = source {
        sock.bind(SocketAddr::new(ip, 0))
            .map_err(|_| "bind".to_owned())?;
    }
    let tcp = sock.connect(addr).await.map_err(|_| "connect".to_owned())?;
    let _ = tcp.set_nodelay(true);
    let mut req = format!("ws://{host}/api/v1/ws")
        .into_client_request()
        .map_err(|_| "request".to_owned())?;
    let bearer = format!("Bearer {token}")
        .parse()
        .map_err(|_| "token".to_owned())?;
    req.headers_mut().insert("authorization", bearer);
    // Small buffers: the generator holds as many sockets as the server.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(req, tcp, Some(config))
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(r) => {
                format!("http_{}", r.status().as_u16())
            }
            _ => "handshake".to_owned(),
        })?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).map_err(|_| "hello".to_owned())?;
                return if v["type"] == "hello" {
                    Ok((ws, v))
                } else {
                    Err("hello".to_owned())
                };
            }
            Some(Ok(Message::Close(f))) => {
                return Err(format!("closed_{}", f.map_or(0, |f| u16::from(f.code))));
            }
            Some(Ok(_)) => {}
            _ => return Err("dropped".to_owned()),
        }
    }
}

/// Opens socket number `k` of a run with `token`, from the run's source addresses in
/// turn.
pub(super) async fn open_nth(
    opts: &Options,
    (host, addr): (&str, SocketAddr),
    k: usize,
    token: &str,
) -> Result<Socket, LoadgenError> {
    let source = (!opts.source_ips.is_empty()).then(|| opts.source_ips[k % opts.source_ips.len()]);
    let (ws, _) = connect(host, addr, source, token)
        .await
        .map_err(|e| LoadgenError(format!("opening socket {k}: {e}")))?;
    Ok(ws)
}

/// Sessions enough for `sockets` sockets at 16 per user.
pub(super) async fn sessions_for(
    opts: &Options,
    client: &Client,
    pop: &population::Population,
) -> Result<Vec<Session>, LoadgenError> {
    let need = opts
        .sockets
        .div_ceil(SOCKETS_PER_USER)
        .max(opts.sessions.min(opts.sockets));
    if need > pop.users.len() {
        return Err(LoadgenError(format!(
            "{} sockets need at least {need} users ({SOCKETS_PER_USER} sockets each)",
            opts.sockets
        )));
    }
    population::log_in(client, pop, need, None, opts.seed).await
}

/// Reads a held socket (answering pings, sending a heartbeat every 20 s) until the
/// release time is set and reached, then closes it. Returns whether it stayed up.
async fn hold_socket(
    mut ws: Socket,
    mut release: tokio::sync::watch::Receiver<Option<Instant>>,
) -> bool {
    let mut beat = tokio::time::interval(Duration::from_secs(20));
    beat.tick().await;
    loop {
        let until = *release.borrow();
        let release_at = async {
            match until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => {
                    let _ = release.changed().await;
                }
            }
        };
        tokio::select! {
            () = release_at => {
                if until.is_some() {
                    let _ = ws.close(None).await;
                    return true;
                }
            }
            m = ws.next() => match m {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return false,
                Some(Ok(_)) => {}
            },
            _ = beat.tick() => {
                if ws.send(Message::text(r#"{"type":"heartbeat"}"#)).await.is_err() {
                    return false;
                }
            }
        }
    }
}

pub(super) async fn hold(opts: &Options, client: &Client) -> Result<super::Report, LoadgenError> {
    let pop = population::prepare(opts, client).await?;
    let sessions = Arc::new(sessions_for(opts, client, &pop).await?);
    let (host, addr) = server_addr(&opts.url)?;
    let rss_before = opts.server_pid.and_then(rss_bytes);
    let open_before = client.metric("roster_ws_connections ").await.unwrap_or(0.0);
    // Sockets are read from the moment they open and released together after the hold.
    let (release_tx, release_rx) = tokio::sync::watch::channel::<Option<Instant>>(None);
    let holders = Arc::new(Mutex::new(Vec::new()));
    let stayed = Arc::new(AtomicUsize::new(0));
    let plan = Plan {
        load: opts.load,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(3600),
        max_requests: Some(opts.sockets as u64),
        max_in_flight: opts.max_in_flight,
    };
    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let progress =
        super::driver::Progress::start("ws-hold connect".into(), Arc::clone(&stats), opts.progress);
    let (h2, s2, st2, ips) = (
        Arc::clone(&holders),
        Arc::clone(&sessions),
        Arc::clone(&stayed),
        opts.source_ips.clone(),
    );
    let host2 = host.clone();
    drive(plan, Arc::clone(&stats), move |i| {
        let session = s2[(i as usize) % s2.len()].token.clone();
        let source = (!ips.is_empty()).then(|| ips[(i as usize) % ips.len()]);
        let (holders, stayed, host, rx) = (
            Arc::clone(&h2),
            Arc::clone(&st2),
            host2.clone(),
            release_rx.clone(),
        );
        async move {
            match connect(&host, addr, source, &session).await {
                Ok((ws, _)) => {
                    let task = tokio::spawn(async move {
                        if hold_socket(ws, rx).await {
                            stayed.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                    if let Ok(mut h) = holders.lock() {
                        h.push(task);
                    }
                    Outcome::Ok
                }
                Err(kind) => Outcome::err(kind),
            }
        }
    })
    .await;
    drop(progress);
    let connect_time = started.elapsed();
    let summary = stats.summary(connect_time);
    // Let the server settle, then look at it with every socket open.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_open = opts.server_pid.and_then(rss_bytes);
    let open_on_server = client.metric("roster_ws_connections ").await.unwrap_or(0.0) - open_before;
    let own_rss = rss_bytes(std::process::id());
    let _ = release_tx.send(Some(Instant::now() + opts.duration));
    let tasks: Vec<_> =
        std::mem::take(&mut *holders.lock().map_err(|_| LoadgenError("lock".into()))?);
    for t in tasks {
        let _ = t.await;
    }
    let per_socket = match (rss_before, rss_open) {
        (Some(b), Some(a)) if summary.ok > 0 => {
            json!((a.saturating_sub(b)) as f64 / summary.ok as f64)
        }
        _ => Value::Null,
    };
    let mib = |b: Option<u64>| b.map(|b| (b as f64 / 1048576.0 * 10.0).round() / 10.0);
    let extra = json!({
        "sockets_opened": summary.ok,
        "open_on_server": open_on_server,
        "connect_seconds": connect_time.as_secs_f64(),
        "held_seconds": opts.duration.as_secs_f64(),
        "stayed_open_through_hold": stayed.load(Ordering::Relaxed),
        "server_rss_before_mib": mib(rss_before),
        "server_rss_open_mib": mib(rss_open),
        "server_bytes_per_socket": per_socket,
        "loadgen_rss_mib": mib(own_rss),
    });
    Ok(report(
        opts,
        pop.users.len(),
        sessions.len(),
        summary,
        extra,
    ))
}

/// Send time of each change, by its marker.
type Pending = Mutex<HashMap<u64, Instant>>;

pub(super) async fn fanout(opts: &Options, client: &Client) -> Result<super::Report, LoadgenError> {
    let pop = population::prepare(opts, client).await?;
    let mut o = opts.clone();
    o.sessions = opts.sessions.min(opts.sockets).max(1);
    let sessions = sessions_for(&o, client, &pop).await?;
    let (host, addr) = server_addr(&opts.url)?;
    // Open the sockets: socket k belongs to session k % n.
    let mut sockets_of: HashMap<usize, usize> = HashMap::new();
    let mut streams = Vec::new();
    for k in 0..opts.sockets {
        let s = &sessions[k % sessions.len()];
        streams.push(open_nth(opts, (&host, addr), k, &s.token).await?);
        *sockets_of.entry(s.user).or_insert(0) += 1;
    }
    let pending: Arc<Pending> = Arc::new(Mutex::new(HashMap::new()));
    let stats = Arc::new(Stats::default());
    let measured_from = Instant::now() + opts.warmup;
    let expected = Arc::new(AtomicU64::new(0));
    // Readers: each profile.updated event carries its change's marker in display_name.
    let readers: Vec<_> = streams
        .into_iter()
        .map(|mut ws| {
            let (pending, stats) = (Arc::clone(&pending), Arc::clone(&stats));
            tokio::spawn(async move {
                while let Some(Ok(m)) = ws.next().await {
                    let Message::Text(t) = m else { continue };
                    let Ok(v) = serde_json::from_str::<Value>(&t) else {
                        continue;
                    };
                    if v["type"] != "profile.updated" {
                        continue;
                    }
                    let marker = v["data"]["profile"]["display_name"]
                        .as_str()
                        .and_then(|n| n.strip_prefix("fanout "))
                        .and_then(|n| n.parse::<u64>().ok());
                    let sent = marker.and_then(|m| pending.lock().ok()?.get(&m).copied());
                    if let Some(sent) = sent
                        && sent >= measured_from
                    {
                        stats.record(&Outcome::Ok, sent.elapsed());
                    }
                }
            })
        })
        .collect();
    // Changes: open model over the users that have sockets.
    let mut users: Vec<(usize, Arc<str>, usize)> = Vec::new();
    for s in &sessions {
        if let Some(&n) = sockets_of.get(&s.user)
            && !users.iter().any(|(u, _, _)| *u == s.user)
        {
            users.push((s.user, s.token.clone(), n));
        }
    }
    let users = Arc::new(users);
    let ids: Arc<Vec<String>> = Arc::new(pop.users.iter().map(|u| u.id.clone()).collect());
    let (c, p2, e2, seed) = (
        client.clone(),
        Arc::clone(&pending),
        Arc::clone(&expected),
        opts.seed,
    );
    let plan = opts.plan();
    let progress =
        super::driver::Progress::start("ws-fanout".into(), Arc::clone(&stats), opts.progress);
    let changes = Arc::new(Stats::default());
    let elapsed = drive(plan, Arc::clone(&changes), move |i| {
        let mut rng = StdRng::seed_from_u64(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (user, token, sockets) = users[rng.random_range(0..users.len())].clone();
        let path = format!("/api/v1/users/{}", ids[user]);
        let r = c
            .request(reqwest::Method::PUT, &path, Some(&token))
            .json(&json!({"display_name": format!("fanout {i}")}));
        let (c, pending, expected) = (c.clone(), Arc::clone(&p2), Arc::clone(&e2));
        async move {
            let sent = Instant::now();
            if let Ok(mut p) = pending.lock() {
                p.insert(i, sent);
            }
            let outcome = c.outcome(r).await;
            if sent >= measured_from && outcome == Outcome::Ok {
                expected.fetch_add(sockets as u64, Ordering::Relaxed);
            }
            outcome
        }
    })
    .await;
    // Give the last events time to land, then stop reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(progress);
    for r in readers {
        r.abort();
    }
    let delivered = stats.summary(elapsed);
    let expected = expected.load(Ordering::Relaxed);
    // Every expected delivery is sent; what did not arrive is an error.
    let mut summary = delivered.clone();
    summary.sent = expected.max(delivered.ok);
    let missing = expected.saturating_sub(delivered.ok);
    if missing > 0 {
        summary.errors.insert("not_delivered".into(), missing);
    }
    let change_summary = changes.summary(elapsed);
    let extra = json!({
        "sockets": opts.sockets,
        "users_with_sockets": sockets_of.len(),
        "changes": change_summary,
        "note": "sent = deliveries expected (accepted changes × that user's sockets); latency = HTTP send → event on the socket",
    });
    Ok(report(
        opts,
        pop.users.len(),
        sessions.len(),
        summary,
        extra,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_come_from_the_url() {
        let (host, addr) = server_addr("http://127.0.0.1:8080/").unwrap();
        assert_eq!(host, "127.0.0.1:8080");
        assert_eq!(addr.port(), 8080);
        assert!(server_addr("https://x").is_err());
    }

    #[test]
    fn own_memory_is_readable() {
        assert!(rss_bytes(std::process::id()).unwrap_or(0) > 0);
    }
}
