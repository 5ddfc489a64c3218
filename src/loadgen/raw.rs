//! A lean HTTP/1.1 client for the generator's hottest request, `GET /users/me`.
//!
//! Generator and server share the machine's cores, so every microsecond the generator
//! spends per request is one the server cannot use. Through reqwest a request cost the
//! generator about as much CPU as the server spent answering it (URL handling, its pool,
//! a task per request). This client sends a prepared request over hyper's connection
//! API and keeps idle keep-alive connections on a stack, at most `--connections` of them;
//! a connection goes back only after a clean exchange, so a broken one is never reused.

use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, HOST, HeaderValue};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;

use super::LoadgenError;
use super::stats::Outcome;

type Sender = SendRequest<Empty<Bytes>>;

/// Keep-alive connections to one plain-HTTP server, for `GET /api/v1/users/me`.
pub struct RawClient {
    addr: SocketAddr,
    host: HeaderValue,
    /// `/api/v1/users/me` under the server URL's path.
    me: Uri,
    timeout: Duration,
    idle: Mutex<Vec<Sender>>,
    /// One permit per connection there may be: a request waits for one, and holds it
    /// until its exchange is over.
    connections: tokio::sync::Semaphore,
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
        let host = HeaderValue::from_str(&authority)
            .map_err(|e| LoadgenError(format!("{authority}: {e}")))?;
        let me = format!("{}/api/v1/users/me", url.path().trim_end_matches('/'));
        let me = Uri::try_from(me.as_str()).map_err(|e| LoadgenError(format!("{me}: {e}")))?;
        Ok(Some(Self {
            addr,
            host,
            me,
            timeout,
            idle: Mutex::new(Vec::new()),
            connections: tokio::sync::Semaphore::new(connections.max(1)),
        }))
    }

    /// `GET /api/v1/users/me` with `authorization`; a 2xx with its whole body is a
    /// success.
    pub async fn read_me(&self, authorization: &HeaderValue) -> Outcome {
        tokio::time::timeout(self.timeout, self.exchange(&self.me, authorization))
            .await
            .unwrap_or_else(|_| Outcome::err("timeout"))
    }

    async fn exchange(&self, uri: &Uri, authorization: &HeaderValue) -> Outcome {
        // The wait counts in the latency: `read_me`'s caller timed from before it.
        let Ok(_permit) = self.connections.acquire().await else {
            return Outcome::err("connect");
        };
        let Some(mut conn) = self.checkout().await else {
            return Outcome::err("connect");
        };
        let req = Request::get(uri.clone())
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, authorization.clone())
            .body(Empty::new());
        let Ok(req) = req else {
            return Outcome::err("request");
        };
        let Ok(resp) = conn.send_request(req).await else {
            return Outcome::err("io");
        };
        let status = resp.status();
        let body = resp.into_body().collect().await;
        if body.is_ok() {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
        match (status.is_success(), body) {
            (true, Ok(_)) => Outcome::Ok,
            (true, Err(_)) => Outcome::err("body"),
            (false, _) => Outcome::err(format!("http_{}", status.as_u16())),
        }
    }

    /// An idle connection that is still open, or a new one (`None`: cannot connect).
    async fn checkout(&self) -> Option<Sender> {
        loop {
            let next = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let Some(mut c) = next else { break };
            // Ready at once when open and idle; an error means the server closed it.
            if c.ready().await.is_ok() {
                return Some(c);
            }
        }
        let stream = tokio::net::TcpStream::connect(self.addr).await.ok()?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.ok()?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Some(sender)
    }
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

    /// A client of a server whose `/api/v1/users/me` answers 200 to `Bearer good` and 401 otherwise,
    /// records each connection's peer, and closes the connection when asked to by
    /// `x-close`.
    async fn server(connections: usize) -> (RawClient, Peers) {
        async fn me(
            State(peers): State<Peers>,
            ConnectInfo(peer): ConnectInfo<SocketAddr>,
            headers: HeaderMap,
        ) -> (StatusCode, HeaderMap, &'static str) {
            peers.lock().unwrap().insert(peer);
            let mut out = HeaderMap::new();
            if headers.contains_key("x-close") {
                out.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            match headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
                Some("Bearer good") => (StatusCode::OK, out, "{\"id\":1}"),
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
        let url: reqwest::Url = format!("http://{addr}").parse().unwrap();
        let client = RawClient::new(&url, Duration::from_secs(5), connections)
            .await
            .unwrap()
            .unwrap();
        (client, peers)
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
    async fn a_connection_the_server_closed_is_replaced() {
        let (c, peers) = server(4).await;
        // `read_me` cannot ask the server to close: these requests are built by hand.
        let closing = |c: &RawClient| {
            Request::get(c.me.clone())
                .header(HOST, c.host.clone())
                .header(AUTHORIZATION, HeaderValue::from_static("Bearer good"))
                .header("x-close", "1")
                .body(Empty::<Bytes>::new())
                .unwrap()
        };
        for _ in 0..3 {
            let mut conn = c.checkout().await.unwrap();
            let resp = conn.send_request(closing(&c)).await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.into_body().collect().await.unwrap();
            c.idle.lock().unwrap().push(conn);
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
        assert_eq!(c.host, "[::1]:8080");
        assert_eq!(c.me, "/api/v1/users/me");
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
