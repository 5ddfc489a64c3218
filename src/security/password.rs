//! argon2id hashing on a bounded pool of worker threads (the policy a new password
//! must meet is a domain rule: [`crate::domain::password`]).
//!
//! Hashing costs tens of milliseconds of CPU by design, so it never runs on an actor
//! thread or a tokio worker. The pool has a fixed number of threads and a bounded queue;
//! when the queue is full the caller gets [`PoolError::Overloaded`] at once, which the
//! API turns into 503 + `Retry-After`, instead of an unbounded backlog.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use crossbeam_channel::{Sender, TrySendError, bounded};
use tokio::sync::oneshot;

pub use crate::domain::password::{HashParams, PasswordPolicy};

/// Why the pool could not take a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Every worker is busy and the queue is full.
    #[error("password hashing is at capacity")]
    Overloaded,
    /// The pool has shut down.
    #[error("password hashing pool has stopped")]
    Stopped,
    /// argon2 refused (bad parameters or a corrupt stored hash).
    #[error("password hashing failed: {0}")]
    Hash(String),
}

type Job = Box<dyn FnOnce() + Send>;

/// argon2id on a fixed pool of threads with a bounded queue. Cloning shares the pool.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: Sender<Job>,
    inner: Arc<Inner>,
}

struct Inner {
    argon: Argon2<'static>,
    dummy_hash: String,
    /// Jobs started, and their total time waiting for a worker (µs).
    started: AtomicU64,
    waited_micros: AtomicU64,
    /// Time workers spent running jobs (µs), and how many workers there are.
    busy_micros: AtomicU64,
    workers: usize,
}

impl PasswordHasher {
    /// Starts `workers` threads with room for `queue` waiting jobs, and computes the dummy
    /// hash that unknown-email logins are verified against.
    pub fn start(params: HashParams, workers: usize, queue: usize) -> Result<Self, PoolError> {
        let p = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| PoolError::Hash(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, p);
        let mut salt = [0u8; 16];
        rand::fill(&mut salt);
        let dummy_hash = argon
            .hash_password_with_salt(b"roster-dummy-password", &salt)
            .map_err(|e| PoolError::Hash(e.to_string()))?
            .to_string();
        let (tx, rx) = bounded::<Job>(queue);
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            thread::Builder::new()
                .name(format!("roster-hash-{i}"))
                .spawn(move || {
                    // Ends when every sender is gone.
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })
                .map_err(|e| PoolError::Hash(format!("cannot start worker: {e}")))?;
        }
        Ok(Self {
            jobs: tx,
            inner: Arc::new(Inner {
                argon,
                dummy_hash,
                started: AtomicU64::new(0),
                waited_micros: AtomicU64::new(0),
                busy_micros: AtomicU64::new(0),
                workers: workers.max(1),
            }),
        })
    }

    /// Jobs started so far, and their total time spent waiting for a worker.
    pub(crate) fn wait_stats(&self) -> (u64, std::time::Duration) {
        let micros = self.inner.waited_micros.load(Ordering::Relaxed);
        (
            self.inner.started.load(Ordering::Relaxed),
            std::time::Duration::from_micros(micros),
        )
    }

    /// The number of workers and their total time spent running jobs. With
    /// [`wait_stats`](Self::wait_stats)' job count this gives the pool's ceiling:
    /// `workers / (busy / jobs)` jobs per second.
    pub(crate) fn busy_stats(&self) -> (usize, std::time::Duration) {
        let micros = self.inner.busy_micros.load(Ordering::Relaxed);
        (self.inner.workers, std::time::Duration::from_micros(micros))
    }

    /// Jobs waiting for a worker.
    pub(crate) fn queue_depth(&self) -> usize {
        self.jobs.len()
    }

    /// Runs `f` on a worker and awaits its result.
    pub async fn run<T, F>(&self, f: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(&Argon2<'static>) -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let inner = Arc::clone(&self.inner);
        let queued_at = std::time::Instant::now();
        let job: Job = Box::new(move || {
            let waited = u64::try_from(queued_at.elapsed().as_micros()).unwrap_or(u64::MAX);
            inner.waited_micros.fetch_add(waited, Ordering::Relaxed);
            inner.started.fetch_add(1, Ordering::Relaxed);
            let began = std::time::Instant::now();
            let out = f(&inner.argon);
            let busy = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
            inner.busy_micros.fetch_add(busy, Ordering::Relaxed);
            let _ = tx.send(out);
        });
        match self.jobs.try_send(job) {
            Ok(()) => rx.await.map_err(|_| PoolError::Stopped),
            Err(TrySendError::Full(_)) => Err(PoolError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(PoolError::Stopped),
        }
    }

    /// Hashes a password into a PHC string with a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, PoolError> {
        self.run(move |argon| hash_with(argon, &password)).await?
    }

    /// Checks `password` against a stored PHC string, or against the dummy hash when there
    /// is none, so a login for an unknown account costs the same as a wrong password.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, PoolError> {
        let inner = Arc::clone(&self.inner);
        self.run(move |argon| {
            let (phc, real) = match &stored {
                Some(s) => (s.as_str(), true),
                None => (inner.dummy_hash.as_str(), false),
            };
            let parsed = PasswordHash::new(phc).map_err(|e| PoolError::Hash(e.to_string()))?;
            Ok(argon.verify_password(password.as_bytes(), &parsed).is_ok() && real)
        })
        .await?
    }
}

/// Hashes with a fresh random salt (callable on any thread; blocking).
pub(crate) fn hash_with(argon: &Argon2<'_>, password: &str) -> Result<String, PoolError> {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    argon
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PoolError::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: HashParams = HashParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[tokio::test]
    async fn hash_then_verify_and_dummy_never_matches() {
        let h = PasswordHasher::start(CHEAP, 1, 4).unwrap();
        let phc = h.hash("a fine passphrase".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(
            h.verify("a fine passphrase".into(), Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(!h.verify("wrong".into(), Some(phc)).await.unwrap());
        assert!(
            !h.verify("roster-dummy-password".into(), None)
                .await
                .unwrap()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_queue_answers_overloaded_instead_of_waiting() {
        let h = PasswordHasher::start(CHEAP, 1, 1).unwrap();
        let (block_tx, block_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let h = h.clone();
            async move {
                h.run(move |_| {
                    let _ = started_tx.send(());
                    let _ = block_rx.recv();
                })
                .await
            }
        });
        started_rx.recv().unwrap();
        let queued = tokio::spawn({
            let h = h.clone();
            async move { h.run(|_| 1).await }
        });
        while h.queue_depth() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(h.run(|_| 2).await, Err(PoolError::Overloaded));
        block_tx.send(()).unwrap();
        busy.await.unwrap().unwrap();
        assert_eq!(queued.await.unwrap(), Ok(1));
    }
}
