//! A running server as the commands see it: its operator API over HTTP.

use serde::de::DeserializeOwned;

use super::CliError;

/// A server and the operator key to call it with.
pub(super) struct Remote {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Remote {
    pub(super) fn new(url: &str, key: String) -> Self {
        Self {
            base: format!("{}/api/v1", url.trim_end_matches('/')),
            key,
            http: reqwest::Client::new(),
        }
    }

    /// `METHOD /api/v1<path>` as the operator; a refusal becomes an error carrying the
    /// server's problem document.
    pub(super) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::Response, CliError> {
        self.send_built(method, path, |r| r).await
    }

    async fn send_built(
        &self,
        method: reqwest::Method,
        path: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CliError> {
        let url = format!("{}{path}", self.base);
        let resp = build(
            self.http
                .request(method.clone(), &url)
                .bearer_auth(&self.key),
        )
        .send()
        .await
        .map_err(|e| CliError::Failed(format!("{method} {url}: {e}")))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        Err(CliError::Failed(format!(
            "the server refused ({status}): {body}"
        )))
    }

    /// `METHOD /api/v1<path>` with a JSON body.
    pub(super) async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<reqwest::Response, CliError> {
        self.send_built(method, path, |r| r.json(body)).await
    }

    /// `METHOD /api/v1<path>` with a JSON body, reading the answer as JSON.
    pub(super) async fn json_with<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, CliError> {
        read(self.send_built(method, path, |r| r.json(body)).await?, path).await
    }

    /// `METHOD /api/v1<path>` with a body of `content_type`, reading the answer as JSON.
    pub(super) async fn raw<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: String,
    ) -> Result<T, CliError> {
        let resp = self
            .send_built(method, path, |r| {
                r.header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(body)
            })
            .await?;
        read(resp, path).await
    }

    /// [`Self::send`], reading the answer as JSON.
    pub(super) async fn json<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<T, CliError> {
        read(self.send(method, path).await?, path).await
    }
}

async fn read<T: DeserializeOwned>(resp: reqwest::Response, path: &str) -> Result<T, CliError> {
    resp.json()
        .await
        .map_err(|e| CliError::Failed(format!("an unreadable answer from {path}: {e}")))
}

/// Follows a long job's answer of JSON lines (progress lines, then one line with its
/// result under `result`, or `{"error": problem}`): hands each progress line to
/// `progress` and returns the result. `what` names the job in messages.
pub(super) async fn follow<P: DeserializeOwned, R: DeserializeOwned>(
    mut resp: reqwest::Response,
    result: &str,
    what: &str,
    mut progress: impl FnMut(P),
) -> Result<R, CliError> {
    let failed = |e: &dyn std::fmt::Display| CliError::Failed(format!("{what}: {e}"));
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| failed(&e))? {
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let v: serde_json::Value = serde_json::from_slice(&line).map_err(|e| failed(&e))?;
            if let Some(r) = v.get(result) {
                return serde_json::from_value(r.clone()).map_err(|e| failed(&e));
            }
            if let Some(e) = v.get("error") {
                return Err(CliError::Failed(format!("{what} failed: {}", e["detail"])));
            }
            progress(serde_json::from_value(v).map_err(|e| failed(&e))?);
        }
    }
    Err(CliError::Failed(format!(
        "the server closed the connection before {what} finished; it goes on there: check \
         its log"
    )))
}
