//! Group commit: the one writer of the store. Every change is handed to it as a
//! [`Batch`]; it applies them in the order they came, one flush for all that are waiting,
//! and then answers each with its own [`Ticket`].
//!
//! Nobody else writes while the engine runs, so an actor never waits on the disk (or, with
//! a network store, on the network): it hands its batch over and goes on with its next
//! message; whoever owes a client durability awaits the ticket. The writer also keeps the
//! end of the audit chain ([`Chain`]): an audit record handed over with a batch is
//! numbered, chained and written in that batch, so an action and its record are stored
//! together or not at all.
//!
//! ```text
//!  submit(batch) ─┐   ┌─ writer thread ─────────┐   ┌─ flusher thread ──┐
//!  submit(batch) ─┼──▶│ apply each batch, in     │──▶│ one flush for the │──▶ tickets answered,
//!  then(f)       ─┤   │ order (refusals are      │   │ rounds applied    │    callbacks run,
//!  commit()      ─┘   │ values)                  │   │ meanwhile         │    in order
//!                     └──────────────────────────┘   └───────────────────┘
//! ```
//!
//! The writer goes on applying while the flusher syncs, as the actors' own inserts once
//! overlapped the flush.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;

use crossbeam_channel::{Receiver, Sender, unbounded};
use tokio::sync::{Notify, oneshot};

use super::audit::{Chain, Draft};
use super::{Applied, Batch, Store, StoreError};

/// What became of a submitted batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied and flushed.
    Durable,
    /// Refused by the store as a whole (an email taken, a stale revision); nothing of
    /// it was written.
    Refused(Applied),
    /// The store failed; whether it was written is unknown.
    Failed(String),
}

/// The answer to one submitted batch, once the writer has it.
#[derive(Clone, Debug)]
pub struct Ticket(Arc<TicketInner>);

#[derive(Debug, Default)]
struct TicketInner {
    outcome: OnceLock<Outcome>,
    ready: Notify,
}

impl Ticket {
    fn new() -> Self {
        Self(Arc::new(TicketInner::default()))
    }

    fn set(&self, outcome: Outcome) {
        let _ = self.0.outcome.set(outcome);
        self.0.ready.notify_waiters();
    }

    /// The outcome, if the writer has answered.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.0.outcome.get()
    }

    /// Waits for the outcome.
    pub async fn wait(&self) -> Outcome {
        loop {
            let ready = self.0.ready.notified();
            tokio::pin!(ready);
            // Registered before the check, so an answer in between is not missed.
            ready.as_mut().enable();
            if let Some(o) = self.0.outcome.get() {
                return o.clone();
            }
            ready.await;
        }
    }
}

/// What the writer is asked to do.
enum Job {
    /// Apply a batch (with audit records to chain into it).
    Write {
        batch: Batch,
        audit: Vec<Draft>,
        ticket: Ticket,
        /// Called on the writer thread if the batch is refused or fails.
        on_failure: Option<Box<dyn FnOnce() + Send>>,
    },
    /// Answer once everything before is durable.
    Barrier(oneshot::Sender<Result<(), String>>),
    /// The same, for a caller that blocks (a thread of the blocking pool).
    BlockingBarrier(std::sync::mpsc::Sender<Result<(), String>>),
    /// Run a callback once everything before is flushed; it learns how `after` went (or
    /// the flush, without one).
    Then {
        after: Option<Ticket>,
        f: Box<dyn FnOnce(Result<(), String>) + Send>,
    },
}

/// Counters of the writer's work, for benches and metrics.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Flushes run.
    pub flushes: AtomicU64,
    /// Callers answered: tickets awaited through [`GroupCommit::wait`] and barriers.
    pub commits: AtomicU64,
    /// Batches applied.
    pub batches: AtomicU64,
    /// Time spent flushing, in microseconds.
    pub flush_micros: AtomicU64,
}

