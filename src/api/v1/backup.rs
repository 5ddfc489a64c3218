//! `GET /api/v1/admin/backup`: a point-in-time backup of the store, streamed as it is
//! written (operator only). `roster backup --server` is its client.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::api::AppState;
use crate::api::extract::Caller;
use crate::api::problem::{ApiError, Problem};
use crate::engine::EngineError;

/// Bytes gathered before a chunk goes to the client.
const CHUNK: usize = 256 * 1024;
/// Chunks waiting for the client before the backup waits for it.
const CHUNKS_IN_FLIGHT: usize = 8;

/// What the backup's thread sends the response.
enum Piece {
    Chunk(Bytes),
    Failed(EngineError),
}

/// The backup's output: chunks over a bounded channel to the response body. A client
/// that goes away makes the next write fail, which ends the backup.
struct ToClient {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Piece>,
}

impl ToClient {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        // A thread of the blocking pool: it may wait for the client.
        self.tx
            .blocking_send(Piece::Chunk(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
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

/// A backup of the whole store at one point in time, taken while the server serves
/// (reads and writes go on; actors are not held): users, routes, the email index, the
/// audit chain, archives, keyring records, models, the catalog, jobs. Personal data stays
/// sealed as at rest; the master key is never in it. The file format is in
/// `docs/operations.md`; a failure midway ends the body without its trailer, which
/// `roster backup` reports. Audited (`backup_taken`).
#[utoipa::path(get, path = "/api/v1/admin/backup", tag = "admin", security(("bearer" = [])),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>,
        description = "the backup file"),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn backup(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
    let (by, m) = (caller.principal(), s.manager.clone());
    let out = ToClient {
        buf: Vec::with_capacity(CHUNK),
        tx: tx.clone(),
    };
    tokio::spawn(async move {
        if let Err(e) = m.ops().backup(&by, out).await {
            tracing::warn!(error = %e, "a backup over HTTP failed");
            let _ = tx.send(Piece::Failed(e)).await;
        }
    });
    let first = match rx.recv().await {
        Some(Piece::Chunk(c)) => c,
        Some(Piece::Failed(e)) => return Err(e.into()),
        None => return Err(ApiError::Unavailable),
    };
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await? {
            Piece::Chunk(c) => Some((Ok(c), rx)),
            // The body ends in an error, not cleanly: the client sees a broken transfer.
            Piece::Failed(e) => Some((Err(std::io::Error::other(e.to_string())), rx)),
        }
    });
    let body = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }),
        rest,
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"roster.backup\"",
            ),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}
