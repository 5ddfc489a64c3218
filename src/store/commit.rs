//! Group commit: many callers waiting for durability share one flush.
//!
//! A caller writes its change to the store, then awaits [`GroupCommit::commit`]. A single
//! flusher thread takes every waiter queued so far, runs one [`Store::flush`], and
//! answers them all. A waiter that arrives during a flush waits for the next one, which
//! starts after its write, so every acknowledged write is covered by a completed flush.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use crossbeam_channel::{Receiver, Sender, unbounded};
use tokio::sync::oneshot;

use super::{Store, StoreError};

/// Something waiting for the next flush: an awaiting caller, or a callback.
enum Waiter {
    Caller(oneshot::Sender<Result<(), String>>),
    Then(Box<dyn FnOnce(Result<(), String>) + Send>),
}

/// Counters of the flusher's work, for benches and metrics.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Flushes run.
    pub flushes: AtomicU64,
    /// Awaiting callers answered (callbacks not counted).
    pub commits: AtomicU64,
    /// Time spent flushing, in microseconds.
    pub flush_micros: AtomicU64,
}

/// A handle to the flusher thread; cloning shares it. Dropping the last handle stops
/// the thread and waits for it, so the store is released when the engine is.
#[derive(Clone)]
pub struct GroupCommit {
    inner: Arc<Inner>,
}

struct Inner {
    waiters: Option<Sender<Waiter>>,
    thread: Option<thread::JoinHandle<()>>,
    stats: Arc<CommitStats>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.waiters.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl GroupCommit {
    /// Starts the flusher over `store`.
    pub fn start(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let (tx, rx) = unbounded::<Waiter>();
        let stats = Arc::new(CommitStats::default());
        let s = Arc::clone(&stats);
        let thread = thread::Builder::new()
            .name("roster-flush".into())
            .spawn(move || flusher(store, rx, s))
            .map_err(|e| StoreError::Io(format!("cannot start flusher: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                waiters: Some(tx),
                thread: Some(thread),
                stats,
            }),
        })
    }

    /// Resolves once every store write made before this call is durable.
    pub async fn commit(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .waiters
            .as_ref()
            .ok_or_else(|| StoreError::Io("flusher has stopped".into()))?
            .send(Waiter::Caller(tx))
            .map_err(|_| StoreError::Io("flusher has stopped".into()))?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Io(e)),
            Err(_) => Err(StoreError::Io("flusher has stopped".into())),
        }
    }

    /// Runs `f` on the flusher thread once every store write made before this call is
    /// durable (or the flush failed). Callbacks run in the order they were registered,
    /// so one caller's callbacks keep its order; keep them short. If the flusher has
    /// stopped, `f` is dropped without running.
    pub fn then(&self, f: impl FnOnce(Result<(), String>) + Send + 'static) {
        if let Some(w) = self.inner.waiters.as_ref() {
            let _ = w.send(Waiter::Then(Box::new(f)));
        }
    }

    /// The flusher's counters.
    pub fn stats(&self) -> &CommitStats {
        &self.inner.stats
    }
}

fn flusher(store: Arc<dyn Store>, rx: Receiver<Waiter>, stats: Arc<CommitStats>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let started = std::time::Instant::now();
        let result = store.flush();
        if let Err(e) = &result {
            tracing::error!(error = %e, waiters = batch.len(), "store flush failed");
        }
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        stats.flush_micros.fetch_add(took, Ordering::Relaxed);
        stats.flushes.fetch_add(1, Ordering::Relaxed);
        let callers = batch
            .iter()
            .filter(|w| matches!(w, Waiter::Caller(_)))
            .count();
        stats.commits.fetch_add(callers as u64, Ordering::Relaxed);
        let answer = result.map(|_| ()).map_err(|e| e.to_string());
        for w in batch {
            match w {
                Waiter::Caller(tx) => {
                    let _ = tx.send(answer.clone());
                }
                Waiter::Then(f) => f(answer.clone()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::UserId;
    use crate::domain::tier::UserTier;
    use crate::store::{Batch, Op, SledStore, UserStore};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_commits_share_flushes_and_each_sees_its_write_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path(), 1 << 20).unwrap());
        let gc = GroupCommit::start(Arc::clone(&store)).unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (gc, store) = (gc.clone(), Arc::clone(&store));
                tokio::spawn(async move {
                    let id = UserId::generate();
                    let mut email_index = [0u8; 32];
                    email_index[..16].copy_from_slice(id.as_bytes());
                    let op = Op::CreateUser {
                        id,
                        email_index,
                        tier: UserTier::Free,
                        wrapped_key: Vec::new(),
                        record: b"record".to_vec(),
                    };
                    store.apply(&Batch::of(op)).unwrap();
                    gc.commit().await.unwrap();
                    id
                })
            })
            .collect();
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        let flushes = gc.stats().flushes.load(Ordering::Relaxed);
        assert_eq!(gc.stats().commits.load(Ordering::Relaxed), 200);
        assert!((1..=200).contains(&flushes));
        // Callbacks run after a flush, in registration order.
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        for i in 0..50 {
            let seen = Arc::clone(&seen);
            gc.then(move |r| seen.lock().unwrap().push((i, r.is_ok())));
        }
        gc.commit().await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen, (0..50).map(|i| (i, true)).collect::<Vec<_>>());
        drop(gc);
        drop(store); // the flusher released its handle when `gc` was dropped
        let reopened = SledStore::open(dir.path(), 1 << 20).unwrap();
        for id in ids {
            assert!(reopened.load_user(id).unwrap().is_some());
        }
    }
}
