//! The generator's HTTP client for one server: reqwest for everything, and the lean
//! keep-alive client of `raw` for the reads it measures.

use std::sync::Arc;

use serde_json::Value;

use super::{LoadgenError, Options, Outcome, Session, raw};

/// An HTTP client for one server.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The server's address, parsed once: parsing it per request (host, IDNA) took
    /// about a twentieth of the generator's CPU.
    base: Arc<reqwest::Url>,
    admin: Arc<str>,
    /// The lean client for `GET /users/me` (plain HTTP servers).
    raw: Option<Arc<raw::RawClient>>,
}

impl Client {
    pub(super) async fn new(opts: &Options) -> Result<Self, LoadgenError> {
        let http = reqwest::Client::builder()
            .timeout(opts.timeout)
            .pool_max_idle_per_host(4096)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| LoadgenError(e.to_string()))?;
        let base = reqwest::Url::parse(&opts.url)
            .ok()
            .filter(|u| !u.cannot_be_a_base() && matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| LoadgenError(format!("{} is not an http(s) URL", opts.url)))?;
        let raw = raw::RawClient::new(&base, opts.timeout, opts.connections)
            .await?
            .map(Arc::new);
        Ok(Self {
            http,
            base: Arc::new(base),
            admin: Arc::from(opts.admin_key.as_str()),
            raw,
        })
    }

    /// `GET /api/v1/users/me` as `session`: the load scenarios' read.
    pub(crate) async fn read_me(&self, session: &Session) -> Outcome {
        match &self.raw {
            Some(raw) => raw.read_me(&session.authorization).await,
            None => {
                let r = self.request(
                    reqwest::Method::GET,
                    "/api/v1/users/me",
                    Some(&session.token),
                );
                self.outcome(r).await
            }
        }
    }

    /// The operator key, as a bearer.
    pub fn admin(&self) -> Option<&str> {
        Some(&self.admin)
    }

    pub(super) fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut url = (*self.base).clone();
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        url.set_query(query);
        let prefix = url.path().trim_end_matches('/');
        if !prefix.is_empty() {
            // A server behind a path prefix.
            let full = format!("{prefix}{path}");
            url.set_path(&full);
        } else {
            url.set_path(path);
        }
        let r = self.http.request(method, url);
        match bearer {
            Some(b) => r.bearer_auth(b),
            None => r,
        }
    }

    pub(super) async fn json(r: reqwest::RequestBuilder) -> Result<(u16, Value), LoadgenError> {
        let resp = r
            .send()
            .await
            .map_err(|e| LoadgenError(format!("request failed: {e}")))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| LoadgenError(e.to_string()))?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// The server's clock (events are dated by it: it refuses events from its future,
    /// and live ones older than their account).
    pub(crate) async fn server_time(&self) -> Result<crate::domain::time::Timestamp, LoadgenError> {
        let (status, live) = self
            .get_json("/api/v1/admin/analytics/live", self.admin())
            .await?;
        serde_json::from_value(live["at"].clone())
            .map_err(|e| LoadgenError(format!("the server's time ({status}): {e}")))
    }

    /// `GET path` → status and JSON body.
    pub(crate) async fn get_json(
        &self,
        path: &str,
        bearer: Option<&str>,
    ) -> Result<(u16, Value), LoadgenError> {
        Self::json(self.request(reqwest::Method::GET, path, bearer)).await
    }

    /// `POST path` with a JSON body → status and JSON body.
    pub(crate) async fn post_json(
        &self,
        path: &str,
        bearer: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Value), LoadgenError> {
        Self::json(self.request(reqwest::Method::POST, path, bearer).json(body)).await
    }

    /// Sends a request and classifies the answer: 2xx is ok, anything else an error
    /// named by status or transport failure. The body is read (and dropped).
    pub async fn outcome(&self, r: reqwest::RequestBuilder) -> Outcome {
        match r.send().await {
            Ok(resp) => {
                let status = resp.status();
                let body = resp.bytes().await;
                match (status.is_success(), body) {
                    (true, Ok(_)) => Outcome::Ok,
                    (true, Err(_)) => Outcome::err("body"),
                    (false, _) => Outcome::err(format!("http_{}", status.as_u16())),
                }
            }
            Err(e) if e.is_timeout() => Outcome::err("timeout"),
            Err(e) if e.is_connect() => Outcome::err("connect"),
            Err(_) => Outcome::err("io"),
        }
    }

    /// A metric's value from `/metrics` (the first sample whose line starts with `name`).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let resp = self
            .request(reqwest::Method::GET, "/metrics", self.admin())
            .send()
            .await
            .ok()?;
        let text = resp.text().await.ok()?;
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}
