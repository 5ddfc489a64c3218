//! Long operator jobs answered as JSON lines (`application/x-ndjson`): progress lines as
//! the job goes, then one line with its result or `{"error": problem}`. A refusal before
//! the first progress line is an ordinary problem response; the job finishes even if the
//! client goes away.

use std::future::Future;

use axum::response::{IntoResponse, Response};
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
