//! Batch work (reports over the population, trainings) on a thread of its own at a lower
//! scheduling priority, so that a report reading a million records on every core does
//! not delay the requests: the scheduler runs the request threads first whenever they
//! have work. Threads the job starts (the population scan's) inherit the priority.

use super::EngineError;

/// How much lower a batch thread runs than the server's own threads (a Unix `nice`
/// increment; at +19 a busy request thread gets about seventy times a batch thread's
/// share): batch work uses the cores the requests leave idle.
pub(crate) const BATCH_NICENESS: i32 = 19;

/// Runs `job` on a new thread named `name` at [`BATCH_NICENESS`] and returns its result.
/// A priority the system refuses to lower is logged; the job still runs.
pub(crate) async fn run<T: Send + 'static>(
    name: &str,
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, EngineError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(job());
        })
        .map_err(|e| EngineError::Internal(format!("cannot start {name}: {e}")))?;
    rx.await
        .map_err(|_| EngineError::Internal(format!("{name} failed")))
}

/// Lowers the calling thread's priority by [`BATCH_NICENESS`]. Linux only: there the
/// nice value is a thread's own (`setpriority` of "this process" sets the calling
/// thread's); elsewhere it is the whole process's, so batch work keeps the server's
/// priority.
#[cfg(target_os = "linux")]
fn lower_priority() {
    let lowered = rustix::process::getpriority_process(None)
        .and_then(|now| rustix::process::setpriority_process(None, now + BATCH_NICENESS));
    if let Err(err) = lowered {
        tracing::debug!(%err, "a batch thread keeps the server's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_runs_below_the_threads_that_started_it() {
        let mine = rustix::process::getpriority_process(None).unwrap();
        let theirs = run("roster-test-batch", || {
            let own = rustix::process::getpriority_process(None).unwrap();
            // A thread it starts inherits the priority.
            let child = std::thread::spawn(|| rustix::process::getpriority_process(None).unwrap())
                .join()
                .unwrap();
            (own, child)
        })
        .await
        .unwrap();
        let lowered = (mine + BATCH_NICENESS).min(19);
        assert_eq!(theirs, (lowered, lowered));
        assert_eq!(
            rustix::process::getpriority_process(None).unwrap(),
            mine,
            "the caller's priority is unchanged"
        );
    }
}
