//! A lean HTTP/1.1 client for the generator's hottest request, `GET /users/me`.
//!
//! Generator and server share the machine's cores, so every microsecond the generator
//! spends per request is one the server cannot use. Through reqwest a request cost the
//! generator about as much CPU as the server spent answering it, and through hyper's
//! client about two thirds of it (a connection task, a channel each way, header maps).
//! This client writes a prepared request straight to a keep-alive connection from the
//! request's own task and reads the answer into the connection's buffer: no other task,
//! no channel, no allocation per request. Idle connections wait on a stack, at most
//! `--connections` of them in all; one goes back only after a clean exchange.
//!
//! It reads what our server sends: answers framed by `Content-Length`. Anything else
//! (chunked, an unparsable head, bytes after the body) counts as the error `framing`
//! and its connection is closed rather than misread.

use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::HeaderValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::LoadgenError;
use super::stats::Outcome;

/// The longest response head read.
const MAX_HEAD: usize = 16 * 1024;
/// The largest response body read.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// The most response headers parsed.
const MAX_HEADERS: usize = 32;

/// Keep-alive connections to one plain-HTTP server, for `GET /api/v1/users/me`.
pub struct RawClient {
    addr: SocketAddr,
    /// The request up to the credential: `GET <path> HTTP/1.1`, `Host`, and the name
    /// `Authorization: `.
    head: Vec<u8>,
    timeout: Duration,
    idle: Mutex<Vec<Conn>>,
    /// One permit per connection there may be: a request waits for one, and holds it
    /// until its exchange is over.
    connections: tokio::sync::Semaphore,
}

/// One keep-alive connection and its buffer (the request going out, then the answer).
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// What ended an exchange early.
#[derive(Debug, PartialEq)]
enum Failure {
    /// The connection failed before any byte of the answer: a reused connection the
    /// server has closed meanwhile, so the request may go again on a new one.
    Closed,
    /// The connection failed mid-answer.
    Io,
    /// An answer this client does not read (see the module doc).
    Framing,
}

/// A complete answer.
struct Answer {
    status: u16,
    /// The server keeps the connection open.
    keep_alive: bool,
}

impl RawClient {
    /// A client for `url`'s server with at most `connections` connections; `None` for
    /// anything but plain `http` (TLS goes through reqwest).
    pub async fn new(
        url: &reqwest::Url,
        timeout: Duration,
        connections: usize,
    ) -> Result<Option<Self>, LoadgenError> {
        if url.scheme() != "http" {
            return Ok(None);
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Ok(None);
        };
        // An IPv6 host comes bracketed, as the Host header wants it; the resolver does not.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addr = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| LoadgenError(format!("resolving {host}: {e}")))?
            .next()
            .ok_or_else(|| LoadgenError(format!("{host} has no address")))?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        // The URL parser has already percent-encoded the path: no space or control
        // character can reach the request line.
        let path = format!("{}/api/v1/users/me", url.path().trim_end_matches('/'));
        let head = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: ");
        Ok(Some(Self {
            addr,
            head: head.into_bytes(),
            timeout,
            idle: Mutex::new(Vec::new()),
            connections: tokio::sync::Semaphore::new(connections.max(1)),
        }))
    }

    /// `GET /api/v1/users/me` with `authorization`; a 2xx with its whole body is a
    /// success.
    pub(crate) async fn read_me(&self, authorization: &HeaderValue) -> Outcome {
        tokio::time::timeout(self.timeout, self.exchange(authorization.as_bytes()))
            .await
            .unwrap_or_else(|_| Outcome::err("timeout"))
    }

    async fn exchange(&self, authorization: &[u8]) -> Outcome {
        // The wait counts in the latency: `read_me`'s caller timed from before it.
        let Ok(_permit) = self.connections.acquire().await else {
            return Outcome::err("connect");
        };
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let (mut conn, mut reused) = match idle {
            Some(c) => (Some(c), true),
            None => (self.connect().await, false),
        };
        loop {
            let Some(c) = conn.as_mut() else {
                return Outcome::err("connect");
            };
            match c.exchange(&self.head, authorization).await {
                Ok(answer) => {
                    if answer.keep_alive
                        && let Some(c) = conn
                    {
                        self.idle
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(c);
                    }
                    return if (200..300).contains(&answer.status) {
                        Outcome::Ok
                    } else {
                        Outcome::err(format!("http_{}", answer.status))
                    };
                }
                // A GET is safe to send again: once, on a new connection.
                Err(Failure::Closed) if reused => {
                    reused = false;
                    conn = self.connect().await;
                }
                Err(Failure::Closed | Failure::Io) => return Outcome::err("io"),
                Err(Failure::Framing) => return Outcome::err("framing"),
            }
        }
    }