/// A handle to the writer thread; cloning shares it. Dropping the last handle stops the
/// thread (after it has written what it was given) and waits for it, so the store is
/// released when the engine is.
#[derive(Clone)]
pub struct GroupCommit {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: Option<Sender<Job>>,
    threads: Vec<thread::JoinHandle<()>>,
    stats: Arc<CommitStats>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer ends when its jobs do, and the flusher when the writer does.
        self.jobs.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn stopped() -> String {
    "the store's writer has stopped".into()
}

impl GroupCommit {
    /// Starts the writer over `store`, continuing the audit chain found there.
    pub fn start(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let chain = Chain::open(store.as_ref())?;
        let (tx, rx) = unbounded::<Job>();
        let (rounds_tx, rounds_rx) = unbounded::<Round>();
        let stats = Arc::new(CommitStats::default());
        let (s, flushed) = (Arc::clone(&stats), Arc::clone(&store));
        let cannot = |e: std::io::Error| StoreError::Io(format!("cannot start the writer: {e}"));
        let flusher = thread::Builder::new()
            .name("roster-flush".into())
            .spawn(move || flusher(flushed, rounds_rx, s))
            .map_err(cannot)?;
        let writer = thread::Builder::new()
            .name("roster-writer".into())
            .spawn(move || writer(store, chain, rx, rounds_tx))
            .map_err(cannot)?;
        Ok(Self {
            inner: Arc::new(Inner {
                jobs: Some(tx),
                threads: vec![writer, flusher],
                stats,
            }),
        })
    }

    fn send(&self, job: Job) -> Result<(), Job> {
        match self.inner.jobs.as_ref() {
            Some(tx) => tx.send(job).map_err(|e| e.into_inner()),
            None => Err(job),
        }
    }

    /// Hands `batch` (and audit records to write with it) to the writer; it is applied
    /// after everything handed over before. Never waits. `on_failure` runs on the
    /// writer's thread if the batch is refused or the store fails.
    pub(crate) fn submit(
        &self,
        batch: Batch,
        audit: Vec<Draft>,
        on_failure: Option<Box<dyn FnOnce() + Send>>,
    ) -> Ticket {
        let ticket = Ticket::new();
        let job = Job::Write {
            batch,
            audit,
            ticket: ticket.clone(),
            on_failure,
        };
        if let Err(Job::Write {
            ticket, on_failure, ..
        }) = self.send(job)
        {
            ticket.set(Outcome::Failed(stopped()));
            if let Some(f) = on_failure {
                f();
            }
        }
        ticket
    }

    /// Waits for `ticket`, counting the caller as answered.
    pub async fn wait(&self, ticket: &Ticket) -> Outcome {
        let outcome = ticket.wait().await;
        self.inner.stats.commits.fetch_add(1, Ordering::Relaxed);
        outcome
    }

    /// Resolves once everything handed over before this call is durable.
    pub async fn commit(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Barrier(tx))
            .map_err(|_| StoreError::Io(stopped()))?;
        let answer = rx.await.map_err(|_| StoreError::Io(stopped()))?;
        self.inner.stats.commits.fetch_add(1, Ordering::Relaxed);
        answer.map_err(StoreError::Io)
    }

    /// [`Self::commit`] for a thread that may block (never an actor's or the runtime's).
    pub(crate) fn commit_blocking(&self) -> Result<(), StoreError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.send(Job::BlockingBarrier(tx))
            .map_err(|_| StoreError::Io(stopped()))?;
        rx.recv()
            .map_err(|_| StoreError::Io(stopped()))?
            .map_err(StoreError::Io)
    }

    /// Runs `f` on the writer's thread once everything handed over before is flushed,
    /// with how `after` went (its batch durable, or why not), or without one how the
    /// flush went. Callbacks run in the order they were registered, so one caller's keep
    /// its order; keep them short. If the writer has stopped, `f` is dropped unrun.
    pub fn then(&self, after: Option<Ticket>, f: impl FnOnce(Result<(), String>) + Send + 'static) {
        let _ = self.send(Job::Then {
            after,
            f: Box::new(f),
        });
    }

    /// The writer's counters.
    pub(crate) fn stats(&self) -> &CommitStats {
        &self.inner.stats
    }
}

