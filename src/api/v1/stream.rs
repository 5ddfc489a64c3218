//! Long operator jobs over one response: as JSON lines (`application/x-ndjson`, [`job`]):
//! progress lines as the job goes, then one line with its result or `{"error": problem}`;
//! or as bytes a job writes ([`bytes`]: a backup, an export). A refusal before the first
//! line or bytes is an ordinary problem response; a job of lines finishes even if the
//! client goes away, a job of bytes ends when it cannot write.

use std::future::Future;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::problem::ApiError;
use crate::engine::EngineError;

/// What a job tells its stream.
enum Message<P, R> {
    Progress(P),
    Done(Result<R, EngineError>),
}

fn ndjson_line(value: &Value) -> bytes::Bytes {
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    line.into()
}

/// Runs `job` (given a progress callback) on a task of its own and streams its progress
/// and, through `done`, its result.
pub(crate) async fn job<P, R, F>(
    job: impl FnOnce(Box<dyn FnMut(P) + Send>) -> F,
    done: fn(R) -> Value,
) -> Result<Response, ApiError>
where
    P: Serialize + Send + 'static,
    R: Send + 'static,
    F: Future<Output = Result<R, EngineError>> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let progress = tx.clone();
    let running = job(Box::new(move |p| {
        let _ = progress.send(Message::Progress(p));
    }));
    tokio::spawn(async move {
        let _ = tx.send(Message::Done(running.await));
    });
    let line = move |m: Message<P, R>| match m {
        Message::Progress(p) => json!(p),
        Message::Done(Ok(r)) => done(r),
        Message::Done(Err(e)) => {
            let e = ApiError::from(e);
            json!({ "error": { "type": e.type_uri(), "detail": e.to_string() } })
        }
    };
    let first = match rx.recv().await {
        Some(Message::Done(Err(e))) => return Err(e.into()),
        Some(m) => line(m),
        None => return Err(ApiError::Unavailable),
    };
    let rest = futures_util::stream::unfold(rx, move |mut rx| async move {
        let m = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(ndjson_line(&line(m))), rx))
    });
    let body = futures_util::stream::once(async move { Ok(ndjson_line(&first)) }).chain(rest);
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// Bytes gathered before a chunk goes to the client.
const CHUNK: usize = 256 * 1024;
/// How long a download waits for a client that reads nothing before it gives up.
const CLIENT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);
/// Chunks waiting for the client before the backup waits for it.
const CHUNKS_IN_FLIGHT: usize = 8;

/// What the backup's thread sends the response.
enum Piece {
    Chunk(Bytes),
    Failed(EngineError),
}

/// The backup's output: chunks over a bounded channel to the response body. A client
/// that goes away makes the next write fail, which ends the backup.
pub(crate) struct ToClient {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Piece>,
}

impl ToClient {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        // A thread of the blocking pool: it may wait for the client, but not forever (a
        // backup held up by a client that stopped reading keeps spilling the store's
        // writes).
        let mut piece = Piece::Chunk(chunk);
        let deadline = std::time::Instant::now() + CLIENT_PATIENCE;
        loop {
            match self.tx.try_send(piece) {
                Ok(()) => return Ok(()),
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::BrokenPipe,
                        "the client left",
                    ));
                }
                Err(tokio::sync::mpsc::error::TrySendError::Full(back)) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the client stopped reading",
                        ));
                    }
                    piece = back;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
    }
}

impl std::io::Write for ToClient {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Runs `write` on a task of its own with a writer whose bytes become the response's
/// body, of `content_type` with `disposition`. A refusal before the first bytes is an
/// ordinary problem response; a failure after them ends the body broken (no clean end),
/// so a client cannot take a cut stream for a whole one.
pub(crate) async fn bytes<F>(
    content_type: &'static str,
    disposition: &'static str,
    write: impl FnOnce(ToClient) -> F,
) -> Result<Response, ApiError>
where
    F: Future<Output = Result<(), EngineError>> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
    let out = ToClient {
        buf: Vec::with_capacity(CHUNK),
        tx: tx.clone(),
    };
    let running = write(out);
    tokio::spawn(async move {
        if let Err(e) = running.await {
            tracing::warn!(error = %e, "a streamed download failed");
            let _ = tx.send(Piece::Failed(e)).await;
        }
    });
    let first = match rx.recv().await {
        Some(Piece::Chunk(c)) => c,
        Some(Piece::Failed(e)) => return Err(e.into()),
        // The job ended well without writing a byte (an export of nothing).
        None => Bytes::new(),
    };
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await? {
            Piece::Chunk(c) => Some((Ok(c), rx)),
            Piece::Failed(e) => Some((Err(std::io::Error::other(e.to_string())), rx)),
        }
    });
    let body =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(rest);
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, content_type),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}