    /// A new connection (`None`: cannot connect).
    async fn connect(&self) -> Option<Conn> {
        let stream = TcpStream::connect(self.addr).await.ok()?;
        let _ = stream.set_nodelay(true);
        Some(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }
}

impl Conn {
    /// Sends the request and reads the whole answer.
    async fn exchange(&mut self, head: &[u8], authorization: &[u8]) -> Result<Answer, Failure> {
        self.buf.clear();
        self.buf.extend_from_slice(head);
        self.buf.extend_from_slice(authorization);
        self.buf.extend_from_slice(b"\r\n\r\n");
        self.stream
            .write_all(&self.buf)
            .await
            .map_err(|_| Failure::Closed)?;
        self.buf.clear();
        let (answer, head_len, body_len) = loop {
            self.fill(MAX_HEAD).await?;
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut headers);
            match parsed.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let (answer, body) = framing(&parsed)?;
                    break (answer, len, body);
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return Err(Failure::Framing),
            }
        };
        let end = head_len + body_len;
        while self.buf.len() < end {
            self.fill(end).await?;
        }
        if self.buf.len() > end {
            // Bytes nobody asked for: the connection's framing is lost.
            return Err(Failure::Framing);
        }
        Ok(answer)
    }

    /// Reads what has arrived, up to `limit` bytes in the buffer in all.
    async fn fill(&mut self, limit: usize) -> Result<(), Failure> {
        if self.buf.len() >= limit {
            return Err(Failure::Framing);
        }
        self.buf.reserve((limit - self.buf.len()).min(16 * 1024));
        let first = self.buf.is_empty();
        match self.stream.read_buf(&mut self.buf).await {
            Ok(n) if n > 0 => Ok(()),
            _ if first => Err(Failure::Closed),
            _ => Err(Failure::Io),
        }
    }
}

