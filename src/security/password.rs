//! argon2id hashing on a bounded pool of worker threads (the policy a new password
//! must meet is a domain rule: [`crate::domain::password`]).
//!
//! Stored hashes may also be bcrypt (`$2a$`, `$2b$`, `$2y$`, from a system migrated
//! from) or argon2 at another cost than the configured one: both verify, and a login
//! that proves the password, once the account let it through, gets a new argon2id hash
//! at the configured cost ([`PasswordHasher::needs_rehash`]), so an imported population
//! moves to argon2id one login at a time.
//!
//! Hashing costs tens of milliseconds of CPU by design, so it never runs on an actor
//! thread or a tokio worker. The pool has a fixed number of threads and a bounded queue;
//! when the queue is full the caller gets [`PoolError::Overloaded`] at once, which the
//! API turns into 503 + `Retry-After`, instead of an unbounded backlog.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use argon2_rust::params::Memory;
use argon2_rust::{Algorithm, Argon2, Params, Version};
use crossbeam_channel::{Sender, TrySendError, bounded};
use tokio::sync::oneshot;

pub use crate::domain::password::{HashParams, PasswordPolicy};

/// What a user created without a password (invited to set one) stores as its hash: no
/// PHC string, so no password matches it, and an import cannot give it.
pub const NO_PASSWORD: &str = "!invited";

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

/// The most a stored (or imported) hash may ask of a verification: a PHC string names
/// its own cost, and without a ceiling one row could ask for terabytes. 256 MiB (or the
/// configured cost, if higher), 16 passes, 16 lanes, worked through on the one thread.
fn verify_ceiling(params: &Params) -> Result<Params, PoolError> {
    let memory = params.memory_kib().max(256 * 1024);
    Params::builder()
        .memory(Memory::kib(memory as u64))
        .passes(params.passes().max(16))
        .lanes(params.lanes().max(16))
        .threads(1)
        .build()
        .map_err(|e| PoolError::Hash(e.to_string()))
}

/// The argon2id parameters of `p`, checked.
pub fn params(p: HashParams) -> Result<Params, PoolError> {
    Params::builder()
        .memory(Memory::kib(u64::from(p.memory_kib)))
        .passes(p.iterations)
        .lanes(p.parallelism)
        .threads(1)
        .build()
        .map_err(|e| PoolError::Hash(e.to_string()))
}

/// The highest bcrypt cost a stored hash may have: each step doubles the work, and 14
/// takes about a second on one core (a higher one would let one row stall a worker).
pub const BCRYPT_MAX_COST: u32 = 14;

/// Whether `phc` is a bcrypt hash (`$2a$`, `$2b$`, `$2y$`).
fn is_bcrypt(phc: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| phc.starts_with(p))
}

/// A bcrypt hash's cost, checked against [`BCRYPT_MAX_COST`].
fn bcrypt_cost(phc: &str) -> Result<u32, String> {
    let parts: bcrypt::HashParts = phc.parse().map_err(|e| format!("not a bcrypt hash: {e}"))?;
    let cost = parts.get_cost();
    if cost > BCRYPT_MAX_COST {
        return Err(format!(
            "its bcrypt cost ({cost}) is above what a login may spend ({BCRYPT_MAX_COST})"
        ));
    }
    if cost < 4 {
        return Err(format!(
            "its bcrypt cost ({cost}) is below bcrypt's least (4): it could never be verified"
        ));
    }
    Ok(cost)
}

/// Whether `phc` is a stored hash this build can verify: an argon2 PHC string or a
/// bcrypt hash, well formed, and within what a verification may cost (see
/// [`verify_ceiling`] for `configured`, [`BCRYPT_MAX_COST`]).
pub fn check_stored(phc: &str, configured: HashParams) -> Result<(), String> {
    if is_bcrypt(phc) {
        return bcrypt_cost(phc).map(|_| ());
    }
    let decoded =
        argon2_rust::decode_phc(phc).map_err(|e| format!("not an argon2 PHC string: {e}"))?;
    let ceiling = verify_ceiling(&params(configured).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let p = &decoded.params;
    if p.memory_kib() > ceiling.memory_kib()
        || p.passes() > ceiling.passes()
        || p.lanes() > ceiling.lanes()
    {
        return Err(format!(
            "its cost (m={}, t={}, p={}) is above what a login may spend (m={}, t={}, p={})",
            p.memory_kib(),
            p.passes(),
            p.lanes(),
            ceiling.memory_kib(),
            ceiling.passes(),
            ceiling.lanes()
        ));
    }
    Ok(())
}

/// One worker thread's argon2id: the configured cost and the memory it needs, allocated
/// once and reused by every hash and verification on the thread (wiped after each).
/// argon2-rust picks the widest SIMD the CPU has (AVX-512, AVX2, SSE, NEON) at run time.
pub struct Argon2Worker {
    hasher: argon2_rust::Hasher,
    ceiling: Params,
}

impl Argon2Worker {
    /// A worker for `params`, its memory reserved now rather than by the first hash.
    pub fn new(params: Params) -> Result<Self, PoolError> {
        let ceiling = verify_ceiling(&params)?;
        let mut hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hasher();
        hasher
            .reserve()
            .map_err(|e| PoolError::Hash(e.to_string()))?;
        Ok(Self { hasher, ceiling })
    }

    /// Hashes `password` into a PHC string with a fresh random salt.
    pub fn hash(&mut self, password: &str) -> Result<String, PoolError> {
        self.hasher
            .hash_password_with_random_salt(password.as_bytes())
            .map_err(|e| PoolError::Hash(e.to_string()))
    }

    /// Whether `password` matches the stored hash `phc`: any argon2 variant at any cost
    /// up to the ceiling (the cost comes from the string), or bcrypt up to
    /// [`BCRYPT_MAX_COST`].
    pub fn verify(&mut self, password: &str, phc: &str) -> Result<bool, PoolError> {
        if is_bcrypt(phc) {
            bcrypt_cost(phc).map_err(PoolError::Hash)?;
            return bcrypt::verify(password, phc).map_err(|e| PoolError::Hash(e.to_string()));
        }
        let algorithm = argon2_rust::decode_phc(phc)
            .map_err(|e| PoolError::Hash(e.to_string()))?
            .algorithm;
        match self
            .hasher
            .verify_encoded_bounded(phc, password.as_bytes(), algorithm, &self.ceiling)
        {
            Ok(()) => Ok(true),
            Err(argon2_rust::Error::VerifyMismatch) => Ok(false),
            Err(e) => Err(PoolError::Hash(e.to_string())),
        }
    }
}

/// Whether `phc` is not what a pool hashing with `want` writes: bcrypt, another argon2
/// variant or version, or another cost.
fn needs_rehash(phc: &str, want: &Params) -> bool {
    if is_bcrypt(phc) {
        return true;
    }
    let Ok(d) = argon2_rust::decode_phc(phc) else {
        return false;
    };
    let p = &d.params;
    d.algorithm != Algorithm::Argon2id
        || d.version != Version::V0x13
        || p.memory_kib() != want.memory_kib()
        || p.passes() != want.passes()
        || p.lanes() != want.lanes()
}

type Job = Box<dyn FnOnce(&mut Argon2Worker) + Send>;

/// argon2id on a fixed pool of threads with a bounded queue. Cloning shares the pool.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: Sender<Job>,
    inner: Arc<Inner>,
}