/// A round of jobs the writer applied, on its way to the flusher.
struct Round {
    jobs: Vec<Job>,
    /// How each write applied, in order.
    outcomes: Vec<Outcome>,
}

/// Batches the writer hands the store at once, at most.
const GROUP: usize = 256;

/// A round's writes on their way into the store: each batch with the audit records
/// chained into it, and the end of the chain once it applied.
struct Writes {
    batches: Vec<Batch>,
    drafts: Vec<Vec<Draft>>,
    /// Each batch's own ops, before its audit records.
    own: Vec<usize>,
    /// The chain's end after each batch, if it applies and every one before it does (or
    /// why its records could not be chained); valid up to `chained`.
    ends: Vec<Result<Chain, String>>,
    /// The batches before this have their records chained (from the batch being applied).
    chained: usize,
}

impl Writes {
    fn new(round: &mut [Job]) -> Self {
        let mut writes = Self {
            batches: Vec::new(),
            drafts: Vec::new(),
            own: Vec::new(),
            ends: Vec::new(),
            chained: 0,
        };
        for job in round {
            if let Job::Write { batch, audit, .. } = job {
                writes.own.push(batch.len());
                writes.batches.push(std::mem::take(batch));
                writes.drafts.push(std::mem::take(audit));
                writes.ends.push(Err(String::new()));
            }
        }
        writes
    }

    /// Numbers and chains the audit records of a group's worth of batches from `from`
    /// on after `chain`, as if each of them applied.
    fn chain_from(&mut self, from: usize, chain: &Chain) {
        let to = (from + GROUP).min(self.batches.len());
        let mut end = chain.clone();
        for i in from..to {
            self.batches[i].truncate(self.own[i]);
            self.ends[i] = match end.extend(&self.drafts[i]) {
                Ok((ops, next)) => {
                    for op in ops {
                        self.batches[i].push(op);
                    }
                    end = next.clone();
                    Ok(next)
                }
                Err(e) => Err(e.to_string()),
            };
        }
        self.chained = to;
    }

    /// Applies every batch, in order, a group at a time; how each went, before the
    /// flush. `chain` ends where the applied ones left it (`None`: unknown after a
    /// failed write, read again from the store before the next).
    fn apply(mut self, store: &dyn Store, chain: &mut Option<Chain>) -> Vec<Outcome> {
        let n = self.batches.len();
        let mut outcomes = Vec::with_capacity(n);
        while outcomes.len() < n {
            let at = outcomes.len();
            let end = match chain.clone().map_or_else(|| Chain::open(store), Ok) {
                Ok(end) => end,
                Err(e) => {
                    // Numbers could collide with records already written: nothing more
                    // is written until the chain's end can be read.
                    let e = format!("cannot read the audit chain's end: {e}");
                    tracing::error!(error = %e, batches = n - at, "writes refused");
                    outcomes.extend((at..n).map(|_| Outcome::Failed(e.clone())));
                    break;
                }
            };
            if chain.is_none() || at >= self.chained {
                self.chain_from(at, &end);
                *chain = Some(end);
            }
            if let Err(e) = &self.ends[at] {
                // Nothing of it reaches the store; the chain goes on from the one before.
                outcomes.push(Outcome::Failed(e.clone()));
                continue;
            }
            let stop = self.ends[at..self.chained]
                .iter()
                .position(Result::is_err)
                .map_or(self.chained, |p| at + p);
            let mut went = store.apply_group(&self.batches[at..stop]).into_iter();
            for i in at..stop {
                match went.next() {
                    Some(Ok(Applied::Done)) => {
                        *chain = self.ends[i].clone().ok();
                        outcomes.push(Outcome::Durable);
                    }
                    Some(Ok(refused)) => {
                        outcomes.push(Outcome::Refused(refused));
                        // Its records were not written: those behind it are numbered
                        // again.
                        self.chained = i + 1;
                        break;
                    }
                    // The store stopped early, as it may: the rest in the next group.
                    None if i > at => break,
                    other => {
                        let e = match other {
                            Some(Err(e)) => e.to_string(),
                            _ => "the store applied none of a group".into(),
                        };
                        tracing::error!(error = %e, "store write failed");
                        outcomes.push(Outcome::Failed(e));
                        // Whether its records were written is unknown.
                        *chain = None;
                        break;
                    }
                }
            }
        }
        outcomes
    }
}