/// The answer's status, whether the connection stays open, and its body's length.
fn framing(r: &httparse::Response<'_, '_>) -> Result<(Answer, usize), Failure> {
    let status = r.code.ok_or(Failure::Framing)?;
    let mut length = None;
    let mut close = r.version != Some(1);
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or(Failure::Framing)?;
            if length.is_some_and(|l| l != n) {
                return Err(Failure::Framing);
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Failure::Framing);
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = h
                .value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    // 1xx, 204 and 304 have no body; anything else says how long its body is.
    let length = match status {
        100..=199 | 204 | 304 => 0,
        _ => length.ok_or(Failure::Framing)?,
    };
    if length > MAX_BODY {
        return Err(Failure::Framing);
    }
    let answer = Answer {
        status,
        keep_alive: !close,
    };
    Ok((answer, length))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use axum::Router;
    use axum::extract::{ConnectInfo, State};
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::routing::get;

    use super::*;

    type Peers = Arc<Mutex<HashSet<SocketAddr>>>;

    /// A client of a server whose `/api/v1/users/me` answers 200 to `Bearer good`,
    /// 200 with `Connection: close` to `Bearer close` and 401 otherwise, and records
    /// each connection's peer.
    async fn server(connections: usize) -> (RawClient, Peers) {
        async fn me(
            State(peers): State<Peers>,
            ConnectInfo(peer): ConnectInfo<SocketAddr>,
            headers: HeaderMap,
        ) -> (StatusCode, HeaderMap, &'static str) {
            peers.lock().unwrap().insert(peer);
            let mut out = HeaderMap::new();
            match headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
            {
                Some("Bearer good") => (StatusCode::OK, out, "{\"id\":1}"),
                Some("Bearer close") => {
                    out.insert(header::CONNECTION, HeaderValue::from_static("close"));
                    (StatusCode::OK, out, "{\"id\":1}")
                }
                _ => (StatusCode::UNAUTHORIZED, out, "{}"),
            }
        }
        let peers = Peers::default();
        let app = Router::new()
            .route("/api/v1/users/me", get(me))
            .with_state(Arc::clone(&peers));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        (client(addr, connections).await, peers)
    }

    async fn client(addr: SocketAddr, connections: usize) -> RawClient {
        let url: reqwest::Url = format!("http://{addr}").parse().unwrap();
        RawClient::new(&url, Duration::from_secs(5), connections)
            .await
            .unwrap()
            .unwrap()
    }

    /// A bare TCP server that answers each request on a connection with `answer`
    /// written in `parts` (a pause between them), then closes the connection after
    /// `per_connection` answers. Returns its address and a count of accepted
    /// connections.
    async fn bare_server(
        parts: &'static [&'static str],
        per_connection: usize,
    ) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    for _ in 0..per_connection {
                        req.clear();
                        while !req.ends_with(b"\r\n\r\n") {
                            let mut b = [0u8; 1];
                            if s.read_exact(&mut b).await.is_err() {
                                return;
                            }
                            req.push(b[0]);
                        }
                        for p in parts {
                            s.write_all(p.as_bytes()).await.unwrap();
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn reads_reuse_one_connection_and_report_refusals_by_status() {
        let (c, peers) = server(4).await;
        let good = HeaderValue::from_static("Bearer good");
        for _ in 0..10 {
            assert_eq!(c.read_me(&good).await, Outcome::Ok);
        }
        assert_eq!(
            c.read_me(&HeaderValue::from_static("Bearer bad")).await,
            Outcome::err("http_401")
        );
        assert_eq!(peers.lock().unwrap().len(), 1, "one keep-alive connection");
    }

    #[tokio::test]
    async fn a_connection_the_server_closes_is_not_reused() {
        let (c, peers) = server(4).await;
        let close = HeaderValue::from_static("Bearer close");
        for _ in 0..3 {
            assert_eq!(c.read_me(&close).await, Outcome::Ok);
        }
        assert_eq!(
            c.read_me(&HeaderValue::from_static("Bearer good")).await,
            Outcome::Ok
        );
        assert_eq!(
            peers.lock().unwrap().len(),
            4,
            "a new connection after each close"
        );
    }

    #[tokio::test]
    async fn an_idle_connection_closed_without_notice_is_replaced_and_the_read_sent_again() {
        // Keep-alive by its headers, but the server hangs up after each answer.
        let (addr, accepted) =
            bare_server(&["HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"], 1).await;
        let c = client(addr, 1).await;
        let good = HeaderValue::from_static("Bearer good");
        for _ in 0..3 {
            assert_eq!(c.read_me(&good).await, Outcome::Ok);
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_answer_arriving_in_pieces_is_read_whole() {
        let (addr, accepted) = bare_server(
            &[
                "HTTP/1.1 200 OK\r\ncontent-",
                "length: 10\r\n\r\n{\"id\":",
                "\"x\"}",
            ],
            usize::MAX,
        )
        .await;
        let c = client(addr, 1).await;
        let good = HeaderValue::from_static("Bearer good");
        assert_eq!(c.read_me(&good).await, Outcome::Ok);
        assert_eq!(c.read_me(&good).await, Outcome::Ok);
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the connection stayed in step"
        );
    }

    #[tokio::test]
    async fn answers_it_cannot_frame_are_errors_not_misreads() {
        const ANSWERS: [&[&str]; 4] = [
            &["HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"],
            &["HTTP/1.1 200 OK\r\n\r\n{}"],
            &["HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n{}"],
            &["not http at all\r\n\r\n"],
        ];
        for answer in ANSWERS {
            let (addr, _) = bare_server(answer, usize::MAX).await;
            let c = client(addr, 1).await;
            assert_eq!(
                c.read_me(&HeaderValue::from_static("Bearer good")).await,
                Outcome::err("framing"),
                "{answer:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let (addr, _) = bare_server(&[], usize::MAX).await;
        let url: reqwest::Url = format!("http://{addr}").parse().unwrap();
        let c = RawClient::new(&url, Duration::from_millis(200), 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            c.read_me(&HeaderValue::from_static("Bearer good")).await,
            Outcome::err("timeout")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reads_share_the_bounded_connections() {
        let (c, peers) = server(2).await;
        let c = Arc::new(c);
        let good = HeaderValue::from_static("Bearer good");
        let reads: Vec<_> = (0..50)
            .map(|_| {
                let (c, good) = (Arc::clone(&c), good.clone());
                tokio::spawn(async move { c.read_me(&good).await })
            })
            .collect();
        for r in reads {
            assert_eq!(r.await.unwrap(), Outcome::Ok);
        }
        let used = peers.lock().unwrap().len();
        assert!(
            (1..=2).contains(&used),
            "{used} connections for a bound of 2"
        );
    }

    #[tokio::test]
    async fn an_ipv6_server_resolves_and_keeps_its_brackets_in_the_host_header() {
        let url: reqwest::Url = "http://[::1]:8080/".parse().unwrap();
        let c = RawClient::new(&url, Duration::from_secs(1), 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.addr, "[::1]:8080".parse::<SocketAddr>().unwrap());
        assert_eq!(
            c.head,
            b"GET /api/v1/users/me HTTP/1.1\r\nHost: [::1]:8080\r\nAuthorization: "
        );
    }

    #[tokio::test]
    async fn only_plain_http_servers_get_the_lean_client() {
        let tls: reqwest::Url = "https://127.0.0.1:1".parse().unwrap();
        assert!(
            RawClient::new(&tls, Duration::from_secs(1), 1)
                .await
                .unwrap()
                .is_none()
        );
    }
}