struct Inner {
    dummy_hash: String,
    /// What the workers hash with.
    params: Params,
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
        let p = self::params(params)?;
        let dummy_hash = Argon2Worker::new(p)?.hash("roster-dummy-password")?;
        let (tx, rx) = bounded::<Job>(queue);
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            let mut worker = Argon2Worker::new(p)?;
            thread::Builder::new()
                .name(format!("roster-hash-{i}"))
                .spawn(move || {
                    // Ends when every sender is gone.
                    while let Ok(job) = rx.recv() {
                        job(&mut worker);
                    }
                })
                .map_err(|e| PoolError::Hash(format!("cannot start worker: {e}")))?;
        }
        Ok(Self {
            jobs: tx,
            inner: Arc::new(Inner {
                dummy_hash,
                params: p,
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
        F: FnOnce(&mut Argon2Worker) -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let inner = Arc::clone(&self.inner);
        let queued_at = std::time::Instant::now();
        let job: Job = Box::new(move |worker| {
            let waited = u64::try_from(queued_at.elapsed().as_micros()).unwrap_or(u64::MAX);
            inner.waited_micros.fetch_add(waited, Ordering::Relaxed);
            inner.started.fetch_add(1, Ordering::Relaxed);
            let began = std::time::Instant::now();
            let out = f(worker);
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
        self.run(move |w| w.hash(&password)).await?
    }

    /// Checks `password` against a stored PHC string, or against the dummy hash when there
    /// is none (or it is [`NO_PASSWORD`]), so a login for an unknown account, or for one
    /// invited and without a password yet, costs the same as a wrong password.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, PoolError> {
        let inner = Arc::clone(&self.inner);
        self.run(move |w| {
            let (phc, real) = match &stored {
                Some(s) if s != NO_PASSWORD => (s.as_str(), true),
                _ => (inner.dummy_hash.as_str(), false),
            };
            Ok(w.verify(&password, phc)? && real)
        })
        .await?
    }

    /// Whether the stored hash `phc` is not what this pool writes now (bcrypt, another
    /// argon2 variant or cost): a login that proves the password replaces it.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        needs_rehash(phc, &self.inner.params)
    }
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

    #[tokio::test]
    async fn hashes_written_before_verify_and_hostile_costs_are_refused() {
        let h = PasswordHasher::start(CHEAP, 1, 4).unwrap();
        // Written by the RustCrypto argon2 crate (this build's predecessor): m=64, t=1.
        let old = "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$\
                   55PWTvddWPUD1GMbKxSff4ASfF85k9ibHJt4HlHQtBM";
        let ok = h.verify("password".into(), Some(old.into())).await;
        assert_eq!(ok, Ok(true), "{ok:?}");
        assert_eq!(h.verify("wrong".into(), Some(old.into())).await, Ok(false));
        // Other lanes and variants verify too.
        let mut w = Argon2Worker::new(params(CHEAP).unwrap()).unwrap();
        let wide = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::builder()
                .memory(Memory::kib(64))
                .passes(1)
                .lanes(2)
                .build()
                .unwrap(),
        )
        .hash_encoded(b"pw", b"somesaltsomesalt")
        .unwrap();
        assert_eq!(w.verify("pw", &wide), Ok(true));
        // A stored string asking for 4 TiB is refused, not allocated.
        let hostile = "$argon2id$v=19$m=4294967295,t=1,p=1$c29tZXNhbHQ$\
                       CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        assert!(w.verify("password", hostile).is_err());
        assert!(check_stored(hostile, CHEAP).unwrap_err().contains("above"));
        assert!(check_stored(old, CHEAP).is_ok());
        assert!(check_stored("$2b$10$notargon", CHEAP).is_err());
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