/// The writer: applies each batch in order (each atomic on its own, groups of them
/// together where the store can) and passes the round on; it goes on applying while the
/// flusher syncs the round before.
fn writer(store: Arc<dyn Store>, chain: Chain, rx: Receiver<Job>, rounds: Sender<Round>) {
    let mut chain = Some(chain);
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter());
        let outcomes = Writes::new(&mut jobs).apply(store.as_ref(), &mut chain);
        if rounds.send(Round { jobs, outcomes }).is_err() {
            return;
        }
    }
}

/// The flusher: one flush for every round applied meanwhile, then each job answered, in
/// the order it came.
fn flusher(store: Arc<dyn Store>, rx: Receiver<Round>, stats: Arc<CommitStats>) {
    while let Ok(first) = rx.recv() {
        let mut rounds = vec![first];
        rounds.extend(rx.try_iter());
        let started = std::time::Instant::now();
        let flushed = store.flush().map(|_| ()).map_err(|e| e.to_string());
        if let Err(e) = &flushed {
            tracing::error!(error = %e, rounds = rounds.len(), "store flush failed");
        }
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        stats.flush_micros.fetch_add(took, Ordering::Relaxed);
        stats.flushes.fetch_add(1, Ordering::Relaxed);
        for round in rounds {
            let batches = round.outcomes.len() as u64;
            stats.batches.fetch_add(batches, Ordering::Relaxed);
            answer(round, &flushed);
        }
    }
}

fn answer(round: Round, flushed: &Result<(), String>) {
    let mut outcomes = round.outcomes.into_iter();
    for job in round.jobs {
        match job {
            Job::Write {
                ticket, on_failure, ..
            } => {
                let outcome = match (outcomes.next(), flushed) {
                    (Some(Outcome::Durable), Ok(())) => Outcome::Durable,
                    (Some(Outcome::Durable), Err(e)) => Outcome::Failed(e.clone()),
                    (Some(other), _) => other,
                    (None, _) => Outcome::Failed("no outcome".into()),
                };
                if outcome != Outcome::Durable
                    && let Some(f) = on_failure
                {
                    guarded("a write's failure callback", f);
                }
                ticket.set(outcome);
            }
            Job::Barrier(tx) => {
                let _ = tx.send(flushed.clone());
            }
            Job::BlockingBarrier(tx) => {
                let _ = tx.send(flushed.clone());
            }
            Job::Then { after, f } => {
                let result = match after.as_ref().and_then(Ticket::outcome) {
                    Some(Outcome::Durable) => Ok(()),
                    Some(Outcome::Refused(r)) => Err(format!("refused: {r:?}")),
                    Some(Outcome::Failed(e)) => Err(e.clone()),
                    // Without a ticket, the flush is what it waited for.
                    None => flushed.clone(),
                };
                guarded("a callback after a write", move || f(result));
            }
        }
    }
}

/// Runs a caller's callback on the flusher thread. A panic in one is logged and goes no
/// further: the flusher must live on to answer every ticket behind it.
fn guarded(what: &str, f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        tracing::error!("{what} panicked; the writes behind it are answered as usual");
    }
}

#[cfg(test)]
mod tests;
